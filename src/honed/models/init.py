"""Weight initialization by name: weights drawn by the scheme, biases set to zero."""

from __future__ import annotations

import torch
from torch import nn

from honed.registry import Registry

INITS: Registry = Registry("init")


@INITS.register("default")
def _default(weight: torch.Tensor) -> None:
    """Keep PyTorch's own initialization."""


@INITS.register("xavier_uniform")
def _xavier_uniform(weight: torch.Tensor) -> None:
    nn.init.xavier_uniform_(weight)


@INITS.register("xavier_normal")
def _xavier_normal(weight: torch.Tensor) -> None:
    nn.init.xavier_normal_(weight)


@INITS.register("he_uniform")
def _he_uniform(weight: torch.Tensor) -> None:
    nn.init.kaiming_uniform_(weight, nonlinearity="relu")


@INITS.register("he_normal")
def _he_normal(weight: torch.Tensor) -> None:
    nn.init.kaiming_normal_(weight, nonlinearity="relu")


INITIALIZED = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.LSTM, nn.GRU)


@torch.no_grad()
def initialize(model: nn.Module, name: str) -> nn.Module:
    """Apply scheme `name` to every dense, conv and recurrent weight; zero their biases.

    Embeddings keep their N(0, 1) initialization (fan-based schemes make no sense for lookups).
    """
    scheme = INITS.get(name)
    if name == "default":
        return model
    for module in model.modules():
        if not isinstance(module, INITIALIZED):
            continue
        for pname, param in module.named_parameters(recurse=False):
            if pname.startswith("weight"):
                scheme(param)
            elif pname.startswith("bias"):
                param.zero_()
    return model
