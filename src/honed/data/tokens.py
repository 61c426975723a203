"""TokenRows: the token ids of many texts, stored back to back, padded only when a batch is taken.

Texts differ a lot in length (an IMDB review with its hashed n-grams: 600 ids on average, 7,500 at
most), so a padded (texts, longest) matrix would be mostly zeros: gigabytes for IMDB. Stored here as
one int32 vector plus row offsets; indexing (an int, a slice, or row indices) returns those rows as
an int64 tensor right-padded with 0 to the longest of them, which is what every model takes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True, eq=False)
class TextBatch:
    """A batch of right-padded token ids with each text's sentence vector beside them
    (data.encoder_features): what TokenRows with features hand out instead of the ids alone."""

    ids: torch.Tensor  # (rows, width) int64, right-padded with 0
    features: torch.Tensor  # (rows, hidden) float32

    dtype = torch.int64  # of the ids: code that tells tokens from feature tables reads it

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, key) -> "TextBatch":
        return TextBatch(self.ids[key], self.features[key])

    @property
    def shape(self) -> torch.Size:
        return self.ids.shape

    @property
    def device(self) -> torch.device:
        return self.ids.device

    def dim(self) -> int:
        return 2

    def is_floating_point(self) -> bool:
        return False

    def to(self, device) -> "TextBatch":
        return TextBatch(self.ids.to(device), self.features.to(device))


class TokenRows:
    dtype = torch.int64  # of the batches it hands out

    def __init__(self, values: torch.Tensor, offsets: torch.Tensor, features: torch.Tensor | None = None) -> None:
        self.values = values  # int32 ids of all rows, back to back
        self.offsets = offsets  # int64, len(rows) + 1: row i is values[offsets[i]:offsets[i + 1]]
        self.features = features  # (rows, hidden) sentence vectors (data.encoder_features), or None

    @classmethod
    def from_lists(cls, rows: list[list[int]] | list[np.ndarray]) -> "TokenRows":
        lengths = np.fromiter((len(r) for r in rows), dtype=np.int64, count=len(rows))
        values = np.concatenate([np.asarray(r, dtype=np.int32) for r in rows]) if rows else np.zeros(0, np.int32)
        return cls.from_arrays(values, lengths)

    @classmethod
    def from_arrays(cls, values: np.ndarray, lengths: np.ndarray) -> "TokenRows":
        offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        return cls(torch.from_numpy(values.astype(np.int32, copy=False)), torch.from_numpy(offsets))

    @classmethod
    def from_padded(cls, x: torch.Tensor) -> "TokenRows":
        """From a right-padded (rows, width) matrix: each row up to its last non-zero id."""
        nonzero = x != 0
        width = x.shape[1]
        lengths = torch.where(nonzero.any(dim=1), width - nonzero.flip(1).int().argmax(dim=1), 0)
        mask = torch.arange(width).unsqueeze(0) < lengths.unsqueeze(1)
        return cls(x[mask].to(torch.int32), torch.cat([torch.zeros(1, dtype=torch.int64), lengths.cumsum(0)]))

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def lengths(self) -> torch.Tensor:
        return self.offsets[1:] - self.offsets[:-1]

    @property
    def device(self) -> torch.device:
        return self.values.device

    @property
    def shape(self) -> tuple[int, int]:
        return len(self), int(self.lengths.max()) if len(self) else 0

    def dim(self) -> int:
        return 2

    def is_floating_point(self) -> bool:
        return False

    def to(self, device) -> "TokenRows":
        return TokenRows(self.values.to(device), self.offsets.to(device),
                         None if self.features is None else self.features.to(device))

    def with_features(self, features: torch.Tensor) -> "TokenRows":
        if len(features) != len(self):
            raise ValueError(f"{len(features)} sentence vectors for {len(self)} texts")
        return TokenRows(self.values, self.offsets, features)

    def __getitem__(self, key) -> torch.Tensor | TextBatch:
        """The rows `key` as padded ids, or as a TextBatch when the rows carry sentence vectors."""
        if isinstance(key, int):
            return self[[key]][0]
        ids, rows = self._padded(key)
        return ids if self.features is None else TextBatch(ids, self.features[rows.to(self.features.device)])

    def _padded(self, key) -> tuple[torch.Tensor, torch.Tensor]:
        if isinstance(key, slice):
            rows = torch.arange(len(self), device=self.device)[key]
        else:
            rows = torch.as_tensor(key, device=self.device)
            if rows.dtype == torch.bool:
                rows = rows.nonzero().squeeze(1)
        starts = self.offsets[rows]
        lengths = self.offsets[rows + 1] - starts
        width = max(1, int(lengths.max())) if len(rows) else 1
        steps = torch.arange(width, device=self.device)
        real = steps.unsqueeze(0) < lengths.unsqueeze(1)
        where = (starts.unsqueeze(1) + steps).masked_fill_(~real, 0).clamp_(max=max(0, len(self.values) - 1))
        if len(self.values) == 0:
            return torch.zeros(len(rows), width, dtype=torch.int64, device=self.device), rows
        return self.values[where].long().masked_fill_(~real, 0), rows

    def document_frequency(self, vocab_size: int) -> torch.Tensor:
        """How many rows hold each id at least once (int64, one count per id)."""
        values = self.values.long()
        rows = torch.repeat_interleave(torch.arange(len(self), device=self.device), self.lengths)
        pairs = torch.unique(rows * vocab_size + values)  # each (row, id) once
        return torch.bincount(pairs % vocab_size, minlength=vocab_size)

    def __repr__(self) -> str:
        vectors = "" if self.features is None else f", {self.features.shape[1]}-d sentence vectors"
        return f"TokenRows({len(self)} rows, {len(self.values)} ids{vectors})"


def row_lengths(x) -> torch.Tensor:
    """Real tokens per row, for TokenRows or a right-padded matrix."""
    return x.lengths if isinstance(x, TokenRows) else (x != 0).sum(dim=1)
