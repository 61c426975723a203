"""`honed tune` on IMDB with a time budget, against every bundled hand-written IMDB recipe.

Each bundled recipe trains once (its own validation split, as the recipe says); then
`honed tune recipes/imdb_tune.yaml --budget B` searches. The table shows validation accuracy
(what the search chooses on), test accuracy (scored once per recipe, and once for the best
trial), and seconds; the last column is validation accuracy against the best bundled recipe.

    python benchmarks/imdb_tune.py [--data ARCHIVE] [--budget 300]
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

from common import ROOT, add_data_arguments, data_sets, run_honed, table

BUNDLED = ("imdb_seed", "imdb_fast", "imdb_best_cpu")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_data_arguments(p)
    p.add_argument("--budget", type=float, default=300)
    p.add_argument("--recipes", default=",".join(BUNDLED))
    args = p.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        env = {"HONED_CACHE": os.environ.get("HONED_CACHE", f"{tmp}/cache")}
        for recipe in args.recipes.split(","):
            r = run_honed(f"recipes/{recipe}.yaml", data_sets(args), env=env)
            s = r["summary"]
            rows.append([recipe, s["val"]["accuracy"], s["test"]["accuracy"], r["wall"], s["sizes"]["val"]])
            print(f"{recipe}: val {s['val']['accuracy']:.2%} test {s['test']['accuracy']:.2%} {r['wall']:.0f} s",
                  flush=True)
        # warm the tune recipe's preprocessing cache first, as the bundled runs above had theirs
        cmd = [sys.executable, "-m", "honed", "tune", "recipes/imdb_tune.yaml", "--budget", str(args.budget),
               "--out", f"{tmp}/tune"] + [a for s in data_sets(args) for a in ("--set", s)]
        started = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env={**os.environ, **env})
        wall = time.perf_counter() - started
        if done.returncode != 0:
            raise SystemExit(f"honed tune failed:\n{done.stderr[-4000:]}")
        summary = json.loads(Path(f"{tmp}/tune/summary.json").read_text())
        print(done.stdout)
        t = summary["tune"]
        rows.append([f"honed tune, {args.budget:.0f} s budget (best of {t['trials']['total']} trials: "
                     f"{t['trials']['COMPLETE']} finished, {t['trials']['PRUNED']} pruned)",
                     summary["val"]["accuracy"], summary["test"]["accuracy"], wall, summary["sizes"]["val"]])
        best_params = t["params"]
    best_bundled = max(r[1] for r in rows[:-1])
    shown = [[name, f"{val:.2%}", f"{test:.2%}", f"{wall:.0f}", n, f"{val - best_bundled:+.2%}"]
             for name, val, test, wall, n in rows]
    print(table(["recipe", "val accuracy", "test accuracy", "end to end s", "val reviews", "val vs best bundled"],
                shown))
    print(f"\nbest trial's values: {best_params}")


if __name__ == "__main__":
    main()
