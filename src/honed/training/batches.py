"""Batching in-memory tensors: a seeded permutation per epoch, sliced into batches.

Cheaper than a DataLoader for data that already sits in tensors, which is all
of honed's preprocessed data. Each epoch's order depends only on the seed and the
epoch number (as DistributedSampler's `set_epoch` does), so a resumed run and every
distributed worker compute the same order without sharing state.

An optimizer step is a list of (x, y, weight) chunks whose weighted mean losses add
up to the mean loss over the step's rows: one chunk per step normally, `accumulate`
batches per step with gradient accumulation, and every batch for full-batch `gd`.
Under torch.distributed each worker holds its share of every batch (see distributed.share).

Token batches are trimmed to their own longest text. With `bucketing`, texts of
similar length share a batch (the "sortish" order of fastai and torchtext's
BucketIterator): the shuffled rows are sorted by length within pools of 50 batches,
cut into batches, and the batches shuffled again, so little padding is left to compute.

With `poisson` (train.privacy), a step's rows are drawn independently (each with rate 1 / batches per
epoch): batches vary in size and may be empty, as the privacy accounting requires.
"""

from __future__ import annotations

import math
from typing import Iterator

import torch

from honed.data.bundle import trim_padding
from honed.data.tokens import row_lengths
from honed.training.distributed import World, share

POOL_BATCHES = 50
Chunk = tuple[torch.Tensor, torch.Tensor, float]


class Batches:
    def __init__(self, x: torch.Tensor, y: torch.Tensor, batch_size: int, shuffle: bool, seed: int,
                 full_batch: bool = False, bucketing: bool = False, accumulate: int = 1,
                 world: World = World(), poisson: bool = False) -> None:
        self.x, self.y = x, y
        self.poisson = poisson  # each row joins each step with rate 1 / batches_per_epoch (train.privacy)
        self.batch_size = min(batch_size, len(y))
        self.shuffle = shuffle and not full_batch
        self.full_batch = full_batch
        self.seed = seed
        self.accumulate = accumulate
        self.world = world
        self._full: tuple[list[Chunk], int] | None = None  # full-batch: the one step's chunks, kept
        tokens = not x.is_floating_point() and x.dim() == 2
        self.lengths = row_lengths(x).cpu() if bucketing and tokens and not full_batch else None

    @property
    def batches_per_epoch(self) -> int:
        return math.ceil(len(self.y) / self.batch_size)

    @property
    def steps_per_epoch(self) -> int:
        return 1 if self.full_batch else math.ceil(self.batches_per_epoch / self.accumulate)

    def epoch(self, number: int = 1, skip_steps: int = 0) -> Iterator[tuple[list[Chunk], int]]:
        """Yields (chunks, rows of the whole step) per optimizer step of epoch `number`, from step `skip_steps` on."""
        per_step = self.batches_per_epoch if self.full_batch else self.accumulate
        if self.full_batch and not skip_steps:
            # one step of the same chunks every epoch: gathered once, the same tensors handed out again
            # (a full-batch model may keep what it derived from them, see models/layers.TokenPool)
            if self._full is None:
                rows = list(self.order(number))
                total = sum(len(r) for r in rows)
                self._full = ([self.chunk(r, total) for r in rows], total)
            yield self._full
            return
        order = list(self.order(number))
        for first in range(skip_steps * per_step, len(order), per_step):
            rows = order[first : first + per_step]
            total = sum(len(r) for r in rows)
            yield [self.chunk(r, total) for r in rows if len(r)], total  # Poisson sampling may draw no row

    def chunk(self, rows: torch.Tensor, step_rows: int) -> Chunk:
        mine, weight = share(rows, self.world)
        mine = mine.to(self.x.device)
        return trim_padding(self.x[mine]), self.y[mine], weight * len(rows) / step_rows

    def order(self, number: int) -> Iterator[torch.Tensor]:
        """Row indices of each batch of epoch `number`."""
        n, size = len(self.y), self.batch_size
        if self.poisson:  # as DP-SGD's accounting assumes: independent draws, a batch of batch_size on average
            generator = torch.Generator().manual_seed(self.seed + number)
            rate = 1.0 / self.batches_per_epoch
            for _ in range(self.batches_per_epoch):
                yield torch.nonzero(torch.rand(n, generator=generator) < rate).squeeze(1)
            return
        if not self.shuffle:
            yield from (torch.arange(start, min(start + size, n)) for start in range(0, n, size))
            return
        generator = torch.Generator().manual_seed(self.seed + number)
        perm = torch.randperm(n, generator=generator)
        if self.lengths is None:
            yield from (perm[start : start + size] for start in range(0, n, size))
            return
        pool = size * POOL_BATCHES
        batches = []
        for start in range(0, n, pool):
            rows = perm[start : start + pool]
            rows = rows[torch.argsort(self.lengths[rows], stable=True)]
            batches += [rows[i : i + size] for i in range(0, len(rows), size)]
        for b in torch.randperm(len(batches), generator=generator).tolist():
            yield batches[b]
