"""Benchmark of agents sharing one PostgreSQL store (SPEC §13, issue 17), against one SQLite daemon
under the same load. Not part of CI (it needs minutes and a PostgreSQL server).

    .venv/bin/python bench/cluster_bench.py [--monitors N] [--every S] [--duration D]
                                            [--admin-url URL] [--quick]

N calls, each on its own `every: S s` schedule against a local aiohttp server (loopback only), are
applied to three agents (a1, a2 in loc-a; b1 in loc-b) on a new database of the server at
`--admin-url` (dropped afterwards). After one interval of warm-up, for D seconds, it measures:

- runs per second: scheduled results started in the window;
- lateness p50/p99: from a firing's due instant (its `firings` row) to its run's start;
- duplicates: results of scheduled runs beyond one per firing (must be 0);
- takeover: the leader is SIGKILLed halfway through; the time until another agent leads.

Then one SQLite daemon runs the same project for D seconds: its runs per second. Firings skipped
(SKIPPED results: too late, or the previous run still going) are counted apart, not as runs.
`--quick` (300 monitors every 10 s for 30 s, about two minutes) checks that it all works.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg
from cryptography.fernet import Fernet
from daemon_bench import percentile, project
from loopback_server import start_server

from apimd.client import Client, DaemonUnavailable
from apimd.store.result_rows import code_of

SCHEDULE = code_of("trigger", "schedule")
RESULT_ID = "decode(replace(f.result_id, '-', ''), 'hex')"
"""A firing's result id (a run's UUID, as text) as `results.id` stores it (16 bytes)."""
AGENTS = (("a1", "loc-a"), ("a2", "loc-a"), ("b1", "loc-b"))
START_TIMEOUT_S = 30.0


async def wait_until_up(client: Client, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        if process.poll() is not None:
            raise SystemExit(f"the daemon exited with {process.returncode} while starting")
        try:
            await client.health()
            return
        except DaemonUnavailable:
            if time.monotonic() > deadline:
                raise SystemExit("the daemon did not answer within 30 s") from None
            await asyncio.sleep(0.1)


def spawn(home: Path, **env: str) -> subprocess.Popen[bytes]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("APIMD_")}
    base.update(APIMD_HOME=str(home), APIMD_CALLBACK_PORT="0", APIMD_LOG_STDERR="0", **env)
    return subprocess.Popen(
        [sys.executable, "-m", "apimd", "daemon"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=base,
    )


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def query(url: str, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(sql, params).fetchall()


async def cluster(args: argparse.Namespace, port: int, root: Path) -> dict[str, float]:
    name = f"apimd_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(args.admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = args.admin_url.rsplit("/", 1)[0] + f"/{name}"
    key = Fernet.generate_key().decode()
    processes: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for agent, location in AGENTS:
            (root / agent).mkdir()
            processes[agent] = spawn(
                root / agent,
                APIMD_DATABASE_URL=url,
                APIMD_SECRET_KEY=key,
                APIMD_AGENT=agent,
                APIMD_LOCATION=location,
            )
        async with Client(root / "a1" / "apimd.sock", timeout=600) as client:
            await wait_until_up(client, processes["a1"])
            await client.apply(project(args.monitors, args.every, 0, port))
        await asyncio.sleep(args.every)  # warm-up: the first firings are spread over it
        start_us, started = time.time_ns() // 1000, time.monotonic()
        cpu_before = {agent: cpu_s(p.pid) for agent, p in processes.items()}
        backends = [
            int(row[0])
            for row in query(url, "SELECT pid FROM pg_stat_activity WHERE datname = %s", (name,))
        ]
        backends_before = {pid: cpu_s(pid) for pid in backends}
        machine_before = machine_busy_s()
        cpu: dict[str, float] = {}
        await asyncio.sleep(args.duration / 2)
        leader = query(url, "SELECT agent FROM agents WHERE leader = 1")[0][0]
        cpu[f"{leader} (leader)"] = cpu_s(processes[leader].pid) - cpu_before[leader]
        half = time.monotonic() - started
        processes[leader].kill()
        killed = time.monotonic()
        takeover = float("nan")
        while time.monotonic() - killed < 60:
            rows = query(
                url, "SELECT agent FROM agents WHERE leader = 1 AND agent <> %s", (leader,)
            )
            if rows:
                takeover = time.monotonic() - killed
                break
            await asyncio.sleep(0.2)
        await asyncio.sleep(max(0.0, args.duration / 2 - (time.monotonic() - killed)))
        end_us = time.time_ns() // 1000
        for agent, process in processes.items():
            if agent != leader:
                cpu[agent] = cpu_s(process.pid) - cpu_before[agent]
        cpu["machine"] = machine_busy_s() - machine_before
        # PostgreSQL's sessions of this database that lasted the whole window (the agents' pools;
        # not those of the killed leader).
        after = {pid: cpu_s(pid) for pid in backends}
        cpu["postgres"] = sum(after[pid] - backends_before[pid] for pid in backends if after[pid])
        await asyncio.sleep(5)  # runs started in the window finish
        lateness = [
            (started - due) / 1000
            for due, started in query(
                url,
                f"SELECT f.due_at, r.started_at FROM firings f JOIN results r ON r.id = {RESULT_ID}"
                " WHERE f.state = 'done' AND r.started_at BETWEEN %s AND %s",
                (start_us, end_us),
            )
        ]
        skipped = query(
            url,
            "SELECT COUNT(*) FROM firings WHERE state IN ('dropped', 'lost')"
            " AND due_at BETWEEN %s AND %s",
            (start_us, end_us),
        )[0][0]
        unfenced = query(
            url,
            f"SELECT COUNT(*) FROM results r WHERE r.trigger = {SCHEDULE} AND NOT EXISTS"
            f" (SELECT 1 FROM firings f WHERE {RESULT_ID} = r.id)",
        )[0][0]
        return {
            "runs_per_s": len(lateness) / ((end_us - start_us) / 1e6),
            "lateness_p50_ms": percentile(lateness, 50) if lateness else float("nan"),
            "lateness_p99_ms": percentile(lateness, 99) if lateness else float("nan"),
            "duplicates": float(unfenced),
            "skipped": float(skipped),
            "takeover_s": takeover,
            **{f"cpu {who}": used for who, used in cpu.items()},
            "half_s": half,
            "window_s": (end_us - start_us) / 1e6,
        }
    finally:
        for process in processes.values():
            stop(process)
        with psycopg.connect(args.admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system) `pid` has used so far (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy_s() -> float:
    """CPU seconds all cores have been busy so far (everything but idle and iowait)."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(values) - values[3] - values[4]) / os.sysconf("SC_CLK_TCK")


async def sqlite(args: argparse.Namespace, port: int, root: Path) -> float:
    home = root / "sqlite"
    home.mkdir()
    process = spawn(home)
    try:
        async with Client(home / "apimd.sock", timeout=600) as client:
            await wait_until_up(client, process)
            await client.apply(project(args.monitors, args.every, 0, port))
            await asyncio.sleep(args.every)
            since = time.time()
            await asyncio.sleep(args.duration)
            until = time.time()
        await asyncio.sleep(5)
        rows = query_sqlite(home / "apimd.db", since, until)
        return rows / (until - since)
    finally:
        stop(process)


def query_sqlite(path: Path, since: float, until: float) -> int:
    import sqlite3

    with sqlite3.connect(path) as conn:
        row = conn.execute(
            "SELECT COUNT(*) FROM results WHERE trigger = ? AND result <> ?"
            " AND started_at BETWEEN ? AND ?",
            (SCHEDULE, code_of("result", "CANCELLED"), int(since * 1e6), int(until * 1e6)),
        ).fetchone()
    return int(row[0])


async def main(args: argparse.Namespace) -> int:
    server, port = start_server("/ok", {"ok": True})
    root = Path(tempfile.mkdtemp(prefix="apimd-bench-", dir="/tmp"))
    try:
        figures = await cluster(args, port, root)
        single = float("nan") if args.cluster_only else await sqlite(args, port, root)
    finally:
        server.terminate()
        shutil.rmtree(root, ignore_errors=True)
    size = f"[{args.monitors} monitors every {args.every}s, 3 agents]"
    print(f"cluster runs/s {size}: {figures['runs_per_s']:.1f} (one SQLite daemon: {single:.1f})")
    print(f"cluster lateness p50 {size}: {figures['lateness_p50_ms']:.0f} ms")
    print(f"cluster lateness p99 {size}: {figures['lateness_p99_ms']:.0f} ms")
    print(f"cluster duplicates {size}: {figures['duplicates']:.0f}")
    print(f"cluster firings skipped or lost {size}: {figures['skipped']:.0f}")
    print(f"cluster takeover after SIGKILL of the leader: {figures['takeover_s']:.1f} s")
    names = {agent for agent, _ in AGENTS}
    agents_s = sum(v for k, v in figures.items() if k[4:].split(" ")[0] in names)
    runs = figures["runs_per_s"] * figures["window_s"]
    print(
        f"cluster CPU per run {size}: agents {1000 * agents_s / max(runs, 1):.1f} ms,"
        f" PostgreSQL {1000 * figures['cpu postgres'] / max(runs, 1):.1f} ms"
    )
    for who, used in figures.items():
        if who.startswith("cpu "):
            span = figures["half_s"] if who.endswith("(leader)") else figures["window_s"]
            print(
                f"cluster {who} [until the leader's kill if leader]: {100 * used / span:.0f} % of one core"
            )
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--monitors", type=int, default=10_000)
    parser.add_argument("--every", type=int, default=60)
    parser.add_argument("--duration", type=float, default=120)
    parser.add_argument("--cluster-only", action="store_true", help="skip the SQLite daemon's run")
    parser.add_argument("--admin-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument(
        "--quick", action="store_true", help="300 monitors every 10 s for 30 s: does it all work"
    )
    arguments = parser.parse_args()
    if arguments.quick:
        arguments.monitors, arguments.every, arguments.duration = 300, 10, 30.0
    sys.exit(asyncio.run(main(arguments)))
