"""Fixtures of the reliability suite: real `apimd daemon` processes on short temporary homes,
killed and restarted at will; a blocking HTTP client over the daemon's Unix socket (hypothesis
tests are synchronous); loopback servers; and polling with a bound. Everything is on 127.0.0.1."""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from aiohttp import web

from apimd.client import Client

START_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 20.0
NOBODY = 65534
# subprocess arguments that run a child as uid/gid 65534 ("nobody", another user), in /.
AS_NOBODY: dict[str, Any] = {
    "user": NOBODY,
    "group": NOBODY,
    "extra_groups": [],
    "cwd": "/",
    "env": {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
}


def short_home() -> Path:
    """A fresh APIMD_HOME whose socket path stays far below the 100-byte limit."""
    return Path(tempfile.mkdtemp(prefix="apimd-", dir="/tmp"))


# --- a blocking client over the Unix socket ---------------------------------------------------


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, socket_path: Path, timeout: float) -> None:
        super().__init__("apimd", timeout=timeout)
        self._socket_path = socket_path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(self.timeout)
            sock.connect(str(self._socket_path))
        except OSError:
            sock.close()
            raise
        self.sock = sock


@dataclass
class Reply:
    status: int
    content_type: str
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class SocketHTTP:
    """Raw requests to the daemon's REST API: any method, any bytes, any content type."""

    def __init__(self, socket_path: Path) -> None:
        self.socket_path = socket_path

    def request(
        self,
        method: str,
        target: str,
        body: bytes | None = None,
        *,
        content_type: str = "application/json",
        timeout: float = 30.0,
    ) -> Reply:
        connection = _UnixConnection(self.socket_path, timeout)
        try:
            headers = {"Content-Type": content_type} if body is not None else {}
            connection.request(method, target, body=body, headers=headers)
            response = connection.getresponse()
            return Reply(response.status, response.getheader("Content-Type") or "", response.read())
        finally:
            connection.close()

    def json(self, method: str, target: str, document: Any = None, **kw: Any) -> Any:
        """A JSON request that must succeed (2xx); its JSON answer."""
        body = None if document is None else json.dumps(document).encode()
        reply = self.request(method, target, body, **kw)
        assert 200 <= reply.status < 300, f"{method} {target}: {reply.status} {reply.body[:500]!r}"
        return reply.json()


# --- daemon processes -------------------------------------------------------------------------


@dataclass
class DaemonProcess:
    """`python -m apimd daemon` on one home; started, killed and restarted as a test likes."""

    home: Path = field(default_factory=short_home)
    process: subprocess.Popen[bytes] | None = None
    status: dict[str, Any] = field(default_factory=dict)
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def socket_path(self) -> Path:
        return self.home / "apimd.sock"

    @property
    def db_path(self) -> Path:
        return self.home / "apimd.db"

    @property
    def output_path(self) -> Path:
        return self.home / "daemon.out"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    @property
    def callback_url(self) -> str:
        return str(self.status["callback_url"])

    @property
    def http(self) -> SocketHTTP:
        return SocketHTTP(self.socket_path)

    def client(self, timeout: float = 60.0) -> Client:
        return Client(self.socket_path, timeout=timeout)

    def env(self) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("APIMD_SOCKET", "APIMD_SECRET_KEY", "APIMD_RETENTION_DAYS")
        }
        env.update(
            APIMD_HOME=str(self.home),
            APIMD_CALLBACK_PORT="0",
            APIMD_LOG_STDERR="0",
            NO_COLOR="1",
            **self.extra_env,
        )
        return env

    def start(self) -> dict[str, Any]:
        """Spawn the daemon and block until `/v1/status` answers; returns that status."""
        assert self.process is None or self.process.poll() is not None, "already running"
        with self.output_path.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "apimd", "daemon"],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                env=self.env(),
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"the daemon exited {self.process.returncode}:\n{self.output()}")
            with suppress(OSError, http.client.HTTPException):
                reply = self.http.request("GET", "/v1/status", timeout=2)
                if reply.status == 200:
                    self.status = reply.json()
                    assert self.status["pid"] == self.process.pid
                    return self.status
            time.sleep(0.02)
        self.kill()
        pytest.fail(f"the daemon did not answer within {START_TIMEOUT_S:.0f} s:\n{self.output()}")

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> int:
        """SIGTERM and the exit status (the daemon must exit in time)."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"the daemon ignored SIGTERM for {STOP_TIMEOUT_S:.0f} s:\n{self.output()}")

    def rss_bytes(self) -> int:
        """Resident memory of the daemon, from /proc/<pid>/status."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise AssertionError("no VmRSS line")

    def output(self) -> str:
        parts = []
        for path in (self.output_path, self.home / "daemon.log"):
            with suppress(OSError):
                parts.append(path.read_text(errors="replace")[-5000:])
        return "\n".join(parts)

    def log_text(self) -> str:
        return (self.home / "daemon.log").read_text(errors="replace")

    def remove(self) -> None:
        self.kill()
        shutil.rmtree(self.home, ignore_errors=True)


@contextmanager
def running_daemon(**extra_env: str) -> Iterator[DaemonProcess]:
    """A started daemon on a fresh home; stopped with SIGTERM (exit 0 required) and removed."""
    daemon = DaemonProcess(extra_env=extra_env)
    try:
        daemon.start()
        yield daemon
        code = daemon.stop()
        assert code == 0, f"the daemon exited {code} after SIGTERM:\n{daemon.output()}"
    finally:
        daemon.remove()


@pytest.fixture
async def daemon() -> AsyncIterator[DaemonProcess]:
    """A daemon for one async test. Started and stopped off the event loop, so the test's
    loopback servers keep serving its in-flight runs meanwhile."""
    process = DaemonProcess()
    try:
        await asyncio.to_thread(process.start)
        yield process
        code = await asyncio.to_thread(process.stop)
        assert code == 0, f"the daemon exited {code} after SIGTERM:\n{process.output()}"
    finally:
        process.remove()


# --- loopback servers --------------------------------------------------------------


@asynccontextmanager
async def loopback(app: web.Application) -> AsyncIterator[str]:
    """Serve `app` on 127.0.0.1 (any free port); yields its base URL."""
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


# --- a sign-in project and its authorization server ---------------------------------------------


@dataclass
class Exchange:
    """A tiny authorization server: `POST /exchange` trades the code `x` for an access token,
    `GET /me` accepts only tokens it issued."""

    url: str = ""
    issued: list[str] = field(default_factory=list)
    exchanges: int = 0


@asynccontextmanager
async def exchange_server() -> AsyncIterator[Exchange]:
    exchange = Exchange()

    async def trade(request: web.Request) -> web.Response:
        exchange.exchanges += 1
        form = await request.post()
        if form.get("code") != "x":
            return web.json_response({"error": "invalid_grant"}, status=400)
        token = f"at-{len(exchange.issued)}-{os.urandom(8).hex()}"
        exchange.issued.append(token)
        return web.json_response({"access_token": token, "expires_in": 3600})

    async def me(request: web.Request) -> web.Response:
        header = request.headers.get("Authorization", "")
        if header.removeprefix("Bearer ") not in exchange.issued:
            return web.json_response({"error": "invalid_token"}, status=401)
        return web.json_response({"user": "alice"})

    app = web.Application()
    app.router.add_post("/exchange", trade)
    app.router.add_get("/me", me)
    async with loopback(app) as url:
        exchange.url = url
        yield exchange


def signin_project(exchange_url: str) -> dict[str, Any]:
    """Token `sso-token` of a `manual` auth signed in by a workflow: a browser step (never sent),
    then a call trading `%%CODE%%` at the exchange server for ACCESS_TOKEN."""
    return {
        "version": 1,
        "auth": [
            {
                "name": "sso",
                "type": "manual",
                "signin_workflow": "sso-signin",
                "refresh_workflow": "sso-signin",
            }
        ],
        "tokens": [
            {
                "name": "sso-token",
                "auth": "sso",
                "headers": {"Authorization": "Bearer %%ACCESS_TOKEN%%"},
            }
        ],
        "calls": [
            {
                "name": "sso-authorize",
                "url": "http://127.0.0.1:9/authorize",
                "tags": ["apimd:browser"],
                "params": {"redirect_uri": "%%CALLBACK_URL%%"},
            },
            {
                "name": "sso-exchange",
                "method": "POST",
                "url": f"{exchange_url}/exchange",
                "form": {"code": "%%CODE%%"},
                "timeout": 5,
                "conditions": [
                    {"source": "status", "op": "eq", "value": 200},
                    {"source": "json", "path": "access_token", "save_as": "ACCESS_TOKEN"},
                    {"source": "json", "path": "expires_in", "save_as": "EXPIRES_IN"},
                ],
            },
            {
                "name": "sso-me",
                "url": f"{exchange_url}/me",
                "token": "sso-token",
                "timeout": 5,
                "conditions": [{"source": "status", "op": "eq", "value": 200}],
            },
        ],
        "workflows": [{"name": "sso-signin", "steps": ["sso-authorize", "sso-exchange"]}],
    }


def state_of(signin_url: str) -> str:
    """The `state` parameter of a sign-in URL."""
    return parse_qs(urlsplit(signin_url).query)["state"][0]
