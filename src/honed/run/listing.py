"""`honed runs [DIR]`: every run under a folder, one row each — the quick answer to "which of my runs was
best". Rows come from each run's own files (recipe.yaml, summary.json, checkpoints/); nothing is stored
elsewhere, so moving or deleting a run folder is all the bookkeeping there is.

    --sort test.accuracy [--desc]    (list_runs: sort="-test.accuracy" for descending)
    --where 'test.accuracy>0.9' --where 'model=bag'    (>, >=, <, <=, ==, != ; numbers or words)
"""

from __future__ import annotations

import datetime
import operator
import re
from pathlib import Path

from honed.errors import UserError
from honed.run.checkpoints import FOLDER as CHECKPOINTS
from honed.files import read_json
from honed.run.rundir import RECIPE, SUMMARY

DEPTH = 4  # run folders are found this deep (tune trials, compare variants and cv folds sit 2-3 levels down)
OPERATORS = {">=": operator.ge, "<=": operator.le, "!=": operator.ne, "==": operator.eq, ">": operator.gt,
             "<": operator.lt, "=": operator.eq}
CONDITION = re.compile(r"^\s*([\w.]+)\s*(>=|<=|!=|==|>|<|=)\s*(.+?)\s*$")


def find_runs(folder: Path) -> list[Path]:
    found = []
    for depth in range(1, DEPTH + 1):
        found += [p.parent for p in folder.glob("/".join(["*"] * depth) + f"/{RECIPE}")]
    return sorted(set(found))


def status_of(run: Path) -> str:
    if (run / SUMMARY).is_file():
        return "finished"
    if any((run / CHECKPOINTS).glob("*.json")):
        return "resumable"
    return "unfinished"


def row_of(run: Path, folder: Path) -> dict:
    import yaml

    try:
        recipe = yaml.safe_load((run / RECIPE).read_text(encoding="utf-8")) or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        recipe = {}
    summary = {}
    if (run / SUMMARY).is_file():
        try:
            summary = read_json(run / SUMMARY)
        except UserError:
            summary = {}
    recipe = recipe if isinstance(recipe, dict) else {}
    row = {"run": str(run.relative_to(folder)),
           "when": datetime.datetime.fromtimestamp((run / RECIPE).stat().st_mtime).strftime("%Y-%m-%d %H:%M"),
           "recipe": recipe.get("name"), "model": (recipe.get("model") or {}).get("name"),
           "task": summary.get("task"), "status": status_of(run)}
    for split in ("val", "test"):
        for key, value in (summary.get(split) or {}).items():
            if isinstance(value, (int, float)) and key != "loss":
                row[f"{split}.{key}"] = value
    row |= {"epochs": summary.get("epochs_run"), "seconds": summary.get("total_seconds")}
    return row


def parse_condition(text: str):
    match = CONDITION.match(text)
    if not match:
        raise UserError(f"--where {text!r}: write KEY OP VALUE, e.g. 'test.accuracy>0.9' or 'model=bag' "
                        f"(operators {', '.join(OPERATORS)})")
    key, op, value = match.groups()
    try:
        value = float(value)
    except ValueError:
        value = value.strip("'\"")
    return key, OPERATORS[op], value


def list_runs(folder, *, where: list[str] = (), sort: str | None = None) -> list[dict]:
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"{folder}: no such folder of runs")
    rows = []
    for run in find_runs(folder):
        try:
            rows.append(row_of(run, folder))
        except OSError:  # removed while we looked (another process's temporary run): not a run any more
            continue
    for key, op, value in map(parse_condition, where):
        rows = [r for r in rows if r.get(key) is not None and _compare(op, r[key], value)]
    if sort:
        key, descending = sort.lstrip("-"), sort.startswith("-")
        known = set().union(*(r.keys() for r in rows)) if rows else set()
        if rows and key not in known:
            raise UserError(f"--sort {sort}: no run has {key!r}; columns: {', '.join(sorted(known))}")
        present = [r for r in rows if r.get(key) is not None]
        present.sort(key=lambda r: (isinstance(r[key], str), r[key]), reverse=descending)
        rows = present + [r for r in rows if r.get(key) is None]
    return rows


def _compare(op, left, right) -> bool:
    if isinstance(right, float) and not isinstance(left, (int, float)):
        return False
    if isinstance(right, str):
        left = str(left)
    return op(left, right)


SHOWN = ("run", "when", "recipe", "model", "status", "val.accuracy", "val.mse", "test.accuracy", "test.f1", "test.auroc",
         "test.mse", "test.r2", "epochs", "seconds")


def shown_columns(rows: list[dict]) -> list[str]:
    """The table's columns: the ones a person compares runs by (JSON and CSV carry every column)."""
    present = set().union(*(r.keys() for r in rows)) if rows else set()
    return [c for c in SHOWN if c in present]
