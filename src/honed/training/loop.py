"""The training loop: one function, read top to bottom.

Everything optional (early stopping, convergence stop, progress, logging,
checkpoints, resuming) joins through hooks (see hooks.py); the loop itself only
trains and evaluates. Distributed workers run this same loop on their share of
every batch (see distributed.py); mixed precision, compilation, gradient
accumulation and clipping are recipe switches on the one step below.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass, field

import torch
from torch import nn

from honed.data import DataBundle
from honed.errors import UserError
from honed.evaluation import lower_is_better, metric_names, outputs_of, score_outputs
from honed.training.accel import Compiled, autocast, grad_scaler, warn_about_precision
from honed.training.batches import Batches
from honed.training.distributed import World, all_sum, gather_rows, wrap
from honed.training.dropout_schedule import DropoutSchedule
from honed.training.hooks import ConvergenceStop, EarlyStopping, Hook, LastGoodWeights, LossSpikes, TimeToTarget
from honed.training.losses import build_loss
from honed.training.optimizers import CLOSURE, FULL_BATCH, build_optimizer
from honed.training import state
from honed.training.regularization import l2_of, penalized_weights, penalty
from honed.training.resizing import ProgressiveResizing, resized
from honed.training.schedules import Schedule


class NonFiniteLoss(Exception):
    """The loss became NaN or infinite; carries where, and the last good weights, so the user can be told."""

    def __init__(self, epoch: int, step: int, value: float, last_good: LastGoodWeights | None = None) -> None:
        super().__init__(f"loss became {value} at epoch {epoch}, step {step}")
        self.epoch, self.step, self.value = epoch, step, value
        self.last_good = last_good


VAL_OUTPUTS_BYTES = 64 * 2**20  # validation outputs kept for evaluation at most (a language model's are larger)


@dataclass
class Trainer:
    """What hooks can see and touch while training runs."""

    model: nn.Module  # the plain module: its state_dict has no DDP or compile prefixes
    net: nn.Module  # what a step calls: the model, possibly wrapped by DDP/FSDP and compiled
    data: DataBundle
    recipe: object
    optimizer: torch.optim.Optimizer
    schedule: Schedule
    scaler: torch.amp.GradScaler
    batches: Batches
    metrics: list[str]
    hooks: list[Hook]
    world: World = World()
    strategy: str = "none"  # none | ddp | fsdp
    epoch: int = 0
    step: int = 0
    epoch_step: int = 0  # optimizer steps done in the current epoch: the data-order position
    epoch_loss: torch.Tensor | float = 0.0  # this worker's summed training loss of the epoch so far
    resumed_loss: float = 0.0
    in_epoch: bool = False
    epoch_started: float = 0.0
    stop_reason: str = ""
    history: list[dict] = field(default_factory=list)
    train_seconds: float = 0.0
    samples_seen: int = 0
    member: int = 0  # which member of a bag this trainer fits (model.bags > 1; 0 otherwise)
    # What hooks produce, by name (their one place): "best_epoch" (EarlyStopping), "time_to_target"
    # (TimeToTarget), "last_good" (LastGoodWeights); a hook another one needs is found here, never by type.
    results: dict = field(default_factory=dict)
    loss_fn: object = None  # what validation scores the model's answer with
    step_fn: object = None  # the one training step (Step), set by prepare
    # validation outputs by epoch: evaluation reuses those of the weights the model ends with instead of scoring
    # the validation rows again (a CIFAR-10 pass with its mirror vote is 14 s); the oldest go past VAL_OUTPUTS_BYTES
    val_outputs: dict = field(default_factory=dict)

    def call(self, event: str, *args) -> None:
        for hook in self.hooks:
            getattr(hook, event)(self, *args)

    @property
    def best_epoch(self) -> int:
        """The epoch whose weights the model ends with: early stopping's best, else the last one run."""
        return self.results.get("best_epoch", self.epoch)

    def validated_outputs(self, split) -> torch.Tensor | None:
        """The outputs on `split` of the weights the model holds now (early stopping's restored epoch, else the last
        one run), when `split` is what the loop validated on and they were kept; None otherwise."""
        if split is None or split is not self.data.val:
            return None
        return self.val_outputs.get(self.results.get("restored_epoch", self.epoch))

    def keep_val_outputs(self, epoch: int, outputs: torch.Tensor) -> None:
        self.val_outputs[epoch] = outputs
        while sum(o.numel() * o.element_size() for o in self.val_outputs.values()) > VAL_OUTPUTS_BYTES:
            del self.val_outputs[min(self.val_outputs)]  # the newest may go too: evaluation then scores again

    def elapsed(self) -> float:
        """Training seconds so far, the running epoch included."""
        return self.train_seconds + (time.perf_counter() - self.epoch_started if self.in_epoch else 0.0)

    def state_dict(self) -> dict:
        """The whole training state as tensors and plain values (what torch.load(weights_only=True) accepts):
        model, optimizer, schedule, scaler, position in the data order, history, every hook's state, RNGs."""
        model_state, optimizer_state = state.model_and_optimizer(self.model, self.optimizer, self.strategy)
        return {
            "epoch": self.epoch,
            "step": self.step,
            "epoch_step": self.epoch_step,
            "epoch_loss": float(self.epoch_loss),
            "train_seconds": self.elapsed(),
            "samples_seen": self.samples_seen,
            "history": self.history,
            "model": model_state,
            "optimizer": optimizer_state,
            "schedule": self.schedule.state_dict(),
            "scaler": self.scaler.state_dict(),
            "hooks": {type(h).__name__: h.state_dict() for h in self.hooks if h.state_dict()},
            "rng": state.rng_state(),
        }

    def load_state_dict(self, saved: dict) -> None:
        """Put a state from `state_dict()` back into this freshly built trainer."""
        state.load_model_and_optimizer(self.model, self.optimizer, self.strategy, saved["model"], saved["optimizer"])
        self.schedule.load_state_dict(saved["schedule"])
        if saved["scaler"]:
            self.scaler.load_state_dict(saved["scaler"])
        for hook in self.hooks:
            hook_state = saved["hooks"].get(type(hook).__name__)
            if hook_state is not None:
                hook.load_state_dict(hook_state)
        self.epoch, self.step, self.epoch_step = saved["epoch"], saved["step"], saved["epoch_step"]
        self.resumed_loss = saved["epoch_loss"]
        self.train_seconds, self.samples_seen = saved["train_seconds"], saved["samples_seen"]
        self.history = list(saved["history"])
        state.set_rng_state(saved["rng"])


def monitor_of(recipe) -> str:
    es = recipe.train.early_stopping
    return es.monitor if es else "val_loss"


def standard_hooks(recipe, started: float | None = None) -> list[Hook]:
    """The hooks a recipe asks for, in the order they run."""
    # per-step losses stay inside a private run (train.privacy): its spikes are not published
    hooks: list[Hook] = [LastGoodWeights()] + ([LossSpikes()] if recipe.train.privacy is None else [])
    target = recipe.train.target
    if target:
        hooks.append(TimeToTarget(target.metric, target.value, target.mode, started, recipe.train.stop_at_target))
    if recipe.train.convergence_tol:
        hooks.append(ConvergenceStop(recipe.train.convergence_tol))
    es = recipe.train.early_stopping
    if es:
        hooks.append(EarlyStopping(es.monitor, es.mode, es.patience, es.min_delta, es.restore_best, es.min_rel_delta))
    return hooks


def parallel_strategy(requested: str, world: World) -> str:
    if requested == "fsdp":
        return "fsdp"
    return "ddp" if world.parallel else "none"


def prepare(model: nn.Module, data: DataBundle, recipe, extra_hooks: list[Hook] = (), seed: int = 0,
            started: float | None = None, world: World = World(), loss_fn=None) -> Trainer:
    """Everything around `model` that training needs, as `recipe` says: the wrapped net, optimizer, schedule,
    batches, hooks and the one step; `run` then trains it.

    `started` (a time.perf_counter() value) is when the whole command began; time to target counts from it.
    `loss_fn` replaces the recipe's loss (distillation passes one that also reads the teacher's outputs).
    """
    spec = recipe.train
    loss_fn = loss_fn or build_loss(recipe.loss, data.task)
    step_loss = loss_fn  # what a training step minimizes; validation scores the model's answer with loss_fn
    if getattr(model, "members", 1) > 1:  # an ensemble in one model (model.ensemble): each member's loss
        from honed.training.losses import per_member

        step_loss = per_member(loss_fn, model.members)
    metrics = metric_names(recipe.metrics, data.task)
    metrics = [m for m in metrics if m != "confusion_matrix"]  # per-epoch logs stay scalar
    device = next(model.parameters()).device
    warn_about_precision(spec.precision, device)
    strategy = parallel_strategy(spec.strategy, world)
    if spec.activation_checkpointing:  # memory for time: each encoder layer recomputed in the backward pass
        model.checkpoint_activations()
    if spec.privacy is not None:
        from honed.training.privacy import Privacy  # imports Opacus: only private runs pay for it

        if world.parallel:
            raise UserError("train.privacy with several workers (--nproc) is not supported; run one worker")
        Privacy.prepare(model)  # recurrent layers swapped for Opacus' own before the optimizer sees them
    net = wrap(model, strategy, world, device)
    optimizer = build_optimizer(model, recipe.optimizer)  # after wrap: with FSDP its parameters are the shards
    if spec.compile:
        net = Compiled(net)
    batches = Batches(data.train.x.to(device), data.train.y.to(device), spec.batch_size, spec.shuffle, seed,
                      full_batch=recipe.optimizer.name in FULL_BATCH, bucketing=spec.bucketing,
                      accumulate=spec.accumulate, world=world, poisson=spec.privacy is not None)
    monitor = monitor_of(recipe)
    total = planned_steps(spec, batches.steps_per_epoch)
    schedule = Schedule(optimizer, recipe.schedule, batches.steps_per_epoch, spec.epochs,
                        "min" if lower_is_better(monitor) else "max", total)
    hooks = standard_hooks(recipe, started)
    if spec.lookahead:  # before the hooks that read the weights at an epoch's end (early stopping keeps them)
        from honed.training.lookahead import Lookahead

        hooks.insert(0, Lookahead(total))
    if recipe.model.dropout_schedule == "flat_cos":  # RealMLP's: dropout down to 0 at the end
        hooks.append(DropoutSchedule(total))
    if resized(model):  # model.input_size_from: small images first, the full size last
        hooks.append(ProgressiveResizing(total))
    if spec.privacy is not None:  # per-example gradients, clipped and noised; the accountant as a hook
        privacy = Privacy(spec.privacy, len(data.train), batches.steps_per_epoch, spec.epochs, total)
        net, optimizer = privacy.attach(net, optimizer)
        hooks.append(privacy.hook())
    trainer = Trainer(model, net, data, recipe, optimizer, schedule, grad_scaler(spec.precision, device), batches,
                      metrics, hooks + list(extra_hooks), world, strategy, loss_fn=loss_fn)
    trainer.step_fn = Step(trainer, step_loss, penalized_weights(model), device,
                           l2_of(recipe.regularization, len(data.train)))
    return trainer


def planned_steps(spec, steps_per_epoch: int) -> int:
    """The optimizer steps the run will take: whole epochs, or train.steps exactly (train.exact_steps)."""
    whole = steps_per_epoch * spec.epochs
    return min(whole, spec.steps) if spec.exact_steps and spec.steps else whole


def fit(model: nn.Module, data: DataBundle, recipe, extra_hooks: list[Hook] = (), seed: int = 0,
        started: float | None = None, world: World = World(), loss_fn=None) -> Trainer:
    """Train `model` on `data` as `recipe` says; returns the Trainer with its history (`run(prepare(...))`)."""
    return run(prepare(model, data, recipe, extra_hooks, seed, started, world, loss_fn))


def run(trainer: Trainer) -> Trainer:
    """The loop: epochs of steps, validation after each, hooks at every event; returns `trainer`.

    A hook may restore a checkpoint in `on_fit_start` (see run/checkpoints.py): the loop then goes on
    from the restored epoch and step.
    """
    data, spec, batches, schedule, net = trainer.data, trainer.recipe.train, trainer.batches, trainer.schedule, trainer.net
    model, world, step, loss_fn = trainer.model, trainer.world, trainer.step_fn, trainer.loss_fn
    device = next(model.parameters()).device
    monitor = monitor_of(trainer.recipe)
    n_train = len(data.train)
    last_step = planned_steps(spec, batches.steps_per_epoch)

    trainer.call("on_fit_start")  # may restore a checkpoint
    first_epoch, skip = max(trainer.epoch, 1), trainer.epoch_step
    if skip >= batches.steps_per_epoch:  # the checkpoint was taken at the end of an epoch
        first_epoch, skip = trainer.epoch + 1, 0
    for epoch in range(first_epoch, spec.epochs + 1):
        trainer.epoch, trainer.epoch_step = epoch, skip
        trainer.epoch_loss = torch.tensor(trainer.resumed_loss if skip else 0.0, device=device, dtype=torch.float64)
        trainer.epoch_started, trainer.in_epoch = time.perf_counter(), True
        net.train()
        trainer.call("on_epoch_start")  # before the weights change again (hooks copy an epoch's weights here)
        for chunks, rows in batches.epoch(epoch, skip):
            value = step(chunks, rows)
            trainer.step += 1
            trainer.epoch_step += 1
            trainer.samples_seen += rows
            trainer.call("on_step_end", value)
            if trainer.stop_reason or trainer.step >= last_step:  # a hook may stop within an epoch (the range
                break                                                # test does); train.exact_steps ends in one
        skip = 0
        trainer.in_epoch = False
        trainer.train_seconds += time.perf_counter() - trainer.epoch_started

        # End of epoch: score validation, log, let hooks decide whether to stop.
        # the mean over the rows this epoch trained on: all of them, but in an epoch cut short
        rows = min(n_train, trainer.epoch_step * batches.batch_size * batches.accumulate)
        train_loss = float(all_sum(trainer.epoch_loss, world)) / (rows if rows and trainer.epoch_step <
                                                                  batches.steps_per_epoch else n_train)
        record = {"epoch": epoch, "step": trainer.step, "train_loss": train_loss, "lr": schedule.lr,
                  "grad_norm": grad_norm(model), "weight_norm": weight_norm(model)}
        last = epoch == spec.epochs or trainer.step >= last_step or bool(trainer.stop_reason)
        if data.val is not None and (last or epoch % spec.val_every == 0):  # the run ends on validated weights
            val, outputs = score(trainer, data.val, loss_fn)
            trainer.keep_val_outputs(epoch, outputs)
            record.update({f"val_{k}": v for k, v in val.items()})
        record["seconds"] = trainer.train_seconds
        schedule.after_epoch(record.get(monitor))
        trainer.history.append(record)
        trainer.call("on_epoch_end", record)
        if trainer.stop_reason or trainer.step >= last_step:
            break
    trainer.call("on_fit_end")
    return trainer


class Step:
    """One optimizer step over a list of (x, y, weight) chunks: forward, backward, clip, step.

    An optimizer that re-evaluates the loss within its step (L-BFGS's line search) gets the
    forward and backward passes as a closure; the loss logged is the one where the step started.
    """

    def __init__(self, trainer: Trainer, loss_fn, penalized: list[torch.Tensor], device: torch.device,
                 l2: float) -> None:
        self.t, self.loss_fn, self.penalized = trainer, loss_fn, penalized
        self.l1, self.l2, self.spec = trainer.recipe.regularization.l1, l2, trainer.recipe.train
        self.precision = autocast(self.spec.precision, device)
        inner = trainer.net.eager if isinstance(trainer.net, Compiled) else trainer.net
        self.ddp = inner if trainer.strategy == "ddp" else None
        self.device = device
        self.closure = trainer.recipe.optimizer.name in CLOSURE

    def __call__(self, chunks: list[tuple[torch.Tensor, torch.Tensor, float]], rows: int) -> float:
        """Returns this worker's loss for the step (the step's mean loss when it works alone)."""
        t = self.t
        if self.closure:
            seen: list[torch.Tensor] = []

            def closure() -> torch.Tensor:
                data_loss, objective = self.backward(chunks)
                seen.append(data_loss)
                return objective

            t.scaler.step(t.optimizer, closure)
            data_loss = seen[0]
        else:
            data_loss, _ = self.backward(chunks)
            if self.spec.clip_grad_norm:
                t.scaler.unscale_(t.optimizer)
                torch.nn.utils.clip_grad_norm_(t.model.parameters(), self.spec.clip_grad_norm)
            t.scaler.step(t.optimizer)
        t.scaler.update()
        t.schedule.after_step()
        t.epoch_loss += data_loss * (rows / t.world.size)  # this worker's part of the step's summed loss
        return float(data_loss)

    def backward(self, chunks: list[tuple[torch.Tensor, torch.Tensor, float]]) -> tuple[torch.Tensor, torch.Tensor]:
        """Gradients of the step's mean loss (+ penalty) over its chunks; (data loss, data loss + penalty)."""
        t = self.t
        t.optimizer.zero_grad(set_to_none=True)
        data_loss = torch.zeros((), device=self.device)
        extra = None
        if not chunks:  # a Poisson-sampled step with no row (train.privacy): still a step, of noise alone
            t.optimizer.prepare_empty_step()
            return data_loss, data_loss
        for i, (x, y, weight) in enumerate(chunks):
            last = i == len(chunks) - 1
            with self.sync(last), self.precision:
                # weighted so that the chunks' gradients add up to that of the mean over the step's rows
                loss = self.loss_fn(t.net(x).float(), y) * weight
            data_loss += loss.detach()
            if last:
                # the penalty joins the last backward pass: DDP syncs each gradient once per pass
                extra = penalty(self.penalized, self.l1, self.l2)
                if extra is not None:
                    loss = loss + extra
            t.scaler.scale(loss).backward()
        value = float(data_loss)
        if not math.isfinite(value) or (extra is not None and not math.isfinite(float(extra.detach()))):
            raise NonFiniteLoss(t.epoch, t.step + 1, value, t.results.get("last_good"))
        return data_loss, data_loss + (extra.detach() if extra is not None else 0.0)

    def sync(self, last: bool):
        """DDP all-reduces gradients on the last chunk of a step only (accumulation skips the others)."""
        if last or self.ddp is None:
            return contextlib.nullcontext()
        return self.ddp.no_sync()


def score(trainer: Trainer, split, loss_fn) -> tuple[dict, torch.Tensor]:
    """(validation metrics, the outputs they score); with several workers each scores its share and the outputs
    are gathered."""
    data, world, model = trainer.data, trainer.world, trainer.model
    unscale = data.preprocessor.unscale if data.task == "regression" else None
    if world.size == 1:
        scores = outputs_of(model, split.x)
    else:
        parts = torch.tensor_split(torch.arange(len(split)), world.size)
        mine = parts[world.rank]
        # equal row counts on every worker: an FSDP forward is a collective, so all must make the same calls
        rows = torch.cat([mine, parts[0][: len(parts[0]) - len(mine)]])
        scores = gather_rows(outputs_of(model, split.x[rows])[: len(mine)], [len(p) for p in parts], world)
    return score_outputs(scores, split.y, data.task, loss_fn, trainer.metrics, data.output_dim, unscale), scores


def weight_norm(model: nn.Module) -> float:
    """L2 norm of the trained weights (the doctor watches it grow); frozen ones left out."""
    with torch.no_grad():
        norms = [p.detach().norm() for p in model.parameters() if p.requires_grad]
        norms = [n.full_tensor() if hasattr(n, "full_tensor") else n for n in norms]
        return float(torch.stack(norms).norm()) if norms else 0.0


def grad_norm(model: nn.Module) -> float:
    """L2 norm of all gradients from the last step."""
    norms = [p.grad.detach().norm() for p in model.parameters() if p.grad is not None]
    norms = [n.full_tensor() if hasattr(n, "full_tensor") else n for n in norms]  # FSDP: norms of shards
    return float(torch.stack(norms).norm()) if norms else 0.0


