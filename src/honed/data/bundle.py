"""DataBundle: the tensors of every split plus the fitted preprocessing, ready for a model."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Optional, Sequence

import torch

from honed.data.preprocess import Preprocessor
from honed.data.tokens import TextBatch, TokenRows


def trim_padding(x: torch.Tensor) -> torch.Tensor:
    """A token batch without its trailing columns that are padding (id 0) in every row.

    Rows are right-padded to the longest text of the whole split; a batch only needs
    its own longest. Feature batches (floating point) pass through unchanged.
    """
    if isinstance(x, TextBatch):
        return TextBatch(trim_padding(x.ids), x.features)
    if x.is_floating_point() or x.dim() != 2 or x.shape[1] <= 1:
        return x
    used = (x != 0).any(dim=0).nonzero()
    width = int(used[-1]) + 1 if len(used) else 1
    return x[:, :width]


@dataclass
class Split:
    x: torch.Tensor | TokenRows  # features (rows, ...) or token ids
    y: torch.Tensor

    def __len__(self) -> int:
        return len(self.y)


@dataclass
class DataBundle:
    task: str  # regression | binary | multiclass
    input_kind: str  # features | tokens
    input_dim: int  # number of features, or vocabulary size
    output_dim: int
    train: Split
    val: Optional[Split]
    test: Split
    preprocessor: Preprocessor
    image_shape: Optional[tuple[int, ...]] = None
    test_texts: Optional[Sequence[str]] = None  # the test split's raw texts (the report shows its mistakes)

    @property
    def labels(self) -> list[str] | None:
        return self.preprocessor.labels.names if self.preprocessor.labels else None

    def with_train_targets(self, y: torch.Tensor) -> "DataBundle":
        """The same bundle with other training targets (e.g. labels with a teacher's outputs beside them)."""
        return replace(self, train=Split(self.train.x, y))
