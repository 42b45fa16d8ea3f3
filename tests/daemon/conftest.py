"""A real `apimd daemon` process on a short temporary APIMD_HOME, talked to only through its socket
and the `apimd` command line, as a user would; its store is SQLite, or PostgreSQL in a database of
its own for the modules marked `both_stores` (they run once on each)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from pytest_aiohttp import AiohttpClient

from apimd.client import Client
from apimd.demo.server import RunningServer
from tests import postgres
from tests.support.app import App, AppClient, serve_app
from tests.support.daemon import (
    DaemonProcess,
    daemon_env,
    run_cli,
    short_home,
    start_daemon,
    stop_daemon,
)
from tests.support.polling import eventually

# The daemon process harness is the one of tests/support; its names stay importable from here.
Daemon = DaemonProcess
__all__ = [
    "Daemon",
    "daemon_env",
    "eventually",
    "run_cli",
    "short_home",
    "start_daemon",
    "stop_daemon",
]


def unique(prefix: str) -> str:
    """A resource name no other test on the shared daemon uses."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Tests of modules marked `both_stores` run on a SQLite and on a PostgreSQL daemon."""
    if "daemon_store" in metafunc.fixturenames:
        both = metafunc.definition.get_closest_marker("both_stores") is not None
        kinds = ["sqlite", "postgres"] if both else ["sqlite"]
        metafunc.parametrize("daemon_store", kinds, indirect=True, scope="module")


@pytest.fixture(scope="module")
def daemon_store(request: pytest.FixtureRequest) -> str:
    """`sqlite` or `postgres`: the store of this module's daemons."""
    kind: str = getattr(request, "param", "sqlite")
    if kind == "postgres":
        postgres.require_postgres()
    return kind


def _running(store: str) -> Iterator[Daemon]:
    running = start_daemon(store=store)
    try:
        yield running
    finally:
        stop_daemon(running)


@pytest.fixture(scope="module")
def daemon(daemon_store: str) -> Iterator[Daemon]:
    """One daemon shared by the tests of a module (they use unique resource names)."""
    yield from _running(daemon_store)


def _unstarted(store: str) -> Iterator[Daemon]:
    """A daemon that is never started, for its home, its environment and its store (on
    PostgreSQL a database of its own)."""
    home = Daemon(database=postgres.create_database() if store == "postgres" else None)
    try:
        yield home
    finally:
        home.remove()


@pytest.fixture
def own_home(daemon_store: str) -> Iterator[Daemon]:
    """A home and store of one test's own."""
    yield from _unstarted(daemon_store)


@pytest.fixture
def own_daemon(own_home: Daemon) -> Iterator[Daemon]:
    """A daemon for one test alone."""
    own_home.start()
    yield own_home
    own_home.stop_cleanly()


@pytest.fixture(scope="module")
def app_home(daemon_store: str) -> Iterator[Daemon]:
    """The home and store of this module's in-process daemon apps (never a process: its
    store stays free for the app)."""
    yield from _unstarted(daemon_store)


@pytest.fixture
async def app(aiohttp_client: AiohttpClient, app_home: Daemon) -> App:
    """The daemon's REST API in-process (aiohttp-demos style), on this module's home."""
    return await serve_app(aiohttp_client, app_home)


@pytest.fixture
async def app_client(app: App) -> AsyncIterator[Client]:
    """apimd's client talking to the in-process REST API."""
    async with AppClient(app) as in_process:
        yield in_process


@pytest.fixture
async def own_app_client(own_home: Daemon, aiohttp_client: AiohttpClient) -> AsyncIterator[Client]:
    """apimd's client on an in-process REST API with a store of this test's own (`own_home`
    comes first: its database outlives the app)."""
    async with AppClient(await serve_app(aiohttp_client, own_home)) as in_process:
        yield in_process


@pytest.fixture
async def client(daemon: Daemon) -> AsyncIterator[Client]:
    async with daemon.client() as socket_client:
        yield socket_client


# --- a loopback API ------------------------------------------------------------------------------


@asynccontextmanager
async def serving(app: web.Application) -> AsyncIterator[str]:
    """`app` on 127.0.0.1 (a free port) for the block: its base URL."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


@dataclass
class Api:
    """A loopback API: every path answers `{"ok": true}` (`/slow` after 6 s), counted."""

    url: str
    hits: Counter[str] = field(default_factory=Counter)


@pytest.fixture
async def api() -> AsyncIterator[Api]:
    server = Api("")

    async def handle(request: web.Request) -> web.Response:
        server.hits[request.path] += 1
        if request.path == "/slow":
            await asyncio.sleep(6)
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_get("/{tail:.*}", handle)
    async with serving(app) as server.url:
        yield server


# --- a receiver for webhooks ----------------------------------------------------------------------


@dataclass
class Receiver:
    """A loopback HTTP server that records every request it gets."""

    url: str
    requests: list[dict[str, Any]]


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    received: list[dict[str, Any]] = []

    async def record(request: web.Request) -> web.Response:
        body = await request.read()
        text = body.decode(errors="replace")
        received.append({"path": request.path, "body": text, "at": time.monotonic()})
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", record)
    async with RunningServer(app) as server:
        yield Receiver(f"{server.url}/hook", received)
