"""Processes honed starts end with it. A scheduler stops a job with one signal to one PID (SIGTERM, then
SIGKILL); `honed train --nproc N` is a launcher, torchrun and N workers, and none of them may outlive it.

- Every process honed starts asks the kernel for a signal when its parent dies (Linux' PR_SET_PDEATHSIG):
  SIGKILL to the launcher, which no handler sees, still reaches torchrun, and torchrun's end its workers.
- The launcher starts torchrun in a process group of its own and, on SIGTERM or Ctrl-C, stops the whole
  group: SIGTERM first (workers unwind: temp files removed, the run marked interrupted), SIGKILL after a grace.
- A worker whose main thread waits inside C++ (a collective, the rendezvous of `init_process_group`, for a peer
  that is gone) cannot run Python's signal handler until that call returns, which may be never: a thread sees
  the signal through the interpreter's wakeup fd and ends the process if it has not unwound within a grace.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

STOP_GRACE_S = 10.0  # how long the workers get to unwind after SIGTERM before SIGKILL
STUCK_GRACE_S = 5.0  # how long a worker's main thread gets to start unwinding after a stop signal


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


def end_if_stuck_after_signal(grace: float = STUCK_GRACE_S) -> None:
    """From now on, a signal with a Python handler (SIGTERM, SIGINT) that this process has not ended on within
    `grace` seconds ends it (exit code 130). Call from the main thread, after the handlers are installed."""
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)
    signal.set_wakeup_fd(write_end, warn_on_full_buffer=False)  # the C-level handler writes here at once

    def watch() -> None:
        os.read(read_end, 1)
        time.sleep(grace)
        print(f"honed: interrupted (still waiting inside a native call {grace:g} s after the signal)",
              file=sys.stderr, flush=True)
        os._exit(130)

    threading.Thread(target=watch, name="honed-stop-watch", daemon=True).start()


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
