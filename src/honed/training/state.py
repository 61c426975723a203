"""The parts of a trainer's state that need more than `state_dict()`: sharded (FSDP) models and
optimizers, gathered whole; and the random number generators of torch, CUDA, numpy and Python."""

from __future__ import annotations

import random

import numpy as np
import torch
from torch import nn


def frozen_names(model: nn.Module) -> set[str]:
    """Names of the parameters that never change in training (model.freeze, an adapter's base weights)."""
    return {name for name, p in model.named_parameters() if not p.requires_grad}


def trained_state(model: nn.Module) -> dict:
    """The model's state without its frozen parameters: a checkpoint holds what training changes, and the
    rest is rebuilt from the pretrained weights (a LoRA run's checkpoint is megabytes, not the whole encoder)."""
    frozen = frozen_names(model)
    return {k: v for k, v in model.state_dict().items() if k not in frozen}


def load_trained_state(model: nn.Module, saved: dict) -> None:
    """Put `trained_state()` back: every key but the frozen ones must be there, and nothing else."""
    missing, unexpected = model.load_state_dict(saved, strict=False)
    missing = sorted(set(missing) - frozen_names(model))
    if missing or unexpected:
        raise RuntimeError(f"checkpoint does not fit the model (missing {missing[:3]}, unexpected {unexpected[:3]})")


def model_and_optimizer(model: nn.Module, optimizer: torch.optim.Optimizer, strategy: str) -> tuple[dict, dict]:
    """Whole (unsharded, on the CPU with FSDP) state dicts of the model and its optimizer."""
    if strategy != "fsdp":
        return trained_state(model), optimizer.state_dict()
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict

    return get_state_dict(model, optimizer, options=StateDictOptions(full_state_dict=True, cpu_offload=True))


def load_model_and_optimizer(model: nn.Module, optimizer: torch.optim.Optimizer, strategy: str, model_state: dict,
                             optimizer_state: dict) -> None:
    if strategy != "fsdp":
        load_trained_state(model, model_state)
        optimizer.load_state_dict(optimizer_state)
        return
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_state_dict

    set_state_dict(model, optimizer, model_state_dict=model_state, optim_state_dict=optimizer_state,
                   options=StateDictOptions(full_state_dict=True))


def rng_state() -> dict:
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss],
        "python": random.getstate(),
    }


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
