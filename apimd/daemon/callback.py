"""The loopback callback server on 127.0.0.1:APIMD_CALLBACK_PORT (SPEC §5): `/tokens/callback`
takes the browser's redirect and finishes the sign-in. A taken port never stops the daemon: the
service records why it is not bound, and `apimd status` says so."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from apimd.daemon.callback_limits import (
    BODY_TIMEOUT_S,
    GRACE_S,
    MAX_CONNECTIONS,
    ConnectionLimiter,
    LimitedConnection,
    Phase,
)
from apimd.daemon.callback_pages import (
    CAPTURE_PAGE,
    PAGE_HEADERS,
    failed_page,
    signed_in_page,
)
from apimd.daemon.errors import BadRequest, parse_json
from apimd.daemon.logs import hide_unparsed_requests
from apimd.daemon.service import MonitorService
from apimd.engine.signin import SignInDone, SignInError
from apimd.settings import Settings

log = logging.getLogger(__name__)

MAX_QUERY_BYTES = 16 * 1024
MAX_POST_BYTES = 16 * 1024

Complete = Callable[[dict[str, str]], Awaitable[SignInDone]]
COMPLETE: web.AppKey[Complete] = web.AppKey("complete")


class PortRef:
    """The bound port, known only after listening (port 0 = any free port)."""

    def __init__(self, value: int) -> None:
        self.value = value


PORT = web.AppKey("port", PortRef)


LIMITER = web.AppKey("limiter", ConnectionLimiter)


@web.middleware
async def follow_phase(request: web.Request, handler: Any) -> web.StreamResponse:
    """Tell the limiter a request is being answered, and when it is done (the connection is then
    idle until its next request, and may make room for a newcomer)."""
    conn = request.app[LIMITER].of(request.transport)
    if conn is not None:
        conn.enter(Phase.ANSWERING)
    try:
        response: web.StreamResponse = await handler(request)
        if not response.prepared:  # written before the connection counts as idle
            await response.prepare(request)
            await response.write_eof()
        return response
    finally:
        if conn is not None:
            conn.enter(Phase.IDLE)


class CallbackRequestHandler(web.RequestHandler):
    """aiohttp's connection handler, whose own answers to a request it cannot parse carry the
    callback's security headers and never echo the request (aiohttp's would quote it)."""

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if isinstance(exc, ConnectionResetError):  # the client left (or was evicted): no error
            log.debug("callback client gone before its answer")
        else:
            super().handle_error(request, status, exc)  # logs, without the request (logs.py)
        reason = "the request could not be read" if status < 500 else "apimd failed to answer"
        response = _page(failed_page(reason, refused=status < 500), status)
        response.force_close()
        return response


@web.middleware
async def host_check(request: web.Request, handler: Any) -> web.StreamResponse:
    port = request.app[PORT].value
    if request.host not in (f"127.0.0.1:{port}", f"localhost:{port}"):
        return web.Response(status=421, text="misdirected request", headers=PAGE_HEADERS)
    try:
        response: web.StreamResponse = await handler(request)
    except web.HTTPException as exc:  # aiohttp's own 404 and 405 pages: ours, with our headers
        if exc.status < 400:
            raise
        return web.Response(status=exc.status, text=exc.reason, headers=PAGE_HEADERS)
    return response


async def _finish(request: web.Request, params: dict[str, str]) -> web.Response:
    try:
        done = await request.app[COMPLETE](params)
    except SignInError as exc:
        status = 400 if exc.refused else 200
        return _page(failed_page(exc.message, refused=exc.refused), status)
    if done.ok:
        return _page(
            signed_in_page(done.token, done.expires_at, done.message, refreshes=done.refreshes)
        )
    return _page(failed_page(done.message, refused=False))


def _page(body: str, status: int = 200) -> web.Response:
    return web.Response(text=body, status=status, content_type="text/html", headers=PAGE_HEADERS)


async def callback_get(request: web.Request) -> web.Response:
    if len(request.query_string.encode()) > MAX_QUERY_BYTES:
        return _page(failed_page("the answer is too long", refused=True), 400)
    if not request.query:
        return _page(CAPTURE_PAGE)
    return await _finish(request, dict(request.query.items()))


async def callback_post(request: web.Request) -> web.Response:
    """The capture page's script posts the URL fragment here as JSON."""
    port = request.app[PORT].value
    origin = request.headers.get("Origin")
    if request.content_type != "application/json" or origin not in (
        f"http://127.0.0.1:{port}",
        f"http://localhost:{port}",
    ):
        return web.Response(status=403, text="forbidden", headers=PAGE_HEADERS)
    conn = request.app[LIMITER].of(request.transport)
    if conn is not None:
        conn.enter(Phase.BODY)
    try:
        async with asyncio.timeout(BODY_TIMEOUT_S):
            raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        return _page(failed_page("the answer is too long", refused=True), 400)
    except TimeoutError:
        return _page(failed_page("the answer took too long to arrive", refused=True), 408)
    if conn is not None:
        conn.enter(Phase.ANSWERING)
    try:
        data = parse_json(raw)
    except BadRequest:
        return _page(failed_page("the answer was not readable", refused=True), 400)
    if not isinstance(data, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in data.items()
    ):
        return _page(failed_page("the answer was not readable", refused=True), 400)
    return await _finish(request, data)


def create_callback_app(
    complete: Complete, port: PortRef, limiter: ConnectionLimiter | None = None
) -> web.Application:
    app = web.Application(middlewares=[follow_phase, host_check], client_max_size=MAX_POST_BYTES)
    app[COMPLETE] = complete
    app[PORT] = port
    app[LIMITER] = limiter or ConnectionLimiter()
    app.router.add_get("/tokens/callback", callback_get)
    app.router.add_post("/tokens/callback", callback_post)
    return app


class CallbackServer:
    """The listening callback server; `close()` stops it."""

    def __init__(self, runner: web.AppRunner, server: asyncio.AbstractServer, port: int) -> None:
        self.runner = runner
        self.server = server
        self.port = port

    async def close(self) -> None:
        self.server.close()
        await self.runner.cleanup()


async def serve_callback(
    complete: Complete, port: int, *, limit: int = MAX_CONNECTIONS
) -> CallbackServer:
    """Listen on 127.0.0.1:`port` (0 = any free port); raises OSError when it is taken."""
    loop = asyncio.get_running_loop()
    hide_unparsed_requests()
    port_ref = PortRef(port)
    limiter = ConnectionLimiter(limit)
    app = create_callback_app(complete, port_ref, limiter)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    manager = runner.server
    assert manager is not None

    # No access log: the callback's query holds the code and the state.
    options: dict[str, Any] = {
        "keepalive_timeout": 5.0,
        "max_line_size": MAX_QUERY_BYTES + 1024,
        "access_log": None,
    }

    def connection() -> LimitedConnection:
        handler = CallbackRequestHandler(manager, loop=loop, **options)
        return LimitedConnection(handler, limiter)

    try:
        server = await loop.create_server(connection, "127.0.0.1", port, reuse_address=True)
    except OSError:
        await runner.cleanup()
        raise
    defer_accept = getattr(socket, "TCP_DEFER_ACCEPT", None)
    if defer_accept is not None:
        # Linux: hand over a connection once its first bytes are in, so the limiter sees what
        # each newcomer sent (a whole request, or a piece) and a silent one takes no slot.
        server.sockets[0].setsockopt(socket.IPPROTO_TCP, defer_accept, int(GRACE_S))
    bound = int(server.sockets[0].getsockname()[1])
    port_ref.value = bound  # port 0 becomes the real port before any request arrives
    return CallbackServer(runner, server, bound)


async def start_callback_server(
    settings: Settings, service: MonitorService
) -> CallbackServer | None:
    """Bind the callback server for the daemon; on failure record the reason and carry on."""
    try:
        callback = await serve_callback(service.complete_signin, settings.callback_port)
    except OSError as exc:
        service.callback_error = (
            f"port {settings.callback_port} is taken ({exc.strerror}); sign-ins will fail until "
            "it is free, or set APIMD_CALLBACK_PORT to another port"
        )
        log.warning("callback server not started: %s", service.callback_error)
        return None
    service.set_callback_port(callback.port)
    return callback
