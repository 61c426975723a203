"""Import what a run needs later in a background thread, while the main thread loads data.

torchmetrics (about 1.5 s on a laptop CPU), torch._dynamo (about 1 s; torch.optim imports
it when the first optimizer is built) and matplotlib each cost a second or more to import.
Loading cached data mostly waits on the disk and copies memory outside the GIL, so the
two overlap. An import that fails here is simply retried, and reported, where it is used.
"""

from __future__ import annotations

import importlib
import threading

MODULES = ("torch._dynamo", "torchmetrics.functional.classification", "torchmetrics.functional.regression",
           "matplotlib.figure")


def start(modules: tuple[str, ...] = MODULES) -> threading.Thread:
    def run() -> None:
        for name in modules:
            try:
                importlib.import_module(name)
            except Exception:  # noqa: BLE001 - retried and reported by the code that needs it
                pass

    thread = threading.Thread(target=run, name="honed-warmup", daemon=True)
    thread.start()
    return thread
