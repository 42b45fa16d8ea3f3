"""Prometheus metrics of SPEC §11 (`GET /metrics`), kept in memory from results and events so a
scrape at 10,000 targets only formats numbers: no query, no secret, no token value."""

from __future__ import annotations

import operator
import threading
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from apimd import __version__
from apimd.daemon.event_handlers import ByEventClass
from apimd.model.events import Event, ScheduleFired, TokenSaved, TokenStateChanged
from apimd.model.outcome import Outcome
from apimd.model.result import Result

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
PHASES = ("dns", "connect", "send", "wait", "receive", "total", "auth_wait")
# About 12 buckets, no target label: 10,000 targets must not make a million series (SPEC §11).
RUN_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
LATENESS_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 15.0, 60.0)
REFRESH_STATES = {"valid": "ok", "error": "error", "needs_sign_in": "needs_sign_in"}
_PHASES_OF = operator.attrgetter(*PHASES)
"""A result's timings in PHASES' order, read in one call (a generator of `getattr`s was twice the
cost of the probe kept per run)."""


@dataclass(frozen=True)
class TokenReading:
    """A token's state for a scrape: its name, effective state and expiry (never its value)."""

    name: str
    state: str
    expires_at: datetime | None


_Probe = tuple[str, bool, tuple[float, ...], int | None, float | None]
"""A target's last result for a scrape: kind, success, its timings in PHASES' order, HTTP status,
certificate expiry. A plain tuple of numbers and strings, which the collector stops tracking: one
lives per target for a whole interval, and as objects they filled the older generations (issue 18)."""


class Metrics:
    """Observes results and engine events; `render(tokens)` is the Prometheus text document."""

    def __init__(self, location: str = "local") -> None:
        self.location = location
        self._probes: dict[str, _Probe] = {}
        self._runs: Counter[tuple[str, str]] = Counter()
        self._refreshes: Counter[tuple[str, str]] = Counter()
        self._refreshing: set[str] = set()
        self._scraped: _Snapshot | None = None
        self._render_lock = threading.Lock()
        self._registry = CollectorRegistry(auto_describe=False)
        self._run_duration = Histogram(
            "apimd_run_duration_seconds",
            "Duration of every run, all targets together",
            buckets=RUN_BUCKETS,
            registry=self._registry,
        )
        self._lateness = Histogram(
            "apimd_schedule_lateness_seconds",
            "How late schedules fired",
            buckets=LATENESS_BUCKETS,
            registry=self._registry,
        )
        self._registry.register(_Families(self))
        self._observe = ByEventClass(
            (
                (ScheduleFired, self._fired),
                (TokenStateChanged, self._token_state),
                (TokenSaved, self._token_saved),
            )
        )

    def observe_result(self, result: Result) -> None:
        """Count a recorded top-level result and keep it as its target's last probe."""
        self._runs[(result.name, result.outcome.value)] += 1
        self._run_duration.observe(max(result.duration_ms, 0.0) / 1000)
        self._keep_probe(result)

    def seed(self, results: Iterable[Result]) -> None:
        """The last stored result of each target, at start, so a restart keeps the gauges."""
        for result in results:
            self._keep_probe(result)

    def _keep_probe(self, result: Result) -> None:
        if result.outcome == Outcome.SKIPPED:
            return  # not a probe of the target: its last real result stays
        timings = result.timings_ms
        self._probes[result.name] = (
            result.kind,
            result.outcome != Outcome.FAIL,
            tuple(map(float, _PHASES_OF(timings))),
            result.http_status,
            result.tls.not_after.timestamp() if result.tls is not None else None,
        )

    def forget(self, names: set[str]) -> None:
        """Drop the probes of targets that no longer exist."""
        for name in set(self._probes) - names:
            del self._probes[name]

    def observe_event(self, event: Event) -> None:
        """Schedule lateness and token refresh outcomes, from the engine's and scheduler's events."""
        self._observe(event)

    def _fired(self, event: ScheduleFired) -> None:
        self._lateness.observe(max(event.lateness_ms, 0.0) / 1000)

    def _token_state(self, event: TokenStateChanged) -> None:
        token, state = event.token, event.state.value
        if state == "refreshing":
            self._refreshing.add(token)
        elif token in self._refreshing:
            self._refreshing.discard(token)
            self._refreshes[(token, REFRESH_STATES.get(state, state))] += 1

    def _token_saved(self, event: TokenSaved) -> None:
        token = event.token
        if token in self._refreshing:
            self._refreshing.discard(token)
            self._refreshes[(token, "ok")] += 1

    def snapshot(self, tokens: list[TokenReading]) -> _Snapshot:
        """A copy of what a scrape shows (cheap: taken on the event loop between runs)."""
        return _Snapshot(dict(self._probes), dict(self._runs), dict(self._refreshes), tokens)

    def render(self, snapshot: _Snapshot) -> bytes:
        """The text document of `snapshot`; safe to call from a worker thread."""
        with self._render_lock:
            self._scraped = snapshot
            return generate_latest(self._registry)


@dataclass(frozen=True)
class _Snapshot:
    probes: dict[str, _Probe]
    runs: dict[tuple[str, str], int]
    refreshes: dict[tuple[str, str], int]
    tokens: list[TokenReading]


class _Families(Collector):
    """The per-target and per-token families, built at scrape time from `Metrics`' dictionaries."""

    def __init__(self, metrics: Metrics) -> None:
        self._m = metrics

    def collect(self) -> Iterator[Metric]:
        m = self._m._scraped
        if m is None:
            return
        success = GaugeMetricFamily(
            "apimd_probe_success",
            "1 when the target's last result was not FAIL",
            labels=["target", "kind", "location"],
        )
        duration = GaugeMetricFamily(
            "apimd_probe_duration_seconds",
            "Timings of the target's last result, per phase",
            labels=["target", "phase"],
        )
        status = GaugeMetricFamily(
            "apimd_probe_http_status_code",
            "HTTP status of the target's last result",
            labels=["target"],
        )
        expiry = GaugeMetricFamily(
            "apimd_probe_ssl_earliest_cert_expiry",
            "Unix time the server certificate of the target's last result expires",
            labels=["target"],
        )
        location = self._m.location
        for name, (kind, ok, timings, http_status, cert_expiry) in m.probes.items():
            success.add_metric([name, kind, location], 1.0 if ok else 0.0)
            for phase, ms in zip(PHASES, timings, strict=True):
                duration.add_metric([name, phase], ms / 1000)
            if http_status is not None:
                status.add_metric([name], float(http_status))
            if cert_expiry is not None:
                expiry.add_metric([name], cert_expiry)
        runs = CounterMetricFamily(
            "apimd_runs", "Runs recorded, per target and outcome", labels=["target", "outcome"]
        )
        for (name, outcome), count in m.runs.items():
            runs.add_metric([name, outcome], float(count))
        state = GaugeMetricFamily(
            "apimd_token_state", "1 for the token's current state", labels=["token", "state"]
        )
        token_expiry = GaugeMetricFamily(
            "apimd_token_expiry_timestamp_seconds",
            "Unix time the token expires",
            labels=["token"],
        )
        for token in m.tokens:
            state.add_metric([token.name, token.state], 1.0)
            if token.expires_at is not None:
                token_expiry.add_metric([token.name], token.expires_at.timestamp())
        refreshes = CounterMetricFamily(
            "apimd_token_refreshes",
            "Token refreshes, per token and result",
            labels=["token", "result"],
        )
        for (token_name, result), count in m.refreshes.items():
            refreshes.add_metric([token_name, result], float(count))
        build = GaugeMetricFamily("apimd_build_info", "apimd version", labels=["version"])
        build.add_metric([__version__], 1.0)
        yield from (success, duration, status, expiry, runs, state, token_expiry, refreshes, build)
