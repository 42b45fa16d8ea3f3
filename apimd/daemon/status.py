"""`GET /v1/status`: what a daemon knows of itself and, in a cluster, of the other agents."""

from __future__ import annotations

import asyncio
import os
import time
from typing import TYPE_CHECKING

from apimd import __version__
from apimd.model.api import AgentInfo, StatusInfo
from apimd.model.kinds import ResourceKind
from apimd.model.project import Project
from apimd.store import StoreError

if TYPE_CHECKING:
    from apimd.daemon.service import MonitorService

STATUS_STORE_WAIT_S = 3.0
"""How long `GET /v1/status` waits for the store to list the agents: status answers anyway."""


def unserved_locations(project: Project, agents: list[AgentInfo]) -> list[str]:
    """The locations enabled schedules name (`locations: [...]`) where no agent is live."""
    named = {
        location
        for schedule in project.schedules
        if schedule.enabled and isinstance(schedule.locations, list)
        for location in schedule.locations
    }
    return sorted(named - {agent.location for agent in agents}, key=str.lower)


async def build_status(service: MonitorService) -> StatusInfo:
    """The daemon's status; the agents only if the store answers within `STATUS_STORE_WAIT_S`."""
    store_error: str | None = None
    try:
        agents = await asyncio.wait_for(service.agents.live(), STATUS_STORE_WAIT_S)
    except (StoreError, TimeoutError) as exc:
        agents = []
        store_error = str(exc) or f"it did not answer within {STATUS_STORE_WAIT_S:g} s"
    project = service.project
    counts = {
        kind.value: len(getattr(project, kind))
        for kind in ResourceKind
        if kind is not ResourceKind.MAINTENANCE
    }
    counts |= {"running": len(service.runs), "event_subscribers": service.hub.subscribers}
    settings = service.settings
    port = service.callback_port if service.callback_port is not None else settings.callback_port
    clustered = service.agents.clustered
    return StatusInfo(
        version=__version__,
        pid=os.getpid(),
        started_at=service.started_at,
        uptime_s=round(time.monotonic() - service.started_monotonic, 3),
        counts=counts,
        scheduler=service.scheduler.state,
        schedules=sum(1 for s in project.schedules if s.enabled),
        running=service.runs.targets(),
        callback_url=settings.callback_url(port),
        callback_bound=service.callback_port is not None,
        callback_error=service.callback_error,
        db_path=settings.store_description,
        socket_path=str(settings.socket_path),
        log_path=str(settings.log_path),
        location=service.agents.location,
        agent=service.agents.name,
        leader=service.agents.leader,
        agents=agents,
        clustered=clustered,
        unserved_locations=(
            unserved_locations(project, agents) if clustered and store_error is None else []
        ),
        store_error=store_error,
    )
