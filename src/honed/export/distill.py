"""`honed distill TEACHER_RUN STUDENT_RECIPE`: a small student trained on a big teacher's outputs,
reported beside the teacher and beside the same student trained without it (the ablation).

    OUT/distilled/   the student trained with the teacher (a normal run directory)
    OUT/alone/       the same recipe, same seed, labels only
    OUT/summary.json the table: parameters, file size, CPU latency per example, test metrics
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from pathlib import Path

import torch

from honed.errors import UserError
from honed.training.device import pick_device
from honed.training.distill import DistillationLoss

log = logging.getLogger("honed")


class Teacher:
    """A finished honed run whose outputs guide a student trained on the same data."""

    def __init__(self, run_dir, temperature: float = 2.0, alpha: float = 0.5) -> None:
        from honed.api import load_run

        if temperature <= 0:
            raise UserError(f"--temperature {temperature:g}: must be above 0 (1 = no softening; 2-5 is usual)")
        if not 0 <= alpha <= 1:
            raise UserError(f"--alpha {alpha:g}: must be between 0 (labels only) and 1 (teacher only)")
        self.path = Path(run_dir)
        self.recipe, self.model, self.pre = load_run(run_dir)
        self.temperature, self.alpha = temperature, alpha
        self.computed = 0  # how often the teacher ran over the training set (once per command, at most)
        self._logits: dict[str, torch.Tensor] = {}

    def loss(self, hard, task: str) -> DistillationLoss:
        return DistillationLoss(hard, task, self.temperature, self.alpha)

    def targets(self, data_spec, bundle) -> torch.Tensor:
        """The student's training targets with the teacher's logits beside each label."""
        logits = self.logits(data_spec, bundle)
        y = bundle.train.y.float().unsqueeze(1)
        return torch.cat([y, logits.reshape(len(y), -1).float()], dim=1)

    def logits(self, data_spec, bundle) -> torch.Tensor:
        """Teacher logits for the student's training rows: from memory, the disk cache, or computed once."""
        key = self.cache_key(data_spec)
        if key in self._logits:
            return self._logits[key]
        path = teacher_cache() / f"{key}.safetensors"
        if path.is_file():
            from safetensors.torch import load_file

            log.info(f"distill: teacher outputs from the cache ({path})")
            logits = load_file(path)["logits"]
        else:
            logits = self.compute(data_spec, bundle)
            from safetensors.torch import save_file

            from honed.run import atomic_write

            atomic_write(path, lambda tmp: save_file({"logits": logits.contiguous()}, str(tmp)))
        self._logits[key] = logits
        return logits

    def compute(self, data_spec, bundle) -> torch.Tensor:
        """Run the teacher, with its own preprocessing, over the student's raw training rows."""
        from honed.data.build import load_raw, split_raw
        from honed.evaluation import outputs_of

        if self.pre.task != bundle.task:
            raise UserError(f"the teacher is a {self.pre.task} model, the student's data is {bundle.task}")
        student_labels = bundle.preprocessor.labels.classes if bundle.preprocessor.labels else None
        teacher_labels = self.pre.labels.classes if self.pre.labels else None
        if student_labels != teacher_labels:
            raise UserError(f"teacher and student have different labels ({teacher_labels} vs {student_labels}): "
                            "distillation needs the same classes in the same order")
        train, _, _ = split_raw(load_raw(data_spec), data_spec)
        if len(train.y) != len(bundle.train.y) or not torch.equal(self.pre.targets(train.y).float(),
                                                                  bundle.train.y.float()):
            raise UserError("the teacher's view of the training rows does not line up with the student's; "
                            "give both the same data source and split settings (data.seed, data.val_fraction)")
        x = self.pre.inputs(train.x)
        device = pick_device("auto")  # a GPU when there is one: a Transformer teacher's pass is the slow part
        log.info(f"distill: running the teacher over {len(x)} training rows (once, on {device})")
        self.computed += 1
        try:
            return outputs_of(self.model.to(device), x)
        finally:
            self.model.cpu()  # latencies are measured on the CPU

    def cache_key(self, data_spec) -> str:
        weights = self.path / "model.safetensors"
        stamp = {"teacher": str(self.path.resolve()), "bytes": weights.stat().st_size,
                 "mtime": weights.stat().st_mtime_ns, "data": data_spec.model_dump(mode="json")}
        return hashlib.sha256(json.dumps(stamp, sort_keys=True).encode()).hexdigest()[:24]


def teacher_cache() -> Path:
    """$HONED_CACHE/teacher: teacher outputs, keyed by the teacher run and the student's data settings."""
    from honed.data.download import cache_dir

    return cache_dir() / "teacher"


def timing_inputs(run_dir: Path, rows: int = 500) -> tuple[torch.nn.Module, torch.Tensor]:
    """The run's model and the first `rows` of its own test split (read once, timed several times)."""
    from honed.api import load_run
    from honed.data import test_split

    recipe, model, pre = load_run(run_dir)
    return model, test_split(recipe.data, pre).x[:rows]


def describe(name: str, run_dir: Path, summary: dict) -> dict:
    row = {"model": name, "run": str(run_dir), "params": summary["params"],
           "bytes": (run_dir / "model.safetensors").stat().st_size}
    return row | {f"test {k}": v for k, v in summary["test"].items() if isinstance(v, float)}


def add_latencies(rows: list[dict], rounds: int = 3) -> None:
    """CPU ms per example at batch 1 for each run: the best of a few interleaved rounds (one busy moment skews less)."""
    from honed.export.quantize import latency_ms

    inputs = [timing_inputs(Path(row["run"])) for row in rows]
    best = [float("inf")] * len(rows)
    with torch.inference_mode():
        for _ in range(rounds):
            for i, (model, x) in enumerate(inputs):
                best[i] = min(best[i], latency_ms(model, x, 1))
    for row, ms in zip(rows, best):
        row["ms per example"] = ms


def distill(teacher_run, student_recipe, overrides=(), temperature: float = 2.0, alpha: float = 0.5,
            out=None) -> dict:
    """Train the student with and without the teacher; return (and write) the comparison."""
    import honed
    from honed.recipe import load_recipe
    from honed.run import check_run_dir, read_summary, write_json

    teacher_dir = check_run_dir(teacher_run)
    teacher = Teacher(teacher_dir, temperature, alpha)
    recipe = load_recipe(student_recipe, overrides)
    out = Path(out) if out else Path("runs") / f"{recipe.name}-distill-{time.strftime('%Y%m%d-%H%M%S')}"
    with_teacher = honed.train(recipe, out=out / "distilled", teacher=teacher)
    alone = honed.train(recipe, out=out / "alone")
    rows = [describe(f"teacher ({teacher.recipe.model.name})", teacher_dir, read_summary(teacher_dir)),
            describe(f"student + distillation (T={temperature:g}, alpha={alpha:g})", with_teacher.path,
                     with_teacher.summary),
            describe("student alone", alone.path, alone.summary)]
    add_latencies(rows)
    report = {"teacher": str(teacher_dir), "temperature": temperature, "alpha": alpha,
              "teacher_passes": teacher.computed, "rows": rows}
    write_json(out / "summary.json", report)
    return report | {"path": str(out)}
