"""Distillation on IMDB: a teacher recipe (imdb_best_cpu, or imdb_minilm) into the classic Keras-style imdb_seed model.

Trains the teacher, then `honed distill` trains the student with the teacher's softened outputs and
again without them (same seed, same data: the student uses the teacher's 10% validation split so the
rows line up), and prints the report: parameters, file size, CPU latency per example, test accuracy.

    python benchmarks/imdb_distill.py [--data ARCHIVE] [--teacher imdb_best_cpu|imdb_minilm] [--temperature 2]
                                      [--alpha 0.5] [--out DIR (keep the runs)] [--teacher-set KEY=VALUE ...]

On a GPU, the MiniLM teacher on the whole training split at 512 word pieces:
    python benchmarks/imdb_distill.py --teacher imdb_minilm --teacher-set data.max_train_rows=null \
        --teacher-set data.max_len=512 --teacher-set data.val_fraction=0.1 --teacher-set train.epochs=3 \
        --teacher-set train.batch_size=32 --teacher-set train.precision=bf16-mixed
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
    p.add_argument("--teacher-set", action="append", default=[], metavar="KEY=VALUE",
                   help="a recipe override for the teacher only")
    args = p.parse_args()
    sets = [a for s in data_sets(args) for a in ("--set", s)]
    with tempfile.TemporaryDirectory() as scratch:
        tmp = args.out or scratch
        teacher_sets = [a for s in args.teacher_set for a in ("--set", s)]
        subprocess.run([sys.executable, "-m", "honed", "train", args.teacher, *sets, *teacher_sets, "--out",
                        f"{tmp}/teacher", "--quiet"], check=True, cwd=ROOT)
        subprocess.run([sys.executable, "-m", "honed", "distill", f"{tmp}/teacher", "imdb_seed", *sets,
                        "--set", "data.val_fraction=0.1", "--temperature", str(args.temperature),
                        "--alpha", str(args.alpha), "--out", f"{tmp}/distill"], check=True, cwd=ROOT)
        report = json.loads(Path(f"{tmp}/distill/summary.json").read_text())
    rows = [[r["model"], f"{r['params']:,}", f"{r['bytes'] / 1e6:.1f}", f"{r['ms per example']:.3f}",
             f"{r['test accuracy']:.2%}"] for r in report["rows"]]
    print(table(["model", "parameters", "file MB", "ms per example (CPU, batch 1)", "test accuracy"], rows))


if __name__ == "__main__":
    main()
