"""Every metric honed reports, against scikit-learn on the same predictions."""

import numpy as np
import pytest
import torch
from sklearn import metrics as sk

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


def test_binary_metrics_match_scikit_learn(binary):
    scores, targets = binary
    got = compute_metrics(["accuracy", "precision", "recall", "f1", "auroc", "confusion_matrix"], scores, targets,
                          "binary", 2)
    y, predicted, p = targets.numpy(), (scores > 0).numpy().astype(float), torch.sigmoid(scores).numpy()
    assert got["accuracy"] == pytest.approx(sk.accuracy_score(y, predicted), abs=1e-6)
    assert got["precision"] == pytest.approx(sk.precision_score(y, predicted), abs=1e-6)
    assert got["recall"] == pytest.approx(sk.recall_score(y, predicted), abs=1e-6)
    assert got["f1"] == pytest.approx(sk.f1_score(y, predicted), abs=1e-6)
    assert got["auroc"] == pytest.approx(sk.roc_auc_score(y, p), abs=1e-5)
    # rows are true classes, columns predicted ones (scikit-learn's orientation)
    assert got["confusion_matrix"] == sk.confusion_matrix(y, predicted).tolist()


def test_multiclass_metrics_are_macro_averages_like_scikit_learn(multiclass):
    scores, targets = multiclass
    got = compute_metrics(["accuracy", "precision", "recall", "f1", "auroc", "confusion_matrix"], scores, targets,
                          "multiclass", 4)
    y, predicted = targets.numpy(), scores.argmax(1).numpy()
    assert got["accuracy"] == pytest.approx(sk.accuracy_score(y, predicted), abs=1e-6)
    assert got["precision"] == pytest.approx(sk.precision_score(y, predicted, average="macro"), abs=1e-6)
    assert got["recall"] == pytest.approx(sk.recall_score(y, predicted, average="macro"), abs=1e-6)
    assert got["f1"] == pytest.approx(sk.f1_score(y, predicted, average="macro"), abs=1e-6)
    probs = torch.softmax(scores, 1).numpy()
    assert got["auroc"] == pytest.approx(sk.roc_auc_score(y, probs, multi_class="ovr", average="macro"), abs=1e-5)
    assert got["confusion_matrix"] == sk.confusion_matrix(y, predicted).tolist()


def test_regression_metrics_match_scikit_learn():
    g = torch.Generator().manual_seed(2)
    targets = torch.randn(100, generator=g) * 3 + 1
    scores = targets + torch.randn(100, generator=g)
    got = compute_metrics(["mse", "rmse", "mae", "r2"], scores, targets, "regression", 1)
    y, p = targets.numpy(), scores.numpy()
    assert got["mse"] == pytest.approx(sk.mean_squared_error(y, p), rel=1e-5)
    assert got["rmse"] == pytest.approx(np.sqrt(sk.mean_squared_error(y, p)), rel=1e-5)
    assert got["mae"] == pytest.approx(sk.mean_absolute_error(y, p), rel=1e-5)
    assert got["r2"] == pytest.approx(sk.r2_score(y, p), rel=1e-5)
