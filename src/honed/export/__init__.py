"""Shipping a trained run: distillation into a smaller model, ONNX export (verified against PyTorch),
int8 quantization, predictors for serving."""

from honed.export.distill import distill
from honed.export.onnx import export_onnx
from honed.export.predictor import OnnxPredictor, TorchPredictor, load_predictor
from honed.export.quantize import quantize

__all__ = ["distill", "export_onnx", "quantize", "OnnxPredictor", "TorchPredictor", "load_predictor"]
