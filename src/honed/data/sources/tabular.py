"""Tabular files: numeric feature columns and one target column."""

from __future__ import annotations

import numpy as np

from honed.data.files import read_table, require_columns
from honed.data.raw import RawData, RawSplit
from honed.data.sources import SOURCES
from honed.errors import UserError


@SOURCES.register("tabular")
def load(spec) -> RawData:
    key, path = ("data.path", spec.path) if spec.path else ("data.train", spec.train)
    if not path:
        raise UserError("data.path (or data.train) is required for data.source=tabular")
    if not spec.target:
        raise UserError(f"data.target is required: name the target column of {path}")
    frame = read_table(path, key)
    require_columns(frame, [spec.target], path, "data.target")
    columns = spec.columns or [c for c in frame.columns if c != spec.target]
    require_columns(frame, columns, path, "data.columns")
    task = spec.task if spec.task != "auto" else infer_task(frame[spec.target])
    train = to_split(frame, columns, spec.target, task, path)
    test = None
    if spec.test:
        test_frame = read_table(spec.test, "data.test")
        require_columns(test_frame, columns + [spec.target], spec.test, "data.test")
        test = to_split(test_frame, columns, spec.target, task, spec.test)
    return RawData(kind="table", task=task, train=train, test=test, feature_names=[str(c) for c in columns])


def infer_task(target) -> str:
    """Text, bool and small-integer targets are classes; other numbers are regression."""
    import pandas as pd

    if not pd.api.types.is_numeric_dtype(target) or pd.api.types.is_bool_dtype(target):
        return "classification"
    values = target.dropna()
    if pd.api.types.is_integer_dtype(values) and values.nunique() <= 20:
        return "classification"
    return "regression"


def to_split(frame, columns: list[str], target: str, task: str, path: str) -> RawSplit:
    return RawSplit(features_of(frame, columns, path), target_of(frame[target], task, target, path))


def features_of(frame, columns: list[str], path: str) -> np.ndarray:
    import pandas as pd

    for c in columns:
        if not pd.api.types.is_numeric_dtype(frame[c]) and not pd.api.types.is_bool_dtype(frame[c]):
            raise UserError(f"data.columns: column {c!r} of {path} is not numeric (dtype {frame[c].dtype}); drop it with data.columns")
    x = frame[columns].to_numpy(dtype=np.float32)
    if np.isnan(x).any():
        bad = next(c for c in columns if frame[c].isna().any())
        raise UserError(f"data.columns: column {bad!r} of {path} has missing values")
    return x


def target_of(series, task: str, name: str, path: str) -> np.ndarray:
    import pandas as pd

    if series.isna().any():
        raise UserError(f"data.target: column {name!r} of {path} has missing values")
    if task == "regression":
        if not pd.api.types.is_numeric_dtype(series):
            raise UserError(f"data.target: column {name!r} of {path} is not numeric; set data.task=classification")
        return series.to_numpy(dtype=np.float32)
    return series.to_numpy()
