"""Bagging over validation folds (`model.bags: K`), through the one loop: the training rows (with the validation
rows the split carved, unless `honed cv` holds them out as its fold) are dealt into K folds; member i trains on
every fold but i and early-stops on fold i; the members become one `models.bagged.Bagged`. Each row is
predicted once by the member that never trained on it: that out-of-fold output is the run's validation score,
the honest one (the whole bag has seen every row)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Callable

import numpy as np
import torch
from torch import nn

from honed.data import DataBundle
from honed.data.bundle import Split
from honed.data.split import fold_ids
from honed.errors import UserError
from honed.evaluation import outputs_of
from honed.models.bagged import Bagged
from honed.training.loop import Trainer

log = logging.getLogger("honed")

SEED_OFFSET = 104_729  # the folds' shuffle: apart from the validation carve's and honed cv's seeds


@dataclass
class Bag:
    model: Bagged
    last: Trainer  # the last member's trainer, its clock and counts summed over every member
    rows: Split  # every row a member trained or validated on
    out_of_fold: torch.Tensor  # each row's output from the member that did not train on it
    members: list[dict]  # per member: epochs run, best epoch, validation rows


def bag_rows(bundle: DataBundle, merge_val: bool) -> Split:
    """The rows the members share: the training rows, and the validation rows too when `merge_val`."""
    if not merge_val or bundle.val is None:
        return bundle.train
    return Split(torch.cat([bundle.train.x, bundle.val.x]), torch.cat([bundle.train.y, bundle.val.y]))


def deal(rows: Split, task: str, bags: int, seed: int, names: list[str] | None = None) -> torch.Tensor:
    """Each row's fold (0..bags-1), stratified by class for classification. A class with fewer rows than
    folds (a wine table's 4 rows of its best grade) has each row in its own fold, said in the log: every
    member still trains on all but at most one of them."""
    if len(rows) < 2 * bags:
        raise UserError(f"model.bags = {bags} needs at least {2 * bags} training rows (got {len(rows)})")
    labels = rows.y.numpy() if task != "regression" and rows.y.ndim == 1 else None
    if labels is not None:
        counts = np.bincount(labels.astype(np.int64))
        names = names or [str(c) for c in range(len(counts))]
        rare = [f"{names[c]!r} ({n})" for c, n in enumerate(counts) if 0 < n < bags]
        if rare:
            log.info(f"bags: {len(rare)} class(es) with fewer training rows than the {bags} folds, each row in a fold "
                     f"of its own: {', '.join(rare[:5])}")
    return torch.from_numpy(fold_ids(labels, bags, seed + SEED_OFFSET, rows=len(rows), rare_ok=True))


def train_bag(bundle: DataBundle, bags: int, seed: int, merge_val: bool,
              start: Callable[[DataBundle, int], Trainer], run: Callable[[Trainer], None]) -> Bag:
    """Train `bags` members: `start(member_bundle, i)` prepares member i's trainer, `run` runs the loop."""
    rows = bag_rows(bundle, merge_val)
    folds = deal(rows, bundle.task, bags, seed, bundle.labels)
    members: list[nn.Module] = []
    records: list[dict] = []
    out_of_fold: torch.Tensor | None = None
    seconds, samples = 0.0, 0
    for i in range(bags):
        held = folds == i
        own = replace(bundle, train=Split(rows.x[~held], rows.y[~held]), val=Split(rows.x[held], rows.y[held]))
        trainer = start(own, i)
        run(trainer)
        outputs = trainer.validated_outputs(own.val)
        outputs = outputs_of(trainer.model, own.val.x) if outputs is None else outputs
        if out_of_fold is None:
            out_of_fold = torch.empty((len(rows), *outputs.shape[1:]), dtype=outputs.dtype)
        out_of_fold[held] = outputs
        seconds, samples = seconds + trainer.train_seconds, samples + trainer.samples_seen
        members.append(trainer.model)
        records.append({"epochs": trainer.epoch, "best_epoch": trainer.best_epoch, "val_rows": int(held.sum())})
    trainer.train_seconds, trainer.samples_seen = seconds, samples
    return Bag(Bagged(members), trainer, rows, out_of_fold, records)
