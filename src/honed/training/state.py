"""The parts of a trainer's state that need more than `state_dict()`: sharded (FSDP) models and
optimizers, gathered whole; and the random number generators of torch, CUDA, numpy and Python."""

from __future__ import annotations

import random

import numpy as np
import torch
from torch import nn


def model_and_optimizer(model: nn.Module, optimizer: torch.optim.Optimizer, strategy: str) -> tuple[dict, dict]:
    """Whole (unsharded, on the CPU with FSDP) state dicts of the model and its optimizer."""
    if strategy != "fsdp":
        return model.state_dict(), optimizer.state_dict()
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict

    return get_state_dict(model, optimizer, options=StateDictOptions(full_state_dict=True, cpu_offload=True))


def load_model_and_optimizer(model: nn.Module, optimizer: torch.optim.Optimizer, strategy: str, model_state: dict,
                             optimizer_state: dict) -> None:
    if strategy != "fsdp":
        model.load_state_dict(model_state)
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
