"""Distillation on IMDB: a teacher recipe (imdb_best_cpu, or imdb_minilm) into the classic Keras-style imdb_seed model.

Trains the teacher, then `honed distill` trains the student with the teacher's softened outputs and
again without them (same seed, same data: the student uses the teacher's 10% validation split so the
rows line up), and prints the report: parameters, file size, CPU latency per example, test accuracy.

    python benchmarks/imdb_distill.py [--data ARCHIVE] [--teacher imdb_best_cpu|imdb_minilm] [--temperature 2]
                                      [--alpha 0.5] [--out DIR (keep the runs)]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from common import ROOT, add_data_arguments, data_sets, table


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_data_arguments(p)
    p.add_argument("--temperature", type=float, default=2.0)
    p.add_argument("--alpha", type=float, default=0.5)
    p.add_argument("--teacher", default="imdb_best_cpu", help="teacher recipe (imdb_minilm: the fine-tuned encoder)")
    p.add_argument("--out", help="keep the teacher and student runs here")
    args = p.parse_args()
    sets = [a for s in data_sets(args) for a in ("--set", s)]
    with tempfile.TemporaryDirectory() as scratch:
        tmp = args.out or scratch
        subprocess.run([sys.executable, "-m", "honed", "train", args.teacher, *sets, "--out", f"{tmp}/teacher",
                        "--quiet"], check=True, cwd=ROOT)
        subprocess.run([sys.executable, "-m", "honed", "distill", f"{tmp}/teacher", "imdb_seed", *sets,
                        "--set", "data.val_fraction=0.1", "--temperature", str(args.temperature),
                        "--alpha", str(args.alpha), "--out", f"{tmp}/distill"], check=True, cwd=ROOT)
        report = json.loads(Path(f"{tmp}/distill/summary.json").read_text())
    rows = [[r["model"], f"{r['params']:,}", f"{r['bytes'] / 1e6:.1f}", f"{r['ms per example']:.3f}",
             f"{r['test accuracy']:.2%}"] for r in report["rows"]]
    print(table(["model", "parameters", "file MB", "ms per example (CPU, batch 1)", "test accuracy"], rows))


if __name__ == "__main__":
    main()
