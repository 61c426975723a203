"""The report's content, read from a run directory's files: one function per section, each returning
plain values for the template (or None when the run has nothing for it)."""

from __future__ import annotations

import base64
import datetime as dt
from pathlib import Path

import numpy as np

from honed.evaluation.metrics import SHARES
from honed.report.evidence import load_mistakes, load_test_outputs
from honed.run import CURVES, RECIPE, read_json, read_metrics, read_summary
from honed import runfiles



def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def number(value, name: str = "") -> str:
    """A metric as people read it: shares as percentages, other values to four significant digits."""
    if value is None or isinstance(value, (list, dict)):
        return ""
    if name in SHARES:
        return f"{100 * value:.2f}%"
    return f"{value:.4g}"


def read_optional_json(path: Path):
    try:
        return read_json(path) if path.is_file() else None
    except ValueError:
        return None


def header(run_dir: Path, summary: dict, history: list[dict]) -> dict:
    status = ("finished: " + summary["stop_reason"]) if summary else (
        f"not finished: stopped after epoch {history[-1]['epoch']}" if history else "not finished: no epoch recorded")
    made = (run_dir / RECIPE).stat().st_mtime
    return {"run": run_dir.name, "path": str(run_dir), "name": summary.get("name", run_dir.name),
            "task": summary.get("task", ""), "status": status,
            "when": dt.datetime.fromtimestamp(made).strftime("%Y-%m-%d %H:%M"),
            "device": summary.get("device", ""), "workers": summary.get("workers", 1),
            "seconds": summary.get("total_seconds"), "epochs": summary.get("epochs_run", len(history)),
            "best_epoch": summary.get("best_epoch"), "params": summary.get("params"),
            "trainable_params": summary.get("trainable_params"), "privacy": summary.get("privacy")}


def metrics(summary: dict) -> list[dict]:
    """One row per metric: validation and test values, the test's 95% interval."""
    test, val = summary.get("test") or {}, summary.get("val") or {}
    names = [n for n in dict.fromkeys([*test, *val]) if n not in ("ci95", "confusion_matrix")]
    rows = []
    for name in names:
        ci = (test.get("ci95") or {}).get(name)
        rows.append({"name": name, "val": number(val.get(name), name), "test": number(test.get(name), name),
                     "ci": f"{number(ci[0], name)} – {number(ci[1], name)}" if ci else ""})
    return rows


def confusion(summary: dict) -> dict | None:
    matrix = (summary.get("test") or {}).get("confusion_matrix")
    labels = summary.get("labels")
    if not matrix or not labels:
        return None
    rows = []
    for name, counts in zip(labels, matrix):
        total = sum(counts) or 1
        rows.append({"label": name, "cells": [{"count": c, "share": c / total} for c in counts]})
    return {"labels": labels, "rows": rows}


def classifier(run_dir: Path, summary: dict) -> dict | None:
    from honed.evaluation.calibration import reliability
    from honed.evaluation.predict import class_probabilities
    from honed.report.figures import classifier_figure

    evidence = load_test_outputs(run_dir)
    labels = summary.get("labels")
    if evidence is None or not labels or summary.get("task") not in ("binary", "multiclass"):
        return None
    import torch

    outputs, targets = evidence
    probabilities = class_probabilities(torch.from_numpy(outputs).float(), summary["task"]).numpy()
    calibration = reliability(probabilities, targets)
    mistakes = [m | {"true_label": labels[m["true"]], "predicted_label": labels[m["predicted"]]}
                for m in load_mistakes(run_dir) if 0 <= m.get("true", -1) < len(labels)
                and 0 <= m.get("predicted", -1) < len(labels)]
    return {"figure": data_uri(classifier_figure(probabilities, targets, labels, calibration)),
            "ece": calibration.ece, "rows": int(len(targets)), "mistakes": mistakes}


def regression(run_dir: Path, summary: dict) -> dict | None:
    from honed.report.figures import regression_figure

    evidence = load_test_outputs(run_dir)
    if evidence is None or summary.get("task") != "regression":
        return None
    outputs, targets = evidence
    pre = read_optional_json(run_dir / runfiles.PREPROCESS) or {}
    mean, std = float(pre.get("target_mean", 0.0)), float(pre.get("target_std", 1.0))
    predicted, truth = outputs.reshape(-1) * std + mean, targets.reshape(-1) * std + mean  # the target's units
    return {"figure": data_uri(regression_figure(predicted, truth)),
            "rmse": float(np.sqrt(np.mean((predicted - truth) ** 2))), "rows": int(len(truth))}


def generations(summary: dict) -> list[dict] | None:
    """A causal LM's greedy completions of a few test prompts, before and after training (training/generations.py)."""
    shown = [g for g in summary.get("generations") or [] if isinstance(g, dict)]
    return [{k: str(g.get(k, "")) for k in ("prompt", "before", "after")} for g in shown] or None


def data(run_dir: Path, summary: dict) -> dict:
    pre = read_optional_json(run_dir / runfiles.PREPROCESS) or {}
    profile = pre.get("profile") or {}
    out = {"sizes": summary.get("sizes") or {}, "kind": pre.get("kind"), "text": None, "features": None,
           "constant": profile.get("constant") or [], "classes": None, "target": None}
    counts = (summary.get("data") or {}).get("class_counts")
    labels = summary.get("labels")
    if counts and labels:
        splits = list(counts)
        largest = max((c for split in counts.values() for c in split), default=1) or 1
        out["classes"] = {"splits": splits, "rows": [
            {"label": name, "cells": [{"count": counts[s][k], "share": counts[s][k] / max(sum(counts[s]), 1),
                                       "width": 10 * counts[s][k] / largest} for s in splits]}
            for k, name in enumerate(labels)]}
    out["target"] = (summary.get("data") or {}).get("target")
    if pre.get("kind") == "text" and profile.get("texts_measured"):
        out["text"] = profile
    elif profile.get("features"):
        out["features"] = profile["features"][:40]
        out["features_total"] = len(profile["features"])
    out["columns"] = profile.get("columns") or None  # a table's own columns: type, missing share, distinct values
    return out


def recipe(run_dir: Path) -> dict:
    from honed.recipe import load_recipe
    from honed.recipe.reference import changed_keys
    from honed.errors import UserError

    text = (run_dir / RECIPE).read_text(encoding="utf-8", errors="replace")
    try:
        changed = [{"key": k, "value": as_yaml(v), "default": as_yaml(d)}
                   for k, v, d in changed_keys(load_recipe(run_dir / RECIPE))]
    except UserError as e:  # a recipe this version no longer accepts: shown as it is
        changed = [{"key": "(recipe)", "value": str(e), "default": ""}]
    return {"text": text, "changed": changed}


def as_yaml(value) -> str:
    """A recipe value as the recipe file writes it (null, true, [a, b])."""
    import json

    return value if isinstance(value, str) else json.dumps(value)


def timing(summary: dict) -> list[dict]:
    parts = summary.get("timing") or {}
    total = sum(parts.values()) or 1.0
    return [{"part": k, "seconds": v, "share": v / total} for k, v in parts.items()]


def curves(run_dir: Path, summary: dict, history: list[dict]) -> str | None:
    """curves.png as written by the run, drawn now for a run that stopped before writing it."""
    from honed.run.plots import plot_curves

    path = run_dir / CURVES
    if not path.is_file() and history:
        plot_curves(history, path, title=summary.get("name", ""), best_epoch=summary.get("best_epoch"))
    return data_uri(path.read_bytes()) if path.is_file() else None


PRUNE_COLUMNS = ["version", "params", "MACs", "weights MB", "torch ms, batch 1", "torch ms, batch 64",
                 "ONNX Runtime ms, batch 1", "ONNX Runtime ms, batch 64", "test accuracy", "test rmse"]


def extras(run_dir: Path) -> dict:
    """What other commands left in the run folder: doctor findings, explanations, export and quantization."""
    doctor = read_optional_json(run_dir / runfiles.DOCTOR_JSON)
    explained = read_optional_json(run_dir / runfiles.EXPLAIN_DIR / runfiles.EXPLAIN_JSON)
    exported = read_optional_json(run_dir / runfiles.ONNX_DIR / runfiles.ONNX_BUNDLE)
    quantized = read_optional_json(run_dir / runfiles.QUANTIZED_DIR / runfiles.QUANTIZED_REPORT)
    pruned = read_optional_json(run_dir / runfiles.PRUNE_REPORT)
    out = {"doctor": None, "explain": None, "export": exported, "quantize": None, "prune": None}
    if isinstance(pruned, dict) and isinstance(pruned.get("versions"), list):
        versions = [v for v in pruned["versions"] if isinstance(v, dict)]
        shown = [c for c in PRUNE_COLUMNS if any(v.get(c) is not None for v in versions)]
        out["prune"] = {"source": pruned.get("source"), "widths": pruned.get("widths_changed"), "difference":
                        pruned.get("pruned_vs_before"), "columns": shown,
                        "rows": [[v.get(c) for c in shown] for v in versions]}
    if isinstance(doctor, dict):
        out["doctor"] = [f for f in doctor.get("findings", []) if isinstance(f, dict)]
    if isinstance(explained, dict) and explained.get("kind") == "text":
        from honed.report.shading import shaded

        items = [it for it in explained.get("items", []) if isinstance(it, dict) and "attributions" in it][:3]
        out["explain"] = [{"prediction": it.get("prediction"), "words": shaded(it)} for it in items]
    if isinstance(quantized, dict):
        out["quantize"] = {"chosen": quantized.get("chosen"), "rows": [
            {"version": v.get("version"), **{k: v.get(k) for k in ("bytes", "ms per example (batch 1)",
                                                                  "ms per example (batch 64)", "speed-up (batch 1)")},
             "metric": next((f"{k.removeprefix('test ')} {number(val, k.removeprefix('test '))}"
                             for k, val in v.items() if k.startswith("test ")), "")}
            for v in quantized.get("versions", []) if isinstance(v, dict)]}
    return out


def context(run_dir: Path) -> dict:
    summary, history = read_summary(run_dir), read_metrics(run_dir)
    return {"h": header(run_dir, summary, history), "metrics": metrics(summary), "confusion": confusion(summary),
            "classifier": classifier(run_dir, summary), "regression": regression(run_dir, summary),
            "generations": generations(summary),
            "data": data(run_dir, summary), "recipe": recipe(run_dir), "timing": timing(summary),
            "curves": curves(run_dir, summary, history), "extras": extras(run_dir), "number": number}
