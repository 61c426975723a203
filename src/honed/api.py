"""The Python API; the command line calls exactly these functions.

    honed.train(recipe, overrides=[...], out=None)  -> Run
    honed.evaluate(run_dir, overrides=[...])        -> metrics dict
    honed.predict(run_dir, inputs, output=None)     -> DataFrame
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import torch

from honed import data as data_stage
from honed import run as run_stage
from honed import warmup
from honed.errors import UserError
from honed.evaluation import metric_names, outputs_of, score_split
from honed.models import Shape, build_model, count_params
from honed.recipe import Recipe, dump_recipe, load_recipe
from honed.training import NonFiniteLoss, build_loss, fit
from honed.training.loop import time_to_target
from honed.training.device import pick_device, seed_everything


@dataclass
class Run:
    """A finished run: where it lives and what it measured."""

    path: Path
    summary: dict
    model: torch.nn.Module | None = None


def train(recipe: str | Path | dict | Recipe, overrides: Iterable[str] = (), out: str | Path | None = None,
          quiet: bool = True, started: float | None = None) -> Run:
    """Preprocess, build, train, evaluate on the test split, and write the run directory."""
    started = time.perf_counter() if started is None else started
    recipe = load_recipe(recipe, overrides)
    warmup.start()
    if recipe.train.threads:
        torch.set_num_threads(recipe.train.threads)
    device = pick_device(recipe.train.device)
    seed_everything(recipe.seed)
    bundle = data_stage.build_data(recipe.data)
    shape = Shape(bundle.input_kind, bundle.input_dim, bundle.output_dim, bundle.image_shape)
    model = build_model(recipe.model, shape).to(device)

    run_dir = run_stage.new_run_dir(recipe.name, out)
    run_stage.write_recipe(run_dir, dump_recipe(recipe))
    bundle.preprocessor.save(run_dir)
    run_stage.write_json(run_dir / run_stage.MODEL, {"spec": recipe.model.model_dump(mode="json"),
                                                     "shape": shape.__dict__ | {"image_shape": shape.image_shape}})
    hooks = [run_stage.MetricsLog(run_dir)]
    if not quiet:
        hooks.append(run_stage.ProgressBar())
    try:
        trainer = fit(model, bundle, recipe, hooks, seed=recipe.seed, started=started)
    except NonFiniteLoss as e:
        raise UserError(stopped_message(e, model, run_dir)) from None
    run_stage.save_weights(run_dir / run_stage.WEIGHTS, model.state_dict())

    loss_fn = build_loss(recipe.loss, bundle.task)
    names = metric_names(recipe.metrics, bundle.task)
    if bundle.task != "regression" and "confusion_matrix" not in names:
        names = names + ["confusion_matrix"]
    unscale = bundle.preprocessor.unscale if bundle.task == "regression" else None
    score = lambda split: score_split(model, split, bundle.task, loss_fn, names, bundle.output_dim, unscale)  # noqa
    summary = {
        "name": recipe.name,
        "task": bundle.task,
        "labels": bundle.labels,
        "test": score(bundle.test),
        "val": score(bundle.val) if bundle.val is not None else {},
        "train_seconds": trainer.train_seconds,
        "total_seconds": time.perf_counter() - started,
        "epochs_run": trainer.epoch,
        "best_epoch": trainer.best_epoch,
        "stop_reason": trainer.stop_reason or "finished all epochs",
        "params": count_params(model),
        "samples_per_second": trainer.samples_seen / max(trainer.train_seconds, 1e-9),
        "sizes": {"train": len(bundle.train), "val": len(bundle.val) if bundle.val else 0, "test": len(bundle.test)},
        "device": str(device),
        "seed": recipe.seed,
    }
    target = time_to_target(trainer)
    if target is not None:
        summary["time_to_target"] = target
    run_stage.plot_curves(trainer.history, run_dir / run_stage.CURVES, title=recipe.name, best_epoch=trainer.best_epoch)
    summary["total_seconds"] = time.perf_counter() - started
    run_stage.write_summary(run_dir, summary)
    return Run(run_dir, summary, model)


def stopped_message(e: NonFiniteLoss, model: torch.nn.Module, run_dir: Path) -> str:
    """Save the last good weights and say what happened."""
    good = e.last_good
    if good is not None:
        model.load_state_dict(good.weights)
    run_stage.save_weights(run_dir / run_stage.WEIGHTS, model.state_dict())
    where = f"epoch {good.epoch}" if good is not None and good.epoch else "initial weights"
    return (f"training stopped: {e}; the last good weights ({where}) are in {run_dir / run_stage.WEIGHTS}; "
            "try a smaller optimizer.lr or gradient-friendly settings")


def load_run(run_dir: str | Path) -> tuple[Recipe, torch.nn.Module, object]:
    """(recipe, model with its trained weights, fitted preprocessor) from a run directory."""
    path = run_stage.check_run_dir(run_dir)
    recipe = load_recipe(path / run_stage.RECIPE)
    pre = data_stage.load_preprocessor(path)
    info = run_stage.read_json(path / run_stage.MODEL)
    shape = info["shape"]
    shape = Shape(shape["input_kind"], shape["input_dim"], shape["output_dim"],
                  tuple(shape["image_shape"]) if shape.get("image_shape") else None)
    model = build_model(recipe.model, shape)
    run_stage.load_weights(path / run_stage.WEIGHTS, model)
    model.eval()
    return recipe, model, pre


def evaluate(run_dir: str | Path, overrides: Iterable[str] = ()) -> dict:
    """Metrics of a saved run on its test split, or on other data given by overrides (e.g. data.test=...)."""
    recipe, model, pre = load_run(run_dir)
    if overrides:
        recipe = load_recipe(recipe, overrides)
    split = data_stage.test_split(recipe.data, pre)
    names = metric_names(recipe.metrics, pre.task)
    if pre.task != "regression" and "confusion_matrix" not in names:
        names = names + ["confusion_matrix"]
    unscale = pre.unscale if pre.task == "regression" else None
    return score_split(model, split, pre.task, build_loss(recipe.loss, pre.task), names, pre.output_dim, unscale)


def predict(run_dir: str | Path, inputs, output: str | Path | None = None):
    """Predictions for new inputs (a file, a list of texts, or a DataFrame of feature columns)."""
    from honed.data.predict_inputs import read_inputs

    recipe, model, pre = load_run(run_dir)
    x = pre.inputs(read_inputs(inputs, pre, recipe.data))
    scores = outputs_of(model, x)
    frame = predictions_frame(scores, pre)
    if output is not None:
        run_stage.write_text(Path(output), frame.to_csv(index=False))
    return frame


def predictions_frame(scores: torch.Tensor, pre):
    import pandas as pd

    if pre.task == "regression":
        return pd.DataFrame({"prediction": pre.unscale(scores).numpy()})
    names = pre.labels.names
    if pre.task == "binary":
        p1 = torch.sigmoid(scores)
        probs = torch.stack([1 - p1, p1], dim=1)
    else:
        probs = torch.softmax(scores, dim=1)
    frame = pd.DataFrame({"prediction": [names[i] for i in probs.argmax(dim=1).tolist()]})
    for i, name in enumerate(names):
        frame[f"prob_{name}"] = probs[:, i].numpy()
    return frame


