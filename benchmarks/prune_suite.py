"""`honed prune` on finished runs: before, pruned and pruned + int8 on each run's test split — parameters,
multiply-adds, weights, per-example CPU latency through PyTorch and ONNX Runtime, accuracy with its 95%
interval and the paired test of the difference. Prints a markdown table per run.

    python benchmarks/prune_suite.py RUN_DIR [RUN_DIR ...] [--target 0.5] [--finetune-epochs 1] [--rounds 1]

Make the runs first, e.g. `honed train image_classification --set data.path=cifar10.tar.gz --set
model.name=resnet ...` or `honed train tabular ...`; nothing is chosen on the test split (fine-tuning stops
on the run's own validation rows).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from common import table, timed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--target", type=float, default=0.5)
    parser.add_argument("--finetune-epochs", type=int, default=1, help="per round")
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    for run in args.runs:
        with tempfile.TemporaryDirectory() as tmp:
            wall, _, _ = timed([sys.executable, "-m", "honed", "prune", str(run), "--target", str(args.target),
                                "--finetune-epochs", str(args.finetune_epochs), "--rounds", str(args.rounds),
                                "--out", f"{tmp}/pruned"])
            report = json.loads(Path(f"{tmp}/pruned/prune.json").read_text())
        rows = []
        for v in report["versions"]:
            metric = next(k for k in v if k.startswith("test "))
            low, high = v["95% interval"] or (float("nan"), float("nan"))
            fmt = lambda t: "-" if t is None else f"{t:.4f}"  # noqa: E731
            rows.append([v["version"], f"{v['params']:,}" if v["params"] else "-", f"{v['MACs']:,}" if v["MACs"] else "-",
                         f"{v['weights MB']:.2f}", fmt(v["torch ms, batch 1"]), fmt(v["torch ms, batch 64"]),
                         fmt(v["ONNX Runtime ms, batch 1"]), fmt(v["ONNX Runtime ms, batch 64"]),
                         f"{100 * v[metric]:.2f}% ({100 * low:.2f}-{100 * high:.2f})" if metric == "test accuracy"
                         else f"{v[metric]:.4f}"])
        d = report["pruned_vs_before"]
        print(f"\n{run} ({report['widths_changed']}, {report['finetune_epochs']} fine-tuning epoch(s) over "
              f"{len(report['rounds'])} round(s), {report['rows']} test rows, {wall:.0f} s)\n")
        print(table(["version", "params", "MACs", "weights MB", "torch ms b1", "torch ms b64", "ORT ms b1", "ORT ms b64",
                     "test accuracy (95% interval)"], rows))
        speed = ", ".join(f"{k.replace(' ms', '')} {v:.2f}x" for k, v in report["speed_up"].items())
        print(f"\nspeed-up: {speed}; pruned - before: {d['difference']:+.2f} {d['metric']}, paired p = {d['p']:.3g}")


if __name__ == "__main__":
    main()
