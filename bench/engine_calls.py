"""A driver for measuring the engine's cost per call without the machine's load in the figure: N
calls of `engine_bench.py`'s call, through the engine (memory or SQLite store) or the plain loop,
against the loopback server, and nothing else.

    .venv/bin/python bench/engine_calls.py [--client engine|sqlite|plain] [--calls N]
        [--warm N] [--profile FILE] [--callgrind]

`engine` runs the engine with a memory store, `sqlite` with a real SQLite store (as
engine_bench's SQLite round), `plain` the plain aiohttp loop.

Instructions per call do not depend on what else the machine runs. Under callgrind, `--callgrind`
counts the N measured calls alone (instrumentation switched on after the warm-up, through
callgrind's client requests from a small C helper built with gcc), so Ir / N is the figure:

    valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file=/tmp/cg.%p \
        .venv/bin/python bench/engine_calls.py --calls 100 --callgrind

`--warm N` makes N warm-up calls before the measured ones (default engine_bench's warm-up): with
the SQLite store, a new store measures results before the first zstd dictionary (trained after
1,000 results); `--warm 1300` measures a settled one, as a daemon runs with.

Without it, take (Ir at N₂ − Ir at N₁) / (N₂ − N₁) of two whole runs: start-up and warm-up cancel.
`--profile FILE` writes a cProfile of the measured calls instead (for where the time goes).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import ctypes
import resource
import subprocess
import sys
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path

from engine_bench import (
    ITEMS,
    WARMUP_CALLS,
    add_gc_option,
    drive,
    engine_client,
    heap,
    plain_client,
    project,
)
from loopback_server import start_server

from apimd.engine.memory import MemoryStateStore
from apimd.engine.ports import StateStore
from apimd.engine.runner import Engine
from apimd.store import open_store

_CALLGRIND_HELPER = """
#include <valgrind/callgrind.h>
void measure_start(void) { CALLGRIND_ZERO_STATS; CALLGRIND_START_INSTRUMENTATION; }
void measure_stop(void) { CALLGRIND_DUMP_STATS_AT("measured calls"); CALLGRIND_STOP_INSTRUMENTATION; }
"""


def callgrind_helper() -> ctypes.CDLL:
    """`measure_start()` / `measure_stop()` as callgrind client requests (no-ops outside valgrind)."""
    with tempfile.TemporaryDirectory(prefix="apimd-callgrind-") as directory:
        source, library = Path(directory) / "helper.c", Path(directory) / "helper.so"
        source.write_text(_CALLGRIND_HELPER)
        subprocess.run(["gcc", "-O1", "-shared", "-fPIC", "-o", library, source], check=True)
        return ctypes.CDLL(str(library))  # loaded: the file may go


async def run(args: argparse.Namespace) -> None:
    server, port = start_server("/items", ITEMS)
    base = f"http://127.0.0.1:{port}"
    async with contextlib.AsyncExitStack() as stack:
        stack.callback(_stop, server)
        if args.client == "plain":
            call = plain_client(base)
        else:
            engine = Engine(project(base), await _store(args.client, stack))
            stack.push_async_callback(engine.close)
            call = engine_client(engine)
        await drive(call, args.warm, args.concurrency)
        heap(args.gc)
        await measure(call, args)


async def _store(client: str, stack: contextlib.AsyncExitStack) -> StateStore:
    """The engine's store: in memory, or a real SQLite one in a temporary directory (results
    group-committed, durable before each run returns, as engine_bench's SQLite round)."""
    if client == "engine":
        return MemoryStateStore()
    directory = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="apimd-calls-")))
    store = await open_store(
        directory / "engine.db", secret_key=None, key_file=directory / "secret.key", owner=True
    )
    stack.push_async_callback(store.close)
    return store


async def measure(call: Callable[[], Awaitable[bool]], args: argparse.Namespace) -> None:
    """The measured calls, counted by callgrind or profiled when asked; CPU per call printed."""
    helper = callgrind_helper() if args.callgrind else None
    profiler = cProfile.Profile() if args.profile else None
    if profiler is not None:
        profiler.enable()
    if helper is not None:
        helper.measure_start()
    before = resource.getrusage(resource.RUSAGE_SELF)
    await drive(call, args.calls, args.concurrency)
    after = resource.getrusage(resource.RUSAGE_SELF)
    user, system = after.ru_utime - before.ru_utime, after.ru_stime - before.ru_stime
    if helper is not None:
        helper.measure_stop()
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(args.profile)
    per_call = 1000 / args.calls
    print(
        f"{args.client}: {args.calls} calls, CPU {(user + system) * per_call:.3f} ms per call"
        f" (user {user * per_call:.3f}, system {system * per_call:.3f})"
    )


def _stop(server: subprocess.Popen[str]) -> None:
    assert server.stdin is not None
    server.stdin.close()
    server.wait(10)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--client", choices=("engine", "sqlite", "plain"), default="engine")
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument(
        "--warm", type=int, default=WARMUP_CALLS, help="warm-up calls before the measured ones"
    )
    add_gc_option(parser)
    parser.add_argument("--profile", help="write a cProfile of the measured calls here")
    parser.add_argument(
        "--callgrind", action="store_true", help="count the measured calls alone under callgrind"
    )
    args = parser.parse_args()
    asyncio.run(run(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
