"""The leader's dispatch of firings (SPEC §13), by group commit: the firings that arrive while one
dispatch transaction is in flight are written together in the next one (at most `BATCH_ROWS`
firing rows each). One transaction inserts their `firings` rows (those a former leader already
decided are skipped), defers one procrastinate job per new row, attaches the jobs to their rows
and saves each schedule's next fire time once: a firing row and its job commit together or not
at all."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import procrastinate

from apimd.daemon.remote_runs import queue_of
from apimd.daemon.tasks import end_tasks
from apimd.model.common import ANYWHERE
from apimd.model.resources import Schedule
from apimd.store.firings import Firing
from apimd.store.postgres import PgConnection
from apimd.store.timestamps import to_us

if TYPE_CHECKING:
    from apimd.daemon.agents import Agents

log = logging.getLogger(__name__)

BATCH_ROWS = 2000
"""At most this many firing rows (and jobs) per dispatch transaction."""


@dataclass
class _Pending:
    schedule: Schedule
    targets: list[str]
    due: datetime
    done: asyncio.Future[None]


class Dispatcher:
    """Gathers the leader's firings and writes them a batch per transaction."""

    def __init__(self, agents: Agents, live_locations: Callable[[], Awaitable[list[str]]]) -> None:
        self._agents = agents
        self._live_locations = live_locations
        self._pending: deque[_Pending] = deque()
        self._writer: asyncio.Task[None] | None = None
        self._everywhere = 1  # how many live locations `locations: all` last meant
        self.deferred = 0
        """Jobs deferred since the leader last refreshed the queue's statistics."""
        self.task: Any = None
        """The procrastinate task of firings (set when the agent joins its cluster)."""

    async def dispatch(self, schedule: Schedule, targets: list[str], due: datetime) -> None:
        """Hand one firing to the agents; returns once it is committed (with its batch)."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append(_Pending(schedule, targets, due, done))
        if self._writer is None or self._writer.done():
            # Created after the firings of this moment were handed their tasks: they are all
            # pending by the time it takes its first batch.
            self._writer = asyncio.create_task(self._write_all(), name="agent dispatch")
        await done

    async def close(self) -> None:
        if self._writer is not None:
            await end_tasks([self._writer])
        for pending in self._pending:
            pending.done.cancel()
        self._pending.clear()

    async def _write_all(self) -> None:
        while self._pending:
            batch = self._take()
            try:
                await self._write(batch)
            except Exception as exc:
                for pending in batch:
                    if not pending.done.done():
                        pending.done.set_exception(exc)
            else:
                for pending in batch:
                    if not pending.done.done():
                        pending.done.set_result(None)

    def _take(self) -> list[_Pending]:
        batch = [self._pending.popleft()]
        rows = self._rows_of(batch[0])
        while self._pending and rows + self._rows_of(self._pending[0]) <= BATCH_ROWS:
            rows += self._rows_of(self._pending[0])
            batch.append(self._pending.popleft())
        return batch

    def _rows_of(self, pending: _Pending) -> int:
        where = pending.schedule.locations
        places = self._everywhere if where == "all" else 1 if where is None else len(where)
        return max(1, len(pending.targets) * places)

    async def _write(self, batch: list[_Pending]) -> None:
        live: list[str] | None = None
        wanted: dict[Firing, None] = {}  # ordered, without repeats
        for pending in batch:
            where = pending.schedule.locations
            if where is None:
                locations = [ANYWHERE]
            elif where == "all":
                if live is None:
                    live = await self._live_locations()
                    self._everywhere = len(live)
                locations = live
            else:
                locations = list(where)
            for target in pending.targets:
                for location in locations:
                    wanted[Firing(pending.schedule.name, target, location, pending.due)] = None
        following: dict[str, datetime] = {}
        for pending in batch:
            when = self._agents.service.scheduler.next_fire(pending.schedule.name)
            if when is not None:
                following[pending.schedule.name] = when
        firings = self._agents.store.firings
        async with self._agents.store.db.transaction() as conn:
            assert isinstance(conn, PgConnection)
            # Ten thousand firings a minute waiting each for its WAL flush made the leader a
            # minute late at that size. Without it a crash of the server can lose the last
            # moment's firings with their jobs (a run missed), never one half of a firing.
            await conn.execute("SET LOCAL synchronous_commit = off")
            new = await firings.insert_many(conn, list(wanted))
            if new:
                deferrers = [self._deferrer(firing) for firing in new]
                manager: procrastinate.manager.JobManager = deferrers[0].job_manager
                deferred = await manager.batch_defer_jobs_async(
                    [d.make_new_job() for d in deferrers], connection=conn.raw
                )
                ids = [int(job.id or 0) for job in deferred]
                self.deferred += len(ids)
                await firings.attach_jobs(conn, list(zip(new, ids, strict=True)))
            await firings.save_next_fire_many(conn, following)
        log.debug("dispatched %d firing(s) of %d schedule(s)", len(new), len(batch))

    def _deferrer(self, firing: Firing) -> procrastinate.jobs.JobDeferrer:
        """Its job: on its location's queue, locked `target@location` (no overlapping runs)."""
        deferrer: procrastinate.jobs.JobDeferrer = self.task.configure(
            queue=queue_of(firing.location),
            lock=f"{firing.target}@{firing.location}",
            task_kwargs={
                "schedule": firing.schedule,
                "target": firing.target,
                "location": firing.location,
                "due_us": to_us(firing.due_at),
            },
        )
        return deferrer
