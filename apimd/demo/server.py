"""A small loopback API and OAuth 2.0 token server: the `apimd demo` backend and a test fixture.

Endpoints: `POST /oauth/token` (client_credentials, password, refresh_token grants; short-lived
tokens; rotating refresh tokens), `GET /api/orders` (needs a live bearer token, else 401),
`GET /api/status`, `GET /api/broken` (500 on purpose), `GET /api/slow`, `GET /api/items.xml`.
"""

from __future__ import annotations

import asyncio
import base64
import secrets
import time
from dataclasses import dataclass, field
from urllib.parse import unquote

from aiohttp import web


@dataclass
class TokenServerState:
    """What the server issued and how it should misbehave (tests flip these)."""

    client_id: str = "demo-client"
    client_secret: str = "demo-secret"
    username: str = "demo"
    password: str = "demo-password"
    lifetime_s: float = 60.0
    access_tokens: dict[str, float] = field(default_factory=dict)  # token -> expiry (monotonic)
    refresh_tokens: set[str] = field(default_factory=set)
    token_requests: int = 0
    grants: list[str] = field(default_factory=list)
    api_requests: int = 0
    fail_next: int = 0  # answer the next N token requests with 503
    invalid_grant: bool = False  # answer every token request with invalid_grant
    token_delay_s: float = 0.0

    def issue(self) -> dict[str, object]:
        access = "at-" + secrets.token_urlsafe(16)
        refresh = "rt-" + secrets.token_urlsafe(16)
        self.access_tokens[access] = time.monotonic() + self.lifetime_s
        self.refresh_tokens.add(refresh)
        lifetime = (
            int(self.lifetime_s) if self.lifetime_s == int(self.lifetime_s) else self.lifetime_s
        )
        return {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": lifetime,
            "refresh_token": refresh,
        }

    def valid(self, access: str) -> bool:
        expiry = self.access_tokens.get(access)
        return expiry is not None and time.monotonic() < expiry


STATE_KEY = web.AppKey("token_server_state", TokenServerState)


def _client(request: web.Request, form: dict[str, str]) -> tuple[str, str]:
    header = request.headers.get("Authorization", "")
    if header.startswith("Basic "):
        try:
            pair = base64.b64decode(header[6:]).decode()
        except ValueError:
            return "", ""
        user, _, password = pair.partition(":")
        return unquote(user), unquote(password)
    return form.get("client_id", ""), form.get("client_secret", "")


def _oauth_error(error: str, status: int = 400, description: str | None = None) -> web.Response:
    body: dict[str, str] = {"error": error}
    if description:
        body["error_description"] = description
    return web.json_response(body, status=status)


async def token_endpoint(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    state.token_requests += 1
    if state.token_delay_s:
        await asyncio.sleep(state.token_delay_s)
    form = {k: str(v) for k, v in (await request.post()).items()}
    state.grants.append(form.get("grant_type", ""))
    if state.fail_next > 0:
        state.fail_next -= 1
        return web.json_response({"error": "temporarily_unavailable"}, status=503)
    if state.invalid_grant:
        return _oauth_error("invalid_grant", description="the grant was revoked")
    client_id, client_secret = _client(request, form)
    if (client_id, client_secret) != (state.client_id, state.client_secret):
        return _oauth_error("invalid_client", 401)
    grant = form.get("grant_type")
    if grant == "client_credentials":
        return web.json_response(state.issue())
    if grant == "password":
        if (form.get("username"), form.get("password")) != (state.username, state.password):
            return _oauth_error("invalid_grant", description="wrong username or password")
        return web.json_response(state.issue())
    if grant == "refresh_token":
        presented = form.get("refresh_token", "")
        if presented not in state.refresh_tokens:
            return _oauth_error("invalid_grant", description="unknown refresh token")
        state.refresh_tokens.discard(presented)  # rotate
        return web.json_response(state.issue())
    return _oauth_error("unsupported_grant_type")


async def orders(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    state.api_requests += 1
    header = request.headers.get("Authorization", "")
    if not header.startswith("Bearer ") or not state.valid(header[7:]):
        return web.json_response(
            {"error": "invalid_token"},
            status=401,
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
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
    """The demo API and token server as an aiohttp application."""
    app = web.Application()
    app[STATE_KEY] = state or TokenServerState()
    app.router.add_post("/oauth/token", token_endpoint)
    app.router.add_get("/api/orders", orders)
    app.router.add_get("/api/status", status)
    app.router.add_get("/api/broken", broken)
    app.router.add_get("/api/slow", slow)
    app.router.add_get("/api/items.xml", items_xml)
    return app


class RunningServer:
    """The app served on 127.0.0.1 (port 0 = any free port)."""

    def __init__(self, app: web.Application, port: int = 0) -> None:
        self.app = app
        self._port = port
        self._runner = web.AppRunner(app, access_log=None)
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
