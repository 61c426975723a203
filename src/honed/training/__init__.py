"""Training: losses, optimizers, regularization and schedules by name, and the loop with its hooks."""

from honed.training.hooks import ConvergenceStop, EarlyStopping, Hook, LastGoodWeights
from honed.training.loop import NonFiniteLoss, Trainer, fit, prepare, run
from honed.training.losses import LOSSES, build_loss
from honed.training.objective import Objective
from honed.training.optimizers import OPTIMIZERS, build_optimizer
from honed.training.schedules import SCHEDULES, Schedule

__all__ = ["fit", "prepare", "run", "Trainer", "NonFiniteLoss", "Hook", "EarlyStopping", "ConvergenceStop", "LastGoodWeights",
           "Objective", "LOSSES", "OPTIMIZERS", "SCHEDULES", "build_loss", "build_optimizer", "Schedule"]
