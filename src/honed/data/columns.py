"""A table's columns as numbers: each column's type inferred on the training rows (or set in the recipe),
its encoding fitted there, and the same encoding applied to every split and to every row predicted later.

    numeric   scaled (standard: mean/std; robust: median and quantile spread with a smooth clip, as RealMLP;
              quantile: a normal quantile transform, scikit-learn's), missing cells at the centre plus a
              0/1 "was missing" column when the training rows had any
    category  one 0/1 column per value seen at least `min_count` times (the `max_categories` most frequent);
              rarer values share an "other" column, missing cells a "missing" one; a value never seen in
              training falls into "other" (or into no column when training had no rare values)
    date      year, month, day, weekday and days since 1970 as numeric columns, and the hour (minutes as its
              fraction) where the training rows have times of day; times with a zone or offset are read in UTC
    drop      left out (an ID column — text or integers unique on every row — and a column with one value on
              every training row are dropped and said so)

The numeric parts come first in the output (the model's numeric embeddings read them), then the 0/1 parts.
State is plain JSON (preprocess.json): nothing here is pickled.
"""

from __future__ import annotations

import logging
from dataclasses import asdict

import numpy as np

from honed.data.table_encoding import (Column, category_strings, cells_missing, dates_of, encode, has_clock,
                                       numbers_of)
from honed.errors import UserError, shown

log = logging.getLogger("honed")

KINDS = ("numeric", "category", "date", "drop")
QUANTILES = 1000  # scikit-learn's default: the quantile transform's resolution
MIN_ID_ROWS = 20  # fewer rows than this prove nothing about an ID


class ColumnEncoder:
    """Fit on a DataFrame of the training rows; transform any DataFrame with those columns to float32."""

    def __init__(self, scaling: str = "standard", types: dict[str, str] | None = None, max_categories: int = 100,
                 min_count: int = 1) -> None:
        self.scaling = scaling
        self.types = dict(types or {})
        self.max_categories = max_categories
        self.min_count = min_count
        self.columns: list[Column] = []
        self.dropped: list[str] = []
        self.ids: list[str] = []  # dropped as IDs or by data.column_types: predictions copy them to join rows back

    # fitting ---------------------------------------------------------------------------------------------
    def fit(self, frame) -> "ColumnEncoder":
        unknown = sorted(set(self.types) - set(map(str, frame.columns)))
        if unknown:
            raise UserError(f"data.column_types: {shown(unknown[0])} is not a column of the training data; "
                            f"columns: {', '.join(map(str, frame.columns))[:300]}")
        self.columns, self.dropped, self.ids = [], [], []
        for name in frame.columns:
            chosen = self.types.get(str(name))
            kind = chosen or infer_kind(frame[name])
            if kind == "drop":
                self.dropped.append(str(name))
                if chosen or drop_reason(frame[name]).startswith("an ID"):  # not constants, not empty columns
                    self.ids.append(str(name))
                log.info(f"data: {name}: dropped ({'data.column_types' if chosen else drop_reason(frame[name])})")
                continue
            column = self._fit_column(str(name), kind, frame[name])
            self.columns.append(column)
            log.info(f"data: {describe(column, frame[name])}")
        if not self.columns:
            raise UserError("data.columns: no usable feature column is left (every column was dropped)")
        return self

    def _fit_column(self, name: str, kind: str, series) -> Column:
        missing = bool(cells_missing(series).any())
        if kind == "category":
            return self._fit_category(name, series, missing)
        column = Column(name, kind, missing, clock=kind == "date" and has_clock(dates_of(series)))
        values = numbers_of(series, kind, column.clock)
        if np.isnan(values).all():
            raise UserError(f"data.columns: column {name!r} has no {kind} value on any training row; "
                            f"drop it with data.column_types.{name}=drop")
        for part in values.T:
            seen = part[~np.isnan(part)]
            if self.scaling == "quantile":
                column.quantiles.append(np.quantile(seen, np.linspace(0, 1, min(QUANTILES, len(seen)))).tolist())
                column.center.append(0.0), column.scale.append(1.0)
            elif self.scaling == "robust":
                center = float(np.median(seen))
                spread = float(np.quantile(seen, 0.75) - np.quantile(seen, 0.25))
                if spread == 0:  # RealMLP's fallback: the spread of the inner 90%, else the range
                    spread = float(np.quantile(seen, 0.95) - np.quantile(seen, 0.05)) or float(np.ptp(seen))
                column.center.append(center), column.scale.append(spread / 1.349 if spread else 1.0)
            elif self.scaling == "none":  # data.standardize = false: numbers as they are
                column.center.append(0.0), column.scale.append(1.0)
            else:
                std = float(seen.std())
                column.center.append(float(seen.mean())), column.scale.append(std if std > 0 else 1.0)
        return column

    def _fit_category(self, name: str, series, missing: bool) -> Column:
        counts = category_strings(series).value_counts(dropna=True)
        kept = counts[counts >= self.min_count].index[: self.max_categories]
        return Column(name, "category", missing, values=[str(v) for v in kept], other=len(kept) < len(counts))

    # transforming ---------------------------------------------------------------------------------------
    def transform(self, frame) -> np.ndarray:
        return encode(self.columns, self.scaling, frame)

    # what the output columns are -------------------------------------------------------------------------
    @property
    def used(self) -> list[str]:
        """The input columns the encoding reads (dropped ones are not needed to predict)."""
        return [c.name for c in self.columns]

    @property
    def numeric_dim(self) -> int:
        """How many leading output columns are scaled numbers (the rest are 0/1)."""
        return sum(len(c.parts) for c in self.columns if c.kind != "category")

    @property
    def output_names(self) -> list[str]:
        numeric, flags = [], []
        for c in self.columns:
            if c.kind == "category":
                flags += [f"{c.name}={v}" for v in c.values] + ([f"{c.name}=other"] if c.other else []) \
                    + ([f"{c.name}=missing"] if c.missing else [])
                continue
            numeric += [f"{c.name}.{p}" for p in c.parts] if c.kind == "date" else [c.name]
            flags += [f"{c.name}=missing"] if c.missing else []
        return numeric + flags

    @property
    def output_columns(self) -> list[str]:
        """The input column each output column comes from (attributions fold back onto it), in output order."""
        numeric, flags = [], []
        for c in self.columns:
            if c.kind == "category":
                flags += [c.name] * (len(c.values) + c.other + c.missing)
                continue
            numeric += [c.name] * len(c.parts)
            flags += [c.name] if c.missing else []
        return numeric + flags

    def state(self) -> dict:
        return {"scaling": self.scaling, "types": self.types, "max_categories": self.max_categories,
                "min_count": self.min_count, "dropped": self.dropped, "ids": self.ids, "columns": [asdict(c) for c in self.columns]}

    @classmethod
    def from_state(cls, state: dict) -> "ColumnEncoder":
        enc = cls(state["scaling"], state["types"], int(state["max_categories"]), int(state["min_count"]))
        enc.dropped = list(state["dropped"])
        enc.ids = list(state.get("ids", state["dropped"]))  # (runs saved before constants were dropped)
        enc.columns = [Column(**c) for c in state["columns"]]
        return enc

    def profile(self, frame) -> list[dict]:
        """Per input column: its type, missing share and number of distinct values (the report's table)."""
        rows = []
        for c in self.columns:
            s = frame[c.name]
            rows.append({"name": c.name, "kind": c.kind, "missing_share": float(cells_missing(s).mean()),
                         "distinct": int(s.nunique(dropna=True)),
                         "encoded_as": len(c.values) + c.other + c.missing if c.kind == "category" else None,
                         "integer": c.kind == "numeric" and whole_numbers(s)})
        return rows + [{"name": d, "kind": "drop", "missing_share": None, "distinct": None, "encoded_as": None}
                       for d in self.dropped]


# inference ------------------------------------------------------------------------------------------------
def infer_kind(series) -> str:
    """numeric for numbers and booleans, date for text that reads as dates, drop for an ID or a constant, else
    category."""
    import pandas as pd

    seen = series.dropna()
    if is_constant(series):
        return "drop"
    if pd.api.types.is_bool_dtype(series) or pd.api.types.is_numeric_dtype(series):
        if pd.api.types.is_integer_dtype(seen) and looks_like_id(seen):
            return "drop"
        return "numeric"
    if pd.api.types.is_datetime64_any_dtype(series):
        return "date"
    text = category_strings(series).dropna()
    if len(text) == 0:
        return "drop"
    numbers = pd.to_numeric(text, errors="coerce")
    if numbers.notna().mean() >= 0.99 and text.nunique() > 20:  # numbers with a stray "n/a": numeric
        return "numeric"
    if looks_like_dates(text):
        return "date"
    if len(text) >= MIN_ID_ROWS and text.nunique() == len(text):
        return "drop"
    return "category"


def drop_reason(series) -> str:
    if cells_missing(series).all():
        return "every cell is missing"
    if is_constant(series):
        return f"the same value ({shown(str(category_strings(series).iloc[0]))}) on every training row"
    return "an ID: a different value on every row"


def is_constant(series) -> bool:
    """One value on every training row, none missing: nothing to learn from, and a value seen only later would
    reach weights that training never moved (the quantile transform of an unseen pixel in scikit-learn's digits)."""
    return len(series) > 1 and not cells_missing(series).any() and category_strings(series).nunique() == 1


def looks_like_id(values) -> bool:
    """Integers, distinct on every row, that are one run of consecutive numbers (row numbers, keys)."""
    if len(values) < MIN_ID_ROWS or values.nunique() != len(values):
        return False
    ordered = np.sort(values.to_numpy())
    return bool((np.diff(ordered) == 1).all())


def looks_like_dates(text) -> bool:
    sample = text.iloc[:200]
    if not sample.str.contains(r"\d{1,4}[-/.:]\d{1,2}", regex=True).mean() >= 0.95:
        return False
    return bool(dates_of(sample).notna().mean() >= 0.95)


def whole_numbers(series) -> bool:
    """Whether every number of a column is a whole number (counts, codes, keys), booleans aside."""
    import pandas as pd

    if pd.api.types.is_bool_dtype(series):
        return False
    values = pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64)
    values = values[np.isfinite(values)]
    return bool(len(values)) and bool(np.all(values == np.round(values)))


def describe(column: Column, series) -> str:
    missing = int(cells_missing(series).sum())
    tail = f", {missing:,} missing" if missing else ""
    if column.kind == "category":
        rare = " + other" if column.other else ""
        return f"{column.name}: category, {series.nunique(dropna=True):,} values ({len(column.values)} kept{rare}){tail}"
    kind = f"date ({', '.join(column.parts)})" if column.kind == "date" else column.kind
    return f"{column.name}: {kind}{tail}"
