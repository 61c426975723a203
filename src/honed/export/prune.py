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
from pathlib import Path

import torch
from torch import nn

from honed import runfiles
from honed.errors import UserError
from honed.export.structured import CRITERIA, WIDTH_KEYS, kept_widths, prune_model, recipe_widths, torch_pruning
from honed.files import Written
from honed.training import Hook

log = logging.getLogger("honed")

BY = ("macs", "params")
ONNX_COLUMNS = ("ONNX Runtime ms, batch 1", "ONNX Runtime ms, batch 64")


class StartFrom(Hook):
    """Training starts from these weights instead of fresh ones (the pruned network, to fine-tune)."""

    def __init__(self, state: dict) -> None:
        self.state = state

    def on_fit_start(self, trainer) -> None:
        trainer.model.load_state_dict(self.state)


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


def share_for(target: float, by: str, spec, shape, example: torch.Tensor) -> float:
    """The share of every width whose removal takes `target` of the model's MACs (or parameters) away: a
    bisection over models built at the candidate widths (small, counted once each)."""
    from honed.models import build_model

    key = WIDTH_KEYS[spec.name]
    index = 0 if by == "macs" else 1
    whole = cost(build_model(spec, shape), example)[index]
    low, high = 0.0, 0.99
    for _ in range(20):
        middle = (low + high) / 2
        smaller = spec.model_copy(update={key: kept_widths(getattr(spec, key), middle)})
        removed = 1 - cost(build_model(smaller, shape), example)[index] / whole
        low, high = (middle, high) if removed < target else (low, middle)
    return high


def prune(run_dir, *, target: float = 0.5, by: str = "macs", criterion: str = "magnitude",
          finetune_epochs: int | None = None, out=None, rows: int = 2000) -> Written:
    from honed.api import Run, train
    from honed.data import build_data
    from honed.models import Shape
    from honed.recipe import variant

    check_target(target, by, criterion)
    source = Run.open(run_dir)
    loaded = source.load()
    recipe, model, pre = loaded
    widths = recipe_widths(recipe.model)
    bundle = build_data(recipe.data)
    shape = Shape.of(bundle)
    example = bundle.train.x[:2]
    share = share_for(target, by, recipe.model, shape, example)
    pruned = copy.deepcopy(model)
    loss_of = None
    if criterion == "taylor":  # first-order importance: |weight x gradient| on a training batch
        from honed.training import build_loss

        loss_fn = build_loss(recipe.loss, bundle.task)
        loss_of = lambda m: loss_fn(m(bundle.train.x[:512]), bundle.train.y[:512])  # noqa: E731
    new = prune_model(pruned, recipe.model, share, example, criterion, loss_of)
    key = WIDTH_KEYS[recipe.model.name]
    epochs = finetune_epochs if finetune_epochs is not None else max(1, round(recipe.train.epochs / 4))
    if not 1 <= epochs <= 10_000:
        raise UserError(f"--finetune-epochs {epochs}: give 1 to 10,000")
    log.info(f"prune: model.{key} {widths} -> {new} ({criterion}), then {epochs} epoch(s) of fine-tuning")
    smaller = variant(recipe, {f"model.{key}": new, "train.epochs": epochs, "train.steps": None,
                               "name": f"{recipe.name}-pruned", "train.report": False})
    run = train(smaller, out=out, hooks=[StartFrom(pruned.state_dict())])
    report = compare(source, run, example, rows) | {"target": target, "by": by, "criterion": criterion,
                                                     "share_of_each_width": share, "widths": {"before": widths,
                                                                                              "after": new},
                                                     "finetune_epochs": epochs, "source": str(source.path)}
    from honed.run import write_json

    write_json(run.path / runfiles.PRUNE_REPORT, report)
    from honed.report import write_report

    write_report(run.path)
    return Written(report | {"path": str(run.path)})


def compare(source, pruned, example: torch.Tensor, rows: int) -> dict:
    """Before, after, and after + int8 on the same test rows: size, speed, accuracy, the paired difference."""
    from honed.evaluation import metric_names, score_outputs
    from honed.evaluation.significance import versus
    from honed.export.quantize import latency_ms, torch_int8
    from honed.training import build_loss

    rows_out, outputs = [], {}
    before, after = source.load(), pruned.load()
    split = source.test_split(before)
    x, y = split.x[:rows], split.y[:rows]
    task = before.pre.task
    versions = [("before", before.model, before), ("pruned", after.model, after),
                ("pruned + int8", torch_int8(after.model), None)]
    with torch.inference_mode():
        for name, model, loaded in versions:
            model.eval()
            scores = torch.cat([model(x[i: i + 512]).float() for i in range(0, len(x), 512)])
            outputs[name] = scores
            names = metric_names([], task)
            loss_fn = build_loss(before.recipe.loss, task)
            metrics = score_outputs(scores, y, task, loss_fn, names, before.pre.output_dim,
                                    before.pre.unscale if task == "regression" else None, with_intervals=True)
            metric = "accuracy" if "accuracy" in metrics else "rmse" if "rmse" in metrics else names[0]
            macs, params = cost(model, example) if loaded is not None else (None, None)
            row = {"version": name, "params": params, "MACs": macs, "weights MB": weights_bytes(model) / 1e6,
                   "torch ms, batch 1": latency_ms(model, x, 1), "torch ms, batch 64": latency_ms(model, x, 64)}
            row |= onnx_latency(loaded, x) if loaded is not None else dict.fromkeys(ONNX_COLUMNS)
            row |= {f"test {metric}": metrics[metric], "95% interval": metrics.get("ci95", {}).get(metric)}
            rows_out.append(row)
    difference = versus((outputs["before"], y), (outputs["pruned"], y), task)
    base, after = rows_out[0], rows_out[1]
    speed = {kind: base[kind] / after[kind] for kind in ("torch ms, batch 1", "torch ms, batch 64", *ONNX_COLUMNS[:2])
             if base.get(kind) and after.get(kind)}
    return {"rows": len(x), "versions": rows_out, "speed_up": speed, "pruned_vs_before": difference}


def weights_bytes(model: nn.Module) -> int:
    from honed.export.quantize import state_bytes

    return state_bytes(model)


def onnx_latency(loaded, x: torch.Tensor) -> dict:
    """ONNX Runtime milliseconds per example at batch 1 and 64, from a bundle exported to a scratch folder."""
    try:
        from honed.export.onnx import export_loaded
        from honed.export.predictor import OnnxPredictor
        from honed.export.quantize import latency_ms

        with tempfile.TemporaryDirectory() as tmp:
            export_loaded(loaded, Path(tmp) / "onnx", x[:256])
            scores = OnnxPredictor(Path(tmp) / "onnx").scores
            return dict(zip(ONNX_COLUMNS, (latency_ms(scores, x, 1), latency_ms(scores, x, 64))))
    except (UserError, ImportError) as e:
        log.warning(f"prune: no ONNX Runtime timing ({str(e).splitlines()[0]})")
        return dict.fromkeys(ONNX_COLUMNS)
