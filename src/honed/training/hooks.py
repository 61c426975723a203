"""Hooks: the named places where optional behaviour joins the loop.

A hook may implement any of `on_fit_start(trainer)`, `on_step_end(trainer, loss)`,
`on_epoch_end(trainer, record)` and `on_fit_end(trainer)`. It stops training by
setting `trainer.stop_reason`, and publishes what it produces under a name in
`trainer.results` (the summary and other hooks read it there, never by looking for its type).
"""

from __future__ import annotations

import math
import time

import torch

from honed.evaluation import lower_is_better
from honed.training.state import load_trained_state, trained_state


class Hook:
    # A bag (model.bags > 1) fits its members one after another; the run's hooks watch the last member only
    # (its history is the run's). A hook that must act on every member's fit (e.g. each member starting from
    # its own pruned weights) says so here, and reads `trainer.member` to know which one it is on.
    every_member = False

    def on_fit_start(self, trainer) -> None: ...
    def on_epoch_start(self, trainer) -> None: ...
    def on_step_end(self, trainer, loss: float | None) -> None: ...
    def on_epoch_end(self, trainer, record: dict) -> None: ...
    def on_fit_end(self, trainer) -> None: ...

    def state_dict(self) -> dict:
        """What a checkpoint must keep of this hook (tensors and plain values); {} for nothing."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        vars(self).update(state)


def snapshot(model: torch.nn.Module, into: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    """A copy of the model's trained weights (frozen ones never change: not copied); copied into `into` (an
    earlier snapshot) when given, so that the old and the new copy never sit in memory together (for a
    4M-row embedding: 0.5 GB less peak). Put back with training.state.load_trained_state."""
    state = trained_state(model)
    if into is None or into.keys() != state.keys():
        return {k: v.detach().clone() for k, v in state.items()}
    for k, v in state.items():
        into[k].copy_(v.detach())
    return into


class Deadline(Hook):
    """Ends training once `seconds` from now are spent (after the step that crosses them). A bag's members share
    them: member i of `members` stops by the end of its (i+1)-th share, so the whole bag keeps to the time."""

    every_member = True

    def __init__(self, seconds: float, why: str, members: int = 1) -> None:
        self.seconds, self.why, self.members, self.began = seconds, why, members, time.perf_counter()

    def on_step_end(self, trainer, loss) -> None:
        if time.perf_counter() - self.began > self.seconds * (trainer.member + 1) / self.members:
            trainer.stop_reason = f"stopped: {self.why}"


SPIKE_WINDOW = 50  # steps a step's loss is compared with (the ones just before it)
SPIKE_MADS = 6.0  # a spike: this many robust standard deviations (1.4826 x MAD) above the window's median...
SPIKE_RATIO = 1.5  # ...and at least this many times the median: noise of small batches is not a spike
SPIKES_KEPT = 5
# ...while the loss is still a quarter or more of where it began: a model that fits its batches almost exactly
# (losses near 0) meets a hard batch now and then at many times the median, which is memorizing, not a spike
SPIKE_FLOOR = 0.25


class LossSpikes(Hook):
    """Watches each step's training loss for spikes — a step far above the median of the SPIKE_WINDOW steps just
    before it, in robust units, where per-epoch means hide them (a language model's fine-tuning often runs one to
    three epochs). Publishes trainer.results["loss_spikes"] = {count, steps: the worst few, checked}: the doctor
    reads it (diagnosis/checks/dynamics.loss_spikes)."""

    def __init__(self) -> None:
        from collections import deque

        self.recent: deque[float] = deque(maxlen=SPIKE_WINDOW)
        self.count, self.checked, self.worst = 0, 0, []
        self.start: float | None = None  # the median of the first steps: the loss's own scale
        # a bound below any spike's loss, from the window's median every REFRESH steps: most steps are cleared
        # by one comparison (a median of 50 numbers per step cost ~20 us, a few percent of a small model's step)
        self.bound, self.since = math.inf, 0

    REFRESH = 10

    def on_step_end(self, trainer, loss: float | None) -> None:
        if loss is None or not math.isfinite(loss):
            return
        if len(self.recent) >= SPIKE_WINDOW // 2:
            self.checked += 1
            self.since += 1
            if self.since >= self.REFRESH or self.bound == math.inf:
                median, _ = self.window()
                self.start = median if self.start is None else self.start
                # the median drifts little in REFRESH steps: a spike's loss is 1.5x+ the exact one, so above this
                self.bound, self.since = SPIKE_RATIO * median * 0.8, 0
            if loss > self.bound:
                self.judge(trainer, loss)
        self.recent.append(loss)
        trainer.results["loss_spikes"] = {"count": self.count, "steps": self.worst, "checked": self.checked}

    def window(self) -> tuple[float, float]:
        """(median, robust standard deviation 1.4826 x MAD) of the steps just before."""
        import numpy as np

        values = np.fromiter(self.recent, dtype=float)
        median = float(np.median(values))
        return median, 1.4826 * float(np.median(np.abs(values - median)))

    def judge(self, trainer, loss: float) -> None:
        """The exact test on a step the bound did not clear; a spike is counted and the worst few kept."""
        median, spread = self.window()
        if median >= SPIKE_FLOOR * self.start and median > 0 and loss > median + SPIKE_MADS * spread and \
                loss > SPIKE_RATIO * median:
            self.count += 1
            self.worst.append({"epoch": trainer.epoch, "step": trainer.step, "loss": round(loss, 6),
                               "median_before": round(median, 6), "ratio": round(loss / median, 3)})
            self.worst = sorted(self.worst, key=lambda s: -s["ratio"])[:SPIKES_KEPT]

    def state_dict(self) -> dict:
        return {"recent": list(self.recent), "count": self.count, "checked": self.checked, "worst": self.worst,
                "start": self.start}

    def load_state_dict(self, state: dict) -> None:
        self.recent.extend(state.get("recent", []))
        self.start = state.get("start")
        self.count, self.checked, self.worst = state.get("count", 0), state.get("checked", 0), state.get("worst", [])


class EarlyStopping(Hook):
    """Stop when `monitor` has not improved by `min_delta` for `patience` epochs; optionally restore the best.
    With `min_rel_delta`, the patience restarts only when the value beats the one that last restarted it by
    that fraction of it: a curve that creeps (a loss of 0.0820 at epoch 3 and 0.0808 at epoch 27) stops, while
    the weights restored are still those of the best epoch.

    The best epoch's weights are copied only when the next epoch starts (they are about to change): the last
    epoch's are never copied, and a one-epoch run holds no second model."""

    def __init__(self, monitor: str, mode: str = "auto", patience: int = 3, min_delta: float = 0.0,
                 restore_best: bool = True, min_rel_delta: float = 0.0) -> None:
        self.monitor, self.patience, self.min_delta, self.restore_best = monitor, patience, min_delta, restore_best
        self.min_rel_delta = min_rel_delta
        self.minimize = lower_is_better(monitor) if mode == "auto" else mode == "min"
        self.best = math.inf if self.minimize else -math.inf
        self.anchor = self.best  # the value that last restarted the patience
        self.best_epoch = 0
        self.best_weights: dict | None = None
        self.best_is_current = False  # the model's weights are the best epoch's, not yet copied
        self.model: torch.nn.Module | None = None
        self.waited = 0

    def improved(self, value: float) -> bool:
        return value < self.best - self.min_delta if self.minimize else value > self.best + self.min_delta

    def restarts_patience(self, value: float) -> bool:
        """Better than the anchor by min_delta and by min_rel_delta of the anchor's size."""
        if not math.isfinite(self.anchor):
            return True
        margin = max(self.min_delta, self.min_rel_delta * abs(self.anchor))
        return value < self.anchor - margin if self.minimize else value > self.anchor + margin

    def on_fit_start(self, trainer) -> None:
        self.model = trainer.model

    def on_epoch_start(self, trainer) -> None:
        if self.best_is_current:
            self.best_weights, self.best_is_current = snapshot(trainer.model, self.best_weights), False

    def on_epoch_end(self, trainer, record: dict) -> None:
        value = record.get(self.monitor)
        if value is None:
            return
        if self.improved(value):
            self.best, self.best_epoch = value, record["epoch"]
            self.best_is_current = self.restore_best
        if self.restarts_patience(value):
            self.anchor, self.waited = value, 0
        else:
            self.waited += 1
            if self.waited > self.patience:
                trainer.stop_reason = f"early stopping: {self.monitor} did not improve for {self.waited} epochs"

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        if "anchor" not in state:  # a checkpoint written before min_rel_delta: its best restarted the patience
            self.anchor = self.best

    def state_dict(self) -> dict:
        best = trained_state(self.model) if self.best_is_current else self.best_weights
        return {"best": self.best, "best_epoch": self.best_epoch, "best_weights": best, "waited": self.waited,
                "anchor": self.anchor}

    def on_fit_end(self, trainer) -> None:
        if self.best_epoch:
            trainer.results["best_epoch"] = self.best_epoch
        if self.restore_best and not self.best_is_current and self.best_weights is not None:
            load_trained_state(trainer.model, self.best_weights)
        if self.restore_best and (self.best_is_current or self.best_weights is not None):
            trainer.results["restored_epoch"] = self.best_epoch  # the weights the model ends with


class ConvergenceStop(Hook):
    """Stop when the training loss changes by less than `tol` from one epoch to the next (classic GD)."""

    def __init__(self, tol: float) -> None:
        self.tol = tol
        self.previous: float | None = None

    def on_epoch_end(self, trainer, record: dict) -> None:
        loss = record["train_loss"]
        if self.previous is not None and abs(self.previous - loss) < self.tol:
            trainer.stop_reason = f"converged: training loss changed by less than {self.tol:g}"
        self.previous = loss

    def state_dict(self) -> dict:
        return {"previous": self.previous}


class LastGoodWeights(Hook):
    """Keeps the weights of the last epoch that ended with finite losses (restored if training blows up).

    They are copied only when the next epoch starts (they are about to change), so the initial weights, which
    hold nothing learned, and the last epoch's, which no later step can spoil, are never copied: a second copy
    of the model is not held through a one-epoch run (134 MB for IMDB's 2.1M-row table)."""

    def __init__(self) -> None:
        self.weights: dict | None = None
        self.epoch = 0
        self.finished = 0  # the last epoch that ended with finite losses, until its weights are copied
        self.model: torch.nn.Module | None = None

    def on_fit_start(self, trainer) -> None:
        self.model = trainer.model
        trainer.results["last_good"] = self

    def on_epoch_start(self, trainer) -> None:
        if self.finished:
            self.weights, self.epoch, self.finished = snapshot(trainer.model, self.weights), self.finished, 0

    def on_epoch_end(self, trainer, record: dict) -> None:
        if math.isfinite(record["train_loss"]):
            self.finished = record["epoch"]

    def state_dict(self) -> dict:
        if self.finished:
            return {"weights": trained_state(self.model), "epoch": self.finished}
        return {"weights": self.weights, "epoch": self.epoch}


class TimeToTarget(Hook):
    """Records when validation `metric` first reaches `value` (seconds from `started`), optionally stopping there."""

    def __init__(self, metric: str, value: float, mode: str = "auto", started: float | None = None,
                 stop: bool = False) -> None:
        self.key = metric if metric.startswith("val_") else f"val_{metric}"
        self.value, self.stop = value, stop
        self.minimize = lower_is_better(self.key) if mode == "auto" else mode == "min"
        self.started = started
        self.result: dict = {"metric": self.key, "value": value, "reached": False, "seconds": None, "epoch": None}

    def on_fit_start(self, trainer) -> None:
        if self.started is None:
            self.started = time.perf_counter()

    def on_fit_end(self, trainer) -> None:
        trainer.results["time_to_target"] = self.result

    def state_dict(self) -> dict:
        return {"result": self.result, "elapsed": time.perf_counter() - self.started}

    def load_state_dict(self, state: dict) -> None:
        # the clock goes on from where the stopped run left it
        self.result, self.started = dict(state["result"]), time.perf_counter() - state["elapsed"]

    def on_epoch_end(self, trainer, record: dict) -> None:
        score = record.get(self.key)
        if score is None or self.result["reached"]:
            return
        if (score <= self.value) if self.minimize else (score >= self.value):
            self.result.update(reached=True, seconds=time.perf_counter() - self.started, epoch=record["epoch"],
                               score=score)
            if self.stop:
                trainer.stop_reason = f"target reached: {self.key} {score:.4f} at epoch {record['epoch']}"
