"""honed's bundled `tabular` recipe beside LightGBM with its default settings, on every table given, each run
end to end as its own process (imports included), same splits, same machine. Prints a markdown table.

    python benchmarks/tabular_suite.py                       # ../shared/data/tabular/{adult,california_housing}
    python benchmarks/tabular_suite.py --tables DIR [DIR ...] # folders with train.csv and test.csv
    python benchmarks/tabular_suite.py --target target --set model.hidden=[512,512]
    python benchmarks/tabular_suite.py --sklearn             # + scikit-learn's diabetes and digits as CSV files, split
                                                             #   as the bundled diabetes_mlp and digits_cnn split them

LightGBM as a user runs it in ten lines: text columns as pandas categories, missing cells left as NaN,
LGBMClassifier/LGBMRegressor() untouched. honed runs `honed train tabular` untouched. Nothing is chosen on
the test files. Classification: accuracy points (honed - LightGBM); regression: RMSE relative to LightGBM's.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, table

SHARED_TABLES = ROOT.parent / "shared" / "data" / "tabular"

LIGHTGBM = r"""
import json, sys, time
import numpy as np, pandas as pd
train, test, target = sys.argv[1:4]
a, b = pd.read_csv(train), pd.read_csv(test)
y, y_test = a.pop(target), b.pop(target)
for c in a.columns:
    if not pd.api.types.is_numeric_dtype(a[c]) and not pd.api.types.is_bool_dtype(a[c]):
        kinds = pd.CategoricalDtype(sorted(set(a[c].dropna())))
        a[c], b[c] = a[c].astype(kinds), b[c].astype(kinds)
import lightgbm as lgb
classes = not pd.api.types.is_numeric_dtype(y) or (pd.api.types.is_integer_dtype(y) and y.nunique() <= 20)
model = (lgb.LGBMClassifier if classes else lgb.LGBMRegressor)(verbose=-1).fit(a, y)
p = model.predict(b)
score = float((p == y_test.to_numpy()).mean()) if classes else float(np.sqrt(np.mean((p - y_test.to_numpy()) ** 2)))
print(json.dumps({"metric": "accuracy" if classes else "rmse", "score": score}))
"""


def run_timed(cmd: list[str], env: dict | None = None) -> tuple[float, float, str]:
    """(wall seconds, peak RSS MB, stdout) of one process, through /usr/bin/time."""
    started = time.perf_counter()
    done = subprocess.run(["/usr/bin/time", "-f", "%M", *cmd], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, **(env or {})})
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stderr[-3000:]}")
    return wall, int(done.stderr.strip().splitlines()[-1]) / 1024, done.stdout


def lightgbm(folder: Path, target: str) -> dict:
    wall, peak, out = run_timed([sys.executable, "-c", LIGHTGBM, str(folder / "train.csv"), str(folder / "test.csv"),
                                 target])
    return json.loads(out.strip().splitlines()[-1]) | {"seconds": wall, "peak_mb": peak}


def honed(folder: Path, target: str, overrides: list[str], recipe: str, tune: float | None) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        command = ["tune", recipe, "--budget", f"{tune:g}"] if tune else ["train", recipe]
        cmd = [sys.executable, "-m", "honed", *command, "--out", f"{tmp}/run", "--quiet",
               "--set", f"data.train={folder / 'train.csv'}", "--set", f"data.test={folder / 'test.csv'}",
               "--set", f"data.target={target}"] + [a for o in overrides for a in ("--set", o)]
        wall, peak, _ = run_timed(cmd, {"HONED_CACHE": f"{tmp}/cache"})
        summary = json.loads(Path(f"{tmp}/run/summary.json").read_text())
    test = summary.get("test") or summary.get("best", {}).get("test", {})
    regression = "rmse" in test and "accuracy" not in test
    return {"metric": "rmse" if regression else "accuracy", "score": test["rmse" if regression else "accuracy"],
            "seconds": wall, "peak_mb": peak, "train_rows": summary.get("sizes", {}).get("train")}


def sklearn_tables(folder: Path) -> list[Path]:
    """scikit-learn's diabetes and digits written as train.csv/test.csv with the very test split the bundled
    `diabetes_mlp` and `digits_cnn` recipes carve (data.source = sklearn), so honed `tabular` on a CSV file is
    compared with those hand-made recipes on the same test rows."""
    import numpy as np
    import pandas as pd

    from honed.data.build import load_raw
    from honed.data.split import carve
    from honed.recipe import load_recipe

    tables = []
    for name in ("diabetes", "digits"):
        spec = load_recipe({"data": {"source": "sklearn", "name": name}}).data
        raw = load_raw(spec)
        train, test = carve(raw.train, spec.test_fraction, spec.seed, raw.task == "classification", "test")
        out = folder / name
        out.mkdir(parents=True, exist_ok=True)
        for part, split in (("train", train), ("test", test)):
            frame = pd.DataFrame(np.asarray(split.x), columns=list(raw.feature_names))
            y = np.asarray(split.y)
            frame["target"] = y.astype(int) if raw.task == "classification" else y
            frame.to_csv(out / f"{part}.csv", index=False)
        tables.append(out)
    return tables


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tables", nargs="*", type=Path,
                        default=sorted(p for p in SHARED_TABLES.iterdir() if (p / "train.csv").is_file())
                        if SHARED_TABLES.is_dir() else [])
    parser.add_argument("--target", default="target")
    parser.add_argument("--recipe", default="tabular")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--tune", type=float, help="`honed tune --budget S` instead of `honed train`")
    parser.add_argument("--sklearn", action="store_true", help="also scikit-learn's diabetes and digits (see above)")
    args = parser.parse_args()
    rows, gaps = [], []
    scratch = tempfile.TemporaryDirectory()
    tables = list(args.tables) + (sklearn_tables(Path(scratch.name)) if args.sklearn else [])
    for folder in tables:
        base = lightgbm(folder, args.target)
        ours = honed(folder, args.target, args.overrides, args.recipe, args.tune)
        if base["metric"] == "accuracy":
            gap = f"{100 * (ours['score'] - base['score']):+.2f} points"
            shown = lambda r: f"{100 * r['score']:.2f}%"  # noqa: E731
            gaps.append(100 * (ours["score"] - base["score"]))
        else:
            gap = f"{100 * (ours['score'] / base['score'] - 1):+.1f}% RMSE"
            shown = lambda r: f"RMSE {r['score']:.4f}"  # noqa: E731
            gaps.append(-100 * (ours["score"] / base["score"] - 1))
        rows.append([folder.name, shown(base), shown(ours), gap, f"{base['seconds']:.1f} s", f"{ours['seconds']:.1f} s",
                     f"{ours['seconds'] / base['seconds']:.1f}x", f"{ours['peak_mb']:,.0f}"])
        print(" | ".join(map(str, rows[-1])), file=sys.stderr, flush=True)
    print(table(["table", "LightGBM, defaults", f"honed {args.recipe}", "honed - LightGBM", "LightGBM time",
                 "honed time", "ratio", "honed peak MB"], rows))
    if gaps:
        print(f"\nmean gain over LightGBM (accuracy points, or % lower RMSE): {sum(gaps) / len(gaps):+.2f}")


if __name__ == "__main__":
    main()
