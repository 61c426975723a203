"""Optimizers by name, built on torch.optim, plus decoupled weight decay as a pre-step transform.

`gd` is plain gradient descent on the full training set: the loop takes exactly
one optimizer step per pass (see `FULL_BATCH`).
"""

from __future__ import annotations

import torch

from honed.registry import Registry

OPTIMIZERS: Registry = Registry("optimizer")
FULL_BATCH = {"gd"}
NATIVE_DECOUPLED_DECAY = {"adamw"}


@OPTIMIZERS.register("gd")
def _gd(params, spec) -> torch.optim.Optimizer:
    return torch.optim.SGD(params, lr=spec.lr, momentum=spec.momentum, nesterov=spec.nesterov)


@OPTIMIZERS.register("sgd")
def _sgd(params, spec) -> torch.optim.Optimizer:
    return torch.optim.SGD(params, lr=spec.lr, momentum=spec.momentum, nesterov=spec.nesterov)


@OPTIMIZERS.register("adam")
def _adam(params, spec) -> torch.optim.Optimizer:
    return torch.optim.Adam(params, lr=spec.lr, betas=spec.betas, eps=spec.eps)


@OPTIMIZERS.register("adamw")
def _adamw(params, spec) -> torch.optim.Optimizer:
    return torch.optim.AdamW(params, lr=spec.lr, betas=spec.betas, eps=spec.eps, weight_decay=spec.weight_decay)


@OPTIMIZERS.register("rmsprop")
def _rmsprop(params, spec) -> torch.optim.Optimizer:
    return torch.optim.RMSprop(params, lr=spec.lr, alpha=spec.alpha, eps=spec.eps, momentum=spec.momentum)


@OPTIMIZERS.register("adagrad")
def _adagrad(params, spec) -> torch.optim.Optimizer:
    return torch.optim.Adagrad(params, lr=spec.lr, eps=spec.eps)


def build_optimizer(params, spec) -> torch.optim.Optimizer:
    optimizer = OPTIMIZERS.get(spec.name)(list(params), spec)
    if spec.weight_decay and spec.name not in NATIVE_DECOUPLED_DECAY:
        add_decoupled_weight_decay(optimizer, spec.weight_decay)
    return optimizer


def add_decoupled_weight_decay(optimizer: torch.optim.Optimizer, decay: float) -> None:
    """Before each step, shrink parameters by lr * decay (Loshchilov & Hutter), as AdamW does.

    Unlike an L2 penalty, the shrink does not pass through the optimizer's
    gradient scaling, so it stays decoupled from adaptive step sizes.
    """

    @torch.no_grad()
    def shrink(opt, args, kwargs) -> None:
        for group in opt.param_groups:
            factor = 1.0 - group["lr"] * decay
            for p in group["params"]:
                if p.grad is not None:
                    p.mul_(factor)

    optimizer.register_step_pre_hook(shrink)
