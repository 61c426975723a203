"""Mixed precision, torch.compile and deterministic mode against plain fp32, on IMDB models.

Each variant is its own `honed train` process on the same data and device (a GPU when there
is one); the table shows test accuracy, steady throughput (training samples per second in the
last epoch, after any compilation), the first epoch's seconds (which carry the compile time)
and the throughput ratio against fp32 measured in the same run.

    python benchmarks/accelerators.py [--data ARCHIVE | --train CSV --test CSV] [--epochs 3]
        [--workloads bag,cnn,lstm] [--variants fp32,bf16,fp16,compile,bf16+compile,deterministic]
"""

from __future__ import annotations

import argparse
import os
import tempfile

from common import add_data_arguments, data_sets, run_honed, table

WORKLOADS = {  # recipe and overrides; batch 256 keeps a GPU busy enough to show the precision effect
    "bag": ("recipes/imdb_seed.yaml", ["train.batch_size=256", "optimizer.lr=0.005"]),
    "cnn": ("recipes/imdb_seed.yaml", ["model.name=cnn", "model.channels=[128,128]", "model.kernel_size=5",
                                       "model.embedding_dim=64", "model.hidden=[]", "train.batch_size=256"]),
    "cnn-wide": ("recipes/imdb_seed.yaml", ["model.name=cnn", "model.channels=[512,512]", "model.kernel_size=5",
                                            "model.embedding_dim=256", "model.hidden=[]", "train.batch_size=512"]),
    "lstm": ("recipes/imdb_seed.yaml", ["model.name=rnn", "model.hidden_size=128", "model.embedding_dim=64",
                                        "model.hidden=[]", "train.batch_size=256", "data.max_len=256"]),
}
VARIANTS = {
    "fp32": [],
    "bf16": ["train.precision=bf16-mixed"],
    "fp16": ["train.precision=fp16-mixed"],
    "compile": ["train.compile=true"],
    "bf16+compile": ["train.precision=bf16-mixed", "train.compile=true"],
    "deterministic": ["train.deterministic=true"],
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_data_arguments(p)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--workloads", default=",".join(WORKLOADS))
    p.add_argument("--variants", default=",".join(VARIANTS))
    args = p.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as cache:
        env = {"HONED_CACHE": os.environ.get("HONED_CACHE", cache)}  # preprocessing is shared by all runs
        for workload in args.workloads.split(","):
            recipe, sets = WORKLOADS[workload]
            sets = data_sets(args) + sets + [f"train.epochs={args.epochs}", "train.checkpoint=null"]
            base = None
            for variant in args.variants.split(","):
                r = run_honed(recipe, sets + VARIANTS[variant], env=env)
                base = base or r["steady"]
                device = r["summary"]["device"]
                rows.append([workload, variant, device, f"{r['accuracy']:.2%}", f"{r['steady']:,.0f}",
                             f"{r['steady'] / base:.2f}", f"{r['first_epoch']:.1f}", f"{r['wall']:.1f}"])
                print(" | ".join(rows[-1]), flush=True)
    print()
    print(table(["model", "variant", "device", "test acc", "samples/s (steady)", "vs fp32", "first epoch s",
                 "end to end s"], rows))


if __name__ == "__main__":
    main()
