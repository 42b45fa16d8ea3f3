"""The one HTTP executor: aiohttp with per-phase timings, redirect policy, caps (SPEC §2, §4).

STUB — to be implemented.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from multidict import CIMultiDict

from apimd.model.outcome import ResultCode
from apimd.model.result import Timings

MAX_BODY_BYTES = 10 * 1024 * 1024
MAX_REDIRECTS = 10


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

    def text(self) -> str:
        """The body decoded with the response charset (default UTF-8), invalid bytes replaced."""
        raise NotImplementedError


class HttpFailure(Exception):
    """The request produced no usable response: CONNECTION_ERROR, TIMEOUT, or CONTENT_ERROR
    ("body too large"). Carries the timings measured so far."""

    def __init__(self, code: ResultCode, message: str, timings: Timings | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.timings = timings or Timings()


class HttpExecutor:
    """Sends `HttpRequest`s. Fresh connection and fresh DNS per request unless `keepalive`."""

    def __init__(self, *, max_body_bytes: int = MAX_BODY_BYTES) -> None:
        raise NotImplementedError

    async def send(self, request: HttpRequest) -> HttpResponse:
        """Send, following up to 10 redirects when allowed; raise `HttpFailure` on no response."""
        raise NotImplementedError

    async def close(self) -> None:
        """Close pooled keep-alive connections."""
        raise NotImplementedError
