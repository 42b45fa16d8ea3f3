"""Benchmark of the store on SQLite and PostgreSQL side by side, same sizes: results stored per
second (single, concurrent with group commit, batched), token saves per second, bytes on disk per
stored result, and the statistics query over 1 M results.

    .venv/bin/python bench/store_bench.py [--results N] [--single N] [--batched N] [--dir PATH]
                                          [--postgres URL | --postgres ''] [--only PART ...]

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
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg

from apimd.dburl import describe_url
from apimd.model.outcome import ResultCode
from apimd.model.resources import TokenState
from apimd.model.result import (
    ConditionResult,
    RequestRecord,
    ResponseRecord,
    Result,
    Timings,
    TlsInfo,
)
from apimd.model.runtime import TokenRuntime
from apimd.store import Store, db, open_store
from apimd.store.result_rows import code_of

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


def run_id(rng: random.Random) -> str:
    """A run id as the engine makes them (`str(uuid.uuid4())`), from the bench's seeded RNG."""
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


class OrderFeed:
    """The body of `GET /orders?page=1` of one target, as a real API returns it poll after poll:
    the ten latest orders, most of them the same as at the previous poll. Each poll a new order
    arrives with probability `churn` (the oldest drops off the page), and independently one of
    the ten moves on (open → paid → shipped) with the same probability."""

    def __init__(self, rng: random.Random, started: datetime, churn: float) -> None:
        self.rng = rng
        self.churn = churn
        first = rng.randrange(10**7, 9 * 10**7)
        self.orders = [
            self._order(first + k, started - timedelta(minutes=rng.randrange(10_000)))
            for k in range(10)
        ]

    def _order(self, order_id: int, updated: datetime) -> dict[str, object]:
        return {
            "id": order_id,
            "status": self.rng.choice(["open", "paid", "shipped"]),
            "total": round(self.rng.uniform(1, 500), 2),
            "currency": "EUR",
            "updated": updated.isoformat(),
        }

    def poll(self, started: datetime) -> str:
        if self.rng.random() < self.churn:
            self.orders = [
                self._order(int(str(self.orders[0]["id"])) + 1, started),
                *self.orders[:-1],
            ]
        if self.rng.random() < self.churn:
            order = self.rng.choice(self.orders)
            order["status"] = {"open": "paid"}.get(str(order["status"]), "shipped")
            order["updated"] = started.isoformat()
        return json.dumps({"orders": self.orders, "next": "/orders?page=2"})


def random_orders(index: int, rng: random.Random, started: datetime) -> str:
    """Ten orders drawn afresh at every poll: the worst case, no two bodies of a target alike."""
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
    return json.dumps({"orders": orders, "next": f"/orders?page={index % 50 + 2}"})


CERT_EXPIRY = NOW + timedelta(days=61, hours=7)


def realistic_result(
    index: int, rng: random.Random, started: datetime, feeds: dict[str, OrderFeed] | None = None
) -> Result:
    """A scheduled https call's result as the engine records it: redacted headers, a JSON body of
    about 1.2 KB, three conditions, timings rounded to the microsecond (`engine/timing.py`), the
    server's certificate (`engine/certificates.py`), its schedule, when it was due and how late the
    run started (the daemon's `schedule`, `scheduled_at`, `lateness_ms`). The body is `random_orders`, or, with `feeds`, the target's `OrderFeed`."""
    name = f"target-{index % 20}"
    if feeds is None:
        body = random_orders(index, rng, started)
    else:
        feed = feeds.get(name)
        if feed is None:
            feed = feeds[name] = OrderFeed(rng, started, churn=0.2)
        body = feed.poll(started)
    total = round(rng.lognormvariate(5.2, 0.5), 3)
    code = CODES[index % len(CODES)]
    finished = started + timedelta(milliseconds=total)
    return Result(
        id=run_id(rng),
        kind="call",
        name=name,
        trigger="schedule",
        started_at=started,
        finished_at=finished,
        outcome=code.outcome,
        result=code,
        http_status=200,
        timings_ms=Timings(
            dns=1.2, connect=22.5, send=0.3, wait=round(total - 30, 3), receive=6.0, total=total
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
        tls=TlsInfo(
            subject="CN=api.example.com",
            issuer="CN=R11,O=Let's Encrypt,C=US",
            not_after=CERT_EXPIRY,
            days_left=round((CERT_EXPIRY - finished).total_seconds() / 86400, 3),
        ),
        lateness_ms=(late := round(rng.uniform(0.05, 3.0), 3)),
        schedule=f"every-{name}",
        scheduled_at=started - timedelta(milliseconds=late),
    )


def small_result(index: int, rng: random.Random, started: datetime, name: str) -> Result:
    code = CODES[index % len(CODES)]
    return Result(
        id=run_id(rng),
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


def remove_sqlite(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", ".lock"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def sqlite_bytes(path: Path) -> int:
    """The database file and its WAL, after a checkpoint: what the data takes, not how far the
    WAL (up to `journal_size_limit`, 16 MiB) happens to have grown."""
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return sum(
        Path(f"{path}{s}").stat().st_size for s in ("", "-wal") if Path(f"{path}{s}").exists()
    )


def sqlite_pages(path: Path, count: int) -> str:
    """Where a SQLite store's bytes are (`dbstat`: whole pages of each table and index), per
    result: the results table, its indexes, and everything else (rollups, dictionaries, bodies,
    the empty tables' pages, free pages)."""
    with sqlite3.connect(path) as conn:
        page = int(conn.execute("PRAGMA page_size").fetchone()[0])
        pages = dict(conn.execute("SELECT name, COUNT(*) FROM dbstat GROUP BY name").fetchall())
        free = int(conn.execute("PRAGMA freelist_count").fetchone()[0])
    indexes = sorted(name for name in pages if name.startswith("results_by"))
    shown = [("table", pages.get("results", 0))] + [(name[8:], pages[name]) for name in indexes]
    rest = sum(pages.values()) + free - sum(n for _, n in shown)
    return " + ".join(f"{label} {n * page / count:.0f}" for label, n in [*shown, ("rest", rest)])


class Target:
    """One kind of store under test: SQLite files in a directory, or PostgreSQL databases created
    on the server of `admin_url` (and dropped afterwards)."""

    def __init__(self, kind: str, directory: Path, admin_url: str | None = None) -> None:
        self.kind = kind
        self.directory = directory
        self.admin_url = admin_url
        self.databases: list[str] = []

    async def fresh_store(self, name: str, *, relaxed: bool = False) -> Store:
        """A new empty store; `relaxed` trades durability for speed (SQLite synchronous=NORMAL,
        PostgreSQL synchronous_commit=off) to show what a durable commit costs."""
        if self.admin_url is None:
            path = self.directory / name
            remove_sqlite(path)
            original = db._PRAGMAS
            if relaxed:
                db._PRAGMAS = tuple(
                    p.replace("synchronous = FULL", "synchronous = NORMAL") for p in original
                )
            try:
                return await open_store(
                    path, secret_key=KEY, key_file=None, owner=True, owner_description="bench"
                )
            finally:
                db._PRAGMAS = original
        database = f"apimd_bench_{name.replace('-', '_').replace('.db', '')}_{os.getpid()}"
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{database}"')
            conn.execute(f'CREATE DATABASE "{database}"')
            if relaxed:
                conn.execute(f'ALTER DATABASE "{database}" SET synchronous_commit = off')
        self.databases.append(database)
        url = urlunsplit(urlsplit(self.admin_url)._replace(path=f"/{database}"))
        return await open_store(url, secret_key=KEY, key_file=None, owner=True)

    async def bytes_used(self, store: Store, name: str) -> int:
        """Bytes the results take: the SQLite file and its WAL, or PostgreSQL's tables of results
        and rollups with their indexes and TOAST."""
        if self.admin_url is None:
            return sqlite_bytes(self.directory / name)
        row = await store.db.fetchone(
            "SELECT pg_total_relation_size('results') + pg_total_relation_size('rollups')"
            " + pg_total_relation_size('rollup_buckets')"
        )
        return 0 if row is None else int(row[0])

    def drop(self) -> None:
        if self.admin_url is None:
            return
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            for database in self.databases:
                conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


Figures = dict[str, dict[str, str]]


def record(figures: Figures, target: Target, label: str, value: str) -> None:
    figures.setdefault(label, {})[target.kind] = value


async def bench_single(target: Target, figures: Figures, count: int, relaxed: bool) -> None:
    mode = "relaxed" if relaxed else "durable"
    store = await target.fresh_store(f"single-{mode}.db", relaxed=relaxed)
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
    latencies.sort()
    record(figures, target, f"single add_result, {mode}", f"{count / elapsed:,.0f} results/s")
    record(
        figures,
        target,
        f"single add_result, {mode}, per write p50 / p99",
        f"{latencies[len(latencies) // 2] * 1e3:.2f} ms / "
        f"{latencies[int(len(latencies) * 0.99)] * 1e3:.2f} ms",
    )
    record(figures, target, f"single save_token, {mode}", f"{count / token_elapsed:,.0f} saves/s")


async def bench_concurrent(target: Target, figures: Figures, count: int) -> None:
    """Runs finishing together, as under a daemon's load: group commit writes them together."""
    store = await target.fresh_store("concurrent.db")
    rng = random.Random(4)
    results = [realistic_result(i, rng, NOW + timedelta(seconds=i)) for i in range(count)]
    started = time.perf_counter()
    for start in range(0, count, 100):
        await asyncio.gather(*(store.add_result(r) for r in results[start : start + 100]))
    elapsed = time.perf_counter() - started
    await store.close()
    record(
        figures,
        target,
        "add_result, 100 concurrent (group commit)",
        f"{count / elapsed:,.0f} results/s",
    )


async def bench_batched(
    target: Target, figures: Figures, count: int, batch: int, *, feeds: bool = False
) -> None:
    """Realistic results in batches; `feeds`: bodies that change slowly (`OrderFeed`) instead of
    drawn afresh every poll."""
    store = await target.fresh_store("batched.db")
    rng = random.Random(2)
    of_target: dict[str, OrderFeed] | None = {} if feeds else None
    elapsed = 0.0
    cpu = 0.0
    raw_json = 0
    # Bytes once a fifth is written: what follows is what every further result costs (the first
    # ones, before the store's first dictionary, are written twice, and SQLite keeps the room).
    first = count // 5 // batch * batch
    at_first = 0
    for start in range(0, count, batch):
        results = [
            realistic_result(i, rng, NOW + timedelta(seconds=i), of_target)
            for i in range(start, min(count, start + batch))
        ]
        raw_json += sum(len(r.model_dump_json()) for r in results)
        t, c = time.perf_counter(), time.process_time()
        await store.add_results(results)
        elapsed += time.perf_counter() - t
        cpu += time.process_time() - c
        if start + batch == first:
            at_first = await target.bytes_used(store, "batched.db")
    used = await target.bytes_used(store, "batched.db")
    await store.close()
    further = f"{(used - at_first) / (count - first):,.0f} B"
    if feeds:
        record(
            figures,
            target,
            "bytes on disk per result (realistic, slowly changing body)",
            f"{used / count:,.0f} B",
        )
        record(
            figures, target, f"  per result after the first {first:,} (slowly changing)", further
        )
        return
    record(
        figures,
        target,
        f"batched add_results ({batch} per transaction)",
        f"{count / elapsed:,.0f} results/s",
    )
    # This process's CPU (the client's side on PostgreSQL, whose server is another process).
    record(figures, target, "  CPU per result (this process)", f"{cpu / count * 1e6:.1f} µs")
    record(
        figures,
        target,
        "bytes on disk per result (realistic, ~1.2 KB random body)",
        f"{used / count:,.0f} B",
    )
    record(figures, target, f"  per result after the first {first:,}", further)
    if target.admin_url is None:
        pages = sqlite_pages(target.directory / "batched.db", count)
        record(figures, target, "  of which (B): results + indexes + rest", pages)
    record(figures, target, "  result JSON before compression", f"{raw_json / count:,.0f} B")


async def bench_stats(target: Target, figures: Figures, count: int) -> None:
    store = await target.fresh_store("stats.db")
    rng = random.Random(3)
    window = timedelta(days=30)
    step = window / count
    first = NOW - window
    stored = 0.0
    chunk = 10_000
    for start in range(0, count, chunk):
        results = [
            small_result(i, rng, first + step * i, "checkout")
            for i in range(start, min(count, start + chunk))
        ]
        t = time.perf_counter()
        await store.add_results(results)
        stored += time.perf_counter() - t
    record(
        figures,
        target,
        f"bulk load of {count:,} small results (10k per txn)",
        f"{count / stored:,.0f} results/s",
    )

    cpu_runs: list[float] = []

    async def timed(since: datetime) -> tuple[float, int]:
        runs = []
        total = 0
        cpu_runs.clear()
        for _ in range(5):
            t, c = time.perf_counter(), time.process_time()
            stats = await store.stats("checkout", since, NOW)
            runs.append(time.perf_counter() - t)
            cpu_runs.append(time.process_time() - c)
            total = stats.total
        return statistics.median(runs), total

    elapsed, total = await timed(first)
    record(
        figures,
        target,
        f"stats() over 30 days ({total:,} results, 720 hours)",
        f"{elapsed * 1e3:.1f} ms",
    )
    # This process's CPU (all of SQLite's work; PostgreSQL's server is another process): the
    # wall time above is this plus waiting for a core on a loaded machine.
    record(
        figures, target, "  its CPU (this process)", f"{statistics.median(cpu_runs) * 1e3:.1f} ms"
    )
    elapsed, total = await timed(NOW - timedelta(hours=24))
    record(figures, target, f"stats() over 24 hours ({total:,} results)", f"{elapsed * 1e3:.1f} ms")
    # For comparison: the same percentiles from the raw rows, as a store without rollups would.
    t = time.perf_counter()
    rows = await store.db.fetchall(
        "SELECT total_us FROM results WHERE target = (SELECT id FROM targets WHERE name = ?)"
        " AND outcome != ?",
        ("checkout", code_of("outcome", "SKIPPED")),
    )
    values = sorted(row[0] for row in rows)
    raw = time.perf_counter() - t
    record(
        figures,
        target,
        f"  vs. raw scan + sort of {len(values):,} latencies",
        f"{raw * 1e3:.0f} ms",
    )
    record(
        figures,
        target,
        "bytes on disk per result (small, no body)",
        f"{await target.bytes_used(store, 'stats.db') / count:,.0f} B",
    )
    await store.close()


def print_side_by_side(figures: Figures, kinds: list[str]) -> None:
    """One row per figure: `label   SQLite value | PostgreSQL value`."""
    names = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}
    for label, values in figures.items():
        value = " | ".join(f"{names[k]} {values.get(k, '-')}" for k in kinds)
        print(f"  {label:<52}  {value}")


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


PARTS = ["single", "concurrent", "batched", "stats"]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--results", type=int, default=1_000_000, help="results behind the stats query"
    )
    parser.add_argument("--single", type=int, default=2_000, help="results written one at a time")
    parser.add_argument("--batched", type=int, default=50_000, help="results written in batches")
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument(
        "--dir", type=Path, help="where the SQLite databases go (default: a temporary dir)"
    )
    parser.add_argument(
        "--postgres",
        default=os.environ.get(
            "APIMD_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
        ),
        help="a PostgreSQL server URL whose user may create databases ('' = SQLite only)",
    )
    parser.add_argument(
        "--only",
        nargs="+",
        choices=PARTS,
        default=PARTS,
        help="run only these parts (default: all): single, concurrent, batched, stats",
    )
    args = parser.parse_args()
    for text in machine():
        print(text)
    with tempfile.TemporaryDirectory(prefix="apimd-bench-", dir=args.dir) as name:
        directory = Path(name)
        print(
            f"SQLite databases in {directory} ({'tmpfs' if 'tmpfs' in _fs_type(directory) else 'disk'})"
        )
        targets = [Target("sqlite", directory)]
        if args.postgres:
            with psycopg.connect(args.postgres) as conn:
                server = conn.execute("SHOW server_version").fetchone()
            print(f"PostgreSQL {server[0] if server else '?'} at {describe_url(args.postgres)}")
            targets.append(Target("postgresql", directory, args.postgres))
        print("durable: SQLite synchronous=FULL, PostgreSQL synchronous_commit=on (apimd's)")
        print("relaxed: SQLite synchronous=NORMAL, PostgreSQL synchronous_commit=off")
        figures: Figures = {}
        for target in targets:
            try:
                if "single" in args.only:
                    await bench_single(target, figures, args.single, relaxed=False)
                    await bench_single(target, figures, args.single, relaxed=True)
                if "concurrent" in args.only:
                    await bench_concurrent(target, figures, args.single)
                if "batched" in args.only:
                    await bench_batched(target, figures, args.batched, args.batch_size)
                    await bench_batched(target, figures, args.batched, args.batch_size, feeds=True)
                if "stats" in args.only:
                    await bench_stats(target, figures, args.results)
            finally:
                target.drop()
        print_side_by_side(figures, [t.kind for t in targets])


def _fs_type(path: Path) -> str:
    best = ("", "")
    for mount in Path("/proc/mounts").read_text().splitlines():
        parts = mount.split()
        if str(path).startswith(parts[1]) and len(parts[1]) >= len(best[0]):
            best = (parts[1], parts[2])
    return best[1]


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
