"""Cheap looks inside a trained model, for what the history cannot tell.

probe_model: a few training batches (PROBE_ROWS rows at most, seeded) through the trained model with
forward hooks on its activation modules and one backward pass: per layer the gradient norm beside the
weight norm; per ReLU the share of units never active on the sample; per sigmoid/tanh the share of
outputs pinned near their limits.
short_range_test: tuning.lr_find's range test (an ordinary `fit` with a rising rate), SWEEP_STEPS steps
from 1/100 of the rate the run used to 10 (or 1000x the rate, if higher).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

PROBE_ROWS = 512
HUGE = 5_000_000  # parameters in one tensor: no gradient probe (embedding tables of hashed n-grams)
SWEEP_STEPS = 60
RELU = (nn.ReLU, nn.ReLU6)
SQUASHING = {nn.Sigmoid: (0.01, 0.99), nn.Tanh: (-0.99, 0.99)}


@dataclass
class Probe:
    rows: int
    layers: list[dict] = field(default_factory=list)  # {name, grad_norm, weight_norm} from input to output
    relus: list[dict] = field(default_factory=list)  # {name, units, dead}
    squashing: list[dict] = field(default_factory=list)  # {name, kind, saturated_share}


def unit_activity(output: torch.Tensor) -> torch.Tensor:
    """Per unit (features last for dense layers, channels second for convolutions): ever above zero."""
    if output.dim() > 2 and output.shape[1] != output.shape[-1]:  # (N, C, ...) convolution maps
        output = output.transpose(1, -1)
    return (output.reshape(-1, output.shape[-1]) > 0).any(dim=0)


def probe_model(model: nn.Module, bundle, recipe) -> Probe:
    from honed.data.bundle import trim_padding
    from honed.data.profile import sample_rows
    from honed.training import build_loss

    rows = torch.from_numpy(sample_rows(len(bundle.train), PROBE_ROWS, recipe.seed))
    x, y = trim_padding(bundle.train.x[rows]), bundle.train.y[rows]
    probe = Probe(rows=len(rows))
    active: dict[str, torch.Tensor] = {}
    squashed: dict[str, list] = {}
    handles = []
    for name, module in model.named_modules():
        if isinstance(module, RELU):
            def seen(mod, inputs, output, name=name):
                units = unit_activity(output.detach())
                active[name] = units if name not in active else active[name] | units
            handles.append(module.register_forward_hook(seen))
        for kind, (low, high) in SQUASHING.items():
            if isinstance(module, kind):
                def pinned(mod, inputs, output, name=name, low=low, high=high, kind=kind.__name__.lower()):
                    out = output.detach()
                    squashed.setdefault(name, [kind, 0, 0])
                    squashed[name][1] += int(((out <= low) | (out >= high)).sum())
                    squashed[name][2] += out.numel()
                handles.append(module.register_forward_hook(pinned))
    was_training = model.training
    model.eval()  # no dropout: the statistics are the trained network's
    model.zero_grad(set_to_none=True)
    # a huge table (a text model's n-gram embeddings) would get a dense gradient as large as itself: left out
    huge = [p for p in model.parameters() if p.requires_grad and p.numel() > HUGE]
    for p in huge:
        p.requires_grad_(False)
    try:
        with torch.enable_grad():
            loss = build_loss(recipe.loss, bundle.task)(model(x), y)
            if loss.requires_grad:
                loss.backward()
    finally:
        for h in handles:
            h.remove()
        for p in huge:
            p.requires_grad_(True)
        model.train(was_training)
    for name, p in model.named_parameters():
        if p.grad is not None and p.dim() >= 2:  # weights, not biases or norms
            probe.layers.append({"name": name, "grad_norm": float(p.grad.norm()), "weight_norm": float(p.detach().norm())})
    model.zero_grad(set_to_none=True)
    # named by their place among the ReLUs ("hidden layer 2"), the module path beside it
    probe.relus = [{"name": f"hidden layer {k} ({n})", "units": int(a.numel()), "dead": int((~a).sum())}
                   for k, (n, a) in enumerate(active.items(), 1)]
    probe.squashing = [{"name": n, "kind": k, "saturated_share": s / max(t, 1)} for n, (k, s, t) in squashed.items()]
    return probe


def short_range_test(recipe, bundle):
    """The range test's sweep around the run's rate (one seed: the doctor needs an order of magnitude)."""
    from honed.tuning.lr_find import range_test

    lr = recipe.optimizer.lr
    return range_test(recipe, bundle, recipe.seed, lr / 100, max(lr * 1000, 10.0), SWEEP_STEPS)


MINI_BATCH = 64


def minibatch_race(recipe, bundle, target_loss: float, seconds: float, max_epochs: int = 50) -> dict:
    """Adam with batches of MINI_BATCH from the run's initialization (same seed) on its training rows, until its
    epoch's training loss is at most `target_loss` or `seconds` of training have passed: the epochs, seconds
    and loss it got to. An ordinary `fit` with a hook that ends it: the measurement a full-batch run is
    compared with."""
    from dataclasses import replace

    from honed.api import prepare
    from honed.recipe import variant
    from honed.training import Hook
    from honed.training.device import seed_everything
    from honed.training.loop import run

    class Reached(Hook):
        def on_epoch_end(self, trainer, record) -> None:
            if record["train_loss"] <= target_loss:
                trainer.stop_reason = "reached the full-batch run's final loss"
            elif trainer.train_seconds >= seconds:
                trainer.stop_reason = "used the full-batch run's time"

    seed_everything(recipe.seed)
    changed = variant(recipe, {"optimizer.name": "adam", "optimizer.lr": 1e-3, "optimizer.momentum": 0.0,
                               "optimizer.nesterov": False, "schedule.name": "constant", "schedule.warmup_epochs": 0.0,
                               "train.epochs": max_epochs, "train.batch_size": MINI_BATCH, "train.early_stopping": None,
                               "train.target": None, "train.stop_at_target": False, "train.checkpoint": None,
                               "train.convergence_tol": None, "model.bags": 1})
    trainer = run(prepare(changed, replace(bundle, val=None), hooks=[Reached()]))
    last = trainer.history[-1]
    return {"loss": last["train_loss"], "seconds": trainer.train_seconds, "epochs": last["epoch"],
            "reached": last["train_loss"] <= target_loss}
