"""Runs schedules on time. The one module that imports APScheduler (3.x), so moving to 4.x touches
only this file; everything else talks to `ScheduleRunner` and hands it callbacks."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import zoneinfo
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any, Literal

from apscheduler.executors.base import BaseExecutor  # type: ignore[import-untyped]
from apscheduler.schedulers.asyncio import AsyncIOScheduler  # type: ignore[import-untyped]
from apscheduler.triggers.base import BaseTrigger  # type: ignore[import-untyped]
from apscheduler.triggers.interval import IntervalTrigger  # type: ignore[import-untyped]
from cronsim import CronSim

from apimd.daemon.interval_timer import IntervalTimer
from apimd.model import Schedule

RunTarget = Callable[[str, str, datetime], Awaitable[Any] | None]
"""`(target_name, schedule_name, due)`: run that call or workflow and record its result; `due` is
the instant (UTC) the firing was due, so the result can say how late it started. It returns a
coroutine (run in a task of its own), or the task (or future) already running the target — one
task less per run — or None when it started nothing."""

SkippedCallback = Callable[[str, str, datetime], Awaitable[None]]
"""`(schedule_name, target_name, due)`: a firing of that target was skipped because its previous
run had not finished (the daemon records it SKIPPED, saying so)."""

FiredCallback = Callable[[str, list[str], datetime], None]
"""`(schedule_name, targets_started, scheduled_at)`: a schedule fired (the daemon publishes
`schedule.fired`); `scheduled_at` is the instant (UTC) the firing was due, jitter included."""

Dispatch = Callable[[Schedule, list[str], datetime], Awaitable[None]]
"""`(schedule, targets, due instant)`: hand a firing to the cluster's agents (SPEC §13) instead of
running it here; the agents keep overlapping runs apart."""

SchedulerState = Literal["running", "stopped"]

logger = logging.getLogger(__name__)

# A late firing (event loop stalled, machine suspended) still runs, once thanks to coalescing: a
# monitor would rather check late than silently skip. APScheduler's default of 1 s would drop runs
# whenever the loop is briefly busy.
_MISFIRE_GRACE_TIME: int | None = None
_JOB_PREFIX = "schedule:"
# Interval schedules added together (one apply, a daemon start) with the same `every` would fire in
# the same instant, every time: a thousand `every: 10s` schedules started a thousand runs at once
# on one event loop, and each recorded about a second of response time from a local server (ten
# thousand: tens of seconds, and false TIMEOUTs). Their first firings are spread evenly over the
# end of the first interval (its last minute at most), so none fires later than one interval.
_SPREAD_MAX = timedelta(seconds=60)


class ScheduleRunner:
    """Keeps each enabled schedule on a timer (`IntervalTimer` for an `every` without jitter, an
    APScheduler job for the others) and runs each target when its schedule fires, never letting
    two scheduled runs of the same target overlap."""

    def __init__(
        self,
        run_target: RunTarget,
        *,
        on_fired: FiredCallback | None = None,
        on_skipped: SkippedCallback | None = None,
        dispatch: Dispatch | None = None,
    ) -> None:
        # APScheduler logs every job added and every run at INFO; the daemon log is for people.
        logging.getLogger("apscheduler").setLevel(logging.WARNING)
        self._run_target = run_target
        self._on_fired = on_fired
        self._on_skipped = on_skipped
        self.dispatch = dispatch
        self._scheduler: Any = AsyncIOScheduler(timezone=UTC, executors={"default": _OnTheLoop()})
        self._timer = IntervalTimer(self._fire)
        self._schedules: dict[str, Schedule] = {}
        self._running: set[str] = set()
        self._dispatching: set[str] = set()  # schedules whose firing is being handed to agents
        self._tasks: set[asyncio.Future[Any]] = set()
        self._state: SchedulerState = "stopped"

    @property
    def state(self) -> SchedulerState:
        """`running` between `start()` and `shutdown()`, else `stopped` (for `/v1/status`)."""
        return self._state

    async def start(self) -> None:
        """Start firing the schedules given to `sync()` (before or after this call)."""
        if self._state == "running":
            return
        self._scheduler.start()
        self._timer.start()
        self._state = "running"
        self._add_jobs(list(self._schedules.values()))

    async def shutdown(self) -> None:
        """Stop firing. Runs already started are left alone: the daemon finishes or cancels them."""
        if self._state != "running":
            return
        self._state = "stopped"
        # Jobs go first: a stopped APScheduler only forgets its pending jobs, and a later start()
        # re-adds whatever sync() holds by then.
        self._timer.stop()
        self._scheduler.remove_all_jobs()
        self._scheduler.shutdown(wait=False)
        # AsyncIOScheduler.shutdown() only queues the real one with call_soon_threadsafe; queue a
        # marker behind it, so we return after it ran and nothing can be submitted later.
        loop = asyncio.get_running_loop()
        flushed = loop.create_future()
        loop.call_soon_threadsafe(flushed.set_result, None)
        await flushed

    def sync(self, schedules: Iterable[Schedule]) -> None:
        """Make the jobs match exactly these schedules: add new ones, replace changed ones, remove
        missing and disabled ones. An unchanged schedule keeps its next fire time."""
        wanted = {schedule.name: schedule for schedule in schedules if schedule.enabled}
        for name in self._schedules.keys() - wanted.keys():
            del self._schedules[name]
            if self._state == "running":
                self._remove_job(name)
        added: list[Schedule] = []
        for name, schedule in wanted.items():
            current = self._schedules.get(name)
            if current is not None and current.model_dump() == schedule.model_dump():
                continue
            self._schedules[name] = schedule
            added.append(schedule)
        if self._state == "running":
            self._add_jobs(added)

    def next_runs(self) -> dict[str, datetime]:
        """Target name → the earliest next fire time (UTC) across the enabled schedules naming it."""
        return next_runs_of(self._schedules.values(), self.next_fire_times())

    def next_fire(self, schedule_name: str) -> datetime | None:
        """When `schedule_name` fires next (UTC); None while stopped or unscheduled."""
        if schedule_name in self._timer:
            return self._timer.next_fire(schedule_name)
        job = self._scheduler.get_job(_job_id(schedule_name)) if self._state == "running" else None
        when: datetime | None = job.next_run_time if job is not None else None
        return when.astimezone(UTC) if when is not None else None

    def next_fire_times(self) -> dict[str, datetime]:
        """Schedule name → its next fire time (UTC); empty while stopped."""
        if self._state != "running":
            return {}
        times = self._timer.next_fire_times()
        for job in self._scheduler.get_jobs():
            when: datetime | None = job.next_run_time
            if when is not None:
                times[job.args[0]] = when.astimezone(UTC)
        return times

    def running(self) -> set[str]:
        """The targets a schedule started that have not finished yet."""
        return set(self._running)

    def _add_jobs(self, schedules: list[Schedule]) -> None:
        """Add these jobs; the first firings of interval schedules sharing an `every` are spread
        (`_SPREAD_MAX`). The last (or a lone) one first fires one interval from now, as before.
        All of them count from one `now`: adding thousands takes a while, and a leader starting at
        12:00:59.9 must not fire the cron schedules it added first at 12:01 and the rest at 12:02."""
        now = datetime.now(UTC)
        by_every: dict[float | None, list[Schedule]] = {}
        for schedule in schedules:
            by_every.setdefault(schedule.every_seconds, []).append(schedule)
        for every, group in by_every.items():
            for index, schedule in enumerate(group):
                first = None
                if every is not None:
                    interval = timedelta(seconds=every)
                    spread = min(interval, _SPREAD_MAX) * (len(group) - 1 - index) / len(group)
                    with contextlib.suppress(OverflowError):  # schedule_problem() refuses it
                        first = now + interval - spread
                self._add_job(schedule, now, first)

    def _add_job(self, schedule: Schedule, now: datetime, first: datetime | None = None) -> None:
        problem = schedule_problem(schedule)
        if problem is not None:
            # Refused at PUT/apply; one stored before that check must not stop the daemon.
            # Nor leave what it replaced firing: its old definition is not what is stored.
            logger.error("schedule %s is not scheduled: %s", schedule.name, problem)
            self._remove_job(schedule.name)
            return
        every = schedule.every_seconds
        if every is not None and not schedule.jitter:
            if schedule.name not in self._timer:
                self._remove_scheduler_job(schedule.name)
            interval = timedelta(seconds=every)
            first = first or now + interval
            self._timer.add(schedule.name, tuple(schedule.targets), first, interval)
            return
        self._timer.remove(schedule.name)
        trigger = _trigger(schedule, first)
        # APScheduler would take its own `now` for each job; one that never fires stays undefined.
        due = trigger.get_next_fire_time(None, now)
        self._scheduler.add_job(
            self._fire,
            trigger=trigger,
            args=(schedule.name, tuple(schedule.targets)),
            id=_job_id(schedule.name),
            name=f"schedule {schedule.name}",
            replace_existing=True,
            coalesce=True,
            max_instances=1,
            misfire_grace_time=_MISFIRE_GRACE_TIME,
            **({} if due is None else {"next_run_time": due}),
        )

    def _remove_job(self, schedule_name: str) -> None:
        """Take `schedule_name` off whichever timer holds it (if any)."""
        if not self._timer.remove(schedule_name):
            self._remove_scheduler_job(schedule_name)

    def _remove_scheduler_job(self, schedule_name: str) -> None:
        job_id = _job_id(schedule_name)
        if self._scheduler.get_job(job_id) is not None:
            self._scheduler.remove_job(job_id)

    def _fire(
        self, schedule_name: str, targets: tuple[str, ...], due: datetime | None = None
    ) -> None:
        # Returns at once (`IntervalTimer` and `_OnTheLoop` call it with `due`; the default only
        # satisfies APScheduler's check of a job's arguments): each target runs in its own task, so one
        # slow target delays neither the others nor the schedule's next firing.
        scheduled_at = due.astimezone(UTC) if due is not None else datetime.now(UTC)
        if self._state != "running":
            return
        if self.dispatch is not None and schedule_name in self._schedules:
            if schedule_name in self._dispatching:
                # (As APScheduler's `max_instances=1` did while this was its job's coroutine.)
                logger.warning(
                    "schedule %s: skipping a firing, the previous one is still being handed"
                    " to the agents",
                    schedule_name,
                )
                return
            self._dispatching.add(schedule_name)
            schedule = self._schedules[schedule_name]
            self._spawn(self._dispatch(schedule, list(targets), scheduled_at), schedule_name)
            return
        started: list[str] = []
        for target in targets:
            if target in self._running:
                logger.info(
                    "schedule %s: skipping %s, its previous run has not finished",
                    schedule_name,
                    target,
                )
                self._spawn(self._skipped(schedule_name, target, scheduled_at), target)
                continue
            self._running.add(target)
            started.append(target)
        if not started:
            return
        if self._on_fired is not None:
            try:
                self._on_fired(schedule_name, started, scheduled_at)
            except Exception:
                logger.exception("schedule %s: the on_fired callback failed", schedule_name)
        for target in started:
            self._start(target, schedule_name, scheduled_at)

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(coro, name=f"schedule: {name}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _start(self, target: str, schedule_name: str, due: datetime) -> None:
        """Start `target`; it counts as running until its task ends."""
        try:
            started = self._run_target(target, schedule_name, due)
            if started is None:
                self._running.discard(target)
                return
            future = asyncio.ensure_future(started)
        except Exception:
            self._running.discard(target)
            logger.exception("schedule %s: running %s failed", schedule_name, target)
            return
        self._tasks.add(future)
        future.add_done_callback(lambda done: self._ended(done, target, schedule_name))

    def _ended(self, future: asyncio.Future[Any], target: str, schedule_name: str) -> None:
        self._tasks.discard(future)
        self._running.discard(target)
        if not future.cancelled() and future.exception() is not None:
            logger.error(
                "schedule %s: running %s failed",
                schedule_name,
                target,
                exc_info=future.exception(),
            )

    async def _skipped(self, schedule_name: str, target: str, due: datetime) -> None:
        if self._on_skipped is None:
            return
        try:
            await self._on_skipped(schedule_name, target, due)
        except Exception:
            logger.exception(
                "schedule %s: recording the skipped run of %s failed", schedule_name, target
            )

    async def _dispatch(self, schedule: Schedule, targets: list[str], due: datetime) -> None:
        assert self.dispatch is not None
        try:
            await self.dispatch(schedule, targets, due)
        except Exception:
            logger.exception("schedule %s: handing the firing to the agents failed", schedule.name)
            return
        finally:
            self._dispatching.discard(schedule.name)
        if self._on_fired is not None:
            self._on_fired(schedule.name, targets, due)


class _OnTheLoop(BaseExecutor):  # type: ignore[misc]
    """Calls a job's function at once, in the scheduler's own pass over the due jobs, with the
    instant it was due (coalesced: the last one). `ScheduleRunner._fire` only starts tasks and
    returns, so APScheduler's `AsyncIOExecutor` (a task per firing, its bookkeeping and events,
    and a listener to learn the due instant) was a third of the scheduler's cost per firing."""

    def submit_job(self, job: Any, run_times: list[datetime]) -> None:
        job.func(*job.args, run_times[-1])

    def _do_submit_job(self, job: Any, run_times: list[datetime]) -> None:
        raise NotImplementedError("submit_job runs the job itself")


def next_runs_of(schedules: Iterable[Schedule], times: dict[str, datetime]) -> dict[str, datetime]:
    """Target name → the earliest of `times` (schedule name → next fire time) naming it."""
    earliest: dict[str, datetime] = {}
    for schedule in schedules:
        when = times.get(schedule.name)
        if when is None:
            continue
        for target in schedule.targets:
            if target not in earliest or when < earliest[target]:
                earliest[target] = when
    return earliest


def _job_id(schedule_name: str) -> str:
    return _JOB_PREFIX + schedule_name


def schedule_problem(schedule: Schedule) -> str | None:
    """Why `schedule` cannot be run (an interval too long for dates to hold), or None."""
    try:
        trigger = _trigger(schedule)
        now = datetime.now(UTC)
        first = trigger.get_next_fire_time(None, now)
        if first is not None:
            trigger.get_next_fire_time(first, first)
    except (OverflowError, ValueError):
        field = "every" if schedule.every is not None else "cron"
        return f"`{field}` reaches past the last date a clock can hold; use a shorter interval"
    return None


def _trigger(schedule: Schedule, first: datetime | None = None) -> Any:
    """`first`: an interval schedule's first fire time (default: one interval from now)."""
    jitter = schedule.jitter or None
    if schedule.every_seconds is not None:
        return _IntervalTrigger(
            seconds=schedule.every_seconds, jitter=jitter, timezone=UTC, start_date=first
        )
    assert schedule.cron is not None  # the model requires exactly one of `every` and `cron`
    return _CronTrigger(schedule.cron, schedule.timezone, jitter)


class _IntervalTrigger(IntervalTrigger):  # type: ignore[misc]
    """`IntervalTrigger` whose jitter does not accumulate. APScheduler 3 adds the interval to the
    previous *jittered* fire time, so `every: 60s, jitter: 30` would fire every ~75 s on average;
    here each firing is the next slot of the start-time grid plus fresh jitter."""

    __slots__ = ()

    def get_next_fire_time(
        self, previous_fire_time: datetime | None, now: datetime
    ) -> datetime | None:
        if previous_fire_time is not None and self.jitter:
            # The millisecond absorbs float rounding of an unjittered time just below its slot.
            elapsed: timedelta = previous_fire_time - self.start_date + timedelta(milliseconds=1)
            slot = math.floor(elapsed / self.interval)
            previous_fire_time = self.start_date + slot * self.interval
        fire_time: datetime | None = super().get_next_fire_time(previous_fire_time, now)
        return fire_time


class _CronTrigger(BaseTrigger):  # type: ignore[misc]
    """A 5-field cron expression in a time zone, evaluated by cronsim: the library that validated it
    at load. APScheduler 3's `CronTrigger.from_crontab` reads weekday 0 as Monday (cron: Sunday),
    ANDs day-of-month with day-of-week (cron: OR when both are set) and rejects `5L` / `5#2`."""

    __slots__ = ("expr", "jitter", "timezone")

    def __init__(self, expr: str, timezone: str, jitter: float | None) -> None:
        self.expr = expr
        # cronsim skips its DST handling only for datetime.UTC itself, not ZoneInfo("UTC").
        self.timezone: tzinfo = UTC if timezone == "UTC" else zoneinfo.ZoneInfo(timezone)
        self.jitter = jitter

    def get_next_fire_time(
        self, previous_fire_time: datetime | None, now: datetime
    ) -> datetime | None:
        # CronSim yields the first match strictly after its start; a jittered previous fire time
        # still lies before the next slot as long as the jitter is shorter than the gap.
        start = (previous_fire_time or now).astimezone(self.timezone)
        try:
            fire_time = next(CronSim(self.expr, start))
        except StopIteration:
            return None
        # Jitter in UTC: adding a timedelta to a zoned datetime is wall-clock arithmetic.
        jittered: datetime = self._apply_jitter(fire_time.astimezone(UTC), self.jitter, now)
        return jittered

    def __str__(self) -> str:
        return f"cron[{self.expr}, {self.timezone}]"

    def __repr__(self) -> str:
        return f"<_CronTrigger expr={self.expr!r} timezone={self.timezone!s} jitter={self.jitter}>"
