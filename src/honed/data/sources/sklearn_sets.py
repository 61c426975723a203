"""scikit-learn's bundled data sets (no download needed)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from honed.data.raw import RawData, RawSplit
from honed.data.sources import SOURCES
from honed.errors import UserError

if TYPE_CHECKING:
    from honed.recipe.schema import SklearnData

IMAGE_SHAPES = {"digits": (1, 8, 8)}


@SOURCES.register("sklearn")
def load(spec: SklearnData) -> RawData:
    from sklearn import datasets

    if spec.name is None:
        raise UserError("data.name is required for data.source=sklearn; allowed: digits, diabetes, iris, wine, breast_cancer")
    bunch = getattr(datasets, f"load_{spec.name}")()
    task = "regression" if spec.name == "diabetes" else "classification"
    y = bunch.target.astype(np.float32) if task == "regression" else np.asarray(bunch.target_names)[bunch.target]
    names = [str(n) for n in getattr(bunch, "feature_names", [])] or [f"x{i}" for i in range(bunch.data.shape[1])]
    return RawData(
        kind="table",
        task=task,
        train=RawSplit(bunch.data.astype(np.float32), np.asarray(y)),
        feature_names=names,
        image_shape=IMAGE_SHAPES.get(spec.name),
    )
