"""Losses by name. Classification losses take logits (sigmoid/softmax are inside, numerically safe)."""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from honed.errors import UserError
from honed.registry import Registry

LOSSES: Registry = Registry("loss")
LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
DEFAULT = {"regression": "mse", "binary": "bce", "multiclass": "cross_entropy"}
TASKS = {"mse": {"regression"}, "mae": {"regression"}, "huber": {"regression"}, "bce": {"binary"},
         "cross_entropy": {"multiclass"}}


@LOSSES.register("mse")
def _mse(spec) -> LossFn:
    return nn.MSELoss()


@LOSSES.register("mae")
def _mae(spec) -> LossFn:
    return nn.L1Loss()


@LOSSES.register("huber")
def _huber(spec) -> LossFn:
    return nn.HuberLoss(delta=spec.huber_delta)


@LOSSES.register("bce")
def _bce(spec) -> LossFn:
    return nn.BCEWithLogitsLoss()


@LOSSES.register("cross_entropy")
def _cross_entropy(spec) -> LossFn:
    return nn.CrossEntropyLoss(label_smoothing=spec.label_smoothing)


def resolve_loss_name(spec, task: str) -> str:
    name = DEFAULT[task] if spec.name == "auto" else spec.name
    if task not in TASKS[name]:
        raise UserError(f"loss.name = {name!r} does not fit a {task} task; use {DEFAULT[task]!r} (or 'auto')")
    return name


def build_loss(spec, task: str) -> LossFn:
    return LOSSES.get(resolve_loss_name(spec, task))(spec)
