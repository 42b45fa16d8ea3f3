"""`every:` schedules without jitter fire from the runner's own timer (issue 18): on the grid
APScheduler's interval trigger would give them, on a real event loop and a real clock."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from apimd.daemon import scheduler as scheduler_module
from apimd.daemon.scheduler import ScheduleRunner
from apimd.model import Schedule
from tests.daemon.test_scheduler import Targets, schedule
from tests.support.polling import until

SECOND = timedelta(seconds=1)


@pytest.fixture
def targets() -> Targets:
    return Targets()


@pytest.fixture
async def runner(targets: Targets) -> AsyncIterator[ScheduleRunner]:
    runner = ScheduleRunner(targets.run, on_fired=targets.on_fired, on_skipped=targets.on_skipped)
    await runner.start()
    yield runner
    await runner.shutdown()


def dues_of(targets: Targets, schedule_name: str) -> list[datetime]:
    return [
        due
        for (name, _), (due, _) in zip(targets.fired, targets.scheduled, strict=True)
        if name == schedule_name
    ]


def apscheduler_times(schedule: Schedule, first: datetime, count: int) -> list[datetime]:
    """The fire times APScheduler's trigger (the daemon's before this timer) gives `schedule`."""
    trigger = scheduler_module._trigger(schedule, first)
    times = [trigger.get_next_fire_time(None, first)]
    while len(times) < count:
        times.append(trigger.get_next_fire_time(times[-1], times[-1]))
    return [when.astimezone(UTC) for when in times]


async def test_firings_fall_on_the_grid_apschedulers_trigger_gives(
    runner: ScheduleRunner, targets: Targets
) -> None:
    # Two schedules added together: spread, so the first does not start one interval from now.
    schedules = [schedule("a", ["ta"]), schedule("b", ["tb"], every="2s")]
    runner.sync(schedules)
    firsts = runner.next_fire_times()
    assert set(firsts) == {"a", "b"}
    assert all(when.utcoffset() == timedelta(0) for when in firsts.values())

    await until(lambda: len(dues_of(targets, "b")) >= 2, timeout=8, interval=0.02)

    for item in schedules:
        dues = dues_of(targets, item.name)
        assert dues == apscheduler_times(item, firsts[item.name], len(dues))
    for scheduled_at, fired_at in targets.scheduled:
        assert timedelta(0) <= fired_at - scheduled_at < timedelta(milliseconds=500)
    # What the API reports next is the firing that comes next.
    upcoming, fired = runner.next_fire("a"), len(dues_of(targets, "a"))
    await until(lambda: len(dues_of(targets, "a")) > fired, timeout=5, interval=0.02)
    assert dues_of(targets, "a")[fired] == upcoming


async def test_a_changed_interval_fires_on_the_new_grid_only(
    runner: ScheduleRunner, targets: Targets
) -> None:
    runner.sync([schedule("s", ["t"])])
    await until(lambda: len(targets.fired) >= 1, timeout=5, interval=0.02)

    changed_at = datetime.now(UTC)
    runner.sync([schedule("s", ["t"], every="2s")])
    next_fire = runner.next_fire("s")
    assert next_fire is not None
    assert abs(next_fire - (changed_at + 2 * SECOND)) < timedelta(milliseconds=200)
    fired_before = len(targets.fired)
    await until(lambda: len(targets.fired) >= fired_before + 2, timeout=8, interval=0.02)

    after = [due for due in dues_of(targets, "s") if due > changed_at]
    assert after[0] == next_fire
    assert {later - earlier for earlier, later in itertools.pairwise(after)} == {2 * SECOND}


async def test_a_removed_or_disabled_schedule_stops_firing(
    runner: ScheduleRunner, targets: Targets
) -> None:
    runner.sync([schedule("gone", ["t"]), schedule("off", ["u"]), schedule("kept", ["v"])])
    await until(lambda: len(dues_of(targets, "gone")) >= 1, timeout=5, interval=0.02)
    await until(lambda: len(dues_of(targets, "off")) >= 1, timeout=5, interval=0.02)

    runner.sync([schedule("off", ["u"], enabled=False), schedule("kept", ["v"])])
    stopped_at = datetime.now(UTC)
    assert runner.next_fire("gone") is None and runner.next_fire("off") is None
    assert set(runner.next_fire_times()) == {"kept"}
    await asyncio.sleep(2.2)

    assert [due for due in dues_of(targets, "gone") if due > stopped_at] == []
    assert [due for due in dues_of(targets, "off") if due > stopped_at] == []
    assert len([due for due in dues_of(targets, "kept") if due > stopped_at]) >= 2


async def test_a_late_loop_fires_once_at_the_last_instant_passed_then_keeps_the_grid(
    runner: ScheduleRunner, targets: Targets
) -> None:
    runner.sync([schedule("s", ["t"])])
    await until(lambda: len(targets.fired) >= 1, timeout=5, interval=0.02)
    first = dues_of(targets, "s")[0]

    time.sleep(2.5)  # the event loop stalls over two due instants and a half
    await until(lambda: len(targets.fired) >= 3, timeout=5, interval=0.02)

    dues = dues_of(targets, "s")
    late_due, late_fired_at = targets.scheduled[1]
    # Coalesced, as APScheduler's jobs (`coalesce=True`): one firing for the instants missed,
    # the last one passed, then the next instant of the same grid.
    grid = apscheduler_times(schedule("s", ["t"]), first, 6)
    assert late_due == max(when for when in grid if when <= late_fired_at)
    assert late_fired_at - late_due < SECOND
    assert dues[2] == late_due + SECOND
    assert all((due - first) % SECOND == timedelta(0) for due in dues)


async def test_jitter_moves_a_schedule_between_timers_without_firing_twice(
    runner: ScheduleRunner, targets: Targets
) -> None:
    plain = schedule("s", ["t"])
    jittered = schedule("s", ["t"], jitter=0.3)
    for version in (plain, jittered, plain):
        runner.sync([version])
        assert list(runner.next_fire_times()) == ["s"]
        began = len(targets.fired)
        await asyncio.sleep(3.2)
        # Once a second (jitter moves each firing, not their number), never twice per instant.
        assert 2 <= len(targets.fired) - began <= 4
        assert targets.max_active["t"] == 1


async def test_shutdown_stops_the_timer_and_start_brings_the_schedules_back(
    runner: ScheduleRunner, targets: Targets
) -> None:
    runner.sync([schedule("s", ["t"])])
    await runner.shutdown()
    assert runner.next_fire_times() == {} and runner.next_fire("s") is None
    await asyncio.sleep(1.5)
    assert targets.fired == []

    await runner.start()
    assert runner.next_fire("s") is not None
    await until(lambda: len(targets.fired) >= 1, timeout=5, interval=0.02)
