"""A real daemon never loses a run: a hostile API answering a lone UTF-16 surrogate on a
schedule, and run variables holding one, still end in recorded results and `run.finished`
(issue 10 point 3)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from apimd.client import ApiError, Client
from apimd.demo.server import RunningServer
from tests.daemon.conftest import Daemon, eventually, unique


@pytest.fixture
async def surrogate_api() -> AsyncIterator[str]:
    """An API whose JSON answer holds the escape `\\ud800` (a lone surrogate once parsed)."""

    async def answer(_request: web.Request) -> web.Response:
        return web.Response(text='{"v": "\\ud800"}', content_type="application/json")

    app = web.Application()
    app.router.add_get("/", answer)
    async with RunningServer(app) as server:
        yield server.url


@contextlib.asynccontextmanager
async def listening(daemon: Daemon) -> AsyncIterator[list[dict[str, Any]]]:
    """The events the daemon sends while the block runs."""
    seen: list[dict[str, Any]] = []
    async with daemon.client() as listener:

        async def listen() -> None:
            async for event in listener.events():
                seen.append(event.payload())

        reader = asyncio.create_task(listen())
        await asyncio.sleep(0.3)  # subscribed before the block starts runs
        try:
            yield seen
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader


async def finished(seen: list[dict[str, Any]], count: int, **fields: str) -> list[dict[str, Any]]:
    """The first `count` `run.finished` events with `fields`, once they have all arrived."""

    async def arrived() -> list[dict[str, Any]]:
        done = [
            e
            for e in seen
            if e["type"] == "run.finished" and all(e.get(k) == v for k, v in fields.items())
        ]
        return done[:count] if len(done) >= count else []

    return list(await eventually(arrived, timeout=5))


async def test_scheduled_runs_of_an_api_answering_a_lone_surrogate_are_recorded(
    daemon: Daemon, surrogate_api: str
) -> None:
    call = unique("surrogate")
    async with daemon.client() as client, listening(daemon) as seen:
        await client.put(
            "calls",
            call,
            {
                "url": f"{surrogate_api}/",
                "conditions": [{"source": "json", "path": "$.v", "op": "exists", "save_as": "V"}],
                "webhooks": [{"type": "save_variables", "names": ["V"]}],
            },
        )
        schedule = unique("every-second")
        await client.put("schedules", schedule, {"every": "1s", "targets": [call]})
        try:

            async def two_results() -> list[Any]:
                page = await client.results(name=call)
                return page.results if len(page.results) >= 2 else []

            results = await eventually(two_results, timeout=10)
            events = await finished(seen, 2, name=call)
        finally:
            await client.delete("schedules", schedule)
        stored = await client.result(results[0].id)

    assert {r.trigger for r in results} == {"schedule"}
    assert {r.outcome for r in results} == {"PASS"}
    assert {e["outcome"] for e in events} == {"PASS"}
    assert stored.variables["V"] == "\ufffd"
    assert stored.response is not None and "\\ud800" in (stored.response.body or "")
    assert "Task exception was never retrieved" not in daemon.log_path.read_text()


async def _run_with_surrogate(client: Client, call: str, *, wait: bool) -> Any:
    try:
        return await client.run("calls", call, variables={"X": "bad\ud800"}, wait=wait)
    except ApiError as exc:  # a 4xx naming the problem is as good as a recorded result
        assert 400 <= exc.status < 500, exc
        return exc


async def test_a_run_variable_with_a_lone_surrogate_never_answers_500_nor_vanishes(
    daemon: Daemon, surrogate_api: str
) -> None:
    call = unique("echo-var")
    async with daemon.client() as client, listening(daemon) as seen:
        await client.put("calls", call, {"url": f"{surrogate_api}/?x=%%X%%"})
        waited = await _run_with_surrogate(client, call, wait=True)
        started = await _run_with_surrogate(client, call, wait=False)

        if isinstance(waited, ApiError):
            assert "X" in str(waited)
            return
        assert waited.result is not None
        assert waited.result.result == "SETUP_ERROR"
        assert "run variable 'X'" in (waited.result.error or "")
        [event] = await finished(seen, 1, run_id=started.run_id)
        stored = await client.result(started.run_id)
    assert event["result"] == "SETUP_ERROR"
    assert stored.result == "SETUP_ERROR"
