"""Bagging over validation folds (`model.bags: K`): K copies of the recipe's model, each trained on all
training rows but one fold and stopped on that fold, answering the mean of their outputs. Every row trains
K-1 of the members, every row validates one (the out-of-fold score is the run's validation score), and the
average of K models that saw different rows varies less than any one of them: what AutoGluon and RealMLP's
authors do with their MLPs on small tables."""

from __future__ import annotations

import torch
from torch import nn


class Bagged(nn.Module):
    """K models with the same inputs and outputs; evaluated, the mean of their outputs (logits or values), or
    their weighted mean (model.members: an ensemble of differently set models, each possibly a bag itself)."""

    def __init__(self, members: list[nn.Module], weights: list[float] | None = None) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)
        self.weights = weights  # None: equal

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.weights is None:
            return torch.stack([member(x) for member in self.members]).mean(dim=0)
        return sum(w * member(x) for w, member in zip(self.weights, self.members))
