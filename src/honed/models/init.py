"""Weight initialization by name: weights drawn by the scheme, biases set to zero."""

from __future__ import annotations

import math

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


@INITS.register("dirac")
def _dirac(weight: torch.Tensor) -> None:
    """PyTorch's own draw, then a convolution's first filters pass their input channel through unchanged
    (airbench's identity initialization): a deep stack starts close to a shallow one, as a residual would."""
    nn.init.kaiming_uniform_(weight, a=math.sqrt(5))  # what nn.Linear and nn.Conv2d draw by default
    if weight.dim() > 2:
        nn.init.dirac_(weight[: weight.shape[1]])


INITIALIZED = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.LSTM, nn.GRU)


@torch.no_grad()
def initialize(model: nn.Module, name: str, embedding: str = "default", embedding_scale: float = 0.05) -> nn.Module:
    """Apply scheme `name` to every dense, conv and recurrent weight and zero their biases;
    `embedding="uniform"` draws embeddings from U(-scale, scale) as Keras does; "zeros" starts them at zero
    (a linear model on text: a convex problem, started where logistic regression starts).

    Fan-based schemes make no sense for lookup tables, so embeddings have their own choice.
    A small uniform start keeps rare, barely trained words from adding noise to pooled averages.
    """
    if embedding == "zeros":
        for module in model.modules():
            if isinstance(module, (nn.Embedding, nn.EmbeddingBag)):
                module.weight.zero_()
    if embedding == "uniform":
        for module in model.modules():
            if isinstance(module, (nn.Embedding, nn.EmbeddingBag)):
                nn.init.uniform_(module.weight, -embedding_scale, embedding_scale)
                # id 0 pads every honed table (a bag never reads it: see models/bag.py)
                padding = 0 if module.padding_idx is None and isinstance(module, nn.EmbeddingBag) else module.padding_idx
                if padding is not None:
                    module.weight[padding].zero_()
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
