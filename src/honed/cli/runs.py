"""Commands on single runs: train one, evaluate, predict, rebuild its report, list runs."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Callable

from honed import runfiles
from honed.cli.common import STARTED, add_overrides, launcher_started, show_table, with_intervals
from honed.recipe.bundled import resolve_recipe


def register(sub) -> dict[str, Callable]:
    """Add this group's commands to `sub`; their handlers by name."""
    t = sub.add_parser("train", help="train a recipe, evaluate it on the test split, write a run directory")
    t.add_argument("recipe", nargs="?", help="recipe file, or the name of a bundled recipe (see `honed recipes`)")
    add_overrides(t, "override a recipe field, e.g. --set optimizer.lr=0.1 (repeatable)")
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
    add_overrides(e, "e.g. --set data.test=other.csv to evaluate on other data")

    pr = sub.add_parser("predict", help="predict new inputs with a saved run, write a CSV")
    pr.add_argument("run_dir")
    pr.add_argument("--input", required=True, help="CSV/JSONL/Parquet with the training columns, or texts one per line")
    pr.add_argument("--output", help="CSV to write (default: print to stdout)")
    pr.add_argument("--id-column", help="a column of the input copied beside each prediction, to join rows back "
                    "(default: tables pass through the columns training dropped as IDs)")
    pr.add_argument("--max-new-tokens", type=int, default=128, help="causal LM: new tokens per completion at most "
                    "(default 128)")
    pr.add_argument("--temperature", type=float, default=0.0, help="causal LM: 0 (default): greedy, the same "
                    "completion every time; above: sampled")
    pr.add_argument("--top-p", type=float, default=1.0, help="causal LM, sampled: the smallest set of tokens holding "
                    "this much probability (default 1: all)")
    pr.add_argument("--stop", action="append", default=[], help="causal LM: a completion ends before this text "
                    "(repeatable)")

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
    return {"train": cmd_train, "evaluate": cmd_evaluate, "predict": cmd_predict, "report": cmd_report, "runs": cmd_runs}


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
        return torchrun(args, sys.argv[1:] if args.argv is None else args.argv, STARTED, recipe)
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


def cmd_evaluate(args) -> int:
    import honed

    print(json.dumps(honed.evaluate(args.run_dir, args.overrides), indent=2))
    return 0


def cmd_predict(args) -> int:
    import honed

    from honed.evaluation.generation import Sampling

    sampling = Sampling(args.max_new_tokens, args.temperature, args.top_p, args.stop)
    frame = honed.predict(args.run_dir, args.input, output=args.output, id_column=args.id_column, sampling=sampling)
    if args.output:
        print(f"wrote {len(frame)} predictions to {args.output}")
    else:
        print(frame.to_csv(index=False), end="")
    return 0


def cmd_report(args) -> int:
    import honed

    page = honed.build_report(args.run_dir)
    print(f"report: {page}")
    if args.open:
        import webbrowser

        if not webbrowser.open(page.resolve().as_uri()):
            print("honed: no web browser found here; open the file above in one", file=sys.stderr)
    return 0


def cmd_runs(args) -> int:
    from honed.run.listing import list_runs

    rows = list_runs(args.folder, where=args.where, sort=("-" if args.desc else "") + args.sort if args.sort else None)
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
