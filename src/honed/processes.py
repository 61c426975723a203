"""Processes honed starts end with it. A scheduler stops a job with one signal to one PID (SIGTERM, then
SIGKILL); `honed train --nproc N` is a launcher, torchrun and N workers, and none of them may outlive it.

- Every process honed starts asks the kernel for a signal when its parent dies (Linux' PR_SET_PDEATHSIG):
  SIGKILL to the launcher, which no handler sees, still reaches torchrun, and torchrun's end its workers.
- The launcher starts torchrun in a process group of its own and, on SIGTERM or Ctrl-C, stops the whole
  group: SIGTERM first (workers unwind: temp files removed, the run marked interrupted), SIGKILL after a grace.
"""

from __future__ import annotations

import os
import signal
import subprocess

STOP_GRACE_S = 10.0  # how long the workers get to unwind after SIGTERM before SIGKILL


def die_with_parent(signum: int = signal.SIGTERM, parent: int | None = None) -> None:
    """Ask the kernel to send this process `signum` when its parent dies (Linux; elsewhere nothing). `parent`,
    when known, catches the parent having died before the request took effect."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, int(signum))  # PR_SET_PDEATHSIG = 1
    except (OSError, AttributeError):  # not Linux
        return
    if (parent is not None and os.getppid() != parent) or os.getppid() == 1:
        os.kill(os.getpid(), signum)


def stop_group(process: subprocess.Popen, grace: float = STOP_GRACE_S) -> None:
    """SIGTERM to `process`'s whole group (started with start_new_session=True), SIGKILL to what is left after
    `grace` seconds; returns when `process` has ended."""
    for signum, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, None)):
        try:
            os.killpg(process.pid, signum)
        except ProcessLookupError:  # the group is gone already
            break
        try:
            process.wait(timeout=wait)
            break
        except subprocess.TimeoutExpired:
            continue
    try:  # the group may outlive its leader by a moment: nothing of it is left running
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()
