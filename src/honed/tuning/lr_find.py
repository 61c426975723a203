"""The learning-rate range test (Smith, 2015), with a suggestion that holds up on real curves.

A short run raises the learning rate exponentially from `min_lr` to `max_lr`, one step at a
time, and records the training loss. The suggestion is one decade below the rate of the lowest
smoothed loss, provided the loss still falls steeply there (else the steepest point), measured
robustly:
  - the curve is smoothed with a running median (an early spike or a noisy step moves nothing)
    and then a running mean, both centred, so the smoothed curve does not lag behind the rates;
  - the sweep stops at the first NaN/inf loss or once the smoothed loss climbs past four times
    its best (divergence), and only the part before the smoothed minimum is considered;
  - the slope at each rate is a least-squares line over a window of neighbouring points, so one
    lucky batch cannot make a point look steep; the suggestion must fall at least a quarter as
    fast as the steepest point (the steepest point alone is too cautious for long runs: on the
    test problems it sat 3-30x below the best rate of a grid);
  - the sweep is repeated with a second seed (another initialization and batch order); the
    suggestion is the geometric mean of both, and their agreement is reported as confidence.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from honed.api import prepare, sized_for_rows
from honed.recipe import Recipe, variant
from honed.training import Hook, NonFiniteLoss
from honed.training.device import seed_everything
from honed.training.loop import run as run_loop
from honed import runfiles

DIVERGENCE = 4.0  # the sweep stops when the smoothed loss exceeds this many times its best
STEEP_ENOUGH = 0.25  # a suggestion must fall at least this fraction as fast as the steepest point


@dataclass
class Sweep:
    """One range test: the rates tried, the losses seen, and what they suggest."""

    seed: int
    lrs: list[float]
    losses: list[float]
    smoothed: list[float] = field(default_factory=list)
    slopes: list[float] = field(default_factory=list)
    stop: str = ""
    suggestion: float | None = None
    minimum_lr: float | None = None
    steepest_lr: float | None = None
    note: str = ""


@dataclass
class Finding:
    """The answer of `honed lr-find`: one rate, how sure, and each sweep behind it."""

    suggestion: float | None
    confidence: str  # high | medium | low
    agreement: float | None  # largest / smallest suggestion across seeds (1.0 = identical)
    sweeps: list[Sweep]
    notes: list[str]

    def to_dict(self) -> dict:
        return asdict(self)


class RangeTest(Hook):
    """Raises the learning rate exponentially, one optimizer step at a time, records each step's loss,
    and stops the run once the loss diverges or the sweep has its `steps` points.

    It sets the rate after the schedule's own per-step update (the recipe's schedule is constant here),
    so the loop's step — precision, accumulation, clipping, bucketing, compile, workers — is untouched.
    """

    def __init__(self, sweep: Sweep, min_lr: float, max_lr: float, steps: int) -> None:
        self.sweep, self.min_lr, self.steps = sweep, min_lr, steps
        self.growth = (max_lr / min_lr) ** (1 / max(1, steps - 1))
        self.best, self.ema = math.inf, None

    def rate(self) -> float:
        return self.min_lr * self.growth ** len(self.sweep.losses)

    def set_rate(self, trainer) -> None:
        for group in trainer.optimizer.param_groups:
            group["lr"] = self.rate()

    def on_fit_start(self, trainer) -> None:
        self.set_rate(trainer)

    def on_step_end(self, trainer, loss: float | None) -> None:
        sweep = self.sweep
        sweep.lrs.append(self.rate())
        sweep.losses.append(loss)
        # a fast running average only to notice divergence; the suggestion uses `smooth` below
        self.ema = loss if self.ema is None else 0.8 * self.ema + 0.2 * loss
        self.best = min(self.best, self.ema)
        if len(sweep.losses) > self.steps // 10 and self.ema > DIVERGENCE * self.best:
            trainer.stop_reason = sweep.stop = f"loss diverged at lr {sweep.lrs[-1]:.3g}"
        elif len(sweep.losses) >= self.steps:
            trainer.stop_reason = "the sweep has all its steps"
        else:
            self.set_rate(trainer)


def sweep_recipe(recipe: Recipe, bundle, min_lr: float, steps: int) -> Recipe:
    """The recipe as a range test runs it: a constant schedule, enough epochs for `steps` steps, and none of
    the options that would end the run early or write files (early stopping, a target, checkpoints)."""
    from honed.training.batches import Batches
    from honed.training.optimizers import FULL_BATCH

    # batch_size = auto resolved; one model's rate (a bag's members each train at the recipe's rate)
    recipe = sized_for_rows(variant(recipe, {"train.steps": None, "model.bags": 1}), len(bundle.train),
                            images=bundle.image_shape is not None)
    spec = recipe.train
    per_epoch = Batches(bundle.train.x, bundle.train.y, spec.batch_size, False, 0,
                        full_batch=recipe.optimizer.name in FULL_BATCH, accumulate=spec.accumulate).steps_per_epoch
    return variant(recipe, {"optimizer.lr": min_lr, "schedule.name": "constant", "schedule.warmup_epochs": 0.0,
                            "train.epochs": math.ceil(steps / per_epoch), "train.early_stopping": None,
                            "train.target": None, "train.stop_at_target": False, "train.checkpoint": None,
                            "train.convergence_tol": None})


def range_test(recipe: Recipe, bundle, seed: int, min_lr: float, max_lr: float, steps: int) -> Sweep:
    """Train with the rate rising exponentially from min_lr to max_lr over `steps` steps: an ordinary `fit`."""
    seed_everything(seed)
    sweep = Sweep(seed, [], [])
    no_validation = replace(bundle, val=None)  # the sweep reads training losses only
    swept = variant(sweep_recipe(recipe, bundle, min_lr, steps), {"seed": seed})
    try:
        run_loop(prepare(swept, no_validation, hooks=[RangeTest(sweep, min_lr, max_lr, steps)]))
    except NonFiniteLoss as e:
        sweep.stop = f"loss became {e.value} at lr {min_lr * (max_lr / min_lr) ** (len(sweep.losses) / max(1, steps - 1)):.3g}"
    sweep.stop = sweep.stop or f"reached max_lr {max_lr:g} without diverging"
    suggest(sweep)
    return sweep


def smooth(values: np.ndarray, window: int) -> np.ndarray:
    """Centred running median, then centred running mean (windows shrink at the ends)."""
    half = window // 2
    n = len(values)
    median = np.array([np.median(values[max(0, i - half): i + half + 1]) for i in range(n)])
    return np.array([median[max(0, i - half): i + half + 1].mean() for i in range(n)])


def slopes(x: np.ndarray, y: np.ndarray, window: int) -> np.ndarray:
    """Least-squares slope of y against x over a centred window at each point."""
    half = window // 2
    out = np.zeros(len(x))
    for i in range(len(x)):
        xs, ys = x[max(0, i - half): i + half + 1], y[max(0, i - half): i + half + 1]
        xc = xs - xs.mean()
        out[i] = float((xc * (ys - ys.mean())).sum() / max((xc * xc).sum(), 1e-12))
    return out


def suggest(sweep: Sweep) -> None:
    """Fill in the sweep's smoothed curve, slopes and suggested rate."""
    n = len(sweep.losses)
    if n < 8:
        sweep.note = f"only {n} steps before the loss broke down: lower --min-lr"
        return
    window = max(5, (n // 10) | 1)
    x, y = np.log10(sweep.lrs), smooth(np.asarray(sweep.losses), window)
    slope = slopes(x, y, window)
    sweep.smoothed, sweep.slopes = y.tolist(), slope.tolist()
    lowest = int(np.argmin(y))
    sweep.minimum_lr = sweep.lrs[lowest]
    start = max(1, n // 20)  # the first few rates barely move the weights: their slope is noise
    if lowest - start < 3:
        sweep.note = "the loss is lowest at the start of the sweep: lower --min-lr"
        sweep.suggestion = sweep.lrs[lowest] / 10
        return
    steepest = start + int(np.argmin(slope[start:lowest]))
    if slope[steepest] >= 0:
        sweep.note = "the loss never fell: check the data, or widen the range"
        sweep.suggestion = sweep.lrs[lowest] / 10
        return
    # One decade below the minimum: fast, yet clear of where the loss turns. The point must still be
    # on the steep part of the descent; if the loss barely moves there, take the steepest point.
    target = int(np.searchsorted(sweep.lrs, sweep.lrs[lowest] / 10))
    if target < start or slope[target] > STEEP_ENOUGH * slope[steepest]:
        target = steepest
    sweep.steepest_lr, sweep.suggestion = sweep.lrs[steepest], sweep.lrs[target]


def combine(sweeps: list[Sweep]) -> Finding:
    """One suggestion from several seeds, with how well they agree."""
    found = [s.suggestion for s in sweeps if s.suggestion]
    notes = sorted({s.note for s in sweeps if s.note})
    if not found:
        return Finding(None, "low", None, sweeps, notes or ["no sweep gave a suggestion"])
    suggestion = float(math.exp(np.mean(np.log(found))))
    agreement = max(found) / min(found) if len(found) > 1 else None
    if agreement is None:
        confidence = "medium"
    else:
        confidence = "high" if agreement <= 2 else "medium" if agreement <= 4 else "low"
    if any(s.note for s in sweeps):
        confidence = "low"
    if all(s.stop.startswith("reached") for s in sweeps):
        notes.append("the loss never diverged: a higher --max-lr would show the whole curve")
    return Finding(suggestion, confidence, agreement, sweeps, notes)


def lr_find(recipe, overrides=(), *, min_lr: float = 1e-6, max_lr: float = 10.0, steps: int = 100, seeds: int = 2,
            out=None) -> tuple[Finding, Path]:
    """Run the range test with `seeds` seeds; write lr_find.json and lr_find.png into a new folder."""
    from honed.data import build_data
    from honed.errors import UserError
    from honed.recipe import load_recipe
    from honed.run import new_run_dir, write_json
    from honed.tuning.plots import plot_lr_find

    if not 0 < min_lr < max_lr < math.inf:
        raise UserError(f"--min-lr {min_lr:g} / --max-lr {max_lr:g}: need 0 < min-lr < max-lr, both finite")
    if not 10 <= steps <= 100_000:
        raise UserError(f"--steps {steps}: the range test takes 10 to 100,000 steps (100 is usual)")
    if not 1 <= seeds <= 20:
        raise UserError(f"--seeds {seeds}: give 1 to 20")
    recipe = load_recipe(recipe, overrides)
    bundle = build_data(recipe.data)
    sweeps = [range_test(recipe, bundle, recipe.seed + i, min_lr, max_lr, steps) for i in range(seeds)]
    finding = combine(sweeps)
    run_dir = new_run_dir(f"{recipe.name}-lr-find", out)
    write_json(run_dir / runfiles.LR_FIND_JSON, {"recipe": recipe.name, "optimizer": recipe.optimizer.name,
                                         "min_lr": min_lr, "max_lr": max_lr, "steps": steps} | finding.to_dict())
    plot_lr_find(finding, run_dir / runfiles.LR_FIND_PNG, f"{recipe.name}: {recipe.optimizer.name} range test")
    return finding, run_dir


def apply_suggestion(recipe, overrides, finding: Finding, target: Path) -> Path:
    """Write the recipe (with its overrides) with optimizer.lr set to the suggested rate, to `target`."""
    from honed.recipe import dump_recipe, load_recipe
    from honed.run import write_text

    rate = f"optimizer.lr={finding.suggestion:.4g}"
    write_text(target, dump_recipe(load_recipe(recipe, list(overrides) + [rate])))
    return target
