"""`honed distill TEACHER_RUN STUDENT_RECIPE`: a small student trained on a big teacher's outputs,
reported beside the teacher and beside the same student trained without it (the ablation).

    OUT/distilled/   the student trained with the teacher (a normal run directory)
    OUT/alone/       the same recipe, same seed, labels only
    OUT/summary.json the table: parameters, file size, CPU latency per example, test metrics
"""

from __future__ import annotations

from pathlib import Path

import torch

from honed.training.distill import LanguageTeacher, Teacher, check_softening
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


def add_token_latencies(rows: list[dict], models: list, run_dir: Path, loaded) -> None:
    """CPU ms per new token (greedy) for each language model, from the same test prompts (a shared vocabulary):
    those of the run at `run_dir`, already `loaded`."""
    from honed.api import Run
    from honed.data.chat import row_prompts
    from honed.export.lm_quantize import PROMPTS, ms_per_token

    prompts = row_prompts(Run.open(run_dir).test_split(loaded).x, PROMPTS)
    with torch.inference_mode():
        for row, model in zip(rows, models):
            row["ms per token"] = ms_per_token(model.cpu().eval(), prompts)


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
    loaded = api.load_run(teacher_dir)
    recipe = load_recipe(student_recipe, overrides)
    language = loaded.recipe.model.name == "causal_lm"
    teacher = (LanguageTeacher if language else Teacher)(teacher_dir, loaded, temperature, alpha)
    if language:
        if recipe.model.name != "causal_lm":
            raise UserError(f"the teacher is a causal language model: the student recipe's model must be one too "
                            f"(model.name = causal_lm), not {recipe.model.name!r}")
        teacher.check_student(recipe.data)
    out = Path(out) if out else timestamped(f"{recipe.name}-distill")
    earlier = [out / name for name in ("distilled", "alone", runfiles.SUMMARY) if (out / name).exists()]
    if earlier and not overwrite:
        raise UserError(f"--out {out}: an earlier distill is there; choose another folder, or add --overwrite to run "
                        "it again")
    out.mkdir(parents=True, exist_ok=True)
    hold(out)
    for path in earlier:
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    # a language model's teacher reads each training step's rows beside the student (a hook); any other's
    # outputs are computed once and travel with the labels (an objective)
    with_teacher = api.train(recipe, out=out / "distilled", **({"hooks": [teacher]} if language else
                                                                {"objective": teacher}))
    alone = api.train(recipe, out=out / "alone")
    rows = [describe(f"teacher ({teacher.recipe.model.name})", teacher_dir, read_summary(teacher_dir)),
            describe(f"student + distillation (T={temperature:g}, alpha={alpha:g})", with_teacher.path,
                     with_teacher.summary),
            describe("student alone", alone.path, alone.summary)]
    if language:  # what a language model's user waits for: each new token
        students = [api.load_run(r.path) for r in (with_teacher, alone)]
        add_token_latencies(rows, [teacher.model] + [s.model for s in students], alone.path, students[1])
    else:
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
