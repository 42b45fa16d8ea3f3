"""Where the phase timings come from (issue 18): socket events, not the moment the event loop gets
back to the sending coroutine, and on Linux the kernel's receive time of the response's bytes. A
blocking call on the loop (`PAUSE`) stands in for a full GC or a busy neighbour; the server runs in
a thread of its own, so it answers while the loop is held."""

from __future__ import annotations

import asyncio
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from yarl import URL

from apimd.engine import http, timing
from apimd.engine.hops import Hop
from apimd.engine.http import HttpExecutor, HttpRequest, HttpResponse
from apimd.engine.timing import KERNEL_STAMPS, TCP_INFO, HopClock, SendState, arrival
from tests.engine.servers import self_signed_tls

PAUSE = 0.3  # seconds the loop is held


class _Quick(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        self.do_GET()

    def do_GET(self) -> None:
        gate: Gate | None = getattr(self.server, "gate", None)
        if gate is not None:
            gate.received.set()
            gate.release.wait(10)
        body = b'{"ok": true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()
        if gate is not None:
            gate.after_response.send(b"x")

    def log_message(self, format: str, *args: object) -> None:
        pass


class Gate:
    """Holds the server's answer until released; once it is written, wakes a reader that holds
    the event loop for `PAUSE`. Both become readable in one turn of the loop, the response
    first: the pause falls between the protocol getting the bytes and the coroutine resuming."""

    def __init__(self) -> None:
        self.received = threading.Event()
        self.release = threading.Event()
        self.after_response, self._paused = socket.socketpair()

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        def pause() -> None:
            self._paused.recv(1)
            time.sleep(PAUSE)

        loop.add_reader(self._paused, pause)

    def close(self, loop: asyncio.AbstractEventLoop) -> None:
        loop.remove_reader(self._paused)
        self.after_response.close()
        self._paused.close()


class _Paced(BaseHTTPRequestHandler):
    """Holds the client's event loop for `PAUSE` as the request comes in (a callback scheduled on
    it, as a GC pause or a hog would take it), then answers in `PIECES`: (delay s, body bytes)."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self.server.loop.call_soon_threadsafe(time.sleep, PAUSE)  # type: ignore[attr-defined]
        pieces: list[tuple[float, bytes]] = self.server.pieces  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Length", str(sum(len(piece) for _, piece in pieces)))
        for index, (delay, piece) in enumerate(pieces):
            time.sleep(delay)
            if index == 0:  # the header block goes out with the first piece
                self.end_headers()
            self.wfile.write(piece)

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def threaded_server(
    gate: Gate | None = None,
    paced: list[tuple[float, bytes]] | None = None,
    tls: ssl.SSLContext | None = None,
) -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Quick if paced is None else _Paced)
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    server.gate = gate  # type: ignore[attr-defined]
    server.pieces = paced  # type: ignore[attr-defined]
    if paced is not None:
        server.loop = asyncio.get_running_loop()  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


@asynccontextmanager
async def busy_loop() -> AsyncIterator[None]:
    """The event loop held for `PAUSE` at every turn (a blocking call, as a GC pause is)."""
    stop = False

    async def hog() -> None:
        while not stop:
            time.sleep(PAUSE)
            await asyncio.sleep(0)

    task = asyncio.create_task(hog())
    await asyncio.sleep(0)
    try:
        yield
    finally:
        stop = True
        await task


@pytest.fixture
def port() -> Iterator[int]:
    with threaded_server() as bound:
        yield bound


async def test_a_pause_of_the_loop_after_the_bytes_came_is_not_response_time(
    executor: HttpExecutor,
) -> None:
    loop = asyncio.get_running_loop()
    gate = Gate()
    gate.start(loop)
    try:
        with threaded_server(gate) as bound:
            started = time.perf_counter()
            sending = asyncio.create_task(
                executor.send(HttpRequest("GET", f"http://127.0.0.1:{bound}/"))
            )
            await asyncio.to_thread(gate.received.wait, 10)
            gate.release.set()
            time.sleep(0.05)  # busy: the response and the pause are both ready at the next turn
            response = await sending
            elapsed_ms = (time.perf_counter() - started) * 1000
    finally:
        gate.close(loop)

    t = response.timings
    assert response.status == 200
    assert response.text() == '{"ok": true}'
    assert t.wait < PAUSE * 1000 * 0.66  # the bytes came before the pause
    assert elapsed_ms - t.total >= PAUSE * 1000 * 0.66  # `total` ends at the last byte
    assert t.dns + t.connect + t.send + t.wait + t.receive <= t.total + 1
    assert t.receive < 5  # one read: the last byte came with the first


async def test_dns_ends_when_the_lookup_returns_not_when_the_loop_comes_back(
    port: int, executor: HttpExecutor
) -> None:
    async with busy_loop():
        response = await executor.send(HttpRequest("GET", f"http://localhost:{port}/"))

    assert response.status == 200
    assert 0 < response.timings.dns < PAUSE * 1000 * 0.66


needs_kernel_stamps = pytest.mark.skipif(
    not KERNEL_STAMPS, reason="the kernel's receive stamps are read on Linux (x86-64, arm64) only"
)


async def test_connect_ends_when_the_socket_connects_not_when_the_loop_comes_back(
    port: int, executor: HttpExecutor
) -> None:
    """The socket connects within a turn or two of the loop; the coroutine learns of it (and
    builds the transport) two turns later."""
    async with busy_loop():
        response = await executor.send(HttpRequest("GET", f"http://127.0.0.1:{port}/"))

    assert response.status == 200
    assert 0 < response.timings.connect < PAUSE * 1000 * 2.5


needs_tcp_info = pytest.mark.skipif(
    TCP_INFO is None, reason="the handshake's round trip is read from Linux's TCP_INFO only"
)


@needs_kernel_stamps
@needs_tcp_info
@pytest.mark.parametrize("scheme", ["http", "https"])
async def test_a_loop_held_at_every_turn_is_not_connect_or_response_time(
    executor: HttpExecutor, scheme: str, tmp_path: Path
) -> None:
    """The loop is held at every turn (as by two CPU hogs or a collection): the TCP handshake
    ends at the SYN plus the kernel's round trip, the TLS one runs from the ClientHello sent to
    the server's answer received, and the held turns around them (the loop finding the socket
    connected, the transport built, the answer read and checked, the request written) are the
    monitor's, not the server's: `connect` holds none of them, and `total` is the phases alone."""
    tls = self_signed_tls(tmp_path) if scheme == "https" else None
    with threaded_server(tls=tls) as bound:
        request = HttpRequest("GET", f"{scheme}://127.0.0.1:{bound}/", verify_tls=False)
        started = time.perf_counter()
        async with busy_loop():
            response = await executor.send(request)
        elapsed_ms = (time.perf_counter() - started) * 1000

    t = response.timings
    assert response.status == 200
    assert elapsed_ms >= PAUSE * 1000 * 2  # turns were held along the way
    assert 0 < t.connect < PAUSE * 1000 * 0.66, t
    assert t.send < PAUSE * 1000 * 0.66, t
    assert t.total < PAUSE * 1000 * 0.66, t
    assert abs(t.dns + t.connect + t.send + t.wait + t.receive - t.total) <= 0.01, t


def answer_ok(connection: socket.socket) -> None:
    """`{"ok": true}`, as a raw HTTP/1.1 answer."""
    body = b'{"ok": true}'
    connection.sendall(f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)


async def get_from(
    executor: HttpExecutor, listener: socket.socket, serve: Callable[[], None]
) -> HttpResponse:
    """`GET /` from `listener`'s port, `serve` answering on a thread of its own; the listener is
    closed after."""
    port = listener.getsockname()[1]
    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        return await executor.send(HttpRequest("GET", f"http://127.0.0.1:{port}/"))
    finally:
        thread.join(10)
        listener.close()


@needs_tcp_info
async def test_a_retransmitted_syn_is_connect_time(executor: HttpExecutor) -> None:
    """The server's accept queue is full as the SYN comes: the kernel drops it and the client
    sends it again a second later. The handshake's round trip is then the last try's: `connect`
    is the loop's stamp, the second included, never the round trip alone."""
    listener = socket.create_server(("127.0.0.1", 0), backlog=0)
    port = listener.getsockname()[1]
    fillers = [socket.socket() for _ in range(3)]
    for filler in fillers:
        filler.setblocking(False)
        filler.connect_ex(("127.0.0.1", port))

    def serve() -> None:
        time.sleep(0.3)  # the client's SYN was dropped meanwhile
        for filler in fillers:
            filler.close()
        while True:
            connection, _ = listener.accept()
            with connection:
                if connection.recv(65536):
                    answer_ok(connection)
                    return

    response = await get_from(executor, listener, serve)

    t = response.timings
    assert response.status == 200
    assert t.connect >= 900, t
    assert t.dns + t.connect + t.send + t.wait + t.receive <= t.total + 1


async def test_a_request_sent_again_after_the_server_dropped_it_counts_the_first_try(
    executor: HttpExecutor,
) -> None:
    """The server reads the GET, holds it 200 ms and closes the connection without an answer:
    aiohttp sends an idempotent request again on a new connection, answered 100 ms later. The
    call took both: the first try's time is the API's, not the loop's turn between the
    connection made and the request's first bytes (it was subtracted from `total`: 100 ms)."""
    listener = socket.create_server(("127.0.0.1", 0))
    requests: list[bytes] = []

    def serve() -> None:
        for hold_s in (0.2, 0.1):
            connection, _ = listener.accept()
            with connection:
                requests.append(connection.recv(65536))
                time.sleep(hold_s)
                if len(requests) == 2:
                    answer_ok(connection)

    response = await get_from(executor, listener, serve)

    t = response.timings
    assert response.status == 200
    assert len(requests) == 2 and all(r.startswith(b"GET / ") for r in requests), requests
    assert t.total >= 300, t
    assert min(t.dns, t.connect, t.send, t.wait, t.receive) >= 0, t
    assert t.dns + t.connect + t.send + t.wait + t.receive <= t.total + 0.01, t


@pytest.mark.parametrize("scheme", ["http", "https"])
async def test_our_preparations_before_the_connection_are_not_response_time(
    executor: HttpExecutor, scheme: str, tmp_path: Path
) -> None:
    """A hop's steps (a DPoP proof, a signature) hold the loop before the connection starts:
    `total` runs from the connection's start (the SYN, on our sockets) to the last byte."""

    def slow_step(_hop: Hop) -> None:
        time.sleep(PAUSE)

    tls = self_signed_tls(tmp_path) if scheme == "https" else None
    with threaded_server(tls=tls) as bound:
        request = HttpRequest(
            "GET", f"{scheme}://127.0.0.1:{bound}/", verify_tls=False, hop_steps=(slow_step,)
        )
        started = time.perf_counter()
        response = await executor.send(request)
        elapsed_ms = (time.perf_counter() - started) * 1000

    t = response.timings
    assert response.status == 200
    assert elapsed_ms >= PAUSE * 1000
    assert t.total < PAUSE * 1000 * 0.66, t
    assert t.dns + t.connect + t.send + t.wait + t.receive <= t.total + 1


@needs_kernel_stamps
@pytest.mark.parametrize("scheme", ["http", "https"])
async def test_a_loop_held_while_the_answer_comes_in_is_not_response_time(
    executor: HttpExecutor, scheme: str, tmp_path: Path
) -> None:
    """The loop is held from just after the request went out; the answer arrives 20 ms later,
    while it is held: the kernel's receive stamp, not the read, ends `wait` and `total` (over
    TLS too: its transport reads the encrypted bytes from the same socket)."""
    tls = self_signed_tls(tmp_path) if scheme == "https" else None
    started = time.perf_counter()
    with threaded_server(paced=[(0.02, b'{"ok": true}')], tls=tls) as bound:
        request = HttpRequest("GET", f"{scheme}://127.0.0.1:{bound}/", verify_tls=False)
        response = await executor.send(request)
    elapsed_ms = (time.perf_counter() - started) * 1000

    t = response.timings
    assert response.text() == '{"ok": true}'
    assert elapsed_ms >= PAUSE * 1000
    assert t.total < 100, t
    assert 15 <= t.wait < 100, t  # the server's 20 ms
    assert t.dns + t.connect + t.send + t.wait + t.receive <= t.total + 1


@needs_kernel_stamps
async def test_a_body_arriving_over_time_is_received_at_the_servers_pace(
    executor: HttpExecutor,
) -> None:
    """The header block comes at once, the body's rest 400 and 800 ms later; the loop is held
    for the first `PAUSE`: `receive` is still the server's 800 ms, `wait` still next to none.
    (A read's stamp is its latest bytes': pieces that all came while the loop was held would
    count as arriving with the last of them.)"""
    paced = [(0.0, b"a" * 100), (0.4, b"b" * 100), (0.4, b"c" * 100)]
    with threaded_server(paced=paced) as bound:
        response = await executor.send(HttpRequest("GET", f"http://127.0.0.1:{bound}/"))

    t = response.timings
    assert response.body == b"a" * 100 + b"b" * 100 + b"c" * 100
    assert t.wait < 50, t
    assert 780 <= t.receive < 950, t
    assert t.dns + t.connect + t.send + t.wait + t.receive <= t.total + 1


def test_total_is_the_phases_less_none_of_them_and_never_less_than_their_sum() -> None:
    """The loop's turns between timed events are left out of `total`; what is left is the
    phases, and rounded one by one (1.6 µs each: 0.002 ms) they never sum past `total`."""
    step = 1.6e-6
    syn = 10.0 + step + 0.3  # the loop held after the lookup: ours
    request = syn + step + 0.3  # and after the connection was made: ours too
    hop = HopClock(dns_start=10.0, dns_end=10.0 + step, syn_sent=syn, tcp_connected=syn + step)
    hop.ready, hop.request_start, hop.sent = syn + step, request, request + step
    hop.first_byte = hop.last_byte = request + 2 * step
    hop.done = request + 3 * step
    state = SendState(URL("http://127.0.0.1/"), started=9.0, hops=[hop])
    t = state.timings()
    assert (t.dns, t.connect, t.send, t.wait, t.receive) == (0.002,) * 5
    assert t.total == 0.01  # the exact 0.008 ms, rounded phase by phase


def test_a_step_of_the_wall_clock_keeps_the_kernel_stamp_between_the_send_and_the_read() -> None:
    now, sent = time.perf_counter(), time.perf_counter() - 0.05
    waited_10_ms = time.time_ns() - 10_000_000
    assert now - 0.5 < arrival(waited_10_ms, now, sent) <= now - 0.0099  # less any preemption
    # Stamped before a step forward (it looks an hour old), or after a step back (in the future).
    assert arrival(time.time_ns() - 3600 * 10**9, now, sent) == sent
    assert arrival(time.time_ns() + 3600 * 10**9, now, sent) == now
    assert arrival(time.time_ns() + 3600 * 10**9, now, None) == now


@pytest.fixture
def hops(monkeypatch: pytest.MonkeyPatch) -> list[HopClock]:
    """The clock of every hop sent, as the executor made it."""
    seen: list[HopClock] = []
    start_hop = SendState.start_hop

    def recorded(state: SendState) -> HopClock:
        seen.append(start_hop(state))
        return seen[-1]

    monkeypatch.setattr(SendState, "start_hop", recorded)
    return seen


@pytest.mark.parametrize("traced", [False, True], ids=["timed connector", "trace signals"])
async def test_every_hop_is_stamped_in_order_with_or_without_trace_signals(
    port: int, hops: list[HopClock], traced: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Our connector, response and body stamp what aiohttp's trace signals stamp for a connector
    without them (SOCKS): a new connection, a pooled one, a request with a body."""
    if traced:

        def plain(proxy: str | None, ssl_setting: Any, *, fresh: bool) -> aiohttp.BaseConnector:
            return aiohttp.TCPConnector(ssl=ssl_setting, force_close=fresh)

        monkeypatch.setattr(http, "_connector", plain)
    executor = HttpExecutor()
    try:
        base = f"http://127.0.0.1:{port}/"
        for request in (
            HttpRequest("GET", base),
            HttpRequest("POST", base, body=b"x" * 100),
            HttpRequest("GET", base, keepalive=True),
            HttpRequest("POST", base, keepalive=True, body=b"y"),  # from the pool
        ):
            response = await executor.send(request)
            assert response.status == 200
            assert ("Host", f"127.0.0.1:{port}") in response.sent_headers
    finally:
        await executor.close()

    assert isinstance(executor._trace_config, aiohttp.TraceConfig)
    for index, hop in enumerate(hops):
        pooled = index == 3
        assert (hop.connect_start is None) == pooled
        assert hop.headers_received is not None
        # Without a protocol of ours the headers stand in for the first byte.
        assert (hop.first_byte is None) == traced
        first = hop.first_byte or hop.headers_received
        stamps = [hop.connect_start, hop.ready, hop.sent, first, hop.done][pooled:]
        if not (traced or pooled):  # our socket's: the SYN and the handshake's end between
            stamps[1:1] = [hop.syn_sent, hop.tcp_connected]
        else:
            assert hop.syn_sent is hop.tcp_connected is None, (index, hop)
        assert all(stamp is not None for stamp in stamps), (index, hop)
        assert stamps == sorted(stamps), (index, hop)  # type: ignore[type-var]


async def test_a_fast_answer_is_waited_for_not_sent(executor: HttpExecutor) -> None:
    """The server answers at once and holds the client's loop as the request comes in: the
    request was sent when its bytes went to the socket, not when the coroutine got back to it,
    so the answer's time is `wait`, and the held loop is in neither `send` nor `wait`."""
    with threaded_server(paced=[(0.0, b'{"ok": true}')]) as bound:
        response = await executor.send(HttpRequest("GET", f"http://127.0.0.1:{bound}/"))

    t = response.timings
    assert response.text() == '{"ok": true}'
    assert t.send < 5, t
    if KERNEL_STAMPS:  # elsewhere the bytes are stamped when the held loop reads them
        assert t.wait < 50 and t.total < 100, t
    assert t.dns + t.connect + t.send + t.wait + t.receive <= t.total + 1


SUBPROCESS_SERVER = """
import http.server, sys
class Quick(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")
    def log_message(self, *args):
        pass
server = http.server.HTTPServer(("127.0.0.1", 0), Quick)
print(server.server_address[1], flush=True)
server.serve_forever()
"""


@contextmanager
def gil_held_by_a_thread(hold_s: float) -> Iterator[None]:
    """A busy thread of ours (the daemon has its store's) that keeps the GIL for `hold_s` each
    time the loop's thread gives it away, as a socket call does."""
    stop = threading.Event()

    def spin() -> None:
        while not stop.is_set():
            sum(range(1000))

    interval = sys.getswitchinterval()
    thread = threading.Thread(target=spin, daemon=True)
    sys.setswitchinterval(hold_s)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        sys.setswitchinterval(interval)


@needs_kernel_stamps
async def test_a_wait_for_the_gil_after_the_request_went_out_is_not_the_apis_wait(
    executor: HttpExecutor,
) -> None:
    """A request's send gives the GIL away, and a busy thread often keeps it 50 ms: the server (a
    process of its own) answers meanwhile. Whether a given send loses the GIL is a race, so 20
    are sent; the request was sent as the call began, so every answer's time is `wait`, never
    lost between a late `sent` and the kernel's receive stamp (a third of them were, stamped
    after the call)."""
    server = subprocess.Popen(
        [sys.executable, "-c", SUBPROCESS_SERVER], stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None
        url = f"http://127.0.0.1:{int(server.stdout.readline())}/"
        with gil_held_by_a_thread(0.05):
            responses = [await executor.send(HttpRequest("GET", url)) for _ in range(20)]
    finally:
        server.kill()
        server.communicate()

    for response in responses:
        t = response.timings
        assert response.body == b"ok"
        assert t.wait >= 0.01, t
        assert t.dns + t.connect + t.send + t.wait + t.receive <= t.total + 1


@needs_kernel_stamps
async def test_receive_stamps_stay_switched_on_between_connections(
    port: int, executor: HttpExecutor
) -> None:
    """Linux stamps received packets only while some socket asks for it, and switching that on
    and off patches its code: a connection per run made every `setsockopt` and `close` of a
    stamping socket ~5× slower. Once the engine made a connection, one socket keeps asking."""
    response = await executor.send(HttpRequest("GET", f"http://127.0.0.1:{port}/"))
    assert response.status == 200
    keepers = timing._stamps_kept_on
    assert len(keepers) == 1
    assert keepers[0].getsockopt(socket.SOL_SOCKET, timing.SO_TIMESTAMPNS) == 1
    await executor.send(HttpRequest("GET", f"http://127.0.0.1:{port}/"))
    assert timing._stamps_kept_on == keepers  # the same one, kept open
    assert keepers[0].fileno() >= 0
