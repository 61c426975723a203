"""Running a model over a split in batches, and scoring it."""

from __future__ import annotations

import torch
from torch import nn

from honed.data.bundle import trim_padding
from honed.evaluation.intervals import intervals
from honed.evaluation.metrics import compute_metrics


@torch.no_grad()
def outputs_of(model: nn.Module, x: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
    """Raw model outputs for all rows of x, in eval mode (no dropout), batch by batch (on a CPU at most the
    model's own `eval_batch_size`, where it has one).

    A model whose activations grow with every token (a Transformer) says how many tokens a batch
    may hold (`max_tokens_per_batch`); its batches are cut to fit, so evaluation memory stays flat.
    """
    was_training = model.training
    model.eval()
    device = next(model.parameters(), torch.empty(0)).device  # a model quantized whole has no parameters: CPU
    budget = getattr(model, "max_tokens_per_batch", None)
    if device.type == "cpu":  # a model may know the batch its CPU evaluation runs fastest at
        batch_size = min(batch_size, getattr(model, "eval_batch_size", batch_size))
    chunks, i = [], 0
    while i < len(x):
        batch = trim_padding(x[i : i + batch_size])
        if budget and not batch.is_floating_point() and len(batch) * batch.shape[1] > budget:
            batch = trim_padding(batch[: max(1, budget // batch.shape[1])])
        chunks.append(model(batch.to(device)).float().cpu())
        i += len(batch)
    model.train(was_training)
    return torch.cat(chunks) if chunks else torch.empty(0)


def score_split(model: nn.Module, split, task: str, loss_fn, names: list[str], num_classes: int, unscale=None,
                batch_size: int = 1024, with_intervals: bool = False) -> dict:
    """{'loss': ..., metric: ...} for a split; regression metrics in the target's own units; with
    `with_intervals`, also 'ci95': {metric: [low, high]} (see intervals.py)."""
    return score_outputs(outputs_of(model, split.x, batch_size), split.y, task, loss_fn, names, num_classes, unscale,
                         with_intervals)


def score_outputs(scores: torch.Tensor, targets: torch.Tensor, task: str, loss_fn, names: list[str],
                  num_classes: int, unscale=None, with_intervals: bool = False) -> dict:
    """{'loss': ..., metric: ...} from a split's raw outputs and its targets."""
    targets = targets.cpu()
    result = {"loss": float(loss_fn(scores, targets))}
    if task == "regression" and unscale is not None:
        scores, targets = unscale(scores), unscale(targets)
    result |= compute_metrics(names, scores, targets, task, num_classes)
    if with_intervals:
        result["ci95"] = intervals(result, scores.detach().float().cpu(), targets, task, num_classes)
    return result


def class_probabilities(scores: torch.Tensor, task: str) -> torch.Tensor:
    """(N, K) class probabilities from raw scores: sigmoid for one binary logit, softmax for K logits."""
    if task == "binary":
        p1 = torch.sigmoid(scores)
        return torch.stack([1 - p1, p1], dim=1)
    return torch.softmax(scores, dim=1)
