"""Batching in-memory tensors: a seeded permutation per epoch, sliced into batches.

Cheaper than a DataLoader for data that already sits in tensors, which is all
of honed's preprocessed data. For full-batch `gd` an epoch is one step made of
chunks whose gradients add up to the full-batch gradient.
"""

from __future__ import annotations

import math
from typing import Iterator

import torch


class Batches:
    def __init__(self, x: torch.Tensor, y: torch.Tensor, batch_size: int, shuffle: bool, seed: int,
                 full_batch: bool = False) -> None:
        self.x, self.y = x, y
        self.batch_size = min(batch_size, len(y))
        self.shuffle = shuffle and not full_batch
        self.full_batch = full_batch
        self.generator = torch.Generator().manual_seed(seed)

    @property
    def steps_per_epoch(self) -> int:
        return 1 if self.full_batch else math.ceil(len(self.y) / self.batch_size)

    def epoch(self) -> Iterator[list[tuple[torch.Tensor, torch.Tensor]]]:
        """Yields one list of (x, y) chunks per optimizer step."""
        n = len(self.y)
        order = torch.randperm(n, generator=self.generator) if self.shuffle else None
        chunks = []
        for start in range(0, n, self.batch_size):
            if order is None:
                chunk = (self.x[start : start + self.batch_size], self.y[start : start + self.batch_size])
            else:
                idx = order[start : start + self.batch_size].to(self.x.device)
                chunk = (self.x[idx], self.y[idx])
            if self.full_batch:
                chunks.append(chunk)
            else:
                yield [chunk]
        if self.full_batch:
            yield chunks
