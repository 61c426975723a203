"""Metrics by name, computed with torchmetrics on whole-split outputs.

Each metric takes (scores, targets, task, num_classes): `scores` are raw model
outputs (logits for classifiers, values in target units for regression).
torchmetrics is imported on first use: it costs seconds, which a run can spend
on loading data meanwhile (see honed.warmup).
"""

from __future__ import annotations

from typing import Callable

import importlib

import torch

from honed.errors import UserError
from honed.registry import Registry

METRICS: Registry = Registry("metric")
Metric = Callable[[torch.Tensor, torch.Tensor, str, int], float | list]
DEFAULTS = {
    "regression": ["mse", "rmse", "mae", "r2"],
    "binary": ["accuracy", "precision", "recall", "f1", "auroc"],
    "multiclass": ["accuracy", "precision", "recall", "f1", "auroc"],
}
REGRESSION = {"mse", "rmse", "mae", "r2"}
LOWER_IS_BETTER = {"loss", "mse", "rmse", "mae"}


def tm(name: str) -> Callable:
    """torchmetrics.functional.<name>, looked up when first called."""

    def call(*args, **kwargs):
        module, _, attr = f"torchmetrics.functional.{name}".rpartition(".")
        return getattr(importlib.import_module(module), attr)(*args, **kwargs)

    return call


def _probs(scores: torch.Tensor, task: str) -> torch.Tensor:
    return torch.sigmoid(scores) if task == "binary" else torch.softmax(scores, dim=-1)


def _classification(binary_fn, multi_fn, **multi_kwargs):
    def metric(scores, targets, task, k):
        if task == "binary":
            return binary_fn(_probs(scores, task), targets.long())
        return multi_fn(_probs(scores, task), targets, num_classes=k, **multi_kwargs)

    return metric


METRICS.register("accuracy")(_classification(tm("classification.binary_accuracy"),
                                             tm("classification.multiclass_accuracy"), average="micro"))
METRICS.register("precision")(_classification(tm("classification.binary_precision"),
                                              tm("classification.multiclass_precision"), average="macro"))
METRICS.register("recall")(_classification(tm("classification.binary_recall"),
                                           tm("classification.multiclass_recall"), average="macro"))
METRICS.register("f1")(_classification(tm("classification.binary_f1_score"),
                                       tm("classification.multiclass_f1_score"), average="macro"))
METRICS.register("auroc")(_classification(tm("classification.binary_auroc"),
                                          tm("classification.multiclass_auroc"), average="macro"))
METRICS.register("confusion_matrix")(_classification(tm("classification.binary_confusion_matrix"),
                                                     tm("classification.multiclass_confusion_matrix")))
METRICS.register("mse")(lambda s, t, task, k: tm("mean_squared_error")(s, t))
METRICS.register("rmse")(lambda s, t, task, k: tm("mean_squared_error")(s, t, squared=False))
METRICS.register("mae")(lambda s, t, task, k: tm("mean_absolute_error")(s, t))
METRICS.register("r2")(lambda s, t, task, k: tm("r2_score")(s, t))


def metric_names(requested: list[str], task: str) -> list[str]:
    names = list(requested) or DEFAULTS[task]
    for name in names:
        if (name in REGRESSION) != (task == "regression"):
            raise UserError(f"metrics: {name!r} does not fit a {task} task; allowed: {', '.join(DEFAULTS[task] + ([] if task == 'regression' else ['confusion_matrix']))}")
    return names


def compute_metrics(names: list[str], scores: torch.Tensor, targets: torch.Tensor, task: str, num_classes: int) -> dict:
    out: dict = {}
    for name in names:
        value = METRICS.get(name)(scores.float(), targets, task, num_classes)
        out[name] = value.tolist() if value.dim() > 0 else float(value)
    return out


def lower_is_better(monitor: str) -> bool:
    return monitor.removeprefix("val_").removeprefix("train_") in LOWER_IS_BETTER
