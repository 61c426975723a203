import math

import pytest
import torch

from honed.errors import UserError
from honed.recipe import load_recipe
from honed.training.schedules import Schedule

LR, SPE, EPOCHS = 0.1, 4, 5
TOTAL = SPE * EPOCHS


def lrs(schedule_fields: dict, steps: int = TOTAL) -> list[float]:
    spec = load_recipe({"schedule": schedule_fields}).schedule
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=LR)
    sched = Schedule(opt, spec, SPE, EPOCHS)
    seen = []
    for _ in range(steps):
        seen.append(sched.lr)
        opt.step()
        sched.after_step()
    return seen


def close(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x == pytest.approx(y, rel=1e-6, abs=1e-12)


def test_constant():
    close(lrs({"name": "constant"}), [LR] * TOTAL)


def test_exponential_decays_by_gamma_per_epoch():
    close(lrs({"name": "exponential", "gamma": 0.5}), [LR * 0.5 ** (t / SPE) for t in range(TOTAL)])


def test_linear_decay():
    close(lrs({"name": "linear", "end_factor": 0.0}), [LR * (1 - t / TOTAL) for t in range(TOTAL)])


def test_step():
    close(lrs({"name": "step", "step_epochs": 2, "gamma": 0.1}), [LR * 0.1 ** (t // (2 * SPE)) for t in range(TOTAL)])


def test_cosine():
    eta = 0.001
    expected = [eta + (LR - eta) * (1 + math.cos(math.pi * t / TOTAL)) / 2 for t in range(TOTAL)]
    close(lrs({"name": "cosine", "min_lr": eta}), expected)


def test_warmup_then_cosine():
    w, start = SPE, 0.01  # one epoch of warmup
    ramp = [LR * (start + (1 - start) * t / w) for t in range(w)]
    rest = TOTAL - w
    cos = [0.5 * LR * (1 + math.cos(math.pi * t / rest)) for t in range(rest)]
    close(lrs({"name": "cosine", "warmup_epochs": 1, "warmup_start_factor": start}), ramp + cos)


def test_onecycle_rises_to_lr_then_falls():
    seen = lrs({"name": "onecycle", "pct_start": 0.25})
    peak = seen.index(max(seen))
    assert max(seen) == pytest.approx(LR)
    assert seen[0] == pytest.approx(LR / 25)  # torch's default div_factor
    assert 3 <= peak <= 6 and seen[-1] < seen[0]
    assert all(a <= b for a, b in zip(seen[:peak], seen[1 : peak + 1]))


def test_plateau_cuts_after_patience_epochs():
    spec = load_recipe({"schedule": {"name": "plateau", "factor": 0.5, "patience": 1}}).schedule
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=LR)
    sched = Schedule(opt, spec, SPE, EPOCHS)
    seen = []
    for value in [1.0, 0.9, 0.95, 0.97, 0.99]:
        sched.after_step()  # per-step calls do nothing for plateau
        sched.after_epoch(value)
        seen.append(sched.lr)
    close(seen, [LR, LR, LR, LR / 2, LR / 2])


def test_warmup_longer_than_run_is_an_error():
    with pytest.raises(UserError, match="warmup_epochs"):
        lrs({"name": "cosine", "warmup_epochs": 6})
