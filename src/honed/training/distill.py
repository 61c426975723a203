"""Knowledge distillation (Hinton et al., 2015): a student learns from a teacher's softened outputs.

The teacher's logits for every training row are computed once, before training (`Teacher`
below: from memory, the disk cache, or one pass of the teacher), and travel with the labels: the training targets become [label, teacher logits...] rows, so batching, shuffling
and distributed shares carry them along untouched. The loss mixes the hard-label loss with the
KL divergence between the temperature-softened distributions, scaled by T² so that its gradients
keep their size as T changes:

    loss = (1 - alpha) * hard(student, label) + alpha * T² * KL(softmax(teacher/T) || softmax(student/T))

A binary model's single logit z stands for the two-class logits [0, z].
Validation and test targets stay plain labels; there the loss is the hard one.
"""

from __future__ import annotations

import hashlib
import math
import json
import logging
from pathlib import Path

import torch
import torch.nn.functional as F

from honed.errors import UserError
from honed.training.hooks import Hook
from honed.training.device import pick_device
from honed import runfiles

log = logging.getLogger("honed")


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


def check_softening(temperature: float, alpha: float) -> None:
    """The distillation settings a user gives, checked before anything is read."""
    if not math.isfinite(temperature) or temperature <= 0:
        raise UserError(f"--temperature {temperature:g}: must be a number above 0 (1 = no softening; 2-5 is usual)")
    if not 0 <= alpha <= 1:
        raise UserError(f"--alpha {alpha:g}: must be between 0 (labels only) and 1 (teacher only)")


class Teacher:
    """A finished honed run whose outputs guide a student trained on the same data.

    It is an `Objective` for `honed.train(..., objective=...)`: `targets` puts the teacher's logits
    beside each training label, `loss` mixes the hard loss with the softened KL to them.
    """

    def __init__(self, run_dir: Path, loaded: tuple, temperature: float = 2.0, alpha: float = 0.5) -> None:
        """`loaded`: the teacher run's (recipe, model, preprocessor), as honed.api.load_run gives them."""
        check_softening(temperature, alpha)
        self.path = Path(run_dir)
        self.recipe, self.model, self.pre = loaded
        self.temperature, self.alpha = temperature, alpha
        self.computed = 0  # how often the teacher ran over the training set (once per command, at most)
        self._logits: dict[str, torch.Tensor] = {}

    def loss(self, hard, task: str) -> DistillationLoss:
        return DistillationLoss(hard, task, self.temperature, self.alpha)

    def targets(self, data_spec, bundle) -> torch.Tensor:
        """The student's training targets with the teacher's logits beside each label."""
        logits = self.logits(data_spec, bundle)
        y = bundle.train.y.float().unsqueeze(1)
        return torch.cat([y, logits.reshape(len(y), -1).float()], dim=1)

    def logits(self, data_spec, bundle) -> torch.Tensor:
        """Teacher logits for the student's training rows: from memory, the disk cache, or computed once."""
        key = self.cache_key(data_spec)
        if key in self._logits:
            return self._logits[key]
        path = teacher_cache() / f"{key}.safetensors"
        if path.is_file():
            from safetensors.torch import load_file

            log.info(f"distill: teacher outputs from the cache ({path})")
            logits = load_file(path)["logits"]
        else:
            logits = self.compute(data_spec, bundle)
            from safetensors.torch import save_file

            from honed.files import atomic_write

            atomic_write(path, lambda tmp: save_file({"logits": logits.contiguous()}, str(tmp)))
        self._logits[key] = logits
        return logits

    def compute(self, data_spec, bundle) -> torch.Tensor:
        """Run the teacher, with its own preprocessing, over the student's raw training rows."""
        from honed.data.build import load_raw, split_raw
        from honed.evaluation import outputs_of

        if self.pre.task != bundle.task:
            raise UserError(f"the teacher is a {self.pre.task} model, the student's data is {bundle.task}")
        student_labels = bundle.preprocessor.labels.classes if bundle.preprocessor.labels else None
        teacher_labels = self.pre.labels.classes if self.pre.labels else None
        if student_labels != teacher_labels:
            raise UserError(f"teacher and student have different labels ({teacher_labels} vs {student_labels}): "
                            "distillation needs the same classes in the same order")
        train, _, _ = split_raw(load_raw(data_spec), data_spec)
        if len(train.y) != len(bundle.train.y) or not torch.equal(self.pre.targets(train.y).float(),
                                                                  bundle.train.y.float()):
            raise UserError("the teacher's view of the training rows does not line up with the student's; "
                            "give both the same data source and split settings (data.seed, data.val_fraction)")
        x = self.pre.inputs(train.x)
        device = pick_device("auto")  # a GPU when there is one: a Transformer teacher's pass is the slow part
        log.info(f"distill: running the teacher over {len(x)} training rows (once, on {device})")
        self.computed += 1
        try:
            return outputs_of(self.model.to(device), x)
        finally:
            self.model.cpu()  # latencies are measured on the CPU

    def cache_key(self, data_spec) -> str:
        weights = self.path / runfiles.WEIGHTS
        stamp = {"teacher": str(self.path.resolve()), "bytes": weights.stat().st_size,
                 "mtime": weights.stat().st_mtime_ns, "data": data_spec.model_dump(mode="json")}
        return hashlib.sha256(json.dumps(stamp, sort_keys=True).encode()).hexdigest()[:24]


def teacher_cache() -> Path:
    """$HONED_CACHE/teacher: teacher outputs, keyed by the teacher run and the student's data settings."""
    from honed.data.download import cache_dir

    return cache_dir() / "teacher"


class LanguageTeacher(Hook):
    """A finished causal language model run guiding a smaller one on the same chat data, token by token.

    A language model's next-token distributions over every training position would fill gigabytes (tokens x
    vocabulary), so nothing is computed ahead: while the student trains, the teacher reads the same packed
    rows and the student's loss follows its softened distribution (models/causal_lm.CausalLM.distilled).
    Teacher and student must share a vocabulary: the rows are the student tokenizer's ids."""

    def __init__(self, run_dir: Path, loaded: tuple, temperature: float = 2.0, alpha: float = 0.5) -> None:
        check_softening(temperature, alpha)
        self.path = Path(run_dir)
        self.recipe, self.model, self.pre = loaded
        self.temperature, self.alpha = temperature, alpha
        self.computed = 0  # the teacher runs beside each training step, never over the whole set ahead

    def check_student(self, student_data) -> None:
        """One line when the student's tokenizer is not the teacher's (their ids would mean other words)."""
        from honed.data.chat import load_tokenizer

        ours = load_tokenizer(str(self.recipe.data.pretrained)).get_vocab()
        theirs = load_tokenizer(str(student_data.pretrained)).get_vocab()
        if ours != theirs:
            raise UserError(f"the teacher ({self.recipe.data.pretrained}) and the student ({student_data.pretrained}) "
                            f"have different vocabularies ({len(ours):,} and {len(theirs):,} tokens): distilling a "
                            "language model needs the same tokenizer")

    def on_fit_start(self, trainer) -> None:
        if trainer.data.task != "language_modeling" or not hasattr(trainer.model, "distill_from"):
            raise UserError("the teacher is a causal language model: the student must be one too (model.name = "
                            "causal_lm on chat data)")
        self.model.to(next(trainer.model.parameters()).device).eval()
        trainer.model.distill_from(self.model, self.temperature, self.alpha)

    def on_fit_end(self, trainer) -> None:
        trainer.model.distill_from(None)
