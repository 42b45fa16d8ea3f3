"""Fixtures of the reliability suite: real `apimd daemon` processes (tests/support) on short
temporary homes, killed and restarted at will; a blocking HTTP client over the daemon's Unix socket
(hypothesis tests are synchronous); loopback servers. Everything is on 127.0.0.1."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from aiohttp import web

from apimd.demo.server import RunningServer
from tests.support import daemon as support
from tests.support.daemon import short_home, started
from tests.support.projects import token_saved
from tests.support.socket_http import Reply, SocketHTTP
from tests.support.web import app_of

START_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 20.0
__all__ = ["Reply", "SocketHTTP", "short_home"]
NOBODY = 65534
# subprocess arguments that run a child as uid/gid 65534 ("nobody", another user), in /.
AS_NOBODY: dict[str, Any] = {
    "user": NOBODY,
    "group": NOBODY,
    "extra_groups": [],
    "cwd": "/",
    "env": {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
}


class DaemonProcess(support.DaemonProcess):
    """The daemon process of tests/support, logging to its file only, with its memory use."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.extra_env.setdefault("APIMD_LOG_STDERR", "0")

    def rss_bytes(self) -> int:
        """Resident memory of the daemon, from /proc/<pid>/status."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise AssertionError("no VmRSS line")

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")


@contextmanager
def running_daemon(**extra_env: str) -> Iterator[DaemonProcess]:
    """A started daemon on a fresh home; stopped with SIGTERM (exit 0 required) and removed."""
    daemon = DaemonProcess(extra_env=extra_env)
    try:
        daemon.start()
        yield daemon
        daemon.stop_cleanly()
    finally:
        daemon.remove()


@pytest.fixture
async def daemon() -> AsyncIterator[DaemonProcess]:
    """A daemon for one async test."""
    async with started(DaemonProcess()) as process:
        yield process


# --- loopback servers --------------------------------------------------------------


@asynccontextmanager
async def loopback(app: web.Application) -> AsyncIterator[str]:
    """Serve `app` on 127.0.0.1 (any free port); yields its base URL."""
    async with RunningServer(app, shutdown_timeout=0.5) as running:
        yield running.url


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

    app = app_of(web.post("/exchange", trade), web.get("/me", me))
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
                "conditions": token_saved(),
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
