"""Learning curves: loss, validation metrics and learning rate per epoch, in one PNG."""

from __future__ import annotations

from pathlib import Path

from honed.run.files import atomic_write


def plot_curves(history: list[dict], path: Path, title: str = "", best_epoch: int | None = None) -> Path | None:
    if not history:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [r["epoch"] for r in history]
    metric_keys = [k for k in history[0] if k.startswith("val_") and k != "val_loss"]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    ax = axes[0]
    ax.plot(epochs, [r["train_loss"] for r in history], label="train")
    if "val_loss" in history[0]:
        ax.plot(epochs, [r["val_loss"] for r in history], label="validation")
    ax.set(title="loss", xlabel="epoch")
    if min(r["train_loss"] for r in history) > 0 and len(epochs) > 20:
        ax.set_yscale("log")
    ax.legend()
    for key in metric_keys:
        axes[1].plot(epochs, [r[key] for r in history], label=key.removeprefix("val_"))
    axes[1].set(title="validation metrics", xlabel="epoch")
    if metric_keys:
        axes[1].legend()
    axes[2].plot(epochs, [r["lr"] for r in history])
    axes[2].set(title="learning rate", xlabel="epoch")
    for a in axes:
        a.grid(alpha=0.3)
        if best_epoch and best_epoch != epochs[-1]:
            a.axvline(best_epoch, color="grey", linestyle="--", linewidth=1)
    if best_epoch and best_epoch != epochs[-1]:
        axes[0].text(best_epoch, axes[0].get_ylim()[1], " best", va="top", color="grey")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=100, format="png"))
    plt.close(fig)
    return path
