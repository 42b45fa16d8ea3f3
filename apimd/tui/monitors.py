"""The dashboard's model: every call and workflow as the daemon's summary (`GET /v1/summary`)
describes it, kept up to date from the event stream between summaries. Pure (no Textual), so
ordering, filtering and next-run are unit-tested."""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from apimd.model.api import Summary, TargetSummary, dashboard_key, dashboard_rank
from apimd.model.common import ANYWHERE
from apimd.model.durations import short_duration
from apimd.model.events import (
    Event,
    RunFinished,
    RunStarted,
    RunStep,
    ScheduleFired,
    TokenSaved,
    TokenStateChanged,
)
from apimd.model.outcome import Outcome, ResultCode
from apimd.model.resources import TokenState
from apimd.tui.formatting import NOTHING

HISTORY = 20
"""How many recent latencies a monitor keeps for its sparkline (what the summary sends)."""
SAME_FIRE_S = 0.5
"""Fires of one target closer than this are one fire (two schedules, or an echo)."""
FIRE_SLACK_S = 1.0
"""A fire this close before the expected next run is that run (scheduler jitter, rounding)."""

Kind = Literal["call", "workflow"]
"""The location of a schedule without `locations` (SPEC §13)."""


@dataclass
class Monitor:
    """One run target as the dashboard shows it."""

    name: str
    kind: Kind
    tags: tuple[str, ...] = ()
    description: str | None = None
    token: str | None = None
    token_state: TokenState | None = None
    outcome: Outcome | None = None
    result: ResultCode | None = None
    http_status: int | None = None
    last_run_at: datetime | None = None
    step_of: str | None = None
    """When the latest run was as a step: the workflow it ran in."""
    error: str | None = None
    reason: str | None = None
    """Why the latest result is not a PASS, in a few words (the summary's, then live runs')."""
    running: int = 0
    running_since: datetime | None = None
    """When the oldest run seen starting and still going began; None when none was seen."""
    latency_values: list[float] = field(default_factory=list)
    """Total ms of recent non-SKIPPED runs, oldest first, at most `HISTORY`."""
    latency_ids: list[str | None] = field(default_factory=list)
    """The result id of each of `latency_values` (None for the summary's: its points carry no
    id). Two lists, not pairs: 10,000 monitors × 20 pairs per summary made the GC crawl."""
    counted: int = 0
    """Non-SKIPPED results in the summary's window, plus live runs since."""
    failed: int = 0
    """FAIL results among `counted`."""
    cert_expires_at: datetime | None = None
    """When the server certificate seen by the latest https run expires."""
    next_run: datetime | None = None
    """When a schedule runs it next: the daemon's word, moved on by the fires seen since."""
    fired_at: datetime | None = None
    """The last schedule fire seen live."""
    period_s: float | None = None
    """The time between the last two fires seen live: how far a fire moves `next_run`."""
    locations: tuple[str, ...] = ()
    """Where its schedules run it (`*`: anywhere); a filter's `@location` keeps those."""
    ran_in: set[str] = field(default_factory=set)
    """Locations its results came from (the summary's latest, then live runs): a filter's
    `@location` keeps those too, so a workflow without a schedule shows where it ran."""

    def add_latency(self, result_id: str | None, total_ms: float) -> None:
        if result_id and result_id in self.latency_ids:
            return
        self.latency_ids.append(result_id)
        self.latency_values.append(total_ms)
        del self.latency_ids[:-HISTORY]
        del self.latency_values[:-HISTORY]

    @property
    def uptime(self) -> float | None:
        """Non-FAIL / non-SKIPPED results (SPEC §4); None when nothing counts yet."""
        return None if self.counted == 0 else 1 - self.failed / self.counted

    def signature(self) -> tuple[object, ...]:
        """Everything a row shows but the clock: equal signatures, equal rows."""
        return (
            self.kind,
            self.tags,
            self.token,
            self.token_state,
            self.outcome,
            self.result,
            self.last_run_at,
            self.step_of,
            self.reason,
            self.running,
            self.running_since,
            tuple(self.latency_values),
            self.counted,
            self.failed,
            self.next_run,
            self.cert_expires_at,
        )


@dataclass(frozen=True)
class NextRun:
    """When a target runs next by its schedules, as far as the TUI can tell."""

    at: datetime | None = None

    def text(self, now: datetime) -> str:
        """`in 12s`, `due` (the time has come), or `—` (no enabled schedule)."""
        if self.at is None:
            return NOTHING
        left = (self.at - now).total_seconds()
        return "due" if left < 1 else f"in {short_duration(left, units=1)}"


@dataclass(frozen=True)
class SummaryChanges:
    """What applying a summary did to the board, for the table."""

    added: list[str]
    removed: list[str]
    changed: list[str]


class Board:
    """Every monitor the dashboard knows, and the rules that fold events into them."""

    def __init__(self) -> None:
        self.monitors: dict[str, Monitor] = {}
        self.loaded = False
        """A summary has been applied at least once."""
        self.as_of: datetime | None = None
        """When the daemon produced the summary last applied: runs that finished before it are
        in its counts and latencies already."""
        self._started: set[str] = set()
        """Run ids seen starting and not yet finished."""

    # --- the summary ------------------------------------------------------------------------

    def load_summary(self, summary: Summary, *, reset_running: bool = False) -> SummaryChanges:
        """Make the board what `summary` says (in place: monitors keep what only events know,
        such as runs in progress, unless `reset_running` after events may have been missed)."""
        before = {name: m.signature() for name, m in self.monitors.items()}
        fresh: dict[str, Monitor] = {}
        for target in summary.targets:
            monitor = self.monitors.get(target.name)
            if monitor is None or monitor.kind != target.kind:
                monitor = Monitor(name=target.name, kind=target.kind)
            self._update(monitor, target)
            if reset_running:
                monitor.running = 0
                monitor.running_since = None
            fresh[target.name] = monitor
        self.monitors = fresh
        if reset_running:
            self._started.clear()
        self.as_of = summary.generated_at
        self.loaded = True
        return SummaryChanges(
            added=[n for n in fresh if n not in before],
            removed=[n for n in before if n not in fresh],
            changed=[n for n, m in fresh.items() if n in before and m.signature() != before[n]],
        )

    def load_head(self, summary: Summary, count: int) -> list[str]:
        """Into an empty board, only the first `count` targets of `summary` in dashboard order
        (a screenful or two, shown while the whole summary is folded in); their names, in
        that order. `load_summary` then adds the rest."""
        head = heapq.nsmallest(
            count,
            summary.targets,
            key=lambda t: dashboard_key(t.name, t.outcome, t.token_state),
        )
        for target in head:
            monitor = Monitor(name=target.name, kind=target.kind)
            self._update(monitor, target)
            self.monitors[target.name] = monitor
        return [target.name for target in head]

    @staticmethod
    def _update(monitor: Monitor, target: TargetSummary) -> None:
        monitor.tags = tuple(target.tags)
        monitor.description = target.description
        monitor.token = target.token
        monitor.token_state = target.token_state
        monitor.outcome = target.outcome
        monitor.result = target.result
        monitor.http_status = target.http_status
        monitor.last_run_at = target.last_run
        monitor.step_of = target.step_of
        monitor.error = target.error
        monitor.reason = target.reason
        monitor.latency_values = target.recent_ms[-HISTORY:]
        monitor.latency_ids = [None] * len(monitor.latency_values)
        monitor.counted = sum(n for o, n in target.counts.items() if o is not Outcome.SKIPPED)
        monitor.failed = target.counts.get(Outcome.FAIL, 0)
        monitor.next_run = target.next_run
        monitor.cert_expires_at = target.cert_expires_at
        monitor.locations = tuple(target.locations)
        if target.last_location:
            monitor.ran_in.add(target.last_location)

    # --- events -----------------------------------------------------------------------------

    def apply(self, event: Event) -> set[str]:
        """Fold a live event in; returns the names of the monitors whose row changed."""
        if isinstance(event, RunStarted):
            monitor = self.monitors.get(event.name)
            if monitor is None:
                return set()
            if not monitor.running:
                monitor.running_since = event.at
            monitor.running += 1
            self._started.add(event.run_id)
            return {event.name}
        if isinstance(event, RunFinished):
            return self._finished(event)
        if isinstance(event, RunStep):
            return self._step(event)
        if isinstance(event, ScheduleFired):
            fired = {t for t in event.targets if t in self.monitors}
            for name in fired:
                self._fired(self.monitors[name], event.at)
            return fired
        if isinstance(event, TokenStateChanged):
            return self._token_state(event.token, event.state)
        if isinstance(event, TokenSaved):
            return self._token_state(event.token, TokenState.VALID)
        return set()

    def _finished(self, event: RunFinished) -> set[str]:
        monitor = self.monitors.get(event.name)
        if monitor is None or event.outcome is None:
            return set()
        seen_start = event.run_id in self._started
        self._started.discard(event.run_id)
        skipped = event.outcome is Outcome.SKIPPED and event.trigger == "schedule"
        if skipped and monitor.running and not seen_start:
            # A firing skipped because the run going on was still going (SPEC §4): that run is
            # still shown running and the row keeps its last outcome; the skip is in the results
            # list (and not in uptime).
            return set()
        monitor.running = max(0, monitor.running - 1)
        if not monitor.running:
            monitor.running_since = None
        if event.location:
            monitor.ran_in.add(event.location)
        started = event.at
        if event.total_ms is not None:
            started = event.at - timedelta(milliseconds=event.total_ms)
        if monitor.last_run_at is None or started >= monitor.last_run_at:
            monitor.outcome = event.outcome
            monitor.result = event.result
            monitor.http_status = event.http_status
            monitor.reason = event.reason
            monitor.last_run_at = started
            monitor.step_of = None
        if self.as_of is not None and event.at <= self.as_of:
            return {event.name}  # already in the summary's counts and latencies
        if event.outcome is not Outcome.SKIPPED and event.total_ms is not None:
            monitor.add_latency(event.result_id, event.total_ms)
        if event.outcome is not Outcome.SKIPPED:
            monitor.counted += 1
            monitor.failed += event.outcome is Outcome.FAIL
        return {event.name}

    def _step(self, event: RunStep) -> set[str]:
        """A call ran as a step of a workflow: that is its latest run (counts and latencies
        stay its own runs')."""
        monitor = self.monitors.get(event.name)
        if monitor is None or event.outcome is None or monitor.kind != "call":
            return set()
        started = event.at - timedelta(milliseconds=event.total_ms or 0)
        if monitor.last_run_at is not None and started < monitor.last_run_at:
            return set()
        monitor.outcome = event.outcome
        monitor.result = event.result
        monitor.http_status = event.http_status
        monitor.reason = event.reason
        monitor.last_run_at = started
        monitor.step_of = event.workflow
        return {event.name}

    @staticmethod
    def _fired(monitor: Monitor, at: datetime) -> None:
        """A schedule started `monitor` at `at`: the next run is one period later. The period is
        learnt from consecutive fires; until it is known, the next run reads `due` and the
        dashboard asks the daemon again (`overdue`)."""
        if monitor.fired_at is not None:
            gap = (at - monitor.fired_at).total_seconds()
            if gap < SAME_FIRE_S:
                return
            monitor.period_s = gap
        monitor.fired_at = at
        if monitor.next_run is None or monitor.next_run > at + timedelta(seconds=FIRE_SLACK_S):
            return  # a fire of another schedule of the target: the next one stands
        if monitor.period_s is not None:
            monitor.next_run = at + timedelta(seconds=monitor.period_s)

    def _token_state(self, token: str, state: TokenState) -> set[str]:
        changed = self.names_using_token(token)
        for name in changed:
            self.monitors[name].token_state = state
        return changed

    # --- derived ----------------------------------------------------------------------------

    def token_state(self, name: str) -> TokenState | None:
        monitor = self.monitors.get(name)
        return monitor.token_state if monitor is not None else None

    def names_using_token(self, token: str) -> set[str]:
        return {name for name, m in self.monitors.items() if m.token == token}

    def next_run(self, name: str, now: datetime) -> NextRun:
        monitor = self.monitors.get(name)
        return NextRun(monitor.next_run if monitor is not None else None)

    def overdue(self, names: Iterable[str], now: datetime, *, grace_s: float = 2.0) -> bool:
        """Whether one of `names` should have run by now and no fire moved its next run on:
        only the daemon knows when it runs next."""
        limit = now - timedelta(seconds=grace_s)
        for name in names:
            monitor = self.monitors.get(name)
            if monitor is not None and monitor.next_run is not None and monitor.next_run < limit:
                return True
        return False

    def rank(self, name: str) -> int:
        monitor = self.monitors[name]
        return dashboard_rank(monitor.outcome, monitor.token_state)

    def sort_key(self, name: str) -> tuple[int, str]:
        """Dashboard order: `dashboard_rank`, then name."""
        return (self.rank(name), name.lower()) if name in self.monitors else (9, name.lower())

    def ordered(self, query: str = "") -> list[str]:
        """Names matching `query`, in dashboard order."""
        names = [n for n in self.monitors if self.matches(n, query)]
        return sorted(names, key=self.sort_key)

    def locations(self) -> list[str]:
        """Every location a schedule names or a result came from, sorted."""
        named = {
            loc
            for monitor in self.monitors.values()
            for loc in (*monitor.locations, *monitor.ran_in)
        }
        return sorted(named - {ANYWHERE}, key=str.lower)

    def matches(self, name: str, query: str) -> bool:
        """Every word of `query` appears (case-insensitively) in the monitor's name, kind,
        outcome, token state or tags; an `@location` word keeps the monitors scheduled there
        (or anywhere) and those with a result from there."""
        terms = query.lower().split()
        if not terms:
            return True
        monitor = self.monitors[name]
        wanted = [term[1:] for term in terms if term.startswith("@") and len(term) > 1]
        if wanted:
            places = {loc.lower() for loc in (*monitor.locations, *monitor.ran_in)}
            if not all(loc in places or ANYWHERE in places for loc in wanted):
                return False
            terms = [term for term in terms if not term.startswith("@")]
        state = monitor.token_state
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
