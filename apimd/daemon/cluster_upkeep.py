"""The cluster upkeep of an agent (SPEC §13) that is not the queue itself: following other agents'
project changes and events, and recording the runs of lost agents."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

import procrastinate
import psycopg

from apimd.daemon.firing_results import unrun_result
from apimd.daemon.relay import CHANNEL as EVENTS_CHANNEL
from apimd.daemon.tasks import cancelling
from apimd.model.common import ANYWHERE
from apimd.store.errors import CorruptRecord

if TYPE_CHECKING:
    from apimd.daemon.agents import Agents

log = logging.getLogger(__name__)

STALLED_S = 15.0
LEADER_POLL_S = 1.0
RELOAD_CHANNEL = "apimd_reload"
ANALYZE_AFTER_JOBS = 1000
"""The leader refreshes the planner's statistics of the job queue after this many new jobs."""
_LOCK_INDEX = (
    "CREATE INDEX IF NOT EXISTS apimd_jobs_by_lock ON procrastinate_jobs (lock)"
    " WHERE status IN ('todo', 'doing') AND lock IS NOT NULL"
)


async def tune_queue(agents: Agents) -> None:
    """The leader's index on procrastinate's job locks. A worker takes the first waiting job
    whose lock (`target@location`) no earlier waiting or running job holds; procrastinate's
    only index on `lock` alone covers running jobs, so with thousands of jobs waiting each
    fetch compared every waiting job with every other (9 s a fetch at 7,000 waiting, the
    cluster bench at 10,000 monitors): with this one, 0.2 ms. Created under the leader lock,
    so never by two agents at once; kept across restarts (IF NOT EXISTS)."""
    async with agents.store.db.transaction() as conn:
        await conn.execute(_LOCK_INDEX)


async def analyze_queue(agents: Agents) -> None:
    """Fresh statistics of the job queue: planned as nearly empty while thousands of jobs
    wait, a fetch scans and sorts them all instead of taking the first in order."""
    async with agents.store.db.transaction() as conn:
        await conn.execute("ANALYZE procrastinate_jobs")


async def follow_changes(agents: Agents) -> None:
    """Reload on another agent's change; deliver other agents' events."""
    assert agents.url is not None
    assert agents.relay is not None
    connected_before = False
    while True:
        try:
            conn = await psycopg.AsyncConnection.connect(
                agents.url, autocommit=True, application_name=f"apimd listen {agents.name}"[:63]
            )
            async with conn:
                await conn.execute(f"LISTEN {RELOAD_CHANNEL}")
                await conn.execute(f"LISTEN {EVENTS_CHANNEL}")
                await agents.service.reload(announce=False)  # changed while not listening
                if connected_before:
                    agents.relay.reconnected()
                connected_before = True
                async for notice in conn.notifies():
                    if notice.channel == EVENTS_CHANNEL:
                        await agents.relay.receive(notice.payload)
                    elif notice.payload != agents.relay.instance:  # not its own apply
                        await agents.service.reload(announce=False)
        except Exception as exc:  # the server gone, or a reload refused: try again
            if cancelling():  # a cancellation disguised as an error: stop
                raise
            log.warning("following project changes: %s; reconnecting", exc)
            await asyncio.sleep(LEADER_POLL_S)


async def record_lost(agents: Agents, manager: procrastinate.manager.JobManager) -> None:
    """Jobs of workers silent for 15 s: their firing is recorded CANCELLED ("agent lost") and
    the job failed, never re-run."""
    for job in await manager.get_stalled_jobs(seconds_since_heartbeat=STALLED_S):
        assert job.id is not None
        try:
            found = await agents.store.firings.get(job.id)
        except CorruptRecord as exc:  # its job is failed all the same: never retried forever
            log.warning("a lost run not recorded: %s", exc)
            found = None
        if found is not None:
            firing, _state, agent = found
            error = "agent lost: its agent stopped answering before the run finished"
            # Where an agent lost with a firing of anywhere was is not known here.
            where = None if firing.location == ANYWHERE else firing.location
            lost = unrun_result(agents.service.project, firing, error, agent, where)
            if await agents.store.firings.lose(job.id, lost):
                log.warning("run of %s on agent %s lost", firing.target, agent)
        await manager.finish_job_by_id_async(
            job.id, status=procrastinate.jobs.Status.FAILED, delete_job=False
        )
    await manager.prune_stalled_workers(STALLED_S)
