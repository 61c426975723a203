"""`honed compare`: variants of one recipe, or finished runs, side by side.

    honed compare RECIPE --vary optimizer.name=gd,sgd,adam --vary schedule.name=constant,exponential
    honed compare RUN_DIR RUN_DIR ...

Variants share the recipe's seed and data; only the varied keys change. The report is
compare.html (self-contained, the figure embedded), compare.png, compare.csv and compare.json.
"""

from __future__ import annotations

import itertools
import logging
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from honed.errors import UserError
from honed.files import hold, releasing
from honed.recipe import load_recipe
from honed.recipe.load import parse_override
from honed.recipe.keys import setting_problem
from honed.report import write_summary_page
from honed.run import METRICS, SUMMARY, new_run_dir, read_metrics, read_summary, write_json, write_text
from honed.tuning.plots import plot_comparison, plot_privacy_utility
from honed.tuning.space import apply

log = logging.getLogger("honed")


@dataclass
class Comparison:
    out: Path
    rows: list[dict]
    metric: str

    @property
    def path(self) -> Path:
        """The folder the command wrote (every result names its folder `.path`, as a run does)."""
        return self.out


def parse_vary(items: list[str]) -> dict[str, list]:
    """['optimizer.name=gd,sgd'] -> {'optimizer.name': ['gd', 'sgd']} (values read as YAML scalars)."""
    vary: dict[str, list] = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key or not text.strip():
            raise UserError(f"--vary {item!r} must look like section.key=value1,value2")
        problem = setting_problem(key)
        if problem:
            raise UserError(f"--vary {key}: {problem}")
        if key in vary:
            raise UserError(f"--vary {key} is given twice; list all its values in one --vary")
        vary[key] = [parse_override(f"{key}={v.strip()}")[1] for v in text.split(",")]
    return vary


def variants(vary: dict[str, list]) -> list[dict]:
    """Every combination of the varied values (the grid)."""
    keys = list(vary)
    return [dict(zip(keys, values)) for values in itertools.product(*(vary[k] for k in keys))]


def label_of(params: dict) -> str:
    """'optimizer.name=sgd schedule.name=cosine' -> 'optimizer.name=sgd schedule.name=cosine', but
    'optimizer.lr=0.1 train.epochs=5' -> 'lr=0.1 epochs=5' (short names when they are unambiguous)."""
    short = [k.split(".")[-1] for k in params]
    names = short if len(set(short)) == len(short) else list(params)
    return " ".join(f"{n}={v}" for n, v in zip(names, params.values()))


def folder_of(params: dict) -> str:
    return re.sub(r"[^A-Za-z0-9_.=-]+", "_", "_".join(f"{k}={v}" for k, v in params.items()))


def compare(recipe, vary: list[str], overrides=(), *, out=None, metric: str | None = None,
            overwrite: bool = False) -> Comparison:
    """Train every variant of the recipe, then compare them. An `out` holding an earlier (or a killed) compare is
    refused unless `overwrite`, which starts it again."""
    with releasing():
        return _compare(recipe, vary, overrides, out, metric, overwrite)


def _compare(recipe, vary: list[str], overrides, out, metric: str | None, overwrite: bool) -> Comparison:
    from honed import api

    grid = variants(parse_vary(vary))
    if not grid:
        raise UserError("compare needs at least one --vary key=value1,value2")
    base = load_recipe(recipe, list(overrides))
    recipes = []
    for params in grid:  # every variant must be valid before any of them trains
        try:
            recipes.append(apply(base, params))
        except UserError as e:
            raise UserError(f"variant {label_of(params)}: {e}") from None
    out = new_run_dir(f"{base.name}-compare", out)
    hold(out)
    if (out / "runs").exists():
        if not overwrite:
            raise UserError(f"--out {out}: an earlier compare is there; choose another folder, or add --overwrite "
                            "to run it again")
        shutil.rmtree(out / "runs")
    runs, failed = [], {}
    for i, (params, variant) in enumerate(zip(grid, recipes), 1):
        folder = out / "runs" / folder_of(params)
        log.info(f"compare: variant {i}/{len(grid)}: {label_of(params)}")
        try:
            api.train(variant, out=folder)
        except UserError as e:  # a diverging variant is a result too
            failed[str(folder)] = str(e).splitlines()[0]
            log.info(f"compare: {label_of(params)} failed: {failed[str(folder)]}")
        runs.append((folder, label_of(params)))
    return compare_runs([f for f, _ in runs], out=out, labels=[label for _, label in runs], metric=metric,
                        failed=failed)


def compare_runs(run_dirs: list, *, out=None, labels: list[str] | None = None, metric: str | None = None,
                 failed: dict[str, str] | None = None) -> Comparison:
    """Compare finished run directories: curves, final metrics, time to target, time per epoch."""
    with releasing():
        return _compare_runs(run_dirs, out, labels, metric, failed)


def _compare_runs(run_dirs: list, out, labels: list[str] | None, metric: str | None,
                  failed: dict[str, str] | None) -> Comparison:
    failed = failed or {}
    paths = [Path(p) for p in run_dirs]
    labels = labels or _unique_labels(paths)
    runs = []
    for path, label in zip(paths, labels):
        if str(path) in failed:
            runs.append({"label": label, "path": str(path), "history": read_metrics(path), "summary": {},
                         "failed": failed[str(path)]})
            continue
        if not (path / SUMMARY).is_file() or not (path / METRICS).is_file():
            raise UserError(f"{path}: not a finished honed run ({SUMMARY} or {METRICS} is missing)")
        runs.append({"label": label, "path": str(path), "history": read_metrics(path), "summary": read_summary(path)})
    if len(runs) < 2:
        raise UserError("compare needs two or more runs (or a recipe and --vary)")
    key = _metric(metric, runs)
    out = new_run_dir("runs-compare", out)
    hold(out)
    rows = [row_of(run, key) for run in runs]
    add_significance(runs, rows, key)
    figures = [plot_comparison(runs, key, out / "compare.png", f"{len(runs)} runs: {key}")]
    if any("epsilon" in row for row in rows):  # private runs among them: the privacy-utility curve
        figures.append(plot_privacy_utility(rows, out / "privacy.png"))
    write_text(out / "compare.csv", _csv(rows))
    write_json(out / "compare.json", {"metric": key, "runs": rows})
    columns = [c for c in _columns(rows) if c != "path"]
    write_summary_page(out / "compare.html", "compare", f"{len(rows)} runs, validation metric {key}",
                       ["Curves by epoch and by training seconds; each run's own page is report.html in its folder."],
                       figures, [{"columns": columns, "rows": [{c: _shown(r.get(c)) for c in columns} for r in rows]}])
    return Comparison(out, rows, key)


def row_of(run: dict, key: str) -> dict:
    """The comparison table's row for one run."""
    s, history = run["summary"], run["history"]
    epochs = s.get("epochs_run") or len(history)
    train_seconds = s.get("train_seconds") or (history[-1]["seconds"] if history else None)
    target = s.get("time_to_target") or {}
    row = {
        "run": run["label"],
        "epochs": epochs,
        "best epoch": s.get("best_epoch"),
        "final train loss": history[-1]["train_loss"] if history else None,
        key: s.get("val", {}).get(key.removeprefix("val_")) if s else (history[-1].get(key) if history else None),
    }
    intervals = (s.get("test") or {}).get("ci95", {})
    for name, value in (s.get("test") or {}).items():
        if isinstance(value, (int, float)):
            row[f"test {name}"] = value
            if name in intervals:
                row[f"test {name} 95% CI"] = "{:.4g}-{:.4g}".format(*intervals[name])
    if s.get("privacy"):
        row["epsilon"] = s["privacy"]["epsilon"]  # spent, at the run's delta
        row["delta"] = s["privacy"]["delta"]
    row["time to target s"] = target.get("seconds") if target.get("reached") else None
    row["s per epoch"] = train_seconds / epochs if train_seconds and epochs else None
    row["total s"] = s.get("total_seconds")
    row["stopped"] = run.get("failed") or s.get("stop_reason", "")
    row["path"] = run["path"]
    return row


SIGNIFICANCE = "vs best on test (95%)"


def add_significance(runs: list[dict], rows: list[dict], key: str) -> None:
    """Mark each finished run's test difference from the best run (best by `key`, the validation metric, never
    by test) as significant or within noise: McNemar's exact test for accuracy, a paired bootstrap for mse
    (evaluation/significance.py). Runs scored on different test rows are not compared."""
    import torch

    from honed.api import test_outputs
    from honed.evaluation import lower_is_better
    from honed.evaluation.significance import described, versus

    scored = [(run, row) for run, row in zip(runs, rows) if run["summary"] and isinstance(row.get(key), (int, float))]
    if len(scored) < 2:
        return
    pick = min if lower_is_better(key) else max
    best_run, best_row = pick(scored, key=lambda pair: pair[1][key])
    outputs = {run["path"]: test_outputs(run["path"]) for run, _ in scored}
    best = outputs[best_run["path"]]
    for run, row in scored:
        scores, targets, task = outputs[run["path"]]
        if run is best_run:
            row[SIGNIFICANCE] = f"best by {key}"
            continue
        if len(targets) != len(best[1]) or not torch.equal(targets, best[1]):
            row[SIGNIFICANCE] = "other test rows: not compared"
            continue
        result = versus(best[:2], (scores, targets), task)
        row[SIGNIFICANCE] = described(result)
        row["p vs best"] = result["p"]


def _metric(metric: str | None, runs: list[dict]) -> str:
    if metric:
        return metric if metric.startswith("val_") else f"val_{metric}"
    first = next((r["history"][-1] for r in runs if r["history"]), {})  # the last epoch is always validated
    return next((k for k in ("val_accuracy", "val_mse", "val_loss") if k in first), "val_loss")


def _unique_labels(paths: list[Path]) -> list[str]:
    names = [p.name for p in paths]
    return names if len(set(names)) == len(names) else [str(p) for p in paths]


def _columns(rows: list[dict]) -> list[str]:
    return list(dict.fromkeys(k for r in rows for k in r))


def _shown(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _csv(rows: list[dict]) -> str:
    import csv
    import io

    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=_columns(rows))
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()
