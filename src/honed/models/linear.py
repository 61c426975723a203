"""Linear and logistic regression: one affine map (the loss makes it one or the other)."""

from __future__ import annotations

from torch import nn

from honed.errors import UserError
from honed.models import MODELS, Shape
from honed.models.layers import Head


def _affine(spec, shape: Shape) -> nn.Module:
    if shape.input_kind != "features":
        raise UserError(f"model.name = {spec.name!r} needs numeric features; for text use bag, cnn or rnn")
    return Head(shape.input_dim, shape.output_dim)


MODELS.register("linear")(_affine)
MODELS.register("logistic")(_affine)
