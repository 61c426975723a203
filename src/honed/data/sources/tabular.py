"""Tabular files: feature columns of any type (numbers, booleans, text categories, dates, missing cells) and
one target column. The columns reach the preprocessor as a DataFrame; data/columns.py encodes them."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

import logging

from honed.data.files import read_table, require_columns
from honed.data.raw import RawData, RawSplit
from honed.data.sources import SOURCES
from honed.errors import UserError, shown

if TYPE_CHECKING:
    from honed.recipe.schema import TabularData

log = logging.getLogger("honed")


@SOURCES.register("tabular")
def load(spec: TabularData) -> RawData:
    key, path = ("data.path", spec.path) if spec.path else ("data.train", spec.train)
    if not path:
        raise UserError("data.path (or data.train) is required for data.source=tabular")
    if not spec.target:
        raise UserError(f"data.target is required: name the target column of {path}")
    frame = read_table(path, key)
    require_columns(frame, [spec.target], path, "data.target")
    if spec.group_column:
        require_columns(frame, [spec.group_column], path, "data.group_column")
    columns = spec.columns or [c for c in frame.columns if c not in (spec.target, spec.group_column)]
    if not columns:
        raise UserError(f"data.columns: {path} has only the target column {spec.target!r}; a model needs features")
    require_columns(frame, columns, path, "data.columns")
    task = spec.task if spec.task != "auto" else infer_task(frame[spec.target])
    train = to_split(frame, columns, spec.target, task, path)
    if spec.group_column:
        train.groups = frame[spec.group_column].astype(str).to_numpy(dtype=object)
    test = None
    if spec.test:
        test_frame = read_table(spec.test, "data.test")
        require_columns(test_frame, columns + [spec.target], spec.test, "data.test")
        test = to_split(test_frame, columns, spec.target, task, spec.test)
    # said once the target has been read without error (an error stays the only line)
    log.info(f"data: target {spec.target!r}: {describe_target(frame[spec.target], task)} "
             f"({'data.task' if spec.task != 'auto' else 'inferred; set data.task to change it'})")
    return RawData(kind="table", task=task, train=train, test=test, feature_names=[str(c) for c in columns])


def describe_target(target, task: str) -> str:
    if task == "classification":
        return f"classification, {target.nunique(dropna=True):,} classes"
    return "regression"


def infer_task(target) -> str:
    """Text, bool and small-integer targets are classes; other numbers are regression.

    A column that is numeric but for a few cells (a typo, "n/a") is not taken for classes: that is
    an error naming the cells, so one bad cell cannot turn a regression into 300 classes.
    """
    import pandas as pd

    if pd.api.types.is_bool_dtype(target):
        return "classification"
    if not pd.api.types.is_numeric_dtype(target):
        numbers = pd.to_numeric(target, errors="coerce")
        bad = numbers.isna() & target.notna()
        if bad.mean() <= 0.05 and numbers.nunique() > 20:
            rows = [int(i) + 2 for i in bad.to_numpy().nonzero()[0][:3]]  # file line numbers (header = line 1)
            raise UserError(f"data.target: column {target.name!r} is numeric but for {int(bad.sum())} cell(s) "
                            f"(line {', '.join(map(str, rows))}: {shown(target[bad].iloc[0])}); fix them, or set "
                            "data.task=classification")
        return "classification"
    values = target.dropna()
    if pd.api.types.is_integer_dtype(values) and values.nunique() <= 20:
        return "classification"
    return "regression"


def to_split(frame, columns: list[str], target: str, task: str, path: str) -> RawSplit:
    return RawSplit(features_of(frame, columns, path), target_of(frame[target], task, target, path))


def features_of(frame, columns: list[str], path: str):
    """The feature columns as they are (a DataFrame); infinite numbers are an error naming the cell."""
    import pandas as pd

    features = frame[columns].reset_index(drop=True)
    numeric = [c for c in columns if pd.api.types.is_numeric_dtype(features[c]) and not pd.api.types.is_bool_dtype(features[c])]
    if numeric:
        check_finite(np.nan_to_num(features[numeric].to_numpy(dtype=np.float64), nan=0.0), numeric, path, "data.columns")
    return features


def check_finite(x: np.ndarray, columns: list[str], path: str, key: str) -> None:
    """Infinite values (or values beyond float32's range) are an error naming the column and the line."""
    too_big = ~np.isfinite(x) | (np.abs(np.nan_to_num(x)) > np.finfo(np.float32).max)
    if too_big.any():
        row, col = map(int, np.argwhere(too_big)[0])
        raise UserError(f"{key}: column {columns[col]!r} of {path} holds {x[row, col]!r} at line {row + 2} "
                        "(header = line 1): values must be finite numbers within float32's range")


def target_of(series, task: str, name: str, path: str) -> np.ndarray:
    import pandas as pd

    if series.isna().any():
        line = int(np.flatnonzero(series.isna().to_numpy())[0]) + 2
        raise UserError(f"data.target: column {name!r} of {path} has {int(series.isna().sum()):,} missing cell(s) "
                        f"(first at line {line}); a row without a target cannot train or score: remove those rows")
    if task == "regression":
        if not pd.api.types.is_numeric_dtype(series):
            raise UserError(f"data.target: column {name!r} of {path} is not numeric; set data.task=classification")
        y = series.to_numpy(dtype=np.float64)
        check_finite(y[:, None], [name], path, "data.target")
        return y.astype(np.float32)
    return series.to_numpy()
