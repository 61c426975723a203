"""Quantization: int8 versions measured against float on the test split; the faster one recorded."""

import json

import pytest
import torch

import honed
from honed.export import load_predictor, quantize
from honed.export.quantize import torch_int8


def test_quantize_reports_accuracy_size_and_latency_of_each_version(digits_run):
    report = quantize(digits_run)
    versions = {v["version"]: v for v in report["versions"]}
    assert set(versions) == {"float32 (PyTorch)", "int8 (PyTorch)", "float32 (ONNX Runtime)", "int8 (ONNX Runtime)"}
    base = versions["float32 (PyTorch)"]
    assert base["test accuracy"] == pytest.approx(json.loads((digits_run / "summary.json").read_text())["test"]["accuracy"],
                                                  abs=1e-6)
    for name in ("int8 (PyTorch)", "int8 (ONNX Runtime)"):
        assert versions[name]["bytes"] < 0.4 * base["bytes"]  # weights in int8: about a quarter
        assert abs(versions[name]["test accuracy"] - base["test accuracy"]) < 0.03
        assert versions[name]["ms per example (batch 1)"] > 0
    assert report["chosen"].startswith("int8") and report["backend"] in ("torch-int8", "onnx-int8")
    assert json.loads((digits_run / "quantized" / "report.json").read_text())["chosen"] == report["chosen"]


def test_int8_outputs_stay_close_to_float(digits_run):
    _, model, pre = honed.load_run(digits_run)
    x = torch.randn(50, pre.input_dim)
    with torch.no_grad():
        float_out, int8_out = model(x), torch_int8(model)(x)
    assert (float_out.argmax(1) == int8_out.argmax(1)).float().mean() > 0.9
    assert load_predictor(digits_run, "torch-int8").info["quantized"] is True


@pytest.mark.parametrize("model,data", [({"name": "bag", "embedding_dim": 32, "hidden": [16]},
                                         {"ngrams": 2, "ngram_buckets": 20000}),
                                        ({"name": "rnn", "embedding_dim": 32, "hidden_size": 16}, {})],
                         ids=["bag", "rnn"])
def test_embedding_tables_shrink_and_padding_stays_out(text_csvs, tmp_path, model, data):
    from honed.export.quantize import state_bytes

    train, test = text_csvs
    run = honed.train({"data": {"source": "text_files", "train": str(train), "test": str(test)} | data,
                       "model": model, "train": {"epochs": 2, "checkpoint": None}}, out=tmp_path / "run").path
    _, float_model, pre = honed.load_run(run)
    int8 = torch_int8(float_model)
    if model["name"] == "bag":  # 20,000 hashed bigram rows dominate: 8 bits a weight, plus a scale per row
        assert state_bytes(int8) < 0.35 * state_bytes(float_model)
    x = pre.inputs(["match goal team score", "vote", "recipe cook taste bake dinner spice", ""])[:]
    padded = torch.cat([x, torch.zeros(len(x), 5, dtype=x.dtype)], dim=1)
    with torch.no_grad():
        torch.testing.assert_close(int8(padded), int8(x))  # padding never reaches the int8 bag either
        torch.testing.assert_close(int8(x), float_model(x), atol=0.05, rtol=0.05)
    from honed.evaluation import outputs_of  # batches trimmed of their padding columns (views) work too

    torch.testing.assert_close(outputs_of(int8, padded, batch_size=2), outputs_of(float_model, padded, batch_size=2),
                               atol=0.05, rtol=0.05)
