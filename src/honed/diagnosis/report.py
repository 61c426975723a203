"""The doctor's answer on disk and on screen: doctor.json (every finding), doctor.md (the same for people),
and the rich table `honed doctor` prints."""

from __future__ import annotations

from pathlib import Path

from honed.diagnosis import Diagnosis
from honed import runfiles


def markdown(d: Diagnosis, recipe_path: str) -> str:
    lines = [f"# honed doctor: {d.run_dir}", ""]
    if not d.findings:
        lines.append("No findings: the run looks healthy.")
    elif d.healthy:
        lines.append("No problem found; warnings and notes below.")
    lines.append("")
    for i, f in enumerate(d.findings, 1):
        lines.append(f"## {i}. {f.name} ({f.severity})")
        lines.append("")
        lines.append(f.evidence + ".")
        for a in f.advice:
            lines.append(f"- `honed train {recipe_path} {a}`")
        if f.hint:
            lines.append(f"- {f.hint}")
        lines.append("")
    if d.skipped:
        lines += ["Checks that could not run: " + "; ".join(d.skipped), ""]
    return "\n".join(lines)


def write(d: Diagnosis, out: Path | None = None) -> tuple[Path, Path]:
    """doctor.json and doctor.md in `out`; by default in the run's folder, whose page is then rebuilt."""
    from honed.run import write_json, write_text

    recipe = str(Path(d.run_dir) / runfiles.RECIPE)
    folder = Path(out) if out is not None else Path(d.run_dir)
    written = write_json(folder / runfiles.DOCTOR_JSON, d.to_json()), write_text(folder / runfiles.DOCTOR_MD,
                                                                                 markdown(d, recipe))
    if out is None:
        from honed.report import refresh_report

        refresh_report(d.run_dir)
    return written


def show(d: Diagnosis) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=160)
    if not d.findings:
        console.print(f"doctor: no findings, the run looks healthy ({d.seconds:.1f} s)")
        return
    table = Table(title=f"honed doctor: {d.run_dir}" + ("" if not d.healthy else " (no problem found)"),
                  show_lines=True)
    for column in ("severity", "finding", "evidence", "advice"):
        table.add_column(column, overflow="fold")
    colour = {"problem": "bold red", "warning": "yellow", "note": "dim"}
    for f in d.findings:
        advice = "\n".join(f.advice + ([f.hint] if f.hint else []))
        table.add_row(f"[{colour[f.severity]}]{f.severity}[/]", f.name, f.evidence, advice)
    console.print(table)
