"""model.dropout_schedule: flat_cos keeps each dropout layer's rate for the first half of the planned steps, then
follows 0.5 x (1 + cos(pi x (2t - 1))) to 0; set in a recipe's regression: section it anneals regression only; the
rates come back once trained."""

import math
from types import SimpleNamespace

import pytest
import torch

from honed.models.layers import BitsDropout
from honed.training import Hook
from honed.training.dropout_schedule import DropoutSchedule, dropout_layers, flat_cos


def test_flat_cos_rates_follow_the_formula_on_every_dropout_layer_and_come_back():
    model = torch.nn.Sequential(torch.nn.Linear(2, 4), torch.nn.Dropout(0.2), BitsDropout(0.4))
    hook = DropoutSchedule(total_steps=20)
    trainer = SimpleNamespace(model=model, step=0)
    hook.on_fit_start(trainer)
    for step in range(1, 21):
        trainer.step = step
        hook.on_step_end(trainer, None)
        t = step / 20
        factor = 1.0 if t <= 0.5 else 0.5 * (1 + math.cos(math.pi * (2 * t - 1)))
        assert model[1].p == pytest.approx(0.2 * factor)
        assert model[2].p == pytest.approx(0.4 * factor)
        assert model[2].threshold == round(0.4 * factor * BitsDropout.LEVELS)  # the mask follows the rate
    assert model[1].p == 0 and model[2].p == 0  # the last step trains without dropout
    assert flat_cos(0.75) == pytest.approx(0.5)
    hook.on_fit_end(trainer)
    assert model[1].p == 0.2 and model[2].p == 0.4 and model[2].scale == 256 / (256 - round(0.4 * 256))  # p to 1/256


def test_zero_rate_bits_dropout_passes_its_input_through():
    layer = BitsDropout(0.3).train()
    layer.set_p(0.0)
    x = torch.randn(64, 8)
    assert torch.equal(layer(x), x)


class Rates(Hook):
    def __init__(self):
        self.seen = []

    def on_step_end(self, trainer, loss):
        self.seen.append(dropout_layers(trainer.model)[0].p)


@pytest.mark.parametrize("data, annealing", [({"source": "synthetic_regression", "n": 200, "features": 3}, True),
                                             ({"source": "sklearn", "name": "iris"}, False)])
def test_the_loop_anneals_a_regression_sections_schedule_on_regression_only_over_the_planned_steps(data, annealing):
    from honed.data import build_data
    from honed.models import Shape, build_model
    from honed.recipe import load_recipe
    from honed.api import for_task
    from honed.training import fit

    recipe = load_recipe({"data": data,
                          "model": {"name": "mlp", "hidden": [8], "dropout": 0.3},
                          "train": {"epochs": 4, "batch_size": 40},
                          "regression": {"model.dropout_schedule": "flat_cos"}})
    bundle = build_data(recipe.data)
    recipe = for_task(recipe, bundle.task)  # as a run applies it, once the data says what the target is
    model = build_model(recipe.model, Shape(bundle.input_kind, bundle.input_dim, bundle.output_dim))
    rates = Rates()
    fit(model, bundle, recipe, extra_hooks=[rates])
    # hooks run in order: the schedule has set the next step's rate when Rates reads it
    steps = len(rates.seen)
    expected = [0.3 * flat_cos((i + 1) / steps) if annealing else 0.3 for i in range(steps)]
    assert rates.seen == pytest.approx(expected)
