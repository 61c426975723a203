"""What train.track costs: a bundled recipe trained without tracking, with TensorBoard and with MLflow, alternating,
each as its own process; training seconds compared (the goal: at most 2% more).

    python benchmarks/tracking_overhead.py [--recipe imdb_fast] [--repeats 3] [--set key=value ...]
"""

from __future__ import annotations

import argparse
import statistics

from common import SHARED_IMDB, run_honed, table


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--recipe", default="imdb_fast")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    args = p.parse_args()
    sets = args.overrides or ([f"data.path={SHARED_IMDB}"] if args.recipe.startswith("imdb") else [])
    variants = (("no tracking", []), ("tensorboard", ["train.track=[tensorboard]"]), ("mlflow", ["train.track=[mlflow]"]))
    seconds: dict[str, list[float]] = {label: [] for label, _ in variants}
    for _ in range(args.repeats):
        for label, extra in variants:
            seconds[label].append(run_honed(args.recipe, sets + extra)["summary"]["train_seconds"])
    base = statistics.median(seconds["no tracking"])
    rows = [[label, f"{statistics.median(v):.2f}", ", ".join(f"{x:.2f}" for x in v), f"{statistics.median(v) / base:.3f}x"]
            for label, v in seconds.items()]
    print(table(["tracking", "median train s", "each run", "vs none"], rows))


if __name__ == "__main__":
    main()
