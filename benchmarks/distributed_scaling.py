"""Data-parallel scaling on this machine: the same IMDB recipe with 1 and with N worker processes.

Every run is `honed train` (N > 1 through torchrun with gloo on CPU), same global batch, same
seed. The table shows steady throughput (training samples per second in the last epoch),
seconds per epoch, test accuracy, and the scaling efficiency:
samples/s with N workers / (N x samples/s with one). On a 2-core machine the single
process already uses both cores through intra-op threads, so this measures what splitting
the batch across processes costs or buys; on a multi-GPU machine each worker gets a GPU.

    python benchmarks/distributed_scaling.py [--data ARCHIVE | --train CSV --test CSV] [--nproc 2] [--epochs 2]
"""

from __future__ import annotations

import argparse
import os
import tempfile

from common import add_data_arguments, data_sets, run_honed, table

RECIPES = ("imdb_seed", "imdb_fast")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_data_arguments(p)
    p.add_argument("--nproc", type=int, default=2)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--recipes", default=",".join(RECIPES))
    args = p.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as cache:
        env = {"HONED_CACHE": os.environ.get("HONED_CACHE", cache)}
        for recipe in args.recipes.split(","):
            sets = data_sets(args) + [f"train.epochs={args.epochs}", "train.checkpoint=null", "train.device=cpu"]
            one = None
            for n in (1, args.nproc):
                r = run_honed(f"recipes/{recipe}.yaml", sets, nproc=n, env=env)
                one = one or r["steady"]
                epoch = r["summary"]["sizes"]["train"] / r["steady"]
                rows.append([recipe, n, f"{r['accuracy']:.2%}", f"{r['steady']:,.0f}", f"{epoch:.1f}",
                             f"{r['steady'] / (n * one):.2f}", f"{r['wall']:.1f}"])
                print(" | ".join(map(str, rows[-1])), flush=True)
    print()
    print(table(["recipe", "workers", "test acc", "samples/s (steady)", "s per epoch", "scaling efficiency",
                 "end to end s"], rows))


if __name__ == "__main__":
    main()
