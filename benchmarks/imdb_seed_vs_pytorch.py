"""honed's imdb_seed recipe against a hand-written PyTorch loop of the same model, side by side.

Each system runs as its own process (end to end: start of the command to exit) on the same
IMDB archive; the table gives test accuracy, timings, peak memory and ratios against the
hand-written loop measured in the same run.

    .venv/bin/python benchmarks/imdb_seed_vs_pytorch.py [--data ../shared/data/imdb/aclImdb_v1.tar.gz] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from common import ROOT, timed


def run_honed(data: str, out: Path) -> dict:
    cmd = [sys.executable, "-m", "honed", "train", "recipes/imdb_seed.yaml", "--set", f"data.path={data}",
           "--out", str(out), "--quiet"]
    wall, rss, _ = timed(cmd)
    s = json.loads((out / "summary.json").read_text())
    return {"accuracy": s["test"]["accuracy"], "train_seconds": s["train_seconds"], "total_seconds": wall, "rss_mb": rss}


def run_handwritten(data: str) -> dict:
    wall, rss, out = timed([sys.executable, "benchmarks/imdb_handwritten.py", data])
    r = json.loads(out.strip().splitlines()[-1])
    return {"accuracy": r["accuracy"], "train_seconds": r["train_seconds"], "total_seconds": wall, "rss_mb": rss}


def median(results: list[dict]) -> dict:
    import statistics

    return {k: statistics.median(r[k] for r in results) for k in results[0]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "imdb" / "aclImdb_v1.tar.gz"))
    ap.add_argument("--repeats", type=int, default=1, help="alternate the two this many times; report medians")
    args = ap.parse_args()
    runs: dict[str, list[dict]] = {"base": [], "ours": []}
    for _ in range(args.repeats):  # alternating, so both see the same machine load
        runs["base"].append(run_handwritten(args.data))
        with tempfile.TemporaryDirectory() as tmp:
            runs["ours"].append(run_honed(args.data, Path(tmp) / "run"))
    base, ours = median(runs["base"]), median(runs["ours"])
    print(f"median of {args.repeats} run(s) each, 2 CPU cores" if args.repeats > 1 else "one run each")
    rows = [("hand-written PyTorch loop", base), ("honed imdb_seed", ours)]
    print(f"| system | test accuracy | train s | end to end s | peak RSS MB | end to end vs loop |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, r in rows:
        print(f"| {name} | {r['accuracy']:.2%} | {r['train_seconds']:.1f} | {r['total_seconds']:.1f} | "
              f"{r['rss_mb']:.0f} | {r['total_seconds'] / base['total_seconds']:.2f}x |")


if __name__ == "__main__":
    main()
