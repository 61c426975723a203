"""Is one model really better than another on the same rows, or is the difference noise?

- accuracy: McNemar's exact test. Only the rows where exactly one model is right carry information:
  b rows where A is right and B wrong, c the other way; under "equally good" b ~ Binomial(b + c, 1/2),
  and the two-sided p-value is scipy's exact binomial test of b out of b + c.
- log loss (classification, when a search chose on the loss): the same paired bootstrap over per-row
  cross-entropy, which sees a difference in confidence that accuracy's right/wrong rows do not.
- mse / mae (regression): a paired bootstrap (Poisson(1) counts per row, the same redraw for both
  models): the p-value is twice the share of redraws in which the difference changes sign.

Both need the two models' outputs on the very same rows (the same test split).
"""

from __future__ import annotations

import numpy as np
import torch

RESAMPLES = 2000
ALPHA = 0.05


def mcnemar(right_a: np.ndarray, right_b: np.ndarray) -> dict:
    """{'a_only': b, 'b_only': c, 'p': exact two-sided p} for two boolean 'row predicted right' vectors."""
    from scipy import stats

    a_only = int(np.sum(right_a & ~right_b))
    b_only = int(np.sum(~right_a & right_b))
    p = 1.0 if a_only + b_only == 0 else float(stats.binomtest(a_only, a_only + b_only, 0.5).pvalue)
    return {"a_only": a_only, "b_only": b_only, "p": p}


def paired_bootstrap(loss_a: np.ndarray, loss_b: np.ndarray, seed: int = 0) -> float:
    """Two-sided p-value that the mean per-row losses of A and B differ (same rows, paired redraws)."""
    rng = np.random.default_rng(seed)
    diff = np.asarray(loss_a, dtype=float) - np.asarray(loss_b, dtype=float)
    deltas = []
    for done in range(0, RESAMPLES, 200):
        counts = rng.poisson(1.0, size=(min(200, RESAMPLES - done), len(diff)))
        deltas.append(counts @ diff / np.maximum(counts.sum(axis=1), 1))
    deltas = np.concatenate(deltas)
    share = min(np.mean(deltas <= 0), np.mean(deltas >= 0))
    return float(min(1.0, 2 * share))


def right_rows(scores: torch.Tensor, targets: torch.Tensor, task: str) -> np.ndarray:
    predicted = (scores > 0).long() if task == "binary" else scores.argmax(dim=-1)
    return (predicted == targets.long()).numpy()


def row_log_loss(scores: torch.Tensor, targets: torch.Tensor, task: str) -> np.ndarray:
    """Each row's cross-entropy (natural log) of its true class: logits of one column (binary) or one per class."""
    scores = scores.double()
    if task == "binary":
        logits = scores.reshape(len(targets))
        return torch.nn.functional.binary_cross_entropy_with_logits(logits, targets.double(), reduction="none").numpy()
    return torch.nn.functional.cross_entropy(scores, targets.long(), reduction="none").numpy()


def versus(best: tuple[torch.Tensor, torch.Tensor], other: tuple[torch.Tensor, torch.Tensor], task: str,
           by: str = "accuracy") -> dict:
    """The other model against the best on the same rows: {'metric', 'difference', 'p', 'significant'}.
    `difference` is other minus best (accuracy in points; log loss and mse as they are). `by = "loss"` compares
    classifiers on their per-row log loss instead of accuracy."""
    (best_scores, targets), (other_scores, _) = best, other
    if task == "language_modeling":  # rows of (summed NLL, learned tokens): the same tokens in both models
        best_nll, other_nll = best_scores[:, 0].double().numpy(), other_scores[:, 0].double().numpy()
        tokens = max(float(best_scores[:, 1].sum()), 1.0)
        p = paired_bootstrap(other_nll, best_nll)  # the sign of the summed difference, rows redrawn in pairs
        return {"metric": "loss", "difference": float((other_nll.sum() - best_nll.sum()) / tokens), "p": p,
                "significant": p < ALPHA}
    if task == "regression":
        best_loss = (best_scores.double() - targets.double()).pow(2).numpy()
        other_loss = (other_scores.double() - targets.double()).pow(2).numpy()
        p = paired_bootstrap(other_loss, best_loss)
        return {"metric": "mse", "difference": float(other_loss.mean() - best_loss.mean()), "p": p,
                "significant": p < ALPHA}
    if by == "loss":
        best_loss, other_loss = row_log_loss(best_scores, targets, task), row_log_loss(other_scores, targets, task)
        p = paired_bootstrap(other_loss, best_loss)
        return {"metric": "log loss", "difference": float(other_loss.mean() - best_loss.mean()), "p": p,
                "significant": p < ALPHA}
    test = mcnemar(right_rows(other_scores, targets, task), right_rows(best_scores, targets, task))
    difference = 100 * (test["a_only"] - test["b_only"]) / len(targets)
    return {"metric": "accuracy", "difference": difference, "p": test["p"], "significant": test["p"] < ALPHA,
            "rows_only_best_right": test["b_only"], "rows_only_other_right": test["a_only"]}


def described(result: dict) -> str:
    """'accuracy -0.308 pts, p=0.00643: significant' (or ': within noise'): one versus() result as a table cell."""
    unit = " pts" if result["metric"] == "accuracy" else ""
    verdict = "significant" if result["significant"] else "within noise"
    return f"{result['metric']} {result['difference']:+.3g}{unit}, p={result['p']:.3g}: {verdict}"
