"""Pictures of the search tools: the range test, a study, a comparison of runs."""

from __future__ import annotations

import math
import re
from pathlib import Path

from honed.files import atomic_write
from honed.run.plots import validated


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=100, format="png"))
    _pyplot().close(fig)
    return path


def plot_lr_find(finding, path: Path, title: str = "") -> Path:
    """Loss against learning rate (log scale) for each seed, raw and smoothed, with the suggestion marked."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 5))
    for sweep in finding.sweeps:
        line, = ax.plot(sweep.lrs, sweep.losses, alpha=0.25, linewidth=1)
        if sweep.smoothed:
            ax.plot(sweep.lrs, sweep.smoothed, color=line.get_color(), label=f"seed {sweep.seed} (smoothed)")
        if sweep.minimum_lr:
            ax.axvline(sweep.minimum_lr, color=line.get_color(), linestyle=":", linewidth=1)
    if finding.suggestion:
        ax.axvline(finding.suggestion, color="black", linestyle="--",
                   label=f"suggested lr {finding.suggestion:.3g} ({finding.confidence} confidence)")
    ax.set_xscale("log")
    smoothed = [v for s in finding.sweeps for v in s.smoothed]
    if smoothed:  # keep the diverging tail from flattening the interesting part
        low, high = min(smoothed), max(s.smoothed[0] for s in finding.sweeps if s.smoothed)
        ax.set_ylim(low - 0.1 * (high - low), high + 0.3 * (high - low))
    ax.set(xlabel="learning rate", ylabel="training loss", title=title or "learning-rate range test")
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    fig.tight_layout()
    return _save(fig, path)


def plot_study(rows: list[dict], curves: dict[int, list[dict]], importances: dict[str, float], metric: str,
               maximize: bool, path: Path, title: str = "") -> Path:
    """Optimization history, parameter importance and the learning curves of the best trials."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(17, 4.5))
    ax = axes[0]
    done = sorted((r for r in rows if r["state"] == "COMPLETE"), key=lambda r: r["trial"])
    stopped = [r for r in rows if r["state"] == "PRUNED" and r["value"] is not None]
    ax.scatter([r["trial"] for r in done], [r["value"] for r in done], label="finished", zorder=3)
    ax.scatter([r["trial"] for r in stopped], [r["value"] for r in stopped], marker="x", color="grey",
               label="pruned (last value)")
    best, line = None, []
    for r in done:
        if best is None or (r["value"] > best if maximize else r["value"] < best):
            best = r["value"]
        line.append(best)
    ax.step([r["trial"] for r in done], line, where="post", color="black", label="best so far")
    ax.set(title="optimization history", xlabel="trial", ylabel=metric)
    ax.legend()
    ax = axes[1]
    if importances:
        names = list(importances)[::-1]
        ax.barh(names, [importances[n] for n in names])
        ax.set(title="parameter importance", xlabel="importance (Optuna, sums to 1)")
    else:
        ax.text(0.5, 0.5, "needs two or more finished trials\nthat differ", ha="center", va="center")
        ax.set(title="parameter importance")
    ax = axes[2]
    for number, curve in curves.items():
        ax.plot([p["epoch"] for p in curve], [p["value"] for p in curve], marker=".", label=f"trial {number}")
    ax.set(title="learning curves of the best trials", xlabel="epoch", ylabel=metric)
    if curves:
        ax.legend()
    for a in axes:
        a.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path)


def _spans_decades(values: list) -> bool:
    """Positive values over more than two decades read better on a log axis."""
    finite = [v for v in values if isinstance(v, (int, float)) and math.isfinite(v)]
    return bool(finite) and min(finite) > 0 and max(finite) / min(finite) > 100


def plot_comparison(runs: list[dict], metric: str, path: Path, title: str = "") -> Path:
    """Loss and validation `metric` of every run, by epoch and by training seconds (2 x 2 panels)."""
    plt = _pyplot()
    fig, axes = plt.subplots(2, 2, figsize=(14, 9), sharey="row")
    for run in runs:
        history = run["history"]
        if not history:
            continue
        for col, x_key in enumerate(("epoch", "seconds")):
            xs = [r[x_key] for r in history]
            line, = axes[0][col].plot(xs, [r["train_loss"] for r in history], label=f"{run['label']} train")
            if any("val_loss" in r for r in history):
                axes[0][col].plot(*validated(history, "val_loss", x_key), linestyle="--", color=line.get_color(),
                                  label=f"{run['label']} validation")
            if any(metric in r for r in history):
                axes[1][col].plot(*validated(history, metric, x_key), color=line.get_color(), label=run["label"])
    for col, x_label in enumerate(("epoch", "training seconds")):
        axes[0][col].set(title=f"loss by {x_label} (solid: train, dashed: validation)", xlabel=x_label)
        axes[1][col].set(title=f"{metric} by {x_label}", xlabel=x_label)
        for row, key in enumerate(("train_loss", metric)):
            if _spans_decades([r.get(key) for run in runs for r in run["history"]]):
                axes[row][col].set_yscale("log")
        for row in (0, 1):
            axes[row][col].grid(alpha=0.3)
    axes[1][0].legend(fontsize="small")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path)


def plot_folds(histories: dict[str, list[dict]], path: Path, title: str = "") -> Path:
    """Training and validation loss, and the first validation metric, of every fold by epoch, overlaid."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(14, 4.5))
    metrics = [k for h in histories.values() for k in (h[-1] if h else {}) if k.startswith("val_") and k != "val_loss"]
    metric = metrics[0] if metrics else None
    for label, history in histories.items():
        if not history:
            continue
        epochs = [r["epoch"] for r in history]
        line, = axes[0].plot(epochs, [r["train_loss"] for r in history], alpha=0.6, label=f"{label} train")
        if any("val_loss" in r for r in history):
            axes[0].plot(*validated(history, "val_loss"), linestyle="--", color=line.get_color())
        if metric and any(metric in r for r in history):
            axes[1].plot(*validated(history, metric), marker=".", color=line.get_color(), label=label)
    axes[0].set(title="loss by epoch (solid: train, dashed: validation fold)", xlabel="epoch")
    axes[1].set(title=f"{metric or 'validation metric'} by epoch", xlabel="epoch")
    for a in axes:
        a.grid(alpha=0.3)
    axes[1].legend(fontsize="small")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path)


def plot_privacy_utility(rows: list[dict], path: Path) -> Path:
    """Each private run's test accuracy (or first test metric) against the epsilon it spent, with its 95%
    interval; a run that is not private as a dashed line: what privacy costs."""
    plt = _pyplot()
    metric = next((k for k in ("test accuracy", "test r2", "test mse") if any(k in r for r in rows)), None)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    private = sorted((r for r in rows if "epsilon" in r and r.get(metric) is not None), key=lambda r: r["epsilon"])
    if private:
        ys = [r[metric] for r in private]
        bounds = [tuple(map(float, re.findall(r"-?\d[\d.]*(?:e[-+]?\d+)?", r[f"{metric} 95% CI"])))
                  if r.get(f"{metric} 95% CI") else (y, y) for r, y in zip(private, ys)]
        ax.errorbar([r["epsilon"] for r in private], ys, yerr=[[max(0.0, y - lo) for y, (lo, _) in zip(ys, bounds)],
                                                              [max(0.0, hi - y) for y, (_, hi) in zip(ys, bounds)]],
                    marker="o", capsize=4, label="private (95% CI)")
        ax.set_xscale("log")
    for r in rows:
        if "epsilon" not in r and r.get(metric) is not None:
            ax.axhline(r[metric], linestyle="--", color="grey", label=f"not private: {r['run']}")
    ax.set(xlabel="epsilon spent (log scale)", ylabel=metric, title=f"privacy against {metric}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    fig.tight_layout()
    return _save(fig, path)
