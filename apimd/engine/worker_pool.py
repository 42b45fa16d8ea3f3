"""Heavy work on large response bodies, in worker processes (SPEC §2 "Conditions").

Parsing a large JSON body holds the GIL for as long as it takes, so a thread would still stall the
daemon's event loop; a worker process does not. At most `MAX_WORKERS` run at once (the others
wait their turn), each for at most `WORK_TIMEOUT_S` of CPU time, within `WORKER_MEMORY_BYTES` of
address space more than it starts with and at a lower CPU priority than the daemon. Each worker
does one job and exits, so whatever memory a hostile body made it take goes back to the system.
Workers are started by a fork server (the daemon is threaded, so it is never forked itself), which
imports the engine once.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import multiprocessing
import os
import resource
import signal
import threading
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from types import FrameType
from typing import Any, TypeVar

MAX_WORKERS = 2
# After the last job, when the run that sent it has most likely let go of the large body.
TRIM_AFTER_S = 2.0
WORK_TIMEOUT_S = 10.0
"""CPU seconds a job may use. CPU time, not wall-clock time: a niced worker beside busy processes
gets little of the CPU (half a second of parsing took 5.7 s beside two CPU hogs), and a bound on
wall-clock time stopped ordinary large bodies on a loaded machine, failing their conditions."""
WORK_WALL_FACTOR = 3
"""A job is also stopped after this many times `WORK_TIMEOUT_S` of wall-clock time: a backstop for a
worker that gets no CPU at all (or waits on something), so a run never waits for it for good."""
WORKER_MEMORY_BYTES = 1024 * 1024 * 1024
# Workers yield the CPU to the daemon: its schedules must stay on time while they parse.
WORKER_NICENESS = 10

T = TypeVar("T")

_PRELOADED = ["apimd.engine.conditions", "apimd.engine.recording"]


class WorkerFailed(Exception):
    """The job did not finish: it ran out of time or memory, or its worker died."""


class _OutOfTime(BaseException):
    """Raised by the alarm; a BaseException so that no `except Exception` swallows it."""


_lock = threading.Lock()
_pool: ProcessPoolExecutor | None = None
_trim_timer: asyncio.TimerHandle | None = None
_LIBC_NAME = ctypes.util.find_library("c")
_LIBC = ctypes.CDLL(_LIBC_NAME) if _LIBC_NAME else None
if _LIBC is not None and not hasattr(_LIBC, "malloc_trim"):  # not glibc
    _LIBC = None


async def run_in_worker(function: Callable[..., T], *args: Any) -> T:
    """`function(*args)` in a worker process; `WorkerFailed` when it could not finish. The
    function and its arguments and result must pickle."""
    pool = _shared_pool()
    loop = asyncio.get_running_loop()
    # The limits go with each job (read here, not in the worker), and each worker does one.
    limits = (WORK_TIMEOUT_S, WORK_TIMEOUT_S * WORK_WALL_FACTOR, WORKER_MEMORY_BYTES)
    try:
        return await loop.run_in_executor(pool, _bounded, function, args, limits)
    except _OutOfTime as exc:
        raise WorkerFailed(f"{exc.args[0]}, stopped") from exc
    except MemoryError as exc:
        raise WorkerFailed(f"needed more than {limits[2] >> 20} MiB, stopped") from exc
    except BrokenProcessPool as exc:
        _discard(pool)
        raise WorkerFailed("the worker process died (out of memory, or apimd stopping)") from exc
    finally:
        _trim_later(loop)


def _trim_later(loop: asyncio.AbstractEventLoop) -> None:
    """Hand the memory freed after large bodies back to the system, once they are gone: the
    allocator keeps freed pages otherwise, and the daemon would stay at its peak."""
    global _trim_timer
    if _trim_timer is not None:
        _trim_timer.cancel()
    _trim_timer = loop.call_later(TRIM_AFTER_S, _trim)


def _trim() -> None:
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


def shutdown() -> None:
    """Stop the workers, those at work too (they are started again on demand): the daemon must
    not wait out a hostile body's evaluation when it is asked to stop."""
    global _pool
    with _lock:
        pool, _pool = _pool, None
    if pool is None:
        return
    # No public way before Python 3.14 (`terminate_workers`) to stop a worker at work. Killed
    # first, then waited for: a worker ending its job after `shutdown(wait=False)` would make
    # the pool's manager thread fail (it replaces workers from a list shutdown has dropped).
    for pid in list(getattr(pool, "_processes", None) or {}):
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGTERM)
    pool.shutdown(wait=True, cancel_futures=True)


def _shared_pool() -> ProcessPoolExecutor:
    global _pool
    with _lock:
        if _pool is None:
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload(_PRELOADED)
            _pool = ProcessPoolExecutor(
                MAX_WORKERS,
                mp_context=context,
                max_tasks_per_child=1,
            )
        return _pool


def _discard(pool: ProcessPoolExecutor) -> None:
    global _pool
    with _lock:
        if _pool is pool:
            _pool = None
    pool.shutdown(wait=False, cancel_futures=True)


# --- in the worker -----------------------------------------------------------------------------


def _limit_memory(extra: int) -> None:
    """Allow this worker `extra` bytes of address space beyond what it has mapped."""
    with open("/proc/self/statm") as statm:
        mapped = int(statm.read().split()[0]) * resource.getpagesize()
    limit = mapped + extra
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def _bounded(
    function: Callable[..., T], args: tuple[Any, ...], limits: tuple[float, float, int]
) -> T:
    """Run `function` within `limits` (seconds of CPU time, seconds of wall-clock time, bytes of
    memory): a timer interrupts it after that much CPU time (`ITIMER_PROF`: user and system) or
    wall-clock time (`ITIMER_REAL`)."""
    seconds, wall, memory = limits
    _limit_memory(memory)
    os.nice(WORKER_NICENESS)

    def out_of_time(signum: int, _frame: FrameType | None) -> None:
        if signum == signal.SIGPROF:
            raise _OutOfTime(f"used more than {seconds:g} s of CPU")
        raise _OutOfTime(f"took longer than {wall:g} s (with too little of the CPU)")

    timers = (
        (signal.SIGPROF, signal.ITIMER_PROF, seconds),
        (signal.SIGALRM, signal.ITIMER_REAL, wall),
    )
    previous = [signal.signal(signum, out_of_time) for signum, _, _ in timers]
    for _, timer, after in timers:
        signal.setitimer(timer, after)
    try:
        return function(*args)
    finally:
        # Both timers off before either handler goes back: a timer firing in between would
        # otherwise stop a job that has finished.
        for _, timer, _ in timers:
            signal.setitimer(timer, 0)
        for (signum, _, _), handler in zip(timers, previous, strict=True):
            signal.signal(signum, handler)
