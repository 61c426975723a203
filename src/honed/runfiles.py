"""The names of the files in a run folder, each written once (imports nothing: the command line reads it
without torch). honed.api.Run owns the folder; nothing else joins a run path with a literal name."""

RECIPE, METRICS, SUMMARY, WEIGHTS, MODEL, CURVES = (
    "recipe.yaml", "metrics.jsonl", "summary.json", "model.safetensors", "model.json", "curves.png")
PREPROCESS, FAILURE, TEST_OUTPUTS, MISTAKES, REPORT = (
    "preprocess.json", "failure.json", "test_outputs.npz", "mistakes.json", "report.html")
DOCTOR_JSON, DOCTOR_MD, DOCTOR_DIR, FIXED = "doctor.json", "doctor.md", "doctor", "fixed.yaml"
EXPLAIN_DIR, EXPLAIN_JSON, EXPLAIN_HTML = "explain", "explain.json", "explain.html"
ONNX_DIR, ONNX_BUNDLE, ONNX_MODEL, ONNX_INT8 = "onnx", "bundle.json", "model.onnx", "model.int8.onnx"
QUANTIZED_DIR, QUANTIZED_REPORT = "quantized", "report.json"
LR_FIND_JSON, LR_FIND_PNG = "lr_find.json", "lr_find.png"
MODEL_CARD = "README.md"
PRUNE_REPORT = "prune.json"
MERGED_DIR, MERGED_REPORT = "merged", "export.json"
