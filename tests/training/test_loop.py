import numpy as np
import pytest
import torch

from honed.data import build_data
from honed.models import Shape, build_model
from honed.recipe import load_recipe
from honed.training import Hook, NonFiniteLoss, fit


def setup(fields: dict):
    recipe = load_recipe({"data": {"source": "synthetic_regression", "n": 200, "features": 3}} | fields)
    bundle = build_data(recipe.data)
    torch.manual_seed(0)
    model = build_model(recipe.model, Shape(bundle.input_kind, bundle.input_dim, bundle.output_dim))
    return recipe, bundle, model


class CountSteps(Hook):
    def __init__(self):
        self.steps = 0

    def on_step_end(self, trainer, loss):
        self.steps += 1


def test_gd_takes_exactly_one_step_per_epoch_with_the_full_batch_gradient():
    recipe, bundle, model = setup({"optimizer": {"name": "gd", "lr": 0.1}, "train": {"epochs": 3, "batch_size": 7}})
    w0 = model.linear.weight.detach().clone()
    b0 = model.linear.bias.detach().clone()
    counter = CountSteps()
    fit(model, bundle, recipe, [counter])
    assert counter.steps == 3
    # Reference: three plain full-batch gradient steps computed by hand with torch.
    x, y = bundle.train.x, bundle.train.y
    w, b = w0.clone().requires_grad_(), b0.clone().requires_grad_()
    for _ in range(3):
        loss = ((x @ w.T).squeeze(-1) + b - y).pow(2).mean()
        gw, gb = torch.autograd.grad(loss, [w, b])
        w, b = (w - 0.1 * gw).detach().requires_grad_(), (b - 0.1 * gb).detach().requires_grad_()
    assert torch.allclose(model.linear.weight, w, atol=1e-5)
    assert torch.allclose(model.linear.bias, b, atol=1e-5)


def test_sgd_steps_per_epoch():
    recipe, bundle, model = setup({"optimizer": {"name": "sgd", "lr": 0.01, "momentum": 0.9},
                                   "train": {"epochs": 2, "batch_size": 32}})
    counter = CountSteps()
    fit(model, bundle, recipe, [counter])
    assert counter.steps == 2 * int(np.ceil(len(bundle.train) / 32))


class KeepWeights(Hook):
    def __init__(self):
        self.by_epoch = {}

    def on_epoch_end(self, trainer, record):
        self.by_epoch[record["epoch"]] = trainer.model.linear.weight.detach().clone()


def test_early_stopping_stops_after_patience_and_restores_the_best_epoch():
    recipe, bundle, model = setup({"optimizer": {"name": "sgd", "lr": 0.05},
                                   "train": {"epochs": 100, "early_stopping": {"patience": 2, "min_delta": 0.01}}})
    kept = KeepWeights()
    trainer = fit(model, bundle, recipe, [kept])
    assert trainer.stop_reason.startswith("early stopping")
    losses = [r["val_loss"] for r in trainer.history]
    best = trainer.best_epoch
    assert trainer.epoch == best + 3  # patience 2: the third epoch without improvement stops
    assert all(losses[best - 1] - v <= 0.01 for v in losses[best:])
    assert torch.equal(model.linear.weight, kept.by_epoch[best])
    assert not torch.equal(model.linear.weight, kept.by_epoch[trainer.epoch])


def test_convergence_stop():
    recipe, bundle, model = setup({"optimizer": {"name": "gd", "lr": 0.1},
                                   "train": {"epochs": 1000, "convergence_tol": 1e-6}})
    trainer = fit(model, bundle, recipe)
    assert trainer.stop_reason.startswith("converged") and trainer.epoch < 1000
    losses = [r["train_loss"] for r in trainer.history]
    assert abs(losses[-1] - losses[-2]) < 1e-6


def test_decoupled_weight_decay_shrinks_weights_without_gradient():
    recipe, bundle, model = setup({"optimizer": {"name": "sgd", "lr": 0.1, "weight_decay": 0.5}})
    from honed.training import build_optimizer

    layer = torch.nn.Linear(3, 1, bias=False)
    p = layer.weight
    torch.nn.init.ones_(p)
    opt = build_optimizer(layer, recipe.optimizer)
    p.grad = torch.zeros_like(p)
    opt.step()
    assert torch.allclose(p, torch.full((1, 3), 1 - 0.1 * 0.5))


def test_nan_loss_stops_with_where_and_last_good_weights():
    recipe, bundle, model = setup({"optimizer": {"name": "sgd", "lr": 0.01}, "train": {"epochs": 20}})

    class BreakInEpochThree(Hook):  # keeps epoch 2's weights, then makes a loss of epoch 3 infinite
        def on_epoch_end(self, trainer, record):
            if record["epoch"] == 2:
                self.kept = {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}

        def on_step_end(self, trainer, loss):
            if trainer.epoch == 3:
                with torch.no_grad():
                    model.linear.weight.fill_(float("inf"))

    hook = BreakInEpochThree()
    with pytest.raises(NonFiniteLoss) as e:
        fit(model, bundle, recipe, [hook])
    assert e.value.epoch == 3 and e.value.step >= 1 and e.value.last_good.epoch == 2
    good = e.value.last_good.weights
    assert good.keys() == hook.kept.keys() and all(torch.equal(good[k], hook.kept[k]) for k in good)


def test_a_loss_that_breaks_in_the_first_epoch_keeps_no_weights():
    """Nothing is learned yet, so nothing is copied: the initial weights are not held through the run."""
    recipe, bundle, model = setup({"optimizer": {"name": "sgd", "lr": 1e6}, "train": {"epochs": 20}})
    with pytest.raises(NonFiniteLoss) as e:
        fit(model, bundle, recipe)
    assert e.value.epoch == 1 and e.value.last_good.weights is None


def test_time_to_target_is_recorded_and_can_stop_training():
    fields = {"optimizer": {"name": "sgd", "lr": 0.05}, "train": {"epochs": 40, "target": {"metric": "r2", "value": 0.9}}}
    recipe, bundle, model = setup(fields)
    trainer = fit(model, bundle, recipe)
    result = trainer.results["time_to_target"]
    r2 = [r["val_r2"] for r in trainer.history]
    first = next(i + 1 for i, v in enumerate(r2) if v >= 0.9)
    assert result["reached"] and result["epoch"] == first and result["seconds"] > 0
    assert trainer.epoch == 40  # recorded, not stopped

    fields["train"]["stop_at_target"] = True
    recipe, bundle, model = setup(fields)
    trainer = fit(model, bundle, recipe)
    assert trainer.epoch == first and trainer.stop_reason.startswith("target reached")


def test_a_loss_target_counts_downwards_and_stop_needs_a_target():
    recipe, bundle, model = setup({"optimizer": {"name": "sgd", "lr": 0.05},
                                   "train": {"epochs": 30, "target": {"metric": "loss", "value": 0.05},
                                             "stop_at_target": True}})
    trainer = fit(model, bundle, recipe)
    assert trainer.history[-1]["val_loss"] <= 0.05 and all(r["val_loss"] > 0.05 for r in trainer.history[:-1])
    from honed.errors import UserError

    with pytest.raises(UserError, match="stop_at_target needs train.target"):
        load_recipe({"train": {"stop_at_target": True}})


def test_the_last_epochs_weights_are_never_copied_and_an_earlier_best_is_restored():
    """Snapshots are taken when the next epoch starts: a one-epoch run holds no second model, and early stopping
    still ends on its best epoch's weights."""
    recipe, bundle, model = setup({"optimizer": {"name": "sgd", "lr": 0.01}, "train": {"epochs": 1,
                                   "early_stopping": {"patience": 5}}})
    trainer = fit(model, bundle, recipe)
    stopper = next(h for h in trainer.hooks if type(h).__name__ == "EarlyStopping")
    assert trainer.results["last_good"].weights is None and stopper.best_weights is None

    recipe, bundle, model = setup({"optimizer": {"name": "sgd", "lr": 0.05}, "train": {"epochs": 4,
                                   "early_stopping": {"patience": 5}}})

    class WorseAfterTwo(Hook):  # epochs 3 and 4 validate worse than epoch 2
        def on_epoch_end(self, trainer, record):
            if record["epoch"] == 2:
                self.kept = {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}

        def on_step_end(self, trainer, loss):
            if trainer.epoch >= 3:
                with torch.no_grad():
                    model.linear.bias.add_(10.0)

    hook = WorseAfterTwo()
    trainer = fit(model, bundle, recipe, [hook])
    assert trainer.results["best_epoch"] == 2
    assert all(torch.equal(v, hook.kept[k]) for k, v in model.state_dict().items())
