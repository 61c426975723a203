"""Paired tests between two models on the same rows: McNemar's exact test and the paired bootstrap."""

import math

import numpy as np
import pytest
import torch

from honed.evaluation.significance import mcnemar, paired_bootstrap, versus


def test_mcnemar_exact_p_equals_the_binomial_sum_by_hand():
    right_a = np.array([True] * 10 + [False] * 2 + [True] * 50 + [False] * 5)
    right_b = np.array([False] * 10 + [True] * 2 + [True] * 50 + [False] * 5)
    result = mcnemar(right_a, right_b)
    by_hand = 2 * sum(math.comb(12, k) for k in range(3)) / 2**12  # P(X <= 2), X ~ Bin(12, 1/2), two-sided
    assert (result["a_only"], result["b_only"]) == (10, 2)
    assert result["p"] == pytest.approx(by_hand, rel=1e-12)
    assert mcnemar(right_a, right_a)["p"] == 1.0  # no discordant rows: nothing to tell them apart


def test_paired_bootstrap_says_one_for_identical_models_and_tiny_for_a_planted_gap():
    rng = np.random.default_rng(0)
    loss = rng.exponential(size=500)
    assert paired_bootstrap(loss, loss) == 1.0
    assert paired_bootstrap(loss + 0.5, loss) < 0.01
    noisy = loss + rng.normal(scale=0.5, size=500)  # same mean, noise only
    assert paired_bootstrap(noisy, loss) > 0.05


def test_versus_counts_points_of_accuracy_from_the_rows_only_one_model_gets_right():
    targets = torch.tensor([1.0, 1, 0, 0, 1, 0, 1, 0])
    best = torch.tensor([3.0, 2, -1, -2, 1, -1, -1, 1])  # right on 6 of 8
    other = torch.tensor([3.0, -2, -1, -2, 1, -1, -1, -1])  # right on 6: one row each way differs
    result = versus((best, targets), (other, targets), "binary")
    assert result["difference"] == 0.0 and result["p"] == 1.0 and not result["significant"]
    assert (result["rows_only_best_right"], result["rows_only_other_right"]) == (1, 1)


def test_versus_compares_language_models_by_the_mean_loss_of_the_same_tokens():
    rng = np.random.default_rng(1)
    tokens = torch.from_numpy(rng.integers(5, 50, size=300)).double()
    best_nll = tokens * torch.from_numpy(rng.uniform(1.0, 2.0, size=300))
    best = torch.stack([best_nll, tokens], dim=1)
    worse = torch.stack([best_nll + 0.2 * tokens, tokens], dim=1)  # 0.2 nats more on every learned token
    targets = torch.zeros(300)
    result = versus((best, targets), (worse, targets), "language_modeling")
    assert result["metric"] == "loss" and result["difference"] == pytest.approx(0.2) and result["significant"]
    same = versus((best, targets), (best.clone(), targets), "language_modeling")
    assert same["difference"] == 0.0 and same["p"] == 1.0


def test_versus_by_loss_compares_classifiers_on_scikit_learns_log_loss_per_row():
    from sklearn.metrics import log_loss

    rng = np.random.default_rng(2)
    targets = torch.from_numpy(rng.integers(0, 3, size=400))
    best = torch.from_numpy(rng.normal(size=(400, 3))) + 3 * torch.nn.functional.one_hot(targets, 3)
    other = best * 0.3  # the same predictions (accuracy equal), far less confident where they are right
    result = versus((best, targets), (other, targets), "multiclass", by="loss")
    expected = log_loss(targets, torch.softmax(other, -1), labels=[0, 1, 2]) - log_loss(
        targets, torch.softmax(best, -1), labels=[0, 1, 2])
    assert result["metric"] == "log loss" and result["difference"] == pytest.approx(expected, rel=1e-9)
    assert result["significant"] and not versus((best, targets), (other, targets), "multiclass")["significant"]
    logits = torch.tensor([2.0, -1.0, 0.5, -3.0])
    labels = torch.tensor([1.0, 0.0, 0.0, 0.0])
    binary = versus((logits, labels), (logits * 2, labels), "binary", by="loss")
    by_sklearn = log_loss(labels, torch.sigmoid(logits * 2)) - log_loss(labels, torch.sigmoid(logits))
    assert binary["difference"] == pytest.approx(by_sklearn, rel=1e-4)  # scikit-learn reads float32 probabilities
