"""apimd's side of the peer comparison: workflow `token-then-orders` of workflow.apimd.yaml run N
times, one after another, through the engine in this one process (results kept in memory).

    .venv/bin/python bench/peers/apimd_workflow.py --base http://127.0.0.1:PORT -n N

Exits 1 unless every run ends PASS with ORDER_ID extracted, like `newman run -n N` and `stepci run`
exit non-zero when an assertion fails.

`--callgrind` (without `--base`) counts instructions per workflow iteration instead: the demo token
server (`apimd.demo.server`) runs in a child process, 20 iterations warm up, then the N measured
ones are counted alone (callgrind's client requests, as bench/engine_calls.py does it):

    valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file=/tmp/wf.%p \
        .venv/bin/python bench/peers/apimd_workflow.py --callgrind -n 300

Ir / N of the file that ends `.1` is the figure.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import subprocess
import sys
import tempfile
from pathlib import Path

from apimd.engine.memory import MemoryStateStore
from apimd.engine.runner import Engine
from apimd.model import Outcome
from apimd.model.loader import load_project_file

WORKFLOW_FILE = Path(__file__).with_name("workflow.apimd.yaml")
WORKFLOW = "token-then-orders"
WARMUP_ITERATIONS = 20

_CALLGRIND_HELPER = """
#include <valgrind/callgrind.h>
void measure_start(void) { CALLGRIND_ZERO_STATS; CALLGRIND_START_INSTRUMENTATION; }
void measure_stop(void) { CALLGRIND_DUMP_STATS_AT("measured iterations"); CALLGRIND_STOP_INSTRUMENTATION; }
"""

# The demo token server on a loopback port (printed on stdout); EOF on stdin stops it.
_SERVER = """
import asyncio, sys
from aiohttp import web
from apimd.demo.server import TokenServerState, create_app

async def main():
    runner = web.AppRunner(create_app(TokenServerState()), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
    await site.start()
    print(runner.addresses[0][1], flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await runner.cleanup()

asyncio.run(main())
"""


async def run(base: str, iterations: int, *, callgrind: bool = False) -> int:
    project = load_project_file(WORKFLOW_FILE, environ={"BENCH_BASE_URL": base})
    engine = Engine(project, MemoryStateStore())
    failed = 0

    async def iterate(count: int) -> None:
        nonlocal failed
        for _ in range(count):
            result = await engine.run(WORKFLOW)
            if result.outcome != Outcome.PASS or "ORDER_ID" not in result.variables:
                failed += 1
                print(f"# run failed: {result.result} {result.error or ''}", file=sys.stderr)

    try:
        if callgrind:
            helper = callgrind_helper()
            await iterate(WARMUP_ITERATIONS)
            helper.measure_start()
            await iterate(iterations)
            helper.measure_stop()
        else:
            await iterate(iterations)
    finally:
        await engine.close()
    return 1 if failed else 0


def callgrind_helper() -> ctypes.CDLL:
    """`measure_start()` / `measure_stop()` as callgrind client requests (as engine_calls.py)."""
    with tempfile.TemporaryDirectory(prefix="apimd-callgrind-") as directory:
        source, library = Path(directory) / "helper.c", Path(directory) / "helper.so"
        source.write_text(_CALLGRIND_HELPER)
        subprocess.run(["gcc", "-O1", "-shared", "-fPIC", "-o", library, source], check=True)
        return ctypes.CDLL(str(library))


def measured(iterations: int) -> int:
    """`run` under callgrind against a demo token server in a child process."""
    server = subprocess.Popen(
        [sys.executable, "-c", _SERVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        return asyncio.run(run(f"http://127.0.0.1:{port}", iterations, callgrind=True))
    finally:
        assert server.stdin is not None
        server.stdin.close()
        server.wait(10)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", help="the local token server, http://127.0.0.1:P")
    parser.add_argument("-n", "--iterations", type=int, default=20)
    parser.add_argument(
        "--callgrind",
        action="store_true",
        help="count the measured iterations alone under callgrind (starts its own server)",
    )
    args = parser.parse_args()
    if args.callgrind:
        return measured(args.iterations)
    if not args.base:
        parser.error("--base is required without --callgrind")
    return asyncio.run(run(args.base, args.iterations))


if __name__ == "__main__":
    sys.exit(main())
