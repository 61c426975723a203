"""Training: losses, optimizers, regularization and schedules by name, and the loop with its hooks."""

from honed.train.hooks import ConvergenceStop, EarlyStopping, Hook, LastGoodWeights
from honed.train.loop import NonFiniteLoss, Trainer, fit
from honed.train.losses import LOSSES, build_loss
from honed.train.optimizers import OPTIMIZERS, build_optimizer
from honed.train.schedules import SCHEDULES, Schedule

__all__ = ["fit", "Trainer", "NonFiniteLoss", "Hook", "EarlyStopping", "ConvergenceStop", "LastGoodWeights",
           "LOSSES", "OPTIMIZERS", "SCHEDULES", "build_loss", "build_optimizer", "Schedule"]
