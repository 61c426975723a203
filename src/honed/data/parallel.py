"""Spreading CPU-bound preprocessing over cores: one shared process pool, the caller works too."""

from __future__ import annotations

import atexit
import multiprocessing as mp
import os
import signal
from concurrent.futures import ProcessPoolExecutor
from typing import Callable, Sequence

from honed.processes import die_with_parent

PARALLEL_MIN = 4000  # fewer items than this are not worth shipping to other processes
_pool: ProcessPoolExecutor | None = None


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _shared_pool() -> ProcessPoolExecutor:
    """One worker per core (up to 8), started once (fork where available, so nothing is re-imported), reused
    by every later call."""
    global _pool
    if _pool is None:
        workers = min(cores(), 8)
        method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
        _pool = ProcessPoolExecutor(workers, mp_context=mp.get_context(method), initializer=_worker_start,
                                    initargs=(os.getpid(),))
        _widen_result_pipe(_pool)
        atexit.register(_stop, _pool)
    return _pool


def _widen_result_pipe(pool: ProcessPoolExecutor) -> None:
    """Results come back through a pipe that holds 64 KB: a 60 MB result is a thousand reads, and the thread
    that reads it must win the interpreter's lock back after each one from this process's other threads (up
    to 5 ms each: the switch interval). A 1 MB pipe (Linux's limit without privileges) takes 16 times fewer."""
    try:
        import fcntl

        fcntl.fcntl(pool._result_queue._reader.fileno(), fcntl.F_SETPIPE_SZ, 1 << 20)
    except (ImportError, AttributeError, OSError):  # not Linux, or the executor's internals moved: as it was
        pass


def _stop(pool: ProcessPoolExecutor) -> None:
    """At exit: a worker still busy (the run was interrupted mid-chunk) is ended rather than waited for; then
    the pool is shut down and waited for, so that none is left holding this process's pipes."""
    for child in mp.active_children():
        child.terminate()
    pool.shutdown(wait=True, cancel_futures=True)


def _worker_start(parent: int) -> None:
    """A pool worker dies with this process (Linux): a killed run leaves no worker blocked on a pipe. A stop
    signal is this process's to answer: Ctrl-C reaches the whole process group, and a worker that raised
    KeyboardInterrupt too would print its own traceback; SIGTERM ends a worker quietly."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    die_with_parent(signal.SIGKILL, parent)


def map_chunks(fn: Callable, items: Sequence, extra: tuple = (), min_items: int | None = None) -> list:
    """[fn((chunk, *extra)) for each contiguous chunk of items], in order, over all cores.

    The calling process handles the first chunk itself while the pool handles the rest (sending it to the
    pool too measured 0.6 s slower on IMDB: the chunk and its result both cross a pipe).
    """
    n = min(cores(), 8) if len(items) >= (PARALLEL_MIN if min_items is None else min_items) else 1
    if n == 1:
        return [fn((items, *extra))]
    size = -(-len(items) // n)
    chunks = [(items[i : i + size], *extra) for i in range(0, len(items), size)]
    futures = [_shared_pool().submit(fn, c) for c in chunks[1:]]
    return [fn(chunks[0])] + [f.result() for f in futures]


def in_worker(fn: Callable, *args):
    """fn(*args) in a pool process, this process waiting. For long pure-Python work (parsing an archive's
    headers): here it would hold the interpreter's lock, which this process's background thread (imports,
    see honed.warmup) needs as much; apart, the two run on two cores. Exceptions come back as raised."""
    return _shared_pool().submit(fn, *args).result()


def drop_last_transfers() -> None:
    """Let go of the last chunk sent to the pool: the queue's feeder thread keeps the last call it pickled as a
    local until it sends the next one, which after IMDB's preparation held 21 MB of reviews (the last chunk
    sent to be tokenized) to the end of the run. One empty call (about a millisecond) replaces it."""
    if _pool is not None:
        _pool.submit(int).result()
