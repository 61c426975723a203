"""What train.track costs: a bundled recipe trained without tracking, with TensorBoard and with MLflow, alternating,
each as its own process; end-to-end and training seconds compared (the goal: at most 2% more).

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
    train: dict[str, list[float]] = {label: [] for label, _ in variants}
    wall: dict[str, list[float]] = {label: [] for label, _ in variants}
    for _ in range(args.repeats):
        for label, extra in variants:
            result = run_honed(args.recipe, sets + extra)
            train[label].append(result["summary"]["train_seconds"])
            wall[label].append(result["wall"])
    # training seconds alone mislead: a tracker's imports run before training, while the background imports
    # would otherwise still compete with the first epoch; end-to-end seconds carry the whole cost
    base_train, base_wall = statistics.median(train["no tracking"]), statistics.median(wall["no tracking"])
    rows = [[label, f"{statistics.median(train[label]):.2f}", f"{statistics.median(wall[label]):.2f}",
             ", ".join(f"{x:.1f}" for x in wall[label]), f"{statistics.median(wall[label]) / base_wall:.3f}x"]
            for label, _ in variants]
    print(table(["tracking", "median train s", "median end-to-end s", "each run (end to end)", "vs none"], rows))


if __name__ == "__main__":
    main()
