"""How many connections the callback port holds, and which one makes room (SPEC §5, §9).

What the limiter guarantees (the "at most 64 connections" of SPEC §5):
- It aims at `limit` (64) connections. When that many are open, a newcomer makes room by
  evicting a connection that is not being answered, the one in its phase longest first:
  - idle: a keep-alive connection between requests;
  - slow headers: a request started and not finished (its headers);
  - slow body: a request whose body is still arriving;
  - silent: nothing sent since it connected.
  A newcomer whose whole request is already in (as a browser sends it) may evict any of these;
  one still sending its request only those slow or silent for `GRACE_S`, so floods that
  reconnect at once do not evict each other's fresh connections faster than a browser's.
- A connection whose request is in (its headers, and the body the handler reads) and is being
  answered is never evicted: a browser's sign-in, once its request is read, completes.
- When no connection can be evicted, a newcomer takes one of `limit` extra places; beyond
  `2 * limit` a newcomer still sending evicts the oldest fresh connection, and a newcomer is
  refused only when all `2 * limit` are being answered. So at most 128 connections are open at
  any instant, and a browser is refused only while 128 requests are being answered at once.
- Each request has `HEADER_TIMEOUT_S` (10 s) to send its first headers and `BODY_TIMEOUT_S`
  (10 s) to send its body; an idle keep-alive connection closes after 5 s.

So a flood of slow, silent or keep-alive connections churns among itself, while the browser
gets in (tests/reliability/test_slowloris.py)."""

from __future__ import annotations

import asyncio
import os
import socket
from enum import Enum

MAX_CONNECTIONS = 64
HEADER_TIMEOUT_S = 10.0
BODY_TIMEOUT_S = 10.0
# A browser on loopback sends its request (and a small body) the moment it connects; a
# connection still silent, or still sending a body, after this long is slow or idle.
GRACE_S = 1.0
PEEK_BYTES = 24 * 1024


class Phase(Enum):
    REQUEST = "request"  # waiting for a request's headers (nothing or a part of them read)
    ANSWERING = "answering"  # headers in: the request is being answered
    BODY = "body"  # the handler waits for the request's body
    IDLE = "idle"  # answered; a keep-alive connection waiting for its next request


class LimitedConnection(asyncio.Protocol):
    """Wraps aiohttp's protocol: counts the connection, follows its phase, and closes it when its
    first request's headers have not arrived within `HEADER_TIMEOUT_S`."""

    def __init__(self, inner: asyncio.Protocol, limiter: ConnectionLimiter) -> None:
        self.inner = inner
        self.limiter = limiter
        self.transport: asyncio.Transport | None = None
        self.phase = Phase.REQUEST
        self.since = 0.0  # when the phase began
        self.received = False  # any byte of the current request's headers yet
        self.ready = False  # its whole first request was in when it connected
        self._seen = b""
        self._timer: asyncio.TimerHandle | None = None
        self._started = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        loop = asyncio.get_running_loop()
        self.since = loop.time()
        # What the client has sent already, before a byte is read: a browser sends its whole
        # request at once, a slowloris client a piece of it.
        waiting = _peek(transport)
        self.received = bool(waiting)
        self.ready = _whole_request(waiting)
        if b"\r\n\r\n" in waiting:
            self.phase = Phase.ANSWERING
        if not self.limiter.admit(self):
            transport.abort()
            return
        if self.phase is Phase.REQUEST:
            self._timer = loop.call_later(HEADER_TIMEOUT_S, self._too_slow)
        self._started = True
        self.inner.connection_made(transport)

    def _too_slow(self) -> None:
        if self.phase is Phase.REQUEST and self.transport is not None:
            self.transport.abort()

    def enter(self, phase: Phase) -> None:
        """The handler's view: answering, waiting for the body, or done (idle)."""
        self.phase = phase
        self.since = asyncio.get_running_loop().time()
        if phase is Phase.IDLE:
            self.received = False
            self._seen = b""

    def data_received(self, data: bytes) -> None:
        if self.phase is Phase.IDLE:
            self.enter(Phase.REQUEST)
        if self.phase is Phase.REQUEST:
            self.received = True
            self._seen = (self._seen + data)[-PEEK_BYTES:]
            if b"\r\n\r\n" in self._seen:
                self.enter(Phase.ANSWERING)
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

    def evictable(self, now: float, *, eager: bool) -> bool:
        """Idle, slow or silent (`eager`: whatever its age): see the module's docstring."""
        if self.phase is Phase.IDLE:
            return True
        if self.phase is Phase.ANSWERING:
            return False
        aged = eager or now - self.since >= GRACE_S
        return aged or (self.phase is Phase.REQUEST and self.received)


def _whole_request(data: bytes) -> bool:
    """Whether `data` holds a whole request: its headers and the body they announce."""
    head, ended, body = data.partition(b"\r\n\r\n")
    if not ended:
        return False
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"transfer-encoding":
            return False
        if name == b"content-length":
            try:
                length = int(value.strip())
            except ValueError:
                return False
    return len(body) >= length


def _peek(transport: asyncio.Transport) -> bytes:
    """The bytes waiting on a new connection, left in place for aiohttp to read."""
    sock = transport.get_extra_info("socket")
    if sock is None:
        return b""
    try:
        with socket.socket(fileno=os.dup(sock.fileno())) as dup:
            return dup.recv(PEEK_BYTES, socket.MSG_PEEK | socket.MSG_DONTWAIT)
    except OSError:  # nothing yet (EAGAIN), or the client is gone already
        return b""


class ConnectionLimiter:
    """The connections of one callback server; see the module's docstring for the guarantee."""

    def __init__(self, limit: int = MAX_CONNECTIONS) -> None:
        self.limit = limit
        self.active: list[LimitedConnection] = []
        self._by_transport: dict[asyncio.BaseTransport, LimitedConnection] = {}

    def admit(self, conn: LimitedConnection) -> bool:
        while len(self.active) >= self.limit:
            victim = self._victim(conn)
            if victim is None:
                break
            self._evict(victim)
        if len(self.active) >= 2 * self.limit:
            fresh = [c for c in self.active if c.phase is Phase.REQUEST]
            if conn.ready or not fresh:
                return False  # a ready newcomer found nothing to evict: all are answered
            self._evict(fresh[0])
        self.active.append(conn)
        if conn.transport is not None:
            self._by_transport[conn.transport] = conn
        return True

    def _victim(self, newcomer: LimitedConnection) -> LimitedConnection | None:
        now, eager = newcomer.since, newcomer.ready
        candidates = [c for c in self.active if c.evictable(now, eager=eager)]
        return min(candidates, key=lambda c: c.since, default=None)

    def _evict(self, victim: LimitedConnection) -> None:
        self.release(victim)
        if victim.transport is not None:
            victim.transport.abort()

    def of(self, transport: asyncio.BaseTransport | None) -> LimitedConnection | None:
        """The connection a request came on (None for one not made through this limiter)."""
        return None if transport is None else self._by_transport.get(transport)

    def release(self, conn: LimitedConnection) -> None:
        if conn in self.active:
            self.active.remove(conn)
        if conn.transport is not None:
            self._by_transport.pop(conn.transport, None)
