"""Benchmark of the daemon's scheduler: schedule lateness p50/p99 and daemon RSS with N interval
schedules, each running one monitored call against a local aiohttp server, plus results stored
per second.

    .venv/bin/python bench/daemon_bench.py [--schedules N] [--every S] [--duration D]
                                           [--jitter J] [--dump FILE]

A real `apimd daemon` process runs on a temporary APIMD_HOME (callback port 0). The project applied
to it holds N calls (`c0000`…, each a GET of the local server with one status condition) and N
schedules (`every: S s`, one call each, `jitter: J` when given), applied at once as a user would.
The scheduler spreads the first firings of schedules added together over the last min(S, 60 s) of
the first interval (before it did, all N fired in the same instant, every time). That first
interval is the warm-up; then, for D seconds:

- lateness: the `lateness_ms` of every `schedule.fired` event whose `scheduled_at` falls in the
  window: from the instant a firing was due until the scheduler started its targets. When the
  event stream lags (a burst overflows the daemon's per-client queue) these are a sample;
- run start lateness (no jitter only): from the instant due until the engine started the call
  (the result's `started_at`), for every stored result: an interval schedule is due exactly on
  `one_due + k * S`, and one `schedule.fired` seen for it gives `one_due`. "due to run finished"
  likewise ends at the result's `finished_at`;
- recorded response time: each stored result's `timings_ms.total`. The local server answers in
  about a millisecond; more means the run shared the daemon's event loop with a burst. Beside it,
  the server's own handling time p99 of the requests that arrived in the window, and the
  difference: what the daemon added to the API's recorded time;
- daemon CPU: the daemon process's user + system time over the window, as a share of one core;
- RSS: the daemon's VmRSS (from /proc) sampled every second, final and peak;
- runs per second: results with `trigger: schedule` started in the window, read back through the
  API (so counted once stored).

Everything stays on loopback; the figures of one run are recorded in bench/README.md ("Daemon
scheduling").
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
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

from loopback_server import handling_ms, start_server

from apimd.client import Client
from apimd.model.events import Lagged, ScheduleFired

# Shared with the tests (tests/support): bench/run sets PYTHONPATH, a direct run does not.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.support.daemon import DaemonProcess

STOP_TIMEOUT_S = 30.0
LATE_EVENTS_S = 5.0  # after the window, how long events of firings due inside it may still arrive
DRAIN_MAX_S = 60.0  # runs started in the window time out after 30 s; their results follow


# --- the daemon -------------------------------------------------------------------------------


GC_PROBE = Path(__file__).resolve().parent / "gc_probe"
GC_SHOWN_MS = 5.0  # a collection at least this long is a pause worth naming


async def start_daemon(home: Path, gc_log: Path | None = None) -> DaemonProcess:
    """The daemon of tests/support on `home`, started: it answers `/v1/status`. With `gc_log`,
    its garbage collections are timed into that file (bench/gc_probe, written when it exits)."""
    env: dict[str, str] = {}
    if gc_log is not None:
        path = [str(GC_PROBE), os.environ.get("PYTHONPATH", "")]
        env = {
            "PYTHONPATH": os.pathsep.join(p for p in path if p),
            "APIMD_BENCH_GC_LOG": str(gc_log),
        }
    return await asyncio.to_thread(DaemonProcess(home, extra_env=env).start)


def gc_report(gc_log: Path, start: datetime, end: datetime, firings: list[Firing]) -> list[str]:
    """`#` lines on the daemon's collections in the window, and how many of the firings more than
    25 ms late waited through a collection of at least GC_SHOWN_MS. Removes `gc_log`."""
    try:
        pauses = [tuple(p) for p in json.loads(gc_log.read_text())]
    except (OSError, ValueError):
        return ["# garbage collections: not recorded (the daemon wrote no probe file)"]
    finally:
        gc_log.unlink(missing_ok=True)
    window = [
        (t, g, ms, cpu) for t, g, ms, cpu in pauses if start.timestamp() <= t < end.timestamp()
    ]
    lines = []
    for generation in (0, 1, 2):
        mine = [(ms, cpu) for _t, g, ms, cpu in window if g == generation]
        if mine:
            walls, cpus = [ms for ms, _ in mine], [cpu for _, cpu in mine]
            lines.append(
                f"# gc generation {generation} in the window: {len(mine)} collections, "
                f"longest {max(walls):.1f} ms ({max(cpus):.1f} ms of CPU), "
                f"{sum(walls):.0f} ms in all ({sum(cpus):.0f} ms of CPU)"
            )
    long = [(t - ms / 1000, t) for t, _g, ms, _cpu in window if ms >= GC_SHOWN_MS]
    late = [(due.timestamp(), due.timestamp() + ms / 1000) for due, ms in firings if ms > 25]
    through = sum(1 for a, b in late if any(s < b and e > a for s, e in long))
    lines.append(
        f"# collections of {GC_SHOWN_MS:.0f} ms or more in the window: {len(long)}; "
        f"firings more than 25 ms late: {len(late)}, {through} of them waited through one"
    )
    return lines


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc status")


def cpu_seconds(pid: int) -> tuple[float, float]:
    """The user and system CPU time of process `pid` (all its threads), in seconds."""
    # Fields after the parenthesised command name: utime and stime are the 12th and 13th.
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


# --- the measurement --------------------------------------------------------------------------


def project(schedules: int, every: int, jitter: int, port: int) -> dict[str, Any]:
    width = max(4, len(str(schedules - 1)))
    names = [f"{i:0{width}d}" for i in range(schedules)]
    return {
        "version": 1,
        "calls": [
            {
                "name": f"c{n}",
                "url": f"http://127.0.0.1:{port}/ok",
                "conditions": [{"source": "status", "op": "eq", "value": 200}],
            }
            for n in names
        ],
        "schedules": [
            {"name": f"s{n}", "every": f"{every}s", "targets": [f"c{n}"]}
            | ({"jitter": jitter} if jitter else {})
            for n in names
        ],
    }


Firing = tuple[datetime, float]
"""(scheduled_at, lateness ms) of a `schedule.fired`."""


@dataclass
class Collected:
    firings: list[Firing] = field(default_factory=list)
    grid: dict[str, datetime] = field(default_factory=dict)  # target -> one of its due instants
    missed: int = 0


async def collect(client: Client, into: Collected) -> None:
    async for event in client.events():
        if isinstance(event, ScheduleFired):
            into.firings.append((event.scheduled_at, event.lateness_ms))
            for target in event.targets:
                into.grid.setdefault(target, event.scheduled_at)
        elif isinstance(event, Lagged):
            into.missed += event.missed


async def drain(client: Client, args: argparse.Namespace) -> bool:
    """Disable the schedules and wait until no run is in flight, so every run started in the
    window has stored its result. False when runs were still going after DRAIN_MAX_S."""
    disabled = project(args.schedules, args.every, args.jitter, 0)["schedules"]
    await client.apply({"version": 1, "schedules": [s | {"enabled": False} for s in disabled]})
    deadline = time.monotonic() + DRAIN_MAX_S
    while time.monotonic() < deadline:
        if not (await client.status()).running:
            return True
        await asyncio.sleep(0.2)
    return False


@dataclass
class Stored:
    """Results with `trigger: schedule` started in the window, and for those whose schedule's
    grid is known, the time from the instant due to the run's start and to its end (ms)."""

    count: int = 0
    codes: Counter[str] = field(default_factory=Counter)
    response_ms: list[float] = field(default_factory=list)  # each result's recorded total
    phases_ms: dict[str, list[float]] = field(default_factory=dict)  # dns, connect, … per result
    started_late: list[float] = field(default_factory=list)
    finished_after: list[float] = field(default_factory=list)


async def read_results(
    client: Client, start: datetime, end: datetime, grid: dict[str, datetime], every: int | None
) -> Stored:
    """Lossless where the event stream is not: an interval schedule without jitter is due exactly
    on `one_due + k * every`, so one `schedule.fired` seen for it (warm-up included) places every
    stored run of it."""
    stored = Stored()
    interval = None if every is None else timedelta(seconds=every)
    cursor: str | None = None
    while True:
        page = await client.results(since=start.isoformat(), limit=1000, cursor=cursor)
        for result in page.results:
            if result.trigger != "schedule" or result.started_at >= end:
                continue
            stored.count += 1
            stored.codes[result.result.value] += 1
            stored.response_ms.append(result.timings_ms.total)
            for phase in PHASES:
                stored.phases_ms.setdefault(phase, []).append(getattr(result.timings_ms, phase))
            known = grid.get(result.name)
            if interval is None or known is None:
                continue
            due = known + ((result.started_at - known) // interval) * interval
            stored.started_late.append((result.started_at - due) / timedelta(milliseconds=1))
            stored.finished_after.append((result.finished_at - due) / timedelta(milliseconds=1))
        if page.next_cursor is None:
            return stored
        cursor = page.next_cursor


PHASES = ("dns", "connect", "send", "wait", "receive")


def phase_line(stored: Stored) -> str:
    """`#` line: each phase's p99 (ms) over the stored results, to see where `total`'s goes."""
    shown = ", ".join(f"{p} {percentile(stored.phases_ms[p], 99):.1f}" for p in PHASES)
    return f"# recorded phases p99: {shown} ms"


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


async def bench(args: argparse.Namespace) -> int:
    size = f"{args.schedules} schedules @ {args.every}s"
    if args.jitter:
        size += f", jitter {args.jitter}s"
    load_before = os.getloadavg()[0]
    server, port = start_server("/ok", {"ok": True, "items": [1, 2, 3]})
    home = Path(tempfile.mkdtemp(prefix="apimd-b-", dir="/tmp"))
    gc_log = Path(tempfile.mkstemp(prefix="apimd-gc-", suffix=".json", dir="/tmp")[1])
    daemon = await start_daemon(home, gc_log)
    collector: asyncio.Task[None] | None = None
    try:
        async with Client(home / "apimd.sock", timeout=300) as client:
            idle_rss = rss_mib(daemon.pid)

            collected = Collected()
            events_client = Client(home / "apimd.sock")
            collector = asyncio.create_task(collect(events_client, collected))
            await asyncio.sleep(1.0)  # subscribed long before the first firing anyway

            apply_started = time.monotonic()
            await client.apply(project(args.schedules, args.every, args.jitter, port))
            applied = datetime.now(UTC)
            apply_s = time.monotonic() - apply_started
            print(f"# applied {args.schedules} calls and schedules in {apply_s:.1f} s", flush=True)

            # Warm-up: one interval, by whose end every schedule has fired once.
            start = applied + timedelta(seconds=args.every + 0.5)
            end = start + timedelta(seconds=args.duration)
            await asyncio.sleep((start - datetime.now(UTC)).total_seconds())
            cpu_start, wall_start = cpu_seconds(daemon.pid), time.monotonic()
            samples: list[float] = []
            while datetime.now(UTC) < end:
                samples.append(rss_mib(daemon.pid))
                await asyncio.sleep(1.0)
            cpu_end = cpu_seconds(daemon.pid)
            user_s, system_s = (cpu_end[i] - cpu_start[i] for i in (0, 1))
            cpu_used = user_s + system_s
            cpu = cpu_used / (time.monotonic() - wall_start)
            samples.append(rss_mib(daemon.pid))
            await asyncio.sleep(LATE_EVENTS_S)
            drained = await drain(client, args)

            in_window = [(due, ms) for due, ms in collected.firings if start <= due < end]
            lateness = [ms for _due, ms in in_window]
            grid_every = None if args.jitter else args.every
            stored = await read_results(client, start, end, collected.grid, grid_every)
            server_ms = handling_ms(server, start.timestamp(), end.timestamp())
            collector.cancel()
            await events_client.close()
            if args.dump:
                dump(args.dump, collected, stored, samples)

        expected = args.schedules * args.duration // args.every
        # A lagging event stream leaves a sample; say so on the figure itself.
        sampled = f" (sample: {len(lateness)} of {expected} firings)" if collected.missed else ""
        if lateness:
            print(f"lateness p50 [{size}]: {percentile(lateness, 50):.1f} ms{sampled}")
            print(f"lateness p99 [{size}]: {percentile(lateness, 99):.1f} ms{sampled}")
            print(f"lateness max [{size}]: {max(lateness):.1f} ms{sampled}")
        else:
            for p in ("p50", "p99", "max"):
                print(f"lateness {p} [{size}]: unavailable (no schedule.fired event came through)")
        if stored.started_late:
            late, done = stored.started_late, stored.finished_after
            placed = len(late)
            sampled = f" (sample: {placed} of {stored.count} runs)" if placed < stored.count else ""
            print(f"run start lateness p50 [{size}]: {percentile(late, 50):.1f} ms{sampled}")
            print(f"run start lateness p99 [{size}]: {percentile(late, 99):.1f} ms{sampled}")
            print(
                f"# due to run finished: p50 {percentile(done, 50):.1f} ms, "
                f"p99 {percentile(done, 99):.1f} ms"
            )
        if stored.response_ms:
            recorded = stored.response_ms
            print(f"recorded response time p50 [{size}]: {percentile(recorded, 50):.1f} ms")
            print(f"recorded response time p99 [{size}]: {percentile(recorded, 99):.1f} ms")
            print(phase_line(stored))
        if server_ms:
            own = percentile(server_ms, 99)
            print(f"server handling time p99 [{size}]: {own:.1f} ms")
            if stored.response_ms:
                added = percentile(stored.response_ms, 99) - own
                print(f"recorded response time p99 minus the server's [{size}]: {added:.1f} ms")
        print(f"daemon CPU [{size}]: {cpu * 100:.0f} % of one core")
        if stored.count:
            # Much steadier than the share of a core on a loaded machine: a run costs what it costs.
            per_run = cpu_used * 1000 / stored.count
            print(
                f"# daemon CPU per stored run: {per_run:.2f} ms (target: 1.5 ms at 167 runs/s;"
                f" user {user_s * 1000 / stored.count:.2f}, system"
                f" {system_s * 1000 / stored.count:.2f} ms)"
            )
        print(f"RSS [{size}]: {samples[-1]:.1f} MiB (peak {max(samples):.1f} MiB)")
        print(f"runs per second [{size}]: {stored.count / args.duration:.1f} /s")
        print(f"# schedule.fired events in the window: {len(lateness)} of about {expected} due")
        if in_window:
            # How evenly the schedules are spread over their interval (by due instant).
            per_second = Counter(int((due - start).total_seconds()) for due, _ms in in_window)
            seconds = [per_second.get(s, 0) for s in range(args.duration)]
            print(
                f"# firings due per second of the window: min {min(seconds)}, "
                f"median {percentile([float(n) for n in seconds], 50):.0f}, max {max(seconds)}"
            )
        unplaced = stored.count - len(stored.started_late)
        print(
            f"# results stored in the window: {stored.count}; placed on their schedule's grid: "
            f"{len(stored.started_late)}"
            + (
                f" ({unplaced} belong to schedules none of whose firings the event stream delivered)"
                if unplaced and not args.jitter
                else ""
            )
        )
        if not drained:
            print(
                f"# runs were still in flight {DRAIN_MAX_S:.0f} s after the window: the daemon "
                "did not keep up, and results of runs started in the window may be missing"
            )
        codes = ", ".join(f"{code} {n}" for code, n in stored.codes.most_common())
        print(f"# results by code: {codes}")
        print(f"# daemon RSS before apply: {idle_rss:.1f} MiB")
        print(f"# server requests in the window: {len(server_ms)}")
        print(
            f"# load average (1 min) before and after: {load_before:.2f}, {os.getloadavg()[0]:.2f}"
        )
        if collected.missed:
            print(
                f"# the event stream lagged: {collected.missed} event(s) missed, so the lateness "
                "and run start figures above are samples; the recorded response times and runs "
                "per second cover every stored result"
            )
    finally:
        exited = shut_down(daemon, server, collector)
    if not exited:
        return 1
    for line in gc_report(gc_log, start, end, in_window):
        print(line)
    print("# the daemon exited 0 on SIGTERM")
    if args.dump:
        print(f"# kept the daemon's home for a look: {home}")
    else:
        shutil.rmtree(home, ignore_errors=True)
    return 0


def dump(path: Path, collected: Collected, stored: Stored, rss: list[float]) -> None:
    """The raw samples as JSON, to look for a pattern behind a bad percentile."""
    data = {
        "firings": [[due.isoformat(), ms] for due, ms in collected.firings],
        "started_late_ms": stored.started_late,
        "finished_after_ms": stored.finished_after,
        "rss_mib": rss,
    }
    path.write_text(json.dumps(data))


def shut_down(
    daemon: DaemonProcess, server: subprocess.Popen[str], listener: asyncio.Task[None] | None
) -> bool:
    """Cancel the event `listener` (if it started), SIGTERM the daemon and stop the loopback
    server; False, with the tail of the daemon's output on stderr, when the daemon did not exit 0."""
    if listener is not None:
        listener.cancel()
    code = daemon.terminate(STOP_TIMEOUT_S)
    assert server.stdin is not None
    server.stdin.close()
    server.wait(10)
    if code != 0:
        sys.stderr.write(daemon.output()[-4000:])
        print(f"# the daemon exited with {code} after SIGTERM (expected 0)", file=sys.stderr)
    daemon.remove(keep_home=True)
    return code == 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--schedules", type=int, default=1000, help="N (default 1000)")
    parser.add_argument("--every", type=int, default=10, help="interval S in seconds (default 10)")
    parser.add_argument("--duration", type=int, default=60, help="D in seconds (default 60)")
    parser.add_argument(
        "--jitter", type=int, default=0, help="each schedule's `jitter` in seconds (default 0)"
    )
    parser.add_argument(
        "--dump",
        type=Path,
        help="write the raw samples to this JSON file (and keep the daemon's home)",
    )
    args = parser.parse_args()
    if args.schedules < 1 or args.every < 1 or args.duration < 1 or args.jitter < 0:
        parser.error("--schedules, --every and --duration must be positive, --jitter not negative")
    return asyncio.run(bench(args))


if __name__ == "__main__":
    sys.exit(main())
