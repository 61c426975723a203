"""Reading user files (CSV, TSV, JSONL, Parquet) with clear errors: whole tables as DataFrames, or the
few columns a text source needs as lists, read with the standard library (pandas costs 0.6 s to import,
a tenth of a small text run)."""

from __future__ import annotations

import bz2
import csv
import gzip
import io
import lzma
import os
import zipfile
import zlib
from pathlib import Path

from honed.errors import UserError
from honed.files import loads_json

# pandas is imported on first use: runs that read no user file do not pay for it.
READERS = {
    ".csv": lambda pd, p: pd.read_csv(p),
    ".tsv": lambda pd, p: pd.read_csv(p, sep="\t"),
    ".jsonl": lambda pd, p: pd.read_json(p, lines=True),
    ".json": lambda pd, p: pd.read_json(p, lines=True),
    ".parquet": lambda pd, p: pd.read_parquet(p),
}
COMPRESSED = (".gz", ".bz2", ".xz", ".zst", ".zip")  # pandas decompresses these by their suffix
# A compressed file is read through a counter: a small file that expands without end (a "zip bomb") stops here,
# before memory does. At most this many bytes, and at most RATIO times the file's own size (CSV text compresses
# 3-20x; 100x is data that is mostly one repeated byte).
MAX_DECOMPRESSED_BYTES = int(os.environ.get("HONED_MAX_DECOMPRESSED_BYTES", 2**29))  # parsing takes ~4x this
MAX_DECOMPRESSION_RATIO = 100
OPENERS = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open, ".zip": lambda p, mode: open_zip_member(p, mode)}
# .zst: pandas decompresses it (with the zstandard package), without this counter


class Inflated(ValueError):
    """A compressed file expanded past its bound."""


class BoundedReader(io.RawIOBase):
    """A binary stream that raises Inflated once more than `limit` bytes have been read from `inner`."""

    def __init__(self, inner, limit: int) -> None:
        self.inner, self.limit, self.count = inner, limit, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self.inner.read(min(len(buffer), self.limit - self.count + 1))
        self.count += len(data)
        if self.count > self.limit:
            raise Inflated(f"it expands past {self.limit:,} bytes, the bound on a compressed file ({MAX_DECOMPRESSION_RATIO}x "
                           f"its size, at most $HONED_MAX_DECOMPRESSED_BYTES = {MAX_DECOMPRESSED_BYTES:,}); "
                           "decompress it yourself, or raise that")
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self.inner.close()
        super().close()


def open_bounded(p: Path, opener) -> io.BufferedReader:
    """`p` decompressed by `opener` (gzip.open, ...), as a binary stream bounded by the rules above."""
    limit = min(MAX_DECOMPRESSED_BYTES, MAX_DECOMPRESSION_RATIO * max(p.stat().st_size, 1))
    return io.BufferedReader(BoundedReader(opener(p, "rb"), limit))


def open_zip_member(p: Path, mode: str = "rb"):
    """The one file in a .zip archive (as pandas reads a zipped table), decompressed."""
    archive = zipfile.ZipFile(p)
    members = [m for m in archive.infolist() if not m.is_dir() and not m.filename.startswith("__MACOSX/")]
    if len(members) != 1:
        archive.close()
        raise ValueError(f"a .zip of a table holds one file; this one holds {len(members)}")
    return archive.open(members[0])


def check_parquet_size(p: Path) -> None:
    """A Parquet file's rows, decoded (8 bytes a cell, as pandas holds numbers), fit in the larger of the bound on
    compressed files and 100 times the file's size: its footer says how many rows it claims, before any is read."""
    import pyarrow.parquet as pq

    meta = pq.ParquetFile(p).metadata
    decoded = meta.num_rows * max(1, meta.num_columns) * 8
    limit = max(MAX_DECOMPRESSED_BYTES, MAX_DECOMPRESSION_RATIO * p.stat().st_size)
    if decoded > limit:
        raise Inflated(f"it claims {meta.num_rows:,} rows of {meta.num_columns} columns, about {decoded:,} bytes "
                       f"decoded: more than {limit:,} (the larger of {MAX_DECOMPRESSION_RATIO}x its size and "
                       f"$HONED_MAX_DECOMPRESSED_BYTES = {MAX_DECOMPRESSED_BYTES:,}); raise that to read it")


def table_kind(p: Path) -> str:
    """The file type of `p`, looking through a compression suffix: data.csv.gz -> .csv."""
    suffixes = [s.lower() for s in p.suffixes]
    if len(suffixes) >= 2 and suffixes[-1] in COMPRESSED and suffixes[-2] != ".parquet":
        return suffixes[-2]
    return p.suffix.lower()


def read_table(path: str | Path, key: str):
    """The file at `path` (named by recipe key `key`) as a DataFrame."""
    import pandas as pd

    p = Path(path).expanduser()
    if not p.is_file():
        raise UserError(f"{key} = {str(path)!r}: file not found")
    kind = table_kind(p)
    reader = READERS.get(kind)
    if reader is None:
        raise UserError(f"{key} = {str(path)!r}: unsupported file type {kind!r}; allowed: {', '.join(READERS)}"
                        f" (CSV, TSV and JSON lines may be compressed: {', '.join(COMPRESSED)})")
    opener = OPENERS.get(p.suffix.lower()) if kind != p.suffix.lower() else None
    try:
        if opener is None:
            if kind == ".parquet":
                check_parquet_size(p)
            frame = reader(pd, p)
        else:  # decompressed here, through the counter; pandas reads the text
            with open_bounded(p, opener) as stream:
                frame = reader(pd, stream)
    except ImportError as e:
        raise UserError(f"{key} = {str(path)!r}: reading {p.suffix} needs an extra package ({e.name}); pip install 'honed[parquet]'") from None
    except Inflated as e:
        raise UserError(f"{key} = {str(path)!r}: {e}") from None
    except (ValueError, OSError, UnicodeDecodeError, EOFError, zlib.error, zipfile.BadZipFile) as e:  # ParserError is a ValueError;
        first = (str(e).splitlines() or [type(e).__name__])[0][:120]           # a truncated .gz: EOFError
        raise UserError(f"{key} = {str(path)!r}: cannot read it ({first})") from None
    if len(frame) == 0:
        raise UserError(f"{key} = {str(path)!r}: the file has no rows")
    for column in frame.columns[frame.dtypes == object]:
        check_cells(frame[column].tolist(), column, path, key)
    return frame


NESTED = (list, tuple, dict, set)


def check_cells(cells: list, column, path, key: str) -> None:
    """One value per cell (text, a number, a boolean or nothing): a Parquet or JSON lines column of lists or
    objects is refused in one line, naming the first such row."""
    import numpy as np

    for row, cell in enumerate(cells):
        if isinstance(cell, NESTED) or isinstance(cell, np.ndarray):
            kind = "an object" if isinstance(cell, dict) else "a list"
            raise UserError(f"{key} = {str(path)!r}: column {column!r} holds {kind} in row "
                            f"{row + 1}; honed reads one value per cell (text, a number, a boolean or empty): "
                            "flatten or join it first")


def require_columns(frame, columns: list[str], path: str, key: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise UserError(
            f"{key}: column {missing[0]!r} is not in {path}; its columns are: {', '.join(map(str, frame.columns))}"
        )


# the files a text source reads without pandas: plain or compressed CSV/TSV/JSON lines
DELIMITERS = {".csv": ",", ".tsv": "\t"}


def read_columns(path: str | Path, key: str, columns: dict[str, str]) -> dict[str, list]:
    """The named columns of the file at `path` (recipe key `key`) as lists; `columns` maps each column
    name to the recipe key that named it (for the error line). CSV/TSV cells are strings, "" where empty
    (numbers are left to the caller: `numbers_if_all`); JSON lines keep their JSON types, None where absent."""
    p = Path(path).expanduser()
    kind = table_kind(p)
    opener = OPENERS.get(p.suffix.lower()) if kind != p.suffix.lower() else open
    if kind not in (*DELIMITERS, ".jsonl", ".json") or opener is None or not p.is_file():
        frame = read_table(path, key)  # pandas: Parquet, .zst/.zip, and the errors for missing files or types
        for name, named_by in columns.items():
            require_columns(frame, [name], str(path), named_by)
        return {name: [None if v is None or (isinstance(v, float) and v != v) else v for v in frame[name].tolist()]
                for name in columns}  # NaN -> None
    try:
        stream = open_bounded(p, opener) if opener is not open else open(p, "rb")
    except OSError as e:
        raise UserError(f"{key} = {str(path)!r}: cannot read it ({e.strerror or e})") from None
    try:
        with io.TextIOWrapper(stream, encoding="utf-8-sig", newline="") as f:
            rows, header = (_csv_rows(f, DELIMITERS[kind], columns, path) if kind in DELIMITERS
                            else _json_rows(f, columns, path))
    except Inflated as e:
        raise UserError(f"{key} = {str(path)!r}: {e}") from None
    except (ValueError, OSError, EOFError, zlib.error, csv.Error, lzma.LZMAError, zipfile.BadZipFile) as e:  # UnicodeDecodeError,
        first = (str(e).splitlines() or [type(e).__name__])[0][:120]             # JSONDecodeError: ValueErrors
        raise UserError(f"{key} = {str(path)!r}: cannot read it ({first})") from None
    if not rows[next(iter(columns))]:
        raise UserError(f"{key} = {str(path)!r}: the file has no rows")
    for name, cells in rows.items():
        check_cells(cells, name, path, key)
    return rows


def _csv_rows(f, delimiter: str, columns: dict[str, str], path) -> tuple[dict[str, list], list[str]]:
    csv.field_size_limit(2**31 - 1)  # a long post is one field; memory, not this limit, bounds a file
    reader = csv.reader(f, delimiter=delimiter)
    header = next(reader, None)
    if header is None:
        raise ValueError("the file is empty")
    for name, named_by in columns.items():
        if name not in header:
            raise UserError(f"{named_by}: column {name!r} is not in {path}; its columns are: {', '.join(header)}")
    at = {name: header.index(name) for name in columns}
    out: dict[str, list] = {name: [] for name in columns}
    for cells in reader:
        if len(cells) > len(header):
            raise ValueError(f"line {reader.line_num} has {len(cells)} fields, the header {len(header)}")
        if not cells:
            continue  # a blank line, as pandas skips it
        for name, i in at.items():
            out[name].append(cells[i] if i < len(cells) else "")
    return out, header


def _json_rows(f, columns: dict[str, str], path) -> tuple[dict[str, list], list[str]]:
    out: dict[str, list] = {name: [] for name in columns}
    seen: set[str] = set()
    for number, line in enumerate(f, 1):
        if not line.strip():
            continue
        row = loads_json(line)
        if not isinstance(row, dict):
            raise ValueError(f"line {number} is not a JSON object")
        seen.update(row)
        for name in columns:
            out[name].append(row.get(name))
    for name, named_by in columns.items():
        if out[name] and name not in seen:
            raise UserError(f"{named_by}: column {name!r} is not in {path}; its columns are: {', '.join(sorted(seen))}")
    return out, sorted(seen)


def numbers_if_all(cells: list) -> list:
    """CSV cells as ints if every one is an integer, else floats if every one is a number, else as they are:
    the types pandas would infer for a column ("1" -> 1), without pandas."""
    for kind in (int, float):
        try:
            return [kind(c) for c in cells]
        except (TypeError, ValueError):
            continue
    return cells
