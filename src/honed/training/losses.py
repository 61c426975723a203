"""Losses by name. Classification losses take logits (sigmoid/softmax are inside, numerically safe)."""

from __future__ import annotations

from typing import Callable, TYPE_CHECKING

import torch
from torch import nn

from honed.errors import UserError
from honed.registry import Registry

if TYPE_CHECKING:
    from honed.recipe.schema import LossSpec

LOSSES: Registry = Registry("loss")
LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
DEFAULT = {"regression": "mse", "binary": "bce", "multiclass": "cross_entropy", "language_modeling": "token_nll"}
TASKS = {"mse": {"regression"}, "mae": {"regression"}, "huber": {"regression"}, "bce": {"binary"},
         "cross_entropy": {"multiclass"}, "token_nll": {"language_modeling"}}


@LOSSES.register("mse")
def _mse(spec: LossSpec) -> LossFn:
    return nn.MSELoss()


@LOSSES.register("mae")
def _mae(spec: LossSpec) -> LossFn:
    return nn.L1Loss()


@LOSSES.register("huber")
def _huber(spec: LossSpec) -> LossFn:
    return nn.HuberLoss(delta=spec.huber_delta)


@LOSSES.register("bce")
def _bce(spec: LossSpec) -> LossFn:
    w, smoothing = spec.class_weights, spec.label_smoothing
    if w is None and not smoothing:
        return nn.BCEWithLogitsLoss()
    if w is not None and len(w) != 2:
        raise UserError(f"loss.class_weights has {len(w)} weights; a two-class task takes 2 (one per label, in order)")

    def bce(scores: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        # label smoothing as cross_entropy does it for two classes: the target 1 - s/2 for the label, s/2 else
        soft = targets * (1 - smoothing) + smoothing / 2
        per_row = nn.functional.binary_cross_entropy_with_logits(scores, soft, reduction="none")
        if w is None:
            return per_row.mean()
        # the weighted mean, as cross_entropy's `weight` takes it: sum(w_y * loss) / sum(w_y)
        row_weights = w[0] + (w[1] - w[0]) * targets
        return (row_weights * per_row).sum() / row_weights.sum()

    return bce


@LOSSES.register("cross_entropy")
def _cross_entropy(spec: LossSpec) -> LossFn:
    w = spec.class_weights
    if w is None:
        return nn.CrossEntropyLoss(label_smoothing=spec.label_smoothing)
    loss = nn.CrossEntropyLoss(weight=torch.tensor(w, dtype=torch.float32), label_smoothing=spec.label_smoothing)

    def weighted(scores: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        if scores.shape[-1] != len(w):
            raise UserError(f"loss.class_weights has {len(w)} weights; this task has {scores.shape[-1]} classes")
        return loss(scores, targets)

    return weighted


@LOSSES.register("token_nll")
def _token_nll(spec: LossSpec) -> LossFn:
    """A causal LM answers (rows, 2): each row's summed negative log-likelihood and its learned tokens
    (models/causal_lm.py); the loss is the mean over the batch's learned tokens, whatever row holds them."""

    def token_nll(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return outputs[:, 0].sum() / outputs[:, 1].sum().clamp(min=1)

    return token_nll


def resolve_loss_name(spec: LossSpec, task: str) -> str:
    name = DEFAULT[task] if spec.name == "auto" else spec.name
    if task not in TASKS[name]:
        raise UserError(f"loss.name = {name!r} does not fit a {task} task; use {DEFAULT[task]!r} (or 'auto')")
    return name


def build_loss(spec: LossSpec, task: str) -> LossFn:
    name = resolve_loss_name(spec, task)
    if spec.label_smoothing and task == "regression":
        raise UserError(f"loss.label_smoothing = {spec.label_smoothing:g} smooths class labels; this task is "
                        "regression: set it to 0")
    return LOSSES.get(name)(spec)


def per_member(loss_fn: LossFn, members: int) -> LossFn:
    """The mean of `loss_fn` over an ensemble's members: a model with `members` > 1 answers (N, members, ...)
    while training (each member learns on its own; at evaluation it answers their mean)."""

    def loss(outputs: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        stacked = outputs.transpose(0, 1).reshape(members * outputs.shape[0], *outputs.shape[2:])
        return loss_fn(stacked, y.repeat(members, *([1] * (y.dim() - 1))))

    return loss
