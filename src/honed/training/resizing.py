"""Progressive resizing (`model.input_size_from`): a model that enlarges its images inside itself trains on small
ones first and on its full size last, in stages of equal length over the run's planned steps.

The model says which sizes (`model.training_sizes`, smallest first) and reads `model.train_size` in training
mode; evaluation keeps the full size, so every validation, the kept weights and the exported graph see what the
run was set to. The last stage is the full size, long enough for BatchNorm's running statistics to follow it.
"""

from __future__ import annotations

from honed.training.hooks import Hook


def resized(model) -> bool:
    """Whether `model` trains at more than one size (the hook is added only then)."""
    return len(getattr(model, "training_sizes", ())) > 1


class ProgressiveResizing(Hook):
    every_member = True  # each member of a bag grows from the smallest size again

    def __init__(self, total_steps: int) -> None:
        self.total = max(1, total_steps)

    def size_at(self, sizes: list[int], step: int) -> int:
        """Stage i of n covers steps [i x total / n, (i + 1) x total / n)."""
        return sizes[min(len(sizes) - 1, step * len(sizes) // self.total)]

    def set_size(self, trainer) -> None:
        model = trainer.model
        model.train_size = self.size_at(model.training_sizes, trainer.step)

    def on_fit_start(self, trainer) -> None:
        self.set_size(trainer)

    def on_epoch_start(self, trainer) -> None:  # after a checkpoint's restore: the size of the step it resumes at
        self.set_size(trainer)

    def on_step_end(self, trainer, loss) -> None:
        self.set_size(trainer)

    def on_fit_end(self, trainer) -> None:
        trainer.model.train_size = trainer.model.input_size
