"""How far a classifier's confidence can be trusted, and where it is most confidently wrong.

Reliability: test rows grouped by the probability of the class the model predicts (equal-width bins);
per bin the mean confidence against the share that is right. The expected calibration error (ECE) is
the rows-weighted mean gap, |accuracy - confidence|, over the bins (Guo et al., 2017).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from honed.evaluation.predict import class_probabilities

BINS = 15


@dataclass
class Reliability:
    confidence: np.ndarray  # mean top-class probability per non-empty bin
    accuracy: np.ndarray  # share right per non-empty bin
    rows: np.ndarray  # rows per non-empty bin
    ece: float


def reliability(probabilities: np.ndarray, targets: np.ndarray, bins: int = BINS) -> Reliability:
    """Bins of the top-class probability (the last bin holds 1.0) and the expected calibration error."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    confidence = probabilities.max(axis=1)
    right = probabilities.argmax(axis=1) == np.asarray(targets).astype(np.int64)
    which = np.minimum((confidence * bins).astype(np.int64), bins - 1)
    rows = np.bincount(which, minlength=bins)
    used = rows > 0
    mean_conf = np.bincount(which, weights=confidence, minlength=bins)[used] / rows[used]
    accuracy = np.bincount(which, weights=right.astype(np.float64), minlength=bins)[used] / rows[used]
    ece = float(np.sum(rows[used] * np.abs(accuracy - mean_conf)) / max(len(confidence), 1))
    return Reliability(mean_conf, accuracy, rows[used], ece)


def confident_mistakes(scores: torch.Tensor, targets: torch.Tensor, task: str, k: int = 8) -> list[dict]:
    """The k wrong test predictions made with the highest probability: row, true and predicted class ids,
    the probability given to the predicted class."""
    probs = class_probabilities(scores.float(), task)
    confidence, predicted = probs.max(dim=1)
    wrong = torch.nonzero(predicted != targets.long()).flatten()
    order = wrong[torch.argsort(confidence[wrong], descending=True, stable=True)][:k]
    return [{"row": int(i), "true": int(targets[i]), "predicted": int(predicted[i]),
             "probability": float(confidence[i])} for i in order]
