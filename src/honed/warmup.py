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
    """torch.optim.Optimizer's methods are wrapped in torch._disable_dynamo, which imports torch._dynamo
    on their first call only to keep the compiler out of them: 1.1 s of CPU that, on a small data set,
    contends with training for the interpreter (cr: 7.3 s end to end instead of 5 s). honed compiles
    models, never optimizer code, and outside a compiled frame the wrapper runs the method unchanged, so
    for the duration of a run that compiles nothing the methods are marked as already wrapped. The marks
    are removed afterwards: a caller that compiles its own optimizer code later gets torch's behaviour."""
    import torch

    marked = []
    for method in vars(torch.optim.Optimizer).values():
        inner = getattr(method, "__wrapped__", None)
        if callable(inner) and getattr(inner, DYNAMO_CACHE, None) is None:
            setattr(inner, DYNAMO_CACHE, inner)
            marked.append(inner)
    try:
        yield
    finally:
        for inner in marked:
            if getattr(inner, DYNAMO_CACHE, None) is inner:
                delattr(inner, DYNAMO_CACHE)
