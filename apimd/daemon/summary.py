"""Every call and workflow at a glance (`GET /v1/summary`, SPEC §6): the latest result, counts
and uptime over a window, the next run, and the token in the worst state; and the same as
Prometheus metrics (`GET /metrics`, SPEC §11)."""

from __future__ import annotations

import asyncio
import heapq
from datetime import datetime, timedelta

from apimd.daemon.firing_results import skipped_firing
from apimd.daemon.metrics import Metrics, TokenReading
from apimd.model.api import Summary, SummaryOrder, TargetSummary, dashboard_key
from apimd.model.common import parse_duration
from apimd.model.errors import Issue, ValidationFailed
from apimd.model.outcome import Outcome
from apimd.model.project import Project
from apimd.model.reason import short_reason
from apimd.model.resources import SLA, Call, TokenState, Workflow
from apimd.model.result import Result
from apimd.model.runtime import effective_state
from apimd.store import SqliteStore
from apimd.store.results import RecentRuns, latest_including_steps

MAX_WINDOW_S = 3650 * 86400.0
OVERLAP_PAGES = 4
"""How far back (pages of 50) a target skipped over and over looks for its last run."""

_TOKEN_STATE_RANK = [
    TokenState.VALID,
    TokenState.REFRESHING,
    TokenState.EXPIRED,
    TokenState.ERROR,
    TokenState.NEEDS_SIGN_IN,
]


def window_seconds(window: str) -> float:
    """`24h`, `7d`, … in seconds; a clear 422 for anything else."""
    try:
        seconds = parse_duration(window)
    except ValueError as exc:
        raise ValidationFailed([Issue(str(exc), loc=("window",))]) from None
    if seconds <= 0:
        raise ValidationFailed([Issue("must be a positive duration", loc=("window",))])
    if seconds > MAX_WINDOW_S:
        raise ValidationFailed([Issue("must be at most 3650d", loc=("window",))])
    return seconds


def target_names(project: Project) -> set[str]:
    return {c.name for c in project.calls} | {w.name for w in project.workflows}


async def token_states(
    store: SqliteStore, project: Project, now: datetime
) -> dict[str, TokenState]:
    """Each token's state as shown: `expired` for a valid one due for refresh."""
    states: dict[str, TokenState] = {}
    for definition in project.tokens:
        runtime = await store.load_token(definition.name)
        states[definition.name] = effective_state(
            runtime, project.auth_setting(definition.auth), now
        )
    return states


async def build_summary(
    store: SqliteStore,
    project: Project,
    next_runs: dict[str, datetime],
    locations: dict[str, list[str]],
    now: datetime,
    window: str,
    *,
    order: SummaryOrder = "project",
    limit: int | None = None,
) -> Summary:
    """The summary of every target: their results in one query for all targets (not one per
    target); token states are read one token at a time. In `order`; with `limit`, only the first
    `limit` targets are built (a dashboard's first screen of 10,000 monitors)."""
    seconds = window_seconds(window)
    since = now - timedelta(seconds=seconds)
    recent = await store.recent_results(since)
    await _last_that_ran(store, recent, since)
    states = await token_states(store, project, now)
    items: list[Call | Workflow] = [*project.calls, *project.workflows]
    total = len(items)
    if order == "dashboard":
        keys = {item.name: _dashboard_key(item, project, recent, states) for item in items}
        if limit is not None and limit < total:
            items = heapq.nsmallest(limit, items, key=lambda item: keys[item.name])
        else:
            items.sort(key=lambda item: keys[item.name])
    items = items[:limit]
    targets = [
        _target_summary(item, project, recent, next_runs, states, locations.get(item.name, []))
        for item in items
    ]
    return Summary(generated_at=now, window_s=seconds, total=total, targets=targets)


async def metrics_document(
    store: SqliteStore, project: Project, metrics: Metrics, now: datetime
) -> bytes:
    """`GET /metrics`: the Prometheus text document (SPEC §11), with each token's state."""
    metrics.forget(target_names(project))
    readings = []
    for definition in project.tokens:
        runtime = await store.load_token(definition.name)
        state = effective_state(runtime, project.auth_setting(definition.auth), now)
        expires = runtime.expires_at if runtime is not None else None
        readings.append(TokenReading(definition.name, state.value, expires))
    # Formatting 10,000 targets' series takes a while: off the event loop, on a copy.
    return await asyncio.to_thread(metrics.render, metrics.snapshot(readings))


async def _last_that_ran(
    store: SqliteStore, recent: dict[str, RecentRuns], since: datetime
) -> None:
    """A target whose latest result is a skipped firing (its previous run still going) shows
    its last run that did run (SPEC §4: the skip is in the results list and the counts, not the
    outcome): looked up for those targets alone, a page at a time."""
    for name, runs in recent.items():
        if runs.latest is None or not skipped_firing(runs.latest):
            continue
        cursor: str | None = None
        for _ in range(OVERLAP_PAGES):
            page = await store.list_results(name=name, since=since, limit=50, cursor=cursor)
            ran = [r for r in page.results if r.name == name and not skipped_firing(r)]
            if ran:
                runs.latest = ran[0]
            if ran or page.next_cursor is None:
                break  # none ran in the window: the skip is all there is to show
            cursor = page.next_cursor


def _latest(
    item: Call | Workflow, project: Project, recent: dict[str, RecentRuns]
) -> Result | None:
    runs = recent.get(item.name)
    latest = runs.latest if runs else None
    if isinstance(item, Call):  # a call that runs only as a step has still run
        parents = [recent.get(w) for w in project.parents(item.name)]
        latest = latest_including_steps(item.name, latest, [p.latest for p in parents if p])
    return latest


def _token_of(item: Call | Workflow, project: Project, states: dict[str, TokenState]) -> str | None:
    return item.token if isinstance(item, Call) else _worst_token(item.steps, project, states)


def _dashboard_key(
    item: Call | Workflow,
    project: Project,
    recent: dict[str, RecentRuns],
    states: dict[str, TokenState],
) -> tuple[int, str, str]:
    latest = _latest(item, project, recent)
    token_name = _token_of(item, project, states)
    return dashboard_key(
        item.name,
        latest.outcome if latest else None,
        states.get(token_name) if token_name else None,
    )


def _target_summary(
    item: Call | Workflow,
    project: Project,
    recent: dict[str, RecentRuns],
    next_runs: dict[str, datetime],
    states: dict[str, TokenState],
    locations: list[str],
) -> TargetSummary:
    runs = recent.get(item.name)
    latest = _latest(item, project, recent)
    counts = dict(runs.counts) if runs else {}
    counted = sum(n for o, n in counts.items() if o != Outcome.SKIPPED)
    failed = counts.get(Outcome.FAIL, 0)
    token_name = _token_of(item, project, states)
    return TargetSummary(
        name=item.name,
        kind="call" if isinstance(item, Call) else "workflow",
        outcome=latest.outcome if latest else None,
        result=latest.result if latest else None,
        http_status=latest.http_status if latest else None,
        last_run=latest.started_at if latest else None,
        # A step's result lives inside its workflow's: that is what opens.
        last_result_id=(latest.workflow_run_id or latest.id) if latest else None,
        error=latest.error if latest else None,
        step_of=latest.workflow if latest else None,
        recent_ms=runs.totals if runs else [],
        counts=counts,
        uptime=(counted - failed) / counted if counted else None,
        next_run=next_runs.get(item.name),
        token=token_name,
        token_state=states.get(token_name) if token_name else None,
        cert_expires_at=latest.tls.not_after if latest and latest.tls else None,
        description=item.description,
        tags=item.tags,
        locations=locations,
        # Where it last ran on its own: a step ran where its workflow did, on the workflow's row
        # (the live `run.step` event carries no location either).
        last_location=latest.location if latest and latest.workflow is None else None,
        reason=short_reason(latest, _sla_of(latest, project)) if latest else None,
    )


def _sla_of(latest: Result, project: Project) -> SLA | None:
    """The SLA of the call a result ran (a step's result names its call)."""
    call = project.call(latest.name) if latest.kind == "call" else None
    return call.sla if call is not None else None


def _worst_token(steps: list[str], project: Project, states: dict[str, TokenState]) -> str | None:
    """The token of a workflow's steps in the worst state (a sign-in needed shows first)."""
    tokens = [c.token for c in map(project.call, steps) if c is not None and c.token]
    known = [t for t in tokens if t in states]
    if not known:
        return None
    return max(known, key=lambda t: _TOKEN_STATE_RANK.index(states[t]))
