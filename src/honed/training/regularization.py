"""L1 and L2 penalties added to the loss, on weights only (biases are left free, as in Keras)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

if TYPE_CHECKING:
    from honed.recipe.schema import RegularizationSpec


def penalized_weights(model: nn.Module) -> list[torch.Tensor]:
    """Every parameter with two or more dimensions: dense, conv, recurrent and embedding weights.

    Sparse embeddings are left out: a penalty's gradient would touch every row at every step.
    """
    from honed.training.optimizers import sparse_parameters

    sparse = sparse_parameters(model)
    return [p for p in model.parameters() if p.requires_grad and p.dim() > 1 and all(p is not q for q in sparse)]


def penalty(weights: list[torch.Tensor], l1: float, l2: float) -> torch.Tensor | None:
    """l1 * sum|w| + l2 * sum w^2 over `weights`, or None when both are zero."""
    if not (l1 or l2) or not weights:
        return None
    total = weights[0].new_zeros(())
    for w in weights:
        if l1:
            total = total + l1 * w.abs().sum()
        if l2:
            total = total + l2 * w.square().sum()
    return total


def l2_of(spec: "RegularizationSpec", rows: int) -> float:
    """The L2 coefficient: regularization.l2, or from scikit-learn's C as 1 / (2 * C * rows).

    scikit-learn minimizes 0.5 * |w|^2 + C * sum(losses); divided by C * rows, that is the mean
    loss (what honed minimizes) + |w|^2 / (2 * C * rows).
    """
    return 1.0 / (2.0 * spec.c * rows) if spec.c is not None else spec.l2
