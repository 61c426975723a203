"""95% confidence intervals for the metrics of one split: how far a score could move on other rows
drawn from the same data.

- accuracy: Wilson's score interval for a proportion (correct rows out of all rows).
- precision, recall, F1 (binary or macro over classes): a seeded percentile bootstrap. These depend
  on the rows only through the confusion matrix, so resampling the rows with replacement is the same
  as drawing the matrix's cells from a multinomial with the observed cell frequencies: 2,000 redraws
  of a K x K table, whatever the number of rows.
- mse, rmse, mae, r2: a seeded percentile bootstrap over the rows, with Poisson(1) counts per row
  (the multinomial's large-sample form): one matrix product per chunk of redraws.
- auroc (binary): Hanley & McNeil's (1982) standard error, normal interval. Not given for several
  classes, nor for the loss.

Every interval is [low, high] in the metric's own units, in summary.json under "ci95".
"""

from __future__ import annotations

import numpy as np
import torch

Z95 = 1.959963984540054
RESAMPLES = 2000
CHUNK = 200  # row-bootstrap redraws per matrix product (memory: CHUNK x rows counts)
SEED = 0


def wilson(successes: int, n: int, z: float = Z95) -> list[float]:
    """Wilson's score interval for the proportion successes / n."""
    if n == 0:
        return [0.0, 1.0]
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return [float(max(0.0, centre - half)), float(min(1.0, centre + half))]


def counted_scores(tables: np.ndarray, name: str, task: str) -> np.ndarray:
    """precision / recall / f1 of each (K, K) confusion table (rows true, columns predicted) in `tables`."""
    true_pos = np.diagonal(tables, axis1=-2, axis2=-1).astype(float)
    predicted, actual = tables.sum(axis=-2), tables.sum(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, true_pos / predicted, 0.0)
        recall = np.where(actual > 0, true_pos / actual, 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    value = {"precision": precision, "recall": recall, "f1": f1}[name]
    return value[..., 1] if task == "binary" else value.mean(axis=-1)


def confusion_bootstrap(table: np.ndarray, names: list[str], task: str, rng: np.random.Generator) -> dict:
    k = table.shape[0]
    cells = rng.multinomial(int(table.sum()), table.ravel() / table.sum(), size=RESAMPLES).reshape(-1, k, k)
    return {name: percentile(counted_scores(cells, name, task)) for name in names}


def regression_bootstrap(errors: np.ndarray, targets: np.ndarray, names: list[str], rng: np.random.Generator) -> dict:
    n = len(errors)
    columns = np.stack([errors**2, np.abs(errors), targets, targets**2, np.ones(n)], axis=1)
    # Poisson(1) counts per row: the bootstrap's multinomial counts for large n, drawn in one vectorized call
    sums = np.concatenate([rng.poisson(1.0, size=(min(CHUNK, RESAMPLES - done), n)) @ columns
                           for done in range(0, RESAMPLES, CHUNK)])
    sums = sums[:, :4] / np.maximum(sums[:, 4:], 1)
    mse, mae = sums[:, 0], sums[:, 1]
    variance = sums[:, 3] - sums[:, 2] ** 2
    with np.errstate(divide="ignore", invalid="ignore"):
        r2 = np.where(variance > 0, 1 - mse / variance, 0.0)
    values = {"mse": mse, "rmse": np.sqrt(mse), "mae": mae, "r2": r2}
    return {name: percentile(values[name]) for name in names if name in values}


def perplexity_bootstrap(outputs: np.ndarray, rng: np.random.Generator) -> dict:
    """A causal LM's (rows, 2) summed negative log-likelihoods and learned-token counts: rows redrawn (each row
    keeps its tokens together, as they were scored), perplexity = exp(sum nll / sum tokens) of each redraw."""
    n = len(outputs)
    sums = np.concatenate([rng.poisson(1.0, size=(min(CHUNK, RESAMPLES - done), n)) @ outputs
                           for done in range(0, RESAMPLES, CHUNK)])
    sums = sums[sums[:, 1] > 0]  # a redraw of no learned token has no perplexity (a split of a few rows)
    return {"perplexity": percentile(np.exp(sums[:, 0] / sums[:, 1]))} if len(sums) else {}


def hanley_mcneil(auc: float, positives: int, negatives: int) -> list[float]:
    if positives == 0 or negatives == 0:
        return [0.0, 1.0]
    q1, q2 = auc / (2 - auc), 2 * auc * auc / (1 + auc)
    variance = (auc * (1 - auc) + (positives - 1) * (q1 - auc * auc) + (negatives - 1) * (q2 - auc * auc)) / (
        positives * negatives)
    half = Z95 * np.sqrt(max(variance, 0.0))
    return [float(max(0.0, auc - half)), float(min(1.0, auc + half))]


def percentile(values: np.ndarray) -> list[float]:
    low, high = np.percentile(values, [2.5, 97.5])
    return [float(low), float(high)]


def intervals(metrics: dict, scores: torch.Tensor, targets: torch.Tensor, task: str, num_classes: int) -> dict:
    """{metric: [low, high]} for the metrics in `metrics` (already computed on the same outputs)."""
    rng = np.random.default_rng(SEED)
    names = [n for n in metrics if n not in ("loss", "confusion_matrix")]
    out: dict = {}
    if not len(targets):
        return out
    if task == "regression":
        s, t = scores.double().numpy().ravel(), targets.double().numpy().ravel()
        return regression_bootstrap(s - t, t, names, rng)
    if task == "language_modeling":
        return perplexity_bootstrap(scores.double().numpy(), rng) if "perplexity" in names else {}
    predicted = (scores > 0).long() if task == "binary" else scores.argmax(dim=-1)
    labels = targets.long()
    k = max(num_classes, 2)
    table = np.bincount((labels * k + predicted).numpy(), minlength=k * k).reshape(k, k)
    if "accuracy" in names:
        out["accuracy"] = wilson(int(np.trace(table)), int(table.sum()))
    out |= confusion_bootstrap(table, [n for n in names if n in ("precision", "recall", "f1")], task, rng)
    if "auroc" in names and task == "binary":
        positives = int(labels.sum())
        out["auroc"] = hanley_mcneil(float(metrics["auroc"]), positives, len(labels) - positives)
    return {name: out[name] for name in names if name in out}
