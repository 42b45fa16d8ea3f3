"""Per-phase timings of a send (SPEC §4; issue 18): stamped where the event happens — in the lookup
thread when `getaddrinfo` returns, in the protocol when the connection is made (after TLS) and when
bytes arrive — not when the event loop gets back to the coroutine. A pause of the loop (a full GC,
a busy neighbour) between the socket event and the coroutine is then not blamed on the API.

On Linux the response's bytes are stamped earlier still: when the kernel received them
(`SO_TIMESTAMPNS`), not when the loop got round to reading the socket, so a loop that was busy
while the answer came in (a collection, two CPU hogs) adds nothing to `wait`, `receive` or `total`.
Likewise the TCP handshake ends at the SYN plus the kernel's round trip of it (`TCP_INFO`), and
TLS's at the read of the server's last handshake bytes: `connect` is the SYN to the handshake's
end plus the ClientHello sent to the server's answer received, not the loop's turns around them.
`total` starts with the connection (its lookup, its SYN, or its reuse), not with our preparations
before it (aiohttp's, a hop's steps), and leaves out the loop's turns between the events it times
(the lookup's answer to the SYN, the TCP handshake to the ClientHello, the connection made to the
request's first bytes handed to the socket): what the monitor itself took is not the API's.

What no socket event marks is stamped by our own connector (the start of a connect), resolver (the
start of a lookup), response (the request handed over, the header block parsed) and body (handed
over). aiohttp's trace signals stand in where a connector brings its own protocol and resolver
(SOCKS proxies): a request sent with them costs a few dozen more Python calls, so other sessions
have none."""

from __future__ import annotations

import asyncio
import atexit
import functools
import platform
import socket
import struct
import sys
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from time import perf_counter, time_ns
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, cast, overload

import aiohttp
from aiohttp.abc import AbstractStreamWriter, ResolveResult
from aiohttp.client_proto import ResponseHandler
from aiohttp.connector import Connection
from aiohttp.tracing import Trace
from yarl import URL

from apimd.engine.hops import host_port
from apimd.model.result import Timings

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer, WriteableBuffer


@dataclass
class HopClock:
    """perf_counter() stamps of one hop."""

    dns_start: float | None = None
    dns_end: float | None = None
    connect_start: float | None = None  # the connector started making a connection
    syn_sent: float | None = None  # our socket's first `connect()` called: the SYN went out
    tcp_connected: float | None = None  # the TCP handshake completed (the kernel's time on Linux)
    tls_start: float | None = None  # the socket's first bytes (the ClientHello) sent
    # Connection made: the TCP handshake, or the TLS one's last bytes from the server arrived; or
    # taken from the pool.
    ready: float | None = None
    # The request's first bytes handed to the socket (our sockets): `send` starts there, not
    # with the loop's turns after `ready`.
    request_start: float | None = None
    # The last of: the request handed over (headers), its body handed to the socket. A body larger
    # than the socket's buffers is still in flight then: the rest of its transfer counts as `wait`.
    sent: float | None = None
    first_byte: float | None = None  # of the response, from the protocol
    last_byte: float | None = None
    headers_received: float | None = None  # the header block parsed (first byte: no protocol)
    done: float | None = None  # the body read whole

    def phases(self, now: float) -> tuple[float, float, float, float, float]:
        """dns, connect, send, wait, receive in ms; a phase still open when the send failed
        runs until `now`."""

        first = self.first_byte or self.headers_received
        dns = _span(self.dns_start, self.dns_end, now)
        if self.syn_sent is None:  # a socket not ours: from the connector's start, less the lookup
            connect = max(0.0, _span(self.connect_start, self.ready, now) - dns)
        elif self.tls_start is None:
            connect = _span(self.syn_sent, self.ready, now)
        else:  # TCP's handshake, then TLS's: not our turns between them
            connect = _span(self.syn_sent, self.tcp_connected, now) + _span(
                self.tls_start, self.ready, now
            )
        send = _span(self.request_start or self.ready, self.sent, now)
        wait = _span(self.sent, first, now)
        receive = _span(first, self.done, now)
        return dns, connect, send, wait, receive

    def own_ms(self) -> float:
        """The loop's turns between the events this hop times, in ms: the lookup's answer to the
        SYN, the TCP handshake to the ClientHello, the connection made to the request's first
        bytes. The monitor's own time, in no phase and not in `total`."""
        own = 0.0
        for start, end in (
            (self.dns_end, self.syn_sent),
            (self.tcp_connected, self.tls_start),
            (self.ready, self.request_start),
        ):
            if start is not None and end is not None and end > start:
                own += end - start
        return own * 1000

    def began(self) -> float | None:
        """When the hop began: its lookup, else the SYN; for a socket not ours, the connector's
        start; else when its connection was taken from the pool. None: nothing began."""
        if self.syn_sent is None:
            return self.connect_start if self.connect_start is not None else self.ready
        return self.dns_start if self.dns_start is not None else self.syn_sent

    def finish(self) -> None:
        """The body was read whole: it ended with the last byte the socket brought."""
        self.done = self.last_byte or perf_counter()

    def phase(self) -> str:
        if self.ready is None:
            return "connecting to"
        if (self.first_byte or self.headers_received) is None:
            return "waiting for a response from"
        if self.headers_received is None:  # bytes came, the header block did not end
            return "reading the headers from"
        return "reading the body from"


def _span(start: float | None, end: float | None, now: float) -> float:
    """From `start` to `end` (or `now`, when it has not ended) in ms; 0 when it never began."""
    if start is None:
        return 0.0
    return max(0.0, ((now if end is None else end) - start) * 1000)


@dataclass
class SendState:
    """The hop in flight and the clocks of every hop so far."""

    url: URL
    started: float = field(default_factory=perf_counter)
    hops: list[HopClock] = field(default_factory=list)

    def start_hop(self) -> HopClock:
        self.hops.append(HopClock())
        return self.hops[-1]

    def timings(self) -> Timings:
        """The phases summed over the hops; `total` runs from the first hop's start (its lookup,
        SYN, or connection taken from the pool: not our preparations before it, the hop's steps
        included) to the last byte of the last hop (or to now, when the send failed), less the
        loop's turns within each hop (`HopClock.own_ms`)."""
        now = perf_counter()
        end = self.hops[-1].done if self.hops and self.hops[-1].done is not None else now
        began = self.hops[0].began() if self.hops else None
        start = self.started if began is None else max(self.started, began)
        dns = connect = send = wait = receive = own = 0.0
        for hop in self.hops:
            own += hop.own_ms()
            hop_dns, hop_connect, hop_send, hop_wait, hop_receive = hop.phases(now)
            dns, connect, send = dns + hop_dns, connect + hop_connect, send + hop_send
            wait, receive = wait + hop_wait, receive + hop_receive
        phases = [round(dns, 3), round(connect, 3), round(send, 3), round(wait, 3)]
        phases.append(round(receive, 3))
        # The phases lie within `total`; rounded one by one they may sum past it by a µs or two.
        total = max(round(sum(phases), 3), round((end - start) * 1000 - own, 3))
        timings: Timings = _new_timings(
            {
                "dns": phases[0],
                "connect": phases[1],
                "send": phases[2],
                "wait": phases[3],
                "receive": phases[4],
                "total": total,
            }
        )
        return timings

    def phase(self) -> str:
        action = self.hops[-1].phase() if self.hops else "connecting to"
        return f"{action} {host_port(self.url)}"


current_hop: ContextVar[HopClock | None] = ContextVar("apimd_hop_clock", default=None)
"""The hop the current task is sending: read where aiohttp calls us back inside that task."""


class TimedResponseHandler(ResponseHandler):
    """aiohttp's protocol, stamping the hop that uses the connection when it is made (for TLS:
    when the handshake completes) and when response bytes arrive."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(loop)
        self.clock = current_hop.get()  # the hop that opens the connection
        self.sock: TimedSocket | None = None  # the socket: it stamps its sends (and reads on Linux)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        now = perf_counter()
        super().connection_made(transport)
        # A TLS transport answers with the raw socket's too: it reads the encrypted bytes.
        # asyncio hands out a TransportSocket wrapper; the reads happen on what it wraps.
        wrapper = transport.get_extra_info("socket")
        raw = getattr(wrapper, "_sock", wrapper)
        self.sock = raw if isinstance(raw, TimedSocket) else None
        clock = self.clock
        if clock is not None:
            # Else the socket said when it connected, a turn or two of the loop before the
            # transport was built.
            if transport.get_extra_info("ssl_object") is None:
                clock.ready = clock.tcp_connected or now
            else:
                self._tls_done(clock, now)

    def _tls_done(self, clock: HopClock, now: float) -> None:
        """The TLS handshake ran from its first bytes sent (a proxy's CONNECT, if any, before
        it) to its last bytes from the server received (the read that fed them): not our checks
        of them, nor the loop's turns before the ClientHello or after the answer."""
        sock = self.sock
        clock.ready = now
        if sock is None or sock.first_sent_at is None or clock.tcp_connected is None:
            return
        clock.tls_start = min(now, max(sock.first_sent_at, clock.tcp_connected))
        if isinstance(sock, StampedSocket) and sock.received_ns is not None:
            clock.ready = arrival(sock.received_ns, now, clock.tls_start)

    def set_response_params(self, **params: Any) -> None:
        # Called in the sending task before the request goes out, on a new or a reused connection
        # (and before that for a proxy's CONNECT, whose answer is not the hop's response), right
        # after the connector handed the connection over.
        super().set_response_params(**params)
        clock = self.clock = current_hop.get()
        # Sent already and not answered: aiohttp sends it again on a new connection (the server
        # closed the first). The time since the first connection is the API's, so the request's
        # first bytes are not stamped: no loop turn is taken out of `total` before them.
        resent = clock is not None and clock.sent is not None and clock.first_byte is None
        if self.sock is not None:
            self.sock.request_at = None  # the request's first send is the next one
            self.sock.awaits_request = not resent
        if clock is not None:
            clock.first_byte = clock.last_byte = None
            if clock.ready is None:  # not made for this hop: taken from the pool just now
                clock.ready = perf_counter()

    def data_received(self, data: bytes) -> None:
        clock = self.clock
        if clock is not None and data:  # aiohttp itself may pass b"" from the coroutine
            now = perf_counter()
            first = clock.first_byte is None
            if first:
                self._stamp_sent(clock)
            sock = self.sock
            if isinstance(sock, StampedSocket) and sock.received_ns is not None:
                now = arrival(sock.received_ns, now, clock.last_byte or clock.sent)
            if first:
                clock.first_byte = now
            clock.last_byte = now
        super().data_received(data)

    def _stamp_sent(self, clock: HopClock) -> None:
        """The request was sent as its last bytes were handed to the socket before the answer
        came: the coroutine's stamp (`TimedResponse`) can come a loop turn or more later, after a
        fast answer has arrived. A send before `ready` was an earlier request's on this
        connection."""
        sock = self.sock
        if sock is None or sock.sent_at is None or clock.ready is None:
            return
        if sock.sent_at >= clock.ready:
            clock.sent = sock.sent_at
            requested = sock.request_at
            if requested is not None and clock.ready <= requested <= sock.sent_at:
                clock.request_start = requested


def arrival(received_ns: int, now: float, floor: float | None) -> float:
    """The kernel's receive time (CLOCK_REALTIME, ns) on the perf_counter scale, read right after
    the socket was: `now` less how long the bytes waited in the kernel. A step of the wall clock
    in between could move it anywhere: it is kept between `floor` (the request sent, or the bytes
    before) and `now`."""
    received = now - (time_ns() - received_ns) / 1e9
    return min(now, received if floor is None else max(received, floor))


class TimedSocket(socket.socket):
    """A client socket that stamps its hop when the TCP connect completes: asyncio asks it for
    `SO_ERROR` from the writer callback, as the socket turns writable."""

    def __init__(
        self, family: int = -1, type: int = -1, proto: int = -1, fileno: int | None = None
    ) -> None:
        super().__init__(family, type, proto, fileno)
        self.clock = current_hop.get()
        self.sent_at: float | None = None  # perf_counter() as the latest send was called
        self.first_sent_at: float | None = None  # … the first
        self.request_at: float | None = None  # … the first since the protocol awaited a request
        self.awaits_request = False
        self.syn_at: float | None = None  # perf_counter() as `connect()` was called

    def send(self, data: ReadableBuffer, flags: int = 0, /) -> int:
        # asyncio's transports write with `send` (TLS: the encrypted bytes, through the same).
        # Stamped before the call: its bytes cannot leave earlier, and the call gives the GIL
        # away (a thread of ours may keep it) and wakes the server (which may preempt us).
        self.sent_at = perf_counter()
        if self.first_sent_at is None:
            self.first_sent_at = self.sent_at
        if self.awaits_request:
            self.awaits_request = False
            self.request_at = self.sent_at
        return super().send(data, flags)

    def connect(self, address: Any, /) -> None:
        self.syn_at = perf_counter()
        clock = self.clock
        if clock is not None and clock.syn_sent is None:  # the hop's first try (of its addresses)
            clock.syn_sent = self.syn_at
        super().connect(address)  # BlockingIOError while the connect is in progress
        self._connected()

    @overload
    def getsockopt(self, level: int, optname: int, /) -> int: ...
    @overload
    def getsockopt(self, level: int, optname: int, buflen: int, /) -> bytes: ...
    def getsockopt(self, level: int, optname: int, buflen: int | None = None, /) -> int | bytes:
        if buflen is not None:
            return super().getsockopt(level, optname, buflen)
        value = super().getsockopt(level, optname)
        if (level, optname, value) == (socket.SOL_SOCKET, socket.SO_ERROR, 0):
            self._connected()
        return value

    def _connected(self) -> None:
        clock = self.clock
        if clock is not None and clock.tcp_connected is None:
            now = perf_counter()
            clock.tcp_connected = now if self.syn_at is None else handshake_end(self, now)


# Linux's `struct tcp_info` (the same on every architecture): `tcpi_rtt` (µs) at 68,
# `tcpi_total_retrans` at 100.
_TCP_INFO = struct.Struct("68xI28xI")
# Timings' own validator (what its constructor runs), without the constructor's Python frame and
# keyword arguments (~4 k instructions less).
_new_timings = Timings.__pydantic_validator__.validate_python
TCP_INFO = getattr(socket, "TCP_INFO", None) if sys.platform == "linux" else None


def handshake_end(sock: TimedSocket, now: float) -> float:
    """When the TCP handshake completed, the socket found connected `now`: on Linux the SYN's
    time plus the kernel's round trip of the handshake (SYN to SYN-ACK), not a loop turn or a
    pause later. Kept between the SYN and `now`; after a retransmitted SYN the round trip is the
    last try's, not the wait: then `now`, as elsewhere."""
    syn_at = sock.syn_at
    if TCP_INFO is None or syn_at is None:
        return now
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, TCP_INFO, _TCP_INFO.size)
        rtt_us, retransmitted = cast("tuple[int, int]", _TCP_INFO.unpack(info))
    except (OSError, struct.error):
        return now
    if retransmitted or not rtt_us:
        return now
    return min(now, syn_at + rtt_us / 1e6)


# asm-generic's SO_TIMESTAMPNS (Python has no name for it) and its 64-bit `struct timespec`; other
# architectures number it differently, and there the loop's stamps stay.
SO_TIMESTAMPNS = 35
KERNEL_STAMPS = sys.platform == "linux" and platform.machine() in ("x86_64", "aarch64")
_TIMESPEC = struct.Struct("qq")
_STAMP_SPACE = socket.CMSG_SPACE(_TIMESPEC.size) if KERNEL_STAMPS else 0


class StampedSocket(TimedSocket):
    """A `TimedSocket` whose reads (asyncio's transports call `recv`, or `recv_into` under TLS)
    also keep when the kernel received the bytes: one `recvmsg` per read, a few µs of CPU more.
    TCP gives a read the stamp of its latest segment: bytes that came in pieces while nobody
    read them count as arriving with the last piece."""

    def __init__(
        self, family: int = -1, type: int = -1, proto: int = -1, fileno: int | None = None
    ) -> None:
        super().__init__(family, type, proto, fileno)
        self.received_ns: int | None = None  # CLOCK_REALTIME of the last read's bytes
        # (Not `contextlib.suppress`: three Python calls more for every connection.)
        try:  # noqa: SIM105
            self.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        except OSError:  # refused: no stamps come, the loop's are used
            pass

    def recv(self, bufsize: int, flags: int = 0, /) -> bytes:
        data, ancillary, _flags, _address = self.recvmsg(bufsize, _STAMP_SPACE, flags)
        self._keep(ancillary)
        return data

    def recv_into(self, buffer: WriteableBuffer, nbytes: int = 0, flags: int = 0, /) -> int:
        view = memoryview(buffer)
        count, ancillary, _flags, _address = self.recvmsg_into(
            [view[:nbytes] if nbytes else view], _STAMP_SPACE, flags
        )
        self._keep(ancillary)
        return count

    def _keep(self, ancillary: list[tuple[int, int, bytes]]) -> None:
        for level, kind, data in ancillary:
            if kind == SO_TIMESTAMPNS and level == socket.SOL_SOCKET:
                seconds, nanoseconds = _TIMESPEC.unpack_from(data)
                self.received_ns = seconds * 1_000_000_000 + nanoseconds


_stamps_kept_on: list[socket.socket] = []


def keep_stamps_on() -> None:
    """Keep the kernel's receive timestamps switched on for this process's life, with one socket
    that asks for them and stays open. Linux stamps received packets only while a socket wants
    it, and turns that on and off by patching its own code (`net_enable_timestamp`, a static key):
    with a connection per run, the last stamping socket closed and the next one turned stamping on
    again, each `setsockopt` then taking ~50–60 µs and each `close` ~70 µs, where 4 and 16 µs do
    otherwise (8 % and 10 % of the daemon's loop at 10,000 monitors; issue 18)."""
    if _stamps_kept_on or not KERNEL_STAMPS:
        return
    keeper = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        keeper.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    except OSError:
        keeper.close()
        return
    _stamps_kept_on.append(keeper)
    atexit.register(keeper.close)  # (closed at exit: not left to the collector to warn about)


def timed_socket(addr_info: tuple[Any, ...]) -> socket.socket:
    """aiohttp's `socket_factory`: a `TimedSocket` for the address, a `StampedSocket` on Linux."""
    family, type_, proto, _, _ = addr_info
    if not KERNEL_STAMPS:
        return TimedSocket(family, type_, proto)
    if not _stamps_kept_on:
        keep_stamps_on()
    return StampedSocket(family, type_, proto)


class TimedConnector(aiohttp.TCPConnector):
    """aiohttp's connector, making its connections with `TimedResponseHandler` and stamping the
    hop's `connect_start` as it starts making one (not for a connection taken from the pool)."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        # No public hook: the connector builds every protocol (TLS through a proxy too) from this.
        factory = functools.partial(TimedResponseHandler, loop=asyncio.get_running_loop())
        self._factory = cast("functools.partial[ResponseHandler]", factory)

    async def _create_connection(  # aiohttp's signature: its `timeout` is not ours to apply
        self,
        req: aiohttp.ClientRequest,
        traces: list[Trace],
        timeout: aiohttp.ClientTimeout,  # noqa: ASYNC109
    ) -> ResponseHandler:
        clock = current_hop.get()
        if clock is not None:
            clock.connect_start = perf_counter()
        return await super()._create_connection(req, traces, timeout)


class TimedResponse(aiohttp.ClientResponse):
    """A response that stamps its hop: `sent` as it starts (the request is handed over; a body
    `TimedBody` stamps again as it goes), `headers_received` once the header block is in."""

    async def start(self, connection: Connection) -> aiohttp.ClientResponse:
        self.starting(connection)
        clock = current_hop.get()
        if clock is not None and clock.first_byte is None:  # else the socket said when
            clock.sent = perf_counter()
        started = await super().start(connection)
        if clock is not None:
            clock.headers_received = perf_counter()
        return started

    def starting(self, connection: Connection) -> None:
        """What a subclass takes from the connection as the response starts on it (a hook, not
        another `start` around this one: a coroutine layer more, resumed at every wait)."""


class TimedBody(aiohttp.BytesPayload):
    """A request body that stamps its hop's `sent` as it is handed over, in one piece, after
    any `100 Continue` it waited for."""

    def __init__(self, value: bytes, clock: HopClock) -> None:
        super().__init__(value)
        self._clock = clock

    async def write(self, writer: AbstractStreamWriter) -> None:
        self._clock.sent = perf_counter()
        await super().write(writer)

    async def write_with_length(
        self, writer: AbstractStreamWriter, content_length: int | None
    ) -> None:
        self._clock.sent = perf_counter()
        await super().write_with_length(writer, content_length)


class TimedResolver(aiohttp.ThreadedResolver):
    """aiohttp's threaded resolver, stamping `dns_end` in the lookup thread as it returns."""

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        clock = current_hop.get()
        if clock is None:
            return await super().resolve(host, port, family)
        clock.dns_start = perf_counter()
        loop = cast(asyncio.AbstractEventLoop, _StampingLoop(self._loop, clock))
        return await aiohttp.ThreadedResolver(loop).resolve(host, port, family)


class _StampingLoop:
    """The two loop methods `ThreadedResolver` uses, the lookup stamped in its thread."""

    def __init__(self, loop: asyncio.AbstractEventLoop, clock: HopClock) -> None:
        self._loop, self._clock = loop, clock

    async def getaddrinfo(self, host: str, port: int, **options: Any) -> list[Any]:
        def lookup() -> list[Any]:
            try:
                return socket.getaddrinfo(host, port, **options)
            finally:
                self._clock.dns_end = perf_counter()

        return await self._loop.run_in_executor(None, lookup)

    async def getnameinfo(self, address: Any, flags: int = 0) -> tuple[str, str]:
        return await self._loop.getnameinfo(address, flags)


_TraceHandler = Callable[[aiohttp.ClientSession, SimpleNamespace, object], Awaitable[None]]


def _stamp(name: str, *, unless_set: bool = False) -> _TraceHandler:
    """A trace callback that stamps the hop's `name` with the current time; with `unless_set`,
    only when no socket event stamped it first."""

    async def handler(_session: aiohttp.ClientSession, ctx: SimpleNamespace, _: object) -> None:
        hop = ctx.trace_request_ctx
        if isinstance(hop, HopClock) and not (unless_set and getattr(hop, name) is not None):
            setattr(hop, name, perf_counter())

    return handler


def timing_trace_config() -> aiohttp.TraceConfig:
    """The stamps of a connector that is not a `TimedConnector` (SOCKS): its lookup, connect and
    pooled connections. `TimedResponse` and `TimedBody` stamp the rest."""
    config = aiohttp.TraceConfig()
    config.on_dns_resolvehost_start.append(_stamp("dns_start"))
    config.on_dns_resolvehost_end.append(_stamp("dns_end", unless_set=True))
    config.on_connection_create_start.append(_stamp("connect_start"))
    config.on_connection_create_end.append(_stamp("ready", unless_set=True))
    config.on_connection_reuseconn.append(_stamp("ready"))
    return config
