"""Certificates (SPEC §11): every https result records the server's leaf certificate — also on a
reused keep-alive connection — and `cert_days` conditions check it, against a local TLS server
whose CA-signed certificate expires in 5 days."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from yarl import URL

from apimd.demo.server import RunningServer
from apimd.engine.certificates import tls_info
from apimd.engine.http import HttpExecutor, HttpRequest
from apimd.engine.memory import MemoryStateStore
from apimd.engine.runner import Engine
from apimd.model.outcome import Outcome, ResultCode
from tests.engine.servers import make_app
from tests.support.projects import build
from tests.support.tls import CA_NAME, LEAF_NAME, ca_and_server_context, tls_site


class TlsServer:
    def __init__(self, url: str, connections: set[object]) -> None:
        self.url = url
        self.connections = connections


@pytest.fixture
async def tls_server(tmp_path: Path) -> AsyncIterator[TlsServer]:
    _ca, context = ca_and_server_context(tmp_path, days_left=5)
    connections: set[object] = set()
    async with tls_site(context, connections) as url:
        yield TlsServer(url, connections)


async def test_tls_details_on_every_result_and_cert_days_warns(tls_server: TlsServer) -> None:
    doc = {
        "calls": [
            {
                "name": "expiring",
                "url": f"{tls_server.url}/ok",
                "verify_tls": False,
                "keepalive": True,
                "conditions": [
                    {"source": "status", "op": "eq", "value": 200},
                    {"source": "cert_days", "op": "ge", "value": 14, "on_fail": "warning"},
                ],
            }
        ]
    }
    engine = Engine(build(doc), MemoryStateStore())
    try:
        results = [await engine.run("expiring") for _ in range(2)]
    finally:
        await engine.close()
    assert len(tls_server.connections) == 1  # the second run reused the first connection
    for result in results:
        assert result.tls is not None, result
        assert result.tls.subject == f"CN={LEAF_NAME}"
        assert result.tls.issuer == f"CN={CA_NAME}"
        assert 4.9 < result.tls.days_left <= 5
        assert (result.outcome, result.result) == (Outcome.WARNING, ResultCode.CONTENT_WARNING)
        cert_condition = result.conditions[1]
        assert not cert_condition.passed and 4.9 < cert_condition.actual <= 5


async def test_plain_http_has_no_tls_and_cert_days_fails_there() -> None:
    async def empty(_request: web.Request) -> web.Response:
        return web.json_response({})

    app = web.Application()
    app.router.add_get("/", empty)
    server = await RunningServer(app).start()
    doc = {
        "calls": [
            {
                "name": "plain",
                "url": f"{server.url}/",
                "conditions": [{"source": "cert_days", "op": "ge", "value": 14}],
            }
        ]
    }
    engine = Engine(build(doc), MemoryStateStore())
    try:
        result = await engine.run("plain")
    finally:
        await engine.close()
        await server.stop()
    assert result.tls is None
    assert result.outcome == Outcome.FAIL
    assert result.conditions[0].message == "no server certificate: not an https response"


async def test_the_certificate_is_the_last_hops(
    aiohttp_server: Callable[..., Awaitable[TestServer]], tmp_path: Path, executor: HttpExecutor
) -> None:
    """Redirects between https servers (and on to http): the certificate recorded is the one of
    the server that gave the response, taken afresh on every hop."""
    servers: dict[str, TestServer] = {}
    for name, days_left in (("near", 5), ("far", 40)):
        (tmp_path / name).mkdir()
        _ca, context = ca_and_server_context(tmp_path / name, days_left=days_left)
        servers[name] = await aiohttp_server(make_app(), ssl=context)
    plain = await aiohttp_server(make_app())

    def forward(server: TestServer, to: str) -> str:
        url = URL.build(scheme="https", host="127.0.0.1", port=server.port, path="/forward")
        return str(url.with_query(to=to))

    echo = f"http://127.0.0.1:{plain.port}/echo"
    to_far = forward(servers["near"], forward(servers["far"], "/echo"))
    on_to_http = forward(servers["near"], forward(servers["far"], echo))
    responses = [
        await executor.send(HttpRequest("GET", url, verify_tls=False))
        for url in (to_far, on_to_http)
    ]
    far, http = (tls_info(r.peer_certificate, dt.datetime.now(dt.UTC)) for r in responses)
    assert [len(r.redirects) for r in responses] == [2, 2]
    assert far is not None and 39.9 < far.days_left <= 40
    assert http is None
