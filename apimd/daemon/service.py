"""The daemon's services: one façade over the store, the engine, the scheduler and the event hub,
so REST handlers stay thin (SPEC §2 apply, §5 refresh, §6, §9 shutdown). Its parts: the runs in
flight (`daemon/runs.py`), the summary and metrics (`daemon/summary.py`), the periodic work
(`daemon/upkeep.py`)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel

from apimd.daemon import heap
from apimd.daemon.agents import Agents
from apimd.daemon.events import EventHub, Subscription
from apimd.daemon.metrics import Metrics
from apimd.daemon.runs import NotFound, Runs
from apimd.daemon.scheduler import ScheduleRunner
from apimd.daemon.status import build_status
from apimd.daemon.summary import build_summary, metrics_document, target_names, window_seconds
from apimd.daemon.upkeep import Upkeep
from apimd.engine.context import RunOrder
from apimd.engine.runner import Engine
from apimd.engine.signin import SignInDone, SignInFlows, SignInStarted
from apimd.engine.tokens import utcnow
from apimd.model.api import (
    AgentInfo,
    ApplySummary,
    ResultPage,
    RunRequest,
    StatusInfo,
    Summary,
    SummaryOrder,
)
from apimd.model.events import Event, ResourceChanged, ScheduleFired
from apimd.model.kinds import ResourceKind
from apimd.model.outcome import Outcome
from apimd.model.project import Project
from apimd.model.resources import Token
from apimd.model.result import Result
from apimd.model.runtime import effective_state
from apimd.model.signin import PendingSignIn
from apimd.model.stats import Stats
from apimd.settings import Settings
from apimd.store import ApplyReport, SqliteStore

log = logging.getLogger(__name__)


class Broadcast:
    """Where every event goes: SSE clients (the hub) and the metrics."""

    def __init__(self, hub: EventHub, metrics: Metrics) -> None:
        self.hub = hub
        self.metrics = metrics

    def __call__(self, event: Event) -> None:
        self.hub.publish(event)
        self.metrics.observe_event(event)


class MonitorService:
    """What the REST API and the scheduler call; built complete by `open` (engine, sign-ins,
    scheduler, agents), then `start` sets the periodic work going."""

    def __init__(
        self,
        settings: Settings,
        store: SqliteStore,
        engine: Engine,
        publish: Broadcast,
        *,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.settings = settings
        self.store = store
        self.engine = engine
        self.publish = publish
        self.hub = publish.hub
        self.metrics = publish.metrics
        self._clock = clock
        self.started_at = clock()
        self.started_monotonic = time.monotonic()
        self.signins = SignInFlows(engine)
        self.runs = Runs(engine, store, self.hub, self.metrics, clock)
        self.scheduler = ScheduleRunner(
            self.runs.run_scheduled, on_fired=self._fired, on_skipped=self.runs.skipped
        )
        self.callback_port: int | None = None
        self.callback_error: str | None = None
        self._stopped = False
        self._reload_lock = asyncio.Lock()
        self.agents = Agents(self)
        self.upkeep = Upkeep(settings, store, engine, self.agents, clock)

    @classmethod
    async def open(
        cls,
        settings: Settings,
        store: SqliteStore,
        hub: EventHub,
        *,
        clock: Callable[[], datetime] = utcnow,
    ) -> MonitorService:
        """The service over the project the store holds (no callback URL until one binds)."""
        project = await store.project.load_project()
        publish = Broadcast(hub, Metrics(settings.location or "local"))
        engine = Engine(
            project,
            store,
            events=publish,
            on_result=publish.metrics.observe_result,
            clock=clock,
        )
        return cls(settings, store, engine, publish, clock=clock)

    # --- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        project = self.project
        self.metrics.seed((await self.store.latest_results(target_names(project))).values())
        stale = await self.engine.tokens.recover([t.name for t in project.tokens])
        if stale:
            log.info(
                "token(s) %s were mid-refresh when apimd stopped; refreshed on next use",
                ", ".join(stale),
            )
        await self.engine.notifier.restore(self.engine.notifier_owners())
        # In a cluster the leader prunes, for all (`Agents`).
        self.upkeep.start(prunes=not self.agents.clustered)
        if not self.agents.clustered:  # in a cluster, only the leader fires schedules
            await self.scheduler.start()
        self.scheduler.sync(project.schedules)
        await self.agents.start()
        heap.settle()  # what lives as long as the daemon, out of the way of full collections

    async def stop(self) -> None:
        """SIGTERM: take no new runs, give in-flight runs 10 s, record the rest CANCELLED."""
        if self._stopped:
            return
        self._stopped = True
        self.runs.closing = True
        self.upkeep.stop()
        await self.agents.stop()
        await self.scheduler.shutdown()
        await self.runs.drain()
        await self.signins.close()
        await self.engine.close()
        await self.hub.close()

    def set_callback_port(self, port: int) -> None:
        """The callback server listens: sign-ins can send the browser to it."""
        self.callback_port = port
        self.callback_error = None
        self.engine.callback_url = self.settings.callback_url(port)

    @property
    def project(self) -> Project:
        return self.engine.project

    async def reload(self, changed: list[str] | None = None, *, announce: bool = True) -> None:
        """Re-read the definitions after a change; the store is the source of truth. With
        `announce`, a change made here reloads the other agents too (SPEC §13)."""
        async with self._reload_lock:
            project = await self.store.project.load_project()
            self.engine.update_project(project)
            self.scheduler.sync(project.schedules)
            await self.engine.notifier.restore(self.engine.notifier_owners())
            heap.settle()
            await self.agents.share_next_runs()
        if changed:
            self.publish(ResourceChanged(resources=tuple(changed)))
            if announce:
                await self.agents.announce_change()

    # --- status ---------------------------------------------------------------------------

    async def status(self) -> StatusInfo:
        """What this daemon knows of itself; the agents only if the store answers in time."""
        return await build_status(self)

    async def live_agents(self) -> list[AgentInfo]:
        """The agents of this store heard from lately (SPEC §13)."""
        return await self.agents.live()

    def subscribe(self) -> Subscription:
        """The event stream of `GET /v1/events`."""
        return self.hub.subscribe()

    # --- resources ------------------------------------------------------------------------

    async def list_resources(self, kind: ResourceKind, *, reveal: bool = False) -> list[Any]:
        items = await self.store.project.list(kind, reveal=reveal)
        return [await self._token_state(i) if kind == "tokens" else i for i in items]

    async def get_resource(self, kind: ResourceKind, name: str, *, reveal: bool = False) -> Any:
        item = await self.store.project.get(kind, name, reveal=reveal)
        if item is None:
            raise NotFound(f"no {kind.singular} named {name!r}")
        return await self._token_state(item) if kind == "tokens" else item

    async def put_resource(self, kind: ResourceKind, name: str, resource: BaseModel) -> Any:
        report = await self.store.project.put(kind, resource)
        await self.reload(_changed(report))
        return await self.get_resource(kind, name)

    async def delete_resource(self, kind: ResourceKind, name: str) -> None:
        await self.store.project.delete(kind, name)
        await self.reload([f"{kind}/{name}"])

    async def apply(self, project: Project, *, prune: bool) -> ApplySummary:
        report = await self.store.project.apply(project, prune=prune)
        await self.reload(_changed(report))
        return _summary(report)

    async def export(self, *, secrets: bool) -> Project:
        return await self.store.project.export(secrets=secrets)

    async def _token_state(self, token: Token) -> Token:
        """Show `expired` for a valid token that is due for refresh (its real lifetime bounds
        the refresh skew, as the engine does)."""
        if token.state is None:
            return token
        runtime = await self.store.load_token(token.name)
        auth = self.project.auth_setting(token.auth)
        state = effective_state(runtime, auth, self._clock())
        return token.model_copy(update={"state": state})

    # --- runs -----------------------------------------------------------------------------

    def check_target(self, kind: str, name: str) -> None:
        """`NotFound` unless `name` is a `kind` (`call`, `workflow`)."""
        if self.runs.target_kind(name) != kind:
            raise NotFound(f"{name!r} is not a {kind}")

    def start_run(
        self, kind: str, name: str, wanted: RunRequest
    ) -> tuple[str, asyncio.Task[Result]]:
        """`POST /v1/calls|workflows/{name}/run` here: start the `kind` named `name` in the
        background; returns its run id (also its result's) and task."""
        self.check_target(kind, name)
        return self.runs.start(
            name, RunOrder(variables=wanted.variables, interactive=wanted.interactive)
        )

    def _fired(self, schedule: str, targets: list[str], scheduled_at: datetime) -> None:
        lateness = self._clock() - scheduled_at
        # Validated, not model_construct(): pydantic's model_construct is the slower of the two
        # here (32 µs against 22 µs; its default factories inspect their own signature).
        self.publish(
            ScheduleFired(
                schedule=schedule,
                targets=tuple(targets),
                scheduled_at=scheduled_at,
                lateness_ms=round(lateness / timedelta(milliseconds=1), 3),
            )
        )

    # --- results and tokens ---------------------------------------------------------------

    async def results(
        self,
        *,
        name: str | None,
        outcome: Outcome | None,
        since: datetime | None,
        limit: int,
        cursor: str | None,
    ) -> ResultPage:
        """Results, newest first; a call's include its runs as a step of its workflows (marked
        as such)."""
        page = await self.store.list_results(
            name=name,
            outcome=outcome,
            since=since,
            limit=limit,
            cursor=cursor,
            parents=self.project.parents(name) if name else [],
        )
        return ResultPage(results=page.results, next_cursor=page.next_cursor)

    async def result(self, result_id: str) -> Result:
        result = await self.store.get_result(result_id)
        if result is None:
            raise NotFound(f"no result with id {result_id!r}")
        return result

    async def stats(self, name: str, window: str) -> Stats:
        self.runs.target_kind(name)
        seconds = window_seconds(window)
        now = self._clock()
        return await self.store.stats(name, now - timedelta(seconds=seconds), now)

    async def summary(
        self, window: str, *, order: SummaryOrder = "project", limit: int | None = None
    ) -> Summary:
        """Every call and workflow at a glance (the first `limit` in `order`)."""
        next_runs = await self.agents.next_runs()
        locations = await self.agents.target_locations()
        return await build_summary(
            self.store,
            self.project,
            next_runs,
            locations,
            self._clock(),
            window,
            order=order,
            limit=limit,
        )

    async def metrics_text(self) -> bytes:
        """`GET /metrics`: the Prometheus text document (SPEC §11)."""
        return await metrics_document(self.store, self.project, self.metrics, self._clock())

    async def refresh_token(self, name: str) -> Token:
        if self.project.token(name) is None:
            raise NotFound(f"no token named {name!r}")
        await self.engine.refresh_token(name)
        token: Token = await self.get_resource(ResourceKind.TOKENS, name)
        return token

    # --- sign-ins -------------------------------------------------------------------------

    async def start_signin(self, token_name: str, *, device: bool = False) -> SignInStarted:
        """A browser sign-in for the token, or a device one (RFC 8628) with `device`."""
        if self.project.token(token_name) is None:
            raise NotFound(f"no token named {token_name!r}")
        if device:
            return await self.signins.start_device(token_name)
        return await self.signins.start_for_token(token_name)

    async def pending_signins(self) -> list[PendingSignIn]:
        return await self.store.pending_signins()

    async def complete_signin(self, params: dict[str, str]) -> SignInDone:
        """The browser came back: finish that sign-in."""
        return await self.signins.complete(params)

    async def complete_signin_url(self, url: str) -> SignInDone:
        """A pasted redirect URL: finish that sign-in."""
        return await self.signins.complete_url(url)


def _changed(report: ApplyReport) -> list[str]:
    return [*report.created, *report.updated, *report.deleted, *report.tokens_set]


def _summary(report: ApplyReport) -> ApplySummary:
    def group(entries: list[str]) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for entry in entries:
            kind, _, name = entry.partition("/")
            out.setdefault(kind, []).append(name)
        return out

    return ApplySummary(
        created=group(report.created),
        updated=group(report.updated),
        deleted=group(report.deleted),
        unchanged=group(report.unchanged),
        token_state_set=report.tokens_set,
    )
