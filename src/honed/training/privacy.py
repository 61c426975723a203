"""Differentially private SGD (Abadi et al., 2016) on Opacus, joined to the one loop.

What `train.privacy` changes, and where:
    batches     Poisson sampling (training.batches): each row joins each step independently with rate
                q = 1 / steps per epoch, as the accounting assumes; a step may be empty, and is still taken
    net         Opacus' GradSampleModule: per-example gradients from hooks on every layer
    optimizer   Opacus' DPOptimizer: each example's gradient clipped to max_grad_norm, summed, Gaussian noise
                of std noise_multiplier x max_grad_norm added, divided by the expected batch
    accounting  the PrivacyAccount hook steps Opacus' accountant (prv or rdp) after every optimizer step and
                logs epsilon, the share of clipped examples and the noise-to-signal ratio every epoch
The noise multiplier for a budget comes from Opacus' get_noise_multiplier over the planned steps, so a
run that finishes all its epochs spends at most the epsilon asked for.

Recurrent layers become Opacus' DPLSTM / DPGRU for training (their state dicts use nn.LSTM's names) and
plain modules again afterwards, so export, serving and ONNX see the usual model.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import math
import warnings

import torch
from torch import nn

from honed.errors import UserError
from honed.training.hooks import Hook

try:
    from opacus import GradSampleModule
    from opacus.accountants import create_accountant
    from opacus.grad_sample import register_grad_sampler
    from opacus.accountants.utils import get_noise_multiplier
    from opacus.layers import DPGRU, DPLSTM
    from opacus.optimizers import DPOptimizer
    from opacus.optimizers.optimizer import _check_processed_flag, _mark_as_processed
    from opacus.validators import ModuleValidator
except ImportError:  # this module is imported only by runs with train.privacy
    raise UserError("train.privacy needs Opacus: pip install 'honed[privacy]'") from None

from honed.models.linear import TextLinear  # noqa: E402

if TYPE_CHECKING:
    from honed.recipe.schema import PrivacySpec

COVERED = ("the trained weights, with respect to the training rows (one row = one example); not covered: "
           "choices made on validation rows (early stopping, best epoch, time to target), and the label names")


@register_grad_sampler(nn.EmbeddingBag)
def embedding_bag_grad_sample(layer: nn.EmbeddingBag, activations, backprops: torch.Tensor) -> dict:
    """Per-example gradients of an EmbeddingBag fed 1-D ids with offsets (how honed's TokenPool calls it):
    every id of a text adds its output's gradient (over the text's length, in mean mode) to that row, repeats
    counted as often as they occur. Replaces Opacus' rule, a Python loop per example that counts a repeated
    id once."""
    if len(activations) > 2 and activations[2] is not None:  # Opacus' batch size would be read off them
        raise UserError("train.privacy: weighted bags (model.pooling = tfidf) are not supported; "
                        "set model.pooling=l2 or mean")
    ids, offsets = activations[0], activations[1]
    n = offsets.shape[0]
    lengths = torch.diff(offsets, append=offsets.new_tensor([ids.shape[0]]))
    rows = torch.repeat_interleave(torch.arange(n, device=ids.device), lengths)
    grads = backprops[rows]
    if layer.mode == "mean":
        grads = grads / lengths.clamp(min=1)[rows].unsqueeze(1).to(grads.dtype)
    sample = torch.zeros(n, layer.num_embeddings, layer.embedding_dim, device=ids.device, dtype=backprops.dtype)
    sample.index_put_((rows, ids), grads, accumulate=True)
    return {layer.weight: sample}


@register_grad_sampler(TextLinear)
def text_linear_grad_sample(layer: TextLinear, activations, backprops: torch.Tensor) -> dict:
    """A linear text model's own parameter is its bias: each example's gradient is its output's gradient."""
    return {layer.bias: backprops.reshape(backprops.shape[0], -1)} if layer.bias.requires_grad else {}


class Privacy:
    """The numbers of one private run: noise multiplier, sampling rate, delta, and Opacus' pieces around it."""

    def __init__(self, spec: PrivacySpec, rows: int, steps_per_epoch: int, epochs: int,
                 planned_steps: int | None = None) -> None:
        """`planned_steps`: the steps the run will take when not whole epochs (train.exact_steps)."""
        self.spec = spec
        self.sample_rate = 1.0 / steps_per_epoch
        self.expected_batch = rows * self.sample_rate
        self.delta = spec.delta if spec.delta is not None else 1.0 / (10 * rows)
        self.planned_steps = planned_steps or steps_per_epoch * epochs
        warnings.filterwarnings("ignore", message="Optimal order is the largest alpha")  # RDP's bound is still valid
        if spec.noise_multiplier is not None:
            self.noise = float(spec.noise_multiplier)
        else:
            self.noise = float(get_noise_multiplier(
                target_epsilon=spec.epsilon, target_delta=self.delta, sample_rate=self.sample_rate,
                steps=self.planned_steps, accountant=spec.accountant, epsilon_tolerance=0.01))

    @staticmethod
    def prepare(model: nn.Module) -> None:
        """Before the optimizer is built: recurrent layers swapped for Opacus' own, every layer checked."""
        for module in model.modules():  # e.g. a Transformer's positions, one row per example
            if hasattr(module, "prepare_for_privacy"):
                module.prepare_for_privacy()
        swap_recurrent(model, private=True)
        check_layers(model)

    def attach(self, net: nn.Module, optimizer: torch.optim.Optimizer):
        """(net computing per-example gradients, optimizer clipping and noising them)."""
        # Opacus' hooks fire on layers whose inputs need no gradient (the first layer), and its functorch path
        # for layers without a hand-written rule mentions autocast: both expected, neither a problem
        warnings.filterwarnings("ignore", message="Full backward hook is firing")
        warnings.filterwarnings("ignore", message="In CPU autocast, but the target dtype is not supported")
        private_net = GradSampleModule(net, batch_first=True, loss_reduction="mean")
        private_optimizer = MeasuredDPOptimizer(optimizer, noise_multiplier=self.noise,
                                                max_grad_norm=self.spec.max_grad_norm,
                                                expected_batch_size=max(1, round(self.expected_batch)),
                                                loss_reduction="mean")
        return private_net, private_optimizer

    def hook(self) -> "PrivacyAccount":
        return PrivacyAccount(self)


class MeasuredDPOptimizer(DPOptimizer):
    """Opacus' DPOptimizer, also counting what a user tunes max_grad_norm by: how many examples were clipped,
    and how large the noise is next to the sum of the clipped gradients."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.reset_counts()

    def reset_counts(self) -> None:
        self.examples = self.clipped = 0
        self.ratios: list[float] = []

    def prepare_empty_step(self) -> None:
        """Poisson sampling drew no row: zero per-example gradients, so the step is noise alone."""
        for p in self.params:
            p.grad_sample = p.new_zeros((0, *p.shape))

    def clip_and_accumulate(self) -> None:
        """Opacus' flat clipping (each example's whole gradient scaled to at most max_grad_norm, then summed),
        counting the clipped examples from the same norms: per-example gradients are read once for the norms
        and once for the sum, as in Opacus, not a third time for the counts."""
        samples = self.grad_samples
        if len(samples[0]) == 0:  # an empty Poisson batch
            factor = torch.zeros((0,), device=samples[0].device)
        else:
            norms = torch.stack([g.reshape(len(g), -1).norm(2, dim=-1) for g in samples], dim=1).norm(2, dim=1)
            factor = (self.max_grad_norm / (norms + 1e-6)).clamp(max=1.0)
            self.examples += len(norms)
            self.clipped += int((norms > self.max_grad_norm).sum())
        for p, sample in zip(self.params, samples):
            _check_processed_flag(p.grad_sample)
            grad = torch.einsum("i,i...", factor.to(sample.device, p.dtype), sample.to(p.dtype))
            p.summed_grad = grad if p.summed_grad is None else p.summed_grad + grad
            _mark_as_processed(p.grad_sample)
        signal = math.sqrt(sum(float(p.summed_grad.pow(2).sum()) for p in self.params))
        size = sum(p.numel() for p in self.params)
        noise = self.noise_multiplier * self.max_grad_norm * math.sqrt(size)  # the noise vector's expected norm
        self.ratios.append(noise / max(signal, 1e-12))


class PrivacyAccount(Hook):
    """Steps the accountant after every optimizer step; logs epsilon, clipped share and noise-to-signal per epoch.

    Its state (the accountant's history) is checkpointed, so a resumed run ends with the same epsilon."""

    def __init__(self, privacy: Privacy) -> None:
        self.privacy = privacy
        self.accountant = create_accountant(privacy.spec.accountant)
        self.steps = 0
        self.last: dict = {}  # the last epoch's clipped share and noise-to-signal, for the summary

    def on_step_end(self, trainer, loss) -> None:
        self.accountant.step(noise_multiplier=self.privacy.noise, sample_rate=self.privacy.sample_rate)
        self.steps += 1

    def epsilon(self) -> float:
        return float(self.accountant.get_epsilon(delta=self.privacy.delta)) if self.steps else 0.0

    def on_epoch_end(self, trainer, record: dict) -> None:
        optimizer = trainer.optimizer
        record["epsilon"] = self.epsilon()
        record["clipped_fraction"] = optimizer.clipped / max(optimizer.examples, 1)
        record["noise_to_signal"] = sum(optimizer.ratios) / max(len(optimizer.ratios), 1)
        self.last = {"clipped_fraction": record["clipped_fraction"], "noise_to_signal": record["noise_to_signal"]}
        optimizer.reset_counts()

    def on_fit_end(self, trainer) -> None:
        p = self.privacy
        trainer.results["privacy"] = {
            "epsilon": self.epsilon(), "delta": p.delta, "noise_multiplier": p.noise, "sample_rate": p.sample_rate,
            "expected_batch": p.expected_batch, "steps": self.steps, "planned_steps": p.planned_steps,
            "max_grad_norm": p.spec.max_grad_norm, "accountant": p.spec.accountant,
            "epsilon_asked": p.spec.epsilon, **self.last, "covers": COVERED,
        }
        if hasattr(trainer.net, "_close"):
            trainer.net._close()  # the per-example hooks leave the model: evaluation and saving see a plain one
        swap_recurrent(trainer.model, private=False)

    def state_dict(self) -> dict:
        return {"history": [list(h) for h in self.accountant.history], "steps": self.steps}

    def load_state_dict(self, state: dict) -> None:
        self.accountant.history = [tuple(h) for h in state["history"]]
        self.steps = state["steps"]


def check_layers(model: nn.Module) -> None:
    """One line naming a layer DP-SGD cannot train (batch normalization mixes the examples of a batch),
    by Opacus' own validators."""
    for name, module in model.named_modules():
        validate = ModuleValidator.VALIDATORS.get(type(module))
        errors = validate(module) if validate else []
        if errors:
            reason = str(errors[0]).split(". ")[0].strip()
            raise UserError(f"train.privacy: layer {name!r} ({type(module).__name__}): {reason[:200]}; "
                            "use a model without it")


def swap_recurrent(model: nn.Module, private: bool) -> None:
    """nn.LSTM/GRU <-> Opacus' DPLSTM/DPGRU in place, weights carried over (the same state-dict names)."""
    pairs = {nn.LSTM: DPLSTM, nn.GRU: DPGRU} if private else {DPLSTM: nn.LSTM, DPGRU: nn.GRU}
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            swap = pairs.get(type(child))
            if swap is None:
                continue
            fresh = swap(child.input_size, child.hidden_size, num_layers=child.num_layers, bias=child.bias,
                         batch_first=child.batch_first, dropout=child.dropout, bidirectional=child.bidirectional)
            fresh.load_state_dict(child.state_dict())
            setattr(parent, name, fresh.to(next(child.parameters()).device))
