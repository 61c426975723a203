"""Generated regression data: y = X w + b + noise, with known w and b."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from honed.data.raw import RawData, RawSplit
from honed.data.sources import SOURCES

if TYPE_CHECKING:
    from honed.recipe.schema import SyntheticData


def make_regression(n: int, features: int, noise: float, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """(X, y, true_w, true_b): X ~ N(0, 1) scaled per feature, y = X w + b + N(0, noise^2)."""
    rng = np.random.default_rng(seed)
    scales = rng.uniform(0.5, 2.0, size=features)
    x = rng.normal(size=(n, features)) * scales
    w = rng.normal(size=features) * 2.0
    b = float(rng.normal())
    y = x @ w + b + rng.normal(scale=noise, size=n)
    return x.astype(np.float32), y.astype(np.float32), w, b


@SOURCES.register("synthetic_regression")
def load(spec: SyntheticData) -> RawData:
    x, y, _, _ = make_regression(spec.n, spec.features, spec.noise, spec.seed)
    names = [f"x{i}" for i in range(spec.features)]
    return RawData(kind="table", task="regression", train=RawSplit(x, y), feature_names=names)
