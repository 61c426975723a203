"""Lookahead on an average of the weights (hlb-CIFAR10's and airbench's scheme): over the last part of training,
every few steps the weights are pulled back to an exponential average of themselves.

The average's decay grows with the run (rho = decay**every x (step / total)**power): early on the weights
move almost freely, at the end they average strongly, which a short run with a high learning rate needs (its
last weights are noisy). BatchNorm's running statistics are averaged with the weights, so the averaged
network's statistics match it. airbench measured 13.5 -> 12 epochs to 94% on CIFAR-10 with it.
"""

from __future__ import annotations

import torch

from honed.training.hooks import Hook


class Lookahead(Hook):
    def __init__(self, total_steps: int, start: float = 0.3, every: int = 5, decay: float = 0.95,
                 power: float = 3.0) -> None:
        self.total, self.start, self.every, self.decay, self.power = total_steps, start, every, decay, power
        self.average: dict[str, torch.Tensor] | None = None

    def averaged(self, model: torch.nn.Module) -> dict[str, torch.Tensor]:
        """The tensors averaged: every floating weight and buffer (BatchNorm's running mean and variance)."""
        return {k: v for k, v in model.state_dict().items() if v.is_floating_point()}

    def on_step_end(self, trainer, loss) -> None:
        step = trainer.step
        if self.average is not None and trainer.epoch_step == trainer.batches.steps_per_epoch:
            # an epoch ends on the average, not on the last step's weights: that is what is validated and kept
            self.pull(self.averaged(trainer.model), 1.0)
        if step < self.start * self.total or step % self.every:
            return
        current = self.averaged(trainer.model)
        if self.average is None:
            self.average = {k: v.detach().clone() for k, v in current.items()}
            return
        self.pull(current, self.decay**self.every * min(1.0, step / self.total) ** self.power)

    @torch.no_grad()
    def pull(self, current: dict[str, torch.Tensor], rho: float) -> None:
        """average <- rho x average + (1 - rho) x weights; then weights <- average."""
        for key, value in current.items():
            average = self.average[key]
            average.lerp_(value, 1.0 - rho)
            value.copy_(average)

    def state_dict(self) -> dict:
        return {"average": self.average}
