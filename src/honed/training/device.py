"""Choosing the device and making runs repeatable."""

from __future__ import annotations

import random

import numpy as np
import torch

from honed.errors import UserError


def pick_device(name: str) -> torch.device:
    """'auto' picks CUDA, then Apple's MPS, then the CPU; a named device must exist."""
    cuda = torch.cuda.is_available()
    mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if name == "auto":
        return torch.device("cuda" if cuda else "mps" if mps else "cpu")
    if (name == "cuda" and not cuda) or (name == "mps" and not mps):
        raise UserError(f"train.device = {name!r}: no such device on this machine; allowed: auto, cpu"
                        + (", cuda" if cuda else "") + (", mps" if mps else ""))
    return torch.device(name)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
