"""Benchmark of the engine: calls per second through apimd's engine against a local aiohttp server,
vs a plain aiohttp client loop doing the same requests with the same connection policy, in one run.

    .venv/bin/python bench/engine_bench.py [--calls N] [--concurrency C] [--rounds R]

The server runs in its own process (so it and the client do not share one event loop), answering
`GET /items?page=P` with a ~600-byte JSON list. Each call, in both clients:

- is templated: the URL from a variable, `page` from `%%RANDINT%%`, an `X-Request-Id` header from
  `%%UUID%%` (the plain loop uses `random.randint` and `uuid4`);
- opens a fresh connection with fresh DNS (apimd's default, `keepalive: false`): the plain loop
  makes a `ClientSession(TCPConnector(force_close=True, use_dns_cache=False))` per request;
- checks the status is 200 and extracts `$.items[0].id` (`{source: json, op: exists, save_as}`;
  the plain loop: `json.loads(body)["items"][0]["id"]`);
- runs in this process with the daemon's garbage collector settings (`--gc daemon`, the default:
  `apimd.daemon.heap`'s thresholds, and what the warm-up built frozen, as the daemon does after
  start-up; the engine runs nowhere else), for both clients alike; `--gc default` keeps Python's;
- through the engine only: records the result (timings, redacted request and response, conditions)
  into a `MemoryStateStore`, and for the second figure into a real SQLite store
  (`apimd.store.open_store`, one durable transaction per result, as the daemon does).

C workers run N calls in all, per client; rounds alternate the clients (the plain loop, the engine
with the memory store, the engine with SQLite; every other round in reverse order) and medians over
the rounds are printed, each ratio and overhead taken within a round (same machine load) before its
median. This machine's speed moves by a quarter within minutes, so many short rounds (bench/run: 15
of 2,000 calls) pair the clients closer in time than a few long ones. The overhead
per call is 1000/engine − 1000/plain (ms of the run per call at this concurrency); the client CPU
time per call (process time of this process, the server excluded) is shown too.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import random
import shutil
import signal
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from loopback_server import start_server

from apimd.daemon.heap import THRESHOLDS, settle
from apimd.engine.memory import MemoryStateStore
from apimd.engine.runner import Engine
from apimd.model import Outcome, Project
from apimd.store import SqliteStore, open_store

ITEMS = {
    "items": [
        {"id": 1000 + i, "name": f"item-{i}", "price": round(4.5 * i, 2), "in_stock": i % 3 != 0}
        for i in range(10)
    ],
    "next": "/items?page=2",
}
WARMUP_CALLS = 100


# --- the two clients --------------------------------------------------------------------------


def project(base: str) -> Project:
    return Project.model_validate(
        {
            "version": 1,
            "variables": {"BASE": base},
            "calls": [
                {
                    "name": "items",
                    "url": "%%BASE%%/items",
                    "params": {"page": "%%RANDINT%%"},
                    "headers": {"X-Request-Id": "%%UUID%%", "Accept": "application/json"},
                    "conditions": [
                        {"source": "status", "op": "eq", "value": 200},
                        {
                            "source": "json",
                            "path": "$.items[0].id",
                            "op": "exists",
                            "save_as": "ITEM_ID",
                        },
                    ],
                }
            ],
        }
    )


def plain_client(base: str) -> Callable[[], Awaitable[bool]]:
    url = f"{base}/items"

    async def call() -> bool:
        connector = aiohttp.TCPConnector(force_close=True, use_dns_cache=False)
        async with (
            aiohttp.ClientSession(connector=connector) as session,
            session.get(
                url,
                params={"page": str(random.randint(1, 10_000))},
                headers={"X-Request-Id": str(uuid.uuid4()), "Accept": "application/json"},
            ) as response,
        ):
            body = await response.read()
            status = response.status
        return status == 200 and json.loads(body)["items"][0]["id"] is not None

    return call


def engine_client(engine: Engine) -> Callable[[], Awaitable[bool]]:
    async def call() -> bool:
        result = await engine.run("items")
        return result.outcome == Outcome.PASS and "ITEM_ID" in result.variables

    return call


def heap(mode: str) -> None:
    """The collector as the daemon runs the engine (`daemon`: its thresholds, and what the warm-up
    left frozen, as `apimd.daemon.heap.settle` does after start-up), or Python's defaults."""
    if mode == "daemon":
        settle()
        print(f"# gc: the daemon's thresholds {THRESHOLDS}, the warm-up's objects frozen")
    else:
        print(f"# gc: Python's default thresholds {gc.get_threshold()}, nothing frozen")


def add_gc_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--gc",
        choices=("daemon", "default"),
        default="daemon",
        help="the collector as the daemon sets it (default) or Python's defaults",
    )


@dataclass
class Round:
    wall_s: float
    cpu_s: float
    calls: int

    @property
    def rate(self) -> float:
        return self.calls / self.wall_s


async def drive(call: Callable[[], Awaitable[bool]], count: int, concurrency: int) -> Round:
    """`count` calls by `concurrency` workers; raise if any call failed."""
    remaining = count
    failures = 0

    async def worker() -> None:
        nonlocal remaining, failures
        while remaining > 0:
            remaining -= 1
            if not await call():
                failures += 1

    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    result = Round(time.perf_counter() - wall, time.process_time() - cpu, count)
    if failures:
        raise SystemExit(f"{failures} of {count} calls failed")
    return result


# --- the measurement --------------------------------------------------------------------------


async def bench(args: argparse.Namespace) -> None:
    task = asyncio.current_task()
    assert task is not None
    # SIGTERM (bench/run stopping) cancels the bench, so the cleanup below still runs.
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    server, port = start_server("/items", ITEMS)
    base = f"http://127.0.0.1:{port}"
    directory = Path(tempfile.mkdtemp(prefix="apimd-engine-bench-"))
    memory_engine = Engine(project(base), MemoryStateStore())
    store = await open_store(
        directory / "engine.db", secret_key=None, key_file=directory / "secret.key", owner=True
    )
    sqlite_engine = Engine(project(base), store)
    clients: dict[str, Callable[[], Awaitable[bool]]] = {
        "aiohttp": plain_client(base),
        "memory": engine_client(memory_engine),
        "sqlite": engine_client(sqlite_engine),
    }
    rounds: dict[str, list[Round]] = {name: [] for name in clients}
    try:
        for call in clients.values():
            await drive(call, WARMUP_CALLS, args.concurrency)
        heap(args.gc)
        order = list(clients.items())
        for index in range(args.rounds):
            # Every other round runs the clients in reverse order: a machine that speeds up or
            # slows down over the run then favours none of them.
            for name, call in order if index % 2 == 0 else order[::-1]:
                rounds[name].append(await drive(call, args.calls, args.concurrency))
        stored = await _count_stored(store)
    finally:
        await memory_engine.close()
        await sqlite_engine.close()
        await store.close()
        assert server.stdin is not None
        server.stdin.close()
        server.wait(10)
        shutil.rmtree(directory, ignore_errors=True)
    report(rounds, args, stored)


async def _count_stored(store: SqliteStore) -> int:
    page = await store.list_results(name="items", limit=1)
    return len(page.results)


def report(rounds: dict[str, list[Round]], args: argparse.Namespace, stored: int) -> None:
    """Medians over the rounds; each ratio and overhead is taken within a round (the clients of
    one round ran back to back, under the same machine load), then its median printed."""
    size = f"{args.calls} calls, concurrency {args.concurrency}"
    plain = rounds["aiohttp"]
    print(f"aiohttp client loop [{size}]: {statistics.median(r.rate for r in plain):,.0f} calls/s")
    for key, label in (("memory", "memory store"), ("sqlite", "SQLite store")):
        engine = rounds[key]
        rate = statistics.median(r.rate for r in engine)
        ratio = statistics.median(e.rate / p.rate for e, p in zip(engine, plain, strict=True))
        print(
            f"engine throughput [{size}, {label}]: {rate:,.0f} calls/s (ratio {ratio:.2f} vs aiohttp)"
        )
        overhead = statistics.median(
            1000 / e.rate - 1000 / p.rate for e, p in zip(engine, plain, strict=True)
        )
        print(f"engine overhead per call [{size}, {label}]: {overhead:.2f} ms")
    for key, label in (
        ("aiohttp", "aiohttp loop"),
        ("memory", "engine, memory store"),
        ("sqlite", "engine, SQLite store"),
    ):
        cpu = statistics.median(r.cpu_s / r.calls * 1000 for r in rounds[key])
        print(f"client CPU per call [{size}, {label}]: {cpu:.2f} ms")
    for name, runs in rounds.items():
        rates = ", ".join(f"{r.rate:,.0f}" for r in runs)
        print(f"# {name}: calls/s per round {rates}")
    if not stored:
        raise SystemExit("the SQLite store holds no result")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=2000, help="calls per client and round")
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3, help="rounds; the median is printed")
    add_gc_option(parser)
    args = parser.parse_args()
    if args.calls < 1 or args.concurrency < 1 or args.rounds < 1:
        parser.error("--calls, --concurrency and --rounds must be positive")
    asyncio.run(bench(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
