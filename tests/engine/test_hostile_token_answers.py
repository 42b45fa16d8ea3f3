"""A hostile authorization server's token answers (SPEC §2, §5): `expires_in` too large for a date,
of odd types, a refresh token rotated to something huge. A run ends with a result, never an
exception; a lifetime no date can hold is no known expiry."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aiohttp import web

from apimd.demo.server import RunningServer
from apimd.engine.memory import MemoryStateStore
from apimd.engine.runner import Engine
from apimd.model import Outcome
from tests.support.projects import build
from tests.support.web import app_of


def project(base: str) -> dict[str, Any]:
    return {
        "auth": [
            {
                "name": "cc",
                "type": "oauth2",
                "grant": "client_credentials",
                "token_url": f"{base}/token",
                "client_id": "id",
                "client_secret": "secret-value",
            }
        ],
        "tokens": [{"name": "t", "auth": "cc"}],
        "calls": [{"name": "api", "url": f"{base}/api", "token": "t"}],
    }


@pytest.mark.parametrize(
    "expires_in",
    [
        '"1e309"',
        "1e308",
        "1e20",
        "99999999999999999999999999",
        '"9999999999999"',
        "1e309",
        "-5",
        "true",
        '"-1e400"',
        '"0x10"',
        "2147483647",
    ],
)
async def test_an_odd_expires_in_never_breaks_the_run(expires_in: str) -> None:
    async def token(_request: web.Request) -> web.Response:
        body = f'{{"access_token": "at-1", "token_type": "Bearer", "expires_in": {expires_in}}}'
        return web.Response(text=body, content_type="application/json")

    async def api(request: web.Request) -> web.Response:
        ok = request.headers.get("Authorization") == "Bearer at-1"
        return web.json_response({"ok": ok}, status=200 if ok else 401)

    server = RunningServer(app_of(web.post("/token", token), web.get("/api", api)))
    await server.start()
    store = MemoryStateStore()
    engine = Engine(build(project(server.url)), store)
    try:
        first = await engine.run("api")
        second = await engine.run("api")
    finally:
        await engine.close()
        await server.stop()
    assert first.outcome == Outcome.PASS, first.error
    assert second.outcome == Outcome.PASS, second.error
    saved = store.tokens["t"]
    if saved.expires_at is not None:
        assert saved.expires_at.year < 10_000
    assert json.dumps(saved.model_dump(mode="json"))  # storable


@pytest.mark.parametrize("size", [64 * 1024, 20 * 1024 * 1024])
async def test_a_huge_rotated_refresh_token_is_a_clean_result(size: int) -> None:
    async def token(_request: web.Request) -> web.Response:
        body = json.dumps({"access_token": "at-1", "expires_in": 60, "refresh_token": "r" * size})
        return web.Response(text=body, content_type="application/json")

    async def api(request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    server = RunningServer(app_of(web.post("/token", token), web.get("/api", api)))
    await server.start()
    store = MemoryStateStore()
    engine = Engine(build(project(server.url)), store)
    try:
        result = await engine.run("api")
    finally:
        await engine.close()
        await server.stop()
    assert result.error is None or "internal error" not in result.error, result.error
    assert "r" * 1000 not in result.model_dump_json()
