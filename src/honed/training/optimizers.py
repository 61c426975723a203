"""Optimizers by name, built on torch.optim, plus decoupled weight decay as a pre-step transform.

`gd` is plain gradient descent on the full training set: the loop takes exactly
one optimizer step per pass (see `FULL_BATCH`). `lbfgs` is full-batch too, and its step
evaluates the loss several times (a closure, see `CLOSURE`): the convex models (linear and
logistic regression, also on TF-IDF text) converge in a few dozen iterations. Sparse embeddings (model.sparse) get the
sparse-gradient counterpart of the chosen optimizer (SparseAdam's update for adam/adamw), with no
weight decay: decaying a table of millions of rows would touch every row at every step.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from honed.registry import Registry
from honed.training.sparse_adam import RowSparseAdam, RowWiseSparseAdam

if TYPE_CHECKING:
    from honed.recipe.schema import OptimizerSpec

OPTIMIZERS: Registry = Registry("optimizer")
FULL_BATCH = {"gd", "lbfgs"}
CLOSURE = {"lbfgs"}  # optimizers whose step re-evaluates the loss (the Step hands them a closure)
LBFGS_ITERATIONS = 20  # iterations of one L-BFGS step (one epoch): torch's default
LBFGS_HISTORY = 10  # curvature pairs kept: memory is 2 x this x the parameters (torch's 100 is for small models)
NATIVE_DECOUPLED_DECAY = {"adamw"}


@OPTIMIZERS.register("gd")  # the same update; gd's steps are full-batch (FULL_BATCH)
@OPTIMIZERS.register("sgd")
def _sgd(params, spec: OptimizerSpec) -> torch.optim.Optimizer:
    return torch.optim.SGD(params, lr=spec.lr, momentum=spec.momentum, nesterov=spec.nesterov, fused=spec.fused or None)


@OPTIMIZERS.register("adam")
def _adam(params, spec: OptimizerSpec) -> torch.optim.Optimizer:
    return torch.optim.Adam(params, lr=spec.lr, betas=spec.betas, eps=spec.eps, fused=spec.fused or None)


@OPTIMIZERS.register("adamw")
def _adamw(params, spec: OptimizerSpec) -> torch.optim.Optimizer:
    return torch.optim.AdamW(params, lr=spec.lr, betas=spec.betas, eps=spec.eps, weight_decay=spec.weight_decay,
                             fused=spec.fused or None)


@OPTIMIZERS.register("rmsprop")
def _rmsprop(params, spec: OptimizerSpec) -> torch.optim.Optimizer:
    return torch.optim.RMSprop(params, lr=spec.lr, alpha=spec.alpha, eps=spec.eps, momentum=spec.momentum)


@OPTIMIZERS.register("adagrad")
def _adagrad(params, spec: OptimizerSpec) -> torch.optim.Optimizer:
    return torch.optim.Adagrad(params, lr=spec.lr, eps=spec.eps, fused=spec.fused or None)


@OPTIMIZERS.register("lbfgs")
def _lbfgs(params, spec: OptimizerSpec) -> torch.optim.Optimizer:
    # a strong-Wolfe line search picks each step's length, so lr = 1 is the usual choice
    return torch.optim.LBFGS(params, lr=spec.lr, max_iter=LBFGS_ITERATIONS, history_size=LBFGS_HISTORY,
                             line_search_fn="strong_wolfe")


SPARSE_OPTIMIZERS: Registry = Registry("optimizer for sparse gradients")


@SPARSE_OPTIMIZERS.register("adam")
@SPARSE_OPTIMIZERS.register("adamw")
def _sparse_adam(params, spec: OptimizerSpec) -> torch.optim.Optimizer:
    # Lazy Adam: moments of a row advance only when the row is in the batch.
    kind = RowWiseSparseAdam if spec.sparse_state == "row" else RowSparseAdam
    return kind(params, lr=spec.lr, betas=spec.betas, eps=spec.eps)


@SPARSE_OPTIMIZERS.register("sgd")
@SPARSE_OPTIMIZERS.register("gd")
def _sparse_sgd(params, spec: OptimizerSpec) -> torch.optim.Optimizer:
    return torch.optim.SGD(params, lr=spec.lr)


@SPARSE_OPTIMIZERS.register("adagrad")
def _sparse_adagrad(params, spec: OptimizerSpec) -> torch.optim.Optimizer:
    return torch.optim.Adagrad(params, lr=spec.lr, eps=spec.eps, fused=spec.fused or None)


def sparse_parameters(model: nn.Module) -> list[nn.Parameter]:
    """Weights of embeddings built with sparse=True: their gradients are sparse tensors."""
    return [m.weight for m in model.modules() if isinstance(m, (nn.Embedding, nn.EmbeddingBag)) and m.sparse]


def build_optimizer(model: nn.Module, spec: OptimizerSpec) -> torch.optim.Optimizer:
    """The recipe's optimizer for the model's dense parameters, plus a sparse one for sparse embeddings.
    Frozen parameters (requires_grad off: model.freeze, an adapter's base weights) get no optimizer state."""
    sparse = sparse_parameters(model)
    dense = [p for p in model.parameters() if p.requires_grad and all(p is not q for q in sparse)]
    optimizer = OPTIMIZERS.get(spec.name)(dense, spec)
    if spec.weight_decay and spec.name not in NATIVE_DECOUPLED_DECAY:
        add_decoupled_weight_decay(optimizer, spec.weight_decay)
    if not sparse:
        return optimizer
    return SplitOptimizer([optimizer, SPARSE_OPTIMIZERS.get(spec.name)(sparse, spec)])


class SplitOptimizer(torch.optim.Optimizer):
    """Several torch.optim optimizers stepped as one (dense parameters with one, sparse with another).

    `param_groups` holds the parts' own group dicts, so a learning-rate schedule built on
    this optimizer sets the rate of every part.
    """

    def __init__(self, parts: list[torch.optim.Optimizer]) -> None:
        self.parts = parts
        super().__init__([p for o in parts for g in o.param_groups for p in g["params"]], {})
        self.param_groups = [g for o in parts for g in o.param_groups]

    @torch.no_grad()
    def step(self, closure=None):
        loss = closure() if closure is not None else None
        for o in self.parts:
            o.step()
        return loss

    def zero_grad(self, set_to_none: bool = True) -> None:
        for o in self.parts:
            o.zero_grad(set_to_none=set_to_none)

    def state_dict(self) -> dict:
        return {"parts": [o.state_dict() for o in self.parts]}

    def load_state_dict(self, state_dict: dict) -> None:
        for o, s in zip(self.parts, state_dict["parts"], strict=True):
            o.load_state_dict(s)
        self.param_groups = [g for o in self.parts for g in o.param_groups]


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
