"""Import what a run needs later in a background thread, while the main thread loads data.

scikit-learn's metrics (0.9 s) and matplotlib (0.4 s) cost seconds to import, torch's compiler
stack (torch._dynamo, 1.1 s) too when a run compiles. Loading cached data mostly waits on the disk
and copies memory outside the GIL, so the two overlap. An import that fails here is simply retried,
and reported, where it is used.

A run that compiles nothing never imports torch._dynamo: see `eager_optimizers`.
"""

from __future__ import annotations

import contextlib
import importlib
import threading

MODULES = ("sklearn.metrics", "matplotlib.figure")
COMPILER = ("torch._dynamo",)
DYNAMO_CACHE = "__dynamo_disable"  # where torch._disable_dynamo caches the wrapper it builds on first call


_running: threading.Thread | None = None


def finish() -> None:
    """Wait for the background imports: code about to import torch's compiler stack calls this first,
    because two threads importing intertwined modules can deadlock on Python's import locks."""
    if _running is not None:
        _running.join()


def start(compiling: bool = False) -> threading.Thread:
    """Import MODULES (and the compiler stack when the run compiles or is deterministic) in the background."""
    global _running
    modules = COMPILER + MODULES if compiling else MODULES

    def run() -> None:
        for name in modules:
            try:
                importlib.import_module(name)
            except Exception:  # noqa: BLE001 - retried and reported by the code that needs it
                pass

    thread = threading.Thread(target=run, name="honed-warmup", daemon=True)
    thread.start()
    _running = thread
    return thread


@contextlib.contextmanager
def eager_optimizers():
    """Keep torch._dynamo (1.1 s of CPU, 66 MB) out of a run that compiles nothing.

    torch.optim imports it in two places only to keep the compiler out of optimizer code: the
    Optimizer methods wrapped in torch._disable_dynamo (on their first call), and the `step` of
    most optimizers, wrapped in `_use_grad_for_differentiable` (on every call), whose other work
    outside a compiled frame is turning gradients off. On a small data set that import contends
    with training for the interpreter (cr: 7.3 s end to end instead of 5 s). honed compiles models,
    never optimizer code, so for the duration of such a run the Optimizer methods are marked as
    already wrapped, and each torch.optim class's step becomes the same method under torch.no_grad,
    with torch's step hooks around it as before. Everything is put back afterwards: a caller that
    compiles its own optimizer code later gets torch's behaviour."""
    import torch

    marked = []
    for method in vars(torch.optim.Optimizer).values():
        inner = getattr(method, "__wrapped__", None)
        if callable(inner) and getattr(inner, DYNAMO_CACHE, None) is None:
            setattr(inner, DYNAMO_CACHE, inner)
            marked.append(inner)
    swapped = {cls: cls.__dict__["step"] for cls in _optimizer_classes() if _grad_wrapped(cls.__dict__["step"])}
    for cls, step in swapped.items():
        cls.step = _eager_step(step)
    try:
        yield
    finally:
        for cls, step in swapped.items():
            cls.step = step
        for inner in marked:
            if getattr(inner, DYNAMO_CACHE, None) is inner:
                delattr(inner, DYNAMO_CACHE)


def _optimizer_classes() -> list[type]:
    """torch.optim's optimizers that define their own step."""
    import torch

    return [c for c in vars(torch.optim).values()
            if isinstance(c, type) and issubclass(c, torch.optim.Optimizer) and "step" in c.__dict__]


def _unhooked(step):
    """`step` without the step hooks torch adds when the first optimizer of the class is built."""
    return getattr(step, "__wrapped__", step) if getattr(step, "hooked", False) else step


def _grad_wrapped(step) -> bool:
    """Whether `step` is torch's `_use_grad_for_differentiable` wrapper, directly or inside torch's step hooks."""
    inner = _unhooked(step)
    return getattr(getattr(inner, "__code__", None), "co_name", None) == "_use_grad" and hasattr(inner, "__wrapped__")


def _eager_step(step):
    """`step` without `_use_grad_for_differentiable`: the plain method under no_grad (honed never asks for a
    differentiable optimizer), wrapped in torch's step hooks and marked as hooked so torch does not wrap it again."""
    import torch

    eager = torch.optim.Optimizer.profile_hook_step(torch.no_grad()(_unhooked(step).__wrapped__))
    eager.hooked = True
    return eager
