"""A manual run asked of one agent for another location (SPEC §13): queued on that location's
procrastinate queue, run by an agent there, its result read back from the shared store."""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import TYPE_CHECKING, Any

from aiohttp import web

from apimd.engine.context import RunOrder
from apimd.model.api import RunRequest
from apimd.model.result import Result

if TYPE_CHECKING:
    from apimd.daemon.agents import Agents

log = logging.getLogger(__name__)

RESULT_POLL_S = 0.2
JOB_CHECK_S = 1.0
"""How often a wait for a run elsewhere looks at its job: a job that ended without a result (its
agent lost, the run refused there) or that no live agent can take ends the wait."""
_ENDED = ("failed", "cancelled", "aborted")


def queue_of(location: str) -> str:
    """The procrastinate queue of a location (`*`: schedules that run anywhere)."""
    return f"apimd@{location}"


class RemoteRuns:
    """Runs for another location: queued here, run there."""

    def __init__(self, agents: Agents) -> None:
        self.agents = agents
        self.task: Any = None
        """The procrastinate task of these runs (set when the agent joins its cluster)."""
        self._jobs: dict[str, tuple[int, str]] = {}
        """Run id → its job and location, while a request waits for its result."""

    def elsewhere(self, location: str | None) -> bool:
        """Whether a run asked for `location` goes to another location's queue (SQLite: the one
        daemon is every location's agent)."""
        return location is not None and self.agents.clustered and location != self.agents.location

    async def run_elsewhere(self, location: str, name: str, request: RunRequest) -> str:
        """Queue a manual run of `name` for an agent of `location`; returns its run id (and
        result id). Its variables travel sealed with the store's key."""
        if request.interactive:
            raise web.HTTPBadRequest(
                text="`location`: an interactive run runs on the agent asked (a sign-in may need"
                f" this terminal); leave out `location` or ask an agent in {location}"
            )
        live = sorted({agent.location for agent in await self.agents.live()})
        if location not in live:
            raise web.HTTPBadRequest(
                text=f"`location`: no live agent in {location!r}; the live locations are"
                f" {', '.join(live)}"
            )
        run_id = str(uuid.uuid4())
        sealed = self.agents.store.box.encrypt_json(request.variables).decode()
        job_id = await self.task.configure(queue=queue_of(location)).defer_async(
            target=name, run_id=run_id, variables=sealed, asked_by=self.agents.name
        )
        if request.wait:
            self._jobs[run_id] = (int(job_id), location)
        return run_id

    async def result_of(self, run_id: str) -> Result:
        """Wait for the result of a run queued elsewhere (written by the agent that ran it);
        409 when its job ended without one, or no live agent is left to take it."""
        job_id, location = self._jobs[run_id]
        loop = asyncio.get_running_loop()
        checked = loop.time()
        try:
            while True:
                result = await self.agents.store.get_result(run_id)
                if result is not None:
                    return result
                if loop.time() - checked >= JOB_CHECK_S:
                    checked = loop.time()
                    why = await self._no_result(job_id, location)
                    if why is not None and await self.agents.store.get_result(run_id) is None:
                        raise web.HTTPConflict(text=f"run {run_id} in {location}: {why}")
                await asyncio.sleep(RESULT_POLL_S)
        finally:
            self._jobs.pop(run_id, None)

    async def _no_result(self, job_id: int, location: str) -> str | None:
        """Why the job will never write its run's result, or None while it still may."""
        db = self.agents.store.db
        row = await db.fetchone("SELECT status FROM procrastinate_jobs WHERE id = ?", (job_id,))
        if row is None:
            return "its job is gone and it recorded no result"
        status = str(row[0])
        if status in _ENDED:
            return (
                f"it ended without a result ({status}: the agent that took it stopped answering,"
                " or could not run it; see that agent's log)"
            )
        if status == "todo" and location not in {a.location for a in await self.agents.live()}:
            async with db.transaction() as conn:
                taken = await conn.execute(
                    "UPDATE procrastinate_jobs SET status = 'cancelled'"
                    " WHERE id = ? AND status = 'todo'",
                    (job_id,),
                )
            if taken:
                return f"no live agent in {location} took it; it was withdrawn"
        return None

    async def run_here(self, *, target: str, run_id: str, variables: str, asked_by: str) -> None:
        """A job: a manual run another agent was asked for, for this location."""
        store, service = self.agents.store, self.agents.service
        values = store.box.decrypt_json(variables.encode(), what=f"variables of run {run_id}")
        log.info("running %s for agent %s (run %s)", target, asked_by, run_id)
        try:
            service.runs.target_kind(target)
        except LookupError:  # applied on the asking agent, its notice still on the way
            await service.reload(announce=False)
        _run_id, task = service.runs.start(target, RunOrder(variables=values, run_id=run_id))
        await asyncio.shield(task)
