"""DataBundle: the tensors of every split plus the fitted preprocessing, ready for a model."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from honed.data.preprocess import Preprocessor


@dataclass
class Split:
    x: torch.Tensor
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

    @property
    def labels(self) -> list[str] | None:
        return self.preprocessor.labels.names if self.preprocessor.labels else None
