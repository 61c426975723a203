"""The `honed` command: parses arguments and calls the Python API, nothing more.

User errors print one line on stderr and exit with code 2 (`--debug` shows the traceback).
"""

from __future__ import annotations

import argparse
import atexit
import json
import logging
import os
import signal
import sys
import time
from pathlib import Path

from honed import runfiles
from honed.recipe.bundled import bundled_recipes, resolve_recipe  # noqa: F401  (honed.cli.resolve_recipe)

STARTED = time.perf_counter()  # end-to-end timings count from the command's start


def describe_recipe(path: Path) -> str:
    """The first comment line of a recipe file: what it does."""
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            return line.lstrip("# ").strip()
    return ""


def parser() -> argparse.ArgumentParser:
    from honed import __version__

    p = argparse.ArgumentParser(prog="honed", description="From a YAML recipe to a trained, evaluated model.")
    p.add_argument("--version", action="version", version=f"honed {__version__}")
    p.add_argument("--debug", action="store_true", help="show tracebacks for user errors")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    t = sub.add_parser("train", help="train a recipe, evaluate it on the test split, write a run directory")
    t.add_argument("recipe", nargs="?", help="recipe file, or the name of a bundled recipe (see `honed recipes`)")
    t.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a recipe field, e.g. --set optimizer.lr=0.1 (repeatable)")
    t.add_argument("--out", help="run directory (default runs/<recipe>-<timestamp>)")
    t.add_argument("--overwrite", action="store_true", help="start again in an --out that holds an unfinished run")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.add_argument("--resume", metavar="RUN_DIR", help="continue a stopped run from its newest checkpoint")
    t.add_argument("--seeds", metavar="S1,S2,...", help="train once per seed and report how far the test metrics move")
    d = t.add_argument_group("distributed training (launched through torchrun; batch_size is the global batch)")
    d.add_argument("--nproc", type=int, metavar="N", help="worker processes on this machine (one per GPU on GPUs)")
    d.add_argument("--nnodes", type=int, default=1, metavar="N", help="machines taking part (default 1)")
    d.add_argument("--node-rank", type=int, default=0, metavar="I", help="this machine's number, 0..nnodes-1")
    d.add_argument("--rdzv-endpoint", metavar="HOST:PORT", help="rendezvous point shared by all machines")
    d.add_argument("--master-addr", metavar="HOST", help="instead of --rdzv-endpoint: machine 0's address")
    d.add_argument("--master-port", type=int, default=29500, metavar="PORT", help="with --master-addr (default 29500)")

    e = sub.add_parser("evaluate", help="re-evaluate a saved run and print its metrics as JSON")
    e.add_argument("run_dir")
    e.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="e.g. --set data.test=other.csv to evaluate on other data")

    pr = sub.add_parser("predict", help="predict new inputs with a saved run, write a CSV")
    pr.add_argument("run_dir")
    pr.add_argument("--input", required=True, help="CSV/JSONL/Parquet with the training columns, or texts one per line")
    pr.add_argument("--output", help="CSV to write (default: print to stdout)")
    pr.add_argument("--id-column", help="a column of the input copied beside each prediction, to join rows back "
                    "(default: tables pass through the columns training dropped as IDs)")

    lf = sub.add_parser("lr-find", help="learning-rate range test: plot loss against rate, suggest a rate")
    lf.add_argument("recipe", help="recipe file or bundled recipe name")
    lf.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
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
    cv.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")

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
    tu.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")

    cp = sub.add_parser("compare", help="variants of a recipe, or finished runs, side by side (HTML report)")
    cp.add_argument("targets", nargs="+", metavar="RECIPE | RUN_DIR",
                    help="one recipe with --vary, or two or more run directories")
    cp.add_argument("--vary", action="append", default=[], metavar="KEY=V1,V2",
                    help="a recipe key and its values; several --vary make a grid")
    cp.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    cp.add_argument("--metric", help="validation metric to plot (default accuracy, else mse, else loss)")
    cp.add_argument("--out", help="report folder (default runs/<recipe>-compare-<time>)")

    di = sub.add_parser("distill", help="train a student recipe on a teacher run's outputs; compare with and without")
    di.add_argument("teacher_run", help="a finished run (the teacher)")
    di.add_argument("student_recipe", help="recipe file or bundled recipe name (same data as the teacher)")
    di.add_argument("--temperature", type=float, default=2.0, help="softens both distributions (default 2)")
    di.add_argument("--alpha", type=float, default=0.5, help="weight of the teacher's term, 0..1 (default 0.5)")
    di.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    di.add_argument("--out", help="report folder (default runs/<student>-distill-<time>)")

    ex = sub.add_parser("export", help="export a run to ONNX, checked against PyTorch with onnxruntime")
    ex.add_argument("run_dir")
    ex.add_argument("--format", default="onnx", choices=["onnx"], help="onnx (the only one so far)")
    ex.add_argument("--out", help="bundle folder (default RUN_DIR/onnx)")
    ex.add_argument("--input", help="inputs to check the export on (default: the run's test split)")

    qu = sub.add_parser("quantize", help="int8 dynamic quantization: accuracy, size and latency before/after")
    qu.add_argument("run_dir")
    qu.add_argument("--input", help="inputs to time on (default: the run's test split, which also gives accuracy)")

    sv = sub.add_parser("serve", help="serve a run over HTTP (FastAPI + uvicorn; /predict, /health, /metadata, /docs)")
    sv.add_argument("run_dir")
    sv.add_argument("--host", default="127.0.0.1")
    sv.add_argument("--port", type=int, default=8000)
    sv.add_argument("--backend", default="torch", help="torch (default), onnx, torch-int8, onnx-int8, or auto "
                    "(the faster int8 version measured by honed quantize)")
    sv.add_argument("--max-batch", type=int, default=64, help="items per model call when requests are batched")
    sv.add_argument("--max-wait-ms", type=float, default=5.0, help="how long a request waits to share a model call")
    sv.add_argument("--max-items", type=int, default=256, help="items allowed in one request")

    x = sub.add_parser("explain", help="why the model said what it said: integrated-gradients attributions per word "
                       "or column, checked for completeness; explain.html")
    x.add_argument("run_dir")
    x.add_argument("--text", action="append", default=[], help="a text to explain (repeatable)")
    x.add_argument("--input", help="a file of inputs, as honed predict reads them")
    x.add_argument("--steps", type=int, default=50, help="integration steps to start from (raised until "
                   "completeness holds within 5%%)")
    x.add_argument("--method", default="ig", help="ig (integrated gradients, default; completeness enforced), "
                   "gradient_shap or occlusion")
    x.add_argument("--baseline", default="auto", help="tables and images: mean (the training mean) or zero (raw "
                   "zeros, black); auto: zero for images, mean otherwise. Text starts from padding")
    x.add_argument("--sanity", action="store_true", help="also run the model-randomization check")
    x.add_argument("--global", dest="overall", action="store_true", help="explain a sample of the test split and "
                   "rank the words (or columns) that push toward each class")
    x.add_argument("--rows", type=int, default=200, help="with --global: test inputs sampled (default 200)")
    x.add_argument("--out", help="report folder (default RUN_DIR/explain)")

    dr = sub.add_parser("doctor", help="what is wrong with a run, proved with its own numbers, and the --set changes "
                        "that fix it; doctor.json, doctor.md")
    dr.add_argument("run_dir")
    dr.add_argument("--fix", nargs="?", type=int, const=1, default=0, metavar="K",
                    help="apply the top K findings' advice (default 1), retrain with the same seed and keep what beats "
                    "the validation noise; writes DIR/fixed.yaml")
    dr.add_argument("--budget", type=float, help="seconds the --fix retrains may take in all")
    dr.add_argument("--out", help="where doctor.json/doctor.md go (default RUN_DIR; --fix runs under DIR/doctor)")
    dr.add_argument("--no-probes", action="store_true", help="read the run's files only: no data, no model probes")

    rp = sub.add_parser("report", help="rebuild a run's report.html (one self-contained page: metrics, curves, "
                        "errors, data, recipe, time) and print its path")
    rp.add_argument("run_dir")
    rp.add_argument("--open", action="store_true", help="open the page in the default web browser")

    rs = sub.add_parser("runs", help="a table of the runs under a folder (default runs/): metrics, epochs, time, status")
    rs.add_argument("folder", nargs="?", default="runs")
    rs.add_argument("--sort", help="a column to sort by, e.g. test.accuracy (ascending; --desc for descending)")
    rs.add_argument("--desc", action="store_true", help="sort descending")
    rs.add_argument("--where", action="append", default=[], help="keep rows where KEY OP VALUE, e.g. 'test.accuracy>0.9'")
    rs.add_argument("--json", action="store_true", help="print the rows as JSON")
    rs.add_argument("--csv", action="store_true", help="print the rows as CSV")

    c = sub.add_parser("cache", help="the preprocessing cache ($HONED_CACHE)")
    c.add_argument("action", choices=["clear", "info"])

    r = sub.add_parser("recipes", help="list the bundled recipes")
    r.add_argument("--reference", action="store_true", help="print every recipe key (markdown table)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    args.argv = argv
    quiet = getattr(args, "quiet", False) or int(os.environ.get("RANK", 0)) > 0  # one worker speaks
    logging.basicConfig(format="honed: %(message)s", level=logging.WARNING if quiet else logging.INFO,
                        stream=sys.stderr)
    try:
        return COMMANDS[args.command](args)
    except KeyboardInterrupt:
        print("honed: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001 - user errors become one line, bugs keep their traceback
        from honed.errors import UserError

        if isinstance(e, UserError) and not args.debug:
            print(f"honed: error: {e}", file=sys.stderr)
            return 2
        raise


def console() -> None:
    """The `honed` command: main(), the exit handlers, then the end of the process without the
    interpreter's teardown.

    Finalizing the ~3,000 modules a run imports (torch, matplotlib, scikit-learn) takes about
    a second. Everything honed writes is complete and closed when main() returns, and the exit
    handlers (worker pools, logging) still run, so the teardown has nothing left to do but wait.
    """
    # SIGTERM (a scheduler's stop, `kill`) unwinds like Ctrl-C: temp files are removed by the
    # writers' cleanup and the worker pool is shut down, instead of the process vanishing mid-write
    signal.signal(signal.SIGTERM, _terminated)
    code = main()
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(int(code or 0))


def _terminated(signum, frame) -> None:
    raise KeyboardInterrupt


def cmd_train(args) -> int:
    from honed.errors import UserError
    from honed.recipe import load_recipe

    if bool(args.recipe) == bool(args.resume):
        raise UserError("train needs a recipe, or --resume RUN_DIR (not both)")
    if args.resume and (args.overrides or args.out):
        raise UserError("--resume continues a run as it was recorded: --set and --out cannot change it")
    if args.nproc is not None and args.nproc < 1:
        raise UserError(f"--nproc {args.nproc}: give at least 1 worker process")
    recipe = load_recipe(resolve_recipe(args.recipe), args.overrides) if args.recipe else None  # before torch
    if args.nproc and "WORLD_SIZE" not in os.environ:
        from honed.launch import torchrun

        if recipe is None:
            from honed.run import RECIPE

            recipe = load_recipe(Path(args.resume) / RECIPE)
        if args.nproc * args.nnodes > 1 and recipe.optimizer.name == "lbfgs":
            raise UserError("optimizer.name = lbfgs runs in one process: its line search needs the whole loss "
                            "(drop --nproc, or choose another optimizer)")
        return torchrun(args, sys.argv[1:] if args.argv is None else args.argv, STARTED, recipe.train.device)
    import honed

    quiet = args.quiet or not sys.stderr.isatty() or bool(os.environ.get("CI"))
    if args.seeds:
        return train_seeds(args, recipe)
    started = launcher_started()
    if args.resume:
        run = honed.resume(args.resume, quiet=quiet, started=started)
    else:
        run = honed.train(recipe, out=args.out, quiet=quiet, started=started, overwrite=args.overwrite)
    if not run.summary:  # a worker other than the main one: the main worker reports
        return 0
    s = run.summary
    shown = {k: round(v, 4) for k, v in s["test"].items() if isinstance(v, float)}
    print(f"run: {run.path}")
    print(f"test: {json.dumps(shown)}")
    if s["test"].get("ci95"):
        print(f"test, 95% intervals: {with_intervals(s['test'])}")
    print(f"epochs: {s['epochs_run']} (best {s['best_epoch']}; {s['stop_reason']}); "
          f"train {s['train_seconds']:.1f}s, total {s['total_seconds']:.1f}s")
    if (run.path / runfiles.REPORT).is_file():
        print(f"report: {run.path / runfiles.REPORT}")
    from honed.diagnosis import end_of_training
    from honed.recipe import load_recipe as read_recipe
    from honed.run import read_metrics

    problem = end_of_training(read_recipe(run.path / runfiles.RECIPE), s, read_metrics(run.path))
    if problem:
        print(f"doctor: {problem.name}: {problem.evidence} — honed doctor {run.path}")
    return 0


def cmd_doctor(args) -> int:
    from honed.diagnosis import doctor
    from honed.diagnosis import report as page
    from honed.errors import UserError

    if args.fix < 0:
        raise UserError(f"--fix {args.fix}: give how many findings to try, at least 1")
    if args.budget is not None and args.budget <= 0:
        raise UserError(f"--budget {args.budget:g}: give a number of seconds above 0")
    diagnosis = doctor(args.run_dir, probes=not args.no_probes)
    out = Path(args.out) if args.out else Path(args.run_dir)
    page.show(diagnosis)
    data, md = page.write(diagnosis, out)
    print(f"doctor: {len(diagnosis.findings)} finding(s) in {diagnosis.seconds:.1f} s; {data}, {md}")
    if not args.out:
        from honed.report import refresh_report

        refresh_report(args.run_dir)
    if args.fix:
        from honed.diagnosis.fix import fix

        result = fix(args.run_dir, diagnosis, args.fix, args.budget, Path(args.out) / runfiles.DOCTOR_DIR if args.out else None)
        for row in result["tried"]:
            if "skipped" in row:
                print(f"fix: {row['change']}: skipped, {row['skipped']}")
            else:
                verdict = "kept" if row["kept"] else f"dropped (not above the noise, ±{row['noise']:.4g})"
                print(f"fix: {row['change']}: {row['metric']} {row['before']:.4g} -> {row['after']:.4g}, {verdict}")
        print(f"fix: val {result['metric']} {result['before']:.4g} -> {result['after']:.4g}"
              + (f"; improved recipe: {result['fixed']}" if result["fixed"] else "; no change kept"))
    return 0


def cmd_report(args) -> int:
    from honed.report import report

    page = report(args.run_dir)
    print(f"report: {page}")
    if args.open:
        import webbrowser

        if not webbrowser.open(page.resolve().as_uri()):
            print("honed: no web browser found here; open the file above in one", file=sys.stderr)
    return 0


def with_intervals(scores: dict) -> str:
    """'accuracy 87.36% (95% CI 86.95-87.77), ...': each metric with its interval (summary's ci95)."""
    from honed.evaluation.metrics import SHARES

    def shown(name: str, value: float) -> str:
        return f"{100 * value:.2f}" if name in SHARES else f"{value:.4g}"

    parts = []
    for name, (low, high) in scores.get("ci95", {}).items():
        unit = "%" if name in SHARES else ""
        parts.append(f"{name} {shown(name, scores[name])}{unit} (95% CI {shown(name, low)}-{shown(name, high)})")
    return ", ".join(parts)




def train_seeds(args, recipe) -> int:
    from honed.errors import UserError
    from honed.tuning.seeds import across_seeds, parse_seeds

    if args.resume or args.nproc:
        raise UserError("--seeds trains a recipe in this process: not with --resume or --nproc")
    report = across_seeds(recipe, parse_seeds(args.seeds), out=args.out)
    names = list(report["stats"])
    show_table([{"seed": r["seed"], **{f"test {n}": r.get(n) for n in names}, "s": r["seconds"]}
                for r in report["runs"]], f"{len(report['runs'])} seeds: test metrics")
    for name, s in report["stats"].items():
        low, high = s["ci95"]
        print(f"test {name}: mean {s['mean']:.4f} ± {s['std']:.4f} over seeds (95% CI of the mean {low:.4f}-{high:.4f})")
    print(f"report: {report['out'] / 'seeds.json'}")
    return 0


def launcher_started() -> float:
    """When the command began, as a perf_counter value; under `--nproc`, when the launcher began."""
    launched = os.environ.get("HONED_STARTED_AT")
    return time.perf_counter() - (time.time() - float(launched)) if launched else STARTED


def cmd_lr_find(args) -> int:
    import honed

    recipe = resolve_recipe(args.recipe)
    finding, out = honed.lr_find(recipe, args.overrides, args.min_lr, args.max_lr, args.steps, args.seeds,
                                 args.out)
    if finding.suggestion is None:
        print(f"no suggestion: {'; '.join(finding.notes)} (see {out / runfiles.LR_FIND_PNG})")
        return 1
    agree = f", seeds agree within {finding.agreement:.2f}x" if finding.agreement else ""
    print(f"suggested optimizer.lr: {finding.suggestion:.3g} ({finding.confidence} confidence{agree})")
    for note in finding.notes:
        print(f"note: {note}")
    print(f"plot: {out / runfiles.LR_FIND_PNG}")
    if args.apply is not None:
        from honed.recipe import dump_recipe, load_recipe
        from honed.run import write_text

        target = Path(args.apply) if args.apply else out / runfiles.RECIPE
        write_text(target, dump_recipe(load_recipe(recipe, args.overrides + [f"optimizer.lr={finding.suggestion:.4g}"])))
        print(f"recipe with this rate: {target}")
    return 0


def cmd_cv(args) -> int:
    from honed.tuning import cross_validate

    result = cross_validate(resolve_recipe(args.recipe), args.overrides, args.folds, args.repeats, args.group_column,
                            args.test, args.out)
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


def cmd_explain(args) -> int:
    from honed.errors import UserError
    from honed.explanation import explain, write_report

    if (bool(args.text) + bool(args.input) + args.overall) != 1:
        raise UserError("explain needs one of: --text \"...\" (repeatable), --input FILE, --global")
    if args.overall:
        from honed.explanation import explain_test_rows

        if args.rows < 1:
            raise UserError(f"--rows {args.rows}: give at least 1")
        result = explain_test_rows(args.run_dir, args.rows, args.steps)
        for label, words in result.overall.items():
            print(f"toward {label}: " + ", ".join(f"{w['name']} {w['mean']:+.2f}" for w in words))
        gaps = sorted(it["completeness_gap"] for it in result.items)
        print(f"{len(result.items)} test inputs; completeness gap median {100 * gaps[len(gaps) // 2]:.2f}%, "
              f"worst {100 * gaps[-1]:.2f}%")
    else:
        result = explain(args.run_dir, args.text or args.input, args.steps, args.sanity, args.method, args.baseline)
    for it in ([] if args.overall else result.items):
        ranked = sorted(zip(it["attributions"], it["names"]), key=lambda pair: -abs(pair[0]))[:6]
        shown = ", ".join(f"{name} {value:+.3f}" for value, name in ranked)
        probability = f" ({100 * it['probability']:.1f}%)" if "probability" in it else ""
        gap = it["completeness_gap"]
        gap = f"completeness gap {100 * gap:.1f}%" if gap is not None else "occlusion: no sum to check"
        print(f"{it['prediction']}{probability}: {shown} ({gap})")
    if result.sanity:
        verdict = "passed" if result.sanity["passed"] else "FAILED: the attributions barely depend on the weights"
        print(f"randomization check: median rank correlation {result.sanity['median_rank_correlation']:.2f}, {verdict}")
    out = Path(args.out) if args.out else Path(args.run_dir) / runfiles.EXPLAIN_DIR
    _, page = write_report(result, out)
    print(f"steps: {result.steps}; page: {page}")
    if not args.out:  # the run's own page shows a few of these
        from honed.report import refresh_report

        refresh_report(args.run_dir)
    return 0


def cmd_runs(args) -> int:
    from honed.run.listing import list_runs

    rows = list_runs(args.folder, args.where, ("-" if args.desc else "") + args.sort if args.sort else None)
    if args.json:
        print(json.dumps(rows, indent=1))
    elif args.csv:
        import csv

        columns = list(dict.fromkeys(k for r in rows for k in r))
        writer = csv.DictWriter(sys.stdout, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    elif rows:
        from honed.run.listing import shown_columns

        columns = shown_columns(rows)
        show_table([{c: r.get(c) for c in columns} for r in rows], f"{len(rows)} runs under {args.folder}")
    else:
        print(f"no runs under {args.folder}" + (" match" if args.where else ""))
    return 0


def cmd_tune(args) -> int:
    import honed

    result = honed.tune(resolve_recipe(args.recipe), args.overrides, args.budget, args.trials, args.storage,
                        args.study, args.out, args.metric, args.pruner, started=STARTED)
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
    if result.summary.get("test", {}).get("ci95"):
        print(f"test, 95% intervals: {with_intervals(result.summary['test'])}")
    print(f"recipe: {result.out / 'best.yaml'}   report: {result.out}")
    return 0


def cmd_compare(args) -> int:
    import honed
    from honed.errors import UserError

    if args.vary:
        if len(args.targets) != 1:
            raise UserError("compare with --vary takes one recipe")
        result = honed.compare(resolve_recipe(args.targets[0]), args.vary, args.overrides, args.out, args.metric)
    else:
        if args.overrides:
            raise UserError("--set applies to a recipe with --vary; finished runs are compared as they are")
        result = honed.compare_runs(args.targets, args.out, metric=args.metric)
    tests = [f"test {m}" for m in ("accuracy", "f1", "auroc", "mse", "r2") if f"test {m}" in result.rows[0]]
    shown = [c for t in tests[:2] for c in (t, f"{t} 95% CI")]
    keep = ["run", "epochs", result.metric, *shown, "vs best on test (95%)", "time to target s", "s per epoch", "stopped"]
    show_table([{k: r.get(k) for k in keep} for r in result.rows], f"compare: {result.metric}")
    print(f"report: {result.out / 'compare.html'}")
    return 0


def show_table(rows: list[dict], title: str) -> None:
    """A rich table on stdout."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for column in rows[0] if rows else []:
        table.add_column(column)
    for row in rows:
        table.add_row(*["-" if v is None else f"{v:.4g}" if isinstance(v, float) else str(v) for v in row.values()])
    Console(width=160).print(table)


def cmd_distill(args) -> int:
    from honed.tuning import distill

    report = distill(args.teacher_run, resolve_recipe(args.student_recipe), args.overrides, args.temperature,
                     args.alpha, args.out)
    keep = ("model", "params", "bytes", "ms per example", "test accuracy", "test f1", "test mse", "test r2")
    show_table([{k: row[k] for k in keep if k in row} for row in report["rows"]],
               f"distillation (teacher outputs computed {report['teacher_passes']} time(s))")
    print(f"report: {report['path']}/summary.json")
    return 0


def cmd_export(args) -> int:
    from honed.export import export_onnx

    from honed.report import refresh_report

    info = export_onnx(args.run_dir, args.out, args.input)
    if not args.out:
        refresh_report(args.run_dir)
    print(f"exported: {info['path']}/model.onnx ({info['bytes'] / 1e6:.2f} MB); max |onnx - torch| "
          f"{info['check']['max_abs_difference']:.2e} on {info['check']['rows']} rows (onnxruntime)")
    return 0


def cmd_quantize(args) -> int:
    from honed.export import quantize

    from honed.report import refresh_report

    report = quantize(args.run_dir, args.input)
    refresh_report(args.run_dir)
    show_table([{k: v for k, v in row.items()} for row in report["versions"]], "quantize (CPU, this machine)")
    print(f"faster int8 version: {report['chosen']} (serve it with --backend {report['backend']}); "
          f"report: {report['path']}/report.json")
    return 0


def cmd_serve(args) -> int:
    from honed.errors import UserError
    from honed.run import read_json
    from honed.serve import Limits, serve

    backend = args.backend
    if backend == "auto":
        report = Path(args.run_dir) / runfiles.QUANTIZED_DIR / runfiles.QUANTIZED_REPORT
        if not report.is_file():
            raise UserError(f"--backend auto: {report} is missing; run honed quantize {args.run_dir} first")
        backend = read_json(report)["backend"]
    serve(args.run_dir, args.host, args.port, backend, Limits(args.max_items, max_batch=args.max_batch,
                                                               max_wait_ms=args.max_wait_ms))
    return 0


def cmd_evaluate(args) -> int:
    import honed

    print(json.dumps(honed.evaluate(args.run_dir, args.overrides), indent=2))
    return 0


def cmd_predict(args) -> int:
    import honed

    frame = honed.predict(args.run_dir, args.input, args.output, id_column=args.id_column)
    if args.output:
        print(f"wrote {len(frame)} predictions to {args.output}")
    else:
        print(frame.to_csv(index=False), end="")
    return 0


def cmd_recipes(args) -> int:
    if args.reference:
        from honed.recipe.reference import markdown

        print(markdown())
        return 0
    recipes = bundled_recipes()
    width = max((len(n) for n in recipes), default=0)
    for name, path in recipes.items():
        print(f"{name:<{width}}  {describe_recipe(path)}")
    return 0


def cmd_cache(args) -> int:
    from honed.data import cache

    if args.action == "clear":
        entries, size = cache.clear()
        print(f"removed {entries} preprocessed dataset(s), {size / 1e6:.1f} MB, from {cache.preprocessed_root()}")
        return 0
    root = cache.preprocessed_root()
    if root.is_dir():
        cache.remove_abandoned(root)  # half-written entries of killed runs
    entries = [p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")] if root.is_dir() else []
    size = sum(f.stat().st_size for p in entries for f in p.rglob("*") if f.is_file())
    print(f"{root}: {len(entries)} preprocessed dataset(s), {size / 1e6:.1f} MB")
    return 0


COMMANDS = {"cache": cmd_cache, "train": cmd_train, "evaluate": cmd_evaluate, "predict": cmd_predict,
            "recipes": cmd_recipes, "lr-find": cmd_lr_find, "tune": cmd_tune, "compare": cmd_compare,
            "distill": cmd_distill, "export": cmd_export, "quantize": cmd_quantize, "serve": cmd_serve,
            "cv": cmd_cv, "explain": cmd_explain, "runs": cmd_runs, "report": cmd_report,
            "doctor": cmd_doctor}
