"""A fitted table encoding applied to rows: numbers scaled, categories one-hot, dates split into parts, missing
cells marked. numpy and pandas only (scipy's inverse normal when present) and nothing of honed: `honed export`
copies this file into ONNX bundles as bundle_tables.py, so a bundle encodes rows exactly as training did.
data/columns.py fits the encoding (ColumnEncoder) and calls `encode`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

DATE_PARTS = ("year", "month", "day", "weekday", "days")
CLOCK_PART = "hour"  # dates whose training rows carry a time of day: the hour (minutes and seconds its fraction)


@dataclass
class Column:
    """One input column's fitted encoding."""

    name: str
    kind: str  # numeric | category | date
    missing: bool = False  # the training rows had missing cells: a 0/1 indicator joins the output
    center: list[float] = field(default_factory=list)  # numeric/date: per part (standard, robust)
    scale: list[float] = field(default_factory=list)
    values: list[str] = field(default_factory=list)  # category: the values with a column of their own
    other: bool = False  # category: rarer values seen in training share a column
    quantiles: list[list[float]] = field(default_factory=list)  # quantile scaling: per part
    clock: bool = False  # date: the training rows had times of day, so the hour is a part too

    @property
    def parts(self) -> tuple[str, ...]:
        """The numbers this column becomes: one, or a date's parts."""
        if self.kind != "date":
            return ("",)
        return DATE_PARTS + (CLOCK_PART,) * self.clock


def encode(columns: list[Column], scaling: str, frame) -> np.ndarray:
    """float32 (rows, outputs): each fitted column of `frame` encoded; numeric parts first, then the 0/1 parts."""
    numeric, flags = [], []
    for column in columns:
        series = frame[column.name]
        if column.kind == "category":
            flags.append(one_hot(column, series))
            continue
        values = numbers_of(series, column.kind, column.clock)
        absent = np.isnan(values)
        numeric.append(scaled(column, scaling, values))
        if column.missing:
            flags.append(absent[:, :1].astype(np.float32))
    parts = numeric + flags
    out = np.concatenate(parts, axis=1) if parts else np.zeros((len(frame), 0), np.float32)
    return out.astype(np.float32)


def scaled(column: Column, scaling: str, values: np.ndarray) -> np.ndarray:
    """A number's parts scaled as fitted (standard, robust with a smooth clip, or quantile); missing -> 0."""
    out = np.empty_like(values, dtype=np.float64)
    for j in range(values.shape[1]):
        x = values[:, j]
        if scaling == "quantile":
            z = quantile_normal(x, np.asarray(column.quantiles[j]))
        else:
            z = (x - column.center[j]) / column.scale[j]
            if scaling == "robust":  # smooth clipping: ~x near 0, at most +-3 far out (RealMLP)
                z = z / np.sqrt(1 + (z / 3) ** 2)
        out[:, j] = np.where(np.isnan(z), 0.0, z)  # a missing cell sits at the centre
    return out.astype(np.float32)


def one_hot(column: Column, series) -> np.ndarray:
    """0/1 columns: one per kept value, then "other" (values unseen or rare in training), then "missing"."""
    text = category_strings(series)
    index = {v: i for i, v in enumerate(column.values)}
    width = len(column.values) + column.other + column.missing
    out = np.zeros((len(text), width), dtype=np.float32)
    absent = text.isna().to_numpy()
    codes = np.array([index.get(v, -1) for v in text.fillna("").tolist()], dtype=np.int64)
    known = codes >= 0
    out[np.flatnonzero(known), codes[known]] = 1.0
    if column.other:
        out[np.flatnonzero(~known & ~absent), len(column.values)] = 1.0
    if column.missing:
        out[np.flatnonzero(absent), width - 1] = 1.0
    return out


def cells_missing(series):
    """Missing cells: NaN/None, and text cells that are empty or only spaces."""
    import pandas as pd

    absent = series.isna()
    if not (pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series)):
        absent |= series.astype(str).str.strip().eq("")
    return absent


def category_strings(series):
    """Each cell as stripped text, missing cells as NaN (so 'a' and ' a' and 1 and '1' agree)."""
    import pandas as pd

    absent = cells_missing(series)
    text = series.astype(str).str.strip()
    if pd.api.types.is_float_dtype(series):  # 1.0 read from a CSV is the category "1"
        text = text.str.replace(r"\.0$", "", regex=True)
    return text.mask(absent)


def dates_of(series):
    """Each cell as a timestamp (NaT where missing or unreadable). Times with an offset or a zone ("...Z",
    "+02:00") are taken in UTC, as are those without one, so a column mixing both still reads as one."""
    import warnings

    import pandas as pd

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pd.to_datetime(series, errors="coerce", format="mixed", utc=True).dt.tz_localize(None)


def has_clock(when) -> bool:
    """Whether any timestamp has a time of day other than midnight."""
    return bool((when.dropna() != when.dropna().dt.normalize()).any())


def numbers_of(series, kind: str, clock: bool = False) -> np.ndarray:
    """(rows, parts) float64: a numeric column's values, or a date's parts (the hour too with `clock`); NaN
    where missing or unreadable."""
    import pandas as pd

    if kind == "date":
        when = dates_of(series)
        parts = [when.dt.year, when.dt.month, when.dt.day, when.dt.day_of_week,
                 (when - pd.Timestamp("1970-01-01")).dt.days]
        if clock:
            parts.append(when.dt.hour + when.dt.minute / 60 + when.dt.second / 3600)
        return np.stack([p.to_numpy(dtype=np.float64, na_value=np.nan) for p in parts], axis=1)
    if pd.api.types.is_bool_dtype(series):
        values = series.astype(float).to_numpy(dtype=np.float64)
    else:
        values = pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    values = np.where(np.isfinite(values), values, np.nan)  # +-inf is no number a scale can use: missing
    return values[:, None]


def quantile_normal(x: np.ndarray, quantiles: np.ndarray) -> np.ndarray:
    """scikit-learn's QuantileTransformer(output_distribution="normal") on one column: the rank of x among the
    training quantiles (averaged over ties from both sides), through the normal distribution's inverse."""
    references = np.linspace(0, 1, len(quantiles))
    forward = np.interp(x, quantiles, references)
    backward = -np.interp(-x, -quantiles[::-1], -references[::-1])
    ranks = np.clip(0.5 * (forward + backward), 1e-7, 1 - 1e-7)
    return normal_quantiles(ranks)


def normal_quantiles(p: np.ndarray) -> np.ndarray:
    """The standard normal's inverse CDF: scipy's `ndtri` (vectorized), or — in a bundle's client where scipy is
    not installed — the standard library's `NormalDist.inv_cdf` (Wichura's AS241, the same values to ~1e-15)."""
    try:
        from scipy.special import ndtri
    except ImportError:
        from statistics import NormalDist

        return np.vectorize(NormalDist().inv_cdf, otypes=[np.float64])(p)
    return ndtri(p)
