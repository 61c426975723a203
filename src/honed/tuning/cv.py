"""`honed cv`: K-fold cross-validation of a recipe over its training rows.

    honed cv RECIPE --folds 5 [--repeats 2] [--group-column user] [--test] [--out DIR]

The training rows (the test split set aside as always) are dealt into K stratified folds, or by
group so that a group's rows share a fold (data/split.fold_ids). Each fold is an ordinary run
(`data.fold` names the fold that validates it; nothing else changes), so early stopping, the
monitored metric and every hook behave as in `honed train`. The report gives each fold's validation
metrics, their mean, standard deviation and a 95% interval of the mean (Student's t over the folds),
and the folds' validation curves overlaid (cv.png). The test split is scored only with --test: the
recipe is then trained once on every training row and scored once.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

from honed.errors import UserError
from honed.files import holding
from honed.recipe import Recipe, load_recipe
from honed.run import read_metrics, timestamped, write_json

log = logging.getLogger("honed")


@dataclass
class CrossValidation:
    out: Path
    folds: list[dict]  # one row per fold: repeat, fold, rows, validation metrics, seconds, path
    stats: dict  # metric -> {"mean", "std", "ci95": [low, high]}
    test: dict | None  # --test: the recipe trained on every training row, scored once

    @property
    def path(self) -> Path:
        """The folder the command wrote (every result names its folder `.path`, as a run does)."""
        return self.out


def fold_recipes(user: Recipe, folds: int, repeats: int) -> list[tuple[int, int, Recipe]]:
    base = load_recipe(user, ["train.checkpoint=null"])
    raw = base.model_dump(mode="json")
    out = []
    for repeat in range(repeats):
        for index in range(folds):
            raw["data"]["fold"] = {"index": index, "count": folds, "repeat": repeat}
            out.append((repeat, index, load_recipe(raw)))
    return out


def t_quantile(dof: int) -> float:
    """Student's t 0.975 quantile with `dof` degrees of freedom."""
    from scipy import stats

    return float(stats.t.ppf(0.975, dof))


def summarize(rows: list[dict], names: list[str]) -> dict:
    """mean, sample standard deviation and the t-interval of the mean of each metric over the folds."""
    stats = {}
    for name in names:
        values = [r[name] for r in rows if isinstance(r.get(name), (int, float))]
        if not values:
            continue
        mean = sum(values) / len(values)
        std = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else 0.0
        half = t_quantile(len(values) - 1) * std / math.sqrt(len(values)) if len(values) > 1 else 0.0
        stats[name] = {"mean": mean, "std": std, "ci95": [mean - half, mean + half]}
    return stats


def cross_validate(recipe, overrides=(), *, folds: int = 5, repeats: int = 1, group_column: str | None = None,
                   test: bool = False, out=None) -> CrossValidation:
    """Train the recipe once per fold (and repeat); returns the folds' validation metrics and their summary."""
    if not 2 <= folds <= 100:
        raise UserError(f"--folds {folds}: cross-validation takes 2 to 100 folds (at least 2 folds; 5 is usual)")
    if not 1 <= repeats <= 100:
        raise UserError(f"--repeats {repeats}: give 1 to 100")
    user = load_recipe(recipe, list(overrides) + ([f"data.group_column={group_column}"] if group_column else []))
    out = Path(out) if out else timestamped(f"{user.name}-cv")
    out.mkdir(parents=True, exist_ok=True)
    with holding(out):
        return _cross_validate(user, out, folds, repeats, group_column, test)


def _cross_validate(user: Recipe, out: Path, folds: int, repeats: int, group_column, test: bool) -> "CrossValidation":
    from honed import api

    rows = []
    plan = fold_recipes(user, folds, repeats)
    for number, (repeat, index, fold_recipe) in enumerate(plan, 1):
        run = api.train(fold_recipe, out=out / "folds" / f"r{repeat}-f{index}", quiet=True, score_test=False,
                          overwrite=True)
        val = run.summary["val"]
        row = {"repeat": repeat, "fold": index, "train rows": run.summary["sizes"]["train"],
               "val rows": run.summary["sizes"]["val"]}
        row |= {k: v for k, v in val.items() if isinstance(v, (int, float))}
        row |= {"epochs": run.summary["epochs_run"], "seconds": run.summary["total_seconds"], "path": str(run.path)}
        rows.append(row)
        log.info(f"cv: fold {number}/{len(plan)} (repeat {repeat}, fold {index}): "
                 + ", ".join(f"val_{k} {v:.4f}" for k, v in val.items() if isinstance(v, float)))
    names = [k for k in rows[0] if k not in ("repeat", "fold", "train rows", "val rows", "epochs", "seconds", "path")]
    stats = summarize(rows, names)
    scored = None
    if test:  # every training row, one test score: the recipe as a user would train it, validated above
        final = load_recipe(user, ["data.val_fraction=0", "train.early_stopping=null"]) \
            if user.data.val_fraction == 0 or user.train.early_stopping is None else user
        scored = api.train(final, out=out / "final", quiet=True, overwrite=True).summary["test"]
    report = {"recipe": user.name, "folds": folds, "repeats": repeats, "group_column": group_column,
              "fold_results": rows, "stats": stats, "test": scored}
    write_json(out / "cv.json", report)
    from honed.tuning.plots import plot_folds

    title = f"{user.name}: {folds}-fold cross-validation" + (f", {repeats} repeats" if repeats > 1 else "")
    plot_folds({f"r{r['repeat']}-f{r['fold']}": read_metrics(Path(r["path"])) for r in rows}, out / "cv.png", title)
    from honed.report import write_summary_page

    columns = list(dict.fromkeys(k for r in rows for k in r if k != "path"))
    stats_rows = [{"metric": name} | s for name, s in stats.items()]
    write_summary_page(out / "cv.html", "cv", title,
                       [f"Test split: {scored}" if scored else "The test split was not read (add --test)."],
                       [out / "cv.png"], [{"caption": "across folds", "columns": list(dict.fromkeys(
                           k for r in stats_rows for k in r)), "rows": stats_rows},
                                          {"caption": "each fold (validation)", "columns": columns, "rows": rows}])
    return CrossValidation(out, rows, stats, scored)
