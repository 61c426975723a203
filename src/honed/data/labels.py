"""Class labels (strings or ints) <-> contiguous ids."""

from __future__ import annotations

import numpy as np

from honed.errors import UserError, listed, shown


MAX_LABEL_CHARS = 1_000  # a class's name; a longer cell in the label column is a text, not a class


def check_label_sizes(classes, column: str = "the label column") -> None:
    """Refuse a class name longer than MAX_LABEL_CHARS, in one line naming its start."""
    longest = max((str(v) for v in classes), key=len, default="")
    if len(longest) > MAX_LABEL_CHARS:
        raise UserError(f"{column} holds a label of {len(longest):,} chars, starting {shown(longest[:20])}; a class "
                        f"label is at most {MAX_LABEL_CHARS:,} chars: is it the column to predict?")


class LabelEncoder:
    """Sorted distinct training labels; unseen labels at transform time are an error."""

    def __init__(self, classes: list | None = None) -> None:
        self.classes = classes

    def fit(self, y: np.ndarray, column: str = "label") -> "LabelEncoder":
        classes = sorted(set(_plain(v) for v in y.tolist()), key=lambda v: (str(type(v)), v))
        check_label_sizes(classes, repr(column))
        if len(classes) < 2:
            one = shown(classes[0]) if classes else "none"
            raise UserError(f"label column {column!r} has only one class ({one}); a classifier needs two or more")
        self.classes = classes
        return self

    def transform(self, y: np.ndarray) -> np.ndarray:
        index = {c: i for i, c in enumerate(self.classes)}
        index.update({str(c): i for i, c in enumerate(self.classes)})
        try:
            return np.array([index[_plain(v)] for v in y.tolist()], dtype=np.int64)
        except KeyError as e:
            raise UserError(f"label {shown(e.args[0])} was not seen in training; known labels: "
                            f"{listed(self.names)}") from None

    @property
    def names(self) -> list[str]:
        return [str(c) for c in self.classes]


def _plain(v):
    # numpy/pandas scalars -> Python, floats that are whole numbers -> int (CSV reads "1" as 1.0 sometimes)
    if isinstance(v, float) and v.is_integer():
        return int(v)
    return v
