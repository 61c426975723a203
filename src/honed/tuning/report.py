"""What a finished search leaves in its folder.

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
import time
from pathlib import Path

from honed.errors import UserError
from honed.recipe import Recipe, dump_recipe, load_recipe
from honed.run import read_summary, write_json, write_summary, write_text
from honed.tuning.plots import plot_study
from honed.tuning.space import Space, apply, decode
from honed import runfiles

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


def within_noise(study, rows: list[dict], val_outputs: dict[int, tuple]) -> tuple[int, dict]:
    """(the trial to choose, {trial: verdict}). Every finished trial with validation outputs is tested
    against the best on the same validation rows (McNemar's exact test for accuracy, a paired bootstrap for
    mse: evaluation/significance.py). Among the trials whose difference from the best is noise at 95%,
    the simplest is chosen: fewest parameters, then fewest epochs, then the better score."""
    import torch

    from honed.evaluation.significance import described, versus

    best = study.best_trial.number
    if best not in val_outputs:
        return best, {}
    finished = {t.number: t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"}
    verdicts, tied = {best: {"text": "best", "p": 1.0}}, [best]
    reference = val_outputs[best]
    for number, outputs in val_outputs.items():
        if number == best or number not in finished or not (
                len(outputs[1]) == len(reference[1]) and torch.equal(outputs[1], reference[1])):
            continue
        result = versus(reference[:2], outputs[:2], outputs[2])
        verdicts[number] = {"text": described(result), "p": result["p"]}
        if not result["significant"]:
            tied.append(number)
    order = {r["trial"]: i for i, r in enumerate(rows)}
    chosen = min(tied, key=lambda n: (finished[n].user_attrs.get("params_count") or 0,
                                      finished[n].user_attrs.get("epochs") or 0, order.get(n, 0)))
    return chosen, verdicts


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


def write_report(study, user: Recipe, space: Space, key: str, out: Path, url: str, budget: float, started: float,
                 refit: bool = False, val_outputs: dict[int, tuple] | None = None):
    """Leaderboard, plots, best.yaml and the chosen trial's test metrics (scored once). With `refit` (the
    recipe held out no validation rows; the search held some out to choose on), the chosen settings are
    trained again on every training row, as the recipe would, and that run is the one scored."""
    from honed import api
    from honed.tuning.tune import TuneResult

    maximize = study.direction.name == "MAXIMIZE"
    rows = leaderboard(study, space, maximize)
    chosen, verdicts = within_noise(study, rows, val_outputs or {}) if any(
        r["state"] == "COMPLETE" for r in rows) else (None, {})
    for r in rows:
        if r["trial"] in verdicts:
            r["vs best"] = verdicts[r["trial"]]["text"]
    write_text(out / "leaderboard.csv", leaderboard_csv(rows, list(space)))
    counts = {state: sum(r["state"] == state for r in rows) for state in ("COMPLETE", "PRUNED", "FAIL")}
    done = [r for r in rows if r["state"] == "COMPLETE"]
    top = {r["trial"]: r for r in done[:TOP]}
    curves = {t.number: t.user_attrs.get("curve", []) for t in study.get_trials(deepcopy=False) if t.number in top}
    plot_study(rows, curves, importances(study) if len(done) > 1 else {}, key, maximize, out / "tune.png",
               f"{study.study_name}: {len(rows)} trials")
    if not done:
        first = next((r["note"] for r in rows if r["state"] == "FAIL"), "")
        raise UserError(f"no trial finished within the budget of {budget:g} s ({counts['PRUNED']} pruned or cut, "
                        f"{counts['FAIL']} failed{': ' + first if first else ''}); give a larger --budget, "
                        f"fewer train.epochs or a smaller space. Trials so far: {out / 'leaderboard.csv'}")
    best = study.best_trial
    top_scorer = best
    if chosen is not None and chosen != best.number:  # as good within noise, and simpler: the one to keep
        best = next(t for t in study.get_trials(deepcopy=False) if t.number == chosen)
        log.info(f"tune: trial {best.number} is within noise of the top score (trial {top_scorer.number}: "
                 f"{verdicts[chosen]['text']}) and simpler ({best.user_attrs.get('params_count'):,} parameters, "
                 f"{best.user_attrs.get('epochs')} epochs): it is the one chosen")
    params = {k: decode(space[k], v) if k in space else v for k, v in best.params.items()}
    best_recipe = apply(load_recipe(user.model_dump(mode="json") | {"search": {}}), params)
    if refit:
        best_recipe = load_recipe(best_recipe, ["data.val_fraction=0"])
    write_text(out / "best.yaml", f"# Best trial ({best.number}) of `honed tune` study {study.study_name}: "
               f"{key} {best.value:.4f}\n# Run:  honed train {out / 'best.yaml'}\n" + dump_recipe(best_recipe))
    run_dir = Path(best.user_attrs.get("run_dir", ""))
    summary = {}
    if refit:  # the chosen settings on every training row; its test split is scored once, by the run itself
        refitted = api.train(best_recipe, out=out / "best-refit")
        run_dir, summary = refitted.path, dict(refitted.summary)
        log.info(f"tune: the best settings refit on every training row: {run_dir}")
    elif best is not top_scorer and not (run_dir / runfiles.SUMMARY).is_file():
        # the simpler trial's folder went as the search kept only the top one's: the same settings and seed again
        rerun = api.train(best_recipe, out=out / "chosen")
        run_dir, summary = rerun.path, dict(rerun.summary)
    # only a run folder of this process's own --out: another process may be deleting folders in its own
    elif run_dir.is_relative_to(out.resolve()) and (run_dir / runfiles.SUMMARY).is_file():
        summary = read_summary(run_dir)
        summary["test"] = api.evaluate(run_dir)  # the test split, once, for the chosen trial only
        write_summary(run_dir, summary)
    else:
        log.warning(f"the best trial ran in another process ({best.user_attrs.get('worker', '?')}): its run "
                    f"directory {run_dir} belongs to that process's report, which has its test metrics")
    summary["tune"] = {
        "study": study.study_name, "storage": url, "metric": key, "direction": study.direction.name.lower(),
        "best_trial": best.number, "best_value": best.value, "params": params, "best_run": str(run_dir),
        "top_trial": top_scorer.number, "top_value": top_scorer.value,
        "vs_top": {str(n): v["text"] for n, v in verdicts.items()},
        "refit_on_all_rows": refit,
        "trials": counts | {"total": len(rows)}, "budget_seconds": budget,
        "seconds": round(time.perf_counter() - started, 2),
    }
    write_json(out / runfiles.SUMMARY, summary)
    from honed.report import write_summary_page

    flat = [r | r["params"] for r in rows]
    shown = ["rank", "trial", "state", "value", "vs best", "epochs", "seconds", *space, "note"]
    tested = {k: round(v, 4) for k, v in (summary.get("test") or {}).items() if isinstance(v, float)}
    write_summary_page(out / "tune.html", "tune", f"study {study.study_name}: {len(rows)} trials, {key}",
                       [f"Chosen: trial {best.number} ({key} {best.value:.4g}); rerun it with honed train "
                        f"{out / 'best.yaml'}.", f"Test metrics of the chosen run (scored once): {tested}"],
                       [out / "tune.png"], [{"caption": "leaderboard", "columns": [c for c in shown if any(
                           c in r for r in flat)], "rows": flat}])
    return TuneResult(out, study.study_name, url, {"trial": best.number, "value": best.value, "params": params,
                                                   "run_dir": str(run_dir)}, rows, summary)

