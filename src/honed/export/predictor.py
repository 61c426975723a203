"""Predictors: raw inputs (texts or feature rows) -> labels and probabilities, on PyTorch or ONNX Runtime.

Both apply the run's own fitted preprocessing, so a served model sees exactly what it was trained on.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from honed.data.bundle import trim_padding
from honed.errors import UserError
from honed import runfiles

BATCH = 1024


class Predictor:
    """Shared by both backends: preprocessing, batching, and turning scores into predictions."""

    backend = "base"

    def __init__(self, pre, info: dict) -> None:
        self.pre, self.info = pre, info

    @property
    def kind(self) -> str:
        return self.pre.kind  # text | table

    def scores(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def predict(self, inputs) -> list[dict]:
        """[{prediction, probabilities: {label: p}}] for classes, [{prediction: value}] for regression."""
        from honed.evaluation import class_probabilities

        if self.kind == "text":
            x = self.pre.inputs(inputs)
        elif getattr(self.pre, "column_encoder", None) is not None:  # rows as {column: value}: a table's own cells
            import pandas as pd

            x = self.pre.inputs(inputs if isinstance(inputs, pd.DataFrame) else pd.DataFrame(list(inputs)))
        else:
            x = self.pre.inputs(np.asarray(inputs, dtype=np.float32))
        scores = torch.cat([self.scores(trim_padding(x[i: i + BATCH]) if x.dtype == torch.int64 else x[i: i + BATCH])
                            for i in range(0, len(x), BATCH)])
        if self.pre.task == "regression":
            return [{"prediction": float(v)} for v in self.pre.unscale(scores).tolist()]
        names = self.pre.labels.names
        probs = class_probabilities(scores, self.pre.task).tolist()
        return [{"prediction": names[max(range(len(row)), key=row.__getitem__)],
                 "probabilities": dict(zip(names, row))} for row in probs]


class TorchPredictor(Predictor):
    backend = "torch"

    def __init__(self, run_dir, quantized: bool = False) -> None:
        from honed.api import load_run
        from honed.run import read_summary

        recipe, model, pre = load_run(run_dir)
        self.loaded = None if quantized else (recipe, model, pre)  # what honed explain needs (float weights)
        if quantized:
            from honed.export.quantize import torch_int8

            model = torch_int8(model)
        self.model = model.eval()
        summary = read_summary(Path(run_dir))
        super().__init__(pre, {"model": recipe.model.name, "recipe": recipe.model_dump(mode="json"),
                               "metrics": summary.get("test", {}), "quantized": quantized})

    @torch.no_grad()
    def scores(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x).float()


class OnnxPredictor(Predictor):
    backend = "onnx"

    def __init__(self, folder, model_file: str = "model.onnx") -> None:
        from honed.data import load_preprocessor
        from honed.export.onnx import BUNDLE, onnxruntime
        from honed.run import read_json

        folder = Path(folder)
        if not (folder / BUNDLE).is_file() or not (folder / model_file).is_file():
            raise UserError(f"{folder}: no ONNX bundle ({BUNDLE}, {model_file}); run honed export first")
        ort = onnxruntime()
        options = ort.SessionOptions()
        self.session = ort.InferenceSession(str(folder / model_file), options, providers=["CPUExecutionProvider"])
        super().__init__(load_preprocessor(folder), read_json(folder / BUNDLE))

    def scores(self, x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(self.session.run(None, {"input": x.numpy()})[0])


def load_predictor(run_dir, backend: str = "torch") -> Predictor:
    """The run's predictor on `backend`: torch, onnx (exports first if needed), or their int8 versions."""
    from honed.api import refuse_language_model
    from honed.run import check_run_dir

    path = check_run_dir(run_dir)
    refuse_language_model(path, "honed serve")  # the service answers /predict with classes or numbers
    if backend == "torch":
        return TorchPredictor(path)
    if backend == "torch-int8":
        return TorchPredictor(path, quantized=True)
    if backend in ("onnx", "onnx-int8"):
        folder = path / runfiles.ONNX_DIR
        if not (folder / runfiles.ONNX_MODEL).is_file():
            from honed.export.onnx import export_onnx

            export_onnx(path)
        if backend == "onnx-int8":
            from honed.export.quantize import onnx_int8

            onnx_int8(folder / runfiles.ONNX_MODEL, folder / runfiles.ONNX_INT8)
            return OnnxPredictor(folder, "model.int8.onnx")
        return OnnxPredictor(folder)
    raise UserError(f"--backend {backend!r} is not allowed; allowed: torch, onnx, torch-int8, onnx-int8")
