"""What every command group shares: the start time, `--set`, and how results are shown."""

from __future__ import annotations

import argparse
import os
import time

STARTED = time.perf_counter()  # end-to-end timings count from the command's start


def add_overrides(command: argparse.ArgumentParser, help: str = "override a recipe key, e.g. --set optimizer.lr=0.1 "
                  "(repeatable)") -> None:
    """`--set KEY=VALUE`, the one way a command changes a recipe."""
    command.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help=help)


def launcher_started() -> float:
    """When the command began, as a perf_counter value; under `--nproc`, when the launcher began."""
    launched = os.environ.get("HONED_STARTED_AT")
    return time.perf_counter() - (time.time() - float(launched)) if launched else STARTED


def with_intervals(scores: dict) -> str:
    """'accuracy 87.36% (95% CI 86.95-87.77), ...': each metric with its interval (summary's ci95)."""
    from honed.evaluation.metrics import SHARES

    def shown(name: str, value: float) -> str:
        return f"{100 * value:.2f}" if name in SHARES else f"{value:.4g}"

    parts = []
    for name, (low, high) in scores.get("ci95", {}).items():
        unit = "%" if name in SHARES else ""
        parts.append(f"{name} {shown(name, scores[name])}{unit} (95% CI {shown(name, low)}-{shown(name, high)})")
    return ", ".join(parts)


def show_table(rows: list[dict], title: str) -> None:
    """A rich table on stdout."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for column in rows[0] if rows else []:
        table.add_column(column)
    for row in rows:
        table.add_row(*["-" if v is None else f"{v:.4g}" if isinstance(v, float) else str(v) for v in row.values()])
    Console(width=160).print(table)
