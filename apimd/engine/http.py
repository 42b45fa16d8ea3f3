"""The one HTTP executor: aiohttp with per-phase timings, redirect policy, caps (SPEC §2, §4).

Every send opens a fresh connection and resolves DNS afresh, so `dns` and `connect` show what a new
client sees, unless the request asks for `keepalive`. Redirects are followed here, hop by hop, so
the rules for methods, bodies and credentials are ours. Bodies are decompressed here too, a bounded
piece at a time, so the 10 MiB cap counts decoded bytes and a compression bomb never fills memory.

Kept deliberately simple:
- no cookies are stored, not even between the hops of one send;
- credentials in the URL (`https://user:pass@host/`) are refused (a `basic` auth sends them);
  credentials in a redirect's Location are stripped;
- on a redirect to another origin (https → http included) the request's `sensitive_headers` and
  `sensitive_params` are dropped (names matched case-insensitively), and so are `Authorization`,
  `Proxy-Authorization`, `Cookie` and `Host` whoever set them; once dropped they stay dropped for
  the later hops;
- 301/302 turn a POST into a body-less GET, 303 turns anything but HEAD into one; 307/308 resend;
- proxies named in the environment are ignored: requests go only where they are addressed;
- a redirect whose Location is missing, unparsable or not http(s) is not followed: the 3xx is
  returned as is;
- `gzip` and `deflate` (also stacked, `gzip, deflate`) are decoded; any other coding (`br`, `zstd`)
  leaves the body as received, and `Accept-Encoding` only advertises what is decoded.
"""

from __future__ import annotations

import asyncio
import codecs
import email.message
import os
import socket
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from time import perf_counter
from types import SimpleNamespace
from typing import Any

import aiohttp
from aiohttp.connector import Connection
from multidict import CIMultiDict
from yarl import URL

from apimd import __version__
from apimd.engine.cookies import remember, with_jar_cookies
from apimd.engine.digest import retry_header as digest_retry_header
from apimd.engine.errors import SetupError
from apimd.engine.proxies import is_socks, socks_connector, through_proxy
from apimd.engine.tls import TlsConfig
from apimd.model.outcome import ResultCode
from apimd.model.result import Timings

MAX_BODY_BYTES = 10 * 1024 * 1024
MAX_REDIRECTS = 10

_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
# Dropped on a hop to another origin whatever the caller marked: a credential the user typed into
# a call's headers must not reach a third party either (nor, e.g., a pre-signed storage URL that
# rejects requests carrying one). `host` names the old origin.
_CROSS_ORIGIN_DROPPED_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "cookie", "host"}
)
_BODY_HEADERS = frozenset(
    {
        "content-type",
        "content-length",
        "content-encoding",
        "content-language",
        "content-location",
        "transfer-encoding",
    }
)
_DEFAULT_HEADERS = {"User-Agent": f"apimd/{__version__}", "Accept-Encoding": "gzip, deflate"}
# Largest piece one decompression step may produce: what bounds memory for a compression bomb.
_DECODE_STEP = 256 * 1024
_GZIP_MAGIC = b"\x1f\x8b"
_MIB = 1024 * 1024


@dataclass
class Hop:
    """One hop of a request as it is about to be sent; `HopStep`s may change its headers."""

    method: str
    url: str
    headers: list[tuple[str, str]]
    body: bytes | None

    def set_header(self, name: str, value: str) -> None:
        """Replace any header of the same name (case-insensitive), else append."""
        self.headers = [(k, v) for k, v in self.headers if k.lower() != name.lower()]
        self.headers.append((name, value))


HopStep = Callable[[Hop], None]


@dataclass
class HttpRequest:
    """One request to send. `sensitive_headers`/`sensitive_params` name the headers and query
    params that came from a token or an auth: they are dropped when a redirect goes to another
    origin or from https to http."""

    method: str
    url: str
    headers: list[tuple[str, str]] = field(default_factory=list)
    params: list[tuple[str, str]] = field(default_factory=list)
    body: bytes | None = None
    timeout: float = 30.0
    follow_redirects: bool = True
    verify_tls: bool = True
    keepalive: bool = False
    sensitive_headers: frozenset[str] = frozenset()
    sensitive_params: frozenset[str] = frozenset()
    tls: TlsConfig | None = None
    """Client certificate, CA bundle and verification; None: just `verify_tls`."""
    hop_steps: tuple[HopStep, ...] = ()
    """Steps run afresh for every hop, in order, e.g. a DPoP proof (SPEC §10's last steps). Not
    run once credentials were dropped by a redirect to another origin."""
    cookie_jar: aiohttp.abc.AbstractCookieJar | None = None  # the run's jar (SPEC §2 workflows)
    proxy: str | None = None  # http://, https://, socks5://, socks5h:// URL, or None: direct
    digest: tuple[str, str] | None = None  # username, password: answer a Digest challenge


@dataclass
class HttpResponse:
    """What came back from the last hop, with timings summed over every hop."""

    status: int
    reason: str
    headers: CIMultiDict[str]
    body: bytes
    size: int
    final_url: str
    sent_headers: list[tuple[str, str]]
    redirects: list[str] = field(default_factory=list)
    too_many_redirects: bool = False
    timings: Timings = field(default_factory=Timings)
    cookies: dict[str, str] = field(default_factory=dict)  # set by any hop of this call
    peer_certificate: bytes | None = None  # DER of the server's leaf certificate (https)

    def text(self) -> str:
        """The body decoded with the response charset (default UTF-8), invalid bytes replaced."""
        return decode_body(self.body, self.headers.get("Content-Type"))


class HttpFailure(Exception):
    """The request produced no usable response: CONNECTION_ERROR, TIMEOUT, or CONTENT_ERROR
    ("body too large", undecodable body); SETUP_ERROR when the request itself cannot be sent
    (invalid URL, credentials in the URL, a header aiohttp refuses). Carries the timings measured
    so far."""

    def __init__(self, code: ResultCode, message: str, timings: Timings | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.timings = timings or Timings()


class HttpExecutor:
    """Sends `HttpRequest`s. Fresh connection and fresh DNS per request unless `keepalive`."""

    def __init__(self, *, max_body_bytes: int = MAX_BODY_BYTES) -> None:
        self._max_body_bytes = max_body_bytes
        self._trace_config = _timing_trace_config()
        # One pooled session per TLS setting, for keep-alive requests only: a connection made
        # with one client certificate (or proxy) is never reused under another.
        self._pooled: dict[tuple[TlsConfig, str | None], aiohttp.ClientSession] = {}

    async def send(self, request: HttpRequest) -> HttpResponse:
        """Send, following up to 10 redirects when allowed; raise `HttpFailure` on no response."""
        state = _SendState(_initial_url(request))
        async with self._session(request) as session:
            deadline = asyncio.timeout(request.timeout)
            try:
                async with deadline:
                    return await self._follow(session, request, state)
            except HttpFailure as exc:
                raise HttpFailure(exc.code, exc.message, state.timings()) from exc
            except (TimeoutError, aiohttp.ClientError, OSError, ValueError) as exc:
                code, message = _classify_failure(exc, request, state, deadline.expired())
                raise HttpFailure(code, message, state.timings()) from exc

    async def close(self) -> None:
        """Close pooled keep-alive connections."""
        sessions = list(self._pooled.values())
        self._pooled.clear()
        for session in sessions:
            await session.close()

    @asynccontextmanager
    async def _session(self, request: HttpRequest) -> AsyncIterator[aiohttp.ClientSession]:
        tls = request.tls or TlsConfig(verify=request.verify_tls)
        try:
            ssl_setting = tls.ssl
        except SetupError as exc:
            raise HttpFailure(ResultCode.SETUP_ERROR, str(exc)) from None
        if request.keepalive:
            key = (tls, request.proxy)
            session = self._pooled.get(key)
            if session is None or session.closed:
                session = self._new_session(_connector(request, ssl_setting, force_close=False))
                self._pooled[key] = session
            yield session
            return
        async with self._new_session(_connector(request, ssl_setting, force_close=True)) as session:
            yield session

    def _new_session(self, connector: aiohttp.BaseConnector) -> aiohttp.ClientSession:
        return aiohttp.ClientSession(
            connector=connector,
            headers=_DEFAULT_HEADERS,
            trace_configs=[self._trace_config],
            response_class=_ResponseWithCertificate,
            trust_env=False,
            auto_decompress=False,
            cookie_jar=aiohttp.DummyCookieJar(),
            timeout=aiohttp.ClientTimeout(total=None),  # send() enforces the request's own
        )

    async def _follow(
        self, session: aiohttp.ClientSession, request: HttpRequest, state: _SendState
    ) -> HttpResponse:
        method = request.method.upper()
        body = request.body
        headers = list(request.headers)
        dropped_headers = _CROSS_ORIGIN_DROPPED_HEADERS | {
            name.lower() for name in request.sensitive_headers
        }
        dropped_params = frozenset(name.lower() for name in request.sensitive_params)
        credentials_dropped = False
        redirects: list[str] = []
        cookies: dict[str, str] = {}
        digest_answered = False
        while True:
            hop = state.start_hop()
            sent = headers
            if request.hop_steps and not credentials_dropped:
                hop_request = Hop(method, str(state.url), list(headers), body)
                for step in request.hop_steps:
                    step(hop_request)
                sent = hop_request.headers
            hop_headers, via = through_proxy(
                request.proxy, state.url, with_jar_cookies(sent, request.cookie_jar, state.url)
            )
            async with session.request(
                method,
                state.url,
                headers=CIMultiDict(hop_headers),
                data=body,
                allow_redirects=False,
                trace_request_ctx=hop,
                **via,
            ) as response:
                hop.headers_received = hop.headers_received or perf_counter()
                content = await self._read_body(response)
                hop.body_read = perf_counter()
                remember(request.cookie_jar, response.cookies, state.url, cookies)
            # SPEC §10: the Digest answer is a hop of its own, so its round trip is in the timings.
            answer = (
                None
                if digest_answered
                else digest_retry_header(
                    response.status,
                    response.headers.getall("WWW-Authenticate", []),
                    request.digest,
                    method,
                    state.url,
                )
            )
            if answer is not None:
                digest_answered = True
                headers = [(k, v) for k, v in headers if k.lower() != "authorization"]
                headers.append(("Authorization", answer))
                continue
            target = _redirect_target(response, state.url) if request.follow_redirects else None
            if target is None or len(redirects) == MAX_REDIRECTS:
                return HttpResponse(
                    status=response.status,
                    reason=response.reason or "",
                    headers=CIMultiDict(response.headers),
                    body=content,
                    size=len(content),
                    final_url=str(state.url),
                    sent_headers=hop.sent_headers or sent,
                    redirects=redirects,
                    too_many_redirects=target is not None,
                    timings=state.timings(),
                    cookies=cookies,
                    peer_certificate=getattr(response, "peer_certificate", None),
                )
            # Another origin covers https → http too: the scheme is part of the origin.
            if _origin(target) != _origin(state.url):
                credentials_dropped = True
            if credentials_dropped:
                headers = [(k, v) for k, v in headers if k.lower() not in dropped_headers]
                target = _without_params(target, dropped_params)
            if (response.status == 303 and method != "HEAD") or (
                response.status in (301, 302) and method == "POST"
            ):
                method, body = "GET", None
                headers = [(k, v) for k, v in headers if k.lower() not in _BODY_HEADERS]
            redirects.append(str(target))
            state.url = target
            digest_answered = False

    async def _read_body(self, response: aiohttp.ClientResponse) -> bytes:
        """The decoded body, read a chunk at a time; beyond the cap the connection is dropped."""
        cap = self._max_body_bytes
        decoder = _BodyDecoder.for_content_encoding(response.headers.get("Content-Encoding"))
        if not decoder.decodes and (response.content_length or 0) > cap:
            response.close()
            raise _body_too_large(cap)
        body = bytearray()
        received = 0
        try:
            async for raw in response.content.iter_any():
                received += len(raw)
                if received > cap:
                    raise _body_too_large(cap)
                for piece in decoder.feed(raw):
                    if len(body) + len(piece) > cap:
                        raise _body_too_large(cap)
                    body += piece
        except HttpFailure:
            response.close()
            raise
        return bytes(body)


def _connector(
    request: HttpRequest, ssl_setting: Any, *, force_close: bool
) -> aiohttp.BaseConnector:
    """Fresh connections and DNS unless keep-alive; through SOCKS when the proxy says so."""
    if request.proxy is not None and is_socks(request.proxy):
        return socks_connector(request.proxy, ssl=ssl_setting, force_close=force_close)
    if force_close:
        return aiohttp.TCPConnector(force_close=True, use_dns_cache=False, ssl=ssl_setting)
    return aiohttp.TCPConnector(ssl=ssl_setting)


class _ResponseWithCertificate(aiohttp.ClientResponse):
    """Keeps the server's leaf certificate (DER) of the connection the response came on, new or
    reused from the pool: taken at `start`, since a small response releases (and, without
    keep-alive, closes) its connection before the caller sees it."""

    peer_certificate: bytes | None = None

    async def start(self, connection: Connection) -> aiohttp.ClientResponse:
        transport = connection.transport
        ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
        if ssl_object is not None:
            self.peer_certificate = ssl_object.getpeercert(binary_form=True)
        return await super().start(connection)


def _initial_url(request: HttpRequest) -> URL:
    try:
        url = URL(request.url)
    except (TypeError, ValueError) as exc:
        raise HttpFailure(ResultCode.SETUP_ERROR, f"invalid URL {request.url!r}: {exc}") from exc
    if url.scheme not in ("http", "https") or not url.host:
        message = f"invalid URL {request.url!r}: only absolute http:// or https:// URLs are sent"
        raise HttpFailure(ResultCode.SETUP_ERROR, message)
    if url.user is not None or url.password is not None:
        # Not echoed: the URL holds a password.
        message = "the URL carries credentials (user:password@); use a `basic` auth instead"
        raise HttpFailure(ResultCode.SETUP_ERROR, message)
    return wire_url(url, request.params)


def wire_url(url: URL, params: list[tuple[str, str]]) -> URL:
    """The URL as it goes on the wire: `params` appended to its query, no fragment."""
    if params:
        url = url.extend_query(params)
    return url.with_fragment(None)


def _redirect_target(response: aiohttp.ClientResponse, current: URL) -> URL | None:
    """Where a followable redirect points, or None when `response` is not one."""
    if response.status not in _REDIRECT_STATUSES:
        return None
    location = response.headers.get("Location")
    if not location:
        return None
    try:
        target = current.join(URL(location, encoded=False)).with_fragment(None)
    except (TypeError, ValueError):
        return None
    if target.scheme not in ("http", "https") or not target.host:
        return None
    if target.user is not None or target.password is not None:
        target = target.with_user(None)
    return target


def _origin(url: URL) -> tuple[str, str, int | None]:
    return (url.scheme.lower(), (url.host or "").lower(), url.port)


def _without_params(url: URL, names: frozenset[str]) -> URL:
    if not any(key.lower() in names for key in url.query):
        return url  # untouched, so its encoding is too
    return url.with_query([(k, v) for k, v in url.query.items() if k.lower() not in names])


def decode_body(body: bytes, content_type: str | None) -> str:
    """`body` decoded with the charset of `content_type` (default UTF-8), invalid bytes replaced."""
    try:
        return body.decode(_charset(content_type), errors="replace")
    except LookupError:  # a codec that exists but is not a text encoding, e.g. "rot13"
        return body.decode("utf-8", errors="replace")


def _charset(content_type: str | None) -> str:
    if content_type:
        message = email.message.Message()
        message["Content-Type"] = content_type
        charset = message.get_content_charset()
        if charset:
            try:
                return codecs.lookup(charset).name
            except LookupError:
                pass
    return "utf-8"


def _body_too_large(cap: int) -> HttpFailure:
    size = f"{cap // _MIB} MiB" if cap % _MIB == 0 else f"{cap} bytes"
    return HttpFailure(ResultCode.CONTENT_ERROR, f"body too large (over {size})")


# --- timings -----------------------------------------------------------------------------------


@dataclass
class _HopClock:
    """perf_counter() stamps of one hop, set by the trace callbacks below."""

    dns_start: float | None = None
    dns_end: float | None = None
    connect_start: float | None = None
    ready: float | None = None  # connection created, or taken from the pool
    # The last of: headers, a body chunk handed to the socket. A body larger than the socket's
    # buffers is still in flight then: the rest of its transfer counts as `wait`.
    sent: float | None = None
    headers_received: float | None = None
    body_read: float | None = None
    sent_headers: list[tuple[str, str]] = field(default_factory=list)

    def phases(self, now: float) -> tuple[float, float, float, float, float]:
        """dns, connect, send, wait, receive in ms; a phase still open when the send failed
        runs until `now`."""

        def span(start: float | None, end: float | None) -> float:
            if start is None:
                return 0.0
            return max(0.0, ((now if end is None else end) - start) * 1000)

        dns = span(self.dns_start, self.dns_end)
        connect = max(0.0, span(self.connect_start, self.ready) - dns)
        send = span(self.ready, self.sent)
        wait = span(self.sent, self.headers_received)
        receive = span(self.headers_received, self.body_read)
        return dns, connect, send, wait, receive

    def phase(self) -> str:
        if self.ready is None:
            return "connecting to"
        if self.headers_received is None:
            return "waiting for a response from"
        return "reading the body from"


@dataclass
class _SendState:
    """The hop in flight and the clocks of every hop so far."""

    url: URL
    started: float = field(default_factory=perf_counter)
    hops: list[_HopClock] = field(default_factory=list)

    def start_hop(self) -> _HopClock:
        self.hops.append(_HopClock())
        return self.hops[-1]

    def timings(self) -> Timings:
        now = perf_counter()
        sums = [sum(values) for values in zip(*(hop.phases(now) for hop in self.hops), strict=True)]
        dns, connect, send, wait, receive = sums or [0.0] * 5
        return Timings(
            dns=round(dns, 3),
            connect=round(connect, 3),
            send=round(send, 3),
            wait=round(wait, 3),
            receive=round(receive, 3),
            total=round((now - self.started) * 1000, 3),
        )

    def phase(self) -> str:
        action = self.hops[-1].phase() if self.hops else "connecting to"
        return f"{action} {_host_port(self.url)}"


_TraceHandler = Callable[[aiohttp.ClientSession, SimpleNamespace, object], Awaitable[None]]


def _stamp(*names: str) -> _TraceHandler:
    """A trace callback that stamps the hop's `names` with the current time."""

    async def handler(_session: aiohttp.ClientSession, ctx: SimpleNamespace, _: object) -> None:
        hop = ctx.trace_request_ctx
        if isinstance(hop, _HopClock):
            now = perf_counter()
            for name in names:
                setattr(hop, name, now)

    return handler


async def _on_headers_sent(
    _session: aiohttp.ClientSession,
    ctx: SimpleNamespace,
    params: aiohttp.TraceRequestHeadersSentParams,
) -> None:
    hop = ctx.trace_request_ctx
    if isinstance(hop, _HopClock):
        hop.sent = perf_counter()
        hop.sent_headers = list(params.headers.items())


def _timing_trace_config() -> aiohttp.TraceConfig:
    config = aiohttp.TraceConfig()
    config.on_dns_resolvehost_start.append(_stamp("dns_start"))
    config.on_dns_resolvehost_end.append(_stamp("dns_end"))
    config.on_connection_create_start.append(_stamp("connect_start"))
    config.on_connection_create_end.append(_stamp("ready"))
    config.on_connection_reuseconn.append(_stamp("ready"))
    config.on_request_headers_sent.append(_on_headers_sent)
    config.on_request_chunk_sent.append(_stamp("sent"))
    config.on_request_end.append(_stamp("headers_received"))
    return config


# --- failures ----------------------------------------------------------------------------------


def _host_port(url: URL) -> str:
    host = url.host or "?"
    return f"[{host}]:{url.port}" if ":" in host else f"{host}:{url.port}"


def _os_reason(error: OSError) -> str:
    if isinstance(error, socket.gaierror) or not error.errno or error.errno < 0:
        return error.strerror or str(error) or type(error).__name__
    return os.strerror(error.errno)


def _classify_failure(
    exc: BaseException, request: HttpRequest, state: _SendState, expired: bool
) -> tuple[ResultCode, str]:
    if expired or isinstance(exc, TimeoutError):
        return ResultCode.TIMEOUT, f"timed out after {request.timeout:g}s {state.phase()}"
    # A certificate error is a ValueError too; only a request aiohttp refuses to build (e.g. a
    # header value with a line break, a malformed host) is a setup error.
    if isinstance(exc, aiohttp.InvalidURL) or (
        isinstance(exc, ValueError) and not isinstance(exc, OSError | aiohttp.ClientError)
    ):
        return ResultCode.SETUP_ERROR, f"cannot send the request to {_host_port(state.url)}: {exc}"
    return ResultCode.CONNECTION_ERROR, _describe_failure(exc, state.url)


def _describe_failure(exc: BaseException, url: URL) -> str:
    """A message naming where the request went and why no response came back."""
    where = _host_port(url)
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return (
            f"TLS certificate of {where} rejected: {exc.certificate_error} "
            "(set verify_tls: false to accept it)"
        )
    if isinstance(exc, aiohttp.ClientSSLError):
        return f"TLS handshake with {where} failed: {exc.os_error}"
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return f"cannot resolve {url.host} (for {where}): {_os_reason(exc.os_error)}"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return f"cannot connect to {where}: {_os_reason(exc.os_error)}"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return f"{where} closed the connection before a complete response"
    if isinstance(exc, aiohttp.ClientPayloadError):
        return f"the connection to {where} broke while reading the body: {exc}"
    if isinstance(exc, aiohttp.ClientResponseError):
        return f"{where} sent an invalid HTTP response: {exc.message}"
    if isinstance(exc, OSError) and not isinstance(exc, aiohttp.ClientError):
        return f"connection to {where} failed: {_os_reason(exc)}"
    return f"request to {where} failed: {exc or type(exc).__name__}"


# --- content codings ---------------------------------------------------------------------------


class _ZlibLayer:
    """One gzip or deflate layer, inflated at most `_DECODE_STEP` bytes per step."""

    def __init__(self, coding: str) -> None:
        self._gzip = coding in ("gzip", "x-gzip")
        self._inflater: zlib._Decompress | None = None
        self._head = b""  # a stream's first byte, when it came alone: two are needed to sniff
        self._members = 0
        self._finished = False

    def feed(self, data: bytes) -> Iterator[bytes]:
        while data and not self._finished:
            if self._inflater is None:
                data, self._head = self._head + data, b""
                if len(data) < 2:
                    self._head = data
                    return
                if self._members and not data.startswith(_GZIP_MAGIC):
                    self._finished = True  # trailing bytes after the last member: ignored
                    return
                self._inflater = zlib.decompressobj(self._wbits(data))
                self._members += 1
            inflater = self._inflater
            pending = data
            while True:
                piece = inflater.decompress(pending, _DECODE_STEP)
                if piece:
                    yield piece
                pending = inflater.unconsumed_tail
                if inflater.eof or (not pending and len(piece) < _DECODE_STEP):
                    break
            if not inflater.eof:
                return
            # A gzip body may hold several members; a deflate body is one stream.
            data = inflater.unused_data
            self._inflater = None
            self._finished = not self._gzip

    def _wbits(self, first: bytes) -> int:
        if self._gzip:
            return 16 + zlib.MAX_WBITS
        # "deflate" means zlib-wrapped (RFC 9110), but some servers send a raw deflate stream.
        zlib_wrapped = first[0] & 0x0F == 8 and int.from_bytes(first[:2]) % 31 == 0
        return zlib.MAX_WBITS if zlib_wrapped else -zlib.MAX_WBITS


class _BodyDecoder:
    """Undoes a response's content codings, innermost last, yielding bounded pieces."""

    def __init__(self, layers: list[_ZlibLayer], codings: str) -> None:
        self._layers = layers
        self._codings = codings

    @classmethod
    def for_content_encoding(cls, header: str | None) -> _BodyDecoder:
        codings = [c.strip().lower() for c in (header or "").split(",")]
        codings = [c for c in codings if c and c != "identity"]
        if not all(c in ("gzip", "x-gzip", "deflate") for c in codings):
            return cls([], "")  # a coding we cannot undo: the body stays as received
        return cls([_ZlibLayer(c) for c in reversed(codings)], ", ".join(codings))

    @property
    def decodes(self) -> bool:
        return bool(self._layers)

    def feed(self, data: bytes) -> Iterator[bytes]:
        pieces: Iterable[bytes] = (data,)
        for layer in self._layers:
            pieces = _through(layer, pieces)
        try:
            yield from pieces
        except zlib.error as exc:
            message = f"cannot decode the {self._codings} response body: {exc}"
            raise HttpFailure(ResultCode.CONTENT_ERROR, message) from exc


def _through(layer: _ZlibLayer, pieces: Iterable[bytes]) -> Iterator[bytes]:
    for piece in pieces:
        yield from layer.feed(piece)
