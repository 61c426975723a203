"""Multi-layer perceptron: hidden dense layers with an activation and dropout."""

from __future__ import annotations

from torch import nn

from honed.errors import UserError
from honed.models import MODELS, Shape
from honed.models.layers import Head, dense_stack


@MODELS.register("mlp")
def build(spec, shape: Shape) -> nn.Module:
    if shape.input_kind != "features":
        raise UserError("model.name = 'mlp' needs numeric features; for text use bag, cnn or rnn")
    sizes = [shape.input_dim, *spec.hidden]
    return nn.Sequential(dense_stack(sizes, spec.activation, spec.dropout), Head(sizes[-1], shape.output_dim))
