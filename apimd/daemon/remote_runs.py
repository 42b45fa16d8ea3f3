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


def queue_of(location: str) -> str:
    """The procrastinate queue of a location (`*`: schedules that run anywhere)."""
    return f"apimd@{location}"


class RemoteRuns:
    """Runs for another location: queued here, run there."""

    def __init__(self, agents: Agents) -> None:
        self.agents = agents
        self.task: Any = None
        """The procrastinate task of these runs (set when the agent joins its cluster)."""

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
        await self.task.configure(queue=queue_of(location)).defer_async(
            target=name, run_id=run_id, variables=sealed, asked_by=self.agents.name
        )
        return run_id

    async def result_of(self, run_id: str) -> Result:
        """Wait for the result of a run queued elsewhere (written by the agent that ran it)."""
        while True:
            result = await self.agents.store.get_result(run_id)
            if result is not None:
                return result
            await asyncio.sleep(RESULT_POLL_S)

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
