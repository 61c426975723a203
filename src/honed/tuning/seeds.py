"""`honed train RECIPE --seeds 0,1,2`: the recipe once per seed, and how far the test metrics move with
the seed alone — the noise any difference between two recipes must beat."""

from __future__ import annotations

import logging
from pathlib import Path

from honed.errors import UserError
from honed.recipe import load_recipe
from honed.run import timestamped, write_json
from honed.tuning.cv import summarize

log = logging.getLogger("honed")


def parse_seeds(text: str) -> list[int]:
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise UserError(f"--seeds {text!r}: give whole numbers separated by commas, e.g. 0,1,2") from None
    if len(seeds) < 2 or len(set(seeds)) != len(seeds):
        raise UserError(f"--seeds {text!r}: give two or more different seeds, e.g. 0,1,2")
    return seeds


def across_seeds(recipe, seeds: list[int], overrides=(), *, out=None) -> dict:
    """Train the recipe once per seed (every seeded choice changes: initialization, data order, splits carved
    from the training rows); returns {'runs': [...], 'stats': {metric: mean, std, ci95}} and writes seeds.json."""
    from honed import api

    user = load_recipe(recipe, list(overrides))
    out = Path(out) if out else timestamped(f"{user.name}-seeds")
    runs = []
    for seed in seeds:
        run = api.train(load_recipe(user, [f"seed={seed}", f"data.seed={seed}"]), out=out / f"seed-{seed}")
        test = {k: v for k, v in run.summary["test"].items() if isinstance(v, float)}
        runs.append({"seed": seed, **test, "seconds": run.summary["total_seconds"], "path": str(run.path)})
        log.info(f"seeds: seed {seed}: " + ", ".join(f"test {k} {v:.4f}" for k, v in test.items()))
    names = [k for k in runs[0] if k not in ("seed", "seconds", "path")]
    report = {"recipe": user.name, "seeds": seeds, "runs": runs, "stats": summarize(runs, names)}
    write_json(out / "seeds.json", report)
    return report | {"out": out}
