"""What a data source hands over: raw inputs and targets, before any fitting."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Optional, Sequence

import numpy as np

Kind = Literal["table", "text", "chat"]


@dataclass
class RawSplit:
    """Inputs (feature matrix, a table's columns as a DataFrame, or list of texts) with their targets."""

    x: np.ndarray | list[str] | object
    y: np.ndarray
    groups: Optional[np.ndarray] = None  # data.group_column's value per row: rows of a group share a fold

    def __len__(self) -> int:
        return len(self.y)

    def take(self, idx: np.ndarray) -> "RawSplit":
        groups = None if self.groups is None else self.groups[idx]
        if isinstance(self.x, np.ndarray):
            return RawSplit(self.x[idx], self.y[idx], groups)
        if hasattr(self.x, "iloc"):  # a table's columns (pandas DataFrame)
            return RawSplit(self.x.iloc[idx].reset_index(drop=True), self.y[idx], groups)
        return RawSplit([self.x[i] for i in idx], self.y[idx], groups)


@dataclass
class RawData:
    """A source's output: a train split, maybe a test split, and what they are."""

    kind: Kind
    task: Literal["regression", "classification", "language_modeling"]
    train: RawSplit
    test: Optional[RawSplit] = None
    feature_names: Sequence[str] = field(default_factory=list)
    image_shape: Optional[tuple[int, ...]] = None
