"""The run directory: everything a finished run leaves behind, and reading it back.

    recipe.yaml        the fully resolved recipe (rerun it to repeat the run)
    metrics.jsonl      one JSON object per epoch (and per logged step)
    summary.json       test/val metrics, timings, epochs, parameters, throughput
    model.safetensors  the weights;  model.json  what rebuilds the module
    preprocess.json    fitted preprocessing (+ vocab.json or tokenizer.json for text)
    curves.png         loss, metrics and learning rate per epoch
"""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

from honed.errors import UserError
from honed.files import holding, loads_json, read_json, write_json, write_text
from honed.training.hooks import Hook

from honed.runfiles import (CURVES, DOCTOR_DIR, DOCTOR_JSON, DOCTOR_MD, EXPLAIN_DIR, EXPLAIN_HTML,  # noqa: F401
    EXPLAIN_JSON, FAILURE, FIXED, LR_FIND_JSON, LR_FIND_PNG, METRICS, MISTAKES, MODEL, ONNX_BUNDLE, ONNX_DIR, ONNX_INT8,
    ONNX_MODEL, PREPROCESS, QUANTIZED_DIR, QUANTIZED_REPORT, RECIPE, REPORT, SUMMARY, TEST_OUTPUTS, WEIGHTS)


def timestamped(name: str, root: str | Path = "runs") -> Path:
    """ROOT/NAME-YYYYmmdd-HHMMSS, with -2, -3... when that folder exists already (not created here).
    Every command that writes a folder of its own names it this way when --out is not given."""
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    out, n = Path(root) / f"{name}-{stamp}", 1
    while out.exists():
        n += 1
        out = Path(root) / f"{name}-{stamp}-{n}"
    return out


def new_run_dir(name: str, out: str | Path | None, root: str | Path = "runs") -> Path:
    """The folder a command writes to (--out, or a new timestamped one), created; a run there is refused."""
    path = check_out_free(out if out is not None else timestamped(name, root))
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"--out {path}: cannot create it ({e.strerror})") from None
    return path


def remove_run_dir(path: Path) -> None:
    """Remove a run folder this process has just made and not trained in (its files, then the folder)."""
    import shutil

    shutil.rmtree(path, ignore_errors=True)


def check_out_free(out: str | Path | None, overwrite: bool = False) -> Path | None:
    """Refuse an --out that is a file, or holds a finished or an unfinished run (checked before any data is
    read, and again when made); with `overwrite`, an unfinished run's folder is emptied and reused."""
    if out is None:
        return None
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise UserError(f"--out {path}: a file is there, not a folder; choose another path")
    if (path / SUMMARY).exists():
        raise UserError(f"--out {path}: a finished run is already there; choose another directory")
    if (path / RECIPE).exists():
        if not overwrite:
            raise UserError(f"--out {path}: an unfinished run is there; continue it with honed train --resume {path}, "
                            "or add --overwrite to start it again")
        import shutil

        with holding(path):  # refused while another process still writes there (a resume, a train)
            pass
        shutil.rmtree(path)
    return path


MAX_RUN_ENTRIES = 100_000  # files and folders looked at in a run folder for links (a run holds dozens)


def refuse_outside_links(p: Path) -> None:
    """A run folder's files are read, embedded in self-contained pages and shipped in bundles: a link in it to
    anything outside it (another user's file, /etc/passwd) is refused in one line, never followed."""
    root = p.resolve()
    for count, entry in enumerate(p.rglob("*")):
        if count >= MAX_RUN_ENTRIES:
            raise UserError(f"{p}: more than {MAX_RUN_ENTRIES:,} files and folders; not a honed run folder")
        if entry.is_symlink() and not entry.resolve().is_relative_to(root):
            raise UserError(f"{entry}: a link to {os.readlink(entry)}, outside the run folder; honed reads only the "
                            "run's own files: replace the link with the file")


def check_run_dir(path: str | Path) -> Path:
    p = Path(path)
    if not p.is_dir():
        raise UserError(f"run directory not found: {p}")
    for needed in (RECIPE, WEIGHTS, MODEL):
        if not (p / needed).is_file():
            raise UserError(f"{p} is not a honed run: {needed} is missing")
    refuse_outside_links(p)
    return p


class MetricsLog(Hook):
    """Appends each epoch's record to metrics.jsonl as it happens (a crash keeps what came before)."""

    def __init__(self, run_dir: Path) -> None:
        self.path = run_dir / METRICS

    def on_fit_start(self, trainer) -> None:
        # a resumed run starts from the history its checkpoint kept
        write_text(self.path, "".join(json.dumps(record) + "\n" for record in trainer.history))

    def on_epoch_end(self, trainer, record: dict) -> None:
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")


def read_metrics(run_dir: Path) -> list[dict]:
    """The epoch records of a run; a last line cut short (a killed run) is left out, any other damage is named."""
    path = run_dir / METRICS
    if not path.is_file():
        return []
    lines = [line for line in path.read_text(encoding="utf-8", errors="replace").split("\n") if line.strip()]
    records = []
    for i, line in enumerate(lines):
        try:
            record = loads_json(line)
        except ValueError:
            if i == len(lines) - 1:
                break
            raise UserError(f"{path}: line {i + 1} is not a JSON record; the file is damaged") from None
        if not isinstance(record, dict):
            raise UserError(f"{path}: line {i + 1} is not a JSON record; the file is damaged")
        records.append(record)
    return records


def write_summary(run_dir: Path, summary: dict) -> Path:
    return write_json(run_dir / SUMMARY, summary)


def read_summary(run_dir: Path) -> dict:
    return read_json(run_dir / SUMMARY) if (run_dir / SUMMARY).is_file() else {}


def write_recipe(run_dir: Path, text: str) -> Path:
    return write_text(run_dir / RECIPE, text)
