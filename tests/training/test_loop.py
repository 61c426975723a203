import json
import math

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


@pytest.mark.parametrize("restore_best", [True, False])
def test_the_kept_validation_outputs_are_those_of_the_weights_the_model_ends_with(restore_best):
    """Evaluation reuses the loop's last validation outputs instead of a second pass: they must be the outputs of
    the weights the model holds after fit (early stopping's restored epoch, or the last one when it restores
    nothing), equal to a fresh pass."""
    from honed.evaluation import outputs_of

    recipe, bundle, model = setup({"optimizer": {"name": "sgd", "lr": 0.05}, "train": {"epochs": 4,
                                   "early_stopping": {"patience": 5, "restore_best": restore_best}}})

    class WorseAfterTwo(Hook):  # epochs 3 and 4 validate worse than epoch 2
        def on_step_end(self, trainer, loss):
            if trainer.epoch >= 3:
                with torch.no_grad():
                    model.linear.bias.add_(10.0)

    trainer = fit(model, bundle, recipe, [WorseAfterTwo()])
    assert trainer.results["best_epoch"] == 2
    kept = trainer.validated_outputs(bundle.val)
    assert trainer.validated_outputs(bundle.train) is None  # not the split the loop validated on
    assert kept is not None and torch.equal(kept, outputs_of(model, bundle.val.x))
    assert torch.equal(kept, trainer.val_outputs[2 if restore_best else 4])


def test_validation_outputs_past_the_memory_bound_are_dropped_oldest_first(monkeypatch):
    from honed.training import loop

    monkeypatch.setattr(loop, "VAL_OUTPUTS_BYTES", 3 * 32 * 4)  # three epochs of 32 validation rows x 1 output
    recipe, bundle, model = setup({"optimizer": {"name": "sgd", "lr": 0.01}, "train": {"epochs": 5}})
    trainer = fit(model, bundle, recipe)
    assert len(bundle.val) == 32 and sorted(trainer.val_outputs) == [3, 4, 5]
    monkeypatch.setattr(loop, "VAL_OUTPUTS_BYTES", 10)  # not even one: evaluation scores again
    recipe, bundle, model = setup({"optimizer": {"name": "sgd", "lr": 0.01}, "train": {"epochs": 2}})
    assert fit(model, bundle, recipe).validated_outputs(bundle.val) is None


def test_exact_steps_stop_mid_epoch_with_the_schedule_ending_there():
    """train.exact_steps: 17 steps of 5 per epoch are three whole epochs and two steps of a fourth, which is
    validated where it stops; cosine reaches its floor on step 17, and the cut epoch's training loss is the mean
    over the rows it trained on."""
    recipe, bundle, model = setup({"optimizer": {"name": "sgd", "lr": 0.05},
                                   "schedule": {"name": "cosine", "min_lr": 0.001},
                                   "train": {"epochs": 4, "steps": 17, "exact_steps": True, "batch_size": 32}})

    class Losses(Hook):
        def __init__(self):
            self.by_epoch = {}

        def on_step_end(self, trainer, loss):
            self.by_epoch.setdefault(trainer.epoch, []).append(loss)

    losses, counted = Losses(), CountSteps()
    assert len(bundle.train) == 128 and math.ceil(128 / 32) == 4  # 4 full steps an epoch
    trainer = fit(model, bundle, recipe, [losses, counted])
    assert counted.steps == trainer.step == 16  # 4 epochs of 4 steps: the run ends with its epochs
    recipe, bundle, model = setup({"optimizer": {"name": "sgd", "lr": 0.05},
                                   "schedule": {"name": "cosine", "min_lr": 0.001},
                                   "train": {"epochs": 5, "steps": 17, "exact_steps": True, "batch_size": 32}})
    losses, counted = Losses(), CountSteps()
    trainer = fit(model, bundle, recipe, [losses, counted])
    assert counted.steps == trainer.step == 17 and [r["step"] for r in trainer.history] == [4, 8, 12, 16, 17]
    assert trainer.schedule.lr == pytest.approx(0.001)  # cosine's floor, on the last step
    assert trainer.history[-1]["train_loss"] == pytest.approx(losses.by_epoch[5][0])  # one step of 32 rows
    assert "val_loss" in trainer.history[-1]


def test_sizing_a_run_keeps_exact_steps_and_rounds_up_the_epochs():
    from honed.api import sized_for_rows

    recipe = load_recipe({"train": {"steps": 350, "epochs": 30, "batch_size": 128, "exact_steps": True}})
    sized = sized_for_rows(recipe, 45_000)  # 352 steps an epoch
    assert (sized.train.epochs, sized.train.steps) == (1, 350)
    assert sized_for_rows(sized, 45_000).train == sized.train  # the written recipe reruns the same run
    about = sized_for_rows(load_recipe({"train": {"steps": 360, "epochs": 30, "batch_size": 128}}), 45_000)
    assert (about.train.epochs, about.train.steps) == (2, None)


def test_a_run_scores_its_validation_rows_once_per_epoch_and_not_again_in_its_summary(monkeypatch, tmp_path):
    import honed
    from honed import api
    from honed.evaluation import predict

    calls = []
    real = predict.outputs_of

    def counted(model, x, *args, **kwargs):
        calls.append(len(x))
        return real(model, x, *args, **kwargs)

    monkeypatch.setattr(api, "outputs_of", counted)
    monkeypatch.setattr("honed.training.loop.outputs_of", counted)
    run = honed.train({"data": {"source": "synthetic_regression", "n": 200, "features": 3},
                       "optimizer": {"name": "sgd", "lr": 0.05}, "train": {"epochs": 3, "report": False}},
                      out=tmp_path / "run")
    assert calls == [32, 32, 32, 40]  # three epochs' validation, then the test rows only
    last_epoch = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[-1])
    assert run.summary["val"]["loss"] == pytest.approx(last_epoch["val_loss"])


def test_validation_every_third_epoch_and_after_the_last(tmp_path):
    """train.val_every: 3 over 7 epochs validates epochs 3, 6 and 7 (the run ends on validated weights, which
    the summary reuses); the curves draw the validated epochs only."""
    from honed.evaluation import outputs_of
    from honed.run.plots import plot_curves, validated

    recipe, bundle, model = setup({"optimizer": {"name": "sgd", "lr": 0.01}, "train": {"epochs": 7, "val_every": 3}})
    trainer = fit(model, bundle, recipe)
    assert [r["epoch"] for r in trainer.history if "val_loss" in r] == [3, 6, 7]
    assert len(trainer.history) == 7 and all("train_loss" in r for r in trainer.history)
    assert torch.equal(trainer.validated_outputs(bundle.val), outputs_of(model, bundle.val.x))
    assert validated(trainer.history, "val_loss")[0] == [3, 6, 7]
    assert plot_curves(trainer.history, tmp_path / "curves.png").is_file()


def test_early_stopping_counts_validated_epochs_only():
    recipe, bundle, model = setup({"optimizer": {"name": "sgd", "lr": 0.05}, "train": {
        "epochs": 40, "val_every": 2, "early_stopping": {"patience": 1, "min_delta": 10.0}}})
    trainer = fit(model, bundle, recipe)  # nothing improves by 10: epoch 2 is the best, 4 waits, 6 stops
    assert trainer.stop_reason.startswith("early stopping") and trainer.epoch == 6
    assert trainer.results["best_epoch"] == 2 and trainer.validated_outputs(bundle.val) is not None


def test_min_rel_delta_stops_a_creeping_loss_and_still_keeps_the_best_epoch():
    from types import SimpleNamespace

    from honed.training.hooks import EarlyStopping

    def run(values, **kw):
        hook = EarlyStopping("val_loss", patience=2, restore_best=False, **kw)
        trainer = SimpleNamespace(stop_reason=None)
        for epoch, v in enumerate(values, 1):
            hook.on_epoch_end(trainer, {"epoch": epoch, "val_loss": v})
            if trainer.stop_reason:
                return epoch, hook.best_epoch
        return None, hook.best_epoch

    creeping = [1.0, 0.90, 0.899, 0.898, 0.897, 0.896, 0.5]  # 0.1% a epoch after the second, then a real drop
    assert run(creeping) == (None, 7)  # every hundredth restarts the patience
    assert run(creeping, min_rel_delta=0.005) == (5, 5)  # 0.898-0.896 are within 0.5% of 0.90: stopped at
    #                                                      the third such epoch, the best (0.897 at 5) kept
    assert run([1.0, 0.9, 0.8, 0.7], min_rel_delta=0.05) == (None, 4)  # 10%+ steps restart it every time
