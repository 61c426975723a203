"""The `honed` command: a shell over the Python API. Each command group is one module (runs, search, shipping,
inspection, setup) that adds its parsers and maps each command to a handler that parses, calls the API and prints.

User errors print one line on stderr and exit with code 2 (`--debug` shows the traceback).
"""

from __future__ import annotations

import argparse
import atexit
import logging
import os
import signal
import sys
from typing import Callable

from honed.cli import inspection, runs, search, setup, shipping
from honed.cli.common import STARTED  # noqa: F401  (when the command began)
from honed.recipe.bundled import bundled_recipes, resolve_recipe  # noqa: F401  (honed.cli.resolve_recipe)

GROUPS = (runs, search, shipping, inspection, setup)


def parser() -> argparse.ArgumentParser:
    return _parser_and_commands()[0]


def _parser_and_commands() -> tuple[argparse.ArgumentParser, dict[str, Callable]]:
    from honed import __version__

    p = argparse.ArgumentParser(prog="honed", description="From a YAML recipe to a trained, evaluated model.")
    p.add_argument("--version", action="version", version=f"honed {__version__}")
    p.add_argument("--debug", action="store_true", help="show tracebacks for user errors")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands: dict[str, Callable] = {}
    for group in GROUPS:
        commands |= group.register(sub)
    return p, commands


def main(argv: list[str] | None = None) -> int:
    p, commands = _parser_and_commands()
    args = p.parse_args(argv)
    args.argv = argv
    quiet = getattr(args, "quiet", False) or int(os.environ.get("RANK", 0)) > 0  # one worker speaks
    logging.basicConfig(format="honed: %(message)s", level=logging.WARNING if quiet else logging.INFO,
                        stream=sys.stderr)
    try:
        return commands[args.command](args)
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
    from honed.launch import as_launched_worker

    as_launched_worker()  # a worker of `--nproc`: ends with torchrun
    code = main()
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(int(code or 0))


def _terminated(signum, frame) -> None:
    raise KeyboardInterrupt
