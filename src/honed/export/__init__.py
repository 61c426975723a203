"""Shipping a trained run: ONNX export (verified against PyTorch), int8 quantization, predictors for serving."""

from honed.export.onnx import export_onnx
from honed.export.predictor import OnnxPredictor, TorchPredictor, load_predictor
from honed.export.quantize import quantize

__all__ = ["export_onnx", "quantize", "OnnxPredictor", "TorchPredictor", "load_predictor"]
