"""Seeded splits carved from a training set, stratified for classification.

Stratified: each class gives the same share of its rows (largest remainders decide
the rounding), so class proportions hold in both parts. Written out here rather than
imported because scikit-learn's import alone costs about a second of every run.
"""

from __future__ import annotations

import logging

import numpy as np

from honed.data.labels import check_label_sizes
from honed.data.raw import RawSplit
from honed.errors import UserError, listed

log = logging.getLogger("honed")


def carve(split: RawSplit, fraction: float, seed: int, stratify: bool, what: str) -> tuple[RawSplit, RawSplit]:
    """(rest, carved): `fraction` of `split` carved off, stratified on the labels if asked."""
    n = len(split)
    n_carved = int(round(n * fraction))
    if n_carved == 0:
        raise UserError(f"data has {n} rows: too few to carve a {what} split of {fraction:.0%}")
    if n - n_carved < 1:
        raise UserError(f"data has {n} rows: nothing left for training after the {what} split")
    rng = np.random.default_rng(seed)
    carved = stratified_pick(split.y, n_carved, rng, what) if stratify else rng.permutation(n)[:n_carved]
    mask = np.zeros(n, dtype=bool)
    mask[carved] = True
    return split.take(np.flatnonzero(~mask)), split.take(np.flatnonzero(mask))


def stratified_pick(labels: np.ndarray, k: int, rng: np.random.Generator, what: str = "carved") -> np.ndarray:
    """k row indices whose class counts are proportional to the classes' sizes. A class with a single row
    cannot be in both parts: it stays out of the pick (it trains; gradient boosting trains on such a row too),
    said in the log; a table where most classes have a single row (an identifier for a target) is refused."""
    # codes by value, not a fixed-width string array: one 10-million-character label must not cost
    # rows x 10 million x 4 bytes
    codes: dict[str, int] = {}
    first = np.array([codes.setdefault(str(v), len(codes)) for v in labels.tolist()], dtype=np.int64)
    check_label_sizes(codes)
    classes = np.array(sorted(codes), dtype=object)
    rank = np.empty(len(codes), dtype=np.int64)
    rank[[codes[c] for c in classes]] = np.arange(len(codes))
    inverse = rank[first]  # codes in sorted order of the labels' text
    counts = np.bincount(inverse, minlength=len(classes))
    single = np.flatnonzero(counts < 2)
    if 2 * len(single) > len(classes):
        raise UserError(f"{len(single):,} of {len(classes):,} class(es) have a single row ({listed(classes[single])}): "
                        "carving a split needs most classes at least twice; drop or merge those rows")
    if len(single):
        log.info(f"data: {len(single):,} class(es) with a single row ({listed(classes[single])}) train but are not "
                 f"in the {what} split")
        counts[single] = 0
    exact = counts * k / counts.sum()
    take = np.floor(exact).astype(int)
    short = k - take.sum()
    if short:  # hand the remaining rows to the classes with the largest remainders
        take[np.argsort(-(exact - take), kind="stable")[:short]] += 1
    picked = [rng.permutation(np.flatnonzero(inverse == c))[:t] for c, t in enumerate(take)]
    return np.concatenate(picked)


def fold_ids(labels: np.ndarray | None, count: int, seed: int, groups: np.ndarray | None = None,
             rows: int | None = None, rare_ok: bool = False) -> np.ndarray:
    """The fold (0..count-1) of every row: stratified on `labels` (each class dealt round-robin over the
    folds from a seeded shuffle, as scikit-learn's StratifiedKFold keeps class shares), or, with `groups`,
    whole groups dealt to the fold with the fewest rows so far (no group sits in two folds), or with neither
    (a regression target), `rows` rows dealt from a seeded shuffle. A class with fewer rows than folds is
    refused (each fold of `honed cv` is scored alone and must hold every class) unless `rare_ok`: its rows
    then sit in different folds, and the folds without one still train on all of them (bagging)."""
    n = len(labels) if labels is not None else len(groups) if groups is not None else rows
    if n is None:
        raise ValueError("fold_ids needs labels, groups or a number of rows")
    rng = np.random.default_rng(seed)
    folds = np.empty(n, dtype=np.int64)
    if groups is not None:
        codes: dict[str, int] = {}
        group = np.array([codes.setdefault(str(g), len(codes)) for g in groups.tolist()], dtype=np.int64)
        if len(codes) < count:
            raise UserError(f"--folds {count}: the group column has only {len(codes)} groups; use at most that many folds")
        sizes = np.bincount(group)
        filled = np.zeros(count, dtype=np.int64)
        fold_of_group = np.empty(len(codes), dtype=np.int64)
        order = rng.permutation(len(codes))
        for g in order[np.argsort(-sizes[order], kind="stable")]:  # largest groups first, ties shuffled
            fold_of_group[g] = int(np.argmin(filled))
            filled[fold_of_group[g]] += sizes[g]
        return fold_of_group[group]
    if labels is None:
        folds[rng.permutation(n)] = np.arange(n) % count
        return folds
    codes = {}
    label = np.array([codes.setdefault(str(v), len(codes)) for v in labels.tolist()], dtype=np.int64)
    counts = np.bincount(label)
    if counts.min() < count and not rare_ok:
        rarest = [c for c, i in codes.items() if counts[i] == counts.min()][0]
        if counts.min() < 2:  # no number of folds has it both train and validate
            raise UserError(f"--folds {count}: class {rarest!r} has a single training row; every fold's model must "
                            "know each class it validates: merge or drop that class's rows")
        raise UserError(f"--folds {count}: class {rarest!r} has only {counts.min()} training rows; "
                        f"use at most {counts.min()} folds (or merge rare classes)")
    start = 0
    for c in range(len(codes)):  # each class dealt round-robin, continuing where the last class stopped
        rows = rng.permutation(np.flatnonzero(label == c))
        folds[rows] = (start + np.arange(len(rows))) % count
        start = (start + len(rows)) % count
    return folds
