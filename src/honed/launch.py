"""`honed train --nproc N`: start N workers through torchrun (torch.distributed.run) on this machine.

With several machines, run the same command on each, with `--nnodes`, its own `--node-rank`
and the same `--rdzv-endpoint HOST:PORT` (or `--master-addr/--master-port` of machine 0).
Every worker runs `honed train` with the remaining arguments; torchrun sets RANK,
WORLD_SIZE and LOCAL_RANK, and stops every worker when one fails.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from honed.errors import UserError
from honed.processes import die_with_parent, end_if_stuck_after_signal, stop_group

LAUNCHER_FLAGS = {"--nproc", "--nnodes", "--node-rank", "--rdzv-endpoint", "--master-addr", "--master-port"}


def torchrun_command(args, argv: list[str]) -> list[str]:
    """The torchrun command line that runs this `honed train` on N workers."""
    if not (1 <= args.nproc <= 1024 and 1 <= args.nnodes <= 10_000):
        raise UserError(f"--nproc {args.nproc} / --nnodes {args.nnodes}: --nproc takes 1 to 1,024 workers, --nnodes "
                        "1 to 10,000 machines (both at least 1)")
    if not 0 <= args.node_rank < args.nnodes:
        raise UserError(f"--node-rank {args.node_rank}: must be between 0 and --nnodes - 1 = {args.nnodes - 1}")
    if args.nnodes > 1 and not (args.rdzv_endpoint or args.master_addr):
        raise UserError(f"--nnodes {args.nnodes}: give every machine the same --rdzv-endpoint HOST:PORT "
                        "(or --master-addr of machine 0)")
    command = [sys.executable, "-c", TORCHRUN_WITH_PARENT, f"--nproc-per-node={args.nproc}",
               f"--nnodes={args.nnodes}"]
    if args.rdzv_endpoint:
        command += ["--rdzv-backend=c10d", f"--rdzv-endpoint={args.rdzv_endpoint}", f"--node-rank={args.node_rank}"]
    elif args.master_addr:
        command += [f"--master-addr={args.master_addr}", f"--master-port={args.master_port}",
                    f"--node-rank={args.node_rank}"]
    else:
        command += ["--standalone"]
    return command + ["-m", "honed"] + worker_argv(argv)


def worker_argv(argv: list[str]) -> list[str]:
    """The command's own arguments without the launcher's flags (and their values)."""
    kept, skip = [], False
    for item in argv:
        if skip:
            skip = False
            continue
        flag = item.split("=", 1)[0]
        if flag in LAUNCHER_FLAGS:
            skip = "=" not in item
            continue
        kept.append(item)
    return kept


def worker_env(nproc: int, started: float) -> dict[str, str]:
    """Split this machine's cores between the workers (torchrun's own default is 1 thread each)."""
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    env["HONED_STARTED_AT"] = str(time.time() - (time.perf_counter() - started))  # workers time from here
    env[LAUNCHED] = "1"
    return env


LAUNCHED = "HONED_LAUNCHED"  # set for torchrun and its workers: each dies with its parent


def as_launched_worker() -> None:
    """In a worker torchrun started for `honed train --nproc`: end with torchrun, however torchrun ends, and
    end on a stop signal even while waiting inside a collective for a peer that is gone."""
    if os.environ.get(LAUNCHED) and os.environ.get("LOCAL_RANK") is not None:
        die_with_parent(signal.SIGTERM)
        end_if_stuck_after_signal()


TORCHRUN_WITH_PARENT = ("import os, runpy, signal, sys; from honed.processes import die_with_parent; "
                        "die_with_parent(signal.SIGTERM, int(os.environ['HONED_LAUNCHER_PID'])); "
                        "sys.argv = ['torchrun', *sys.argv[1:]]; runpy.run_module('torch.distributed.run', "
                        "run_name='__main__')")


def check_gpus(nproc: int, device: str) -> None:
    """On GPUs each worker needs its own: say so before starting any."""
    import torch

    if device in ("auto", "cuda") and torch.cuda.is_available() and nproc > torch.cuda.device_count():
        raise UserError(f"--nproc {nproc}: this machine has {torch.cuda.device_count()} GPU(s), one per worker; "
                        "use fewer workers, or --set train.device=cpu for CPU workers")


def torchrun(args, argv: list[str], started: float, recipe) -> int:
    """Launch `recipe` on the workers and wait; the exit code is torchrun's (non-zero when any worker failed)."""
    if args.nproc * args.nnodes > 1 and recipe.optimizer.name == "lbfgs":
        raise UserError("optimizer.name = lbfgs runs in one process: its line search needs the whole loss "
                        "(drop --nproc, or choose another optimizer)")
    command = torchrun_command(args, argv)
    check_gpus(args.nproc, recipe.train.device)
    env = worker_env(args.nproc, started) | {"HONED_LAUNCHER_PID": str(os.getpid())}
    process = subprocess.Popen(command, env=env, start_new_session=True)  # its own group: stopped as one
    try:
        return process.wait()
    except BaseException:  # SIGTERM (raised as KeyboardInterrupt) or Ctrl-C: torchrun and every worker stop too
        stop_group(process)
        raise
