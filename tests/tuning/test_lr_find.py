"""The learning-rate range test: robust suggestions, checked against a grid of real training runs."""

import math

import numpy as np
import pytest

import honed
from honed.data import build_data
from honed.recipe import load_recipe
from honed.tuning.lr_find import Sweep, combine, range_test, suggest

DIGITS_SGD = {"name": "digits_sgd", "data": {"source": "sklearn", "name": "digits"},
              "model": {"name": "mlp", "hidden": [64]}, "optimizer": {"name": "sgd", "momentum": 0.9},
              "train": {"epochs": 5, "batch_size": 32, "checkpoint": None}}
LINEAR_GD = {"name": "linear_gd", "data": {"source": "synthetic_regression", "n": 500}, "model": {"name": "linear"},
             "optimizer": {"name": "gd"}, "train": {"epochs": 30, "checkpoint": None}}


def synthetic_sweep(noise: float = 0.0, spike_at: int | None = None, seed: int = 0) -> Sweep:
    """A textbook range-test curve: flat, steep fall centred at lr 1e-2, flat, then divergence."""
    lrs = np.logspace(-6, 1, 100)
    x = np.log10(lrs)
    loss = 1.0 + 1.5 / (1 + np.exp(2.5 * (x + 2))) + np.where(x > -0.3, 50 * (x + 0.3) ** 2, 0)
    loss = loss + np.random.default_rng(seed).normal(0, noise, len(lrs))
    if spike_at is not None:
        loss[spike_at] += 5.0
    return Sweep(seed, lrs.tolist(), loss.tolist())


def test_the_suggestion_sits_on_the_descent_before_the_minimum():
    sweep = synthetic_sweep()
    suggest(sweep)
    assert sweep.minimum_lr is not None and sweep.suggestion < sweep.minimum_lr
    i = sweep.lrs.index(sweep.suggestion)
    assert sweep.slopes[i] < 0  # the loss still falls there
    assert 1e-3 < sweep.suggestion < 1e-1


def test_an_early_spike_and_noise_do_not_move_the_suggestion_much():
    clean = synthetic_sweep()
    suggest(clean)
    for sweep in (synthetic_sweep(noise=0.05, seed=1), synthetic_sweep(spike_at=8), synthetic_sweep(spike_at=30)):
        suggest(sweep)
        assert 0.5 < sweep.suggestion / clean.suggestion < 2


def test_seeds_that_agree_give_high_confidence_and_disagreement_lowers_it():
    a, b = synthetic_sweep(noise=0.02, seed=1), synthetic_sweep(noise=0.02, seed=2)
    for s in (a, b):
        suggest(s)
    finding = combine([a, b])
    assert finding.confidence == "high" and finding.agreement < 2
    assert finding.suggestion == pytest.approx(math.sqrt(a.suggestion * b.suggestion))
    far = Sweep(3, a.lrs, a.losses, suggestion=a.suggestion * 20)
    assert combine([a, far]).confidence == "low"


def test_a_nan_loss_ends_the_sweep_and_the_rates_before_it_are_used():
    recipe = load_recipe(LINEAR_GD)
    sweep = range_test(recipe, build_data(recipe.data), 0, 1e-6, 1e6, 120)
    assert "diverged" in sweep.stop or "loss became" in sweep.stop
    assert all(math.isfinite(v) for v in sweep.losses)
    assert sweep.suggestion is not None and sweep.suggestion < sweep.lrs[-1]


@pytest.mark.parametrize("raw", [DIGITS_SGD, LINEAR_GD], ids=["digits-mlp-sgd", "linear-gd"])
def test_the_suggested_rate_trains_as_well_as_the_best_rate_of_a_grid(raw, tmp_path):
    recipe = load_recipe(raw)
    finding, out = honed.lr_find(recipe, out=tmp_path / "find")
    assert (out / "lr_find.png").read_bytes()[:4] == b"\x89PNG" and (out / "lr_find.json").is_file()
    assert finding.confidence in ("high", "medium")

    def val_loss(lr: float) -> float:
        try:
            return honed.train(recipe, [f"optimizer.lr={lr}"], out=tmp_path / f"lr{lr:.3g}", score_test=False
                               ).summary["val"]["loss"]
        except honed.UserError:  # diverged
            return math.inf

    grid = [10.0 ** e for e in np.arange(-3, 0.01, 0.5)]
    best = min(val_loss(lr) for lr in grid)
    assert val_loss(finding.suggestion) <= best * 1.15 + 0.01


def test_the_range_test_runs_the_loops_own_step_with_precision_accumulation_and_clipping(monkeypatch):
    """lr-find is an ordinary prepare + run: the recipe's step settings reach it (a copy of the step would drop them)."""
    import sys

    from honed.training.loop import grad_norm

    module = sys.modules[range_test.__module__]  # honed.tuning.lr_find (the package exports a function of that name)
    trainers = []
    real_run = module.run_loop
    monkeypatch.setattr(module, "run_loop", lambda t: trainers.append(real_run(t)) or trainers[-1])
    recipe = load_recipe(DIGITS_SGD, ["train.precision=bf16-mixed", "train.accumulate=2", "train.clip_grad_norm=0.01"])
    sweep = range_test(recipe, build_data(recipe.data), 0, 1e-4, 10.0, 40)
    trainer = trainers[0]
    assert trainer.recipe.train.precision == "bf16-mixed" and trainer.batches.accumulate == 2
    assert trainer.step == len(sweep.losses) == 40  # one recorded point per optimizer step (two batches each)
    assert grad_norm(trainer.model) <= 0.01 * 1.001  # the last step's gradients were clipped
    # clipped steps of at most lr * 0.01 cannot blow up even at lr 10: the sweep reaches its end
    assert sweep.stop.startswith("reached max_lr")
