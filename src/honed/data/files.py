"""Reading user files (CSV, TSV, JSONL, Parquet) into DataFrames with clear errors."""

from __future__ import annotations

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


def read_table(path: str | Path, key: str):
    """The file at `path` (named by recipe key `key`) as a DataFrame."""
    import pandas as pd

    p = Path(path).expanduser()
    if not p.is_file():
        raise UserError(f"{key} = {str(path)!r}: file not found")
    reader = READERS.get(p.suffix.lower())
    if reader is None:
        raise UserError(f"{key} = {str(path)!r}: unsupported file type {p.suffix!r}; allowed: {', '.join(READERS)}")
    try:
        frame = reader(pd, p)
    except ImportError as e:
        raise UserError(f"{key} = {str(path)!r}: reading {p.suffix} needs an extra package ({e.name}); pip install 'honed[parquet]'") from None
    except (ValueError, OSError, UnicodeDecodeError) as e:  # pandas' ParserError is a ValueError
        raise UserError(f"{key} = {str(path)!r}: cannot read it ({str(e).splitlines()[0]})") from None
    if len(frame) == 0:
        raise UserError(f"{key} = {str(path)!r}: the file has no rows")
    return frame


def require_columns(frame, columns: list[str], path: str, key: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise UserError(
            f"{key}: column {missing[0]!r} is not in {path}; its columns are: {', '.join(map(str, frame.columns))}"
        )
