"""What a run learns besides its labels: the extension point `honed.train(..., objective=...)` takes."""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Protocol

import torch

if TYPE_CHECKING:
    from honed.data import DataBundle
    from honed.recipe.schema import DataSpec

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class Objective(Protocol):
    """Extra training targets and the loss that reads them (distillation's Teacher is one).

    `targets` returns the training split's targets as (rows, 1 + k): each label, then k more values
    that travel with it through shuffling, batching and distributed shares; validation and test keep
    plain labels. `loss` wraps the recipe's own (hard) loss into one that reads both.
    """

    def targets(self, data: DataSpec, bundle: DataBundle) -> torch.Tensor: ...

    def loss(self, hard: LossFn, task: str) -> LossFn: ...
