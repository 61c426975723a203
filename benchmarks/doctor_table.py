"""`honed doctor` on the bundled recipes and on deliberately broken ones: the findings on each (problems
in bold), and for `--fix` the validation metric before and after. With --imdb, also the doctor's own time
on an IMDB run against that run's training time (probes included). Prints markdown tables.

    python benchmarks/doctor_table.py
    python benchmarks/doctor_table.py --imdb --imdb-recipe imdb_fast
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from common import ROOT, SHARED_IMDB, table, timed

TEXT = ROOT.parent / "shared" / "data" / "text"


def noisy_table(path: Path, leak: bool = False) -> Path:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(1000, 10))
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(int)
    y = np.where(rng.random(1000) < 0.2, 1 - y, y)
    frame = pd.DataFrame(x, columns=[f"f{i}" for i in range(10)])
    if leak:
        frame["label_copy"] = y
    frame["y"] = y
    frame.to_csv(path, index=False)
    return path


def written(tmp: Path, name: str, spec: dict) -> str:
    import yaml

    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"name": name} | spec))
    return str(path)


def cases(tmp: Path) -> list[tuple[str, str, list[str], bool]]:
    """(case, recipe, --set overrides, try --fix)."""
    def table_data(path):
        return {"source": "tabular", "path": str(path), "target": "y", "val_fraction": 0.5}

    digits = {"source": "sklearn", "name": "digits"}
    fast = {"checkpoint": None}
    cr = [f"data.train={TEXT / 'cr' / 'train.csv'}", f"data.test={TEXT / 'cr' / 'test.csv'}"]
    return [
        ("linear_regression (bundled)", "linear_regression", [], False),
        ("diabetes_mlp (bundled)", "diabetes_mlp", [], False),
        ("digits_cnn (bundled)", "digits_cnn", [], False),
        ("text_classification on cr (bundled)", "text_classification", cr, False),
        ("wide MLP, no regularization, 1,000 noisy rows", written(tmp, "overfit", {
            "data": table_data(noisy_table(tmp / "noisy.csv")), "model": {"name": "mlp", "hidden": [256, 256]},
            "optimizer": {"lr": 0.01}, "metrics": ["accuracy"], "train": fast | {"epochs": 30, "batch_size": 16}}),
         [], True),
        ("1-unit MLP on digits", written(tmp, "narrow", {
            "data": digits, "model": {"name": "mlp", "hidden": [1]}, "optimizer": {"lr": 0.01},
            "train": fast | {"epochs": 8, "batch_size": 64}}), [], True),
        ("digits, optimizer.lr=1e-6", written(tmp, "slow", {
            "data": digits, "model": {"name": "mlp", "hidden": [64]}, "optimizer": {"lr": 1e-6},
            "train": fast | {"epochs": 6, "batch_size": 64}}), [], True),
        ("digits, sgd with optimizer.lr=50", written(tmp, "wild", {
            "data": digits, "model": {"name": "mlp", "hidden": [64]}, "optimizer": {"name": "sgd", "lr": 50},
            "train": fast | {"epochs": 5, "batch_size": 64}}), [], False),
        ("a column that copies the label", written(tmp, "leak", {
            "data": table_data(noisy_table(tmp / "leak.csv", leak=True)), "model": {"name": "mlp", "hidden": [64]},
            "optimizer": {"lr": 0.01}, "metrics": ["accuracy"], "train": fast | {"epochs": 12, "batch_size": 16}}),
         [], False),
    ]


def shown(findings: list[dict]) -> str:
    return ", ".join(f"**{f['name']}**" if f["severity"] == "problem" else f["name"] for f in findings) or "none"


def doctor_case(name: str, recipe: str, sets: list[str], try_fix: bool, out: Path) -> list:
    cmd = [sys.executable, "-m", "honed", "train", recipe, "--out", str(out), "--quiet"]
    timed_ok = True
    try:
        timed(cmd + [a for s in sets for a in ("--set", s)])
    except SystemExit:  # a run that diverges stops with an error, and leaves what the doctor reads
        timed_ok = False
    doctor = [sys.executable, "-m", "honed", "doctor", str(out)] + (["--fix", "1"] if try_fix else [])
    wall, _, stdout = timed(doctor)
    found = json.loads((out / "doctor.json").read_text())["findings"]
    fixed = next((line for line in stdout.splitlines() if line.startswith("fix: val ")), "")
    fixed = fixed.removeprefix("fix: ").split(";")[0] if fixed else ""
    return [name + ("" if timed_ok else " (stopped)"), shown(found), fixed, f"{wall:.1f}"]


def imdb_timing(recipe: str, out: Path) -> list:
    wall, _, _ = timed([sys.executable, "-m", "honed", "train", recipe, "--out", str(out), "--quiet",
                        "--set", f"data.path={SHARED_IMDB}"])
    summary = json.loads((out / "summary.json").read_text())
    started = time.perf_counter()
    timed([sys.executable, "-m", "honed", "doctor", str(out)])
    whole = time.perf_counter() - started
    inside = json.loads((out / "doctor.json").read_text())["seconds"]
    train = summary["train_seconds"]
    return [recipe, f"{summary['test']['accuracy']:.2%}", f"{train:.1f}", f"{inside:.2f}", f"{inside / train:.1%}",
            f"{whole:.1f}", shown(json.loads((out / "doctor.json").read_text())["findings"])]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--imdb", action="store_true")
    parser.add_argument("--imdb-recipe", default="imdb_fast")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        rows = [doctor_case(*c, Path(tmp) / f"run{i}") for i, c in enumerate(cases(Path(tmp)))]
        print(table(["run", "findings (problems in bold)", "--fix: validation before -> after", "doctor s"], rows))
        if args.imdb:
            print()
            print(table(["IMDB recipe", "test accuracy", "training s", "doctor s (checks and probes)",
                         "vs training", "honed doctor, whole command s", "findings"],
                        [imdb_timing(args.imdb_recipe, Path(tmp) / "imdb")]))


if __name__ == "__main__":
    main()
