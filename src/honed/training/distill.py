"""Knowledge distillation (Hinton et al., 2015): a student learns from a teacher's softened outputs.

The teacher's logits for every training row are computed once, before training (see
honed.export.distill.Teacher), and travel with
the labels: the training targets become [label, teacher logits...] rows, so batching, shuffling
and distributed shares carry them along untouched. The loss mixes the hard-label loss with the
KL divergence between the temperature-softened distributions, scaled by T² so that its gradients
keep their size as T changes:

    loss = (1 - alpha) * hard(student, label) + alpha * T² * KL(softmax(teacher/T) || softmax(student/T))

A binary model's single logit z stands for the two-class logits [0, z].
Validation and test targets stay plain labels; there the loss is the hard one.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def two_class(logits: torch.Tensor) -> torch.Tensor:
    """(N,) binary logits z -> (N, 2) logits [0, z]; (N, C) stays as it is."""
    return torch.stack([torch.zeros_like(logits), logits], dim=1) if logits.dim() == 1 else logits


class DistillationLoss:
    """The hard loss on labels mixed with the softened KL to the teacher (targets carry both)."""

    def __init__(self, hard, task: str, temperature: float, alpha: float) -> None:
        self.hard, self.task, self.temperature, self.alpha = hard, task, temperature, alpha

    def __call__(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        if targets.dim() == 1:  # validation / test: plain labels
            return self.hard(outputs, targets)
        labels, teacher = targets[:, 0], targets[:, 1:]
        labels = labels.long() if self.task == "multiclass" else labels
        teacher = teacher.squeeze(1) if teacher.shape[1] == 1 else teacher
        t = self.temperature
        soft = F.kl_div(F.log_softmax(two_class(outputs) / t, dim=1), F.softmax(two_class(teacher) / t, dim=1),
                        reduction="batchmean") * t * t
        return (1 - self.alpha) * self.hard(outputs, labels) + self.alpha * soft
