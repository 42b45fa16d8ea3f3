"""Fixtures for the TUI tests: a real daemon holding a small project that monitors the demo API,
and helpers to drive the app with Pilot until what a person would see appears."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any, TypeVar

import pytest
from textual.pilot import Pilot
from textual.screen import Screen
from textual.widgets import DataTable

from apimd.tui.app import ApimdApp, build_app
from apimd.tui.keys import TuiSettings
from apimd.tui.screens.dashboard import DashboardScreen
from tests.support.polling import until
from tests.support.projects import get_token_call, manual_auth
from tests.tui.daemon import Daemon, DemoServer, short_home

S = TypeVar("S", bound=Screen[Any])


def project(demo_url: str) -> dict[str, Any]:
    """Calls that pass, fail (500) and cannot connect; a token kept fresh by a client-credentials
    workflow, a call that uses it, a workflow, one whose second step takes a second, and a token
    signed in through the browser."""
    return {
        "version": 1,
        "variables": {"DEMO": demo_url},
        "auth": [
            manual_auth("demo-oauth", "refresh-demo"),
            {
                "name": "demo-sso",
                "type": "oauth2",
                "grant": "authorization_code",
                "authorize_url": "%%DEMO%%/oauth/authorize",
                "token_url": "%%DEMO%%/oauth/token",
                "client_id": "demo-client",
                "client_secret": "demo-secret",
            },
        ],
        "tokens": [
            {
                "name": "demo-token",
                "auth": "demo-oauth",
                "headers": {"Authorization": "Bearer %%ACCESS_TOKEN%%"},
            },
            {
                "name": "sso-token",
                "auth": "demo-sso",
                "headers": {"Authorization": "Bearer %%ACCESS_TOKEN%%"},
            },
        ],
        "calls": [
            get_token_call("%%DEMO%%"),
            {
                "name": "service-status",
                "url": "%%DEMO%%/api/status",
                "conditions": [
                    {"source": "status", "op": "eq", "value": 200},
                    {"source": "json", "path": "healthy", "op": "eq", "value": True},
                ],
            },
            {
                "name": "checkout-health",
                "url": "%%DEMO%%/api/broken",
                "conditions": [{"source": "status", "op": "eq", "value": 200}],
            },
            {"name": "unreachable", "url": "http://127.0.0.1:9/", "timeout": 2},
            {"name": "list-orders", "url": "%%DEMO%%/api/orders", "token": "demo-token"},
            {"name": "quiet-call", "url": "%%DEMO%%/api/status"},
            {"name": "slow-call", "url": "%%DEMO%%/api/slow?ms=700"},
        ],
        "workflows": [
            {"name": "refresh-demo", "steps": ["get-token"]},
            {"name": "order-flow", "steps": ["service-status", "list-orders"]},
            {"name": "slow-flow", "steps": ["quiet-call", "slow-call"]},
        ],
        "schedules": [
            {"name": "hourly", "every": "1h", "targets": ["service-status"], "enabled": True}
        ],
    }


@pytest.fixture(scope="module")
def demo() -> Iterator[DemoServer]:
    server = DemoServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def daemon(demo: DemoServer) -> Iterator[Daemon]:
    """One daemon per test module, with the project applied and `checkout-health` failed once."""
    with daemon_with(project(demo.url)) as running:
        running.run("calls", "checkout-health")
        running.run("calls", "service-status")
        yield running


@contextmanager
def daemon_with(project_doc: dict[str, Any]) -> Iterator[Daemon]:
    """A daemon in a home of its own, running with `project_doc` applied; stopped and removed
    at the end."""
    running = Daemon(short_home()).start()
    try:
        running.apply(project_doc)
        yield running
    finally:
        running.stop_cleanly()
        running.remove()


@pytest.fixture
def fresh_daemon() -> Iterator[Daemon]:
    """A daemon home of one test's own; the test starts (and restarts) the process."""
    home = Daemon(short_home())
    try:
        yield home
    finally:
        home.kill()
        home.remove()


def make_app(daemon: Daemon, settings: TuiSettings | None = None) -> ApimdApp:
    """The production app (real socket client) with no settings file unless given."""
    return build_app(daemon.socket_path, settings=settings or TuiSettings())


async def wait_for(
    pilot: Pilot[None], check: Callable[[], Any], *, timeout: float = 10.0, what: str = ""
) -> Any:
    """Let the app run until `check()` is truthy; fail with `what` otherwise."""
    return await until(check, timeout=timeout, interval=0.05, what=what, pause=pilot.pause)


async def screen_of(
    pilot: Pilot[None],
    kind: type[S],
    *,
    what: str = "",
    ready: Callable[[Any], Any] | None = None,
) -> S:
    """The app's screen once it is a `kind` and `ready(screen)` is truthy."""
    screen = await wait_for(
        pilot,
        lambda: (
            isinstance(pilot.app.screen, kind)
            and (ready is None or ready(pilot.app.screen))
            and pilot.app.screen
        ),
        what=what or f"a {kind.__name__}",
    )
    assert isinstance(screen, kind)
    return screen


async def loaded_dashboard(
    app: ApimdApp, pilot: Pilot[None], *, what: str = "the monitors"
) -> DashboardScreen:
    """The dashboard, once it lists the test project's monitors."""
    dashboard = app.screen
    assert isinstance(dashboard, DashboardScreen)
    await wait_for(pilot, lambda: dashboard.table.row_count >= 8, what=what)
    return dashboard


async def press_on(
    pilot: Pilot[None],
    table: DataTable[Any],
    row: str,
    key: str,
    kind: type[S],
    *,
    ready: Callable[[Any], Any] | None = None,
) -> S:
    """Put `table`'s cursor on `row`, press `key`, and return the `kind` screen that opens
    once `ready(screen)` is truthy."""
    table.move_cursor(row=table.get_row_index(row))
    await pilot.press(key)
    return await screen_of(pilot, kind, ready=ready)


@asynccontextmanager
async def on_dashboard(
    daemon: Daemon, size: tuple[int, int] = (80, 24)
) -> AsyncIterator[tuple[ApimdApp, Pilot[None], DashboardScreen]]:
    """The production app on `daemon`, running at `size`, once its dashboard lists the
    monitors: (app, pilot, dashboard)."""
    app = make_app(daemon)
    async with app.run_test(size=size) as pilot:
        yield app, pilot, await loaded_dashboard(app, pilot)


def notices(app: ApimdApp) -> list[str]:
    """The messages of the notifications the app has shown and not yet expired."""
    return [str(n.message) for n in app._notifications]  # Textual has no public accessor


async def in_thread(function: Callable[[], Any]) -> Any:
    """Run blocking test helpers (a second client, process control) off the app's loop."""
    return await asyncio.to_thread(function)
