"""A real `apimd daemon` process on a short temporary APIMD_HOME, talked to only through its socket
and the `apimd` command line, as a user would; its store is SQLite, or PostgreSQL in a database of
its own for the modules marked `both_stores` (they run once on each)."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from apimd.client import Client, DaemonUnavailable
from tests import postgres

START_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 15.0


def short_home() -> Path:
    """A state folder whose socket path stays well under the 100-byte limit of Unix sockets."""
    return Path(tempfile.mkdtemp(prefix="apimd-", dir="/tmp"))


def daemon_env(home: Path, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k
        not in ("APIMD_SOCKET", "APIMD_SECRET_KEY", "APIMD_RETENTION_DAYS", "APIMD_DATABASE_URL")
    }
    env.update(APIMD_HOME=str(home), APIMD_CALLBACK_PORT="0", NO_COLOR="1", **extra)
    return env


def unique(prefix: str) -> str:
    """A resource name no other test on the shared daemon uses."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@dataclass
class Daemon:
    """One running daemon: where it lives, its process, and ways to talk to it."""

    home: Path
    process: subprocess.Popen[bytes]
    env: dict[str, str]
    stderr_path: Path
    database: str | None = None
    """The PostgreSQL database of its store (dropped by `stop_daemon`), None on SQLite."""

    @property
    def socket_path(self) -> Path:
        return self.home / "apimd.sock"

    @property
    def log_path(self) -> Path:
        return self.home / "daemon.log"

    def client(self, timeout: float = 60.0) -> Client:
        return Client(self.socket_path, timeout=timeout)

    async def cli(
        self, *args: str, timeout: float = 60.0, env: dict[str, str] | None = None
    ) -> tuple[int, str, str]:
        """`python -m apimd ARGS` with this daemon's environment: (exit code, stdout, stderr)."""
        return await run_cli(*args, env={**self.env, **(env or {})}, timeout=timeout)

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def terminate(self, timeout: float = STOP_TIMEOUT_S) -> int:
        """SIGTERM, then the exit status; kill -9 and fail when it does not exit in time."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
            pytest.fail(f"the daemon did not exit within {timeout:.0f} s of SIGTERM")

    async def stop(self, timeout: float = STOP_TIMEOUT_S) -> int:
        """`terminate` without blocking the test's event loop (loopback servers live there)."""
        return await asyncio.to_thread(self.terminate, timeout)

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(5)


async def run_cli(*args: str, env: dict[str, str], timeout: float = 60.0) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "apimd",
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def _answers(socket_path: Path) -> bool:
    async def probe() -> bool:
        try:
            async with Client(socket_path, timeout=2) as client:
                await client.health()
        except DaemonUnavailable:
            return False
        return True

    # A fixture may run while pytest-asyncio's loop is set but idle: probe on a loop of our own.
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, probe()).result()


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


def start_daemon(
    home: Path | None = None,
    *,
    store: str = "sqlite",
    database: str | None = None,
    **extra_env: str,
) -> Daemon:
    """Start `python -m apimd daemon` on `home` and wait until its socket answers. With
    `store="postgres"` its store is `database` (a new database when None)."""
    home = home or short_home()
    if store == "postgres":
        database = database or postgres.create_database()
        extra_env["APIMD_DATABASE_URL"] = postgres.url_of(database)
    env = daemon_env(home, **extra_env)
    stderr_path = Path(tempfile.mkstemp(prefix="apimd-stderr-", dir="/tmp")[1])
    with stderr_path.open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "apimd", "daemon"],
            stdin=subprocess.DEVNULL,
            stdout=stderr,
            stderr=stderr,
            env=env,
        )
    daemon = Daemon(home, process, env, stderr_path, database)
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            output = daemon.stderr()
            stderr_path.unlink(missing_ok=True)
            pytest.fail(f"the daemon exited {process.returncode} at start:\n{output}")
        if daemon.socket_path.exists() and _answers(daemon.socket_path):
            return daemon
        time.sleep(0.05)
    daemon.kill()
    output = daemon.stderr()
    stderr_path.unlink(missing_ok=True)
    pytest.fail(f"the daemon did not answer within {START_TIMEOUT_S:.0f} s:\n{output}")


def stop_daemon(daemon: Daemon, *, remove_home: bool = True) -> None:
    """SIGTERM and insist on a clean exit (0) within 15 s; `remove_home` also drops its
    PostgreSQL database."""
    try:
        code = daemon.terminate()
        assert code == 0, f"the daemon exited {code} after SIGTERM:\n{daemon.stderr()}"
    finally:
        daemon.stderr_path.unlink(missing_ok=True)
        if remove_home:
            shutil.rmtree(daemon.home, ignore_errors=True)
            if daemon.database is not None:
                postgres.drop_database(daemon.database)


@pytest.fixture(scope="module")
def daemon(daemon_store: str) -> Iterator[Daemon]:
    """One daemon shared by the tests of a module (they use unique resource names)."""
    running = start_daemon(store=daemon_store)
    try:
        yield running
    finally:
        stop_daemon(running)


@pytest.fixture
def own_daemon(daemon_store: str) -> Iterator[Daemon]:
    """A daemon for one test alone."""
    running = start_daemon(store=daemon_store)
    try:
        yield running
    finally:
        stop_daemon(running)


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
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield Receiver(f"http://127.0.0.1:{port}/hook", received)
    finally:
        await runner.cleanup()


async def eventually(
    check: Callable[[], Awaitable[Any]], *, timeout: float = 10.0, interval: float = 0.1
) -> Any:
    """Poll `check` until it returns something truthy; fail with its last value otherwise."""
    deadline = time.monotonic() + timeout
    value: Any = None
    while time.monotonic() < deadline:
        value = await check()
        if value:
            return value
        await asyncio.sleep(interval)
    pytest.fail(f"condition not met within {timeout} s (last value: {value!r})")
