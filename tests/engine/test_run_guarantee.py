"""Every run that starts ends in a recorded result and `run.finished`, whatever a hostile API
sends or whatever breaks inside the run (issue 10 point 3)."""

from __future__ import annotations

import logging
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from apimd.demo.server import RunningServer
from apimd.engine.context import RunOrder
from apimd.engine.memory import MemoryStateStore
from apimd.engine.ports import StateStore
from apimd.engine.runner import Engine
from apimd.model import Outcome, ResultCode, TokenState
from apimd.model.events import Event
from apimd.model.result import Result
from apimd.store import SqliteStore, open_store
from tests.store.conftest import TEST_KEY
from tests.support.projects import build

# The JSON text holds the six characters `\ud800`: a lone UTF-16 surrogate once parsed.
LONE_SURROGATE_JSON = '{"v": "\\ud800", "ok": true}'


@pytest.fixture
async def hostile() -> AsyncIterator[tuple[RunningServer, list[web.Request]]]:
    """`/surrogate` answers LONE_SURROGATE_JSON; `/echo` records what it was sent."""
    seen: list[web.Request] = []

    async def surrogate(_request: web.Request) -> web.Response:
        return web.Response(text=LONE_SURROGATE_JSON, content_type="application/json")

    async def echo(request: web.Request) -> web.Response:
        seen.append(request)
        return web.json_response({"ok": True})

    app = web.Application()

    async def token(_request: web.Request) -> web.Response:
        body = '{"access_token": "at-\\ud800", "token_type": "Bearer", "expires_in": 60}'
        return web.Response(text=body, content_type="application/json")

    app.router.add_get("/surrogate", surrogate)
    app.router.add_post("/token", token)
    app.router.add_get("/echo", echo)
    async with RunningServer(app) as server:
        yield server, seen


@pytest.fixture
async def sqlite() -> AsyncIterator[SqliteStore]:
    with tempfile.TemporaryDirectory(prefix="apimd-") as folder:
        store = await open_store(
            Path(folder) / "apimd.db", secret_key=TEST_KEY, key_file=None, owner=False
        )
        try:
            yield store
        finally:
            await store.close()


async def run_recording_events(
    doc: dict[str, Any], store: StateStore, target: str, **variables: str
) -> tuple[Result, list[Event]]:
    """Run `target` once; its result and the events the engine sent."""
    events: list[Event] = []
    engine = Engine(build(doc), store, events=events.append)
    try:
        return await engine.run(target, RunOrder(variables=variables)), events
    finally:
        await engine.close()


def finished(events: list[Event], field: str) -> list[object]:
    return [e.payload()[field] for e in events if e.type == "run.finished"]


def surrogate_project(base: str) -> dict[str, Any]:
    return {
        "calls": [
            {
                "name": "hostile",
                "url": f"{base}/surrogate",
                "conditions": [
                    {"source": "json", "path": "$.v", "op": "exists", "save_as": "V"},
                    {"source": "json", "path": "$.ok", "op": "eq", "value": True},
                ],
                "webhooks": [{"type": "save_variables", "names": ["V"]}],
            },
            {
                "name": "use-it",
                "url": f"{base}/echo?v=%%V%%",
                "headers": {"X-V": "%%V%%"},
            },
        ],
        "workflows": [{"name": "flow", "steps": ["hostile", "use-it"]}],
    }


async def test_a_lone_surrogate_in_a_saved_value_is_recorded_not_lost(
    hostile: tuple[RunningServer, list[web.Request]], sqlite: SqliteStore
) -> None:
    server, seen = hostile
    result, events = await run_recording_events(surrogate_project(server.url), sqlite, "flow")

    assert result.outcome == Outcome.PASS, result.error
    stored = await sqlite.get_result(result.id)
    assert stored is not None and stored.outcome == Outcome.PASS
    first, second = stored.steps
    # The stored body keeps what the API wrote (the escape), the variable holds U+FFFD.
    assert first.response is not None and "\\ud800" in (first.response.body or "")
    assert first.variables["V"] == "\ufffd"
    assert second.outcome == Outcome.PASS
    assert seen[0].query["v"] == "\ufffd" and seen[0].headers["X-V"] == "\ufffd"
    assert finished(events, "name") == ["flow"]
    saved = await sqlite.load_variable("V")
    assert saved is not None and saved.value == "\ufffd"


async def test_a_run_variable_with_a_lone_surrogate_ends_setup_error_naming_it(
    hostile: tuple[RunningServer, list[web.Request]], sqlite: SqliteStore
) -> None:
    server, seen = hostile
    result, events = await run_recording_events(
        surrogate_project(server.url), sqlite, "use-it", v="a\udcffb"
    )

    assert (result.outcome, result.result) == (Outcome.FAIL, ResultCode.SETUP_ERROR)
    assert "run variable 'V'" in (result.error or "") and "surrogate" in (result.error or "")
    assert await sqlite.get_result(result.id) == result
    assert finished(events, "result") == ["SETUP_ERROR"]
    assert seen == []  # nothing was sent


class RefusingStore(MemoryStateStore):
    """A state store that fails the first `refuse_results` results it is given, and every token
    read when `broken_tokens` — a disk full, a lost database — as a real store can."""

    def __init__(self, *, refuse_results: int = 0, broken_tokens: bool = False) -> None:
        super().__init__()
        self.refuse_results = refuse_results
        self.broken_tokens = broken_tokens

    async def add_result(self, result: Result) -> Result | None:
        if self.refuse_results:
            self.refuse_results -= 1
            raise OSError(28, "No space left on device")
        return await super().add_result(result)

    async def load_token(self, name: str) -> Any:
        if self.broken_tokens:
            raise RuntimeError("database disk image is malformed")
        return await super().load_token(name)


def token_call_project(base: str) -> dict[str, Any]:
    return {
        "auth": [{"name": "manual", "type": "manual"}],
        "tokens": [{"name": "t", "auth": "manual", "headers": {"X-T": "%%ACCESS_TOKEN%%"}}],
        "calls": [{"name": "with-token", "url": f"{base}/echo", "token": "t"}],
    }


async def test_an_unexpected_exception_in_a_run_ends_fail_logged_once(
    hostile: tuple[RunningServer, list[web.Request]], caplog: pytest.LogCaptureFixture
) -> None:
    server, _seen = hostile
    store = RefusingStore(broken_tokens=True)
    with caplog.at_level(logging.ERROR, logger="apimd"):
        result, events = await run_recording_events(
            token_call_project(server.url), store, "with-token"
        )

    assert (result.outcome, result.result) == (Outcome.FAIL, ResultCode.SETUP_ERROR)
    assert result.error == "internal error: RuntimeError: database disk image is malformed"
    assert await store.get_result(result.id) == result
    assert finished(events, "outcome") == ["FAIL"]
    crashes = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(crashes) == 1 and crashes[0].exc_info is not None


async def test_a_result_the_store_refuses_is_replaced_by_a_recorded_failure(
    hostile: tuple[RunningServer, list[web.Request]],
) -> None:
    server, _seen = hostile
    store = RefusingStore(refuse_results=1)
    result, events = await run_recording_events(surrogate_project(server.url), store, "hostile")

    assert result.result == ResultCode.SETUP_ERROR
    assert "could not be stored" in (result.error or "")
    assert "No space left on device" in (result.error or "")
    assert await store.get_result(result.id) == result
    assert finished(events, "result") == ["SETUP_ERROR"]


async def test_a_token_endpoint_answering_a_lone_surrogate_saves_a_usable_token(
    hostile: tuple[RunningServer, list[web.Request]], sqlite: SqliteStore
) -> None:
    server, seen = hostile
    doc = {
        "auth": [
            {
                "name": "cc",
                "type": "oauth2",
                "grant": "client_credentials",
                "token_url": f"{server.url}/token",
                "client_id": "id",
                "client_secret": "client-secret-1",
            }
        ],
        "tokens": [{"name": "t", "auth": "cc"}],
        "calls": [{"name": "with-token", "url": f"{server.url}/echo", "token": "t"}],
    }
    result, events = await run_recording_events(doc, sqlite, "with-token")

    assert result.outcome == Outcome.PASS, result.error
    token = await sqlite.load_token("t")
    assert token is not None and token.state == TokenState.VALID
    assert token.variables["ACCESS_TOKEN"] == "at-\ufffd"
    assert seen[0].headers["Authorization"] == "Bearer at-\ufffd"
    assert finished(events, "outcome") == ["PASS"]
