"""95% intervals on metrics, checked against scipy, a direct row bootstrap with scikit-learn, the normal
approximation, and their coverage of a known accuracy."""

import numpy as np
import pytest
import torch
from scipy import stats
from sklearn import metrics as sk

from honed.evaluation.intervals import intervals, wilson


@pytest.mark.parametrize("k,n", [(0, 10), (7, 10), (10, 10), (873, 1000), (21_800, 25_000)])
def test_wilson_equals_scipys_wilson_interval(k, n):
    expected = stats.binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    np.testing.assert_allclose(wilson(k, n), [expected.low, expected.high], atol=1e-9)


def test_about_95_of_100_accuracy_intervals_contain_the_true_accuracy():
    rng = np.random.default_rng(1)
    true_accuracy, rows, trials = 0.85, 400, 1000
    inside = 0
    for _ in range(trials):
        correct = rng.random(rows) < true_accuracy
        targets = torch.from_numpy(rng.integers(0, 2, rows)).float()
        scores = torch.where(torch.from_numpy(correct), 2 * targets - 1, 1 - 2 * targets)  # logit sign right or wrong
        low, high = intervals({"accuracy": float(correct.mean())}, scores, targets, "binary", 2)["accuracy"]
        inside += low <= true_accuracy <= high
    assert abs(inside / trials - 0.95) < 0.02  # 3.5 standard errors of a 1,000-trial proportion


def row_bootstrap(y, predicted, score, resamples=2000, seed=3):
    rng = np.random.default_rng(seed)
    draws = [score(y[rows], predicted[rows]) for rows in rng.integers(0, len(y), size=(resamples, len(y)))]
    return np.percentile(draws, [2.5, 97.5])


@pytest.mark.parametrize("task,k", [("binary", 2), ("multiclass", 4)])
def test_precision_recall_f1_intervals_match_a_row_bootstrap_with_scikit_learn(task, k):
    rng = np.random.default_rng(0)
    y = rng.integers(0, k, 600)
    predicted = np.where(rng.random(600) < 0.7, y, rng.integers(0, k, 600))
    if task == "binary":
        scores, average = torch.from_numpy(predicted * 2.0 - 1), {"average": "binary"}
    else:
        scores, average = torch.nn.functional.one_hot(torch.from_numpy(predicted), k).float(), {"average": "macro"}
    names = {"precision": sk.precision_score, "recall": sk.recall_score, "f1": sk.f1_score}
    ours = intervals({n: 0.0 for n in names}, scores, torch.from_numpy(y).float(), task, k)
    for name, fn in names.items():
        reference = row_bootstrap(y, predicted, lambda a, b: fn(a, b, zero_division=0, **average))
        np.testing.assert_allclose(ours[name], reference, atol=0.012)


def test_binary_auroc_interval_is_as_wide_as_a_row_bootstrap_of_scikit_learns_auroc():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 800)
    logits = rng.normal(size=800) + 1.2 * y
    auc = sk.roc_auc_score(y, logits)
    low, high = intervals({"auroc": auc}, torch.from_numpy(logits).float(), torch.from_numpy(y).float(), "binary", 2)["auroc"]
    draws = [sk.roc_auc_score(y[r], logits[r]) for r in rng.integers(0, 800, size=(1000, 800))]
    ref_low, ref_high = np.percentile(draws, [2.5, 97.5])
    assert low < auc < high and abs((high - low) - (ref_high - ref_low)) < 0.2 * (ref_high - ref_low)


def test_regression_intervals_match_the_normal_approximation_of_the_mean_squared_error():
    rng = np.random.default_rng(0)
    targets = rng.normal(size=3000)
    predictions = targets + rng.normal(scale=0.5, size=3000)
    squared = (predictions - targets) ** 2
    half = 1.96 * squared.std() / np.sqrt(len(squared))
    ours = intervals({"mse": squared.mean(), "r2": 0.0}, torch.from_numpy(predictions), torch.from_numpy(targets),
                     "regression", 1)
    np.testing.assert_allclose(ours["mse"], [squared.mean() - half, squared.mean() + half], rtol=0.03)
    r2 = sk.r2_score(targets, predictions)
    assert ours["r2"][0] < r2 < ours["r2"][1] and ours["r2"][1] - ours["r2"][0] < 0.05


def test_a_run_summary_and_evaluate_give_each_metric_its_interval(text_run):
    import json

    import honed

    summary = json.loads((text_run / "summary.json").read_text())
    test = summary["test"]
    assert set(test["ci95"]) == {"accuracy", "precision", "recall", "f1"}  # auroc: several classes, none
    for name, (low, high) in test["ci95"].items():
        assert low <= test[name] <= high
    assert honed.evaluate(text_run)["ci95"] == test["ci95"]
