"""The one harness for real `apimd daemon` processes: a short temporary APIMD_HOME, the daemon's
environment, starting (waiting until `/v1/status` answers with its pid), SIGTERM, SIGKILL and
restarts, its output, and `python -m apimd` commands run against it. Used by tests/daemon,
tests/tui, tests/e2e, tests/reliability, tests/cli and the benchmarks."""

from __future__ import annotations

import asyncio
import http.client
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Coroutine
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self, TypeVar

import pytest

from apimd.client import Client
from tests import postgres
from tests.support.socket_http import SocketHTTP

START_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 20.0
T = TypeVar("T")
D = TypeVar("D", bound="DaemonProcess")
# Settings of the person running the tests that must not reach a test daemon.
_NOT_INHERITED = ("APIMD_SOCKET", "APIMD_SECRET_KEY", "APIMD_RETENTION_DAYS", "APIMD_DATABASE_URL")


def short_home() -> Path:
    """A fresh state folder whose socket path stays far below the ~100-byte limit of Unix sockets
    (a pytest `tmp_path` is too deep)."""
    return Path(tempfile.mkdtemp(prefix="apimd-", dir="/tmp"))


def daemon_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment of a daemon (or a command) on `home`: any free callback port, no colour."""
    env = {k: v for k, v in os.environ.items() if k not in _NOT_INHERITED}
    env.update(APIMD_HOME=str(home), APIMD_CALLBACK_PORT="0", NO_COLOR="1", **extra)
    return env


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run `coro` to completion on a loop of its own (fixtures may run inside another loop)."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


async def start_cli(
    *args: str, env: dict[str, str], stderr: int = asyncio.subprocess.PIPE
) -> asyncio.subprocess.Process:
    """`python -m apimd ARGS` started in `env`: no stdin, stdout (and by default stderr) piped."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "apimd",
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=stderr,
        env=env,
    )


async def run_cli(*args: str, env: dict[str, str], timeout: float = 60.0) -> tuple[int, str, str]:
    """`python -m apimd ARGS` in `env`, to its end: (exit code, stdout, stderr)."""
    proc = await start_cli(*args, env=env)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


@dataclass
class DaemonProcess:
    """`python -m apimd daemon` on one home; started, stopped, killed and restarted at will.
    Its stdout and stderr go to a file outside the home (`stderr()`), kept across restarts."""

    home: Path = field(default_factory=short_home)
    extra_env: dict[str, str] = field(default_factory=dict)
    database: str | None = None
    """The PostgreSQL database of its store (dropped by `remove`), None on SQLite."""
    status: dict[str, Any] = field(default_factory=dict)
    """`GET /v1/status` as it answered the last start."""
    stderr_path: Path = field(
        default_factory=lambda: Path(tempfile.mkstemp(prefix="apimd-stderr-", dir="/tmp")[1])
    )
    _process: subprocess.Popen[bytes] | None = None

    def __post_init__(self) -> None:
        if self.database is not None:
            self.extra_env["APIMD_DATABASE_URL"] = postgres.url_of(self.database)

    @property
    def env(self) -> dict[str, str]:
        return daemon_env(self.home, **self.extra_env)

    @property
    def socket_path(self) -> Path:
        return self.home / "apimd.sock"

    @property
    def db_path(self) -> Path:
        return self.home / "apimd.db"

    @property
    def log_path(self) -> Path:
        return self.home / "daemon.log"

    @property
    def process(self) -> subprocess.Popen[bytes]:
        assert self._process is not None, "the daemon was never started"
        return self._process

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def callback_url(self) -> str:
        return str(self.status["callback_url"])

    @property
    def http(self) -> SocketHTTP:
        return SocketHTTP(self.socket_path)

    def client(self, timeout: float = 60.0) -> Client:
        return Client(self.socket_path, timeout=timeout)

    async def cli(
        self, *args: str, timeout: float = 60.0, env: dict[str, str] | None = None
    ) -> tuple[int, str, str]:
        """`python -m apimd ARGS` with this daemon's environment: (exit code, stdout, stderr)."""
        return await run_cli(*args, env={**self.env, **(env or {})}, timeout=timeout)

    def start(self) -> Self:
        """Spawn the daemon and block until `/v1/status` answers with its pid."""
        assert not self.running, "already running"
        with self.stderr_path.open("ab") as out:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "apimd", "daemon"],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                env=self.env,
            )
        process = self._process
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if process.poll() is not None:
                pytest.fail(f"the daemon exited {process.returncode} at start:\n{self.output()}")
            with suppress(OSError, http.client.HTTPException):
                reply = self.http.request("GET", "/v1/status", timeout=2)
                if reply.status == 200 and reply.json().get("pid") == process.pid:
                    self.status = reply.json()
                    return self
            time.sleep(0.02)
        self.kill()
        pytest.fail(f"the daemon did not answer within {START_TIMEOUT_S:.0f} s:\n{self.output()}")

    def terminate(self, timeout: float = STOP_TIMEOUT_S) -> int:
        """SIGTERM, then the exit status; SIGKILL and fail when it does not exit in time."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"the daemon ignored SIGTERM for {timeout:.0f} s:\n{self.output()}")

    async def stop(self, timeout: float = STOP_TIMEOUT_S) -> int:
        """`terminate` without blocking the test's event loop (loopback servers live there)."""
        return await asyncio.to_thread(self.terminate, timeout)

    def stop_cleanly(self) -> None:
        """SIGTERM, and insist on exit status 0."""
        code = self.terminate()
        assert code == 0, f"the daemon exited {code} after SIGTERM:\n{self.output()}"

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs."""
        if self.running:
            self.process.kill()
            self.process.wait(10)

    def stderr(self) -> str:
        """Everything the daemon wrote to stdout and stderr, over all its starts."""
        with suppress(OSError):
            return self.stderr_path.read_text(errors="replace")
        return ""

    def output(self) -> str:
        """The tails of its output and of its log file, for failure messages."""
        parts = [self.stderr()[-5000:]]
        with suppress(OSError):
            parts.append(self.log_path.read_text(errors="replace")[-5000:])
        return "\n".join(parts)

    def remove(self, *, keep_home: bool = False) -> None:
        """Kill it if it still runs and delete its output file; unless `keep_home`, also its home
        and its PostgreSQL database."""
        self.kill()
        self.stderr_path.unlink(missing_ok=True)
        if not keep_home:
            shutil.rmtree(self.home, ignore_errors=True)
            if self.database is not None:
                postgres.drop_database(self.database)


def start_daemon(
    home: Path | None = None,
    *,
    store: str = "sqlite",
    database: str | None = None,
    **extra_env: str,
) -> DaemonProcess:
    """A started daemon on `home` (a fresh one when None). With `store="postgres"` its store is
    `database` (a new database when None)."""
    if store == "postgres" and database is None:
        database = postgres.create_database()
    daemon = DaemonProcess(home or short_home(), extra_env=extra_env, database=database)
    try:
        return daemon.start()
    except BaseException:
        daemon.remove(keep_home=home is not None)
        raise


def stop_daemon(daemon: DaemonProcess, *, remove_home: bool = True) -> None:
    """SIGTERM and insist on a clean exit (0) in time; `remove_home` also drops its
    PostgreSQL database."""
    try:
        daemon.stop_cleanly()
    finally:
        daemon.remove(keep_home=not remove_home)


@asynccontextmanager
async def started(daemon: D) -> AsyncIterator[D]:
    """`daemon` started for an async test, then stopped with SIGTERM (exit 0 required) and
    removed. Both happen off the event loop, so the test's loopback servers keep serving the
    daemon's in-flight runs meanwhile."""
    try:
        await asyncio.to_thread(daemon.start)
        yield daemon
        await asyncio.to_thread(daemon.stop_cleanly)
    finally:
        daemon.remove()
