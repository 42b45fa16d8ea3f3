"""The dashboard's model: every call and workflow with what is known of its recent runs, kept up to
date from the event stream. Pure (no Textual), so ordering, filtering and next-run are unit-tested."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from apimd.model.outcome import Outcome, ResultCode
from apimd.model.resources import Call, Schedule, Token, TokenState, Workflow
from apimd.model.result import Result
from apimd.model.stats import Stats
from apimd.tui.events import (
    DaemonEvent,
    RunFinished,
    RunStarted,
    ScheduleFired,
    TokenSaved,
    TokenStateChanged,
)
from apimd.tui.formatting import NOTHING, coarse_duration

HISTORY = 20
"""How many recent latencies a monitor keeps for its sparkline."""

TOKEN_STATE_SEVERITY = {
    TokenState.VALID: 0,
    TokenState.REFRESHING: 1,
    TokenState.EXPIRED: 2,
    TokenState.ERROR: 3,
    TokenState.NEEDS_SIGN_IN: 4,
}

Kind = Literal["call", "workflow"]


@dataclass
class Monitor:
    """One run target as the dashboard shows it."""

    name: str
    kind: Kind
    tags: tuple[str, ...] = ()
    token: str | None = None
    steps: tuple[str, ...] = ()
    outcome: Outcome | None = None
    result: ResultCode | None = None
    http_status: int | None = None
    last_run_at: datetime | None = None
    running: int = 0
    latencies: list[tuple[str, float]] = field(default_factory=list)
    """(result id, total ms) of recent non-SKIPPED runs, oldest first, at most `HISTORY`."""
    counted: int = 0
    """Non-SKIPPED results in the last 24 h: from the daemon's statistics, plus live runs since."""
    failed: int = 0
    """FAIL results among `counted`."""
    stats_at: datetime | None = None
    """When the statistics were fetched; None until they are."""
    history_loaded: bool = False

    def add_latency(self, result_id: str, total_ms: float) -> None:
        if any(rid == result_id for rid, _ in self.latencies):
            return
        self.latencies.append((result_id, total_ms))
        del self.latencies[:-HISTORY]

    @property
    def uptime(self) -> float | None:
        """Non-FAIL / non-SKIPPED results (SPEC §4); None when nothing counts yet."""
        return None if self.counted == 0 else 1 - self.failed / self.counted

    @property
    def latency_values(self) -> list[float]:
        return [ms for _, ms in self.latencies]


@dataclass(frozen=True)
class NextRun:
    """When a target runs next by its schedules, as far as the TUI can tell."""

    at: datetime | None = None
    every_s: float | None = None
    cron: bool = False
    disabled: bool = False

    def text(self, now: datetime) -> str:
        """`in 12s`, `due`, `~30s` (interval; last fire unknown), `cron`, `off`, or `—`."""
        if self.at is not None:
            left = (self.at - now).total_seconds()
            return "due" if left < 1 else f"in {coarse_duration(left)}"
        if self.every_s is not None:
            return f"~{coarse_duration(self.every_s)}"
        if self.cron:
            return "cron"
        if self.disabled:
            return "off"
        return NOTHING


def dashboard_rank(outcome: Outcome | None, token_state: TokenState | None = None) -> int:
    """FAIL first, then SKIPPED / needs sign-in, then WARNING, then the rest."""
    if outcome is Outcome.FAIL:
        return 0
    if outcome is Outcome.SKIPPED or token_state is TokenState.NEEDS_SIGN_IN:
        return 1
    if outcome is Outcome.WARNING:
        return 2
    return 3


class Board:
    """Every monitor, token and schedule the dashboard knows, and the rules that tie them."""

    def __init__(self) -> None:
        self.monitors: dict[str, Monitor] = {}
        self.tokens: dict[str, Token] = {}
        self.schedules: dict[str, Schedule] = {}
        self._calls: dict[str, Call] = {}
        self._last_fire: dict[tuple[str, str], datetime] = {}

    # --- loading ----------------------------------------------------------------------------

    def load(
        self,
        calls: Iterable[Call],
        workflows: Iterable[Workflow],
        tokens: Iterable[Token],
        schedules: Iterable[Schedule],
        recent: Iterable[Result] = (),
    ) -> None:
        """Replace everything with a fresh read; `recent` results (any order) fill last outcomes."""
        self.monitors.clear()
        self._calls.clear()
        self.tokens = {t.name: t for t in tokens}
        self.schedules = {s.name: s for s in schedules}
        for call in calls:
            self.put_call(call)
        for workflow in workflows:
            self.put_workflow(workflow)
        for result in sorted(recent, key=lambda r: r.started_at):
            self.record(result)

    def put_call(self, call: Call) -> Monitor:
        self._calls[call.name] = call
        monitor = self._monitor(call.name, "call")
        monitor.tags = tuple(call.tags)
        monitor.token = call.token
        return monitor

    def put_workflow(self, workflow: Workflow) -> Monitor:
        monitor = self._monitor(workflow.name, "workflow")
        monitor.tags = tuple(workflow.tags)
        monitor.steps = tuple(workflow.steps)
        return monitor

    def remove(self, name: str) -> bool:
        self._calls.pop(name, None)
        return self.monitors.pop(name, None) is not None

    def _monitor(self, name: str, kind: Kind) -> Monitor:
        monitor = self.monitors.get(name)
        if monitor is None or monitor.kind != kind:
            monitor = Monitor(name=name, kind=kind)
            self.monitors[name] = monitor
        return monitor

    def record(self, result: Result) -> None:
        """Fold one stored result into its monitor (ignores results older than what is known)."""
        monitor = self.monitors.get(result.name)
        if monitor is None or result.workflow_run_id is not None:
            return
        if monitor.last_run_at is None or result.started_at >= monitor.last_run_at:
            monitor.outcome = result.outcome
            monitor.result = result.result
            monitor.http_status = result.http_status
            monitor.last_run_at = result.started_at
        if result.outcome is not Outcome.SKIPPED:
            monitor.add_latency(result.id, result.timings_ms.total)
        if result.trigger == "schedule":
            self._fired_for(result.name, result.started_at)

    def set_history(self, name: str, results: Iterable[Result]) -> None:
        """The monitor's recent results (newest first, as the API lists them): its sparkline."""
        monitor = self.monitors.get(name)
        if monitor is None:
            return
        live = list(monitor.latencies)
        monitor.latencies = []
        for result in sorted(results, key=lambda r: r.started_at):
            self.record(result)
        for result_id, ms in live:  # runs that finished while the history was being fetched
            monitor.add_latency(result_id, ms)
        monitor.history_loaded = True

    def set_stats(self, name: str, stats: Stats | None, at: datetime) -> None:
        """The daemon's 24 h statistics (None: it had none); live runs are added on top."""
        monitor = self.monitors.get(name)
        if monitor is None:
            return
        monitor.stats_at = at
        if stats is None:
            return
        monitor.counted = stats.total - stats.counts.get(Outcome.SKIPPED, 0)
        monitor.failed = stats.counts.get(Outcome.FAIL, 0)

    def put_token(self, token: Token) -> None:
        self.tokens[token.name] = token

    def remove_token(self, name: str) -> None:
        self.tokens.pop(name, None)

    def put_schedule(self, schedule: Schedule) -> None:
        self.schedules[schedule.name] = schedule

    def remove_schedule(self, name: str) -> None:
        self.schedules.pop(name, None)

    # --- events -----------------------------------------------------------------------------

    def apply(self, event: DaemonEvent) -> set[str]:
        """Fold a live event in; returns the names of the monitors whose row changed."""
        if isinstance(event, RunStarted):
            monitor = self.monitors.get(event.name)
            if monitor is None:
                return set()
            monitor.running += 1
            if event.trigger == "schedule":
                self._fired_for(event.name, event.at)
            return {event.name}
        if isinstance(event, RunFinished):
            return self._finished(event)
        if isinstance(event, ScheduleFired):
            for target in event.targets:
                self._last_fire[(event.schedule, target)] = event.at
            return {t for t in event.targets if t in self.monitors}
        if isinstance(event, TokenStateChanged) and event.state is not None:
            token = self.tokens.get(event.token)
            if token is None:
                return set()
            self.tokens[event.token] = token.model_copy(
                update={"state": event.state, "last_error": event.error}
            )
            return self.names_using_token(event.token)
        if isinstance(event, TokenSaved):
            token = self.tokens.get(event.token)
            if token is None:
                return set()
            self.tokens[event.token] = token.model_copy(
                update={"expires_at": event.expires_at, "state": TokenState.VALID}
            )
            return self.names_using_token(event.token)
        return set()

    def _finished(self, event: RunFinished) -> set[str]:
        monitor = self.monitors.get(event.name)
        if monitor is None or event.outcome is None:
            return set()
        monitor.running = max(0, monitor.running - 1)
        started = event.at
        if event.total_ms is not None:
            started = event.at - timedelta(milliseconds=event.total_ms)
        if monitor.last_run_at is None or started >= monitor.last_run_at:
            monitor.outcome = event.outcome
            monitor.result = event.result
            monitor.http_status = event.http_status
            monitor.last_run_at = started
        if event.outcome is not Outcome.SKIPPED and event.total_ms is not None:
            monitor.add_latency(event.result_id, event.total_ms)
        if event.outcome is not Outcome.SKIPPED:
            monitor.counted += 1
            monitor.failed += event.outcome is Outcome.FAIL
        return {event.name}

    def _fired_for(self, target: str, at: datetime) -> None:
        for schedule in self.schedules.values():
            if target in schedule.targets and schedule.enabled:
                key = (schedule.name, target)
                if key not in self._last_fire or self._last_fire[key] < at:
                    self._last_fire[key] = at

    # --- derived ----------------------------------------------------------------------------

    def token_names(self, name: str) -> list[str]:
        """The tokens a monitor's requests use (a workflow: its steps')."""
        monitor = self.monitors.get(name)
        if monitor is None:
            return []
        if monitor.kind == "call":
            return [monitor.token] if monitor.token else []
        names: list[str] = []
        for step in monitor.steps:
            call = self._calls.get(step)
            if call is not None and call.token and call.token not in names:
                names.append(call.token)
        return names

    def token_state(self, name: str) -> TokenState | None:
        """The worst state among the monitor's tokens (None when it uses none)."""
        states = [
            token.state
            for token_name in self.token_names(name)
            if (token := self.tokens.get(token_name)) is not None and token.state is not None
        ]
        return max(states, key=TOKEN_STATE_SEVERITY.__getitem__, default=None)

    def names_using_token(self, token: str) -> set[str]:
        return {name for name in self.monitors if token in self.token_names(name)}

    def next_run(self, name: str, now: datetime) -> NextRun:
        """The soonest next run among the schedules that target `name`."""
        soonest: datetime | None = None
        every: float | None = None
        cron = disabled = False
        for schedule in self.schedules.values():
            if name not in schedule.targets:
                continue
            if not schedule.enabled:
                disabled = True
                continue
            if schedule.cron is not None:
                cron = True
                continue
            seconds = schedule.every_seconds
            if seconds is None:
                continue
            every = seconds if every is None else min(every, seconds)
            fired = self._last_fire.get((schedule.name, name))
            if fired is not None:
                due = fired + timedelta(seconds=seconds)
                if due < now:  # missed fires (daemon down, lagged events): next slot after now
                    skipped = (now - due).total_seconds() // seconds + 1
                    due += timedelta(seconds=seconds * skipped)
                soonest = due if soonest is None else min(soonest, due)
        return NextRun(at=soonest, every_s=every, cron=cron, disabled=disabled)

    def rank(self, name: str) -> int:
        monitor = self.monitors[name]
        return dashboard_rank(monitor.outcome, self.token_state(name))

    def sort_key(self, name: str) -> tuple[int, str]:
        """Dashboard order: `dashboard_rank`, then name."""
        return (self.rank(name), name.lower()) if name in self.monitors else (9, name.lower())

    def ordered(self, query: str = "") -> list[str]:
        """Names matching `query`, in dashboard order."""
        names = [n for n in self.monitors if self.matches(n, query)]
        return sorted(names, key=self.sort_key)

    def matches(self, name: str, query: str) -> bool:
        """Every word of `query` appears (case-insensitively) in the monitor's name, kind,
        outcome, token state or tags."""
        terms = query.lower().split()
        if not terms:
            return True
        monitor = self.monitors[name]
        state = self.token_state(name)
        haystack = " ".join(
            [
                name,
                monitor.kind,
                monitor.outcome.value if monitor.outcome else "never",
                monitor.result.value if monitor.result else "",
                state.value if state else "",
                *monitor.tags,
            ]
        ).lower()
        return all(term in haystack for term in terms)
