"""The loopback callback server on 127.0.0.1:APIMD_CALLBACK_PORT (SPEC §5): `/tokens/callback`
takes the browser's redirect and finishes the sign-in. A taken port never stops the daemon: the
service records why it is not bound, and `apimd status` says so."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from apimd.daemon.callback_pages import (
    CAPTURE_PAGE,
    PAGE_HEADERS,
    failed_page,
    signed_in_page,
)
from apimd.daemon.service import MonitorService
from apimd.engine.signin import SignInDone, SignInError
from apimd.settings import Settings

log = logging.getLogger(__name__)

MAX_CONNECTIONS = 64
HEADER_TIMEOUT_S = 10.0
# A browser on loopback sends its request the moment it connects; a connection still silent
# after this long is idle, and may make room for a newcomer.
SILENT_GRACE_S = 1.0
MAX_QUERY_BYTES = 16 * 1024
MAX_POST_BYTES = 16 * 1024
_PEEK_BYTES = MAX_QUERY_BYTES + 8192

Complete = Callable[[dict[str, str]], Awaitable[SignInDone]]
COMPLETE: web.AppKey[Complete] = web.AppKey("complete")


class PortRef:
    """The bound port, known only after listening (port 0 = any free port)."""

    def __init__(self, value: int) -> None:
        self.value = value


PORT = web.AppKey("port", PortRef)


class _Limited(asyncio.Protocol):
    """Wraps aiohttp's protocol: counts the connection, and closes it when its first request's
    headers have not arrived within `HEADER_TIMEOUT_S`."""

    def __init__(self, inner: asyncio.Protocol, limiter: ConnectionLimiter) -> None:
        self.inner = inner
        self.limiter = limiter
        self.transport: asyncio.Transport | None = None
        self.headers_done = False
        self.received = False  # any byte of the request yet
        self.connected_at = 0.0
        self._seen = b""
        self._timer: asyncio.TimerHandle | None = None
        self._started = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        loop = asyncio.get_running_loop()
        self.connected_at = loop.time()
        # What the client has sent already, before a byte is read: a browser sends its whole
        # request at once, a slowloris client a piece of it.
        waiting = _peek(transport)
        self.received = bool(waiting)
        self.headers_done = b"\r\n\r\n" in waiting
        if not self.limiter.admit(self):
            transport.abort()
            return
        if not self.headers_done:
            self._timer = loop.call_later(HEADER_TIMEOUT_S, self._too_slow)
        self._started = True
        self.inner.connection_made(transport)

    def _too_slow(self) -> None:
        if not self.headers_done and self.transport is not None:
            self.transport.abort()

    def data_received(self, data: bytes) -> None:
        if not self.headers_done:
            self.received = True
            self._seen = (self._seen + data)[-(MAX_QUERY_BYTES + 8192) :]
            if b"\r\n\r\n" in self._seen:
                self.headers_done = True
                self._seen = b""
                if self._timer is not None:
                    self._timer.cancel()
        self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self.limiter.release(self)
        if self._started:
            self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()


def _peek(transport: asyncio.Transport) -> bytes:
    """The bytes waiting on a new connection, left in place for aiohttp to read."""
    sock = transport.get_extra_info("socket")
    if sock is None:
        return b""
    try:
        with socket.socket(fileno=os.dup(sock.fileno())) as dup:
            return dup.recv(_PEEK_BYTES, socket.MSG_PEEK | socket.MSG_DONTWAIT)
    except OSError:  # nothing yet (EAGAIN), or the client is gone already
        return b""


class ConnectionLimiter:
    """At most `limit` connections, and never more than `2 * limit` for an instant.

    When full, a newcomer makes room by evicting connections still sending their headers:
    those that started a request without finishing its headers (slow senders, oldest first),
    then those silent for `SILENT_GRACE_S`. A connection with nothing read from it yet is
    spared while younger than that: the server accepts connections in batches before reading
    any of them, so a flood that reconnects whenever it is dropped would otherwise evict a
    browser's fresh connection before its request, sent at once, was even read. So when there
    is no one to evict, a newcomer takes one of `limit` extra places; only beyond those is the
    oldest fresh connection evicted, and a newcomer refused when all are past their headers.

    So a slowloris flood churns among itself, while a browser gets in and, once its request
    is read, is never evicted."""

    def __init__(self, limit: int = MAX_CONNECTIONS) -> None:
        self.limit = limit
        self.active: list[_Limited] = []

    def admit(self, conn: _Limited) -> bool:
        while len(self.active) >= self.limit:
            victim = self._victim(conn)
            if victim is None:
                break
            self.active.remove(victim)
            if victim.transport is not None:
                victim.transport.abort()
        if len(self.active) >= 2 * self.limit:
            return False
        self.active.append(conn)
        return True

    def _victim(self, newcomer: _Limited) -> _Limited | None:
        waiting = [c for c in self.active if not c.headers_done]
        slow = next((c for c in waiting if c.received), None)
        if slow is not None:
            return slow
        now = newcomer.connected_at
        silent = next((c for c in waiting if now - c.connected_at >= SILENT_GRACE_S), None)
        if silent is None and len(self.active) >= 2 * self.limit:
            return next(iter(waiting), None)
        return silent

    def release(self, conn: _Limited) -> None:
        if conn in self.active:
            self.active.remove(conn)


@web.middleware
async def host_check(request: web.Request, handler: Any) -> web.StreamResponse:
    port = request.app[PORT].value
    if request.host not in (f"127.0.0.1:{port}", f"localhost:{port}"):
        return web.Response(status=421, text="misdirected request", headers=PAGE_HEADERS)
    response: web.StreamResponse = await handler(request)
    return response


async def _finish(request: web.Request, params: dict[str, str]) -> web.Response:
    try:
        done = await request.app[COMPLETE](params)
    except SignInError as exc:
        status = 400 if exc.refused else 200
        return _page(failed_page(exc.message, refused=exc.refused), status)
    if done.ok:
        return _page(signed_in_page(done.token, done.expires_at, done.message))
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
    raw = await request.content.read(MAX_POST_BYTES + 1)
    if len(raw) > MAX_POST_BYTES:
        return _page(failed_page("the answer is too long", refused=True), 400)
    try:
        data = json.loads(raw)
    except ValueError:
        return _page(failed_page("the answer was not readable", refused=True), 400)
    if not isinstance(data, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in data.items()
    ):
        return _page(failed_page("the answer was not readable", refused=True), 400)
    return await _finish(request, data)


def create_callback_app(complete: Complete, port: PortRef) -> web.Application:
    app = web.Application(middlewares=[host_check], client_max_size=MAX_POST_BYTES)
    app[COMPLETE] = complete
    app[PORT] = port
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
    port_ref = PortRef(port)
    app = create_callback_app(complete, port_ref)
    runner = web.AppRunner(
        app,
        handle_signals=False,
        access_log=None,
        keepalive_timeout=5.0,
        max_line_size=MAX_QUERY_BYTES + 1024,
    )
    await runner.setup()
    limiter = ConnectionLimiter(limit)
    aiohttp_server = runner.server
    assert aiohttp_server is not None
    try:
        server = await loop.create_server(
            lambda: _Limited(aiohttp_server(), limiter), "127.0.0.1", port, reuse_address=True
        )
    except OSError:
        await runner.cleanup()
        raise
    defer_accept = getattr(socket, "TCP_DEFER_ACCEPT", None)
    if defer_accept is not None:
        # Linux: hand over a connection once its first bytes are in, so the limiter sees what
        # each newcomer sent (a whole request, or a piece) and a silent one takes no slot.
        server.sockets[0].setsockopt(socket.IPPROTO_TCP, defer_accept, int(SILENT_GRACE_S))
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
