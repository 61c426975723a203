"""Text classification from CSV/JSONL files: a text column and a label column."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from honed.data.files import numbers_if_all, read_columns
from honed.data.raw import RawData, RawSplit
from honed.data.sources import SOURCES
from honed.errors import UserError

if TYPE_CHECKING:
    from honed.recipe.schema import TextFilesData


@SOURCES.register("text_files")
def load(spec: TextFilesData) -> RawData:
    train_path = spec.train or spec.path
    if not train_path:
        raise UserError("data.train is required for data.source=text_files (a CSV/JSONL file with text and label columns)")
    train = read_split(train_path, spec, "data.train")
    test = read_split(spec.test, spec, "data.test") if spec.test else None
    return RawData(kind="text", task="classification", train=train, test=test)


def read_split(path: str, spec: TextFilesData, key: str) -> RawSplit:
    wanted = {spec.text_column: "data.text_column", spec.label_column: "data.label_column"}
    if spec.group_column and key == "data.train":
        wanted[spec.group_column] = "data.group_column"
    columns = read_columns(path, key, wanted)
    labels = columns[spec.label_column]
    if any(v is None or v == "" for v in labels):
        raise UserError(f"data.label_column: column {spec.label_column!r} of {path} has missing labels")
    texts = ["" if t is None else str(t) for t in columns[spec.text_column]]
    if not any(t.strip() for t in texts):
        raise UserError(f"{key}: every text in column {spec.text_column!r} of {path} is empty")
    labels = numbers_if_all(labels) if all(isinstance(v, str) for v in labels) else labels
    y = np.empty(len(labels), dtype=object)  # object, not a fixed-width string array: a giant label costs once
    y[:] = labels
    groups = None
    if spec.group_column and key == "data.train":
        groups = np.empty(len(labels), dtype=object)
        groups[:] = ["" if g is None else str(g) for g in columns[spec.group_column]]
    return RawSplit(texts, y if not all(type(v) is int for v in labels) else y.astype(np.int64), groups)
