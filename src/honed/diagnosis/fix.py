"""`honed doctor RUN_DIR --fix [K]`: the doctor checks its own advice.

The top K findings' first advice is applied one after another, each retrained with the run's seed (an
ordinary `honed.train` with score_test=False: the test split is never read) and kept only when its
validation score beats the one before by more than the validation split's noise (the half-width of
the run's 95% interval for that metric). What was kept is written as DIR/fixed.yaml.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from honed.diagnosis.finding import overrides
from honed.evaluation.metrics import LOWER_IS_BETTER
from honed.training.hooks import Deadline
from honed import runfiles



def judged_metric(summary: dict) -> tuple[str, float, float]:
    """(metric, validation value, noise): accuracy for classifiers, else rmse, else the loss."""
    val = summary.get("val") or {}
    for name in ("accuracy", "rmse", "loss"):
        if name in val:
            ci = (val.get("ci95") or {}).get(name)
            return name, float(val[name]), (ci[1] - ci[0]) / 2 if ci else 0.0
    from honed.errors import UserError

    raise UserError("doctor --fix compares validation scores, and this run has none (data.val_fraction = 0?); "
                    "give it a validation split: --set data.val_fraction=0.2")


def gain(metric: str, before: float, after: float) -> float:
    return before - after if metric in LOWER_IS_BETTER else after - before


def fix(run_dir: str | Path, diagnosis, top: int = 1, budget: float | None = None, out: str | Path | None = None) -> dict:
    from honed import api
    from honed.data.build import reuse_built_data
    from honed.errors import UserError
    from honed.recipe import dump_recipe, load_recipe
    from honed.run import read_summary, write_text

    path = Path(run_dir)
    out = Path(out) if out else path / runfiles.DOCTOR_DIR
    summary = read_summary(path)
    metric, before, noise = judged_metric(summary)
    candidates = [f for f in diagnosis.findings if f.advice and f.severity in ("problem", "warning")][:top]
    if not candidates:
        raise UserError("doctor --fix: no problem or warning with recipe advice to apply")
    recipe, kept, rows = load_recipe(path / runfiles.RECIPE), [], []
    best = before
    until = time.perf_counter() + budget if budget else float("inf")
    with reuse_built_data():  # every retrain reads the same data: build it once
        for i, finding in enumerate(candidates, 1):
            if time.perf_counter() >= until:
                rows.append({"finding": finding.name, "change": finding.advice[0], "skipped": "no --budget left"})
                continue
            trial = load_recipe(recipe, overrides(finding.advice[0]))
            folder = out / f"fix-{i}"
            if folder.is_dir():  # this command's own output from an earlier --fix
                shutil.rmtree(folder)
            run = api.train(trial, out=folder, score_test=False, hooks=[Deadline(until - time.perf_counter(), "the doctor's --budget ran out")])
            after = float(run.summary["val"][metric])
            better = gain(metric, best, after) > noise
            rows.append({"finding": finding.name, "change": finding.advice[0], "metric": f"val {metric}",
                         "before": best, "after": after, "noise": noise, "kept": better, "run": str(run.path)})
            if better:
                recipe, best = trial, after
                kept.append(finding.advice[0])
    fixed = None
    if kept:
        fixed = write_text(out / runfiles.FIXED, f"# honed doctor --fix on {path}: {' '.join(kept)}\n"
                           f"# val {metric} {before:.4g} -> {best:.4g}\n# Run:  honed train {out / runfiles.FIXED}\n"
                           + dump_recipe(recipe))
    return {"metric": metric, "before": before, "after": best, "noise": noise, "tried": rows,
            "fixed": str(fixed) if fixed else None}
