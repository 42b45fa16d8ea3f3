"""Benchmark of hostile response bodies (issue 10 point 4): daemon RSS, a canary's lateness and
lost runs while four hostile targets answer at once, every 2 s.

    .venv/bin/python bench/hostile_bench.py [--duration D] [--every S]

A real `apimd daemon` process runs on a temporary APIMD_HOME; a loopback server in its own
process answers four targets, each under the 10 MiB body cap, each with a JSONPath condition
that saves what it finds:

  array      a 10 MB JSON array of 5 M numbers, `$[*]`
  objects    550,000 small objects (9 MB), `$..*`
  deep       2 M levels of nested arrays, `$..*`
  surrogate  a lone UTF-16 surrogate in the value saved, padded to 2 MB, `$.v`

One schedule runs the four every S seconds (all four at once), another a canary call every S
seconds. For D seconds after a warm-up interval:

- daemon RSS: VmRSS of the daemon process sampled every 0.2 s, peak and at the end; the peak of
  its worker processes' RSS (summed) beside it, since that is where the parsing now happens;
- canary lateness: from the instant the canary was due (its `schedule.fired` event) to the
  start of its run (the stored result), max and p50;
- runs: per target, runs started (`run.started` events) and runs recorded (`run.finished`
  events); a run started but never finished vanished. A firing that finds its target still
  running is skipped by design, so fewer runs than firings is not a loss;
- the largest stored result, in bytes of JSON.

Figures of one run are recorded in bench/README.md ("Hostile bodies").
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiohttp import web
from daemon_bench import percentile, rss_mib, shut_down, start_daemon

from apimd.client import Client
from apimd.model.events import RunFinished, RunStarted, ScheduleFired

# Shared with the tests (tests/support): bench/run sets PYTHONPATH, a direct run does not.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.support.hostile import hostile_app, hostile_bodies

MIB = 1024 * 1024
SETTLE_S = 5.0
# Issue 10's bar: the bench exits 1 when a figure misses it.
MAX_DAEMON_RSS_MIB = 300
MAX_CANARY_LATENESS_MS = 1000
TARGETS = {"array": "$[*]", "objects": "$..*", "deep": "$..*", "surrogate": "$.v"}


# --- the hostile server (this file run with --serve) ----------------------------------------


async def serve() -> None:
    runner = web.AppRunner(hostile_app(hostile_bodies()), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    print(runner.addresses[0][1], flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await runner.cleanup()


def start_server() -> tuple[subprocess.Popen[str], int]:
    process = subprocess.Popen(
        [sys.executable, __file__, "--serve"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    return process, int(process.stdout.readline())


# --- the measurement --------------------------------------------------------------------------


def project(port: int, every: int, enabled: bool = True) -> dict[str, Any]:
    url = f"http://127.0.0.1:{port}"
    calls = [
        {
            "name": f"h-{name}",
            "url": f"{url}/body/{name}",
            "timeout": 30,
            "conditions": [
                {"source": "status", "op": "eq", "value": 200},
                {"source": "json", "path": path, "op": "exists", "save_as": "SAVED"},
            ],
        }
        for name, path in TARGETS.items()
    ]
    calls.append({"name": "canary", "url": f"{url}/ok"})
    schedules = [
        {"name": "hostile", "every": f"{every}s", "targets": [f"h-{n}" for n in TARGETS]},
        {"name": "canary", "every": f"{every}s", "targets": ["canary"]},
    ]
    return {
        "version": 1,
        "calls": calls,
        "schedules": [s | {"enabled": enabled} for s in schedules],
    }


def descendants(pid: int) -> list[int]:
    """Every process below `pid` (the fork server and its workers)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, queue = [], [pid]
    while queue:
        for child in children.get(queue.pop(), []):
            found.append(child)
            queue.append(child)
    return found


def workers_rss_mib(pid: int) -> float:
    total = 0.0
    for child in descendants(pid):
        with contextlib.suppress(OSError, RuntimeError):  # exited meanwhile
            total += rss_mib(child)
    return total


@dataclass
class Seen:
    started: Counter[str] = field(default_factory=Counter)
    finished: Counter[str] = field(default_factory=Counter)
    names: dict[str, str] = field(default_factory=dict)  # run_id -> name
    canary_due: list[datetime] = field(default_factory=list)
    window: tuple[datetime, datetime] | None = None


async def watch(client: Client, seen: Seen) -> None:
    async for event in client.events():
        if isinstance(event, ScheduleFired) and "canary" in event.targets:
            seen.canary_due.append(event.scheduled_at)
        now = datetime.now(UTC)
        if seen.window is None or not seen.window[0] <= now:
            continue
        if isinstance(event, RunStarted) and now < seen.window[1]:
            seen.started[event.name] += 1
            seen.names[event.run_id] = event.name
        elif isinstance(event, RunFinished) and event.run_id in seen.names:
            seen.finished[seen.names[event.run_id]] += 1


async def bench(args: argparse.Namespace) -> int:
    size = f"4 hostile targets + canary @ {args.every}s"
    server, port = start_server()
    home = Path(tempfile.mkdtemp(prefix="apimd-h-", dir="/tmp"))
    daemon = await start_daemon(home)
    watcher: asyncio.Task[None] | None = None
    try:
        async with daemon.client(timeout=300) as client:
            idle = rss_mib(daemon.pid)
            seen = Seen()
            events = daemon.client()
            watcher = asyncio.create_task(watch(events, seen))
            await asyncio.sleep(1.0)
            await client.apply(project(port, args.every))
            start = datetime.now(UTC) + timedelta(seconds=args.every + 0.5)
            end = start + timedelta(seconds=args.duration)
            seen.window = (start, end)
            await asyncio.sleep((start - datetime.now(UTC)).total_seconds())
            rss: list[float] = []
            workers: list[float] = []
            while datetime.now(UTC) < end:
                rss.append(rss_mib(daemon.pid))
                workers.append(workers_rss_mib(daemon.pid))
                await asyncio.sleep(0.2)
            await client.apply(project(port, args.every, enabled=False))
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                if not (await client.status()).running:
                    break
                await asyncio.sleep(0.2)
            await asyncio.sleep(SETTLE_S)  # the last events arrive; freed memory is handed back
            settled = rss_mib(daemon.pid)
            page = await client.results(since=start.isoformat(), limit=1000)
            watcher.cancel()
            await events.close()

        canary = {
            r.started_at: r for r in page.results if r.name == "canary" and r.started_at < end
        }
        late = []
        for due in seen.canary_due:
            if start <= due < end:
                begun = [s for s in canary if due <= s < due + timedelta(seconds=args.every)]
                late.append((min(begun) - due).total_seconds() * 1000 if begun else float("inf"))
        largest = max((len(r.model_dump_json()) for r in page.results), default=0)
        print(f"daemon RSS peak [{size}]: {max(rss):.1f} MiB (idle {idle:.1f} MiB)")
        print(f"daemon RSS {SETTLE_S:g} s after [{size}]: {settled:.1f} MiB")
        print(f"worker processes RSS peak [{size}]: {max(workers):.1f} MiB")
        if late:
            print(f"canary lateness max [{size}]: {max(late):.0f} ms")
            print(f"canary lateness p50 [{size}]: {percentile(late, 50):.0f} ms")
        else:
            print(f"canary lateness max [{size}]: unavailable (no canary firing seen)")
        vanished = sum(seen.started[n] - seen.finished[n] for n in seen.started)
        print(f"runs vanished [{size}]: {vanished}")
        print(f"largest stored result [{size}]: {largest / 1024:.1f} KiB")
        missed = [
            what
            for what, bad in (
                (f"runs vanished: {vanished}", vanished > 0),
                (f"daemon RSS over {MAX_DAEMON_RSS_MIB} MiB", max(rss) >= MAX_DAEMON_RSS_MIB),
                (
                    f"canary over {MAX_CANARY_LATENESS_MS} ms late",
                    not late or max(late) > MAX_CANARY_LATENESS_MS,
                ),
            )
            if bad
        ]
        for name in [f"h-{n}" for n in TARGETS] + ["canary"]:
            codes = Counter(r.result.value for r in page.results if r.name == name)
            print(
                f"# {name}: {seen.started[name]} started, {seen.finished[name]} finished; "
                + ", ".join(f"{code} {n}" for code, n in codes.most_common())
            )
    finally:
        exited = shut_down(daemon, server, watcher)
    if not exited:
        return 1
    shutil.rmtree(home, ignore_errors=True)
    if missed:
        print(f"# FAILED issue 10's bar: {'; '.join(missed)}", file=sys.stderr)
        return 1
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=60, help="D in seconds (default 60)")
    parser.add_argument("--every", type=int, default=2, help="S in seconds (default 2)")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(serve())
        return 0
    return asyncio.run(bench(args))


if __name__ == "__main__":
    sys.exit(main())
