"""The one HTTP executor: aiohttp with per-phase timings, redirect policy, caps (SPEC §2, §4, §10).

Every send opens a fresh connection and resolves DNS afresh, so `dns` and `connect` show what a new
client sees, unless the request asks for `keepalive`. Sessions are pooled by TLS settings, proxy and
keep-alive, so a connection made under one client certificate or proxy is never used under another.

A send is a loop over hops. Every hop runs, in order: the request's `hop_steps` (SPEC §10's steps
that depend on the hop: `REQUEST_*` token headers, SigV4, DPoP), the run's cookies, the proxy's
headers; then, once the response is in, the request's `answers` (a Digest challenge) may ask for
the same hop again, and a redirect gives the next hop. The steps that do not depend on the hop ran
once when the call was prepared (`engine/request.py`), and run again for a 401 retry.

Kept deliberately simple:
- no cookies are stored, not even between the hops of one send;
- credentials in the URL (`https://user:pass@host/`) are refused (a `basic` auth sends them);
  credentials in a redirect's Location are stripped;
- on a redirect to another origin (https → http included) the request's `sensitive_headers` and
  `sensitive_params` are dropped (names matched case-insensitively), and so are `Authorization`,
  `Proxy-Authorization`, `Cookie` and `Host` whoever set them; once dropped they stay dropped for
  the later hops, and neither `hop_steps` nor `answers` run any more;
- 301/302 turn a POST into a body-less GET, 303 turns anything but HEAD into one; 307/308 resend;
- proxies named in the environment are ignored: requests go only where they are addressed;
- a redirect whose Location is missing, unparsable or not http(s) is not followed: the 3xx is
  returned as is;
- bodies are decompressed here, a bounded piece at a time (`engine/codings.py`), and
  `Accept-Encoding` only advertises what is decoded.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass, field
from time import perf_counter
from typing import Any

import aiohttp
from aiohttp.connector import Connection
from multidict import CIMultiDict
from yarl import URL

from apimd import __version__
from apimd.engine.codings import BodyDecoder, body_too_large, decode_body
from apimd.engine.cookies import RunJar, remember, with_jar_cookies
from apimd.engine.errors import SetupError
from apimd.engine.failures import HttpFailure, ProxyError, classify_failure
from apimd.engine.hops import (
    MAX_REDIRECTS,
    Hop,
    HopAnswer,
    HopStep,
    RedirectRules,
    redirect_target,
    wire_url,
)
from apimd.engine.proxies import is_socks, socks_connector, through_proxy
from apimd.engine.timing import (
    HopClock,
    SendState,
    TimedBody,
    TimedConnector,
    TimedResolver,
    TimedResponse,
    current_hop,
    timed_socket,
    timing_trace_config,
)
from apimd.engine.tls import TlsConfig
from apimd.model.outcome import ResultCode
from apimd.model.result import Timings

__all__ = [
    "MAX_BODY_BYTES",
    "MAX_REDIRECTS",
    "Hop",
    "HopAnswer",
    "HopStep",
    "HttpExecutor",
    "HttpFailure",
    "HttpRequest",
    "HttpResponse",
    "decode_body",
    "wire_url",
]

MAX_BODY_BYTES = 10 * 1024 * 1024

_DEFAULT_HEADERS = {"User-Agent": f"apimd/{__version__}", "Accept-Encoding": "gzip, deflate"}


@dataclass(slots=True)
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
    answers: tuple[HopAnswer, ...] = ()
    """Consulted in order after each hop's response; the first that answers sends the hop again
    (once per hop), e.g. a Digest answer. Not run once credentials were dropped."""
    cookie_jar: RunJar | None = None  # the run's jar (SPEC §2 workflows)
    proxy: str | None = None  # http://, https://, socks5://, socks5h:// URL, or None: direct
    sent_url: str | None = field(default=None, compare=False)
    """Set by the executor as it sends: the first hop's URL as on the wire (the record's URL)."""


@dataclass(slots=True)
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
    _text: str | None = field(default=None, init=False, repr=False, compare=False)

    def text(self) -> str:
        """The body decoded with the response charset (default UTF-8), invalid bytes replaced;
        decoded once."""
        if self._text is None:
            self._text = decode_body(self.body, self.headers.get("Content-Type"))
        return self._text


_SessionKey = tuple[TlsConfig, str | None, bool]


class HttpExecutor:
    """Sends `HttpRequest`s. Fresh connection and fresh DNS per request unless `keepalive`."""

    def __init__(self, *, max_body_bytes: int = MAX_BODY_BYTES) -> None:
        self._max_body_bytes = max_body_bytes
        self._trace_config = timing_trace_config()
        # One session per TLS setting, proxy and keep-alive: a connection made with one client
        # certificate (or through one proxy) is never reused under another. Without keep-alive
        # the session's connector closes each connection after its response.
        self._sessions: dict[_SessionKey, aiohttp.ClientSession] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False

    async def send(self, request: HttpRequest) -> HttpResponse:
        """Send, following up to 10 redirects when allowed; raise `HttpFailure` on no response."""
        state = SendState(_initial_url(request))
        session = self._session(request)
        try:
            return await self._follow(session, request, state)
        except HttpFailure as exc:
            raise HttpFailure(exc.code, exc.message, state.timings(), exc.answer) from exc
        except (TimeoutError, aiohttp.ClientError, OSError, ValueError, *ProxyError) as exc:
            code, message = classify_failure(exc, request.timeout, state)
            raise HttpFailure(code, message, state.timings()) from exc
        finally:
            if self._closed:  # a send that outlived close(), e.g. a delivery: nothing pools it
                await session.close()

    async def close(self) -> None:
        """Close every pooled session and its connections."""
        self._closed = True
        sessions = list(self._sessions.values())
        self._sessions.clear()
        for session in sessions:
            await session.close()

    def _session(self, request: HttpRequest) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # sessions belong to the loop they were made in
            self._loop, self._sessions = loop, {}
        tls = request.tls or TlsConfig(verify=request.verify_tls)
        key = (tls, request.proxy, request.keepalive)
        session = self._sessions.get(key)
        if session is None or session.closed or self._closed:
            try:
                ssl_setting = tls.ssl
            except SetupError as exc:
                raise HttpFailure(ResultCode.SETUP_ERROR, str(exc)) from None
            connector = _connector(request.proxy, ssl_setting, fresh=not request.keepalive)
            session = self._new_session(connector)
            if not self._closed:
                self._sessions[key] = session
        return session

    def _new_session(self, connector: aiohttp.BaseConnector) -> aiohttp.ClientSession:
        # A `TimedConnector` stamps what aiohttp's trace signals would; another (SOCKS) needs them.
        traced = not isinstance(connector, TimedConnector)
        return aiohttp.ClientSession(
            connector=connector,
            headers=_DEFAULT_HEADERS,
            trace_configs=[self._trace_config] if traced else None,
            response_class=_ResponseWithCertificate,
            trust_env=False,
            auto_decompress=False,
            cookie_jar=aiohttp.DummyCookieJar(),
        )

    async def _follow(
        self, session: aiohttp.ClientSession, request: HttpRequest, state: SendState
    ) -> HttpResponse:
        # What a hop carries over to the next: the method, body and headers as the redirect
        # rules and answers left them.
        # The URL's text is made once per hop (`str` of a yarl URL builds it every time).
        url_text = request.sent_url if request.sent_url is not None else str(state.url)
        carried = Hop(request.method.upper(), url_text, list(request.headers), request.body)
        rules = RedirectRules.for_request(request.sensitive_headers, request.sensitive_params)
        redirects: list[str] = []
        cookies: dict[str, str] = {}
        answered = False
        deadline = state.started + request.timeout
        while True:
            hop = state.start_hop()
            sent = self._outgoing(request, carried, run_steps=not rules.credentials_dropped)
            hop_headers, via = through_proxy(
                request.proxy, state.url, with_jar_cookies(sent, request.cookie_jar, state.url)
            )
            remaining = deadline - perf_counter()
            if remaining <= 0:
                raise TimeoutError
            hop_token = current_hop.set(hop)
            try:
                async with session.request(
                    carried.method,
                    state.url,
                    headers=hop_headers,  # (aiohttp makes its CIMultiDict of them)
                    data=TimedBody(carried.body, hop) if carried.body else carried.body,
                    allow_redirects=False,
                    timeout=aiohttp.ClientTimeout(total=remaining, ceil_threshold=math.inf),
                    trace_request_ctx=hop,
                    **via,
                ) as response:
                    try:
                        content = await self._read_body(response, hop)
                    except HttpFailure as exc:  # the status and headers did arrive: keep them
                        exc.answer = _answer(response, b"", url_text, Timings())
                        raise
                    remember(request.cookie_jar, response.cookies, state.url, cookies)
            finally:
                current_hop.reset(hop_token)
            # SPEC §10: an answer (Digest) is a hop of its own, so its round trip is in the timings.
            if (
                request.answers
                and not (answered or rules.credentials_dropped)
                and any(
                    answer(carried, response.status, response.headers) for answer in request.answers
                )
            ):
                answered = True
                continue
            target = (
                redirect_target(response.status, response.headers.get("Location"), state.url)
                if request.follow_redirects
                else None
            )
            if target is None or len(redirects) == MAX_REDIRECTS:
                answer = _answer(response, content, url_text, state.timings())
                answer.redirects, answer.too_many_redirects = redirects, target is not None
                answer.cookies = cookies
                return answer
            state.url = rules.follow(carried, response.status, state.url, target)
            url_text = str(state.url)
            redirects.append(url_text)
            answered = False

    @staticmethod
    def _outgoing(request: HttpRequest, carried: Hop, *, run_steps: bool) -> list[tuple[str, str]]:
        """The headers of this hop: what it carries, changed by the request's hop steps."""
        if not (run_steps and request.hop_steps):
            return carried.headers
        hop = Hop(carried.method, carried.url, list(carried.headers), carried.body)
        for step in request.hop_steps:
            step(hop)
        return hop.headers

    async def _read_body(self, response: aiohttp.ClientResponse, hop: HopClock) -> bytes:
        """The decoded body, read a chunk at a time; beyond the cap the connection is dropped."""
        cap = self._max_body_bytes
        decoder = BodyDecoder.for_content_encoding(response.headers.get("Content-Encoding"))
        if not decoder.decodes and (response.content_length or 0) > cap:
            response.close()
            raise body_too_large(cap)
        pieces: list[bytes] = []
        received = size = 0
        content = response.content
        try:
            # `readany` until it says b"" (the end), as `iter_any` would, without the
            # StopAsyncIteration it raises through two frames at the end of every body.
            while raw := await content.readany():
                received += len(raw)
                if received > cap:
                    raise body_too_large(cap)
                if not decoder.decodes:  # most bodies: the bytes as they came, no generator
                    pieces.append(raw)
                    continue
                for piece in decoder.feed(raw):
                    size += len(piece)
                    if size > cap:
                        raise body_too_large(cap)
                    pieces.append(piece)
        except HttpFailure:
            response.close()
            raise
        hop.finish()
        # One piece (a small body) is returned as it is: `join` makes no copy of it.
        return b"".join(pieces)


def _answer(
    response: aiohttp.ClientResponse, content: bytes, url: str, timings: Timings
) -> HttpResponse:
    # The request's headers as they went out, aiohttp's own (Host, Connection…) included.
    sent = list(response.request_info.headers.items())
    return HttpResponse(
        status=response.status,
        reason=response.reason or "",
        headers=CIMultiDict(response.headers),
        body=content,
        size=len(content),
        final_url=url,
        sent_headers=sent,
        peer_certificate=getattr(response, "peer_certificate", None),
        timings=timings,  # not a default one made first (a pydantic model: ~10 k instructions)
    )


def _connector(proxy: str | None, ssl_setting: Any, *, fresh: bool) -> aiohttp.BaseConnector:
    """Fresh connections and DNS unless keep-alive; through SOCKS when the proxy says so."""
    if proxy is not None and is_socks(proxy):
        return socks_connector(proxy, ssl=ssl_setting, force_close=fresh)
    # One-shot connections: as many as there are sends, each resolved and connected afresh.
    return TimedConnector(
        ssl=ssl_setting,
        resolver=TimedResolver(),
        socket_factory=timed_socket,
        force_close=fresh,
        use_dns_cache=not fresh,
        limit=0 if fresh else 100,
    )


class _ResponseWithCertificate(TimedResponse):
    """Keeps the server's leaf certificate (DER) of the connection the response came on, new or
    reused from the pool: taken at `start`, since a small response releases (and, without
    keep-alive, closes) its connection before the caller sees it."""

    peer_certificate: bytes | None = None

    def starting(self, connection: Connection) -> None:
        transport = connection.transport
        ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
        if ssl_object is not None:
            self.peer_certificate = ssl_object.getpeercert(binary_form=True)


def _initial_url(request: HttpRequest) -> URL:
    try:
        url = URL(request.url)
    except (TypeError, ValueError) as exc:
        raise HttpFailure(ResultCode.SETUP_ERROR, f"invalid URL {request.url!r}: {exc}") from exc
    # The raw parts: the decoded ones are the same None or empty, made by a call more each.
    if url.scheme not in ("http", "https") or not url.raw_host:
        message = f"invalid URL {request.url!r}: only absolute http:// or https:// URLs are sent"
        raise HttpFailure(ResultCode.SETUP_ERROR, message)
    if url.raw_user is not None or url.raw_password is not None:
        # Not echoed: the URL holds a password.
        message = "the URL carries credentials (user:password@); use a `basic` auth instead"
        raise HttpFailure(ResultCode.SETUP_ERROR, message)
    url = wire_url(url, request.params)
    request.sent_url = str(url)
    return url
