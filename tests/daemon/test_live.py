"""What a user watches live: scheduled runs, `apimd results [--follow] --json`, and the event
stream of `GET /v1/events` (SPEC §2 schedules, §6, §7)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
from typing import Any

import pytest

from apimd.client import Client
from apimd.demo.server import RunningServer
from tests.daemon.conftest import Daemon, eventually, unique
from tests.daemon.test_tokens import token_project
from tests.support.daemon import start_cli

# CRUD, apply, tokens across expiries and schedules: the same on a PostgreSQL daemon (SPEC §13).
pytestmark = pytest.mark.both_stores


async def status_call(client: Client, url: str) -> str:
    name = unique("status")
    await client.put(
        "calls",
        name,
        {
            "url": f"{url}/api/status",
            "conditions": [{"source": "status", "op": "eq", "value": 200}],
        },
    )
    return name


async def test_a_one_second_schedule_records_results_triggered_by_schedule(
    daemon: Daemon, token_server: RunningServer
) -> None:
    async with daemon.client() as client:
        call = await status_call(client, token_server.url)
        schedule = unique("every-second")
        await client.put("schedules", schedule, {"every": "1s", "targets": [call]})

        async def two_results() -> list[Any]:
            page = await client.results(name=call)
            return page.results if len(page.results) >= 2 else []

        results = await eventually(two_results, timeout=6)
        await client.delete("schedules", schedule)

    assert {r.trigger for r in results} == {"schedule"}
    assert {r.outcome for r in results} == {"PASS"}
    assert {r.name for r in results} == {call}


async def test_results_json_prints_the_results_document(
    daemon: Daemon, token_server: RunningServer
) -> None:
    async with daemon.client() as client:
        call = await status_call(client, token_server.url)
        runs = [(await client.run("calls", call, wait=True)).run_id for _ in range(3)]

    code, out, err = await daemon.cli("results", call, "--json")
    assert code == 0, err
    document = json.loads(out)
    assert set(document) == {"results", "next_cursor"}
    assert [r["id"] for r in document["results"]] == runs[::-1], "newest first"
    assert {r["name"] for r in document["results"]} == {call}

    code, out, err = await daemon.cli("results", "--json")
    assert code == 0, err
    every = json.loads(out)
    assert set(every) == {"results", "next_cursor"}
    assert runs[-1] in {r["id"] for r in every["results"]}


async def test_results_follow_streams_new_results_as_json_lines(
    daemon: Daemon, token_server: RunningServer
) -> None:
    async with daemon.client() as client:
        call = await status_call(client, token_server.url)
        other = await status_call(client, token_server.url)
        follower = await start_cli("results", call, "--follow", "--json", env=daemon.env)
        try:
            assert follower.stdout is not None
            stdout = follower.stdout
            # Runs until one is followed: then the stream is live. (The daemon's subscriber count
            # said so only as long as an earlier test's stream was already gone from it.)
            probes: set[str] = set()

            async def followed() -> bool:
                probes.add((await client.run("calls", call, wait=True)).run_id)
                try:
                    line = await asyncio.wait_for(stdout.readline(), 0.5)
                except TimeoutError:
                    return False
                assert json.loads(line)["id"] in probes
                return True

            await eventually(followed, timeout=15, interval=0, what="the follower's first line")
            first = (await client.run("calls", call, wait=True)).run_id
            await client.run("calls", other, wait=True)
            second = (await client.run("calls", call, wait=True)).run_id

            lines: list[dict[str, Any]] = []
            while len(lines) < 2:
                line = json.loads(await asyncio.wait_for(stdout.readline(), 10))
                if line["id"] not in probes:  # a probe's line can come after the first one
                    lines.append(line)
            assert [line["id"] for line in lines] == [first, second]
            assert all(line["name"] == call and line["outcome"] == "PASS" for line in lines)
            assert follower.returncode is None, "--follow keeps running"
        finally:
            with contextlib.suppress(ProcessLookupError):
                follower.send_signal(signal.SIGTERM)
            await asyncio.wait_for(follower.wait(), 10)


async def test_events_arrive_for_runs_token_saves_and_resource_changes(
    daemon: Daemon, token_server: RunningServer
) -> None:
    prefix = unique("events")
    seen: list[dict[str, Any]] = []

    async with daemon.client() as client, daemon.client() as listener:
        await client.apply(token_project(token_server.url, prefix))

        async def listen() -> None:
            async for event in listener.events():
                seen.append(event.payload())

        reader = asyncio.create_task(listen())
        try:
            # Changes until one is seen: then the stream is live.
            probe = unique("PROBE").replace("-", "_").upper()

            async def streaming() -> bool:
                await client.put("variables", probe, {"value": "x"})
                await asyncio.sleep(0.2)
                return any(f"variables/{probe}" in e.get("resources", []) for e in seen)

            await eventually(streaming, interval=0, what="the event stream")
            variable = unique("EV").replace("-", "_").upper()
            await client.put("variables", variable, {"value": "x"})
            result = (await client.run("calls", f"{prefix}-orders", wait=True)).result
            assert result is not None and result.outcome == "PASS"

            def has(type_: str, **fields: Any) -> bool:
                return any(
                    e["type"] == type_ and all(e.get(k) == v for k, v in fields.items())
                    for e in seen
                )

            async def all_arrived() -> bool:
                return (
                    any(
                        e["type"] == "resource.changed"
                        and f"variables/{variable}" in e.get("resources", [])
                        for e in seen
                    )
                    and has("run.started", name=f"{prefix}-orders", trigger="manual")
                    and has("token.saved", token=f"{prefix}-token")
                    and has("run.finished", name=f"{prefix}-orders", outcome="PASS")
                )

            await eventually(all_arrived, timeout=5)
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader

    mine = [e for e in seen if f"{prefix}-orders" == e.get("name") or e.get("token")]
    order = [e["type"] for e in mine if e["type"] in ("run.started", "token.saved", "run.finished")]
    assert order.index("run.started") < order.index("token.saved") < order.index("run.finished")
    assert all("at" in e for e in seen)
