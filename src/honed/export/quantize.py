"""`honed quantize RUN_DIR`: dynamic int8 quantization on CPU, PyTorch's and ONNX Runtime's side by side.

Weights of Linear/LSTM/GRU layers become int8 (activations are quantized on the fly), and embedding
tables 8-bit per row (on ONNX Runtime, its Gather quantization). Each version
is measured on the run's test split: the metric, the file size, and the CPU latency per example at
batch 1 and at batch 64. The faster int8 version is recorded in RUN_DIR/quantized/report.json;
ONNX Runtime's is a file (onnx/model.int8.onnx), PyTorch's is rebuilt from the float weights when
loaded (quantize_dynamic is deterministic), so no pickled module is ever written.
"""

from __future__ import annotations

import copy
import io
import logging
import statistics
import time
import warnings
from pathlib import Path

import torch
from torch import nn

from honed.errors import UserError
from honed.files import Written
from honed.export.inputs import check_inputs
from honed.models.layers import TokenPool
from honed import runfiles

log = logging.getLogger("honed")
QUANTIZED = (nn.Linear, nn.LSTM, nn.GRU)


def torch_int8(model: nn.Module) -> nn.Module:
    """PyTorch dynamic int8 quantization of Linear/LSTM/GRU layers and an 8-bit token table (a copy; CPU)."""
    from torch.ao import quantization as tq

    spec: dict = {layer: tq.default_dynamic_qconfig for layer in QUANTIZED}
    pretrained = hasattr(model, "base")  # a pretrained encoder or language model: its embeddings stay as they are
    for name, module in model.named_modules():
        # honed's own token tables (bag, linear, rnn, cnn)
        if isinstance(module, (nn.Embedding, nn.EmbeddingBag)) and not pretrained:
            spec[name] = tq.float_qparams_weight_only_qconfig
    with warnings.catch_warnings():  # torch.ao.quantization announces its move to torchao
        warnings.simplefilter("ignore")
        quantized = tq.quantize_dynamic(copy.deepcopy(model).cpu().eval(), spec, dtype=torch.qint8)
    for pool in list(quantized.modules()):
        if isinstance(pool, TokenPool) and pool.pooling == "mean":  # a TF-IDF pool sums: nothing to average
            pool.embedding = MeanOfSums(pool.embedding)
    for parent in list(quantized.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is tq_embedding():  # (its EmbeddingBag subclass reads flat ids and offsets)
                setattr(parent, name, ContiguousIds(child))
    return quantized


def tq_embedding() -> type:
    from torch.ao.nn.quantized import Embedding

    return Embedding


class ContiguousIds(nn.Module):
    """A quantized Embedding handed contiguous ids: PyTorch's int8 lookup refuses a view, and a batch trimmed of
    its padding columns (data.bundle.trim_padding) is one."""

    def __init__(self, embedding: nn.Module) -> None:
        super().__init__()
        self.embedding = embedding

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.embedding(ids.contiguous())


class MeanOfSums(nn.Module):
    """A quantized EmbeddingBag, averaged here: PyTorch's quantized EmbeddingBag sums whatever its
    mode says, so the sums of the (ids, offsets) bags the model hands it are divided by their sizes."""

    def __init__(self, bag: nn.Module) -> None:
        super().__init__()
        self.bag = bag

    def forward(self, ids: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
        ends = torch.cat([offsets[1:], offsets.new_tensor([len(ids)])])
        counts = (ends - offsets).clamp(min=1).unsqueeze(1).to(torch.float32)
        return self.bag(ids, offsets) / counts


def onnx_int8(source: Path, target: Path) -> Path:
    """ONNX Runtime dynamic int8 quantization of an exported model."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from honed.run import atomic_write

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # onnxruntime.quantization advises pre-processing through the root logger
    try:
        atomic_write(target, lambda tmp: quantize_dynamic(str(source), str(tmp), weight_type=QuantType.QInt8))
    finally:
        root.setLevel(level)
    return target


def latency_ms(scores, x: torch.Tensor, batch: int, repeats: int = 200) -> float:
    """Median milliseconds per example of `scores` on batches of `batch` rows."""
    from honed.data.bundle import trim_padding

    batches = [x[i: i + batch] for i in range(0, len(x) - batch + 1, batch)] or [x]
    batches = [trim_padding(b) if b.dtype == torch.int64 else b for b in batches]
    for b in batches[:3]:
        scores(b)  # warm up
    times = []
    for i in range(max(1, repeats // max(1, batch // 8))):
        b = batches[i % len(batches)]
        began = time.perf_counter()
        scores(b)
        times.append((time.perf_counter() - began) / len(b))
    return 1000 * statistics.median(times)


def state_bytes(model: nn.Module) -> int:
    """Bytes of the model's serialized weights (measured in memory; never written)."""
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return buffer.tell()


def metric_of(scores, split, pre) -> tuple[str, float]:
    from honed.data.bundle import trim_padding

    x, y = split
    out = torch.cat([scores(trim_padding(x[i: i + 512]) if x.dtype == torch.int64 else x[i: i + 512])
                     for i in range(0, len(x), 512)])
    from honed.evaluation.metrics import compute_metrics

    out = out.squeeze(-1) if pre.task != "multiclass" else out
    if pre.task == "regression":
        return "mse", compute_metrics(["mse"], pre.unscale(out), pre.unscale(y), pre.task, 1)["mse"]
    return "accuracy", compute_metrics(["accuracy"], out, y, pre.task, pre.output_dim)["accuracy"]


def measure(name: str, scores, size: int, x: torch.Tensor, y, pre) -> dict:
    row = {"version": name, "bytes": size, "ms per example (batch 1)": latency_ms(scores, x, 1),
           "ms per example (batch 64)": latency_ms(scores, x, 64)}
    if y is not None:
        metric, value = metric_of(scores, (x, y), pre)
        row[f"test {metric}"] = value
    return row


def quantize(run_dir, *, inputs=None, rows: int = 2000) -> dict:
    """Measure float, PyTorch int8 and ONNX Runtime int8 versions; record the faster int8 one. The run is loaded
    and its test split built once, for every version (the ONNX export included); the run's page is rebuilt."""
    from honed.api import Run
    from honed.run import write_json

    from honed.export.onnx import export_loaded, refuse_sentence_vectors

    run = Run.open(run_dir)
    if run.recipe.model.name == "causal_lm":  # int8 Linear layers, measured per generated token and by perplexity
        from honed.export.lm_quantize import quantize_causal_lm

        return quantize_causal_lm(run)
    path = run.path
    loaded = run.load()
    recipe, model, pre = loaded
    refuse_sentence_vectors(pre, "honed quantize")
    if inputs:  # the user's rows: timed, but without labels there is no accuracy
        x, y = check_inputs(recipe, pre, inputs, rows), None
    else:
        try:
            split = run.test_split(loaded)
        except UserError as e:
            raise UserError(f"{e} (quantize measures the test split; or give --input FILE)") from None
        x, y = split.x[:rows], split.y[:rows]
    versions = {"float32 (PyTorch)": (model, state_bytes(model))}
    qmodel = torch_int8(model)
    versions["int8 (PyTorch)"] = (qmodel, state_bytes(qmodel))
    try:
        folder = path / runfiles.ONNX_DIR
        if not (folder / runfiles.ONNX_MODEL).is_file():
            export_loaded(loaded, folder, x[:256])
        from honed.export.predictor import OnnxPredictor

        versions["float32 (ONNX Runtime)"] = (OnnxPredictor(folder).scores, (folder / runfiles.ONNX_MODEL).stat().st_size)
        target = onnx_int8(folder / runfiles.ONNX_MODEL, folder / runfiles.ONNX_INT8)
        versions["int8 (ONNX Runtime)"] = (OnnxPredictor(folder, "model.int8.onnx").scores, target.stat().st_size)
    except (UserError, ImportError) as e:
        log.warning(f"quantize: no ONNX Runtime version ({str(e).splitlines()[0]})")
    with torch.inference_mode():
        rows_out = [measure(name, scores, size, x, y, pre) for name, (scores, size) in versions.items()]
    base = rows_out[0]
    for row in rows_out:
        row["size vs float"] = row["bytes"] / base["bytes"]
        row["speed-up (batch 1)"] = base["ms per example (batch 1)"] / row["ms per example (batch 1)"]
    best = min((r for r in rows_out if r["version"].startswith("int8")), key=lambda r: r["ms per example (batch 1)"])
    report = {"rows": len(x), "versions": rows_out, "chosen": best["version"],
              "backend": "onnx-int8" if "ONNX" in best["version"] else "torch-int8"}
    write_json(path / runfiles.QUANTIZED_DIR / runfiles.QUANTIZED_REPORT, report)
    from honed.report import refresh_report

    refresh_report(path)
    return Written(report | {"path": str(path / runfiles.QUANTIZED_DIR)})
