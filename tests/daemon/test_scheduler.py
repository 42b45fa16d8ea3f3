"""The schedule runner on a real event loop and a real clock (SPEC §2 Schedules, issue 4)."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock_time
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from apimd.daemon import scheduler as scheduler_module
from apimd.daemon.scheduler import ScheduleRunner
from apimd.model import Schedule
from tests.support.polling import until


def schedule(name: str, targets: list[str], **fields: Any) -> Schedule:
    if "cron" not in fields:
        fields.setdefault("every", "1s")
    return Schedule.model_validate({"name": name, "targets": targets, **fields})


class Targets:
    """A fake `run_target`: records each run and how many runs of a target overlapped."""

    def __init__(
        self,
        duration: float = 0.0,
        error: Exception | None = None,
        durations: dict[str, float] | None = None,
    ) -> None:
        self.duration = duration
        self.durations = durations or {}
        self.error = error
        self.release: asyncio.Event | None = None
        self.runs: list[tuple[str, str]] = []
        self.due: list[datetime] = []  # the due instant each run was given
        self.skipped: list[tuple[str, str, datetime]] = []  # (schedule, target, due)
        self.fired: list[tuple[str, list[str]]] = []
        self.scheduled: list[tuple[datetime, datetime]] = []  # (scheduled_at, when on_fired ran)
        self.active: Counter[str] = Counter()
        self.max_active: Counter[str] = Counter()

    async def run(self, target: str, schedule_name: str, due: datetime) -> None:
        self.runs.append((target, schedule_name))
        self.due.append(due)
        self.active[target] += 1
        self.max_active[target] = max(self.max_active[target], self.active[target])
        try:
            if self.release is not None:
                await self.release.wait()
            await asyncio.sleep(self.durations.get(target, self.duration))
            if self.error is not None:
                raise self.error
        finally:
            self.active[target] -= 1

    async def on_skipped(self, schedule_name: str, target: str, due: datetime) -> None:
        self.skipped.append((schedule_name, target, due))

    def on_fired(self, schedule_name: str, targets: list[str], scheduled_at: datetime) -> None:
        self.fired.append((schedule_name, targets))
        self.scheduled.append((scheduled_at, datetime.now(UTC)))

    def count(self, target: str) -> int:
        return sum(1 for name, _ in self.runs if name == target)


RunnerFactory = Callable[[Targets], Awaitable[ScheduleRunner]]


@pytest.fixture
async def start_runner() -> AsyncIterator[RunnerFactory]:
    runners: list[ScheduleRunner] = []

    async def start(targets: Targets) -> ScheduleRunner:
        runner = ScheduleRunner(
            targets.run, on_fired=targets.on_fired, on_skipped=targets.on_skipped
        )
        await runner.start()
        runners.append(runner)
        return runner

    yield start
    for runner in runners:
        await runner.shutdown()


def approx_now_plus(when: datetime, delta: timedelta) -> bool:
    return abs(when - (datetime.now(UTC) + delta)) < timedelta(seconds=5)


async def test_a_one_second_schedule_fires_about_once_a_second(
    start_runner: RunnerFactory,
) -> None:
    targets = Targets()
    runner = await start_runner(targets)
    assert runner.state == "running"
    runner.sync([schedule("every-second", ["health"])])

    await asyncio.sleep(3.3)

    assert 2 <= targets.count("health") <= 4
    assert set(targets.runs) == {("health", "every-second")}
    assert targets.fired[0] == ("every-second", ["health"])
    assert len(targets.fired) == targets.count("health")


async def test_on_fired_is_told_the_instant_each_firing_was_due(
    start_runner: RunnerFactory,
) -> None:
    targets = Targets()
    runner = await start_runner(targets)
    runner.sync([schedule("every-second", ["health"])])

    await until(lambda: len(targets.scheduled) >= 3, timeout=5, interval=0.02)

    due = [scheduled_at for scheduled_at, _ in targets.scheduled]
    assert all(when.utcoffset() == timedelta(0) for when in due)
    # The start-time grid, not the moment the job happened to run.
    assert {later - earlier for earlier, later in itertools.pairwise(due)} == {timedelta(seconds=1)}
    for scheduled_at, fired_at in targets.scheduled:
        assert timedelta(0) <= fired_at - scheduled_at < timedelta(milliseconds=500)


async def test_sync_adds_replaces_and_removes_jobs(start_runner: RunnerFactory) -> None:
    runner = await start_runner(Targets())

    runner.sync([schedule("hourly", ["a"], every="1h"), schedule("daily", ["b"], every="24h")])
    runs = runner.next_runs()
    assert set(runs) == {"a", "b"}
    assert approx_now_plus(runs["a"], timedelta(hours=1))
    assert approx_now_plus(runs["b"], timedelta(hours=24))

    runner.sync([schedule("hourly", ["a"], every="2h"), schedule("daily", ["b"], every="24h")])
    assert approx_now_plus(runner.next_runs()["a"], timedelta(hours=2))

    runner.sync([schedule("hourly", ["a"], every="2h")])
    assert set(runner.next_runs()) == {"a"}

    runner.sync([schedule("hourly", ["a"], every="2h", enabled=False)])
    assert runner.next_runs() == {}

    runner.sync([schedule("hourly", ["a"], every="2h")])
    assert set(runner.next_runs()) == {"a"}


async def test_interval_schedules_added_together_are_spread_over_the_interval(
    start_runner: RunnerFactory,
) -> None:
    # A thousand schedules applied at once must not all fire in the same instant, every time.
    runner = await start_runner(Targets())
    runner.sync(
        [schedule(f"ten-{i}", [f"t{i}"], every="10s") for i in range(10)]
        + [schedule("hourly-a", ["a"], every="1h"), schedule("hourly-b", ["b"], every="1h")]
        + [schedule("lone", ["lone"], every="30m")]
    )
    runs = runner.next_runs()

    firsts = [runs[f"t{i}"] for i in range(10)]
    # Evenly over the 10 s interval; none later than one interval from now.
    assert approx_now_plus(firsts[-1], timedelta(seconds=10))
    assert {later - earlier for earlier, later in itertools.pairwise(firsts)} == {
        timedelta(seconds=1)
    }
    # Longer intervals are spread over their last minute at most.
    assert runs["b"] - runs["a"] == timedelta(seconds=30)
    assert approx_now_plus(runs["b"], timedelta(hours=1))
    # A lone schedule fires one interval from now.
    assert approx_now_plus(runs["lone"], timedelta(minutes=30))

    # Added later, an unchanged schedule keeps its time; a new one is a group of its own.
    runner.sync(
        [schedule(f"ten-{i}", [f"t{i}"], every="10s") for i in range(11)]
        + [schedule("hourly-a", ["a"], every="1h"), schedule("hourly-b", ["b"], every="1h")]
        + [schedule("lone", ["lone"], every="30m")]
    )
    again = runner.next_runs()
    assert {name: again[name] for name in runs} == runs
    assert approx_now_plus(again["t10"], timedelta(seconds=10))


async def test_a_schedule_replaced_by_one_that_cannot_run_stops_firing(
    start_runner: RunnerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    # PUT and apply refuse such a schedule; one stored before that check (a database from an
    # older apimd) must not leave the definition it replaced firing in its name.
    targets = Targets()
    runner = await start_runner(targets)
    every_second = schedule("s", ["t"], every="1s")
    runner.sync([every_second])
    await until(lambda: len(targets.fired) >= 1, timeout=5, interval=0.02)
    unrunnable = every_second.model_copy(update={"every": "99999999d"})
    assert scheduler_module.schedule_problem(unrunnable) is not None
    with caplog.at_level(logging.ERROR, logger=scheduler_module.__name__):
        runner.sync([unrunnable])
    assert runner.next_fire("s") is None
    assert runner.next_fire_times() == {}
    fired = len(targets.fired)
    await asyncio.sleep(1.5)
    assert len(targets.fired) == fired
    assert "schedule s is not scheduled: `every` reaches past the last date" in caplog.text


async def test_unchanged_schedules_keep_their_next_run_time(start_runner: RunnerFactory) -> None:
    runner = await start_runner(Targets())
    # Jitter makes a re-created job land on a different time, so "kept" is visible.
    kept = schedule("kept", ["a"], every="1h", jitter=600)
    changed = schedule("changed", ["b"], every="1h", jitter=600)
    runner.sync([kept, changed])
    before = runner.next_runs()
    await asyncio.sleep(0.05)

    runner.sync(
        [
            Schedule.model_validate(kept.model_dump()),
            changed.model_copy(update={"description": "now documented"}),
        ]
    )

    after = runner.next_runs()
    assert after["a"] == before["a"]
    assert after["b"] != before["b"]


async def test_next_runs_gives_each_target_its_earliest_time_in_utc(
    start_runner: RunnerFactory,
) -> None:
    runner = await start_runner(Targets())
    runner.sync(
        [
            schedule("slow", ["shared", "only-slow"], every="2h"),
            schedule("fast", ["shared"], every="30m"),
        ]
    )

    runs = runner.next_runs()

    assert set(runs) == {"shared", "only-slow"}
    assert all(when.utcoffset() == timedelta(0) for when in runs.values())
    assert approx_now_plus(runs["shared"], timedelta(minutes=30))
    assert approx_now_plus(runs["only-slow"], timedelta(hours=2))


async def test_a_slow_target_never_overlaps_itself(
    start_runner: RunnerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="apimd.daemon.scheduler")
    targets = Targets(duration=2.5)
    runner = await start_runner(targets)
    runner.sync([schedule("every-second", ["slow"])])

    await until(lambda: "slow" in runner.running(), timeout=5, interval=0.02)
    assert runner.running() == {"slow"}
    await asyncio.sleep(3.6)

    assert targets.max_active["slow"] == 1
    # Firings during a run are skipped, not queued: at most the first run and one more started.
    assert 1 <= targets.count("slow") <= 2
    assert "skipping slow" in caplog.text
    # Each skipped firing is reported with its due instant (the daemon records it SKIPPED).
    assert len(targets.skipped) >= 2
    assert {(s, t) for s, t, _ in targets.skipped} == {("every-second", "slow")}
    dues = [due for *_, due in targets.skipped]
    assert dues == sorted(dues) and len(set(dues)) == len(dues)
    assert not set(dues) & set(targets.due)  # a skipped firing is not also a run


async def test_each_run_is_given_the_instant_its_firing_was_due(
    start_runner: RunnerFactory,
) -> None:
    targets = Targets()
    runner = await start_runner(targets)
    runner.sync([schedule("every-second", ["health"])])

    await until(lambda: len(targets.due) >= 2, timeout=5, interval=0.02)

    assert targets.due == [due for due, _ in targets.scheduled[: len(targets.due)]]
    # Due instants are one interval apart on the schedule's grid, not "whenever the run began".
    gap = (targets.due[1] - targets.due[0]).total_seconds()
    assert gap == pytest.approx(1.0, abs=0.01)


async def test_a_target_shared_by_two_schedules_never_overlaps_while_others_run(
    start_runner: RunnerFactory,
) -> None:
    targets = Targets(durations={"slow": 2.5})
    runner = await start_runner(targets)
    runner.sync([schedule("first", ["slow"]), schedule("second", ["slow", "quick"])])

    await asyncio.sleep(3.6)

    assert targets.max_active["slow"] == 1
    assert 1 <= targets.count("slow") <= 2
    # The schedule's other target is not held back by its slow sibling.
    assert targets.count("quick") >= 2


async def test_a_failing_target_does_not_stop_later_firings(
    start_runner: RunnerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    targets = Targets(error=RuntimeError("boom"))
    runner = await start_runner(targets)
    runner.sync([schedule("every-second", ["broken"])])

    await until(lambda: targets.count("broken") >= 2, timeout=6, interval=0.02)

    assert runner.state == "running"
    assert "boom" in caplog.text


def _next_local(
    now: datetime, tz: ZoneInfo, at: clock_time, day_matches: Callable[[date], bool]
) -> datetime:
    """The first `at` on a matching day strictly after `now`, found by walking the calendar."""
    today = now.astimezone(tz).date()
    for offset in range(400):
        day = today + timedelta(days=offset)
        candidate = datetime.combine(day, at, tzinfo=tz)
        if candidate > now and day_matches(day):
            return candidate
    raise AssertionError("no match within 400 days")


@pytest.mark.parametrize(
    ("cron", "zone", "at", "day_matches"),
    [
        # Weekday 0 is Sunday in cron (APScheduler 3 would read it as Monday).
        ("15 4 * * 0", "America/New_York", clock_time(4, 15), lambda d: d.weekday() == 6),
        ("30 9 * * 1-5", "Asia/Kolkata", clock_time(9, 30), lambda d: d.weekday() < 5),
        # Day of month and day of week both set: either matches (cron's OR).
        (
            "0 12 13 * 5",
            "Europe/Berlin",
            clock_time(12, 0),
            lambda d: d.day == 13 or d.weekday() == 4,
        ),
        ("45 23 * * *", "UTC", clock_time(23, 45), lambda d: True),
    ],
)
async def test_cron_in_a_time_zone_fires_at_the_right_utc_instant(
    start_runner: RunnerFactory,
    cron: str,
    zone: str,
    at: clock_time,
    day_matches: Callable[[date], bool],
) -> None:
    runner = await start_runner(Targets())
    now = datetime.now(UTC)

    runner.sync([schedule("cron", ["report"], cron=cron, timezone=zone)])

    expected = _next_local(now, ZoneInfo(zone), at, day_matches).astimezone(UTC)
    assert runner.next_runs() == {"report": expected}


def test_interval_jitter_does_not_stretch_the_period() -> None:
    # APScheduler 3 adds the interval to the previous jittered time: 60 s + 30 s jitter would
    # average 75 s. Walk the trigger the way APScheduler does.
    trigger = scheduler_module._trigger(schedule("jittered", ["a"], every="60s", jitter=30))
    first = previous = trigger.get_next_fire_time(None, datetime.now(UTC))
    for _ in range(1000):
        fire_time = trigger.get_next_fire_time(previous, previous)
        assert fire_time > previous
        previous = fire_time
    average = (previous - first).total_seconds() / 1000
    assert 59 < average < 61


async def test_shutdown_returns_promptly_while_a_target_runs(start_runner: RunnerFactory) -> None:
    targets = Targets()
    targets.release = asyncio.Event()
    runner = await start_runner(targets)
    runner.sync([schedule("every-second", ["stuck"])])
    await until(lambda: runner.running() == {"stuck"}, timeout=5, interval=0.02)

    started = time.monotonic()
    await runner.shutdown()

    assert time.monotonic() - started < 0.5
    assert runner.state == "stopped"
    assert runner.next_runs() == {}
    fired = len(targets.fired)
    await asyncio.sleep(1.3)
    assert len(targets.fired) == fired  # no firing after shutdown

    # The in-flight run was left alone: it finishes when its work does.
    targets.release.set()
    await until(lambda: runner.running() == set(), timeout=5, interval=0.02)
    assert targets.count("stuck") == 1


async def test_a_target_handed_back_as_a_task_runs_once_per_firing_and_never_overlaps(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The daemon's `run_target` starts the run itself and hands back its task (one task per
    run, not three): the target counts as running until that task ends, and its failure is
    logged."""
    targets = Targets(durations={"slow": 2.5}, error=None)
    started: list[asyncio.Task[None]] = []

    def start_target(target: str, schedule_name: str, due: datetime) -> asyncio.Task[None] | None:
        if target == "gone":
            return None  # nothing to run: not left marked as running
        task = asyncio.create_task(targets.run(target, schedule_name, due))
        started.append(task)
        return task

    runner = ScheduleRunner(start_target, on_fired=targets.on_fired, on_skipped=targets.on_skipped)
    await runner.start()
    try:
        runner.sync([schedule("first", ["slow", "quick", "gone"])])
        await until(lambda: runner.running() == {"slow"}, timeout=5, interval=0.005)
        # While a run goes on, its own task is the only one: no wrapper task waits on it.
        assert asyncio.all_tasks() - {asyncio.current_task()} == {started[0]}
        await asyncio.sleep(3.6)
        assert targets.max_active["slow"] == 1
        assert 1 <= targets.count("slow") <= 2
        assert targets.count("quick") >= 2
        assert {t for _s, t, _d in targets.skipped} == {"slow"}
        assert "gone" not in runner.running()
        assert len(started) == targets.count("slow") + targets.count("quick")

        targets.error = RuntimeError("boom")
        before = targets.count("quick")
        await until(lambda: targets.count("quick") >= before + 2, timeout=5, interval=0.02)
        assert "boom" in caplog.text
        assert "quick" not in runner.running() or targets.active["quick"] == 1
    finally:
        await runner.shutdown()


async def test_a_firing_is_skipped_while_the_previous_one_is_still_handed_to_the_agents(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """In a cluster the leader hands each firing to the agents (SPEC §13); while one hand-off is
    still going (a slow store), the schedule's next firing is skipped and logged, not stacked."""
    handed: list[datetime] = []
    release = asyncio.Event()

    async def dispatch(_schedule: Schedule, targets: list[str], due: datetime) -> None:
        handed.append(due)
        await release.wait()

    runner = ScheduleRunner(Targets().run, dispatch=dispatch)
    await runner.start()
    try:
        runner.sync([schedule("every-second", ["health"])])
        await asyncio.sleep(2.6)
        assert len(handed) == 1
        assert "still being handed to the agents" in caplog.text
        release.set()
        await until(lambda: len(handed) >= 2, timeout=3, interval=0.02)
        assert handed[1] - handed[0] >= timedelta(seconds=2)
    finally:
        release.set()
        await runner.shutdown()


@pytest.mark.slow
@pytest.mark.timeout(90)
async def test_schedules_started_together_across_a_minute_boundary_fire_in_the_same_minute() -> (
    None
):
    # A leader taking over at 12:00:59.9 with thousands of cron schedules: each job's first fire
    # time was APScheduler's own `now` as it was added, so those added before 12:01 fired at 12:01
    # and the rest only at 12:02 (a clean-clone run saw 195 of 400 firings of one instant).
    runs = Targets()
    runner = ScheduleRunner(runs.run)
    runner.sync(
        [schedule(f"s{i}", [f"c{i}"], cron="* * * * *") for i in range(3000)]
        + [schedule("every", ["e"], every="10s", jitter=1)]
    )
    now = datetime.now(UTC)
    boundary = now.replace(second=0, microsecond=0) + timedelta(minutes=1)
    if boundary - now < timedelta(milliseconds=200):
        boundary += timedelta(minutes=1)
    await asyncio.sleep((boundary - now).total_seconds() - 0.3)
    while datetime.now(UTC) < boundary - timedelta(milliseconds=30):  # a timer can wake late
        time.sleep(0.001)
    started = datetime.now(UTC)
    await runner.start()
    try:
        ended = datetime.now(UTC)
        assert started < boundary < ended, "the start did not straddle the minute; too fast here?"
        cron_times = {
            when for name, when in runner.next_fire_times().items() if name.startswith("s")
        }
        assert cron_times == {boundary}
    finally:
        await runner.shutdown()
