"""The runs in flight on this agent: started in the background, recorded when they end without a
result, drained on shutdown (SPEC §6 runs, §9 shutdown, §13 fenced firings)."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from apimd.daemon.events import EventHub
from apimd.daemon.firing_results import SKIPPED_PREFIX
from apimd.daemon.metrics import Metrics
from apimd.engine.context import RunOrder, UnknownTarget
from apimd.engine.recording import failed_result
from apimd.engine.runner import Engine
from apimd.model.events import RunFinished
from apimd.model.outcome import ResultCode
from apimd.model.result import Result, Trigger
from apimd.store import SqliteStore

log = logging.getLogger(__name__)

SHUTDOWN_GRACE_S = 10.0


class NotFound(LookupError):
    """No resource, result or target of that name."""


class ShuttingDown(RuntimeError):
    """The daemon is stopping and takes no new runs."""


@dataclass(eq=False)
class Runs:
    """Every run this agent has going, by run id; each is recorded even when it fails or is
    cancelled, so a result exists for every id handed out."""

    engine: Engine
    store: SqliteStore
    hub: EventHub
    metrics: Metrics
    clock: Callable[[], datetime]
    closing: bool = field(default=False, init=False)
    _runs: dict[str, tuple[asyncio.Task[Result], str, str, Trigger, datetime]] = field(
        default_factory=dict, init=False
    )

    def __len__(self) -> int:
        return len(self._runs)

    def targets(self) -> list[str]:
        """The calls and workflows running now."""
        return sorted({name for _t, _k, name, *_ in self._runs.values()})

    def target_kind(self, name: str) -> str:
        project = self.engine.project
        if project.call(name) is not None:
            return "call"
        if project.workflow(name) is not None:
            return "workflow"
        raise NotFound(f"no call or workflow named {name!r}")

    def start(
        self, name: str, order: RunOrder | None = None, *, due: tuple[str, datetime] | None = None
    ) -> tuple[str, asyncio.Task[Result]]:
        """Start a run of `name` in the background as `order` says (default: by hand, a new
        id); returns its id (also the result's id) and task. With `due` (a firing's schedule and
        due instant), its result records them and how late after it it started."""
        if self.closing:
            raise ShuttingDown("the daemon is stopping and takes no new runs")
        kind = self.target_kind(name)
        order = order or RunOrder()
        run_id = order.run_id
        started = self.clock()
        task = asyncio.create_task(self._guarded_run(name, kind, order, started))
        runs = self._runs
        runs[run_id] = (task, kind, name, order.trigger, started)
        if due is None:
            task.add_done_callback(lambda _t: runs.pop(run_id, None))
            return run_id, task
        # One callback forgets both when the run ends: a scheduled run's second done callback was
        # a loop handle of its own, each run.
        dues = self.store.due
        dues[run_id] = due

        def ended(_task: asyncio.Task[Result]) -> None:
            runs.pop(run_id, None)
            dues.pop(run_id, None)

        task.add_done_callback(ended)
        return run_id, task

    async def drain(self) -> None:
        """Shutdown: take no new runs, give those in flight 10 s, cancel (and record) the rest."""
        self.closing = True
        pending = [task for task, *_ in self._runs.values()]
        if pending:
            log.info("waiting up to %.0f s for %d run(s) to finish", SHUTDOWN_GRACE_S, len(pending))
            _done, still = await asyncio.wait(pending, timeout=SHUTDOWN_GRACE_S)
            for task in still:
                task.cancel()
            if still:
                await asyncio.wait(still, timeout=5)

    async def _guarded_run(
        self, name: str, kind: str, order: RunOrder, started: datetime
    ) -> Result:
        run_id, trigger = order.run_id, order.trigger
        try:
            result = await self.engine.run(name, order)
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
        firing: tuple[str, datetime] | None = None,
    ) -> Result:
        """Record (when the store takes it) and announce a run that ended without a result
        (`firing`: the schedule and due instant of a firing that did not run)."""
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
        if firing is not None:
            result = result.model_copy(update={"schedule": firing[0], "scheduled_at": firing[1]})
        try:
            result = await self.store.add_result(result) or result
        except Exception:
            if cancelled:
                raise
            log.exception("the failure of run %s could not be stored either", run_id)
        self.announce_unfinished(result)
        return result

    def announce_unfinished(self, result: Result) -> None:
        """A result recorded without running (stopped, skipped, lost): metrics and `run.finished`."""
        self.metrics.observe_result(result)
        self.hub.publish(RunFinished.of(result, result.id))

    def run_scheduled(self, name: str, schedule: str, due: datetime) -> asyncio.Task[Result] | None:
        """Start a scheduled run of `name` (the scheduler's `RunTarget`): its task, or None when
        the daemon is stopping or `name` no longer exists. Synchronous, so a firing costs one
        task, not three."""
        if self.closing:
            return None
        try:
            _run_id, task = self.start(name, RunOrder(trigger="schedule"), due=(schedule, due))
        except NotFound:
            log.warning("schedule %s names %s, which no longer exists", schedule, name)
            return None
        return task

    async def skipped(self, schedule: str, name: str, due: datetime) -> None:
        """A firing skipped because the previous run of `name` had not finished: said in a
        SKIPPED result (not dropped silently)."""
        kind = self.target_kind(name)
        error = (
            f"{SKIPPED_PREFIX}the previous run of {name} was still going when schedule"
            f" {schedule} fired"
        )
        run_id = str(uuid.uuid4())
        await self._record_unfinished(
            run_id, name, kind, "schedule", due, error, cancelled=True, firing=(schedule, due)
        )

    async def run_fenced(
        self, name: str, job_id: int, agent: str, schedule: str, due: datetime
    ) -> None:
        """Run a firing's target for job `job_id`; its result is written only while the firing
        still belongs to that job (SPEC §13)."""
        if self.closing:
            return
        try:
            run_id, task = self.start(name, RunOrder(trigger="schedule"), due=(schedule, due))
        except NotFound:
            log.warning("a firing names %s, which no longer exists", name)
            return
        fences = self.store.fences
        fences[run_id] = (job_id, agent)
        task.add_done_callback(lambda _t: fences.pop(run_id, None))
        await asyncio.shield(task)
