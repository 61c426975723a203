"""The run report: one self-contained page per run (RUN_DIR/report.html) that a person opens in a browser.

    sections.py      the content, read from the run directory's files
    figures.py       the matplotlib pictures (PNG, embedded as data URIs)
    evidence.py      test_outputs.npz and mistakes.json, kept by honed train so the page rebuilds alone
    report.html.j2   the Jinja2 template (autoescaped: every string from a user or a data set is escaped)

`honed train` writes the page at the end (train.report); `honed report RUN_DIR` rebuilds it, and
explain, export, quantize and doctor rebuild it after adding their findings to the run folder.
"""

from __future__ import annotations

from pathlib import Path

from honed.report.evidence import save_test_evidence
from honed import runfiles

PAGE = runfiles.REPORT

__all__ = ["PAGE", "report", "save_test_evidence", "write_report", "refresh_report"]


def write_report(run_dir: str | Path) -> Path:
    """Render RUN_DIR/report.html from the run's files; returns its path."""
    import jinja2

    from honed.report.sections import context
    from honed.files import write_text

    path = Path(run_dir)
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(Path(__file__).parent), autoescape=True)
    page = env.get_template("report.html.j2").render(**context(path))
    return write_text(path / PAGE, page)


def report(run_dir: str | Path) -> Path:
    """`honed report RUN_DIR`: the page of a finished or stopped run, rebuilt from its files (api.report first
    scores the test split again for a run that predates test_outputs.npz)."""
    return write_report(check_report_folder(run_dir)[0])


def check_report_folder(run_dir: str | Path) -> tuple[Path, dict]:
    """(the run folder, its summary), or one line saying why the folder has no page to build."""
    from honed.run import SUMMARY, read_summary
    from honed.run.rundir import refuse_outside_links
    from honed.errors import UserError

    path = Path(run_dir)
    if not path.is_dir():
        raise UserError(f"run directory not found: {path}")
    if not (path / runfiles.RECIPE).is_file():
        raise UserError(f"{path} is not a honed run: recipe.yaml is missing")
    refuse_outside_links(path)
    try:
        summary = read_summary(path)
    except ValueError:
        raise UserError(f"{path / SUMMARY}: damaged (not JSON); train the run again") from None
    if not isinstance(summary, dict):
        raise UserError(f"{path / SUMMARY}: damaged (not a JSON object); train the run again")
    return path, summary


def refresh_report(run_dir: str | Path) -> None:
    """Rebuild a run's page after another command added to the folder (only if the run has one)."""
    path = Path(run_dir)
    if (path / PAGE).is_file():
        write_report(path)


def write_summary_page(path: str | Path, command: str, title: str, lines: list[str] = (), figures: list[Path] = (),
                       tables: list[dict] = ()) -> Path:
    """One self-contained page for a command that sums up several runs (tune, compare, cv, distill): a title,
    a few sentences, its figures embedded, and tables ({"caption", "columns", "rows"}; cells shown as given,
    numbers to four significant digits)."""
    import base64

    import jinja2

    from honed.files import write_text

    def cell(value) -> str:
        if isinstance(value, float):
            return f"{value:.4g}"
        return "" if value is None else str(value)

    shown = [{"caption": t.get("caption", ""), "columns": list(t["columns"]),
              "rows": [{c: cell(r.get(c)) for c in t["columns"]} for r in t["rows"]]} for t in tables]
    images = [{"name": Path(f).stem, "uri": "data:image/png;base64," + base64.b64encode(Path(f).read_bytes()).decode()}
              for f in figures if f and Path(f).is_file()]
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(Path(__file__).parent), autoescape=True)
    page = env.get_template("summary.html.j2").render(command=command, title=title, lines=list(lines),
                                                      figures=images, tables=shown)
    return write_text(Path(path), page)
