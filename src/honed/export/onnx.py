"""`honed export RUN_DIR --format onnx`: an ONNX model with dynamic batch (and sequence) axes, checked
against PyTorch on real inputs with onnxruntime, in a folder that carries its preprocessing.

    RUN_DIR/onnx/model.onnx       input "input" (token ids int64 [batch, seq], right-padded with 0;
                                  or float32 features [batch, features]); output "scores" (raw logits or values)
    RUN_DIR/onnx/bundle.json      task, labels, input/output, post-processing, the check's max abs difference
    RUN_DIR/onnx/preprocess.json  (+ vocab.json or tokenizer.json): what turns raw text/rows into the input
    RUN_DIR/onnx/predict.py       a client that needs only numpy + onnxruntime (+ tokenizers for sub-words),
                                  with bundle_words.py (the words tokenizer): see export/client.py
"""

from __future__ import annotations

import logging
import re
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from honed import runfiles
from honed.errors import UserError
from honed.files import Written
from honed.export.inputs import check_inputs

log = logging.getLogger("honed")
BUNDLE = "bundle.json"
MODEL = "model.onnx"
TOLERANCE = 1e-4  # max abs difference allowed between ONNX Runtime and PyTorch outputs (fp32)


def onnxruntime():
    try:
        import onnxruntime as ort
    except ImportError:
        raise UserError("ONNX export needs onnx and onnxruntime: pip install 'honed[export]'") from None
    return ort


def write_onnx(model: torch.nn.Module, example: torch.Tensor, path: Path) -> None:
    """torch.onnx (the torch.export-based exporter) with dynamic batch and, for tokens, sequence axes."""
    from honed.run import atomic_write

    dims = {0: torch.export.Dim("batch", min=1)}
    if example.dtype == torch.int64:
        dims[1] = torch.export.Dim("seq", min=1)
    model.eval()

    def export(tmp: Path) -> None:
        # The exporter warns about optional packages (torchvision) that honed models never need.
        logging.getLogger("torch.onnx._internal.exporter._registration").setLevel(logging.ERROR)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(model, (example,), dynamo=True, input_names=["input"],
                                        output_names=["scores"], dynamic_shapes=(dims,), verbose=False)
        program.save(str(tmp))

    try:
        atomic_write(path, export)
    except Exception as e:  # noqa: BLE001 - the exporter's many failure types mean one thing here
        reason = root_cause(e)
        raise UserError(f"this model cannot be exported to ONNX yet ({type(model).__name__}: {reason[:200]})") from None


def root_cause(error: BaseException) -> str:
    """The first line of the innermost exception: the exporter wraps the real reason in its own messages."""
    while error.__cause__ is not None:
        error = error.__cause__
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(error)).strip()
    return text.splitlines()[0] if text else type(error).__name__


def max_difference(session, model: torch.nn.Module, x: torch.Tensor) -> float:
    """Largest |ONNX Runtime - PyTorch| over the rows of x, a smaller batch, and a longer one.

    Shapes other than the example's catch a graph the exporter quietly fixed to one size;
    such a graph fails in ONNX Runtime, which counts as an infinite difference.
    """
    worst = 0.0
    for batch in check_batches(x):
        with torch.no_grad():
            expected = model(batch).float().numpy()
        try:
            got = session.run(None, {"input": batch.numpy()})[0]
        except Exception:  # noqa: BLE001 - onnxruntime raises its own error types for shape mismatches
            return float("inf")
        worst = max(worst, float(np.abs(got - expected).max()))
    return worst


def check_batches(x: torch.Tensor) -> list[torch.Tensor]:
    """x itself, its first 3 rows (tokens: without their shared padding), and x twice over with one more padding column."""
    from honed.data.bundle import trim_padding

    if x.dtype != torch.int64:
        return [x, x[:3], torch.cat([x, x.flip(0)])]
    longer = torch.cat([torch.cat([x, x.flip(0)]), torch.zeros(2 * len(x), 1, dtype=x.dtype)], dim=1)
    return [x, trim_padding(x[:3]), longer]


def bundle_info(recipe, pre, x: torch.Tensor, difference: float, rows: int) -> dict:
    from honed import __version__
    from honed.data.sources.images import decoding

    post = {"regression": "value * target_std + target_mean", "binary": "sigmoid", "multiclass": "softmax"}[pre.task]
    image = decoding(recipe.model_dump(mode="json"), getattr(pre, "image_shape", None))
    return {
        "format": "honed-onnx", "honed": __version__, "model": recipe.model.name, "task": pre.task,
        "labels": pre.labels.classes if pre.labels else None,
        "input": {"name": "input", "kind": "tokens" if x.dtype == torch.int64 else "features",
                  "columns": pre.column_encoder.used if getattr(pre, "column_encoder", None) is not None else None,
                  "dtype": "int64" if x.dtype == torch.int64 else "float32",
                  "shape": ["batch", "seq"] if x.dtype == torch.int64 else ["batch", int(x.shape[1])],
                  "padding": "token id 0 on the right" if x.dtype == torch.int64 else None},
        "output": {"name": "scores", "postprocess": post, "target_mean": pre.target_mean,
                   "target_std": pre.target_std},
        "check": {"rows": rows, "max_abs_difference": difference, "tolerance": TOLERANCE},
        "client": "predict.py",
    } | ({"image": image} if image else {})


def write_client(folder: Path) -> None:
    """The standalone client and the code it imports (the words tokenizer, the table encoding, image decoding),
    copied beside the model."""
    import shutil

    from honed.data import pixels, table_encoding, words
    from honed.export import client

    shutil.copyfile(client.__file__, folder / "predict.py")
    shutil.copyfile(pixels.__file__, folder / "bundle_pixels.py")
    shutil.copyfile(words.__file__, folder / "bundle_words.py")
    shutil.copyfile(table_encoding.__file__, folder / "bundle_tables.py")


def refuse_sentence_vectors(pre, command: str) -> None:
    """A bundle holds the trained model and its tokenizer; a run that also reads a frozen encoder's sentence
    vectors (data.encoder_features) would need that encoder in the graph too, which bundles do not carry."""
    if getattr(getattr(pre, "settings", None), "encoder_features", None):
        raise UserError(f"{command}: this run reads sentence vectors from data.encoder_features = "
                        f"{pre.settings.encoder_features!r}, which bundles do not carry; serve it with "
                        "`honed serve RUN_DIR --backend torch`")


def export_onnx(run_dir, *, out=None, inputs=None, rows: int = 256) -> dict:
    """Export a run to ONNX, check it against PyTorch with onnxruntime, write the bundle; returns bundle.json.
    Into the run's own folder (no `out`), the run's page is rebuilt to show it."""
    from honed.api import Run, load_run

    if Run.open(run_dir).recipe.model.name == "causal_lm":  # a folder transformers loads, the adapter merged
        from honed.export.merged import export_merged

        return export_merged(run_dir, out)
    loaded = load_run(run_dir)
    refuse_sentence_vectors(loaded.pre, "honed export")
    x = check_inputs(loaded.recipe, loaded.pre, inputs, rows)
    info = export_loaded(loaded, Path(out) if out else Path(run_dir) / runfiles.ONNX_DIR, x)
    if not out:
        from honed.report import refresh_report

        refresh_report(run_dir)
    return info


def export_loaded(loaded, final: Path, x: torch.Tensor) -> dict:
    """Write a loaded run (`api.LoadedRun`) as a bundle in `final`, checked on the preprocessed rows `x`. The
    bundle is written into a private folder and renamed into place whole: a killed export leaves no partial
    bundle, and nothing of an older one (a quantized model, a half-written file) is shipped with the new one."""
    from honed.files import building

    with building(final) as folder:
        info = _write_bundle(loaded, folder, x)
    log.info(f"export: {final / MODEL} ({info['bytes'] / 1e6:.2f} MB), max |onnx - torch| "
             f"{info['check']['max_abs_difference']:.2e} on {len(x)} rows")
    return Written(info | {"path": str(final)})


def _write_bundle(loaded, folder: Path, x: torch.Tensor) -> dict:
    from honed.run import write_json

    ort = onnxruntime()
    recipe, model, pre = loaded
    started = time.perf_counter()
    write_onnx(model, x[:2], folder / MODEL)
    session = ort.InferenceSession(str(folder / MODEL), providers=["CPUExecutionProvider"])
    difference = max_difference(session, model, x)
    if difference == float("inf"):
        raise UserError("this model cannot be exported to ONNX yet: the exported graph only takes the example's "
                        "batch size or length; not written as a bundle")
    if difference > TOLERANCE:
        raise UserError(f"the ONNX model differs from PyTorch by {difference:.3g} (> {TOLERANCE:g}) on "
                        f"{len(x)} rows; not written as a bundle")
    pre.save(folder)
    write_client(folder)
    info = bundle_info(recipe, pre, x, difference, len(x)) | {"seconds": round(time.perf_counter() - started, 2),
                                                             "bytes": (folder / MODEL).stat().st_size}
    write_json(folder / BUNDLE, info)
    return info
