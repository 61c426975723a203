"""`honed distill TEACHER_RUN STUDENT_RECIPE`: a small student trained on a big teacher's outputs,
reported beside the teacher and beside the same student trained without it (the ablation).

    OUT/distilled/   the student trained with the teacher (a normal run directory)
    OUT/alone/       the same recipe, same seed, labels only
    OUT/summary.json the table: parameters, file size, CPU latency per example, test metrics
"""

from __future__ import annotations

from pathlib import Path

import torch

from honed.training.distill import Teacher, check_softening
from honed import runfiles
from honed.errors import UserError
from honed.files import Written


def describe(name: str, run_dir: Path, summary: dict) -> dict:
    row = {"model": name, "run": str(run_dir), "params": summary["params"],
           "bytes": (run_dir / runfiles.WEIGHTS).stat().st_size}
    return row | {f"test {k}": v for k, v in summary["test"].items() if isinstance(v, float)}


def add_latencies(rows: list[dict], runs: list[tuple], raw_test, count: int = 500, rounds: int = 3) -> None:
    """CPU ms per example at batch 1 for each (model, preprocessor) in `runs`, on the first `count` test rows
    (read once, each run tokenizing them its own way): the best of a few interleaved rounds."""
    from honed.export.quantize import latency_ms

    inputs = [(model.cpu(), pre.inputs(raw_test.x[:count])) for model, pre in runs]
    best = [float("inf")] * len(rows)
    with torch.inference_mode():
        for _ in range(rounds):
            for i, (model, x) in enumerate(inputs):
                best[i] = min(best[i], latency_ms(model, x, 1))
    for row, ms in zip(rows, best):
        row["ms per example"] = ms


def distill(teacher_run, student_recipe, overrides=(), *, temperature: float = 2.0, alpha: float = 0.5,
            out=None, overwrite: bool = False) -> dict:
    """Train the student with and without the teacher; return (and write) the comparison. An `out` holding an
    earlier (or a killed) distill is refused unless `overwrite`, which starts it again."""
    from honed.files import releasing

    with releasing():
        return _distill(teacher_run, student_recipe, overrides, temperature, alpha, out, overwrite)


def _distill(teacher_run, student_recipe, overrides, temperature: float, alpha: float, out, overwrite: bool) -> dict:
    import shutil

    from honed import api
    from honed.files import hold
    from honed.data.build import load_raw, split_raw
    from honed.recipe import load_recipe
    from honed.run import check_run_dir, read_summary, timestamped, write_json

    check_softening(temperature, alpha)
    teacher_dir = check_run_dir(teacher_run)
    teacher = Teacher(teacher_dir, api.load_run(teacher_dir), temperature, alpha)
    recipe = load_recipe(student_recipe, overrides)
    out = Path(out) if out else timestamped(f"{recipe.name}-distill")
    earlier = [out / name for name in ("distilled", "alone", runfiles.SUMMARY) if (out / name).exists()]
    if earlier and not overwrite:
        raise UserError(f"--out {out}: an earlier distill is there; choose another folder, or add --overwrite to run "
                        "it again")
    out.mkdir(parents=True, exist_ok=True)
    hold(out)
    for path in earlier:
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    with_teacher = api.train(recipe, out=out / "distilled", objective=teacher)
    alone = api.train(recipe, out=out / "alone")
    rows = [describe(f"teacher ({teacher.recipe.model.name})", teacher_dir, read_summary(teacher_dir)),
            describe(f"student + distillation (T={temperature:g}, alpha={alpha:g})", with_teacher.path,
                     with_teacher.summary),
            describe("student alone", alone.path, alone.summary)]
    _, _, raw_test = split_raw(load_raw(recipe.data), recipe.data)  # read once for all three models
    runs = [(teacher.model, teacher.pre)] + [api.load_run(r.path)[1:] for r in (with_teacher, alone)]
    add_latencies(rows, runs, raw_test)
    report = {"teacher": str(teacher_dir), "temperature": temperature, "alpha": alpha,
              "teacher_passes": teacher.computed, "rows": rows}
    write_json(out / runfiles.SUMMARY, report)
    from honed.report import write_summary_page

    write_summary_page(out / "distill.html", "distill", f"teacher {teacher_dir}, T={temperature:g}, alpha={alpha:g}",
                       [f"The teacher's outputs were computed {teacher.computed} time(s); each student's own page is "
                        "report.html in its folder."],
                       tables=[{"columns": list(dict.fromkeys(k for r in rows for k in r)), "rows": rows}])
    return Written(report | {"path": str(out)})
