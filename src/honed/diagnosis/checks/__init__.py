"""The doctor's checks, registered by name. A check is one function `(RunEvidence) -> list[Finding]`;
`needs` says what it reads: "history" (the run's records alone: free, also run at the end of
`honed train`), "data" (the data re-read through the recipe) or "probe" (the trained model run on a
few batches, or a short range test). Every module in this folder is imported, so a new check is a
new file here with a decorated function.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass
from typing import Callable

from honed.registry import Registry


@dataclass(frozen=True)
class Check:
    name: str
    needs: str  # history | data | probe
    run: Callable


CHECKS: Registry[Check] = Registry("doctor check")


def check(name: str, needs: str = "history"):
    def add(fn: Callable) -> Callable:
        CHECKS.register(name)(Check(name, needs, fn))
        return fn

    return add


def load_all() -> list[Check]:
    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")
    return [CHECKS.get(name) for name in CHECKS.names()]
