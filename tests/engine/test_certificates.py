"""Certificates (SPEC §11): every https result records the server's leaf certificate — also on a
reused keep-alive connection — and `cert_days` conditions check it, against a local TLS server
whose CA-signed certificate expires in 5 days."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from apimd.demo.server import RunningServer
from apimd.engine.memory import MemoryStateStore
from apimd.engine.runner import Engine
from apimd.model.outcome import Outcome, ResultCode
from tests.engine.certs import CA_NAME, LEAF_NAME, ca_and_server_context, tls_site
from tests.engine.projects import build


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
