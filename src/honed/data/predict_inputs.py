"""Reading new inputs for prediction: feature rows, or texts (a file with one per line, or a text column)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pathlib import Path

import numpy as np
import pandas as pd

from honed.data.files import READERS, read_table, require_columns, table_kind
from honed.errors import UserError

if TYPE_CHECKING:
    from honed.recipe.schema import DataSpec


def read_inputs(inputs, pre, spec: DataSpec) -> np.ndarray | list[str] | pd.DataFrame:
    """Raw inputs in the form the fitted preprocessor takes."""
    if pre.kind == "text":
        return read_texts(inputs, spec.text_column)
    if isinstance(inputs, np.ndarray):  # rows of numbers in the training columns' order (the API, explain --global)
        columns = pre.column_encoder.used if getattr(pre, "column_encoder", None) is not None else pre.columns
        if inputs.ndim != 2 or inputs.shape[1] != len(columns):
            raise UserError(f"the input rows have shape {inputs.shape}; this run takes rows of {len(columns)} values "
                            f"({', '.join(map(str, columns[:5]))}{', ...' if len(columns) > 5 else ''})")
        inputs = pd.DataFrame(inputs, columns=columns)
    frame = inputs if isinstance(inputs, pd.DataFrame) else read_table(inputs, "--input")
    where = str(inputs) if not isinstance(inputs, pd.DataFrame) else "the input"
    if getattr(pre, "column_encoder", None) is not None:  # a table's columns: missing cells and unseen values are encoded
        require_columns(frame, pre.column_encoder.used, where, "--input")
        return frame[pre.column_encoder.used].reset_index(drop=True)
    require_columns(frame, pre.columns, where, "--input")
    for c in pre.columns:
        if not pd.api.types.is_numeric_dtype(frame[c]):
            raise UserError(f"--input: column {c!r} is not numeric")
    x = frame[pre.columns].to_numpy(dtype=np.float64)
    if np.isnan(x).any():
        raise UserError("--input: some feature values are missing")
    from honed.data.sources.tabular import check_finite

    check_finite(x, pre.columns, "the input" if isinstance(inputs, pd.DataFrame) else str(inputs), "--input")
    return x.astype(np.float32)


def read_table_or_none(inputs, pre):
    """The input as a DataFrame when it is one or a table file (CSV, JSONL, Parquet); else None (texts)."""
    if isinstance(inputs, pd.DataFrame):
        return inputs
    if isinstance(inputs, (str, Path)) and table_kind(Path(inputs)) in READERS:
        return read_table(inputs, "--input")
    return None


def read_texts(inputs, text_column: str) -> list[str]:
    if isinstance(inputs, (list, tuple)):
        return [str(t) for t in inputs]
    if isinstance(inputs, pd.DataFrame):
        require_columns(inputs, [text_column], "the input", "--input")
        return inputs[text_column].fillna("").astype(str).tolist()
    path = Path(inputs)
    if table_kind(path) in READERS:
        frame = read_table(path, "--input")
        require_columns(frame, [text_column], str(path), "--input")
        return frame[text_column].fillna("").astype(str).tolist()
    if not path.is_file():
        raise UserError(f"--input {path}: file not found")
    # one text per line, split on newlines only (str.splitlines also splits on form feeds and U+2028),
    # blank lines kept: prediction i is for line i
    text = path.read_text(encoding="utf-8", errors="replace").replace("\r\n", "\n")
    texts = text.removesuffix("\n").split("\n") if text else []
    if not any(t.strip() for t in texts):
        raise UserError(f"--input {path}: no texts in it")
    return texts
