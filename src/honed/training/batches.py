"""Batching in-memory tensors: a seeded permutation per epoch, sliced into batches.

Cheaper than a DataLoader for data that already sits in tensors, which is all
of honed's preprocessed data. For full-batch `gd` an epoch is one step made of
chunks whose gradients add up to the full-batch gradient.

Token batches are trimmed to their own longest text. With `bucketing`, texts of
similar length share a batch (the "sortish" order of fastai and torchtext's
BucketIterator): the shuffled rows are sorted by length within pools of 50 batches,
cut into batches, and the batches shuffled again, so little padding is left to compute.
"""

from __future__ import annotations

import math
from typing import Iterator

import torch

from honed.data.bundle import trim_padding

POOL_BATCHES = 50


class Batches:
    def __init__(self, x: torch.Tensor, y: torch.Tensor, batch_size: int, shuffle: bool, seed: int,
                 full_batch: bool = False, bucketing: bool = False) -> None:
        self.x, self.y = x, y
        self.batch_size = min(batch_size, len(y))
        self.shuffle = shuffle and not full_batch
        self.full_batch = full_batch
        self.generator = torch.Generator().manual_seed(seed)
        tokens = not x.is_floating_point() and x.dim() == 2
        self.lengths = (x != 0).sum(dim=1).cpu() if bucketing and tokens and not full_batch else None

    @property
    def steps_per_epoch(self) -> int:
        return 1 if self.full_batch else math.ceil(len(self.y) / self.batch_size)

    def epoch(self) -> Iterator[list[tuple[torch.Tensor, torch.Tensor]]]:
        """Yields one list of (x, y) chunks per optimizer step."""
        batches = ((trim_padding(self.x[idx]), self.y[idx]) for idx in self.order())
        if self.full_batch:
            yield list(batches)
            return
        for chunk in batches:
            yield [chunk]

    def order(self) -> Iterator[torch.Tensor | slice]:
        """Row indices (or slices) of each batch of one epoch."""
        n, size = len(self.y), self.batch_size
        if not self.shuffle:
            yield from (slice(start, start + size) for start in range(0, n, size))
            return
        perm = torch.randperm(n, generator=self.generator)
        if self.lengths is None:
            yield from (perm[start : start + size].to(self.x.device) for start in range(0, n, size))
            return
        pool = size * POOL_BATCHES
        batches = []
        for start in range(0, n, pool):
            rows = perm[start : start + pool]
            rows = rows[torch.argsort(self.lengths[rows], stable=True)]
            batches += [rows[i : i + size] for i in range(0, len(rows), size)]
        for b in torch.randperm(len(batches), generator=self.generator).tolist():
            yield batches[b].to(self.x.device)
