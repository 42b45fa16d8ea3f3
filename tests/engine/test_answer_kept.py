"""What a call reports when a response came but could not be used (SPEC §4): the status and
headers that arrived are kept, the phase that timed out is named as it was (headers, not the
body), and a redirect that is not followed says why (its scheme, or an address with no host)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from urllib.parse import quote

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from apimd.model import ResultCode
from tests.support.projects import run_doc


async def _bad_gzip(request: web.Request) -> web.Response:
    coding = request.query.get("coding", "gzip")
    headers = {"Content-Encoding": coding, "X-Trace": "t-17", "Content-Type": "text/plain"}
    return web.Response(body=b"this is not compressed at all", headers=headers)


async def _redirect(request: web.Request) -> web.Response:
    return web.Response(status=302, headers={"Location": request.query["to"]})


@pytest.fixture
async def site(aiohttp_server: Callable[[web.Application], Awaitable[TestServer]]) -> str:
    app = web.Application()
    app.router.add_get("/bad-gzip", _bad_gzip)
    app.router.add_get("/redirect", _redirect)
    return str((await aiohttp_server(app)).make_url("")).rstrip("/")


def _call(url: str, **extra: object) -> dict[str, object]:
    return {"calls": [{"name": "c", "url": url, **extra}]}


@pytest.mark.parametrize("coding", ["gzip", "deflate"])
async def test_an_undecodable_body_keeps_the_status_and_headers(site: str, coding: str) -> None:
    result = await run_doc(_call(f"{site}/bad-gzip?coding={coding}"), "c")
    assert result.result == ResultCode.CONTENT_ERROR
    assert result.http_status == 200
    assert result.response is not None and result.response.headers["X-Trace"] == "t-17"
    assert result.error is not None
    assert result.error.startswith(f"cannot decode the {coding} response body"), result.error


@pytest.fixture
async def trickling() -> AsyncIterator[str]:
    """A server that sends the status line, then one header a second, never ending them."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\n")
        try:
            for n in range(30):
                await writer.drain()
                await asyncio.sleep(0.2)
                writer.write(f"X-Slow-{n}: yes\r\n".encode())
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.close()


async def test_headers_trickling_in_time_out_as_headers(trickling: str) -> None:
    result = await run_doc(_call(f"{trickling}/", timeout=0.7), "c")
    assert result.result == ResultCode.TIMEOUT
    where = trickling.removeprefix("http://")
    assert result.error == f"timed out after 0.7s reading the headers from {where}", result.error


@pytest.mark.parametrize(
    ("location", "error"),
    [
        ("file:///etc/passwd", "HTTP 302 redirect to an unsupported scheme file:"),
        ("gopher://127.0.0.1:70/", "HTTP 302 redirect to an unsupported scheme gopher:"),
        ("http://", "HTTP 302 redirect to an invalid address (no host)"),
        ("https:///x", "HTTP 302 redirect to an invalid address (no host)"),
        ("http://[::1", "HTTP 302 redirect to an invalid address"),
    ],
)
async def test_an_unfollowed_redirect_says_why(site: str, location: str, error: str) -> None:
    result = await run_doc(_call(f"{site}/redirect?to={quote(location, safe='')}"), "c")
    assert result.result == ResultCode.HTTP_REDIRECT_ERROR
    assert result.http_status == 302
    assert result.error is not None and result.error.startswith(error), result.error
