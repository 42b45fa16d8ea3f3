"""The call runner's own choices (SPEC §3, §4): the body is decoded once and only when a
condition reads it, system variables are built only for a template that uses one, and the
parts of the engine share one frozen bundle."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from apimd.engine.context import RunOrder
from apimd.engine.memory import MemoryStateStore
from apimd.engine.runner import Engine
from apimd.model import Outcome, ResultCode
from tests.support.projects import build, run_doc

LATIN1_TEXT = "café señor"


async def _latin1(request: web.Request) -> web.Response:
    plain = "as" in request.query
    text = f"word: {LATIN1_TEXT}" if plain else f'{{"word": "{LATIN1_TEXT}"}}'
    kind = "text/plain" if plain else "application/json"
    return web.Response(
        body=text.encode("latin-1"), headers={"Content-Type": f"{kind}; charset=iso-8859-1"}
    )


async def _odd_charset(request: web.Request) -> web.Response:
    """A codec that raises instead of replacing (idna, undefined, punycode), and a bad byte."""
    content_type = f"text/plain; charset={request.query['charset']}"
    return web.Response(body=b"up \xff ok", headers={"Content-Type": content_type})


async def _echo_path(request: web.Request) -> web.Response:
    return web.json_response({"path": request.path, "query": dict(request.query)})


class Site:
    """The test server's base URL."""

    def __init__(self, server: TestServer) -> None:
        self.url = str(server.make_url("")).rstrip("/")


@pytest.fixture
async def site(aiohttp_server: Callable[[web.Application], Awaitable[TestServer]]) -> Site:
    app = web.Application()
    app.router.add_get("/latin1", _latin1)
    app.router.add_get("/odd-charset", _odd_charset)
    app.router.add_get("/{tail:.*}", _echo_path)
    return Site(await aiohttp_server(app))


async def test_a_body_no_condition_reads_is_still_recorded_in_its_charset(
    site: Site,
) -> None:
    doc = {
        "calls": [
            {
                "name": "status-only",
                "url": f"{site.url}/latin1?as=text",
                "conditions": [{"source": "status", "op": "eq", "value": 200}],
            }
        ]
    }
    result = await run_doc(doc, "status-only")
    assert result.outcome == Outcome.PASS
    assert result.response is not None
    assert result.response.body == f"word: {LATIN1_TEXT}"


async def test_a_body_a_condition_reads_is_decoded_for_it_and_for_the_record(
    site: Site,
) -> None:
    doc = {
        "calls": [
            {
                "name": "reads-body",
                "url": f"{site.url}/latin1",
                "conditions": [
                    {"source": "json", "path": "word", "op": "eq", "value": LATIN1_TEXT},
                    {"source": "body", "op": "contains", "value": "señor", "save_as": "SEEN"},
                ],
            }
        ]
    }
    result = await run_doc(doc, "reads-body")
    assert result.result == ResultCode.COMPLETE, result.conditions
    assert result.variables["SEEN"] == f'{{"word": "{LATIN1_TEXT}"}}'
    assert result.response is not None
    assert result.response.body is not None and LATIN1_TEXT in result.response.body


@pytest.mark.parametrize("charset", ["idna", "undefined", "punycode"])
async def test_a_charset_that_cannot_replace_is_read_as_utf8_not_an_internal_error(
    site: Site, charset: str
) -> None:
    doc = {
        "calls": [
            {
                "name": "odd",
                "url": f"{site.url}/odd-charset?charset={charset}",
                "conditions": [{"source": "body", "op": "contains", "value": "ok"}],
            }
        ]
    }
    result = await run_doc(doc, "odd")
    assert (result.outcome, result.result) == (Outcome.PASS, ResultCode.COMPLETE), result.error
    assert result.http_status == 200
    assert result.response is not None and result.response.body == "up \ufffd ok"


async def test_system_variables_are_there_when_a_template_uses_them(site: Site) -> None:
    doc = {
        "variables": {"who": "ops"},
        "calls": [
            {
                "name": "named",
                "url": f"{site.url}/%%CALL_NAME%%",
                "params": {"run": "%%RUN_ID%%", "who": "%%who%%", "id": "%%UUID%%"},
                "conditions": [{"source": "json", "path": "path", "op": "eq", "value": "/named"}],
            }
        ],
    }
    result = await run_doc(doc, "named", order=RunOrder(run_id="run-42"))
    assert result.outcome == Outcome.PASS, result.conditions
    assert result.request is not None
    assert "run=run-42" in result.request.url and "who=ops" in result.request.url
    assert "id=%25%25UUID" not in result.request.url and "id=" in result.request.url


async def test_an_unknown_variable_still_fails_the_call_naming_it(site: Site) -> None:
    doc = {"calls": [{"name": "typo", "url": f"{site.url}/x", "params": {"q": "%%NO_SUCH%%"}}]}
    result = await run_doc(doc, "typo")
    assert result.result == ResultCode.SETUP_ERROR
    assert result.error is not None and "NO_SUCH" in result.error


async def test_the_engine_parts_share_one_frozen_bundle() -> None:
    engine = Engine(
        build({"calls": [{"name": "c", "url": "http://127.0.0.1:9/"}]}), MemoryStateStore()
    )
    try:
        with pytest.raises(dataclasses.FrozenInstanceError):
            engine.services.tokens = engine.services.tokens  # type: ignore[misc]
        assert engine.tokens is engine.services.tokens
        engine.callback_url = "http://127.0.0.1:1/cb"
        assert engine.services.definitions.callback_url == "http://127.0.0.1:1/cb"
    finally:
        await engine.close()
