"""Benchmark of the TUI: key-press-to-repaint latency on a dashboard of 1,000 monitors (idle and
with 50 `run.finished` events a second), the TUI's CPU with those events, and the first paint of
the dashboard with 10,000 monitors.

    .venv/bin/python bench/tui_bench.py [--monitors 1000] [--presses 200] [--rate 50]
                                        [--cpu-seconds 20] [--paint-monitors 10000]

No daemon: the app gets an in-process client implementing `apimd.tui.ports.DaemonClient` (on
`tests.support.clients.EmptyDaemon`) that
answers from memory, but parses what it serves from JSON the way `apimd.client.Client` does
(`parse_summary` on the JSON text, in a thread; events as decoded JSON dicts), so the TUI's own work is
all measured. The app runs headless under Textual's Pilot at 120×40; every frame Textual hands to
the driver is serialised to terminal escape sequences (`render_segments`, what the real driver
does before writing) so that cost counts too; only the write to a terminal is missing. Prints one
`NAME [size]: VALUE UNIT` line per figure. Method and figures: bench/README.md ("TUI").
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import statistics
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from apimd.model.api import (
    StatusInfo,
    Summary,
    SummaryOrder,
    TargetSummary,
    parse_summary,
)
from apimd.model.events import Event, decode_event
from apimd.model.outcome import Outcome, ResultCode
from apimd.model.stats import Stats
from apimd.tui.app import ApimdApp, build_app
from apimd.tui.keys import TuiSettings
from apimd.tui.screens.dashboard import DashboardScreen
from apimd.tui.widgets.monitor_table import FIRST_ROWS

# Shared with the tests (tests/support): bench/run sets PYTHONPATH, a direct run does not.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.support import polling
from tests.support.clients import EmptyDaemon, served

SIZE = (120, 40)
SOCKET = Path("/tmp/apimd-bench/apimd.sock")
OUTCOMES = [Outcome.PASS] * 90 + [Outcome.FAIL] * 4 + [Outcome.WARNING] * 3 + [Outcome.SLOW] * 3
CODE = {
    Outcome.PASS: ResultCode.COMPLETE,
    Outcome.FAIL: ResultCode.HTTP_SERVER_ERROR,
    Outcome.WARNING: ResultCode.CONTENT_WARNING,
    Outcome.SLOW: ResultCode.SLOW_COMPLETE,
}


def summary_json(count: int, rng: random.Random) -> str:
    """`GET /v1/summary` for `count` calls on 30 s schedules, as the daemon would send it."""
    now = datetime.now(UTC)
    targets = []
    for index in range(count):
        outcome = rng.choice(OUTCOMES)
        targets.append(
            TargetSummary(
                name=f"svc-{index:05d}-health",
                kind="call",
                outcome=outcome,
                result=CODE[outcome],
                http_status=500 if outcome is Outcome.FAIL else 200,
                last_run=now - timedelta(seconds=rng.uniform(0, 30)),
                last_result_id=f"r-{index}",
                recent_ms=[round(rng.lognormvariate(4, 0.4), 1) for _ in range(20)],
                counts={Outcome.PASS: 2870, Outcome.FAIL: rng.choice((0, 0, 0, 10))},
                uptime=1.0,
                next_run=now + timedelta(seconds=rng.uniform(0, 30)),
                tags=["bench", f"team-{index % 7}"],
            )
        )
    summary = Summary(generated_at=now, window_s=86400, targets=targets)
    return summary.model_dump_json()


class BenchClient(EmptyDaemon):
    """A daemon in memory: `summary` from JSON, events from a queue (`inject`)."""

    def __init__(self, monitors: int, seed: int = 7) -> None:
        super().__init__(SOCKET)
        self.monitors = monitors
        self._summary = summary_json(monitors, random.Random(seed))
        self._events: asyncio.Queue[str] = asyncio.Queue()
        self._heads: dict[tuple[SummaryOrder, int], str] = {}
        self._head("dashboard", FIRST_ROWS)  # what the dashboard asks for first

    def inject(self, event: dict[str, Any]) -> None:
        self._events.put_nowait(json.dumps(event))

    async def status(self) -> StatusInfo:
        return StatusInfo(
            version="bench",
            pid=os.getpid(),
            started_at=datetime.now(UTC),
            uptime_s=0,
            counts={"calls": self.monitors},
            scheduler="running",
            schedules=self.monitors,
            callback_url="http://127.0.0.1:8765/tokens/callback",
            callback_bound=True,
            db_path="/tmp/apimd-bench/apimd.db",
            socket_path=str(self.socket_path),
        )

    async def summary(
        self, *, window: str = "24h", order: SummaryOrder = "project", limit: int | None = None
    ) -> Summary:
        text = self._summary if limit is None else self._head(order, limit)
        return await asyncio.to_thread(parse_summary, text)  # as `Client.summary` does

    def _head(self, order: SummaryOrder, limit: int) -> str:
        """The daemon's answer to `order` and `limit`, made once (its cost is the daemon's)."""
        if (order, limit) not in self._heads:
            whole = parse_summary(self._summary)
            self._heads[order, limit] = served(whole, order, limit).model_dump_json()
        return self._heads[order, limit]

    async def events(self) -> AsyncIterator[Event]:
        while True:  # parsed from JSON as `Client.events` does
            if (event := decode_event(await self._events.get())) is not None:
                yield event

    async def stats(self, name: str, *, window: str = "24h") -> Stats:
        now = datetime.now(UTC)
        return Stats(name=name, since=now - timedelta(days=1), until=now)


class Frames:
    """Wraps `App._display`: serialises each frame as the terminal driver would, counts frames,
    and calls `on_frame` after each."""

    def __init__(self, app: ApimdApp) -> None:
        self.count = 0
        self.on_frame: Callable[[], None] | None = None
        original = app._display

        def display(screen: Any, renderable: Any) -> None:
            if renderable is not None and hasattr(renderable, "render_segments"):
                renderable.render_segments(app.console)
            original(screen, renderable)
            if renderable is not None:
                self.count += 1
                if self.on_frame is not None:
                    self.on_frame()

        app._display = display  # type: ignore[method-assign]


def make_app(client: BenchClient) -> tuple[ApimdApp, Frames]:
    app = build_app(SOCKET, settings=TuiSettings(), client=client, environ={})
    return app, Frames(app)


async def until(check: Callable[[], object], within_s: float = 60.0) -> None:
    await polling.until(check, timeout=within_s, interval=0.005)


def dashboard_of(app: ApimdApp) -> DashboardScreen:
    screen = app.screen
    assert isinstance(screen, DashboardScreen)
    return screen


async def inject_events(
    client: BenchClient, rate: float, rng: random.Random, *, companions: bool = False
) -> None:
    """`rate` run.finished events a second, spread evenly, for random monitors. `companions`:
    each run also announced as a daemon does, `schedule.fired` and `run.started` one period
    before its `run.finished` (three events per run)."""
    period = 1.0 / rate
    next_at = time.monotonic()
    started: tuple[str, str] | None = None
    while True:
        now = datetime.now(UTC).isoformat()
        name = f"svc-{rng.randrange(client.monitors):05d}-health"
        run_id = f"{rng.getrandbits(64):016x}"
        if companions:
            client.inject(
                {
                    "type": "schedule.fired",
                    "at": now,
                    "schedule": f"s-{name}",
                    "targets": [name],
                    "scheduled_at": now,
                    "lateness_ms": 0.0,
                }
            )
            client.inject(
                {
                    "type": "run.started",
                    "at": now,
                    "run_id": run_id,
                    "kind": "call",
                    "name": name,
                    "trigger": "schedule",
                }
            )
            started, (run_id, name) = (run_id, name), started or (run_id, name)
        outcome = rng.choice(OUTCOMES)
        client.inject(
            {
                "type": "run.finished",
                "at": now,
                "run_id": run_id,
                "result_id": run_id,
                "kind": "call",
                "name": name,
                "trigger": "schedule",
                "outcome": outcome.value,
                "result": CODE[outcome].value,
                "http_status": 500 if outcome is Outcome.FAIL else 200,
                "total_ms": round(rng.lognormvariate(4, 0.4), 1),
            }
        )
        next_at += period
        await asyncio.sleep(max(0.0, next_at - time.monotonic()))


async def key_to_repaint(monitors: int, presses: int, rate: float) -> list[float]:
    """Milliseconds from posting each `down` key to the end of the first frame drawn after the
    table handled it (`action_cursor_down` ran); `rate` events a second meanwhile (0: idle)."""
    client = BenchClient(monitors)
    app, frames = make_app(client)
    latencies: list[float] = []
    async with app.run_test(size=SIZE) as pilot:
        screen = dashboard_of(app)
        await until(lambda: screen.table.row_count == monitors)
        await asyncio.sleep(0.5)
        injector = (
            asyncio.create_task(inject_events(client, rate, random.Random(1))) if rate else None
        )
        await asyncio.sleep(1.0 if rate else 0.1)
        table = screen.table
        handled: list[bool] = []
        cursor_down = table.action_cursor_down

        def counted_cursor_down() -> None:
            cursor_down()
            handled.append(True)

        table.action_cursor_down = counted_cursor_down  # type: ignore[method-assign]
        for _ in range(presses):
            handled.clear()
            painted: list[float] = []

            def frame(painted: list[float] = painted) -> None:
                if handled and not painted:
                    painted.append(time.perf_counter())

            frames.on_frame = frame
            started = time.perf_counter()
            await pilot.press("down")
            await until(lambda painted=painted: painted, within_s=10)  # type: ignore[misc]
            latencies.append((painted[0] - started) * 1000)
            frames.on_frame = None
            await asyncio.sleep(0.03)  # a fast typist's key repeat; lets the screen settle
        if injector is not None:
            injector.cancel()
    return latencies


async def cpu_with_events(
    monitors: int, rate: float, seconds: float, *, companions: bool = False
) -> tuple[float, float]:
    """CPU of this process (the TUI, the fake client, the event injector) per wall second while
    `rate` runs a second finish (`inject_events`); and frames per second."""
    client = BenchClient(monitors)
    app, frames = make_app(client)
    async with app.run_test(size=SIZE):
        screen = dashboard_of(app)
        await until(lambda: screen.table.row_count == monitors)
        await asyncio.sleep(1.0)
        injector = asyncio.create_task(
            inject_events(client, rate, random.Random(2), companions=companions)
        )
        await asyncio.sleep(1.0)  # steady state
        first_frames = frames.count
        cpu0, wall0 = time.process_time(), time.perf_counter()
        await asyncio.sleep(seconds)
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        frame_count = frames.count - first_frames
        injector.cancel()
        backlog = client._events.qsize()
    assert backlog < 3 * rate, f"{backlog} events were still queued: the TUI fell behind"
    return cpu / wall * 100, frame_count / wall


@dataclass
class FirstPaint:
    """`first_paint`'s figures, seconds from creating the app."""

    painted: float
    """The first frame showing a screenful of rows (all of them if fewer)."""
    whole: float
    """The first frame with every row in the table."""
    parse: float
    """The whole summary's JSON parse alone (measured apart, before)."""
    cpu: float
    """CPU of this process (all threads) until `painted`."""
    phases: dict[str, float]
    """When each step happened: the first frame, connected, each summary answered."""


async def first_paint(monitors: int) -> FirstPaint:
    """From creating the app to the dashboard's first screenful of rows and to its whole table;
    with `monitors` 0 (an empty summary), the floor: Textual's start-up, the connection and one
    summary request."""
    client = BenchClient(monitors)
    parse_started = time.perf_counter()
    await client.summary()
    parse = time.perf_counter() - parse_started
    phases: dict[str, float] = {}
    status, summary = client.status, client.summary

    async def timed_status() -> StatusInfo:
        answer = await status()
        phases.setdefault("connected", time.perf_counter() - started)
        return answer

    async def timed_summary(
        *, window: str = "24h", order: SummaryOrder = "project", limit: int | None = None
    ) -> Summary:
        answer = await summary(window=window, order=order, limit=limit)
        what = "head" if limit is not None and not answer.complete else "summary"
        phases.setdefault(f"{what} parsed", time.perf_counter() - started)
        return answer

    client.status = timed_status  # type: ignore[method-assign]
    client.summary = timed_summary  # type: ignore[method-assign]
    cpu_started, started = time.process_time(), time.perf_counter()
    app, frames = make_app(client)
    screenful = min(monitors, SIZE[1] - 4)
    painted: list[float] = []
    complete: list[float] = []

    def frame() -> None:
        phases.setdefault("first frame", time.perf_counter() - started)
        screen = app.screen
        if not isinstance(screen, DashboardScreen):
            return
        rows = screen.table.row_count
        if not painted and rows >= screenful and (rows or screen.summaries):
            painted.append(time.perf_counter())
            phases["cpu"] = time.process_time() - cpu_started
        if not complete and rows == monitors and (rows or screen.summaries):
            complete.append(time.perf_counter())

    frames.on_frame = frame
    async with app.run_test(size=SIZE):
        await until(lambda: complete)
    cpu = phases.pop("cpu")
    return FirstPaint(painted[0] - started, complete[0] - started, parse, cpu, phases)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def size(number: int) -> str:
    return f"{number:,}"


async def main(args: argparse.Namespace) -> None:
    load = os.getloadavg()[0]
    print(
        f"# {datetime.now(UTC):%Y-%m-%d %H:%M} UTC · {platform.machine()} · "
        f"{os.cpu_count()} CPUs · Python {platform.python_version()} · load {load:.2f}"
    )
    n = args.monitors
    for rate in (0.0, args.rate):
        latencies = await key_to_repaint(n, args.presses, rate)
        what = f"{size(n)} monitors, " + (f"{rate:g} events/s" if rate else "idle")
        print(f"tui key-to-repaint p50 [{what}]: {statistics.median(latencies):.1f} ms")
        print(f"tui key-to-repaint p95 [{what}]: {percentile(latencies, 0.95):.1f} ms")
        print(f"tui key-to-repaint max [{what}]: {max(latencies):.1f} ms")
    for companions in (False, True):
        cpu, fps = await cpu_with_events(n, args.rate, args.cpu_seconds, companions=companions)
        events = "+ run.started + schedule.fired" if companions else ""
        what = f"{size(n)} monitors, {args.rate:g} run.finished/s {events}, {args.cpu_seconds:g} s"
        what = what.replace("/s ,", "/s,")
        print(f"tui CPU [{what}]: {cpu:.1f} % of one core")
        print(f"tui frames [{what}]: {fps:.1f} /s")
    for monitors in (0, n, args.paint_monitors):
        paint = await first_paint(monitors)
        what = f"{size(monitors)} monitors" if monitors else "floor: an empty summary"
        print(f"tui first paint [{what}]: {paint.painted:.2f} s")
        print(f"tui first paint CPU [{what}]: {paint.cpu * 1000:.0f} ms")
        if monitors:
            print(f"tui whole table [{what}]: {paint.whole:.2f} s")
            print(f"tui summary parse [{what}]: {paint.parse * 1000:.0f} ms")
        steps = sorted(paint.phases.items(), key=lambda step: step[1])
        print(f"# first paint [{what}]: " + ", ".join(f"{k} {v:.2f} s" for k, v in steps))
    print(f"# load average (1 min) before and after: {load:.2f}, {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--monitors", type=int, default=1000)
    parser.add_argument("--presses", type=int, default=200)
    parser.add_argument("--rate", type=float, default=50.0, help="run.finished events a second")
    parser.add_argument("--cpu-seconds", type=float, default=20.0)
    parser.add_argument("--paint-monitors", type=int, default=10000)
    sys.exit(asyncio.run(main(parser.parse_args())))
