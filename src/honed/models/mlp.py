"""Multi-layer perceptron: hidden dense layers with an activation and dropout.

On tables, `model.numeric_embedding: periodic` first turns each scaled number into a small vector
(Gorishniy et al., "On Embeddings for Numerical Features in Tabular Deep Learning", NeurIPS 2022, the
PLR-lite form): cos and sin of the number at k learned frequencies per column, one linear layer shared by
the columns, ReLU, and the number itself beside them (RealMLP's PBLD embedding keeps it too: Holzmueller et
al., "Better by Default", NeurIPS 2024). An MLP on raw numbers draws smooth functions of each; the
frequencies let it draw the sharp, threshold-like ones trees find (prices by latitude, incomes at a bracket),
and the kept number the smooth and linear ones without having to rebuild them from waves.
`piecewise` instead places each number in quantile bins (PLE, the same paper; TabM's default): thresholds come
easier, smooth functions harder; below 10,000 training rows it validated better on most tables tried.

Then every input is multiplied by a learned per-input scale (RealMLP's scaling layer, starting at 1): an
input the target does not need can be turned down as a whole, which a table of many weak columns needs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import math
from statistics import NormalDist

import torch
from torch import nn

from honed.errors import UserError
from honed.models import MODELS, Shape
from honed.models.layers import BitsDropout, Head, dense_stack

if TYPE_CHECKING:
    from honed.recipe.schema import ModelSpec


MAX_ROW_WIDTH = 2_000_000  # first-layer inputs per row, members included: 512 rows of it are 4 GB of float32
QUANTILE_BOUND = 5.2  # |x| of the quantile transform's output (ranks clipped to [1e-7, 1 - 1e-7])
EMBEDDINGS = ("periodic", "piecewise")


class PeriodicEmbedding(nn.Module):
    """(N, F) numbers -> (N, F * (1 + dim)): per column [x, ReLU(W [cos 2pi c x, sin 2pi c x] + b)],
    c ~ N(0, scale^2). Keeping x: lower validation loss on all seven tables with embeddings tried (census
    income, housing, and five public tables split from their training rows), e.g. housing RMSE 0.461 -> 0.456."""

    def __init__(self, features: int, frequencies: int, scale: float, dim: int) -> None:
        super().__init__()
        # drawn as a fill (skipped on the meta device, where torch.randn imports the compiler); torch.randn's values
        self.frequencies = nn.Parameter(torch.empty(features, frequencies).normal_(0.0, scale))
        self.linear = nn.Linear(2 * frequencies, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        angles = 2 * math.pi * self.frequencies * x.unsqueeze(-1)  # (N, F, k)
        waves = torch.relu(self.linear(torch.cat([torch.cos(angles), torch.sin(angles)], dim=-1)))  # (N, F, dim)
        return torch.cat([x.unsqueeze(-1), waves], dim=-1).flatten(1)


class PiecewiseLinearEmbedding(nn.Module):
    """(N, F) numbers -> (N, F * (1 + dim)): per column [x, ReLU(W_f ple(x) + b_f)], where ple(x) has one
    entry per bin: 0 left of the bin, 1 right of it, the position inside it (Gorishniy et al. 2022, PLE with
    quantile bins). The numbers reach the model through a normal quantile transform fitted on the training rows,
    so bins at the standard normal's quantiles *are* the training rows' quantile bins: equally filled, fixed,
    nothing to store. Each column has its own W_f: a bin's meaning is the column's. A step at any bin edge
    is one weight away, which is how a tree splits (the telecom churn table's "more than 264 day minutes")."""

    def __init__(self, features: int, bins: int, dim: int) -> None:
        super().__init__()
        edges = [-QUANTILE_BOUND, *(NormalDist().inv_cdf(i / bins) for i in range(1, bins)), QUANTILE_BOUND]
        self.register_buffer("left", torch.tensor(edges[:-1]))
        self.register_buffer("width", torch.tensor([b - a for a, b in zip(edges, edges[1:])]))
        bound = 1 / math.sqrt(bins)  # nn.Linear's own initialization, per column
        self.weight = nn.Parameter(torch.empty(features, bins, dim).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(features, dim).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        position = ((x.unsqueeze(-1) - self.left) / self.width).clamp(0, 1)  # (N, F, bins)
        parts = torch.relu(torch.einsum("nfb,fbd->nfd", position, self.weight) + self.bias)  # (N, F, dim)
        return torch.cat([x.unsqueeze(-1), parts], dim=-1).flatten(1)


def number_embedding(spec: ModelSpec, features: int) -> nn.Module:
    """model.numeric_embedding's module for the table's `features` scaled numbers."""
    if spec.numeric_embedding == "piecewise":
        return PiecewiseLinearEmbedding(features, spec.bins, spec.numeric_dim)
    return PeriodicEmbedding(features, spec.frequencies, spec.frequency_scale, spec.numeric_dim)


class MemberHeads(nn.Module):
    """One linear head per ensemble member: (N, k, H) -> (N, k) for one output, else (N, k, O)."""

    def __init__(self, members: int, n_in: int, n_out: int) -> None:
        super().__init__()
        bound = 1 / math.sqrt(n_in)  # nn.Linear's own initialization, per member
        self.weight = nn.Parameter(torch.empty(members, n_in, n_out).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.zeros(members, n_out))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        out = torch.einsum("nkh,kho->nko", h, self.weight) + self.bias
        return out.squeeze(-1) if out.shape[-1] == 1 else out


class TableMLP(nn.Module):
    """An MLP for tables: optionally the first `numeric` inputs embedded (periodic or piecewise), and optionally an ensemble
    of `members` MLPs in one (TabM-mini, Gorishniy et al., ICLR 2025): the members share every hidden weight
    and differ by a random +-1 scale of each input and their own head, so k models cost about one. While
    training the model answers each member's outputs (N, k, ...) and the loss is their mean; evaluated, it
    answers the members' mean."""

    def __init__(self, spec: ModelSpec, shape: Shape) -> None:
        super().__init__()
        self.numeric = shape.numeric_dim if spec.numeric_embedding in EMBEDDINGS else 0
        self.embed = number_embedding(spec, self.numeric) if self.numeric else None
        width = self.numeric * (1 + spec.numeric_dim) + shape.input_dim - self.numeric
        if width * spec.ensemble > MAX_ROW_WIDTH:  # each row of a batch is this wide in the first layer's input
            raise UserError(f"the table gives {shape.input_dim:,} inputs ({self.numeric:,} numbers embedded "
                            f"{1 + spec.numeric_dim} wide) for {spec.ensemble} ensemble member(s): {width * spec.ensemble:,} "
                            f"values per row, more than {MAX_ROW_WIDTH:,}; set model.numeric_embedding=none, a smaller "
                            "model.numeric_dim or model.ensemble, or fewer columns (data.columns)")
        self.members = spec.ensemble
        # Lower validation loss on all six tables tried (e.g. churn 0.269 -> 0.265, census income 0.297 -> 0.296).
        self.feature_scale = nn.Parameter(torch.ones(width))
        signs = torch.randint(0, 2, (self.members, width), generator=torch.Generator().manual_seed(0),
                              device="cpu") * 2 - 1
        self.register_buffer("scales", signs.float() if self.members > 1 else torch.ones(1, width))
        sizes = [width, *spec.hidden]
        self.body = dense_stack(sizes, spec.activation, spec.dropout, BitsDropout)
        self.head = MemberHeads(self.members, sizes[-1], shape.output_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.embed is not None:
            x = torch.cat([self.embed(x[:, : self.numeric]), x[:, self.numeric:]], dim=1)
        x = (x * self.feature_scale).unsqueeze(1) * self.scales  # (N, k, width): nn.Linear reads the last dim
        out = self.head(self.body(x))
        return out if self.training and self.members > 1 else out.mean(dim=1)


@MODELS.register("mlp")
def build(spec: ModelSpec, shape: Shape) -> nn.Module:
    if shape.input_kind != "features":
        raise UserError("model.name = 'mlp' needs numeric features; for text use bag, cnn or rnn")
    if spec.numeric_embedding == "auto":  # a choice made from the training rows, before any model is built
        raise ValueError("model.numeric_embedding = auto must be resolved first (honed.api.sized_for_rows)")
    if spec.numeric_embedding in EMBEDDINGS and (not shape.numeric_dim or shape.image_shape):
        raise UserError(f"model.numeric_embedding = {spec.numeric_embedding} needs a table with numeric columns "
                        "(data.source = tabular or sklearn tables), not images")
    if spec.numeric_embedding in EMBEDDINGS or spec.ensemble > 1:
        return TableMLP(spec, shape)
    sizes = [shape.input_dim, *spec.hidden]
    return nn.Sequential(dense_stack(sizes, spec.activation, spec.dropout), Head(sizes[-1], shape.output_dim))
