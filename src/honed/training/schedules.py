"""Learning-rate schedules by name, built on torch.optim.lr_scheduler.

Schedules advance once per optimizer step (so `gd`, with one step per epoch,
decays per epoch); parameters given in epochs are converted with the number of
steps per epoch. A linear warmup can go in front of any schedule but onecycle
(which has its own) and plateau (which acts on epochs).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from torch.optim import Optimizer, lr_scheduler

from honed.errors import UserError
from honed.registry import Registry

if TYPE_CHECKING:
    from honed.recipe.schema import ScheduleSpec

SCHEDULES: Registry = Registry("schedule")


@SCHEDULES.register("constant")
def _constant(opt, spec: ScheduleSpec, steps_per_epoch: int, total: int, mode: str):
    return lr_scheduler.LambdaLR(opt, lambda step: 1.0)


@SCHEDULES.register("exponential")
def _exponential(opt, spec: ScheduleSpec, steps_per_epoch: int, total: int, mode: str):
    # lr_t = lr * gamma ** (t / steps_per_epoch): gamma is the decay per epoch
    return lr_scheduler.ExponentialLR(opt, gamma=spec.gamma ** (1.0 / steps_per_epoch))


@SCHEDULES.register("linear")
def _linear(opt, spec: ScheduleSpec, steps_per_epoch: int, total: int, mode: str):
    return lr_scheduler.LinearLR(opt, start_factor=1.0, end_factor=spec.end_factor, total_iters=max(1, total))


@SCHEDULES.register("step")
def _step(opt, spec: ScheduleSpec, steps_per_epoch: int, total: int, mode: str):
    return lr_scheduler.StepLR(opt, step_size=max(1, round(spec.step_epochs * steps_per_epoch)), gamma=spec.gamma)


@SCHEDULES.register("cosine")
def _cosine(opt, spec: ScheduleSpec, steps_per_epoch: int, total: int, mode: str):
    return lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, total), eta_min=spec.min_lr)


@SCHEDULES.register("onecycle")
def _onecycle(opt, spec: ScheduleSpec, steps_per_epoch: int, total: int, mode: str):
    return lr_scheduler.OneCycleLR(opt, max_lr=[g["lr"] for g in opt.param_groups], total_steps=max(2, total),
                                   pct_start=spec.pct_start)


@SCHEDULES.register("plateau")
def _plateau(opt, spec: ScheduleSpec, steps_per_epoch: int, total: int, mode: str):
    return lr_scheduler.ReduceLROnPlateau(opt, mode=mode, factor=spec.factor, patience=spec.patience)


class Schedule:
    """One object the loop calls: `after_step()` every optimizer step, `after_epoch(value)` every epoch."""

    def __init__(self, optimizer: Optimizer, spec: ScheduleSpec, steps_per_epoch: int, epochs: int, monitor_mode: str = "min",
                 total_steps: int | None = None):
        """`total_steps`: where the run ends when not after whole epochs (train.exact_steps)."""
        self.optimizer = optimizer
        self.name = spec.name
        total = total_steps or steps_per_epoch * epochs
        warmup = round(spec.warmup_epochs * steps_per_epoch)
        if warmup and spec.name in ("onecycle", "plateau"):
            raise UserError(f"schedule.warmup_epochs is not used with schedule.name = {spec.name!r}; set it to 0")
        if warmup >= total and warmup:
            raise UserError(f"schedule.warmup_epochs = {spec.warmup_epochs} covers the whole run of {epochs} epochs")
        main = SCHEDULES.get(spec.name)(optimizer, spec, steps_per_epoch, total - warmup, monitor_mode)
        self.per_epoch = spec.name == "plateau"
        if warmup:
            ramp = lr_scheduler.LinearLR(optimizer, start_factor=spec.warmup_start_factor, end_factor=1.0,
                                         total_iters=warmup)
            main = lr_scheduler.SequentialLR(optimizer, [ramp, main], milestones=[warmup])
        self.scheduler = main

    def state_dict(self) -> dict:
        return self.scheduler.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.scheduler.load_state_dict(state)

    def after_step(self) -> None:
        if not self.per_epoch:
            self.scheduler.step()

    def after_epoch(self, value: float | None) -> None:
        if self.per_epoch and value is not None:
            self.scheduler.step(value)

    @property
    def lr(self) -> float:
        return self.optimizer.param_groups[0]["lr"]
