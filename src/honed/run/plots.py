"""Learning curves: loss, validation metrics, learning rate and gradient norm per epoch, in one PNG.

The loss panel carries a second axis in training seconds (the same curve read against time), and the
best epoch is marked on every panel; the run report embeds this file rather than drawing it again.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from honed.files import atomic_write


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def validated(history: list[dict], key: str, x: str = "epoch") -> tuple[list, list]:
    """(x, value) of the epochs that measured `key` (train.val_every skips validation on others)."""
    kept = [r for r in history if r.get(key) is not None and r.get(x) is not None]
    return [r[x] for r in kept], [r[key] for r in kept]


def plot_curves(history: list[dict], path: Path, title: str = "", best_epoch: int | None = None) -> Path | None:
    history = [r for r in history if "epoch" in r and "train_loss" in r]
    if not history:
        return None
    plt = pyplot()
    epochs = [r["epoch"] for r in history]
    metric_keys = [k for k in history[-1] if k.startswith("val_") and k != "val_loss"]  # (the last is validated)
    fig, axes = plt.subplots(1, 4, figsize=(18, 3.8))
    ax = axes[0]
    ax.plot(epochs, [r["train_loss"] for r in history], label="train")
    if any("val_loss" in r for r in history):
        ax.plot(*validated(history, "val_loss"), label="validation", marker="." if len(history) < 40 else None)
    ax.set(title="loss", xlabel="epoch")
    if min(r["train_loss"] for r in history) > 0 and len(epochs) > 20:
        ax.set_yscale("log")
    ax.legend()
    seconds_axis(ax, epochs, [r.get("seconds") for r in history])
    for key in metric_keys:
        axes[1].plot(*validated(history, key), label=key.removeprefix("val_"))
    axes[1].set(title="validation metrics", xlabel="epoch")
    if metric_keys:
        axes[1].legend()
    else:
        axes[1].text(0.5, 0.5, "no validation split", ha="center", va="center", color="grey",
                     transform=axes[1].transAxes)
    axes[2].plot(epochs, [r.get("lr", np.nan) for r in history])
    axes[2].set(title="learning rate", xlabel="epoch")
    axes[3].plot(epochs, [r.get("grad_norm", np.nan) for r in history])
    axes[3].set(title="gradient norm (end of epoch)", xlabel="epoch")
    for a in axes:
        a.grid(alpha=0.3)
        if best_epoch and best_epoch != epochs[-1]:
            a.axvline(best_epoch, color="grey", linestyle="--", linewidth=1)
    if best_epoch and best_epoch != epochs[-1]:
        axes[0].text(best_epoch, axes[0].get_ylim()[1], " best", va="top", color="grey")
    if title:
        fig.suptitle(title)
    # fixed margins rather than tight_layout, which draws the whole figure once more just to measure it
    fig.subplots_adjust(left=0.04, right=0.99, bottom=0.13, top=0.80 if title else 0.86, wspace=0.22)
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=90, format="png"))
    plt.close(fig)
    return path


def seconds_axis(ax, epochs: list[int], seconds: list) -> None:
    """A top axis in training seconds, when every epoch recorded its time and the times increase."""
    if len(epochs) < 2 or any(s is None for s in seconds):
        return
    e, s = np.asarray(epochs, dtype=float), np.asarray(seconds, dtype=float)
    if np.any(np.diff(s) <= 0) or np.any(np.diff(e) <= 0):
        return
    top = ax.secondary_xaxis("top", functions=(lambda x: np.interp(x, e, s), lambda x: np.interp(x, s, e)))
    top.tick_params(labelsize=7)
    ax.set_title("loss (top axis: training seconds)", pad=16)
