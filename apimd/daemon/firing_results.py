"""The results of firings that did not run (SPEC §13): lost with their agent, or skipped as too late
to run. Both are CANCELLED (outcome SKIPPED), saying why, at the firing's due instant."""

from __future__ import annotations

import contextlib
import uuid
from datetime import datetime, timedelta

from cronsim import CronSim

from apimd.engine.recording import failed_result
from apimd.model.outcome import Outcome, ResultCode
from apimd.model.project import Project
from apimd.model.resources import Schedule
from apimd.model.result import Result
from apimd.store.firings import Firing

SKIPPED_PREFIX = "skipped: "
"""How the error of a skipped firing begins (the previous run still going, or too late to start)."""


def skipped_firing(result: Result) -> bool:
    """A firing skipped because the previous run was still going (or, in a cluster, could not
    start within its interval): no outcome of the target's, only a note that it did not run."""
    return (
        result.outcome is Outcome.SKIPPED
        and result.result is ResultCode.CANCELLED
        and result.trigger == "schedule"
        and (result.error or "").startswith(SKIPPED_PREFIX)
    )


def unrun_result(
    project: Project, firing: Firing, error: str, agent: str | None, location: str | None
) -> Result:
    """A result for a firing that did not run: CANCELLED (outcome SKIPPED), saying why."""
    return failed_result(
        run_id=str(uuid.uuid4()),
        kind="workflow" if project.workflow(firing.target) else "call",
        name=firing.target,
        trigger="schedule",
        started_at=firing.due_at,
        error=error,
        code=ResultCode.CANCELLED,
    ).model_copy(
        update={
            "agent": agent,
            "location": location,
            "schedule": firing.schedule,
            "scheduled_at": firing.due_at,
        }
    )


def skipped_result(
    project: Project,
    firing: Firing,
    late: timedelta,
    interval: timedelta,
    agent: str,
    location: str,
) -> Result:
    """The result of a firing too late to run (a monitor checks now or not at all)."""
    error = (
        f"{SKIPPED_PREFIX}it could start only {late.total_seconds():.1f} s after it was due, more than"
        f" its {interval.total_seconds():g} s interval (the previous run of {firing.target} in"
        f" {location} was still going, or no agent there was free)"
    )
    return unrun_result(project, firing, error, agent, location)


def interval_after(schedule: Schedule, due: datetime) -> timedelta:
    """How long after `due` the next firing of `schedule` is due (its staleness limit)."""
    if schedule.every_seconds is not None:
        return timedelta(seconds=schedule.every_seconds)
    assert schedule.cron is not None
    with contextlib.suppress(StopIteration, ValueError):
        return next(CronSim(schedule.cron, due.replace(tzinfo=None))) - due.replace(tzinfo=None)
    return timedelta(minutes=1)
