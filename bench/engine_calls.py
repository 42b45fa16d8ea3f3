"""A driver for measuring the engine's cost per call without the machine's load in the figure: N
calls of `engine_bench.py`'s call, through the engine (memory store) or the plain aiohttp loop,
against the loopback server, and nothing else.

    .venv/bin/python bench/engine_calls.py [--client engine|plain] [--calls N] [--profile FILE]

Instructions per call do not depend on what else the machine runs. Under callgrind, `--callgrind`
counts the N measured calls alone (instrumentation switched on after the warm-up, through
callgrind's client requests from a small C helper built with gcc), so Ir / N is the figure:

    valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file=/tmp/cg.%p \
        .venv/bin/python bench/engine_calls.py --calls 100 --callgrind

Without it, take (Ir at N₂ − Ir at N₁) / (N₂ − N₁) of two whole runs: start-up and warm-up cancel.
`--profile FILE` writes a cProfile of the measured calls instead (for where the time goes).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import ctypes
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from engine_bench import ITEMS, WARMUP_CALLS, drive, engine_client, plain_client, project
from loopback_server import start_server

from apimd.engine.memory import MemoryStateStore
from apimd.engine.runner import Engine


_CALLGRIND_HELPER = """
#include <valgrind/callgrind.h>
void measure_start(void) { CALLGRIND_ZERO_STATS; CALLGRIND_START_INSTRUMENTATION; }
void measure_stop(void) { CALLGRIND_DUMP_STATS_AT("measured calls"); CALLGRIND_STOP_INSTRUMENTATION; }
"""


def callgrind_helper() -> ctypes.CDLL:
    """`measure_start()` / `measure_stop()` as callgrind client requests (no-ops outside valgrind)."""
    directory = Path(tempfile.mkdtemp(prefix="apimd-callgrind-"))
    source, library = directory / "helper.c", directory / "helper.so"
    source.write_text(_CALLGRIND_HELPER)
    subprocess.run(["gcc", "-O1", "-shared", "-fPIC", "-o", library, source], check=True)
    return ctypes.CDLL(str(library))


async def run(args: argparse.Namespace) -> None:
    server, port = start_server("/items", ITEMS)
    base = f"http://127.0.0.1:{port}"
    engine = Engine(project(base), MemoryStateStore())
    call = engine_client(engine) if args.client == "engine" else plain_client(base)
    try:
        await drive(call, WARMUP_CALLS, args.concurrency)
        helper = callgrind_helper() if args.callgrind else None
        profiler = cProfile.Profile() if args.profile else None
        if profiler is not None:
            profiler.enable()
        if helper is not None:
            helper.measure_start()
        cpu = time.process_time()
        await drive(call, args.calls, args.concurrency)
        cpu = time.process_time() - cpu
        if helper is not None:
            helper.measure_stop()
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(args.profile)
        print(f"{args.client}: {args.calls} calls, CPU {cpu / args.calls * 1000:.3f} ms per call")
    finally:
        await engine.close()
        assert server.stdin is not None
        server.stdin.close()
        server.wait(10)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--client", choices=("engine", "plain"), default="engine")
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--profile", help="write a cProfile of the measured calls here")
    parser.add_argument(
        "--callgrind", action="store_true", help="count the measured calls alone under callgrind"
    )
    args = parser.parse_args()
    asyncio.run(run(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
