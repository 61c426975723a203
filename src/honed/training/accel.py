"""Faster steps: mixed precision, torch.compile with a fallback, and deterministic mode."""

from __future__ import annotations

import contextlib
import logging
import os

import torch
from torch import nn

from honed import warmup

log = logging.getLogger("honed")

BACKEND = "inductor"  # torch.compile's default; tests swap in "eager" to skip the C++ build
DTYPES = {"fp32": None, "bf16-mixed": torch.bfloat16, "fp16-mixed": torch.float16}


def autocast(precision: str, device: torch.device):
    """The context a forward pass runs in: autocast to bf16/fp16, or nothing for fp32."""
    dtype = DTYPES[precision]
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def grad_scaler(precision: str, device: torch.device) -> torch.amp.GradScaler:
    """fp16 needs its loss scaled so small gradients do not flush to zero; bf16 and fp32 do not (a no-op scaler)."""
    return torch.amp.GradScaler(device.type, enabled=precision == "fp16-mixed")


def warn_about_precision(precision: str, device: torch.device) -> None:
    """Mixed precision pays on GPUs and on CPUs with bf16 instructions (AVX-512 BF16, AMX); elsewhere it costs."""
    if precision == "fp32" or device.type != "cpu":
        return
    capability = torch.backends.cpu.get_cpu_capability()
    if precision == "bf16-mixed" and "AVX512" not in capability and "AMX" not in capability:
        log.warning(f"train.precision = bf16-mixed: this CPU ({capability}) has no native bf16, "
                    "so steps will be slower than fp32")
    if precision == "fp16-mixed":
        log.warning("train.precision = fp16-mixed on a CPU is emulated and usually slower than fp32")


class Compiled(nn.Module):
    """torch.compile(module), falling back to the eager module (with a warning) if compiling fails.

    Compilation happens lazily at the first call, so that is where a failure shows;
    after the first successful call the compiled graph is used as is.
    """

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        warmup.finish()
        self.eager = module
        self.compiled = torch.compile(module, backend=BACKEND)
        self.checked = False

    def forward(self, *args, **kwargs):
        if self.checked:
            return self.compiled(*args, **kwargs)
        try:
            out = self.compiled(*args, **kwargs)
        except Exception as e:  # noqa: BLE001 - any compiler failure means: train without it
            log.warning(f"train.compile: compilation failed ({type(e).__name__}: {str(e).splitlines()[0][:200]}); "
                        "training without it")
            self.compiled = self.eager
            out = self.eager(*args, **kwargs)
        self.checked = True
        return out


@contextlib.contextmanager
def deterministic(on: bool):
    """PyTorch's deterministic algorithms (an error, not silence, where an op has none), cuDNN included.

    The global switches are put back afterwards, so a library caller's settings survive a run.
    """
    if not on:
        yield
        return
    warmup.finish()  # use_deterministic_algorithms imports torch._inductor
    before = (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.deterministic,
              torch.backends.cudnn.benchmark)
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # cuBLAS needs it to be deterministic
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before[0])
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = before[1], before[2]
