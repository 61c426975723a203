"""Import what a run needs later in a background thread, while the main thread loads data.

torch._dynamo (about 1.5 s; torch.optim imports it when the first optimizer is built),
scikit-learn's metrics (0.9 s) and matplotlib (0.4 s) cost seconds to import.
Loading cached data mostly waits on the disk and copies memory outside the GIL, so the
two overlap. An import that fails here is simply retried, and reported, where it is used.
"""

from __future__ import annotations

import importlib
import threading

MODULES = ("torch._dynamo", "sklearn.metrics", "matplotlib.figure")


_running: threading.Thread | None = None


def finish() -> None:
    """Wait for the background imports: code about to import torch's compiler stack calls this first,
    because two threads importing intertwined modules can deadlock on Python's import locks."""
    if _running is not None:
        _running.join()


def start(modules: tuple[str, ...] = MODULES) -> threading.Thread:
    global _running

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
