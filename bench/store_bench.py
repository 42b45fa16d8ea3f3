"""Benchmark of the SQLite store: results stored per second (single and batched, WAL), token
saves per second, bytes on disk per stored result, and the statistics query over 1 M results.

    .venv/bin/python bench/store_bench.py [--results N] [--single N] [--batched N] [--dir PATH]

The figures of one run are recorded in bench/README.md ("Store").
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

from apimd.model.outcome import ResultCode
from apimd.model.resources import TokenState
from apimd.model.result import ConditionResult, RequestRecord, ResponseRecord, Result, Timings
from apimd.model.runtime import TokenRuntime
from apimd.store import SqliteStore, db, open_store

KEY = "q0Yx8bqgVhq4Xh9b3dUPG1sB5GJzP3b7dXq6W1lW2mY="
NOW = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
CODES = [ResultCode.COMPLETE] * 93 + [
    ResultCode.SLOW_COMPLETE,
    ResultCode.SLOW_COMPLETE,
    ResultCode.HTTP_CLIENT_ERROR,
    ResultCode.HTTP_SERVER_ERROR,
    ResultCode.TIMEOUT,
    ResultCode.CONTENT_ERROR,
    ResultCode.NEEDS_SIGN_IN,
]


def realistic_result(index: int, rng: random.Random, started: datetime) -> Result:
    """A monitored call's result as the engine records it: redacted headers, a JSON body of about
    1.5 KB, three conditions."""
    orders = [
        {
            "id": rng.randrange(10**8),
            "status": rng.choice(["open", "paid", "shipped"]),
            "total": round(rng.uniform(1, 500), 2),
            "currency": "EUR",
            "updated": (started - timedelta(minutes=rng.randrange(10_000))).isoformat(),
        }
        for _ in range(10)
    ]
    body = json.dumps({"orders": orders, "next": f"/orders?page={index % 50 + 2}"})
    total = rng.lognormvariate(5.2, 0.5)
    code = CODES[index % len(CODES)]
    return Result(
        id=f"{index:08d}-{rng.getrandbits(64):016x}",
        kind="call",
        name=f"target-{index % 20}",
        trigger="schedule",
        started_at=started,
        finished_at=started + timedelta(milliseconds=total),
        outcome=code.outcome,
        result=code,
        http_status=200,
        timings_ms=Timings(
            dns=1.2, connect=22.5, send=0.3, wait=total - 30, receive=6.0, total=total
        ),
        size=len(body),
        request=RequestRecord(
            method="GET",
            url="https://api.example.com/orders?page=1",
            headers={
                "Authorization": "••••",
                "Accept": "application/json",
                "User-Agent": "apimd/0.1",
            },
        ),
        response=ResponseRecord(
            headers={
                "Content-Type": "application/json",
                "Content-Length": str(len(body)),
                "Date": started.strftime("%a, %d %b %Y %H:%M:%S GMT"),
                "Set-Cookie": "••••",
                "X-Request-Id": f"{rng.getrandbits(128):032x}",
            },
            body=body,
        ),
        conditions=[
            ConditionResult(source="status", op="eq", expected=200, actual=200),
            ConditionResult(source="json", path="$.orders", op="exists", actual="[…]"),
            ConditionResult(source="response_time", op="lt", expected=2000, actual=round(total, 1)),
        ],
    )


def small_result(index: int, rng: random.Random, started: datetime, name: str) -> Result:
    code = CODES[index % len(CODES)]
    return Result(
        id=f"s{index:09d}",
        kind="call",
        name=name,
        trigger="schedule",
        started_at=started,
        finished_at=started,
        outcome=code.outcome,
        result=code,
        http_status=200,
        timings_ms=Timings(total=rng.lognormvariate(5.2, 0.5)),
    )


def remove_database(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", ".lock"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


async def fresh_store(directory: Path, name: str) -> SqliteStore:
    path = directory / name
    remove_database(path)
    return await open_store(
        path, secret_key=KEY, key_file=None, owner=True, owner_description="bench"
    )


def disk_bytes(path: Path) -> int:
    return sum(
        Path(f"{path}{s}").stat().st_size for s in ("", "-wal") if Path(f"{path}{s}").exists()
    )


def line(label: str, value: str) -> None:
    print(f"  {label:<52} {value}")


async def bench_single(directory: Path, count: int, sync: str) -> None:
    original = db._PRAGMAS
    db._PRAGMAS = tuple(
        p if "synchronous" not in p else f"PRAGMA synchronous = {sync}" for p in original
    )
    try:
        store = await fresh_store(directory, f"single-{sync}.db")
        rng = random.Random(1)
        results = [realistic_result(i, rng, NOW + timedelta(seconds=i)) for i in range(count)]
        latencies = []
        started = time.perf_counter()
        for result in results:
            t = time.perf_counter()
            await store.add_result(result)
            latencies.append(time.perf_counter() - t)
        elapsed = time.perf_counter() - started
        runtimes = [
            TokenRuntime(
                name=f"token-{i % 10}",
                variables={"ACCESS_TOKEN": "x" * 900, "EXPIRES_IN": "3600"},
                state=TokenState.VALID,
                saved_at=NOW,
            )
            for i in range(count)
        ]
        t = time.perf_counter()
        for runtime in runtimes:
            await store.save_token(runtime)
        token_elapsed = time.perf_counter() - t
        await store.close()
    finally:
        db._PRAGMAS = original
    latencies.sort()
    line(f"single add_result, synchronous={sync}", f"{count / elapsed:,.0f} results/s")
    line(
        "  per write p50 / p99",
        f"{latencies[len(latencies) // 2] * 1e3:.2f} ms / "
        f"{latencies[int(len(latencies) * 0.99)] * 1e3:.2f} ms",
    )
    line(f"single save_token, synchronous={sync}", f"{count / token_elapsed:,.0f} saves/s")


async def bench_batched(directory: Path, count: int, batch: int) -> None:
    store = await fresh_store(directory, "batched.db")
    rng = random.Random(2)
    elapsed = 0.0
    raw_json = 0
    for start in range(0, count, batch):
        results = [
            realistic_result(i, rng, NOW + timedelta(seconds=i))
            for i in range(start, min(count, start + batch))
        ]
        raw_json += sum(len(r.model_dump_json()) for r in results)
        t = time.perf_counter()
        await store.add_results(results)
        elapsed += time.perf_counter() - t
    await store.close()
    path = directory / "batched.db"
    line(f"batched add_results ({batch} per transaction)", f"{count / elapsed:,.0f} results/s")
    line("bytes on disk per result (realistic, ~1.5 KB body)", f"{disk_bytes(path) / count:,.0f} B")
    line("  result JSON before compression", f"{raw_json / count:,.0f} B")


async def bench_stats(directory: Path, count: int) -> None:
    store = await fresh_store(directory, "stats.db")
    rng = random.Random(3)
    window = timedelta(days=30)
    step = window / count
    first = NOW - window
    generated = 0.0
    stored = 0.0
    chunk = 10_000
    for start in range(0, count, chunk):
        t = time.perf_counter()
        results = [
            small_result(i, rng, first + step * i, "checkout")
            for i in range(start, min(count, start + chunk))
        ]
        generated += time.perf_counter() - t
        t = time.perf_counter()
        await store.add_results(results)
        stored += time.perf_counter() - t
    line(
        f"bulk load of {count:,} small results (10k per txn)",
        f"{count / stored:,.0f} results/s (+{generated:.0f} s building them)",
    )

    async def timed(since: datetime) -> tuple[float, int]:
        runs = []
        total = 0
        for _ in range(5):
            t = time.perf_counter()
            stats = await store.stats("checkout", since, NOW)
            runs.append(time.perf_counter() - t)
            total = stats.total
        return statistics.median(runs), total

    elapsed, total = await timed(first)
    line(f"stats() over 30 days ({total:,} results, 720 hours)", f"{elapsed * 1e3:.1f} ms")
    elapsed, total = await timed(NOW - timedelta(hours=24))
    line(f"stats() over 24 hours ({total:,} results)", f"{elapsed * 1e3:.1f} ms")
    # For comparison: the same percentiles from the raw rows, as a store without rollups would.
    connection = sqlite3.connect(directory / "stats.db")
    t = time.perf_counter()
    values = sorted(
        row[0]
        for row in connection.execute(
            "SELECT total_ms FROM results WHERE name = ? AND outcome != 'SKIPPED'", ("checkout",)
        )
    )
    raw = time.perf_counter() - t
    connection.close()
    line(f"  vs. raw scan + sort of {len(values):,} latencies", f"{raw * 1e3:.0f} ms")
    await store.close()
    line(
        "bytes on disk per result (small, no body)",
        f"{disk_bytes(directory / 'stats.db') / count:,.0f} B",
    )


def machine() -> Iterator[str]:
    meminfo = Path("/proc/meminfo").read_text().split("\n", 1)[0].split()
    cpu = next(
        (
            entry.split(":", 1)[1].strip()
            for entry in Path("/proc/cpuinfo").read_text().splitlines()
            if entry.startswith("model name")
        ),
        platform.processor(),
    )
    yield f"date {datetime.now(UTC):%Y-%m-%d %H:%M} UTC"
    yield f"machine: {os.cpu_count()} CPUs ({cpu}), {int(meminfo[1]) / 2**20:.1f} GiB RAM, {platform.system()} {platform.release()}"
    yield f"python {platform.python_version()}, SQLite {sqlite3.sqlite_version}"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--results", type=int, default=1_000_000, help="results behind the stats query"
    )
    parser.add_argument("--single", type=int, default=2_000, help="results written one at a time")
    parser.add_argument("--batched", type=int, default=50_000, help="results written in batches")
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument(
        "--dir", type=Path, help="where the databases go (default: a temporary dir)"
    )
    args = parser.parse_args()
    for text in machine():
        print(text)
    with tempfile.TemporaryDirectory(prefix="apimd-bench-", dir=args.dir) as name:
        directory = Path(name)
        print(f"databases in {directory} ({'tmpfs' if 'tmpfs' in _fs_type(directory) else 'disk'})")
        await bench_single(directory, args.single, "FULL")
        await bench_single(directory, args.single, "NORMAL")
        await bench_batched(directory, args.batched, args.batch_size)
        await bench_stats(directory, args.results)


def _fs_type(path: Path) -> str:
    best = ("", "")
    for mount in Path("/proc/mounts").read_text().splitlines():
        parts = mount.split()
        if str(path).startswith(parts[1]) and len(parts[1]) >= len(best[0]):
            best = (parts[1], parts[2])
    return best[1]


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
