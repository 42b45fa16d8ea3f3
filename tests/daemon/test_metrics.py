"""`GET /metrics` (SPEC §11): Prometheus text on the socket and on APIMD_METRICS_ADDR, every name
of the spec, values that follow known runs, and never a secret or token value."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from apimd import __version__
from apimd.daemon.metrics import PHASES, REFRESH_STATES, Metrics
from apimd.demo.server import RunningServer
from apimd.engine.recording import failed_result
from apimd.model.events import (
    Event,
    ScheduleFired,
    TokenSaved,
    TokenStateChanged,
)
from apimd.model.resources import TokenState
from apimd.model.result import Timings
from tests.daemon.conftest import Daemon, short_home, start_daemon, stop_daemon
from tests.daemon.test_daemon_log import _activity_events
from tests.daemon.test_tokens import revealed_token, run, token_project

SECRET = "s3cret-metrics-value-71"
NAMES = {
    "apimd_probe_success",
    "apimd_probe_duration_seconds",
    "apimd_probe_http_status_code",
    "apimd_probe_ssl_earliest_cert_expiry",
    "apimd_runs",
    "apimd_run_duration_seconds",
    "apimd_token_state",
    "apimd_token_expiry_timestamp_seconds",
    "apimd_token_refreshes",
    "apimd_schedule_lateness_seconds",
    "apimd_build_info",
}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
def metrics_daemon() -> Iterator[tuple[Daemon, int]]:
    port = free_port()
    running = start_daemon(
        short_home(), APIMD_METRICS_ADDR=f"127.0.0.1:{port}", APIMD_LOCATION="lab-1"
    )
    try:
        yield running, port
    finally:
        stop_daemon(running)


async def scrape_socket(daemon: Daemon) -> tuple[str, str]:
    connector = aiohttp.UnixConnector(path=str(daemon.socket_path))
    async with (
        aiohttp.ClientSession(connector=connector) as session,
        session.get("http://apimd/metrics") as response,
    ):
        assert response.status == 200
        return response.headers["Content-Type"], await response.text()


def samples(text: str) -> dict[str, list[Sample]]:
    by_family: dict[str, list[Sample]] = {}
    for family in text_string_to_metric_families(text):
        by_family[family.name] = list(family.samples)
    return by_family


def value(found: dict[str, list[Sample]], sample_name: str, **labels: str) -> float:
    family = next(f for f in found if sample_name.startswith(f))
    matching = [
        s.value
        for s in found[family]
        if s.name == sample_name and all(s.labels.get(k) == v for k, v in labels.items())
    ]
    assert len(matching) == 1, (sample_name, labels, found[family])
    return matching[0]


async def test_metrics_follow_known_runs_on_the_socket_and_the_tcp_address(
    metrics_daemon: tuple[Daemon, int], token_server: RunningServer
) -> None:
    daemon, port = metrics_daemon
    project = token_project(token_server.url, "m")
    project["variables"] = {"API_KEY": {"value": SECRET, "secret": True}}
    project["calls"][1]["headers"] = {"X-Api-Key": "%%API_KEY%%"}
    project["calls"].append(
        {
            "name": "m-broken",
            "url": f"{token_server.url}/api/broken",
            "headers": project["calls"][1]["headers"],
        }
    )
    project["schedules"] = [{"name": "m-hourly", "every": "1h", "targets": ["m-broken"]}]
    async with daemon.client() as client:
        await client.apply(project)
        for _ in range(2):
            assert (await run(client, "m-orders")).outcome.value == "PASS"
        assert (await run(client, "m-broken")).outcome.value == "FAIL"
        token = await revealed_token(client, "m-token")
    access_token = (token.variables or {})["ACCESS_TOKEN"]
    assert token.expires_at is not None

    content_type, text = await scrape_socket(daemon)
    assert content_type.startswith("text/plain; version=0.0.4")
    found = samples(text)
    assert set(found) >= NAMES, NAMES - set(found)
    assert value(found, "apimd_probe_success", target="m-orders", kind="call") == 1
    # The daemon's location (results and `apimd status` say so too), not "local" (the retest).
    assert value(found, "apimd_probe_success", target="m-broken", location="lab-1") == 0
    assert value(found, "apimd_probe_http_status_code", target="m-broken") == 500
    assert value(found, "apimd_runs_total", target="m-orders", outcome="PASS") == 2
    assert value(found, "apimd_runs_total", target="m-broken", outcome="FAIL") == 1
    # the refresh workflow is a target too, run once to get the first token
    assert value(found, "apimd_runs_total", target="m-refresh", outcome="PASS") == 1
    assert value(found, "apimd_run_duration_seconds_count") == 4
    assert 0 < value(found, "apimd_probe_duration_seconds", target="m-orders", phase="total") < 5
    assert value(found, "apimd_token_state", token="m-token", state="valid") == 1
    assert value(found, "apimd_token_expiry_timestamp_seconds", token="m-token") == pytest.approx(
        token.expires_at.timestamp()
    )
    assert value(found, "apimd_token_refreshes_total", token="m-token", result="ok") == 1
    assert value(found, "apimd_build_info", version=__version__) == 1
    buckets = [s for s in found["apimd_run_duration_seconds"] if s.name.endswith("_bucket")]
    assert 10 <= len(buckets) <= 14
    assert all("target" not in s.labels for s in found["apimd_run_duration_seconds"])
    assert SECRET not in text and access_token not in text

    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{port}/metrics") as response,
    ):
        assert response.status == 200
        tcp = samples(await response.text())
    assert value(tcp, "apimd_runs_total", target="m-broken", outcome="FAIL") == 1


async def test_a_bad_metrics_address_is_refused_with_its_name() -> None:
    from tests.daemon.conftest import daemon_env, run_cli

    home = short_home()
    code, _out, err = await run_cli(
        "daemon", env=daemon_env(home, APIMD_METRICS_ADDR="localhost-no-port")
    )
    assert code != 0
    assert "APIMD_METRICS_ADDR" in err and "HOST:PORT" in err


def _reference_observe(metrics: Metrics, event: Event) -> None:
    """`Metrics.observe_event` as it was: a chain of `isinstance` checks per event."""
    if isinstance(event, ScheduleFired):
        metrics._lateness.observe(max(event.lateness_ms, 0.0) / 1000)
    elif isinstance(event, TokenStateChanged):
        token, state = event.token, event.state.value
        if state == "refreshing":
            metrics._refreshing.add(token)
        elif token in metrics._refreshing:
            metrics._refreshing.discard(token)
            metrics._refreshes[(token, REFRESH_STATES.get(state, state))] += 1
    elif isinstance(event, TokenSaved):
        token = event.token
        if token in metrics._refreshing:
            metrics._refreshing.discard(token)
            metrics._refreshes[(token, "ok")] += 1


class _LateFired(ScheduleFired):
    """A subclass: counted as its base, as `isinstance` did."""


def _metric_events() -> list[Event]:
    moment = datetime(2026, 12, 7, tzinfo=UTC)
    return [
        *_activity_events(),
        ScheduleFired(schedule="s", targets=("a",), scheduled_at=moment, lateness_ms=-3.0),
        _LateFired(schedule="s", targets=("a",), scheduled_at=moment, lateness_ms=20_000.0),
        TokenStateChanged(token="u", state=TokenState.REFRESHING),
        TokenStateChanged(token="u", state=TokenState.NEEDS_SIGN_IN),
        TokenSaved(token="u"),
    ]


@settings(max_examples=200, deadline=None)
@given(order=st.lists(st.integers(0, 19), max_size=40))
def test_metrics_count_events_as_their_isinstance_chain_did(order: list[int]) -> None:
    """The observer looked up by the event's class (found once per class) leaves the scrape
    exactly as the `isinstance` chain it replaced, for every kind of event in any order."""
    events = _metric_events()
    fast, reference = Metrics(), Metrics()
    for index in order:
        fast.observe_event(events[index])
        _reference_observe(reference, events[index])

    def scrape(metrics: Metrics) -> list[str]:
        text = metrics.render(metrics.snapshot([])).decode()
        return [line for line in text.splitlines() if "_created" not in line]

    assert scrape(fast) == scrape(reference)
    assert fast._refreshing == reference._refreshing


_PHASE_VALUES = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False, width=64), st.integers(-(10**6), 10**6)
)


@settings(max_examples=200, deadline=None)
@given(values=st.lists(_PHASE_VALUES, min_size=len(PHASES), max_size=len(PHASES)))
def test_a_probe_keeps_the_timings_as_floats_in_phase_order(values: list[float]) -> None:
    """The probe's timings, read in one call, are what `float(getattr(timings, phase))` per phase
    gave, in PHASES' order, integers (a model built without validation) made floats too; and the
    scrape shows them."""
    phases: dict[str, Any] = dict(zip(PHASES, values, strict=True))
    timings = Timings.model_construct(**phases)
    result = failed_result(
        run_id="r",
        kind="call",
        name="probe",
        trigger="schedule",
        started_at=datetime(2026, 12, 7, tzinfo=UTC),
        error="x",
    ).model_copy(update={"timings_ms": timings})
    metrics = Metrics()
    metrics.observe_result(result)
    kept = metrics._probes["probe"][2]
    expected = tuple(float(getattr(timings, phase)) for phase in PHASES)
    assert kept == expected and all(type(value) is float for value in kept)
    scraped = metrics.render(metrics.snapshot([])).decode()
    assert 'apimd_probe_duration_seconds{phase="dns",target="probe"} ' in scraped
