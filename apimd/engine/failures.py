"""Why a send produced no usable response (SPEC §4): the result code and a message naming where the
request went and what went wrong."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import aiohttp
import aiohttp_socks
import python_socks
from yarl import URL

from apimd.engine.hops import host_port
from apimd.engine.timing import SendState
from apimd.model.outcome import ResultCode
from apimd.model.result import Timings

if TYPE_CHECKING:
    from apimd.engine.http import HttpResponse


ProxyError = (
    aiohttp_socks.ProxyError,
    python_socks.ProxyError,
    aiohttp_socks.ProxyConnectionError,
    aiohttp_socks.ProxyTimeoutError,
)
"""A SOCKS proxy that refused (credentials, rules), did not speak SOCKS, or could not be reached
or timed out (aiohttp_socks's own errors for those: not `OSError`, nor `TimeoutError`)."""


class HttpFailure(Exception):
    """The request produced no usable response: CONNECTION_ERROR, TIMEOUT, or CONTENT_ERROR
    ("body too large", undecodable body); SETUP_ERROR when the request itself cannot be sent
    (invalid URL, credentials in the URL, a header aiohttp refuses). Carries the timings measured
    so far."""

    def __init__(
        self,
        code: ResultCode,
        message: str,
        timings: Timings | None = None,
        answer: HttpResponse | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.timings = timings or Timings()
        self.answer = answer
        """The status and headers that came before the body failed (CONTENT_ERROR), no body."""


def classify_failure(
    exc: BaseException, timeout: float, state: SendState
) -> tuple[ResultCode, str]:
    if isinstance(exc, TimeoutError):
        return ResultCode.TIMEOUT, f"timed out after {timeout:g}s {state.phase()}"
    if isinstance(exc, aiohttp_socks.ProxyTimeoutError):
        return ResultCode.TIMEOUT, f"timed out reaching the SOCKS proxy: {exc}"
    # A certificate error is a ValueError too; only a request aiohttp refuses to build (e.g. a
    # header value with a line break, a malformed host) is a setup error.
    if isinstance(exc, aiohttp.InvalidURL) or (
        isinstance(exc, ValueError) and not isinstance(exc, OSError | aiohttp.ClientError)
    ):
        return ResultCode.SETUP_ERROR, f"cannot send the request to {host_port(state.url)}: {exc}"
    return ResultCode.CONNECTION_ERROR, _describe_failure(exc, state.url)


def _os_reason(error: OSError) -> str:
    if isinstance(error, socket.gaierror) or not error.errno or error.errno < 0:
        return error.strerror or str(error) or type(error).__name__
    return os.strerror(error.errno)


_Describe = Callable[[Any, str, URL], str]  # (the error, host:port, the URL) -> message

# The first class the error is an instance of names the failure.
_DESCRIPTIONS: tuple[
    tuple[type[BaseException] | tuple[type[BaseException], ...], _Describe], ...
] = (
    (
        aiohttp_socks.ProxyConnectionError,
        lambda exc, where, _url: f"cannot connect to the SOCKS proxy (for {where}): {exc}",
    ),
    (
        ProxyError,
        lambda exc, where, _url: f"the SOCKS proxy did not open a way to {where}: {exc}",
    ),
    (
        aiohttp.ClientProxyConnectionError,
        lambda exc, where, _url: (
            f"cannot connect to the proxy {exc.host}:{exc.port} (for {where}):"
            f" {_os_reason(exc.os_error)}"
        ),
    ),
    (
        aiohttp.ClientConnectorCertificateError,
        lambda exc, where, _url: (
            f"TLS certificate of {where} rejected: {exc.certificate_error} "
            "(set verify_tls: false to accept it)"
        ),
    ),
    (
        aiohttp.ClientSSLError,
        lambda exc, where, _url: f"TLS handshake with {where} failed: {exc.os_error}",
    ),
    (
        aiohttp.ClientConnectorDNSError,
        lambda exc, where, url: (
            f"cannot resolve {url.host} (for {where}): {_os_reason(exc.os_error)}"
        ),
    ),
    (
        aiohttp.ClientConnectorError,
        lambda exc, where, _url: f"cannot connect to {where}: {_os_reason(exc.os_error)}",
    ),
    (
        aiohttp.ServerDisconnectedError,
        lambda _exc, where, _url: f"{where} closed the connection before a complete response",
    ),
    (
        aiohttp.ClientPayloadError,
        lambda exc, where, _url: f"the connection to {where} broke while reading the body: {exc}",
    ),
    (
        aiohttp.ClientResponseError,
        lambda exc, where, _url: f"{where} sent an invalid HTTP response: {exc.message}",
    ),
)


def _describe_failure(exc: BaseException, url: URL) -> str:
    """A message naming where the request went and why no response came back."""
    where = host_port(url)
    for kind, describe in _DESCRIPTIONS:
        if isinstance(exc, kind):
            return describe(exc, where, url)
    if isinstance(exc, OSError) and not isinstance(exc, aiohttp.ClientError):
        return f"connection to {where} failed: {_os_reason(exc)}"
    return f"request to {where} failed: {exc or type(exc).__name__}"
