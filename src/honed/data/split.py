"""Seeded (stratified for classification) splits carved from a training set."""

from __future__ import annotations

import numpy as np
from sklearn.model_selection import train_test_split

from honed.data.raw import RawSplit
from honed.errors import UserError


def carve(split: RawSplit, fraction: float, seed: int, stratify: bool, what: str) -> tuple[RawSplit, RawSplit]:
    """(rest, carved): `fraction` of `split` carved off, stratified on the labels if asked."""
    n = len(split)
    n_carved = int(round(n * fraction))
    if n_carved == 0:
        raise UserError(f"data has {n} rows: too few to carve a {what} split of {fraction:.0%}")
    if n - n_carved < 1:
        raise UserError(f"data has {n} rows: nothing left for training after the {what} split")
    labels = split.y if stratify else None
    if stratify and np.unique(split.y, return_counts=True)[1].min() < 2:
        labels = None  # a class with one example cannot be stratified; fall back to a plain split
    idx = np.arange(n)
    rest, carved = train_test_split(idx, test_size=n_carved, random_state=seed, stratify=labels)
    return split.take(np.sort(rest)), split.take(np.sort(carved))
