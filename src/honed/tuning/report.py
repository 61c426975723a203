"""What a finished search leaves in its folder (tune.py decides; this module only writes).

    leaderboard.csv   every trial: rank, state, validation score, epochs, seconds, values tried
    best.yaml         the best trial's complete recipe (`honed train best.yaml` reruns it)
    summary.json      the best trial's run summary, its test metrics, and the study's facts
    tune.png          optimization history, parameter importance, learning curves of the best trials
    trials/trial-N/   the best trial's run directory (the others are removed as the search goes)
    study.db          the Optuna study (SQLite, unless --storage named another database)
"""

from __future__ import annotations

import csv
import io
import logging
from pathlib import Path

from honed import runfiles
from honed.recipe import dump_recipe
from honed.run import write_json, write_text
from honed.tuning.plots import plot_study
from honed.tuning.space import Space, decode

log = logging.getLogger("honed")
TOP = 5  # learning curves drawn for this many of the best trials
ORDER = {"COMPLETE": 0, "PRUNED": 1, "RUNNING": 2, "WAITING": 2, "FAIL": 3}


def leaderboard(study, space: Space, maximize: bool) -> list[dict]:
    """One row per trial, best first: finished trials by score, then pruned ones by their last score."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        value = t.value if t.state.name == "COMPLETE" else (
            t.intermediate_values[max(t.intermediate_values)] if t.intermediate_values else None)
        note = t.user_attrs.get("error") or t.user_attrs.get("stopped") or t.user_attrs.get("origin") or ""
        params = {k: decode(space[k], v) if k in space else v for k, v in t.params.items()}
        rows.append({"trial": t.number, "state": t.state.name, "value": value, "epochs": t.user_attrs.get("epochs"),
                     "seconds": t.user_attrs.get("seconds"), "params": params, "note": note,
                     "worker": t.user_attrs.get("worker", "")})
    sign = -1 if maximize else 1
    rows.sort(key=lambda r: (ORDER.get(r["state"], 2), sign * r["value"] if r["value"] is not None else 0, r["trial"]))
    for rank, row in enumerate(rows, 1):
        row["rank"] = rank
    return rows


def leaderboard_csv(rows: list[dict], keys: list[str]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["rank", "trial", "state", "value", "epochs", "seconds", *keys, "vs best", "note", "worker"])
    for r in rows:
        writer.writerow([r["rank"], r["trial"], r["state"], r["value"], r["epochs"], r["seconds"],
                         *[r["params"].get(k, "") for k in keys], r.get("vs best", ""), r["note"], r["worker"]])
    return buffer.getvalue()


def importances(study) -> dict[str, float]:
    """Optuna's parameter importances (its default evaluator); empty when too few finished trials differ."""
    import warnings

    import optuna

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return optuna.importance.get_param_importances(study)
    except (RuntimeError, ValueError, ZeroDivisionError):
        return {}


def write_trials(rows: list[dict], curves: dict, importance: dict, space: Space, key: str, maximize: bool, out: Path,
                 title: str) -> None:
    """leaderboard.csv and tune.png: what every search leaves, whether or not a trial finished."""
    write_text(out / "leaderboard.csv", leaderboard_csv(rows, list(space)))
    plot_study(rows, curves, importance, key, maximize, out / "tune.png", title)


def write_choice(study, choice, rows: list[dict], space: Space, key: str, out: Path) -> None:
    """best.yaml, summary.json and tune.html for the chosen trial (`tune.Choice`), after the search decided."""
    best = choice.trial
    write_text(out / "best.yaml", f"# Best trial ({best.number}) of `honed tune` study {study.study_name}: "
               f"{key} {best.value:.4f}\n# Run:  honed train {out / 'best.yaml'}\n" + dump_recipe(choice.recipe))
    write_json(out / runfiles.SUMMARY, choice.summary)
    from honed.report import write_summary_page

    flat = [r | r["params"] for r in rows]
    shown = ["rank", "trial", "state", "value", "vs best", "epochs", "seconds", *space, "note"]
    tested = {k: round(v, 4) for k, v in (choice.summary.get("test") or {}).items() if isinstance(v, float)}
    lines = [f"Chosen: trial {best.number} ({key} {best.value:.4g}); rerun it with honed train {out / 'best.yaml'}.",
             f"Test metrics of the chosen run (scored once): {tested}"]
    if choice.summary.get("ensemble"):  # the final model is several trials' (tune.ensemble_of)
        weights = ", ".join(f"{Path(m['run']).name} x {m['weight']:.2f}" for m in choice.summary["ensemble"])
        lines[1:] = [f"Final model: the ensemble {choice.run_dir} of {weights}, chosen by greedy selection on the "
                     f"trials' out-of-fold outputs; its test metrics (scored once): {tested}"]
    write_summary_page(out / "tune.html", "tune", f"study {study.study_name}: {len(rows)} trials, {key}", lines,
                       [out / "tune.png"], [{"caption": "leaderboard", "columns": [c for c in shown if any(
                           c in r for r in flat)], "rows": flat}])
