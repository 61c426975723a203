"""Shared by the benchmarks: run `honed train` as its own process and read what it measured."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED_IMDB = ROOT.parent / "shared" / "data" / "imdb" / "aclImdb_v1.tar.gz"


def read_imdb(path) -> dict[str, list[tuple[str, float]]]:
    """{"train": [(review, 1.0 if positive else 0.0)], "test": [...]} from the official archive (tarfile only:
    the baselines that read it this way import nothing else for it)."""
    import tarfile

    data = {"train": [], "test": []}
    with tarfile.open(path) as tar:
        for m in tar:
            parts = m.name.split("/")
            if m.isfile() and len(parts) == 4 and parts[2] in ("pos", "neg") and parts[1] in data:
                text = tar.extractfile(m).read().decode("utf-8", errors="replace")
                data[parts[1]].append((text, 1.0 if parts[2] == "pos" else 0.0))
    return data


def data_sets(args) -> list[str]:
    """Recipe overrides that point an IMDB recipe at the archive, or at train/test CSV files."""
    if args.train:
        return ["data.source=text_files", f"data.train={args.train}", f"data.test={args.test}"]
    return [f"data.path={args.data}"]


def add_data_arguments(parser) -> None:
    parser.add_argument("--data", default=str(SHARED_IMDB), help="IMDB archive or extracted folder")
    parser.add_argument("--train", help="instead of --data: a CSV (text,label) of training reviews")
    parser.add_argument("--test", help="with --train: the test CSV")


def timed(cmd: list[str], env: dict | None = None) -> tuple[float, float, str]:
    """(wall seconds, peak RSS in MB, stdout) of one child process."""
    with tempfile.TemporaryFile("w+") as err:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True, cwd=ROOT,
                                env={**os.environ, **(env or {})})
        out = proc.stdout.read()
        _, status, usage = os.wait4(proc.pid, 0)  # reap it ourselves to get its own peak RSS
        wall = time.perf_counter() - started
        if os.waitstatus_to_exitcode(status) != 0:
            err.seek(0)
            raise SystemExit(f"{' '.join(cmd)} failed:\n{err.read()}")
    return wall, usage.ru_maxrss / 1024, out


def run_honed(recipe: str, sets: list[str], nproc: int = 1, env: dict | None = None) -> dict:
    """Train once; returns test accuracy, wall seconds, steady samples/s (last epoch) and the summary."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "honed", "train", recipe, "--out", f"{tmp}/run", "--quiet"]
        cmd += [a for s in sets for a in ("--set", s)]
        if nproc > 1:
            cmd += ["--nproc", str(nproc)]
        started = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env={**os.environ, **(env or {})})
        wall = time.perf_counter() - started
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stderr[-4000:]}")
        summary = json.loads(Path(f"{tmp}/run/summary.json").read_text())
        epochs = [json.loads(line) for line in Path(f"{tmp}/run/metrics.jsonl").read_text().splitlines()]
    seconds = [e["seconds"] for e in epochs]
    last_epoch = seconds[-1] - (seconds[-2] if len(seconds) > 1 else 0.0)
    return {"accuracy": summary["test"].get("accuracy", float("nan")), "wall": wall,
            "first_epoch": seconds[0], "steady": summary["sizes"]["train"] / max(last_epoch, 1e-9),
            "summary": summary, "log": done.stderr}


def table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)
