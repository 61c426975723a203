"""Evaluation: metrics by name (scikit-learn's) and batched scoring of a split."""

from honed.evaluation.metrics import METRICS, compute_metrics, lower_is_better, metric_names
from honed.evaluation.predict import class_probabilities, outputs_of, score_outputs, score_split

__all__ = ["METRICS", "compute_metrics", "lower_is_better", "metric_names", "outputs_of", "score_outputs", "score_split",
           "class_probabilities"]
