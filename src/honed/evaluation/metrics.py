"""Metrics by name, computed with scikit-learn's metrics on whole-split outputs.

Each metric takes (scores, targets, task, num_classes): `scores` are raw model outputs (logits for
classifiers, values in target units for regression). Classes are thresholded at probability 0.5
(binary) or by the largest score; precision, recall, F1 and AUROC of several classes are macro
averages over every class; a score with no defined value (AUROC of a split holding one class,
precision with nothing predicted) is 0. scikit-learn.metrics imports in under a second (torchmetrics,
which pulls in its text and audio stacks, took three), and is imported on first use.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from honed.errors import UserError
from honed.registry import Registry

METRICS: Registry = Registry("metric")
Metric = Callable[[torch.Tensor, torch.Tensor, str, int], float | list]
DEFAULTS = {
    "regression": ["mse", "rmse", "mae", "r2"],
    "binary": ["accuracy", "precision", "recall", "f1", "auroc"],
    "multiclass": ["accuracy", "precision", "recall", "f1", "auroc"],
    "language_modeling": ["perplexity"],
}
LANGUAGE = {"perplexity"}
REGRESSION = {"mse", "rmse", "mae", "r2"}
LOWER_IS_BETTER = {"loss", "mse", "rmse", "mae", "perplexity"}
SHARES = {"accuracy", "precision", "recall", "f1", "auroc"}  # shown as percentages


def _sk():
    from sklearn import metrics

    return metrics


def _probs(scores: torch.Tensor, task: str) -> np.ndarray:
    """(N,) probability of the positive class, or (N, K) class probabilities."""
    return (torch.sigmoid(scores) if task == "binary" else torch.softmax(scores, dim=-1)).double().numpy()


def _labels(targets: torch.Tensor) -> np.ndarray:
    return targets.long().numpy()


def _predicted(scores: torch.Tensor, task: str) -> np.ndarray:
    return (scores > 0).long().numpy() if task == "binary" else scores.argmax(dim=-1).numpy()


def _average(task: str, k: int) -> dict:
    """precision / recall / f1: positive class for two classes, macro average over all K otherwise."""
    return {"average": "binary"} if task == "binary" else {"average": "macro", "labels": list(range(k))}


def _counted(name: str) -> Metric:
    def metric(scores, targets, task, k):
        fn = getattr(_sk(), name)
        return float(fn(_labels(targets), _predicted(scores, task), zero_division=0, **_average(task, k)))

    return metric


COUNTED = ("precision", "recall", "f1")


def _counted_together(scores, targets, task: str, k: int) -> dict:
    """precision, recall and F1 from one call of scikit-learn's precision_recall_fscore_support: three calls
    recount the same confusion matrix, which on a small table's validation after every epoch was a tenth of
    the run."""
    p, r, f, _ = _sk().precision_recall_fscore_support(_labels(targets), _predicted(scores, task), zero_division=0,
                                                       **_average(task, k))
    return {"precision": float(p), "recall": float(r), "f1": float(f)}


def _auroc(scores, targets, task, k) -> float:
    y, p = _labels(targets), _probs(scores, task)
    if task == "binary":
        return float(_sk().roc_auc_score(y, p)) if len(np.unique(y)) == 2 else 0.0
    # one class against the rest, macro-averaged over the classes present with both outcomes
    each = [_sk().roc_auc_score(y == c, p[:, c]) for c in range(k) if 0 < (y == c).sum() < len(y)]
    return float(np.mean(each)) if each else 0.0


METRICS.register("accuracy")(lambda s, t, task, k: float(_sk().accuracy_score(_labels(t), _predicted(s, task))))
METRICS.register("precision")(_counted("precision_score"))
METRICS.register("recall")(_counted("recall_score"))
METRICS.register("f1")(_counted("f1_score"))
METRICS.register("auroc")(_auroc)
METRICS.register("confusion_matrix")(  # rows: true classes, columns: predicted
    lambda s, t, task, k: _sk().confusion_matrix(_labels(t), _predicted(s, task), labels=list(range(max(k, 2))))
    .tolist())
METRICS.register("mse")(lambda s, t, task, k: float(_sk().mean_squared_error(t.double().numpy(), s.double().numpy())))
METRICS.register("rmse")(lambda s, t, task, k: float(np.sqrt(_sk().mean_squared_error(t.double().numpy(),
                                                                                       s.double().numpy()))))
METRICS.register("mae")(lambda s, t, task, k: float(_sk().mean_absolute_error(t.double().numpy(), s.double().numpy())))
METRICS.register("r2")(lambda s, t, task, k: float(_sk().r2_score(t.double().numpy(), s.double().numpy())))


METRICS.register("perplexity")(  # exp of the mean negative log-likelihood per learned token (models/causal_lm.py)
    lambda s, t, task, k: float(torch.exp(s[:, 0].double().sum() / s[:, 1].double().sum().clamp(min=1))))


def metric_names(requested: list[str], task: str) -> list[str]:
    names = list(requested) or DEFAULTS[task]
    for name in names:
        if (name in LANGUAGE) != (task == "language_modeling"):
            raise UserError(f"metrics: {name!r} does not fit a {task} task; allowed: {', '.join(DEFAULTS[task])}")
        if (name in REGRESSION) != (task == "regression"):
            raise UserError(f"metrics: {name!r} does not fit a {task} task; allowed: {', '.join(DEFAULTS[task] + ([] if task == 'regression' else ['confusion_matrix']))}")
    return names


def compute_metrics(names: list[str], scores: torch.Tensor, targets: torch.Tensor, task: str, num_classes: int) -> dict:
    out: dict = {}
    scores, targets = scores.detach().float().cpu(), targets.detach().cpu()
    together = (_counted_together(scores, targets, task, num_classes)
                if task != "regression" and sum(n in COUNTED for n in names) > 1 else {})
    for name in names:
        out[name] = together[name] if name in together else METRICS.get(name)(scores, targets, task, num_classes)
    return out


def lower_is_better(monitor: str) -> bool:
    return monitor.removeprefix("val_").removeprefix("train_") in LOWER_IS_BETTER
