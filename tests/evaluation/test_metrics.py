"""Every metric honed reports, against its formula computed by hand on the same predictions."""

import numpy as np
import pytest
import torch

from honed.evaluation.metrics import compute_metrics


@pytest.fixture
def binary():
    g = torch.Generator().manual_seed(0)
    targets = (torch.rand(200, generator=g) > 0.4).float()
    scores = targets * 1.2 - 0.6 + torch.randn(200, generator=g)  # logits, informative but noisy
    return scores, targets


@pytest.fixture
def multiclass():
    g = torch.Generator().manual_seed(1)
    targets = torch.randint(0, 4, (300,), generator=g)
    scores = torch.randn(300, 4, generator=g) + 1.5 * torch.nn.functional.one_hot(targets, 4)
    return scores, targets


def counts(y: np.ndarray, predicted: np.ndarray, c: int) -> tuple[int, int, int]:
    return (int(((predicted == c) & (y == c)).sum()), int(((predicted == c) & (y != c)).sum()),
            int(((predicted != c) & (y == c)).sum()))


def prf(y, predicted, c):
    tp, fp, fn = counts(y, predicted, c)
    p, r = tp / (tp + fp), tp / (tp + fn)
    return p, r, 2 * p * r / (p + r)


def auc_by_pairs(positive: np.ndarray, negative: np.ndarray) -> float:
    """The probability that a random positive outscores a random negative (ties count half)."""
    diff = positive[:, None] - negative[None, :]
    return float((diff > 0).mean() + 0.5 * (diff == 0).mean())


def test_binary_metrics_match_their_formulas(binary):
    scores, targets = binary
    got = compute_metrics(["accuracy", "precision", "recall", "f1", "auroc", "confusion_matrix"], scores, targets,
                          "binary", 1)
    y, predicted, p = targets.numpy().astype(int), (scores > 0).numpy().astype(int), torch.sigmoid(scores).numpy()
    precision, recall, f1 = prf(y, predicted, 1)
    assert got["accuracy"] == pytest.approx((y == predicted).mean())
    assert (got["precision"], got["recall"], got["f1"]) == pytest.approx((precision, recall, f1))
    assert got["auroc"] == pytest.approx(auc_by_pairs(p[y == 1], p[y == 0]))
    # rows are true classes, columns predicted ones
    assert got["confusion_matrix"] == [[int(((y == t) & (predicted == q)).sum()) for q in (0, 1)] for t in (0, 1)]


def test_multiclass_metrics_are_macro_averages_of_one_class_against_the_rest(multiclass):
    scores, targets = multiclass
    got = compute_metrics(["accuracy", "precision", "recall", "f1", "auroc", "confusion_matrix"], scores, targets,
                          "multiclass", 4)
    y, predicted = targets.numpy(), scores.argmax(1).numpy()
    per_class = np.array([prf(y, predicted, c) for c in range(4)])
    assert got["accuracy"] == pytest.approx((y == predicted).mean())
    assert (got["precision"], got["recall"], got["f1"]) == pytest.approx(tuple(per_class.mean(0)))
    for name in ("precision", "recall", "f1"):  # asked alone, each is its own call: the same value
        assert compute_metrics([name], scores, targets, "multiclass", 4)[name] == pytest.approx(got[name])
    probs = torch.softmax(scores, 1).numpy()
    assert got["auroc"] == pytest.approx(np.mean([auc_by_pairs(probs[y == c, c], probs[y != c, c]) for c in range(4)]))
    assert got["confusion_matrix"] == [[int(((y == t) & (predicted == q)).sum()) for q in range(4)] for t in range(4)]


def test_regression_metrics_match_their_formulas():
    g = torch.Generator().manual_seed(2)
    targets = torch.randn(100, generator=g) * 3 + 1
    scores = targets + torch.randn(100, generator=g)
    got = compute_metrics(["mse", "rmse", "mae", "r2"], scores, targets, "regression", 1)
    y, p = targets.double().numpy(), scores.double().numpy()
    mse = ((y - p) ** 2).mean()
    assert got["mse"] == pytest.approx(mse)
    assert got["rmse"] == pytest.approx(np.sqrt(mse))
    assert got["mae"] == pytest.approx(np.abs(y - p).mean())
    assert got["r2"] == pytest.approx(1 - mse / y.var())


def test_undefined_scores_are_zero_not_errors():
    one_class = torch.ones(10)
    got = compute_metrics(["auroc", "precision"], torch.full((10,), -1.0), one_class, "binary", 1)
    assert got == {"auroc": 0.0, "precision": 0.0}  # one class only; nothing predicted positive
