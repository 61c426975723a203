"""Text classification from CSV/JSONL files: a text column and a label column."""

from __future__ import annotations

import numpy as np

from honed.data.files import read_table, require_columns
from honed.data.raw import RawData, RawSplit
from honed.data.sources import SOURCES
from honed.errors import UserError


@SOURCES.register("text_files")
def load(spec) -> RawData:
    train_path = spec.train or spec.path
    if not train_path:
        raise UserError("data.train is required for data.source=text_files (a CSV/JSONL file with text and label columns)")
    train = read_split(train_path, spec, "data.train")
    test = read_split(spec.test, spec, "data.test") if spec.test else None
    return RawData(kind="text", task="classification", train=train, test=test)


def read_split(path: str, spec, key: str) -> RawSplit:
    frame = read_table(path, key)
    require_columns(frame, [spec.text_column], path, "data.text_column")
    require_columns(frame, [spec.label_column], path, "data.label_column")
    if frame[spec.label_column].isna().any():
        raise UserError(f"data.label_column: column {spec.label_column!r} of {path} has missing labels")
    texts = frame[spec.text_column].fillna("").astype(str).tolist()
    if not any(t.strip() for t in texts):
        raise UserError(f"{key}: every text in column {spec.text_column!r} of {path} is empty")
    return RawSplit(texts, frame[spec.label_column].to_numpy())
