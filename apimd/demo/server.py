"""A small loopback API and OAuth 2.0 authorization server: the `apimd demo` backend and a test
fixture.

API: `GET /api/orders` (needs a live bearer token, else 401), `GET /api/status`, `GET /api/broken`
(500 on purpose), `GET /api/slow`, `GET /api/items.xml`. The authorization server (login form,
code flow with PKCE, device flow, short-lived tokens, rotating refresh tokens) is `apimd.demo.oauth`.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from apimd.demo import oauth
from apimd.demo.fapi import Refused
from apimd.demo.state import STATE_KEY, TokenServerState

__all__ = ["STATE_KEY", "RunningServer", "TokenServerState", "create_app"]


async def orders(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    state.api_requests += 1
    scheme, _, access = request.headers.get("Authorization", "").partition(" ")
    jkt = state.fapi.bound_tokens.get(access)
    if scheme != ("DPoP" if jkt else "Bearer") or not state.valid(access):
        return web.json_response(
            {"error": "invalid_token"},
            status=401,
            headers={"WWW-Authenticate": f'{scheme or "Bearer"} error="invalid_token"'},
        )
    if jkt:
        try:
            if (
                state.fapi.proof(request.headers.get("DPoP"), "GET", str(request.url), access)
                != jkt
            ):
                raise Refused("invalid_dpop_proof", "the proof's key is not the token's")
        except Refused as exc:
            state.fapi.refused.append(str(exc))
            headers = {"WWW-Authenticate": f'DPoP error="{exc.error}"'}
            if exc.error == "use_dpop_nonce" and state.fapi.dpop_nonce:
                headers["DPoP-Nonce"] = state.fapi.dpop_nonce
            return web.json_response(
                {"error": exc.error, "error_description": exc.description},
                status=401,
                headers=headers,
            )
    return web.json_response(
        {
            "orders": [
                {"id": 1, "total": 12.5, "status": "shipped"},
                {"id": 2, "total": 99, "status": "open"},
            ]
        }
    )


async def status(_request: web.Request) -> web.Response:
    return web.json_response({"status": "ok", "version": "1.4.2", "healthy": True})


async def broken(_request: web.Request) -> web.Response:
    return web.json_response({"error": "database unavailable"}, status=500)


async def slow(request: web.Request) -> web.Response:
    await asyncio.sleep(float(request.query.get("ms", "1500")) / 1000)
    return web.json_response({"status": "ok"})


async def items_xml(_request: web.Request) -> web.Response:
    body = '<?xml version="1.0"?><items><item id="1">alpha</item><item id="2">beta</item></items>'
    return web.Response(text=body, content_type="application/xml")


def create_app(state: TokenServerState | None = None) -> web.Application:
    """The demo API and authorization server as an aiohttp application."""
    app = web.Application()
    app[STATE_KEY] = state or TokenServerState()
    oauth.add_routes(app)
    app.router.add_get("/api/orders", orders)
    app.router.add_get("/api/status", status)
    app.router.add_get("/api/broken", broken)
    app.router.add_get("/api/slow", slow)
    app.router.add_get("/api/items.xml", items_xml)
    return app


class RunningServer:
    """The app served on 127.0.0.1 (port 0 = any free port)."""

    def __init__(
        self, app: web.Application, port: int = 0, *, shutdown_timeout: float = 60.0
    ) -> None:
        self.app = app
        self._port = port
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=shutdown_timeout)
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> RunningServer:
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self._port)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        return self

    async def stop(self) -> None:
        await self._runner.cleanup()

    async def __aenter__(self) -> RunningServer:
        return await self.start()

    async def __aexit__(self, *_exc: object) -> None:
        await self.stop()
