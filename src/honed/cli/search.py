"""Commands that train many runs of a recipe: lr-find, cv, tune, compare, distill."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

from honed import runfiles
from honed.cli.common import STARTED, add_overrides, show_table, with_intervals
from honed.recipe.bundled import resolve_recipe


def register(sub) -> dict[str, Callable]:
    """Add this group's commands to `sub`; their handlers by name."""
    lf = sub.add_parser("lr-find", help="learning-rate range test: plot loss against rate, suggest a rate")
    lf.add_argument("recipe", help="recipe file or bundled recipe name")
    add_overrides(lf)
    lf.add_argument("--min-lr", type=float, default=1e-6, help="first rate of the sweep (default 1e-6)")
    lf.add_argument("--max-lr", type=float, default=10.0, help="last rate of the sweep (default 10)")
    lf.add_argument("--steps", type=int, default=100, help="optimizer steps in the sweep (default 100)")
    lf.add_argument("--seeds", type=int, default=2, help="sweeps with different seeds; their agreement is the "
                    "confidence (default 2)")
    lf.add_argument("--out", help="folder for lr_find.png and lr_find.json (default runs/<recipe>-lr-find-<time>)")
    lf.add_argument("--apply", nargs="?", const="", metavar="RECIPE_OUT",
                    help="write the recipe with optimizer.lr set to the suggestion (default <out>/recipe.yaml)")

    cv = sub.add_parser("cv", help="K-fold cross-validation over the training rows: each fold's validation metrics, "
                        "mean, std and a 95%% interval")
    cv.add_argument("recipe", help="recipe file or bundled recipe name")
    cv.add_argument("--folds", type=int, default=5, help="folds (default 5), stratified on the labels")
    cv.add_argument("--repeats", type=int, default=1, help="repeat with the rows reshuffled (default 1)")
    cv.add_argument("--group-column", help="rows sharing this column's value stay in one fold (text_files, tabular)")
    cv.add_argument("--test", action="store_true", help="then train on every training row and score the test split once")
    cv.add_argument("--out", help="report folder (default runs/<recipe>-cv-<time>)")
    cv.add_argument("--quiet", action="store_true", help="only warnings and the results")
    add_overrides(cv)

    tu = sub.add_parser("tune", help="search the recipe's settings with Optuna within a time budget")
    tu.add_argument("recipe", help="recipe file or bundled recipe name (its search: section is the space)")
    tu.add_argument("--budget", type=float, required=True, metavar="SECONDS", help="wall-clock seconds for the search")
    tu.add_argument("--trials", type=int, help="stop once the study holds this many trials (all processes together)")
    tu.add_argument("--storage", metavar="URL", help="Optuna database URL shared by several processes "
                    "(default sqlite in --out), e.g. postgresql://user:pw@host/db")
    tu.add_argument("--study", metavar="NAME", help="study name (default the recipe's name)")
    tu.add_argument("--out", help="report folder (default runs/<recipe>-tune-<time>)")
    tu.add_argument("--metric", help="validation metric to optimize (default: early stopping's monitor, "
                    "else accuracy for classes, loss for regression)")
    tu.add_argument("--pruner", default="hyperband", help="hyperband (default), halving or none")
    tu.add_argument("--quiet", action="store_true", help="only warnings and the results")
    add_overrides(tu)

    cp = sub.add_parser("compare", help="variants of a recipe, or finished runs, side by side (HTML report)")
    cp.add_argument("targets", nargs="+", metavar="RECIPE | RUN_DIR",
                    help="one recipe with --vary, or two or more run directories")
    cp.add_argument("--vary", action="append", default=[], metavar="KEY=V1,V2",
                    help="a recipe key and its values; several --vary make a grid")
    add_overrides(cp)
    cp.add_argument("--metric", help="validation metric to plot (default accuracy, else mse, else loss)")
    cp.add_argument("--out", help="report folder (default runs/<recipe>-compare-<time>)")
    cp.add_argument("--overwrite", action="store_true", help="--out holds an earlier compare: run it again there")

    di = sub.add_parser("distill", help="train a student recipe on a teacher run's outputs; compare with and without")
    di.add_argument("teacher_run", help="a finished run (the teacher)")
    di.add_argument("student_recipe", help="recipe file or bundled recipe name (same data as the teacher)")
    di.add_argument("--temperature", type=float, default=2.0, help="softens both distributions (default 2)")
    di.add_argument("--alpha", type=float, default=0.5, help="weight of the teacher's term, 0..1 (default 0.5)")
    add_overrides(di)
    di.add_argument("--out", help="report folder (default runs/<student>-distill-<time>)")
    di.add_argument("--overwrite", action="store_true", help="--out holds an earlier distill: run it again there")
    return {"lr-find": cmd_lr_find, "cv": cmd_cv, "tune": cmd_tune, "compare": cmd_compare, "distill": cmd_distill}


def cmd_lr_find(args) -> int:
    import honed

    recipe = resolve_recipe(args.recipe)
    finding, out = honed.lr_find(recipe, args.overrides, min_lr=args.min_lr, max_lr=args.max_lr, steps=args.steps,
                                 seeds=args.seeds, out=args.out)
    if finding.suggestion is None:
        print(f"no suggestion: {'; '.join(finding.notes)} (see {out / runfiles.LR_FIND_PNG})")
        return 1
    agree = f", seeds agree within {finding.agreement:.2f}x" if finding.agreement else ""
    print(f"suggested optimizer.lr: {finding.suggestion:.3g} ({finding.confidence} confidence{agree})")
    for note in finding.notes:
        print(f"note: {note}")
    print(f"plot: {out / runfiles.LR_FIND_PNG}")
    if args.apply is not None:
        from honed.tuning.lr_find import apply_suggestion

        target = apply_suggestion(recipe, args.overrides, finding, Path(args.apply) if args.apply else out / runfiles.RECIPE)
        print(f"recipe with this rate: {target}")
    return 0


def cmd_cv(args) -> int:
    from honed.tuning import cross_validate

    result = cross_validate(resolve_recipe(args.recipe), args.overrides, folds=args.folds, repeats=args.repeats,
                            group_column=args.group_column, test=args.test, out=args.out)
    names = list(result.stats)
    show_table([{"repeat": r["repeat"], "fold": r["fold"], "val rows": r["val rows"],
                 **{f"val {n}": r.get(n) for n in names}, "epochs": r["epochs"], "s": r["seconds"]}
                for r in result.folds], f"{len(result.folds)} folds: validation metrics")
    for name, s in result.stats.items():
        low, high = s["ci95"]
        print(f"val {name}: mean {s['mean']:.4f} ± {s['std']:.4f} (std over folds; 95% CI of the mean "
              f"{low:.4f}-{high:.4f})")
    if result.test is not None:
        print(f"test (trained on every training row): {with_intervals(result.test)}")
    print(f"report: {result.out / 'cv.json'}   curves: {result.out / 'cv.png'}")
    return 0


def cmd_tune(args) -> int:
    import honed

    result = honed.tune(resolve_recipe(args.recipe), args.overrides, budget=args.budget, trials=args.trials,
                        storage=args.storage, study=args.study, out=args.out, metric=args.metric, pruner=args.pruner,
                        started=STARTED)
    show_table([{"rank": r["rank"], "trial": r["trial"], "state": r["state"], "value": r["value"],
                 "vs best (95%)": r.get("vs best", ""), "epochs": r["epochs"], "s": r["seconds"],
                 "params": ", ".join(f"{k.split('.')[-1]}={v:.4g}" if isinstance(v, float) else f"{k.split('.')[-1]}={v}" for k, v in r["params"].items())}
                for r in result.leaderboard[:15]], f"study {result.study}: {result.summary['tune']['metric']}")
    best = result.best
    test = {k: round(v, 4) for k, v in result.summary.get("test", {}).items() if isinstance(v, float)}
    tuned = result.summary["tune"]
    if tuned.get("top_trial") is not None and tuned["top_trial"] != best["trial"]:
        print(f"chosen: trial {best['trial']}, within noise of the top score (trial {tuned['top_trial']}, "
              f"{tuned['top_value']:.4f}) and simpler")
    print(f"best: trial {best['trial']} {tuned['metric']} {best['value']:.4f}; test {json.dumps(test)}")
    if tuned.get("ensemble"):
        members = ", ".join(f"trial {t} x {w:.2f}" for t, w in tuned["ensemble"].items())
        loss = result.summary.get("val", {}).get("loss")
        print(f"final model: an ensemble of {members}" + (f" (out-of-fold loss {loss:.4f})" if loss else "")
              + " - the test scores above are its own")
    if result.summary.get("test", {}).get("ci95"):
        print(f"test, 95% intervals: {with_intervals(result.summary['test'])}")
    print(f"recipe: {result.out / 'best.yaml'}   report: {result.out}"
          + (f"   model: {best['run_dir']}" if tuned.get("ensemble") else ""))
    return 0


def cmd_compare(args) -> int:
    import honed
    from honed.errors import UserError

    if args.vary:
        if len(args.targets) != 1:
            raise UserError("compare with --vary takes one recipe")
        result = honed.compare(resolve_recipe(args.targets[0]), args.vary, args.overrides, out=args.out,
                               metric=args.metric, overwrite=args.overwrite)
    else:
        if args.overrides:
            raise UserError("--set applies to a recipe with --vary; finished runs are compared as they are")
        result = honed.compare_runs(args.targets, out=args.out, metric=args.metric)
    tests = [f"test {m}" for m in ("accuracy", "f1", "auroc", "mse", "r2") if f"test {m}" in result.rows[0]]
    shown = [c for t in tests[:2] for c in (t, f"{t} 95% CI")]
    keep = ["run", "epochs", result.metric, *shown, "vs best on test (95%)", "time to target s", "s per epoch", "stopped"]
    show_table([{k: r.get(k) for k in keep} for r in result.rows], f"compare: {result.metric}")
    print(f"report: {result.out / 'compare.html'}")
    return 0


def cmd_distill(args) -> int:
    from honed.tuning import distill

    report = distill(args.teacher_run, resolve_recipe(args.student_recipe), args.overrides,
                     temperature=args.temperature, alpha=args.alpha, out=args.out, overwrite=args.overwrite)
    keep = ("model", "params", "bytes", "ms per example", "test accuracy", "test f1", "test mse", "test r2")
    show_table([{k: row[k] for k in keep if k in row} for row in report["rows"]],
               f"distillation (teacher outputs computed {report['teacher_passes']} time(s))")
    print(f"report: {report['path']}/summary.json")
    return 0
