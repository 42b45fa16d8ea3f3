"""The daemon's services: one façade over the store, the engine, the scheduler and the event hub,
so REST handlers stay thin (SPEC §2 apply, §5 refresh, §6, §9 shutdown)."""

from __future__ import annotations

import asyncio
import logging
import os
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel

from apimd import __version__
from apimd.daemon import heap
from apimd.daemon.agents import Agents
from apimd.daemon.events import EventHub
from apimd.daemon.metrics import Metrics, TokenReading
from apimd.daemon.scheduler import ScheduleRunner
from apimd.engine.context import UnknownTarget
from apimd.engine.recording import failed_result
from apimd.engine.runner import Engine
from apimd.engine.signin import SignInDone, SignInFlows, SignInStarted
from apimd.model.api import ApplySummary, StatusInfo, Summary, TargetSummary
from apimd.model.common import parse_duration
from apimd.model.errors import Issue, ValidationFailed
from apimd.model.events import Event, ResourceChanged, RunFinished, ScheduleFired
from apimd.model.outcome import Outcome, ResultCode
from apimd.model.project import Project
from apimd.model.resources import Token, TokenState, Workflow
from apimd.model.result import Result, Trigger
from apimd.model.runtime import effective_state
from apimd.model.stats import Stats
from apimd.settings import Settings
from apimd.store import ApplyReport, SqliteStore
from apimd.store.results import latest_including_steps

log = logging.getLogger(__name__)

SHUTDOWN_GRACE_S = 10.0
PRUNE_EVERY_S = 3600.0
REMIND_EVERY_S = 0.5  # how often `repeat_every` reminders are checked (the smallest is 1 s)
MAX_WINDOW_S = 3650 * 86400.0


class NotFound(LookupError):
    """No resource, result or target of that name."""


class ShuttingDown(RuntimeError):
    """The daemon is stopping and takes no new runs."""


class MonitorService:
    """What the REST API and the scheduler call; owns the in-flight runs."""

    def __init__(self, settings: Settings, store: SqliteStore, hub: EventHub) -> None:
        self.settings = settings
        self.store = store
        self.hub = hub
        self.metrics = Metrics()
        self.started_at = datetime.now(UTC)
        self._started_monotonic = time.monotonic()
        self.engine: Engine | None = None
        self.signins: SignInFlows
        self.scheduler = ScheduleRunner(
            self._run_scheduled, on_fired=self._fired, on_skipped=self._skipped
        )
        self.callback_port: int | None = None
        self.callback_error: str | None = None
        self._runs: dict[str, tuple[asyncio.Task[Result], str, str, Trigger, datetime]] = {}
        self._closing = False
        self._stopped = False
        self._reload_lock = asyncio.Lock()
        self._maintenance: asyncio.Task[None] | None = None
        self._reminders: asyncio.Task[None] | None = None
        self.agents = Agents(self)

    def publish(self, event: Event) -> None:
        """Every event goes to SSE clients and to the metrics."""
        self.hub.publish(event)
        self.metrics.observe_event(event)

    # --- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        project = await self.store.project.load_project()
        self.engine = Engine(
            project,
            self.store,
            events=self.publish,
            on_result=self.metrics.observe_result,
            callback_url=self.settings.callback_url(self.callback_port)
            if self.callback_port is not None
            else None,
        )
        self.signins = SignInFlows(self.engine)
        self.metrics.seed((await self.store.latest_results(_target_names(project))).values())
        stale = await self.engine.tokens.recover([t.name for t in project.tokens])
        if stale:
            log.info(
                "token(s) %s were mid-refresh when apimd stopped; refreshed on next use",
                ", ".join(stale),
            )
        self._maintenance = asyncio.create_task(self._maintain())
        await self.engine.notifier.restore(self.engine.notifier_owners())
        self._reminders = asyncio.create_task(self._remind())
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
        self._closing = True
        for periodic in (self._maintenance, self._reminders):
            if periodic is not None:
                periodic.cancel()
        await self.agents.stop()
        await self.scheduler.shutdown()
        pending = [task for task, *_ in self._runs.values()]
        if pending:
            log.info("waiting up to %.0f s for %d run(s) to finish", SHUTDOWN_GRACE_S, len(pending))
            _done, still = await asyncio.wait(pending, timeout=SHUTDOWN_GRACE_S)
            for task in still:
                task.cancel()
            if still:
                await asyncio.wait(still, timeout=5)
        if self.engine is not None:
            await self.signins.close()
            await self.engine.close()
        await self.hub.close()

    async def prune(self) -> None:
        """Drop raw results past retention (hourly rollups stay) and used or expired sign-ins."""
        cutoff = datetime.now(UTC) - timedelta(days=self.settings.retention_days)
        removed = await self.store.prune_results(cutoff)
        await self.store.signins.prune()
        if removed:
            log.info(
                "pruned %d result(s) older than %d days", removed, self.settings.retention_days
            )

    async def _maintain(self) -> None:
        if self.agents.clustered:
            return  # the leader prunes, for the whole cluster (`Agents`)
        while True:
            try:
                await self.prune()
            except Exception:
                log.exception("periodic prune failed")
            await asyncio.sleep(PRUNE_EVERY_S)

    async def _remind(self) -> None:
        """Notifiers' `repeat_every`: on a timer, since a token waiting for a sign-in makes no
        results to hang a reminder on (SPEC §11)."""
        assert self.engine is not None
        notifier = self.engine.notifier
        while True:
            try:
                if await self.agents.sends_reminders(notifier, self.engine.notifier_owners):
                    await notifier.send_due_reminders(self.engine.notifications_muted)
            except Exception:
                log.exception("sending reminders failed")
            await asyncio.sleep(REMIND_EVERY_S)

    def set_callback_port(self, port: int) -> None:
        """The callback server listens: sign-ins can send the browser to it."""
        self.callback_port = port
        self.callback_error = None
        if self.engine is not None:
            self.engine.callback_url = self.settings.callback_url(port)

    async def start_device_signin(self, token_name: str) -> SignInStarted:
        """Device sign-in (RFC 8628) for a token of an oauth2 `device_code` auth."""
        return await self.signins.start_device(token_name)

    async def complete_signin(self, params: dict[str, str]) -> SignInDone:
        """The browser came back (or a redirect URL was pasted): finish that sign-in."""
        return await self.signins.complete(params)

    @property
    def project(self) -> Project:
        assert self.engine is not None, "service not started"
        return self.engine.project

    async def reload(self, changed: list[str] | None = None, *, announce: bool = True) -> None:
        """Re-read the definitions after a change; the store is the source of truth. With
        `announce`, a change made here reloads the other agents too (SPEC §13)."""
        async with self._reload_lock:
            project = await self.store.project.load_project()
            assert self.engine is not None
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

    def status(self) -> StatusInfo:
        project = self.project
        counts = {
            "variables": len(project.variables),
            "auth": len(project.auth),
            "tokens": len(project.tokens),
            "calls": len(project.calls),
            "workflows": len(project.workflows),
            "schedules": len(project.schedules),
            "running": len(self._runs),
            "event_subscribers": self.hub.subscribers,
        }
        port = self.callback_port if self.callback_port is not None else self.settings.callback_port
        return StatusInfo(
            version=__version__,
            pid=os.getpid(),
            started_at=self.started_at,
            uptime_s=round(time.monotonic() - self._started_monotonic, 3),
            counts=counts,
            scheduler=self.scheduler.state,
            schedules=sum(1 for s in project.schedules if s.enabled),
            running=sorted({name for _t, _k, name, *_ in self._runs.values()}),
            callback_url=self.settings.callback_url(port),
            callback_bound=self.callback_port is not None,
            callback_error=self.callback_error,
            db_path=self.settings.store_description,
            socket_path=str(self.settings.socket_path),
            log_path=str(self.settings.log_path),
            location=self.agents.location,
            agent=self.agents.name,
            leader=self.agents.leader,
        )

    def running_targets(self) -> list[str]:
        """The calls and workflows running on this agent now."""
        return sorted({name for _t, _k, name, *_ in self._runs.values()})

    # --- resources ------------------------------------------------------------------------

    async def list_resources(self, kind: str, *, reveal: bool = False) -> list[Any]:
        items = await self.store.project.list(kind, reveal=reveal)
        return [await self._token_state(i) if kind == "tokens" else i for i in items]

    async def get_resource(self, kind: str, name: str, *, reveal: bool = False) -> Any:
        item = await self.store.project.get(kind, name, reveal=reveal)
        if item is None:
            raise NotFound(f"no {_singular(kind)} named {name!r}")
        return await self._token_state(item) if kind == "tokens" else item

    async def put_resource(self, kind: str, name: str, resource: BaseModel) -> Any:
        report = await self.store.project.put(kind, resource)
        await self.reload(_changed(report))
        return await self.get_resource(kind, name)

    async def delete_resource(self, kind: str, name: str) -> None:
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
        state = effective_state(runtime, auth, datetime.now(UTC))
        return token.model_copy(update={"state": state})

    # --- runs -----------------------------------------------------------------------------

    def target_kind(self, name: str) -> str:
        if self.project.call(name) is not None:
            return "call"
        if self.project.workflow(name) is not None:
            return "workflow"
        raise NotFound(f"no call or workflow named {name!r}")

    def start_run(
        self,
        name: str,
        *,
        variables: dict[str, str] | None = None,
        trigger: Trigger = "manual",
        interactive: bool = False,
        run_id: str | None = None,
    ) -> tuple[str, asyncio.Task[Result]]:
        """Start a run in the background; returns its id (also the result's id) and task."""
        if self._closing:
            raise ShuttingDown("the daemon is stopping and takes no new runs")
        kind = self.target_kind(name)
        assert self.engine is not None
        run_id = run_id or str(uuid.uuid4())
        started = datetime.now(UTC)
        task = asyncio.create_task(
            self._guarded_run(run_id, name, kind, variables, trigger, interactive, started)
        )
        self._runs[run_id] = (task, kind, name, trigger, started)
        task.add_done_callback(lambda _t: self._runs.pop(run_id, None))
        return run_id, task

    async def _guarded_run(
        self,
        run_id: str,
        name: str,
        kind: str,
        variables: dict[str, str] | None,
        trigger: Trigger,
        interactive: bool,
        started: datetime,
    ) -> Result:
        assert self.engine is not None
        try:
            result = await self.engine.run(
                name, variables=variables, trigger=trigger, interactive=interactive, run_id=run_id
            )
            return self.store.stamped(result)  # as recorded: where it ran, how late
        except asyncio.CancelledError:
            error = "the daemon stopped before this run finished"
            await asyncio.shield(
                self._record_unfinished(run_id, name, kind, trigger, started, error, cancelled=True)
            )
            raise
        except UnknownTarget as exc:
            raise NotFound(str(exc)) from None
        except Exception as exc:
            # The engine records every run itself; this is the last resort when even that failed
            # (the store refused the result twice). Logged once here, answered with a result.
            log.exception("run %s of %s %s failed and was not recorded", run_id, kind, name)
            error = f"internal error: {type(exc).__name__}"
            return await self._record_unfinished(run_id, name, kind, trigger, started, error)

    async def _record_unfinished(
        self,
        run_id: str,
        name: str,
        kind: str,
        trigger: Trigger,
        started: datetime,
        error: str,
        *,
        cancelled: bool = False,
    ) -> Result:
        """Record (when the store takes it) and announce a run that ended without a result."""
        code = ResultCode.CANCELLED if cancelled else ResultCode.SETUP_ERROR
        result = failed_result(
            run_id=run_id,
            kind="call" if kind == "call" else "workflow",
            name=name,
            trigger=trigger,
            started_at=started,
            error=error,
            code=code,
        )
        try:
            await self.store.add_result(result)
        except Exception:
            if cancelled:
                raise
            log.exception("the failure of run %s could not be stored either", run_id)
        self.announce_unfinished(result)
        return result

    def announce_unfinished(self, result: Result) -> None:
        """A result recorded without running (stopped, skipped, lost): metrics and `run.finished`."""
        self.metrics.observe_result(result)
        self.publish(RunFinished.of(result, result.id))

    async def _run_scheduled(self, name: str, schedule: str, due: datetime) -> None:
        if self._closing:
            return
        try:
            run_id, task = self.start_run(name, trigger="schedule")
        except NotFound:
            log.warning("schedule %s names %s, which no longer exists", schedule, name)
            return
        self._stamp_due(run_id, task, due)
        await asyncio.shield(task)

    async def _skipped(self, schedule: str, name: str, due: datetime) -> None:
        """A firing skipped because the previous run of `name` had not finished: said in a
        SKIPPED result (not dropped silently)."""
        kind = self.target_kind(name)
        error = (
            f"skipped: the previous run of {name} was still going when schedule {schedule} fired"
        )
        run_id = str(uuid.uuid4())
        await self._record_unfinished(run_id, name, kind, "schedule", due, error, cancelled=True)

    async def run_fenced(self, name: str, job_id: int, agent: str, due: datetime) -> None:
        """Run a firing's target for job `job_id`; its result is written only while the firing
        still belongs to that job (SPEC §13)."""
        if self._closing:
            return
        try:
            run_id, task = self.start_run(name, trigger="schedule")
        except NotFound:
            log.warning("a firing names %s, which no longer exists", name)
            return
        fences = self.store.fences
        fences[run_id] = (job_id, agent)
        task.add_done_callback(lambda _t: fences.pop(run_id, None))
        self._stamp_due(run_id, task, due)
        await asyncio.shield(task)

    def _stamp_due(self, run_id: str, task: asyncio.Task[Result], due: datetime) -> None:
        """The result of run `run_id` records how late after `due` it started."""
        self.store.due[run_id] = due
        task.add_done_callback(lambda _t: self.store.due.pop(run_id, None))

    def _fired(self, schedule: str, targets: list[str], scheduled_at: datetime) -> None:
        lateness = datetime.now(UTC) - scheduled_at
        self.publish(
            ScheduleFired(
                schedule=schedule,
                targets=tuple(targets),
                scheduled_at=scheduled_at,
                lateness_ms=round(lateness / timedelta(milliseconds=1), 3),
            )
        )

    # --- results and tokens ---------------------------------------------------------------

    async def result(self, result_id: str) -> Result:
        result = await self.store.get_result(result_id)
        if result is None:
            raise NotFound(f"no result with id {result_id!r}")
        return result

    async def stats(self, name: str, window: str) -> Stats:
        seconds = _window_seconds(window)
        now = datetime.now(UTC)
        return await self.store.stats(name, now - timedelta(seconds=seconds), now)

    async def summary(self, window: str) -> Summary:
        """Every call and workflow at a glance (one query for all, not one per target)."""
        seconds = _window_seconds(window)
        now = datetime.now(UTC)
        recent = await self.store.recent_results(now - timedelta(seconds=seconds))
        next_runs = await self.agents.next_runs()
        locations = await self.agents.target_locations()
        project = self.project
        token_states: dict[str, TokenState] = {}
        for definition in project.tokens:
            runtime = await self.store.load_token(definition.name)
            auth = project.auth_setting(definition.auth)
            token_states[definition.name] = effective_state(runtime, auth, now)
        targets: list[TargetSummary] = []
        for kind, items in (("call", project.calls), ("workflow", project.workflows)):
            for item in items:
                runs = recent.get(item.name)
                latest = runs.latest if runs else None
                if kind == "call":  # a call that runs only as a step has still run
                    parents = [recent.get(w) for w in project.parents(item.name)]
                    latest = latest_including_steps(
                        item.name, latest, [p.latest for p in parents if p]
                    )
                counts = dict(runs.counts) if runs else {}
                counted = sum(n for o, n in counts.items() if o != Outcome.SKIPPED)
                failed = counts.get(Outcome.FAIL, 0)
                token_name: str | None = getattr(item, "token", None)
                if isinstance(item, Workflow):
                    token_name = _worst_token(item.steps, project, token_states)
                targets.append(
                    TargetSummary(
                        name=item.name,
                        kind="call" if kind == "call" else "workflow",
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
                        token_state=token_states.get(token_name) if token_name else None,
                        cert_expires_at=latest.tls.not_after if latest and latest.tls else None,
                        description=item.description,
                        tags=item.tags,
                        locations=locations.get(item.name, []),
                    )
                )
        return Summary(generated_at=now, window_s=seconds, targets=targets)

    async def metrics_text(self) -> bytes:
        """`GET /metrics`: the Prometheus text document (SPEC §11)."""
        now = datetime.now(UTC)
        project = self.project
        self.metrics.forget(_target_names(project))
        readings = []
        for definition in project.tokens:
            runtime = await self.store.load_token(definition.name)
            state = effective_state(runtime, project.auth_setting(definition.auth), now)
            expires = runtime.expires_at if runtime is not None else None
            readings.append(TokenReading(definition.name, state.value, expires))
        # Formatting 10,000 targets' series takes a while: off the event loop, on a copy.
        return await asyncio.to_thread(self.metrics.render, self.metrics.snapshot(readings))

    async def refresh_token(self, name: str) -> Token:
        if self.project.token(name) is None:
            raise NotFound(f"no token named {name!r}")
        assert self.engine is not None
        await self.engine.refresh_token(name)
        token: Token = await self.get_resource("tokens", name)
        return token


_TOKEN_STATE_RANK = [
    TokenState.VALID,
    TokenState.REFRESHING,
    TokenState.EXPIRED,
    TokenState.ERROR,
    TokenState.NEEDS_SIGN_IN,
]


def _worst_token(steps: list[str], project: Project, states: dict[str, TokenState]) -> str | None:
    """The token of a workflow's steps in the worst state (a sign-in needed shows first)."""
    tokens = [c.token for c in map(project.call, steps) if c is not None and c.token]
    known = [t for t in tokens if t in states]
    if not known:
        return None
    return max(known, key=lambda t: _TOKEN_STATE_RANK.index(states[t]))


def _target_names(project: Project) -> set[str]:
    return {c.name for c in project.calls} | {w.name for w in project.workflows}


def _window_seconds(window: str) -> float:
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


def _singular(kind: str) -> str:
    return {"auth": "auth setting", "variables": "variable"}.get(kind, kind.rstrip("s"))


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
