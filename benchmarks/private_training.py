"""The privacy-utility table: a recipe trained with differential privacy at several budgets and without,
same data and split, each run its own process, side by side.

Run:  .venv/bin/python benchmarks/private_training.py                      (IMDB, recipes/imdb_private.yaml)
      .venv/bin/python benchmarks/private_training.py --recipe digits_cnn --set data.standardize=false
      options: --epsilons 1,3,8 --delta 1e-5 --data ARCHIVE

For each epsilon: test accuracy with its 95% interval, the epsilon spent (at the delta given), the noise
multiplier honed chose, the share of clipped examples in the last epoch, training seconds and the slowdown
against the same recipe without privacy (`train.privacy.epsilon=null`) measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from common import SHARED_IMDB, table, timed


def run(recipe: str, sets: list[str], out: Path) -> dict:
    cmd = [sys.executable, "-m", "honed", "train", recipe, "--out", str(out), "--quiet"]
    cmd += [a for s in sets for a in ("--set", s)]
    wall, peak_mb, _ = timed(cmd)
    summary = json.loads((out / "summary.json").read_text())
    return {"summary": summary, "wall": wall, "peak_mb": peak_mb}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", default="imdb_private")
    parser.add_argument("--data", default=str(SHARED_IMDB), help="IMDB archive (for IMDB recipes)")
    parser.add_argument("--epsilons", default="1,3,8")
    parser.add_argument("--delta", type=float, default=1e-5)
    parser.add_argument("--set", action="append", default=[], help="more recipe overrides for every run")
    args = parser.parse_args()
    sets = ([f"data.path={args.data}"] if args.recipe.startswith("imdb") else []) + args.set
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for epsilon in [None] + [float(e) for e in args.epsilons.split(",")]:
            privacy = ["train.privacy.epsilon=null"] if epsilon is None else [
                f"train.privacy.epsilon={epsilon}", f"train.privacy.delta={args.delta}"]
            results[epsilon] = r = run(args.recipe, sets + privacy, Path(tmp) / f"run-{epsilon}")
            print(f"epsilon {epsilon}: test {r['summary']['test']['accuracy']:.4f}, "
                  f"{r['summary']['train_seconds']:.1f} s training", file=sys.stderr, flush=True)
    plain = results[None]["summary"]
    rows = []
    for epsilon, r in results.items():
        s = r["summary"]
        low, high = s["test"]["ci95"]["accuracy"]
        spent = s.get("privacy", {})
        rows.append(["not private" if epsilon is None else f"{epsilon:g}", f"{s['test']['accuracy']:.2%}",
                     f"{low:.1%}-{high:.1%}", f"{spent['epsilon']:.3f}" if spent else "-",
                     f"{spent['noise_multiplier']:.3f}" if spent else "-",
                     f"{spent['clipped_fraction']:.0%}" if spent else "-",
                     f"{s['train_seconds']:.1f}", f"{s['train_seconds'] / plain['train_seconds']:.2f}x",
                     f"{r['wall']:.1f}", f"{r['peak_mb']:,.0f}"])
    print(f"{args.recipe}, delta {args.delta:g}, {plain['sizes']['train']:,} training rows, "
          f"{plain['sizes']['test']:,} test rows")
    print(table(["epsilon asked", "test accuracy", "95% CI", "epsilon spent", "noise multiplier", "clipped (last epoch)",
                 "train s", "train vs not private", "end to end s", "peak RSS MB"], rows))


if __name__ == "__main__":
    main()
