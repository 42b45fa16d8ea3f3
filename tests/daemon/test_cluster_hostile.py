"""A hostile or broken neighbour on the agents' PostgreSQL database (SPEC §13): any database user
can NOTIFY on the channels the agents listen to, or insert rows in their tables. Agents must skip
what they cannot read, with one clear log line, and keep working."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import psycopg
import pytest

from tests import postgres
from tests.daemon.conftest import Api
from tests.daemon.test_agents import Cluster, cluster, collect
from tests.support.polling import eventually

pytestmark = pytest.mark.slow

__all__ = ["cluster"]


def notify(database: str, channel: str, payloads: list[str]) -> None:
    with psycopg.connect(postgres.url_of(database), autocommit=True) as conn:
        for payload in payloads:
            conn.execute("SELECT pg_notify(%s, %s)", (channel, payload))


FORGED = [
    "not json",
    "",
    "[]",
    '"a string"',
    "null",
    '{"a": "x"}',
    '{"a": "x", "id": "abc"}',
    '{"a": "x", "id": 1e30}',
    '{"a": "x", "id": 99999999999999999999999}',
    '{"a": "x", "id": null}',
    '{"a": "x", "t": "run.finished", "d": [1], "at": "x"}',
    '{"a": "x", "t": "run.finished", "d": {}, "at": "not a time"}',
    '{"a": "x", "t": 5, "d": {"x": 1}}',
    '{"a": ["x"], "t": "nope", "d": {}, "at": "2026-01-01T00:00:00Z"}',
    json.dumps({"a": "x", "t": "run.finished", "d": {"k": "\u0000\x01" * 10}, "at": "x"}),
    "{" * 3000,
    "x" * 7999,
]


async def test_forged_event_notifications_are_skipped_without_reconnecting(
    cluster: Cluster, api: Api
) -> None:
    first = cluster.start("a1", "loc-a")
    second = cluster.start("a2", "loc-b")
    seen: list[dict[str, Any]] = []
    ready = asyncio.Event()
    task = asyncio.create_task(collect(second, seen, ready))
    try:
        await asyncio.wait_for(ready.wait(), 10)
        await asyncio.sleep(1)
        await asyncio.to_thread(notify, cluster.database, "apimd_events", FORGED)
        await asyncio.sleep(2)
        async with first.client() as client:
            await client.apply({"calls": [{"name": "c", "url": f"{api.url}/c"}]})
            accepted = await client.run("calls", "c", wait=True)

        async def arrived() -> bool:
            return any(
                e["type"] == "run.finished" and e.get("run_id") == accepted.run_id for e in seen
            )

        await eventually(arrived, timeout=15, interval=0.5, what="a1's run on a2's stream")
        # The forged payloads were skipped one by one: no reconnect, so no `lagged`.
        assert [e for e in seen if e["type"] == "lagged"] == []
        log = second.log_path.read_text(errors="replace")
        assert "reconnecting" not in log, log[-3000:]
        assert "Traceback" not in log and "Traceback" not in second.stderr()
        assert "not an event" in log, log[-3000:]
        # one line per payload, each cut short
        assert all(len(line) < 600 for line in log.splitlines()), log[-3000:]
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_two_agents_given_one_name_still_see_each_others_events(
    cluster: Cluster, api: Api
) -> None:
    first = cluster.start("twin", "loc-a")
    cluster.agents["twin-first"] = cluster.agents.pop("twin")
    second = cluster.start("twin", "loc-b")
    seen: list[dict[str, Any]] = []
    ready = asyncio.Event()
    task = asyncio.create_task(collect(second, seen, ready))
    try:
        await asyncio.wait_for(ready.wait(), 10)
        await asyncio.sleep(1)
        async with first.client() as client:
            await client.apply({"calls": [{"name": "c", "url": f"{api.url}/c"}]})
            accepted = await client.run("calls", "c", wait=True)

        async def arrived() -> bool:
            return any(
                e["type"] == "run.finished" and e.get("run_id") == accepted.run_id for e in seen
            )

        await eventually(arrived, timeout=15, interval=0.5, what="the first twin's run")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


@pytest.mark.xfail(
    strict=True,
    reason="Agents.announce_change (apimd/daemon/agents.py, not ours) NOTIFYs the agent's name, and"
    " follow_changes skips a notice carrying its own name: a twin never reloads. Fix: NOTIFY"
    " agents.relay.instance and compare with it",
)
async def test_an_apply_on_one_of_two_agents_given_one_name_reloads_the_other(
    cluster: Cluster, api: Api
) -> None:
    first = cluster.start("twin", "loc-a")
    cluster.agents["twin-first"] = cluster.agents.pop("twin")
    second = cluster.start("twin", "loc-b")
    async with first.client() as client:
        await client.apply({"calls": [{"name": "c", "url": f"{api.url}/c"}]})

    async def reloaded() -> bool:
        async with second.client() as client:
            return (await client.status()).counts["calls"] == 1

    await eventually(reloaded, timeout=10, interval=0.5, what="the second twin to reload")


ODD_ARGS: list[dict[str, Any]] = [
    {},
    {"schedule": "s", "target": "c", "location": "*", "due_us": 10**30},
    {"schedule": "s", "target": "c", "location": "*", "due_us": -(10**18)},
    {"schedule": "s", "target": "c", "location": "*", "due_us": "soon"},
    {"schedule": "s", "target": ["c"], "location": "*", "due_us": 0},
    {"schedule": "s", "target": "c" * 10_000, "location": "*", "due_us": 1},
    {"schedule": "s", "target": "c", "location": "*", "due_us": 1, "extra": 1},
    {"schedule": None, "target": None, "location": None, "due_us": None},
]
ODD_MANUAL: list[dict[str, Any]] = [
    {},
    {"target": "c", "run_id": "r1", "variables": "not sealed", "asked_by": "x"},
    {"target": "nope", "run_id": "r2", "variables": "", "asked_by": "x"},
]


def insert_jobs(database: str, task: str, queue: str, args: list[dict[str, Any]]) -> None:
    with psycopg.connect(postgres.url_of(database), autocommit=True) as conn:
        for one in args:
            conn.execute(
                "INSERT INTO procrastinate_jobs (queue_name, task_name, args) VALUES (%s, %s, %s)",
                (queue, task, json.dumps(one)),
            )


def job_states(database: str) -> list[str]:
    with psycopg.connect(postgres.url_of(database)) as conn:
        rows = conn.execute("SELECT status FROM procrastinate_jobs").fetchall()
    return [str(row[0]) for row in rows]


async def test_jobs_inserted_by_hand_with_odd_args_fail_with_a_clear_line(
    cluster: Cluster, api: Api
) -> None:
    agent = cluster.start("a1", "loc-a")
    async with agent.client() as client:
        await client.apply(
            {
                "calls": [{"name": "c", "url": f"{api.url}/c"}],
                "schedules": [{"name": "s", "every": "1h", "targets": ["c"], "enabled": False}],
            }
        )
    await asyncio.to_thread(insert_jobs, cluster.database, "apimd.run_firing", "apimd@*", ODD_ARGS)
    await asyncio.to_thread(
        insert_jobs, cluster.database, "apimd.run_manual", "apimd@loc-a", ODD_MANUAL
    )
    await asyncio.to_thread(insert_jobs, cluster.database, "apimd.nope", "apimd@*", [{}])

    async def all_done() -> bool:
        states = await asyncio.to_thread(job_states, cluster.database)
        return not any(s in ("todo", "doing") for s in states)

    await eventually(all_done, timeout=20, interval=0.5, what="the odd jobs to be taken")
    assert api.hits.get("/c", 0) == 0
    async with agent.client() as client:
        assert (await client.status()).pid == agent.pid
        assert (await client.results(name="c")).results == []
    log = agent.log_path.read_text(errors="replace")
    assert "Traceback" not in log and "Traceback" not in agent.stderr(), log[-4000:]
    failed = [line for line in log.splitlines() if " ERROR procrastinate" in line]
    assert len(failed) >= len(ODD_ARGS) + len(ODD_MANUAL) + 1, log[-4000:]
    assert all(len(line) < 1000 for line in failed), failed
    assert any("could not be decrypted" in line for line in failed), failed
