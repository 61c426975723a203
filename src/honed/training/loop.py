"""The training loop: one function, read top to bottom.

Everything optional (early stopping, convergence stop, progress, logging,
checkpoints, and later distributed training, privacy, distillation) joins
through hooks (see hooks.py); the loop itself only trains and evaluates.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import torch
from torch import nn

from honed.data import DataBundle
from honed.evaluation import lower_is_better, metric_names, score_split
from honed.training.batches import Batches
from honed.training.hooks import ConvergenceStop, EarlyStopping, Hook, LastGoodWeights, TimeToTarget
from honed.training.losses import build_loss
from honed.training.optimizers import FULL_BATCH, build_optimizer
from honed.training.regularization import penalized_weights, penalty
from honed.training.schedules import Schedule


class NonFiniteLoss(Exception):
    """The loss became NaN or infinite; carries where, so the user can be told."""

    def __init__(self, epoch: int, step: int, value: float) -> None:
        super().__init__(f"loss became {value} at epoch {epoch}, step {step}")
        self.epoch, self.step, self.value = epoch, step, value
        self.last_good: LastGoodWeights | None = None


@dataclass
class Trainer:
    """What hooks can see and touch while training runs."""

    model: nn.Module
    data: DataBundle
    recipe: object
    optimizer: torch.optim.Optimizer
    schedule: Schedule
    batches: Batches
    metrics: list[str]
    hooks: list[Hook]
    epoch: int = 0
    step: int = 0
    stop_reason: str = ""
    best_epoch: int = 0
    history: list[dict] = field(default_factory=list)
    train_seconds: float = 0.0
    samples_seen: int = 0

    def call(self, event: str, *args) -> None:
        for hook in self.hooks:
            getattr(hook, event)(self, *args)


def monitor_of(recipe) -> str:
    es = recipe.train.early_stopping
    return es.monitor if es else "val_loss"


def standard_hooks(recipe, started: float | None = None) -> list[Hook]:
    """The hooks a recipe asks for, in the order they run."""
    hooks: list[Hook] = [LastGoodWeights()]
    target = recipe.train.target
    if target:
        hooks.append(TimeToTarget(target.metric, target.value, target.mode, started, recipe.train.stop_at_target))
    if recipe.train.convergence_tol:
        hooks.append(ConvergenceStop(recipe.train.convergence_tol))
    es = recipe.train.early_stopping
    if es:
        hooks.append(EarlyStopping(es.monitor, es.mode, es.patience, es.min_delta, es.restore_best))
    return hooks


def fit(model: nn.Module, data: DataBundle, recipe, extra_hooks: list[Hook] = (), seed: int = 0,
        started: float | None = None) -> Trainer:
    """Train `model` on `data` as `recipe` says; returns the Trainer with its history.

    `started` (a time.perf_counter() value) is when the whole command began; time to target counts from it.
    """
    spec = recipe.train
    loss_fn = build_loss(recipe.loss, data.task)
    metrics = metric_names(recipe.metrics, data.task)
    metrics = [m for m in metrics if m != "confusion_matrix"]  # per-epoch logs stay scalar
    optimizer = build_optimizer(model, recipe.optimizer)
    device = next(model.parameters()).device
    train_x, train_y = data.train.x.to(device), data.train.y.to(device)
    batches = Batches(train_x, train_y, spec.batch_size, spec.shuffle, seed,
                      full_batch=recipe.optimizer.name in FULL_BATCH, bucketing=spec.bucketing)
    monitor = monitor_of(recipe)
    schedule = Schedule(optimizer, recipe.schedule, batches.steps_per_epoch, spec.epochs,
                        "min" if lower_is_better(monitor) else "max")
    trainer = Trainer(model, data, recipe, optimizer, schedule, batches, metrics,
                      standard_hooks(recipe, started) + list(extra_hooks))
    weights = penalized_weights(model)
    reg = recipe.regularization
    n_train = len(train_y)
    unscale = data.preprocessor.unscale if data.task == "regression" else None

    trainer.call("on_fit_start")
    for epoch in range(1, spec.epochs + 1):
        trainer.epoch = epoch
        model.train()
        started = time.perf_counter()
        loss_sum = torch.zeros((), device=device)
        for chunks in batches.epoch():
            optimizer.zero_grad(set_to_none=True)
            step_size = sum(len(y) for _, y in chunks)
            step_loss = torch.zeros((), device=device)
            for x, y in chunks:
                # Scaled so that summed chunk gradients equal the gradient of the mean over the step.
                loss = loss_fn(model(x), y) * (len(y) / step_size)
                loss.backward()
                step_loss += loss.detach()
            extra = penalty(weights, reg.l1, reg.l2)
            if extra is not None:
                extra.backward()
            value = float(step_loss)
            if not math.isfinite(value) or (extra is not None and not math.isfinite(float(extra.detach()))):
                error = NonFiniteLoss(epoch, trainer.step + 1, value)
                error.last_good = next(h for h in trainer.hooks if isinstance(h, LastGoodWeights))
                raise error
            optimizer.step()
            schedule.after_step()
            trainer.step += 1
            trainer.samples_seen += step_size
            loss_sum += step_loss * step_size
            trainer.call("on_step_end", value)
        trainer.train_seconds += time.perf_counter() - started

        # End of epoch: score validation, log, let hooks decide whether to stop.
        record = {"epoch": epoch, "step": trainer.step, "train_loss": float(loss_sum) / n_train,
                  "lr": schedule.lr, "grad_norm": grad_norm(model)}
        if data.val is not None:
            val = score_split(model, data.val, data.task, loss_fn, metrics, data.output_dim, unscale)
            record.update({f"val_{k}": v for k, v in val.items()})
        record["seconds"] = trainer.train_seconds
        schedule.after_epoch(record.get(monitor))
        trainer.history.append(record)
        trainer.call("on_epoch_end", record)
        if trainer.stop_reason:
            break
    if not trainer.best_epoch:
        trainer.best_epoch = trainer.epoch
    trainer.call("on_fit_end")
    return trainer


def grad_norm(model: nn.Module) -> float:
    """L2 norm of all gradients from the last step."""
    grads = [p.grad.detach().norm() for p in model.parameters() if p.grad is not None]
    return float(torch.stack(grads).norm()) if grads else 0.0


def time_to_target(trainer: Trainer) -> dict | None:
    """The TimeToTarget hook's record, if the recipe set a target."""
    hook = next((h for h in trainer.hooks if isinstance(h, TimeToTarget)), None)
    return hook.result if hook else None
