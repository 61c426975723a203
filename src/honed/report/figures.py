"""The report's pictures, drawn once with matplotlib and handed back as PNG bytes (embedded in the page).

Classifiers: ROC and precision-recall curves (one per class, one-vs-rest, for up to MAX_CLASSES classes;
the micro-average beyond) and the reliability diagram. Regression: predicted against true, and the
residuals against the prediction. At most MAX_POINTS points are drawn per scatter: a picture of a
million rows costs seconds and shows no more than one of a few thousand.
"""

from __future__ import annotations

import io

import numpy as np

from honed.evaluation.calibration import Reliability
from honed.run.plots import pyplot

MAX_CLASSES = 8
MAX_POINTS = 4000
DPI = 80


def png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI)
    pyplot().close(fig)
    return buffer.getvalue()


def one_vs_rest(probabilities: np.ndarray, targets: np.ndarray, labels: list[str]) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(name, is this class, probability of this class) for each curve to draw."""
    targets = targets.astype(np.int64)
    if probabilities.shape[1] == 2:
        return [(labels[1], targets == 1, probabilities[:, 1])]
    if probabilities.shape[1] <= MAX_CLASSES:
        return [(labels[k], targets == k, probabilities[:, k]) for k in range(probabilities.shape[1])]
    truth = np.zeros_like(probabilities, dtype=bool)
    truth[np.arange(len(targets)), targets] = True
    return [("micro-average", truth.ravel(), probabilities.ravel())]


def classifier_figure(probabilities: np.ndarray, targets: np.ndarray, labels: list[str],
                      calibration: Reliability) -> bytes:
    from sklearn.metrics import auc, average_precision_score, precision_recall_curve, roc_curve

    plt = pyplot()
    fig, (roc, pr, rel) = plt.subplots(1, 3, figsize=(15, 4.3))
    for name, truth, score in one_vs_rest(probabilities, targets, labels):
        if truth.all() or not truth.any():  # a class absent from the test split has no curve
            continue
        fpr, tpr, _ = roc_curve(truth, score)
        roc.plot(fpr, tpr, label=f"{name} (AUC {auc(fpr, tpr):.3f})")
        precision, recall, _ = precision_recall_curve(truth, score)
        pr.plot(recall, precision, label=f"{name} (AP {average_precision_score(truth, score):.3f})")
    roc.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
    roc.set(title="ROC", xlabel="false positive rate", ylabel="true positive rate")
    pr.set(title="precision-recall", xlabel="recall", ylabel="precision", ylim=(0, 1.02))
    for a in (roc, pr):
        a.legend(fontsize=8, loc="lower right" if a is roc else "lower left")
    rel.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1, label="perfectly calibrated")
    rel.plot(calibration.confidence, calibration.accuracy, marker="o", label="this model")
    for c, a, n in zip(calibration.confidence, calibration.accuracy, calibration.rows):
        rel.annotate(str(n), (c, a), textcoords="offset points", xytext=(0, 6), fontsize=7, ha="center")
    rel.set(title=f"reliability (ECE {calibration.ece:.3f})", xlabel="confidence (top class)",
            ylabel="share right", xlim=(0, 1.02), ylim=(0, 1.05))
    rel.legend(fontsize=8, loc="upper left")
    for a in (roc, pr, rel):
        a.grid(alpha=0.3)
    fig.subplots_adjust(left=0.05, right=0.99, bottom=0.13, top=0.92, wspace=0.22)  # no tight_layout: one draw less
    return png(fig)


def regression_figure(predicted: np.ndarray, truth: np.ndarray) -> bytes:
    plt = pyplot()
    if len(truth) > MAX_POINTS:  # a seeded sample keeps the picture repeatable
        rows = np.random.default_rng(0).choice(len(truth), MAX_POINTS, replace=False)
        predicted, truth = predicted[rows], truth[rows]
    fig, (fit, resid) = plt.subplots(1, 2, figsize=(11, 4.3))
    fit.scatter(truth, predicted, s=6, alpha=0.5)
    low, high = float(min(truth.min(), predicted.min())), float(max(truth.max(), predicted.max()))
    fit.plot([low, high], [low, high], color="grey", linestyle=":", linewidth=1)
    fit.set(title="predicted against true", xlabel="true", ylabel="predicted")
    resid.scatter(predicted, truth - predicted, s=6, alpha=0.5)
    resid.axhline(0, color="grey", linestyle=":", linewidth=1)
    resid.set(title="residuals (true - predicted)", xlabel="predicted", ylabel="residual")
    for a in (fit, resid):
        a.grid(alpha=0.3)
    fig.subplots_adjust(left=0.08, right=0.98, bottom=0.13, top=0.92, wspace=0.25)
    return png(fig)
