"""torch.optim.SparseAdam's update, computed on dense blocks of the rows a step touched.

SparseAdam adds sparse tensors into its dense state (coalesce, sparse_mask, sparse add_ for
each moment and the weights). On a 2M-row table of which an IMDB batch touches ~25k rows,
that is ~22 ms a step on 2 CPU cores, three times the forward and backward together. The
same arithmetic as one gather and one scatter per tensor takes ~6 ms. The state and
hyperparameters are SparseAdam's own, so checkpoints move between the two, and gradients
this does not expect (sparse in more than the row dimension) take SparseAdam's path.
"""

from __future__ import annotations

import math

import torch


class RowSparseAdam(torch.optim.SparseAdam):
    """Lazy Adam for row-sparse gradients (nn.Embedding/EmbeddingBag with sparse=True)."""

    @torch.no_grad()
    def step(self, closure=None):
        if any(p.grad is not None and (not p.grad.is_sparse or p.grad.sparse_dim() != 1)
               for group in self.param_groups for p in group["params"]):
            return super().step(closure)  # SparseAdam's own checks and messages
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    self._update(p, group)
        return loss

    def _touched(self, p: torch.Tensor, group: dict) -> tuple[torch.Tensor, torch.Tensor, dict]:
        """(the rows this step touched, their summed gradient, the weight's state with its step counted);
        the state's tensors are made by `_new_state` on the first step."""
        rows, grad = summed_rows(p.grad)
        if group.get("maximize", False):
            grad = -grad
        state = self.state[p]
        if not state:
            state.update(step=0, **self._new_state(p))
        state["step"] += 1
        return rows, grad, state

    def _new_state(self, p: torch.Tensor) -> dict:
        return {"exp_avg": torch.zeros_like(p, memory_format=torch.preserve_format),
                "exp_avg_sq": torch.zeros_like(p, memory_format=torch.preserve_format)}

    def _update(self, p: torch.Tensor, group: dict) -> None:
        beta1, beta2 = group["betas"]
        rows, grad, state = self._touched(p, group)
        # Moments of the touched rows only: rows outside the batch keep theirs (lazy Adam).
        exp_avg = state["exp_avg"].index_select(0, rows).lerp_(grad, 1 - beta1)
        exp_avg_sq = state["exp_avg_sq"].index_select(0, rows).mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        state["exp_avg"].index_copy_(0, rows, exp_avg)
        state["exp_avg_sq"].index_copy_(0, rows, exp_avg_sq)
        step = state["step"]
        step_size = float(group["lr"]) * math.sqrt(1 - beta2 ** step) / (1 - beta1 ** step)
        # scaled first: index_add_ with an alpha takes a path 7x slower than without
        p.index_add_(0, rows, exp_avg.div_(exp_avg_sq.sqrt_().add_(group["eps"])).mul_(-step_size))


def summed_rows(grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(distinct row ids, the gradient summed per row) of a row-sparse gradient.

    An embedding's backward lists one row per token, repeats included; unique + index_add
    sums them in about half the time of coalesce().
    """
    if grad.is_coalesced():
        return grad.indices()[0], grad.values()
    rows, where = torch.unique(grad._indices()[0], return_inverse=True)
    values = grad._values()
    summed = values.new_zeros((len(rows), *values.shape[1:])).index_add_(0, where, values)
    return rows, summed


class RowWiseSparseAdam(RowSparseAdam):
    """Lazy Adam with one second moment per row and no momentum (optimizer.sparse_state: row).

    A table's Adam state is twice the table (two moments per weight: 268 MB on IMDB's 2.1M x 16
    table, more than the table). Here each row keeps one running mean of its squared gradient,
    averaged over the row (4 bytes a row), as FBGEMM's row-wise optimizers for recommender
    tables do, and steps by grad / (sqrt(v) + eps) with Adam's bias correction, i.e. Adam with
    beta1 = 0 whose v is shared by a row. betas[0] is unused. With lazy updates momentum works
    poorly anyway: a row's first moment decays only on the steps that touch it.
    """

    def _new_state(self, p: torch.Tensor) -> dict:
        return {"row_sq": torch.zeros(p.shape[0], dtype=p.dtype, device=p.device)}

    def _update(self, p: torch.Tensor, group: dict) -> None:
        beta2 = group["betas"][1]
        rows, grad, state = self._touched(p, group)
        row_sq = state["row_sq"].index_select(0, rows).mul_(beta2)
        row_sq.add_(grad.pow(2).flatten(1).mean(1), alpha=1 - beta2)
        state["row_sq"].index_copy_(0, rows, row_sq)
        step_size = float(group["lr"]) * math.sqrt(1 - beta2 ** state["step"])
        scale = row_sq.sqrt_().add_(group["eps"]).reciprocal_().mul_(-step_size)
        p.index_add_(0, rows, grad.mul(scale.view(-1, *([1] * (grad.dim() - 1)))))
