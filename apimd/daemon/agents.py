"""Agents sharing one PostgreSQL store (SPEC §13), with `cluster_upkeep`, `dispatch` and
`remote_runs`: the modules that use procrastinate.

Every agent heartbeats its row in `agents` and runs a procrastinate worker on its location's
queue (and the queue of schedules without `locations`). One agent at a time — the holder of a
session-level advisory lock — is the leader: it alone runs APScheduler and hands its firings to
`dispatch` (each `firings` row and its job in one transaction, the firings of a moment together);
it also records the runs of stalled workers as lost and cleans up finished jobs. On SQLite the
daemon is the only agent, leader and every location: schedules run in-process as before, and only
the heartbeat is kept."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import procrastinate
import psycopg

from apimd.daemon.cluster_upkeep import (
    ANALYZE_AFTER_JOBS,
    LEADER_POLL_S,
    RELOAD_CHANNEL,
    STALLED_S,
    analyze_queue,
    follow_changes,
    record_lost,
    tune_queue,
)
from apimd.daemon.dispatch import Dispatcher
from apimd.daemon.firing_results import interval_after, skipped_result
from apimd.daemon.logs import error_line
from apimd.daemon.relay import EventRelay
from apimd.daemon.remote_runs import RemoteRuns, queue_of
from apimd.daemon.scheduler import next_runs_of
from apimd.daemon.tasks import cancelling, end_tasks
from apimd.engine.notify import Notifier
from apimd.model.api import AgentInfo
from apimd.model.common import ANYWHERE
from apimd.model.resources import Schedule, Webhook
from apimd.store.errors import StoreUnavailable
from apimd.store.firings import Firing
from apimd.store.timestamps import from_us

if TYPE_CHECKING:
    from apimd.daemon.service import MonitorService

log = logging.getLogger(__name__)

HEARTBEAT_S = 5.0
CLEANUP_EVERY_S = 3600.0
LEADER_LOCK = (0x61706D64, 3)
TASK_NAME = "apimd.run_firing"
MANUAL_TASK_NAME = "apimd.run_manual"
WORKER_CONCURRENCY = 50
REMINDERS_SYNC_S = 5.0
"""How often the leader takes up the alerts other agents sent (their `repeat_every` is its)."""


class Agents:
    """This daemon as an agent of its store's cluster."""

    def __init__(self, service: MonitorService) -> None:
        # procrastinate logs every job at INFO; the daemon log is for people.
        logging.getLogger("procrastinate").setLevel(logging.WARNING)
        self.service = service
        self.settings = service.settings
        self.store = service.store
        self.name = self.settings.agent
        self.location = self.settings.location
        self.url = self.settings.database_url
        self.leader = self.url is None
        self._tasks: list[asyncio.Task[None]] = []
        self._app: procrastinate.App | None = None
        self.relay: EventRelay | None = None
        self._task: Any = None
        self.remote = RemoteRuns(self)
        self.dispatcher = Dispatcher(self, self._live_locations)
        self._reminders_synced = 0.0

    @property
    def clustered(self) -> bool:
        return self.url is not None

    async def start(self) -> None:
        """Join: heartbeat, and on PostgreSQL the worker and the leader election."""
        self.store.origin = (self.location, self.name)
        await self._beat()
        self._spawn(self._heartbeats(), "heartbeat")
        if self.url is None:
            return
        connector = procrastinate.PsycopgConnector(
            conninfo=self.url,
            min_size=1,
            max_size=4,
            kwargs={"application_name": f"apimd worker {self.name}"[:63]},
        )
        self._app = procrastinate.App(connector=connector)
        self._task = self._app.task(name=TASK_NAME, pass_context=True)(self._run_firing)
        self.remote.task = self._app.task(name=MANUAL_TASK_NAME)(self.remote.run_here)
        await self._app.open_async()
        self.dispatcher.task = self._task
        self.service.scheduler.dispatch = self.dispatcher.dispatch
        self.relay = EventRelay(self.name, self.store, self.service.hub)
        self.service.hub.relay = self.relay.offer
        self._spawn(self.relay.send_forever(), "event relay")
        self._spawn(follow_changes(self), "reloads")
        self._spawn(self._work(), "worker")
        self._spawn(self._elect(), "leader election")

    async def stop(self) -> None:
        """Leave: no new jobs, no leadership; in-flight runs are the service's to finish."""
        await end_tasks(self._tasks)
        self._tasks.clear()
        await self.dispatcher.close()
        if self._app is not None:
            await self._app.close_async()
        with contextlib.suppress(Exception):
            await self.store.firings.leave(self.name)

    async def live(self) -> list[AgentInfo]:
        """`GET /v1/agents`: the agents heard from in the last 15 s."""
        since = datetime.now(UTC) - timedelta(seconds=STALLED_S)
        return await self.store.firings.live(since)

    async def sends_reminders(
        self, notifier: Notifier, owners: Callable[[], list[tuple[str, list[Webhook]]]]
    ) -> bool:
        """Whether this agent sends `repeat_every` reminders now: the leader alone, once per
        cluster; it first takes up, every few seconds, the alerts other agents sent."""
        if not self.leader:
            return False
        now = asyncio.get_running_loop().time()
        if self.clustered and now - self._reminders_synced >= REMINDERS_SYNC_S:
            self._reminders_synced = now
            await notifier.restore(owners())
        return True

    async def next_runs(self) -> dict[str, datetime]:
        """Target → its next scheduled run: from the scheduler here, or on an agent that does
        not lead, the next fire times the leader shares in the store."""
        scheduler = self.service.scheduler
        if scheduler.state == "running" or not self.clustered:
            return scheduler.next_runs()
        times = await self.store.firings.next_fires()
        return next_runs_of(self.service.project.schedules, times)

    async def target_locations(self) -> dict[str, list[str]]:
        """Target → the locations its enabled schedules run it in (`*`: anywhere)."""
        places: dict[str, set[str]] = {}
        live: list[str] | None = None
        for schedule in self.service.project.schedules:
            if not schedule.enabled:
                continue
            if schedule.locations == "all":
                live = live if live is not None else await self._locations(schedule)
                where = live
            else:
                where = await self._locations(schedule)
            for target in schedule.targets:
                places.setdefault(target, set()).update(where)
        return {target: sorted(where) for target, where in places.items()}

    async def share_next_runs(self) -> None:
        """The leader's next fire times of every schedule, for the other agents' dashboards."""
        if self.clustered and self.service.scheduler.state == "running":
            await self.store.firings.save_next_fires(self.service.scheduler.next_fire_times())

    def _spawn(self, coro: Any, name: str) -> None:
        self._tasks.append(asyncio.create_task(coro, name=f"agent {name}"))

    # --- heartbeat ----------------------------------------------------------------------------

    async def _beat(self) -> None:
        await self.store.firings.heartbeat(
            self.name,
            self.location,
            os.getpid(),
            self.service.started_at,
            leader=self.leader,
            running=self.service.runs.targets(),
        )

    async def _heartbeats(self) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_S)
            try:
                await self._beat()
            except Exception as exc:
                if cancelling():  # a cancellation disguised as an error: stop
                    raise
                log.warning("agent heartbeat failed: %s", exc)

    # --- an apply on one agent reloads all ------------------------------------------------------

    async def announce_change(self) -> None:
        """Tell the other agents the project changed (they reload it from the store)."""
        if self.url is None:
            return
        async with self.store.db.transaction() as conn:
            # Signed with this process's instance, not the agent's name: two agents given one
            # name must still reload on each other's applies.
            sender = self.relay.instance if self.relay is not None else self.name
            await conn.execute("SELECT pg_notify(?, ?)", (RELOAD_CHANNEL, sender))

    # --- leader -------------------------------------------------------------------------------

    async def _elect(self) -> None:
        """Hold the leader lock on a session of its own; lead while it lasts."""
        assert self.url is not None
        while True:
            try:
                conn = await psycopg.AsyncConnection.connect(
                    self.url, autocommit=True, application_name=f"apimd leader {self.name}"[:63]
                )
                async with conn:
                    while True:  # polled: a lock wait would hide a dead session
                        if await _try_lock(conn):
                            await self._lead(conn)
                        await asyncio.sleep(LEADER_POLL_S)
            except Exception as exc:  # the server gone: the lock is gone with the session
                if cancelling():  # a cancellation disguised as an error: stop
                    raise
                log.warning("leader election: %s; retrying", exc)
                await asyncio.sleep(LEADER_POLL_S)

    async def _lead(self, conn: psycopg.AsyncConnection[Any]) -> None:
        log.info("agent %s (%s) is the leader", self.name, self.location)
        self.leader = True
        await self.store.firings.crown(self.name)  # one transaction: never two leaders shown
        await tune_queue(self)
        await self._beat()
        await self.service.scheduler.start()
        await self.share_next_runs()
        cleaned = 0.0
        try:
            while True:
                await conn.execute("SELECT 1")  # the session (and so the lock) is alive
                try:
                    assert self._app is not None
                    await record_lost(self, self._app.job_manager)
                    if self.dispatcher.deferred >= ANALYZE_AFTER_JOBS:
                        self.dispatcher.deferred = 0
                        await analyze_queue(self)
                    now = asyncio.get_running_loop().time()
                    if now - cleaned >= CLEANUP_EVERY_S:
                        cleaned = now
                        await self._cleanup()
                except (StoreUnavailable, psycopg.OperationalError) as exc:
                    # The database went away (or cut this session): said in one line; the
                    # next pass, or the next leader, takes it up.
                    log.warning(
                        "the leader's housekeeping failed: %s; trying again", error_line(exc)
                    )
                except Exception:
                    if cancelling():  # a cancellation disguised as an error: stop
                        raise
                    log.exception("the leader's housekeeping failed; trying again")
                await asyncio.sleep(LEADER_POLL_S)
        finally:
            self.leader = False
            await self.service.scheduler.shutdown()
            log.info("agent %s is no longer the leader", self.name)

    async def _locations(self, schedule: Schedule) -> list[str]:
        if schedule.locations is None:
            return [ANYWHERE]
        if schedule.locations == "all":
            return await self._live_locations()
        return list(schedule.locations)

    async def _live_locations(self) -> list[str]:
        """Where `locations: all` runs now: every live agent's location (at least this one's)."""
        return sorted({agent.location for agent in await self.live()}) or [self.location]

    async def _cleanup(self) -> None:
        assert self._app is not None
        await self._app.job_manager.delete_old_jobs(nb_hours=1, include_failed=True)
        await self.service.upkeep.prune()  # results past retention, used sign-ins
        if self.relay is not None:
            await self.relay.prune(datetime.now(UTC) - timedelta(hours=1))
        cutoff = datetime.now(UTC) - timedelta(days=self.settings.retention_days)
        await self.store.firings.prune(cutoff)
        await self.store.firings.forget_agents(cutoff)

    # --- worker -------------------------------------------------------------------------------

    async def _work(self) -> None:
        """The worker, restarted (as a new procrastinate worker) if it fails: one presumed dead
        and pruned by the leader fails its next fetch, and comes back under a new id."""
        while True:
            try:
                await self._worker()
            except Exception as exc:
                if cancelling():  # a cancellation disguised as an error: stop
                    raise
                log.warning("the job worker stopped (%s); restarting it", error_line(exc))
            await asyncio.sleep(LEADER_POLL_S)

    async def _worker(self) -> None:
        assert self._app is not None
        await self._app.run_worker_async(
            queues=[queue_of(self.location), queue_of(ANYWHERE)],
            name=self.name,
            concurrency=WORKER_CONCURRENCY,
            wait=True,
            install_signal_handlers=False,
            update_heartbeat_interval=HEARTBEAT_S,
            stalled_worker_timeout=STALLED_S,
            delete_jobs="successful",
            fetch_job_polling_interval=1.0,
        )

    async def _run_firing(
        self, context: Any, *, schedule: str, target: str, location: str, due_us: int
    ) -> None:
        """A job: run the firing's target here, fenced on its firing row; a job that starts
        more than one interval after its due instant is dropped (SPEC §13)."""
        job_id: int = context.job.id
        firing = Firing(schedule, target, location, from_us(due_us))
        definition = self._schedule(schedule)
        if definition is None:  # applied on another agent, its notice still on the way
            await self.service.reload(announce=False)
            definition = self._schedule(schedule)
        late = datetime.now(UTC) - firing.due_at
        if definition is None:
            await self.store.firings.drop(firing, job_id)
            return
        interval = interval_after(definition, firing.due_at)
        if late > interval:
            where = self.location if firing.location == ANYWHERE else firing.location
            skipped = skipped_result(self.service.project, firing, late, interval, self.name, where)
            if await self.store.firings.drop(firing, job_id, skipped):
                log.info("schedule %s: %s", schedule, skipped.error)
                self.service.runs.announce_unfinished(skipped)
            return
        if not await self.store.firings.claim(firing, job_id, self.name):
            return
        await self.service.runs.run_fenced(
            target, job_id, self.name, firing.schedule, firing.due_at
        )

    def _schedule(self, name: str) -> Schedule | None:
        return next((s for s in self.service.project.schedules if s.name == name), None)


async def _try_lock(conn: psycopg.AsyncConnection[Any]) -> bool:
    cursor = await conn.execute("SELECT pg_try_advisory_lock(%s, %s)", LEADER_LOCK)
    row = await cursor.fetchone()
    return bool(row and row[0])
