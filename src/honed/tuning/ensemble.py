"""Greedy ensemble selection over a search's trials (Caruana et al., "Ensemble Selection from Libraries of
Models", ICML 2004; what AutoGluon's weighted ensemble does): start from nothing, and for a fixed number of
rounds add (with replacement) the trial whose outputs, averaged with those already in, give the lowest
validation loss; the round with the lowest loss is kept, and each trial's weight is how often it was added.

On tables whose trials are bags over validation folds, every trial's validation outputs are out of fold on every
training row, so the selection reads each row from models that never trained on it. Averaging is of what the
models answer (logits, or values), as a bag does."""

from __future__ import annotations

from collections import Counter

import numpy as np
import torch

from honed.evaluation.significance import row_log_loss

ROUNDS = 25  # AutoGluon's ensemble_size
POOL = 8  # the best finished trials the selection draws from (their run folders are kept until the end)


def row_losses(outputs: torch.Tensor, targets: torch.Tensor, task: str) -> np.ndarray:
    """What a selection lowers, per row: log loss for classes, squared error for numbers."""
    if task == "regression":
        return (outputs.double() - targets.double()).pow(2).reshape(len(targets), -1).sum(dim=1).numpy()
    return row_log_loss(outputs, targets, task)


def select(outputs: dict[int, torch.Tensor], targets: torch.Tensor, task: str, rounds: int = ROUNDS
           ) -> tuple[dict[int, float], float]:
    """({trial: weight}, the ensemble's mean loss): the weights sum to 1; ties go to the first trial listed
    (list the best first)."""
    order = list(outputs)
    total = torch.zeros_like(outputs[order[0]], dtype=torch.float64)
    counts: Counter = Counter()
    best_loss, best_counts = float("inf"), Counter()
    for n in range(1, rounds + 1):
        losses = [row_losses((total + outputs[t].double()) / n, targets, task).mean() for t in order]
        i = int(np.argmin(losses))
        total += outputs[order[i]].double()
        counts[order[i]] += 1
        if losses[i] < best_loss - 1e-12:
            best_loss, best_counts = float(losses[i]), Counter(counts)
    size = sum(best_counts.values())
    return {t: best_counts[t] / size for t in order if best_counts[t]}, best_loss


def blend(outputs: dict[int, torch.Tensor], weights: dict[int, float]) -> torch.Tensor:
    """The weighted mean of the chosen trials' outputs: what the assembled ensemble answers on those rows."""
    return sum(w * outputs[t].double() for t, w in weights.items()).float()
