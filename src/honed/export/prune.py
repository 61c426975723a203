"""`honed prune RUN_DIR --target 0.5`: a smaller, faster copy of a run. The share of every recipe width that
removes `--target` of the model's multiply-adds (or parameters) is found by counting the recipe's model at
candidate widths; the units that matter least go (export/structured.py); the pruned weights then fine-tune
through the one training loop with the run's own recipe at the new widths (a hook starts training from them),
written as a new, ordinary run. Before, after, and after + int8 are measured on the test split: parameters,
multiply-adds, file size, CPU latency through PyTorch and ONNX Runtime, accuracy with its 95% interval and
the paired test of the difference (prune.json, printed)."""

from __future__ import annotations

import copy
import logging
import math
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

from honed import runfiles
from honed.errors import UserError
from honed.export.structured import CRITERIA, Widths, kept, prune_model, torch_pruning, widths_of
from honed.files import Written
from honed.training import Hook
from honed.training.hooks import Deadline

log = logging.getLogger("honed")

BY = ("macs", "params")
ONNX_COLUMNS = ("ONNX Runtime ms, batch 1", "ONNX Runtime ms, batch 64")


class StartFrom(Hook):
    """Training starts from these weights instead of fresh ones (the pruned network, to fine-tune); a bag's
    members each from their own (`states[i]` for member i: each fine-tunes on the rows it trained on before)."""

    every_member = True

    def __init__(self, states: list[dict]) -> None:
        self.states = states

    def on_fit_start(self, trainer) -> None:
        trainer.model.load_state_dict(self.states[trainer.member])


class KeepZeros(StartFrom):
    """StartFrom, then after every optimizer step the pruned weights are put back to zero."""

    def __init__(self, states: list[dict], masks: list[dict[str, torch.Tensor]]) -> None:
        super().__init__(states)
        self.masks = masks

    def on_step_end(self, trainer, loss) -> None:
        masks = self.masks[trainer.member]
        with torch.no_grad():
            for name, parameter in trainer.model.named_parameters():
                if name in masks:
                    parameter.mul_(masks[name])


def members(model: nn.Module) -> list[nn.Module]:
    """A bag's members (model.bags > 1: each is pruned and fine-tuned as a model of its own), or the model."""
    from honed.models.bagged import Bagged

    return list(model.members) if isinstance(model, Bagged) else [model]


def zero_smallest(model: nn.Module, share: float) -> dict[str, torch.Tensor]:
    """Set `share` of the weights of every Linear and convolution to zero, smallest magnitude first across
    layers (torch.nn.utils.prune's global L1), made permanent; answers each weight's 0/1 mask by name."""
    from torch.nn.utils import prune as masks

    layers = [(m, "weight") for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d))]
    masks.global_unstructured(layers, pruning_method=masks.L1Unstructured, amount=share)
    for module, name in layers:
        masks.remove(module, name)
    return {name: (p != 0).to(p.dtype) for name, p in model.named_parameters()
            if name.endswith("weight") and p.dim() > 1}


def described(before: Widths, after: Widths) -> str:
    """e.g. 'model.hidden [64, 64] → [32, 32]'."""
    return "; ".join(f"model.{key} {before[key]} → {after[key]}" for key in before)


def check_target(target: float, by: str, criterion: str) -> None:
    if not (isinstance(target, (int, float)) and math.isfinite(target) and 0 < target < 1):
        raise UserError(f"--target {target}: give the share of the model to take out, above 0 and below 1 (e.g. 0.5)")
    if by not in BY:
        raise UserError(f"--by {by!r}: choose {' or '.join(BY)}")
    if criterion not in CRITERIA:
        raise UserError(f"--criterion {criterion!r}: choose {', '.join(CRITERIA)}")


def cost(model: nn.Module, example: torch.Tensor) -> tuple[int, int]:
    """(multiply-adds per example, parameters), counted by Torch-Pruning on one example."""
    macs, params = torch_pruning().utils.count_ops_and_params(model.eval(), example[:1])
    return int(macs), int(params)


def cost_at(spec, shape, model: nn.Module, example: torch.Tensor, by: str):
    """A function: widths -> the model's multiply-adds (or parameters) at those widths. The recipe's model is
    built at them; a pretrained encoder (not read again from disk for each count) is a copy narrowed to them."""
    from honed.models import build_model

    index = 0 if by == "macs" else 1
    if spec.name == "transformer":
        from honed.models.transformer import narrow_to

        def counted(widths: Widths) -> int:
            smaller = copy.deepcopy(model)
            for member in members(smaller):
                narrow_to(member.base, widths["attention_heads"], widths["ffn_width"])
            return cost(smaller, example)[index]
        return counted
    return lambda widths: cost(build_model(spec.model_copy(update=widths), shape), example)[index]


def share_for(target: float, widths: Widths, counted) -> float:
    """The share of every width whose removal takes closest to `target` of the model's cost (`counted`) away.
    The cost falls as the share grows (widths move in steps: multiples of 8), so a bisection over shares of
    1-99% finds it in a few counts."""
    whole = counted(widths)
    removed: dict[str, float] = {}

    def removed_at(step: int) -> float:
        smaller = kept(widths, step / 100)
        if repr(smaller) not in removed:
            removed[repr(smaller)] = 1 - counted(smaller) / whole
        return removed[repr(smaller)]

    low, high = 1, 99
    while low < high:
        middle = (low + high) // 2
        if removed_at(middle) < target:
            low = middle + 1
        else:
            high = middle
    return min((max(low - 1, 1), low), key=lambda step: (abs(removed_at(step) - target), step)) / 100


def epochs_within(budget: float, source, cost_share: float) -> int:
    """Fine-tuning epochs that fit `budget` seconds: the source run's seconds per epoch (every bag member's
    epochs counted) scaled by the pruned model's share of its multiply-adds, at least one."""
    summary = source.summary
    seconds = float((summary.get("timing") or {}).get("training") or 0.0)
    epochs = sum(m.get("epochs", 0) for m in summary.get("bags") or []) or summary.get("epochs_run") or 1
    members = len(summary.get("bags") or []) or 1
    per_epoch = seconds / max(epochs, 1) * members * max(cost_share, 0.05)  # one epoch of every member
    return max(1, min(10_000, int(budget / per_epoch))) if per_epoch > 0 else 1


def prune(run_dir, *, target: float = 0.5, by: str = "macs", criterion: str = "magnitude",
          finetune_epochs: int | None = None, out=None, rows: int = 2000, structured: bool = True,
          distill: bool = False, rounds: int = 1, budget: float | None = None) -> Written:
    """Structured: the recipe's model at smaller widths (faster). `structured=False`: the same model with
    `target` of its weights set to zero (smallest magnitude, across layers) and kept at zero while it
    fine-tunes — sparsity that compresses, but the shapes, and so the speed, stay as they were. `distill`:
    fine-tuning also follows the unpruned model's softened outputs (honed distill's loss, the source as the
    teacher), so the smaller model learns what the larger one answers, not only the labels. `rounds`: the
    target reached in that many prune-then-fine-tune steps, each taking the same share of what is left (the
    network recovers between cuts). `budget`: seconds for all fine-tuning, its epochs chosen to fit them."""
    from honed.api import Run

    check_target(target, by, criterion)
    if finetune_epochs is not None and not 1 <= finetune_epochs <= 10_000:
        raise UserError(f"--finetune-epochs {finetune_epochs}: give 1 to 10,000")
    if not (isinstance(rounds, int) and 1 <= rounds <= 20):
        raise UserError(f"--rounds {rounds}: give 1 to 20")
    if budget is not None and not (math.isfinite(budget) and 0 < budget <= 7 * 86_400):
        raise UserError(f"--budget {budget}: give the seconds fine-tuning may take, above 0 (at most a week)")
    if budget is not None and finetune_epochs is not None:
        raise UserError("--budget and --finetune-epochs both say how long to fine-tune: give one")
    if not structured and by != "params":
        raise UserError("--structured false sets weights to zero: multiply-adds stay as they were; use --by params")
    source = Run.open(run_dir)
    loaded = source.load()
    if loaded.recipe.model.members:
        raise UserError(f"{source.path}: an ensemble of {len(loaded.recipe.model.members)} runs (model.members) is "
                        "not fine-tuned again, which pruning needs: prune one of its runs (summary.json's "
                        "'ensemble' lists them)")
    if distill and len(members(loaded.model)) > 1:
        raise UserError(f"--distill: this run is a bag of {len(members(loaded.model))} models (model.bags), each "
                        "fine-tuned on its own folds; distillation trains one model: prune without --distill")
    teacher = None
    if distill:
        from honed.training.distill import Teacher

        teacher = Teacher(source.path, loaded)  # every round follows the unpruned model
        log.info(f"prune: fine-tuning follows the unpruned model's outputs (temperature {teacher.temperature:g}, "
                 f"alpha {teacher.alpha:g})")
    widths = widths_of(loaded.recipe.model, loaded.model) if structured else None
    # each round takes the same share of what is left: (1 - step)^rounds = 1 - target; unstructured zeros add up
    step = 1 - (1 - target) ** (1 / rounds)
    current, steps = source, []
    with tempfile.TemporaryDirectory(prefix="honed-prune-") as scratch:
        for r in range(rounds):
            last = r == rounds - 1
            share_now = step if structured else target * (r + 1) / rounds
            run, details = prune_once(current, share_now, by, criterion, finetune_epochs, structured, teacher,
                                      budget / rounds if budget else None,
                                      out if last else Path(scratch) / f"round-{r + 1}")
            steps.append(details)
            if rounds > 1:
                log.info(f"prune: round {r + 1} of {rounds} done ({details['changed'] or details['share']})")
            current = Run.open(run.path)
        example = details.pop("example")
        for d in steps:
            d.pop("example", None)
        report = compare(source, run, example, rows) | {
            "target": target, "by": by, "criterion": criterion, "structured": structured,
            "share_of_each_width": steps[0]["share"] if rounds == 1 else None,
            "widths": {"before": widths, "after": details["widths"]},
            "widths_changed": described(widths, details["widths"]) if structured else None,
            "finetune_epochs": sum(d["epochs"] for d in steps), "rounds": steps, "budget_seconds": budget,
            "source": str(source.path),
            "distilled": {"temperature": teacher.temperature, "alpha": teacher.alpha} if teacher else None}
    from honed.run import write_json

    write_json(run.path / runfiles.PRUNE_REPORT, report)
    from honed.report import write_report

    write_report(run.path)
    return Written(report | {"path": str(run.path)})


def prune_once(source, share_or_target: float, by: str, criterion: str, finetune_epochs: int | None,
               structured: bool, teacher, budget: float | None, out):
    """One round: prune `source` (structured: widths that take `share_or_target` of its cost away; else that
    share of its weights to zero), then fine-tune it through the loop as a new run at `out`. Answers (the run,
    what the round did)."""
    from honed.api import train
    from honed.data import build_data
    from honed.models import Shape
    from honed.recipe import variant

    began = time.perf_counter()
    recipe, model, _ = source.load()
    bundle = build_data(recipe.data)
    example = bundle.train.x[:2]
    pruned = copy.deepcopy(model)
    name = recipe.name if recipe.name.endswith("-pruned") else f"{recipe.name}-pruned"
    # fine-tuning starts from trained weights: no warmup (a 1-epoch run could not hold one anyway)
    changes: dict = {"train.steps": None, "name": name, "train.report": False, "schedule.warmup_epochs": 0}
    widths = new = None
    if structured:
        widths = widths_of(recipe.model, model)
        counted = cost_at(recipe.model, Shape.of(bundle), model, example, by)
        share = share_for(share_or_target, widths, counted)
        loss_of = None
        if criterion == "taylor":  # first-order importance: |weight x gradient| on a training batch
            from honed.training import build_loss

            loss_fn = build_loss(recipe.loss, bundle.task)
            loss_of = lambda m: loss_fn(m(bundle.train.x[:512]), bundle.train.y[:512])  # noqa: E731
        new = prune_model(pruned, recipe.model, share, example, criterion, loss_of)
        changes |= {f"model.{key}": value for key, value in new.items()}
        if recipe.model.adapter is not None:  # the pruned weights are no longer the pretrained ones it sat on
            changes["model.adapter"] = None
            log.info("prune: the run's adapter is merged into the pruned weights, which fine-tune whole")
        hooks: list[Hook] = [StartFrom([member.state_dict() for member in members(pruned)])]
        left = cost(pruned, example)[0] / max(cost(model, example)[0], 1)
    else:
        share, left = share_or_target, 1.0
        masks = [zero_smallest(member, share) for member in members(pruned)]  # each member its own share
        hooks = [KeepZeros([member.state_dict() for member in members(pruned)], masks)]
    if budget is not None:
        budget = max(0.0, budget - (time.perf_counter() - began))  # pruning's own time counts
        epochs = epochs_within(budget, source, left)
        hooks.append(Deadline(budget, "honed prune's --budget ran out", len(members(model))))
    else:
        epochs = finetune_epochs if finetune_epochs is not None else max(1, round(recipe.train.epochs / 4))
    changes["train.epochs"] = epochs
    changed = described(widths, new) if structured else None
    log.info(f"prune: {changed} ({criterion})" if structured else
             f"prune: {share:.0%} of the weights set to zero (no speed-up: the shapes stay), kept zero while it "
             "fine-tunes")
    log.info(f"prune: {epochs} epoch(s) of fine-tuning{f' (--budget: {budget:.0f} s)' if budget is not None else ''}")
    run = train(variant(recipe, changes), out=out, hooks=hooks, objective=teacher)
    return run, {"share": share, "widths": new, "changed": changed, "epochs": epochs,
                 "stopped": run.summary.get("stop_reason"), "seconds": round(time.perf_counter() - began, 2),
                 "example": example}


def compare(source, pruned, example: torch.Tensor, rows: int) -> dict:
    """Before, after, and after + int8 on the same test rows: size, speed, accuracy, the paired difference."""
    from honed.evaluation import metric_names, outputs_of, score_outputs
    from honed.evaluation.significance import versus
    from honed.export.quantize import latency_ms, state_bytes, torch_int8
    from honed.training import build_loss

    before, after = source.load(), pruned.load()
    split = source.test_split(before)
    x, y = split.x, split.y  # accuracy on the whole test split; latency on a seeded sample of `rows` of it
    timed = x[torch.randperm(len(x), generator=torch.Generator().manual_seed(0))[:rows]]
    task, pre = before.pre.task, before.pre
    names, loss_fn = metric_names([], task), build_loss(before.recipe.loss, task)
    metric = "rmse" if task == "regression" else "accuracy"
    rows_out, outputs = [], {}
    versions = [("before", before.model, before), ("pruned", after.model, after),
                ("pruned + int8", torch_int8(after.model), None)]
    with torch.inference_mode():
        for name, model, loaded in versions:
            outputs[name] = scores = outputs_of(model, x).float()
            scored = score_outputs(scores, y, task, loss_fn, names, pre.output_dim,
                                   pre.unscale if task == "regression" else None, with_intervals=True)
            counted = loaded is not None  # int8 modules are not counted by Torch-Pruning, nor exported here
            macs, params = cost(model, example) if counted else (None, None)
            row = {"version": name, "params": params, "MACs": macs,
                   "nonzero": sum(int((p != 0).sum()) for p in model.parameters()) if counted else None,
                   "weights MB": state_bytes(model) / 1e6, "torch ms, batch 1": latency_ms(model, timed, 1),
                   "torch ms, batch 64": latency_ms(model, timed, 64)}
            row |= onnx_latency(loaded, timed) if counted else dict.fromkeys(ONNX_COLUMNS)
            rows_out.append(row | {f"test {metric}": scored[metric], "95% interval": scored.get("ci95", {}).get(metric)})
        ort_int8 = onnx_int8_version(after, x, timed)  # ONNX Runtime's int8 takes convolutions too
        if ort_int8 is not None:
            scored = score_outputs(ort_int8.pop("scores"), y, task, loss_fn, names, pre.output_dim,
                                   pre.unscale if task == "regression" else None, with_intervals=True)
            rows_out.append({"version": "pruned + ONNX Runtime int8", "params": None, "MACs": None, "nonzero": None}
                            | ort_int8 | {f"test {metric}": scored[metric],
                                          "95% interval": scored.get("ci95", {}).get(metric)})
    base, smaller = rows_out[0], rows_out[1]
    speed = {kind: base[kind] / smaller[kind] for kind in ("torch ms, batch 1", "torch ms, batch 64", *ONNX_COLUMNS)
             if base.get(kind) and smaller.get(kind)}
    return {"rows": len(x), "timed_rows": len(timed), "versions": rows_out, "speed_up": speed,
            "pruned_vs_before": versus((outputs["before"], y), (outputs["pruned"], y), task)}


def onnx_int8_version(loaded, x: torch.Tensor, timed: torch.Tensor) -> dict | None:
    """The pruned run exported and quantized by ONNX Runtime (dynamic int8: MatMul and Conv weights): its file size,
    milliseconds per example, and its outputs on all of `x`; None (with a warning) where it cannot be made."""
    try:
        from honed.export.onnx import export_loaded
        from honed.export.predictor import OnnxPredictor
        from honed.export.quantize import latency_ms, onnx_int8

        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp) / runfiles.ONNX_DIR
            export_loaded(loaded, folder, x[:256])
            onnx_int8(folder / runfiles.ONNX_MODEL, folder / runfiles.ONNX_INT8)
            scores = OnnxPredictor(folder, runfiles.ONNX_INT8).scores
            return {"weights MB": (folder / runfiles.ONNX_INT8).stat().st_size / 1e6,
                    "torch ms, batch 1": None, "torch ms, batch 64": None,
                    **dict(zip(ONNX_COLUMNS, (latency_ms(scores, timed, 1), latency_ms(scores, timed, 64)))),
                    "scores": torch.cat([scores(x[i:i + 1024]) for i in range(0, len(x), 1024)]).float()}
    except (UserError, ImportError) as e:
        log.warning(f"prune: no ONNX Runtime int8 version ({str(e).splitlines()[0]})")
        return None


def onnx_latency(loaded, x: torch.Tensor) -> dict:
    """ONNX Runtime milliseconds per example at batch 1 and 64, from a bundle exported to a scratch folder."""
    try:
        from honed.export.onnx import export_loaded
        from honed.export.predictor import OnnxPredictor
        from honed.export.quantize import latency_ms

        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp) / runfiles.ONNX_DIR
            export_loaded(loaded, folder, x[:256])
            scores = OnnxPredictor(folder).scores
            return dict(zip(ONNX_COLUMNS, (latency_ms(scores, x, 1), latency_ms(scores, x, 64))))
    except (UserError, ImportError) as e:
        log.warning(f"prune: no ONNX Runtime timing ({str(e).splitlines()[0]})")
        return dict.fromkeys(ONNX_COLUMNS)
