"""What honed's training loop costs over a hand-written PyTorch loop doing the same work.

Same tensors (the recipe's preprocessed IMDB training split), same model and initialization,
same optimizer and learning-rate schedule, same batches in the same order (same seeded
permutation, trailing padding trimmed per batch), same number of steps. Validation is
switched off for both, so the ratio is the loop alone: batching, hooks, logging, NaN checks.
The final weights of the two are compared to show the work really was the same.

    .venv/bin/python benchmarks/loop_overhead.py [--data PATH] [--epochs 2] [--repeats 3]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
from pathlib import Path

import torch

from honed.data import build_data
from honed.data.bundle import trim_padding
from honed.models import Shape, build_model
from honed.recipe import load_recipe
from honed.training import build_loss, fit
from honed.training.optimizers import build_optimizer
from honed.training.schedules import Schedule

ROOT = Path(__file__).resolve().parent.parent


def hand_written(model, x, y, recipe, seed: int) -> float:
    """The loop a user would write; returns seconds."""
    loss_fn = build_loss(recipe.loss, "binary")
    optimizer = build_optimizer(model, recipe.optimizer)
    steps = -(-len(y) // recipe.train.batch_size)
    schedule = Schedule(optimizer, recipe.schedule, steps, recipe.train.epochs)
    started = time.perf_counter()
    for epoch in range(1, recipe.train.epochs + 1):
        # the order honed's Batches uses: a permutation seeded by (seed + epoch), so resumes agree
        perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed + epoch))
        for i in range(0, len(y), recipe.train.batch_size):
            idx = perm[i : i + recipe.train.batch_size]
            optimizer.zero_grad(set_to_none=True)
            loss_fn(model(trim_padding(x[idx])), y[idx]).backward()
            optimizer.step()
            schedule.after_step()
    return time.perf_counter() - started


def compare(recipe_name: str, data: str, epochs: int, repeats: int) -> dict:
    recipe = load_recipe(ROOT / "recipes" / f"{recipe_name}.yaml",
                         [f"data.path={data}", f"train.epochs={epochs}", "train.bucketing=false"])
    bundle = build_data(recipe.data)
    bundle.val = None  # the loop alone
    shape = Shape(bundle.input_kind, bundle.input_dim, bundle.output_dim, bundle.image_shape)
    torch.manual_seed(recipe.seed)
    initial = build_model(recipe.model, shape)
    times = {"hand": [], "honed": []}
    for _ in range(repeats):  # alternating, so both see the same machine load
        hand = copy.deepcopy(initial)
        times["hand"].append(hand_written(hand, bundle.train.x, bundle.train.y, recipe, recipe.seed))
        ours = copy.deepcopy(initial)
        times["honed"].append(fit(ours, bundle, recipe, seed=recipe.seed).train_seconds)
    same = max((a - b).abs().max().item() for a, b in zip(hand.state_dict().values(), ours.state_dict().values()))
    return {k: statistics.median(v) for k, v in times.items()} | {"max_weight_diff": same}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "imdb" / "aclImdb_v1.tar.gz"))
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--recipes", nargs="*", default=["imdb_seed", "imdb_fast"])
    args = ap.parse_args()
    print(f"training seconds, median of {args.repeats}, {args.epochs} epochs, {torch.get_num_threads()} threads")
    print("| recipe's model | hand-written loop s | honed fit s | honed / hand-written | max weight difference |")
    print("| --- | --- | --- | --- | --- |")
    for name in args.recipes:
        r = compare(name, str(Path(args.data).resolve()), args.epochs, args.repeats)
        print(f"| {name} | {r['hand']:.2f} | {r['honed']:.2f} | {r['honed'] / r['hand']:.3f} | {r['max_weight_diff']:.1e} |")


if __name__ == "__main__":
    main()
