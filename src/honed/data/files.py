"""Reading user files (CSV, TSV, JSONL, Parquet) into DataFrames with clear errors."""

from __future__ import annotations

import zlib
from pathlib import Path

from honed.errors import UserError

# pandas is imported on first use: runs that read no user file do not pay for it.
READERS = {
    ".csv": lambda pd, p: pd.read_csv(p),
    ".tsv": lambda pd, p: pd.read_csv(p, sep="\t"),
    ".jsonl": lambda pd, p: pd.read_json(p, lines=True),
    ".json": lambda pd, p: pd.read_json(p, lines=True),
    ".parquet": lambda pd, p: pd.read_parquet(p),
}
COMPRESSED = (".gz", ".bz2", ".xz", ".zst", ".zip")  # pandas decompresses these by their suffix


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
    try:
        frame = reader(pd, p)
    except ImportError as e:
        raise UserError(f"{key} = {str(path)!r}: reading {p.suffix} needs an extra package ({e.name}); pip install 'honed[parquet]'") from None
    except (ValueError, OSError, UnicodeDecodeError, EOFError, zlib.error) as e:  # ParserError is a ValueError;
        first = (str(e).splitlines() or [type(e).__name__])[0][:120]           # a truncated .gz: EOFError
        raise UserError(f"{key} = {str(path)!r}: cannot read it ({first})") from None
    if len(frame) == 0:
        raise UserError(f"{key} = {str(path)!r}: the file has no rows")
    return frame


def require_columns(frame, columns: list[str], path: str, key: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise UserError(
            f"{key}: column {missing[0]!r} is not in {path}; its columns are: {', '.join(map(str, frame.columns))}"
        )
