"""The `honed` command: parses arguments and calls the Python API, nothing more.

User errors print one line on stderr and exit with code 2 (`--debug` shows the traceback).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

STARTED = time.perf_counter()  # end-to-end timings count from the command's start


def recipe_dirs() -> list[Path]:
    """Where bundled recipes live: inside the installed package, or the source checkout's recipes/."""
    here = Path(__file__).resolve().parent
    return [d for d in (here / "recipes", here.parent.parent / "recipes") if d.is_dir()]


def bundled_recipes() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for folder in recipe_dirs():
        for path in sorted(folder.glob("*.yaml")):
            found.setdefault(path.stem, path)
    return found


def resolve_recipe(name: str) -> Path:
    """A path as given, or the name of a bundled recipe."""
    path = Path(name)
    if path.exists() or path.suffix in (".yaml", ".yml"):
        return path
    return bundled_recipes().get(name, path)


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
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.add_argument("--resume", metavar="RUN_DIR", help="continue a stopped run from its newest checkpoint")
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


def cmd_train(args) -> int:
    from honed.errors import UserError
    from honed.recipe import load_recipe

    if bool(args.recipe) == bool(args.resume):
        raise UserError("train needs a recipe, or --resume RUN_DIR (not both)")
    if args.resume and (args.overrides or args.out):
        raise UserError("--resume continues a run as it was recorded: --set and --out cannot change it")
    recipe = load_recipe(resolve_recipe(args.recipe), args.overrides) if args.recipe else None  # before torch
    if args.nproc and "WORLD_SIZE" not in os.environ:
        from honed.launch import torchrun

        if recipe is None:
            from honed.run import RECIPE

            recipe = load_recipe(Path(args.resume) / RECIPE)
        return torchrun(args, sys.argv[1:] if args.argv is None else args.argv, STARTED, recipe.train.device)
    import honed

    quiet = args.quiet or not sys.stderr.isatty() or bool(os.environ.get("CI"))
    started = launcher_started()
    if args.resume:
        run = honed.resume(args.resume, quiet=quiet, started=started)
    else:
        run = honed.train(recipe, out=args.out, quiet=quiet, started=started)
    if not run.summary:  # a worker other than the main one: the main worker reports
        return 0
    s = run.summary
    shown = {k: round(v, 4) for k, v in s["test"].items() if isinstance(v, float)}
    print(f"run: {run.path}")
    print(f"test: {json.dumps(shown)}")
    print(f"epochs: {s['epochs_run']} (best {s['best_epoch']}; {s['stop_reason']}); "
          f"train {s['train_seconds']:.1f}s, total {s['total_seconds']:.1f}s")
    return 0


def launcher_started() -> float:
    """When the command began, as a perf_counter value; under `--nproc`, when the launcher began."""
    launched = os.environ.get("HONED_STARTED_AT")
    return time.perf_counter() - (time.time() - float(launched)) if launched else STARTED


def cmd_evaluate(args) -> int:
    import honed

    print(json.dumps(honed.evaluate(args.run_dir, args.overrides), indent=2))
    return 0


def cmd_predict(args) -> int:
    import honed

    frame = honed.predict(args.run_dir, args.input, args.output)
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
    entries = [p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")] if root.is_dir() else []
    size = sum(f.stat().st_size for p in entries for f in p.rglob("*") if f.is_file())
    print(f"{root}: {len(entries)} preprocessed dataset(s), {size / 1e6:.1f} MB")
    return 0


COMMANDS = {"cache": cmd_cache, "train": cmd_train, "evaluate": cmd_evaluate, "predict": cmd_predict, "recipes": cmd_recipes}
