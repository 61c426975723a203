"""A model card per run (RUN_DIR/README.md), in the form Hugging Face model cards take: YAML metadata, then what
the model was trained on, how, how well (with intervals), how to use it, its limits, and the framework versions.
Written from the run's own recipe and summary; a private run's card says no more than its summary does."""

from __future__ import annotations

import platform
from pathlib import Path

from honed.files import write_text
from honed.runfiles import MODEL_CARD


def shown(name: str, value: float) -> str:
    return f"{100 * value:.2f}%" if name in ("accuracy", "f1", "precision", "recall", "auroc") else f"{value:.4g}"


def results(scores: dict) -> list[str]:
    """One line per metric, with its 95% interval when the run has one."""
    intervals = scores.get("ci95", {})
    lines = []
    for name, value in scores.items():
        if isinstance(value, (int, float)) and name != "loss":
            low_high = intervals.get(name)
            band = f" (95% CI {shown(name, low_high[0])} – {shown(name, low_high[1])})" if low_high else ""
            lines.append(f"| {name} | {shown(name, value)}{band} |")
    return lines


def card(recipe: dict, summary: dict, versions: dict[str, str]) -> str:
    data, model, optimizer = recipe.get("data", {}), recipe.get("model", {}), recipe.get("optimizer", {})
    sizes = summary.get("sizes", {})
    private = recipe.get("train", {}).get("privacy") is not None
    where = [f"{k} = `{data[k]}`" for k in ("path", "train", "test", "name") if data.get(k)]
    test = summary.get("test") or {}
    lines = [
        "---",
        "library_name: honed",
        f"tags: [honed, {summary.get('task', 'model')}, {model.get('name', 'model')}]",
        f"metrics: [{', '.join(k for k, v in test.items() if isinstance(v, (int, float)) and k != 'loss')}]",
        "---",
        "",
        f"# {summary.get('name', recipe.get('name', 'run'))}",
        "",
        f"A {summary.get('task', '')} model (`model.name: {model.get('name')}`, {summary.get('params', 0):,} parameters) "
        f"trained by honed on data from `data.source: {data.get('source')}`{' (' + ', '.join(where) + ')' if where else ''}.",
        "",
        "## Training",
        "",
        f"- Rows: {sizes.get('train', '?'):,} training, {sizes.get('val', 0):,} validation, "
        f"{sizes.get('test', 0):,} test" if isinstance(sizes.get("train"), int) else "- Rows: not published",
        f"- Optimizer `{optimizer.get('name')}` at rate {optimizer.get('lr')}; {summary.get('epochs_run')} epochs run, "
        f"the weights of epoch {summary.get('best_epoch')} kept ({summary.get('stop_reason', '')})",
        f"- {summary.get('train_seconds', 0):.1f} s of training on {summary.get('device', '?')}; seed "
        f"{summary.get('seed')}",
    ]
    if private:
        eps = summary.get("privacy", {}).get("epsilon")
        lines.append(f"- Differentially private (DP-SGD{f', epsilon = {eps:.3g}' if eps else ''}): the card publishes "
                     "no count or statistic of the training rows beyond the summary's")
    if summary.get("labels"):
        lines.append(f"- Classes: {', '.join(map(str, summary['labels'][:50]))}")
    lines += ["", "## Results on the test split", ""]
    lines += (["| metric | value |", "| --- | --- |", *results(test)] if test else
              ["Not scored (a search trial or a cross-validation fold chooses on validation rows)."])
    lines += ["", "## How to use it", "", "```bash", "honed predict RUN_DIR --input new_inputs.csv",
              "honed serve RUN_DIR            # /predict, /metrics, /docs", "honed explain RUN_DIR --global",
              "```", "", "## Intended use and limits", "",
              f"- Made for inputs like its training data ({data.get('source')}); inputs outside their range or of "
              "another kind are extrapolation, and its scores say nothing about them.",
              "- The test figures hold for data drawn like the test split; `honed doctor RUN_DIR` lists what it "
              "finds wrong with the run (leaking or identifier columns, over- or under-fitting).",
              "", "## Framework versions", ""]
    lines += [f"- {name} {version}" for name, version in versions.items()]
    return "\n".join(lines) + "\n"


def write_model_card(run_dir: Path, recipe: dict, summary: dict) -> Path:
    import numpy
    import torch

    from honed import __version__

    versions = {"honed": __version__, "torch": torch.__version__, "numpy": numpy.__version__,
                "python": platform.python_version()}
    return write_text(Path(run_dir) / MODEL_CARD, card(recipe, summary, versions))
