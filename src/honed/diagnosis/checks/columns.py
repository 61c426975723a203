"""Checks on a table's columns, read from the per-column profile the run kept (preprocess.json): columns that
are mostly missing, and columns that look like an identifier rather than a property of the row."""

from __future__ import annotations

from honed.diagnosis.checks import check
from honed.diagnosis.evidence import RunEvidence
from honed.diagnosis.finding import Finding, change

MOSTLY_MISSING = 0.5  # a column missing on at least this share of the training rows
ID_SHARE = 0.9  # a kept column with a distinct value on at least this share of the rows reads as an identifier
MIN_ID_ROWS = 200  # fewer rows than this: distinct values everywhere is no evidence of an ID


def column_rows(ev: RunEvidence) -> tuple[list[dict], int]:
    return ev.profile.get("columns") or [], int((ev.summary.get("sizes") or {}).get("train") or 0)


@check("mostly_missing_columns")
def mostly_missing_columns(ev: RunEvidence) -> list[Finding]:
    columns, _ = column_rows(ev)
    missing = sorted(((c["missing_share"], c["name"]) for c in columns
                      if c["kind"] != "drop" and (c.get("missing_share") or 0) >= MOSTLY_MISSING), reverse=True)
    if not missing:
        return []
    shown = ", ".join(f"{name} ({share:.0%})" for share, name in missing[:6]) + ("…" if len(missing) > 6 else "")
    return [Finding("mostly_missing_columns", "warning", f"{len(missing)} column(s) are missing on at least "
                    f"{MOSTLY_MISSING:.0%} of the training rows: {shown}",
                    [change(**{f"data.column_types.{name}": "drop"}) for _, name in missing[:3]],
                    hint="a 0/1 indicator marks each missing cell, so missingness itself can still inform; drop the "
                    "column when it is missing for reasons unrelated to the target, or fill it in the data",
                    strength=missing[0][0])]


@check("id_like_columns")
def id_like_columns(ev: RunEvidence) -> list[Finding]:
    columns, rows = column_rows(ev)
    if rows < MIN_ID_ROWS:
        return []
    suspects = [c["name"] for c in columns if c["kind"] in ("category", "numeric") and c.get("distinct") is not None
                and c["distinct"] >= ID_SHARE * rows * (1 - (c.get("missing_share") or 0))
                and (c["kind"] == "category" or c.get("integer"))]
    if not suspects:
        return []
    return [Finding("id_like_columns", "warning", f"{len(suspects)} kept column(s) hold a different value on almost "
                    f"every training row, as identifiers do: {', '.join(suspects[:6])}",
                    [change(**{f"data.column_types.{name}": "drop" for name in suspects})],
                    hint="an identifier names a row; it says nothing about rows the model has not seen (honed drops "
                    "exact IDs itself: distinct text, or consecutive integers)", strength=len(suspects))]
