"""`honed doctor RUN_DIR`: what is wrong with a run, proved with the run's own numbers, and the recipe
changes that fix it.

    evidence.py   RunEvidence: the run's files, and the data, model probes and range test on first use
    checks/       one registered function per finding (dynamics, inside the model, data, costs)
    probes.py     gradient and activation statistics over a few batches; a short range test
    finding.py    Finding (name, severity, evidence, advice as --set alternatives), ranking
    fix.py        --fix: apply the top advice, retrain with the same seed, keep what beats validation noise
    report.py     doctor.json, doctor.md, the rich table

`honed.doctor(run_dir)` returns the Diagnosis; `end_of_training(...)` is the free, history-only check that
`honed train` prints one line from.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from honed.diagnosis.evidence import RunEvidence
from honed.diagnosis.finding import Finding, ranked
from honed import runfiles

__all__ = ["Diagnosis", "Finding", "RunEvidence", "doctor", "diagnose", "end_of_training", "read_evidence"]


@dataclass
class Diagnosis:
    run_dir: str
    findings: list[Finding]
    seconds: float = 0.0
    skipped: list[str] = field(default_factory=list)  # checks that could not run, and why

    @property
    def healthy(self) -> bool:
        return not any(f.severity == "problem" for f in self.findings)

    def to_json(self) -> dict:
        return {"run": self.run_dir, "healthy": self.healthy, "seconds": round(self.seconds, 3),
                "findings": [f.to_json() for f in self.findings], "skipped": self.skipped}


def read_evidence(run_dir: str | Path, probes: bool = True) -> RunEvidence:
    """A run's files as RunEvidence; a folder that is not a run, or a damaged file, is a one-line error."""
    from honed.errors import UserError
    from honed.recipe import load_recipe
    from honed.run import RECIPE, read_json, read_metrics
    from honed.run.rundir import refuse_outside_links

    path = Path(run_dir)
    if not path.is_dir():
        raise UserError(f"run directory not found: {path}")
    if not (path / RECIPE).is_file():
        raise UserError(f"{path} is not a honed run: {RECIPE} is missing")
    refuse_outside_links(path)

    def optional(name: str):
        try:
            value = read_json(path / name) if (path / name).is_file() else {}
        except ValueError:
            raise UserError(f"{path / name}: damaged (not JSON); train the run again") from None
        if not isinstance(value, dict):
            raise UserError(f"{path / name}: damaged (not a JSON object); train the run again")
        return value

    summary = optional(runfiles.SUMMARY) if (path / runfiles.SUMMARY).is_file() else {}
    return RunEvidence(recipe=load_recipe(path / RECIPE), summary=summary, history=read_metrics(path), run_dir=path,
                       failure=optional(runfiles.FAILURE) or None, probes=probes,
                       profile=optional(runfiles.PREPROCESS).get("profile") or {})


def diagnose(ev: RunEvidence, needs: tuple[str, ...] = ("history", "data", "probe")) -> Diagnosis:
    """Run every registered check whose needs are allowed; the findings ranked."""
    from honed.diagnosis.checks import load_all

    started, findings, skipped = time.perf_counter(), [], []
    for c in load_all():
        if c.needs not in needs:
            continue
        try:
            findings += c.run(ev)
        except FileNotFoundError as e:  # the data moved since the run: the checks that need it step aside
            skipped.append(f"{c.name}: {e.filename or e} is not there any more")
    return Diagnosis(str(ev.run_dir or ""), ranked(findings), time.perf_counter() - started, skipped)


def doctor(run_dir: str | Path, *, probes: bool = True) -> Diagnosis:
    """The findings on a finished, stopped or failed run (probes: the data, a few batches, a range test)."""
    ev = read_evidence(run_dir, probes)
    return diagnose(ev, ("history", "data", "probe") if probes else ("history",))


def end_of_training(recipe, summary: dict, history: list[dict]) -> Finding | None:
    """The first problem the history alone shows (no file read, no probe), for `honed train`'s last line."""
    ev = RunEvidence(recipe=recipe, summary=summary, history=history, probes=False)
    problems = [f for f in diagnose(ev, ("history",)).findings if f.severity == "problem"]
    return problems[0] if problems else None
