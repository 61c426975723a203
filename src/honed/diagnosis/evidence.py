"""Everything a check may read about a run, each part computed on first use and then kept:

    recipe, summary, history, failure      the run's own files (no cost)
    bundle                                 the data re-read through the recipe (the preprocessing cache makes
                                           this a file read for text)
    loaded                                 (recipe, model with its weights, preprocessor), from the run folder
    probe                                  gradient and activation statistics over a few training batches
    range_test                             a short learning-rate range test around the rate the run used

A check that needs only the history costs nothing; the end of `honed train` runs exactly those
(`diagnose(ev, needs=("history",))`, through `end_of_training`), with no probe and no data read.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from pathlib import Path

from honed.recipe import Recipe
from honed import runfiles


@dataclass
class RunEvidence:
    recipe: Recipe
    summary: dict
    history: list[dict]
    run_dir: Path | None = None
    failure: dict | None = None  # failure.json: where a run stopped on a non-finite loss
    probes: bool = True  # False: checks that need probes or the data step aside
    profile: dict = field(default_factory=dict)  # preprocess.json's profile of the training inputs

    # --- the history, read -----------------------------------------------------------------------------
    def series(self, key: str) -> list[float]:
        return [float(r[key]) for r in self.history if key in r and r[key] is not None]

    def epochs_of(self, key: str) -> list[int]:
        """The epochs of series(key) (an epoch not validated, train.val_every, has no val_ values)."""
        return [int(r["epoch"]) for r in self.history if key in r and r[key] is not None and "epoch" in r]

    @property
    def epochs(self) -> list[int]:
        return [int(r["epoch"]) for r in self.history if "epoch" in r]

    @property
    def has_validation(self) -> bool:
        return any("val_loss" in r for r in self.history)

    @property
    def task(self) -> str:
        return self.summary.get("task") or ("regression" if self.recipe.data.task == "regression" else "")

    @property
    def train_rows(self) -> int:
        return int((self.summary.get("sizes") or {}).get("train", 0))

    def finite(self, values: list[float]) -> bool:
        return all(math.isfinite(v) for v in values)

    # --- what costs something --------------------------------------------------------------------------
    @functools.cached_property
    def loaded(self):
        from honed.api import load_run

        return load_run(self.run_dir)

    @functools.cached_property
    def bundle(self):
        from honed.data import build_data

        return build_data(self.recipe.data)

    @functools.cached_property
    def probe(self):
        from honed.diagnosis.probes import probe_model

        _, model, _ = self.loaded
        return probe_model(model, self.bundle, self.recipe)

    @functools.cached_property
    def range_test(self):
        from honed.diagnosis.probes import short_range_test

        return short_range_test(self.recipe, self.bundle)

    @property
    def can_probe(self) -> bool:
        return self.probes and self.run_dir is not None and (self.run_dir / runfiles.WEIGHTS).is_file()
