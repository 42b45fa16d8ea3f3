"""Proxies (SPEC §10) through real proxy processes on 127.0.0.1 that record what passed through
them: HTTP CONNECT for https, plain HTTP proxying, SOCKS5 (and socks5h), credentials as secrets,
the environment's HTTP(S)_PROXY and NO_PROXY, and `proxy: none`."""

from __future__ import annotations

import asyncio
import json
import socket
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from yarl import URL

from apimd.demo.server import RunningServer
from apimd.engine.http import HttpExecutor, HttpRequest
from apimd.engine.memory import MemoryStateStore
from apimd.engine.proxies import bypassed, select_proxy
from apimd.engine.runner import Engine
from apimd.model import Outcome, ResultCode
from tests.engine.servers import self_signed_tls
from tests.support.engine import run_once
from tests.support.projects import build

REPO = Path(__file__).resolve().parents[2]
PROXY_PASSWORD = "proxy-pass-secret-31"


class ProxyProcess:
    def __init__(self, log: Path) -> None:
        self.log = log
        self.port = 0
        self.process: asyncio.subprocess.Process | None = None

    def lines(self) -> list[str]:
        return self.log.read_text().splitlines() if self.log.exists() else []

    def url(self, scheme: str, *, credentials: bool = True) -> str:
        userinfo = f"ann:{PROXY_PASSWORD}@" if credentials else ""
        return f"{scheme}://{userinfo}127.0.0.1:{self.port}"


Starter = Callable[..., Awaitable[ProxyProcess]]


@pytest.fixture
async def start_proxy(tmp_path: Path) -> AsyncIterator[Starter]:
    started: list[ProxyProcess] = []

    async def start(kind: str, *, credentials: bool = True) -> ProxyProcess:
        proxy = ProxyProcess(tmp_path / f"{kind}-{len(started)}.log")
        extra = ["ann", PROXY_PASSWORD] if credentials else []
        proxy.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.support.proxy",
            kind,
            str(proxy.log),
            *extra,
            cwd=REPO,
            stdout=asyncio.subprocess.PIPE,
        )
        assert proxy.process.stdout is not None
        proxy.port = int(await asyncio.wait_for(proxy.process.stdout.readline(), 30))
        started.append(proxy)
        return proxy

    yield start
    for proxy in started:
        assert proxy.process is not None
        proxy.process.terminate()
        await proxy.process.wait()


async def echo(request: web.Request) -> web.Response:
    peer = request.transport.get_extra_info("peername") if request.transport else None
    return web.json_response({"path": request.path, "host": request.host, "peer": peer})


def echo_app() -> web.Application:
    app = web.Application()
    app.router.add_get("/{tail:.*}", echo)
    return app


@pytest.fixture
async def http_target() -> AsyncIterator[RunningServer]:
    server = RunningServer(echo_app())
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
async def https_target(tmp_path: Path) -> AsyncIterator[TestServer]:
    server = TestServer(echo_app(), host="127.0.0.1", port=0)
    await server.start_server(ssl=self_signed_tls(tmp_path))
    try:
        yield server
    finally:
        await server.close()


async def run_call(url: str, proxy: str | None = None, *, via_auth: bool = False) -> Any:
    call: dict[str, Any] = {
        "name": "c",
        "url": url,
        "verify_tls": False,
        "conditions": [{"source": "json", "path": "path", "op": "eq", "value": "/hello"}],
    }
    doc: dict[str, Any] = {"calls": [call]}
    if proxy is not None and via_auth:
        doc["auth"] = [{"name": "a", "type": "none", "proxy": proxy}]
        call["auth"] = "a"
    elif proxy is not None:
        call["proxy"] = proxy
    return await run_once(Engine(build(doc), MemoryStateStore()), "c")


async def proxied(url: str, proxy: str, *, via_auth: bool = False) -> Any:
    """A call through `proxy` that passes and records no proxy password."""
    result = await run_call(url, proxy, via_auth=via_auth)
    assert result.outcome == Outcome.PASS, result.error
    assert PROXY_PASSWORD not in result.model_dump_json()
    return result


async def test_https_goes_through_an_http_connect_proxy(
    start_proxy: Starter, https_target: TestServer
) -> None:
    proxy = await start_proxy("http")
    await proxied(f"https://127.0.0.1:{https_target.port}/hello", proxy.url("http"))
    assert proxy.lines() == [f"CONNECT 127.0.0.1:{https_target.port} auth=ok"]


async def test_plain_http_is_proxied_with_absolute_uris(
    start_proxy: Starter, http_target: RunningServer
) -> None:
    proxy = await start_proxy("http")
    await proxied(f"{http_target.url}/hello", proxy.url("http"), via_auth=True)
    assert proxy.lines() == [f"GET {http_target.url}/hello auth=ok"]


async def test_wrong_proxy_credentials_fail_the_call(
    start_proxy: Starter, https_target: TestServer
) -> None:
    proxy = await start_proxy("http")
    wrong = f"http://ann:nope@127.0.0.1:{proxy.port}"
    result = await run_call(f"https://127.0.0.1:{https_target.port}/hello", wrong)
    assert result.outcome == Outcome.FAIL
    assert "nope" not in (result.error or "")


async def test_socks5_and_socks5h(
    start_proxy: Starter, http_target: RunningServer, https_target: TestServer
) -> None:
    proxy = await start_proxy("socks5")
    await proxied(f"https://127.0.0.1:{https_target.port}/hello", proxy.url("socks5"))
    assert proxy.lines() == [f"SOCKS 127.0.0.1:{https_target.port} auth=ok"]
    # socks5h: the name is resolved by the proxy, so the proxy sees it, not an address.
    await proxied(f"http://localhost:{http_target.port}/hello", proxy.url("socks5h"))
    assert proxy.lines()[-1] == f"SOCKS localhost:{http_target.port} auth=ok"


async def test_environment_proxies_honour_no_proxy_and_none(
    start_proxy: Starter,
    http_target: RunningServer,
    https_target: TestServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    proxy = await start_proxy("http", credentials=False)
    monkeypatch.setenv("HTTP_PROXY", proxy.url("http", credentials=False))
    monkeypatch.setenv("HTTPS_PROXY", proxy.url("http", credentials=False))
    assert (await run_call(f"{http_target.url}/hello")).outcome == Outcome.PASS
    https_url = f"https://127.0.0.1:{https_target.port}/hello"
    assert (await run_call(https_url)).outcome == Outcome.PASS
    assert proxy.lines() == [
        f"GET {http_target.url}/hello",
        f"CONNECT 127.0.0.1:{https_target.port}",
    ]
    # `none` turns the environment's proxy off; NO_PROXY hosts bypass it.
    assert (await run_call(f"{http_target.url}/hello", "none")).outcome == Outcome.PASS
    monkeypatch.setenv("NO_PROXY", "example.com,127.0.0.1")
    assert (await run_call(https_url)).outcome == Outcome.PASS
    assert len(proxy.lines()) == 2


@pytest.mark.parametrize(
    ("url", "no_proxy", "expected"),
    [
        ("http://api.example.com/", "example.com", True),
        ("http://api.example.com/", ".example.com", True),
        ("http://badexample.com/", "example.com", False),
        ("http://example.com:8080/", "example.com:8080", True),
        ("http://example.com:8081/", "example.com:8080", False),
        ("http://10.0.0.1/", "*", True),
        ("http://10.0.0.1/", "", False),
    ],
)
def test_no_proxy_matching(url: str, no_proxy: str, expected: bool) -> None:
    assert bypassed(URL(url), no_proxy) is expected


def test_a_configured_proxy_wins_over_the_environment() -> None:
    env = {"https_proxy": "http://env:3128", "no_proxy": "internal"}
    assert select_proxy(None, URL("https://api.test/"), env) == "http://env:3128"
    assert select_proxy(None, URL("https://x.internal/"), env) is None
    assert select_proxy("socks5://p:1080", URL("https://x.internal/"), env) == "socks5://p:1080"
    assert select_proxy("none", URL("https://api.test/"), env) is None


async def test_an_auths_proxy_carries_its_token_requests_and_calls(
    start_proxy: Starter, http_target: RunningServer, token_server: RunningServer
) -> None:
    proxy = await start_proxy("http")
    doc = {
        "auth": [
            {
                "name": "o",
                "type": "oauth2",
                "grant": "client_credentials",
                "token_url": f"{token_server.url}/oauth/token",
                "client_id": "demo-client",
                "client_secret": "demo-secret",
                "proxy": proxy.url("http"),
            }
        ],
        "tokens": [{"name": "t", "auth": "o"}],
        "calls": [{"name": "c", "url": f"{http_target.url}/hello", "token": "t"}],
    }
    result = await run_once(Engine(build(doc), MemoryStateStore()), "c")
    assert result.outcome == Outcome.PASS, result.error
    assert proxy.lines() == [
        f"POST {token_server.url}/oauth/token auth=ok",
        f"GET {http_target.url}/hello auth=ok",
    ]


async def test_keepalive_connections_never_cross_proxies(
    start_proxy: Starter, http_target: RunningServer, executor: HttpExecutor
) -> None:
    """The pool is keyed by the proxy: each route keeps its own connection to the target."""
    socks = await start_proxy("socks5", credentials=False)
    http = await start_proxy("http", credentials=False)
    routes = {
        "socks": socks.url("socks5", credentials=False),
        "http": http.url("http", credentials=False),
        "direct": None,
    }
    peers: dict[str, set[int]] = {name: set() for name in routes}
    for name in [*routes, *routes]:
        request = HttpRequest("GET", f"{http_target.url}/hello", keepalive=True, proxy=routes[name])
        response = await executor.send(request)
        assert response.status == 200, response.body
        peers[name].add(json.loads(response.body)["peer"][1])
    assert all(len(ports) == 1 for ports in peers.values())  # each route reused its connection
    assert len(set.union(*peers.values())) == 3  # and no two routes shared one
    assert socks.lines() == [f"SOCKS 127.0.0.1:{http_target.port}"]
    assert http.lines() == [f"GET {http_target.url}/hello"]


async def test_a_socks_proxy_that_refuses_or_answers_garbage_is_a_connection_error(
    start_proxy: Starter, https_target: TestServer
) -> None:
    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(100)
        writer.write(b"HTTP/1.1 400 Bad Request\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(garbage, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    refusing = await start_proxy("socks5")
    target = f"https://127.0.0.1:{https_target.port}/hello"
    try:
        answered = await run_call(target, f"socks5://127.0.0.1:{port}")
        refused = await run_call(target, f"socks5://ann:wrong-pw-1234@127.0.0.1:{refusing.port}")
    finally:
        server.close()
    for result in (answered, refused):
        assert result.result == ResultCode.CONNECTION_ERROR, result.error
        assert "internal error" not in (result.error or "")
        assert "proxy" in (result.error or "")
    assert "wrong-pw-1234" not in refused.model_dump_json()


@pytest.mark.parametrize("scheme", ["http", "socks5"])
async def test_a_proxy_nobody_answers_on_is_a_connection_error_naming_the_proxy(
    scheme: str, https_target: TestServer
) -> None:
    """An unreachable SOCKS proxy ended "internal error: ProxyConnectionError", an unreachable
    http one said it could not connect to the target (the retest)."""
    with socket.socket() as free:  # a port nothing listens on
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    target = f"https://127.0.0.1:{https_target.port}/hello"
    result = await run_call(target, f"{scheme}://ann:unheard-pw-99@127.0.0.1:{port}")
    assert result.result == ResultCode.CONNECTION_ERROR, result.error
    assert f"proxy 127.0.0.1:{port}" in (result.error or ""), result.error
    assert "unheard-pw-99" not in result.model_dump_json()


@pytest.mark.parametrize(
    "url", ["https://api.test/", "https://x.internal/a?b=c", "http://API.test:8080/", "HTTP://h/"]
)
@pytest.mark.parametrize(
    "env",
    [
        {},
        {"https_proxy": "http://env:3128", "no_proxy": "internal"},
        {"http_proxy": "http://plain:3128", "no_proxy": "api.test:8080"},
    ],
)
def test_a_url_given_as_text_is_parsed_only_when_a_proxy_may_apply(
    url: str, env: dict[str, str]
) -> None:
    """The request's URL is passed as text and parsed only when the environment names proxies;
    the choice is the one made from the parsed URL."""
    assert select_proxy(None, url, env) == select_proxy(None, URL(url), env)
