"""A hostile or broken neighbour on the agents' PostgreSQL database (SPEC §13): any database user
can NOTIFY on the channels the agents listen to, or insert rows in their tables. Agents must skip
what they cannot read, with one clear log line, and keep working."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
from typing import Any
from urllib.parse import urlsplit

import psycopg
import pytest

from tests import postgres
from tests.daemon.conftest import Api
from tests.daemon.test_agents import Cluster, cluster, firings, run_seen, watching
from tests.store.conftest import TEST_KEY
from tests.support.daemon import DaemonProcess
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
    async with watching(second) as seen:
        await asyncio.to_thread(notify, cluster.database, "apimd_events", FORGED)
        await asyncio.sleep(2)
        await run_seen(first, seen, api, what="a1's run on a2's stream")
        # The forged payloads were skipped one by one: no reconnect, so no `lagged`.
        assert [e for e in seen if e["type"] == "lagged"] == []
        log = second.log_path.read_text(errors="replace")
        assert "reconnecting" not in log, log[-3000:]
        assert "Traceback" not in log and "Traceback" not in second.stderr()
        assert "not an event" in log, log[-3000:]
        # one line per payload, each cut short
        assert all(len(line) < 600 for line in log.splitlines()), log[-3000:]


async def test_two_agents_given_one_name_still_see_each_others_events(
    cluster: Cluster, api: Api
) -> None:
    first = cluster.start("twin", "loc-a")
    cluster.agents["twin-first"] = cluster.agents.pop("twin")
    second = cluster.start("twin", "loc-b")
    async with watching(second) as seen:
        await run_seen(first, seen, api, what="the first twin's run")


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


def terminate_backends(database: str) -> int:
    """`pg_terminate_backend` on every session of `database` but this one."""
    with psycopg.connect(postgres.ADMIN_URL, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = %s AND pid <> pg_backend_pid()",
            (database,),
        ).fetchall()
    return len(rows)


async def test_agents_whose_sessions_are_terminated_carry_on_without_a_5xx(
    cluster: Cluster, api: Api
) -> None:
    agent = cluster.start("a1", "loc-a")
    async with agent.client() as client:
        await client.apply({"calls": [{"name": "c", "url": f"{api.url}/c"}]})
        await client.run("calls", "c", wait=True)
    assert await asyncio.to_thread(terminate_backends, cluster.database) >= 3
    statuses = []
    for path in ("/v1/results?name=c", "/v1/agents", "/v1/status", "/v1/calls/c", "/v1/stats/c"):
        reply = await asyncio.to_thread(agent.http.request, "GET", path)
        statuses.append((path, reply.status))
    assert all(status < 500 for _, status in statuses), statuses
    async with agent.client() as client:
        await client.run("calls", "c", wait=True)
        assert len((await client.results(name="c")).results) == 2

    async def leads_again() -> bool:
        async with agent.client() as client:
            return [a.leader for a in (await client.agents()).agents] == [True]

    await eventually(leads_again, timeout=20, interval=0.5, what="the agent to lead again")
    log = agent.log_path.read_text(errors="replace")
    assert "Traceback" not in log, log[-4000:]


async def test_a_scheduled_run_in_flight_when_its_sessions_die_is_still_recorded(
    cluster: Cluster, api: Api
) -> None:
    agent = cluster.start("a1", "loc-a")
    async with agent.client() as client:
        await client.apply(
            {
                "calls": [{"name": "slow", "url": f"{api.url}/slow", "timeout": 30}],
                "schedules": [{"name": "s", "every": "5s", "targets": ["slow"]}],
            }
        )

        async def started() -> bool:
            return api.hits["/slow"] >= 1

        await eventually(started, timeout=20, interval=0.2, what="the scheduled run to start")
        await asyncio.to_thread(terminate_backends, cluster.database)

        async def recorded() -> bool:
            return bool((await client.results(name="slow")).results)

        await eventually(recorded, timeout=20, interval=0.5, what="the run's result")
    first = min(firings(cluster.database), key=lambda row: int(row[3]))
    assert (first[4], first[6] is not None) == ("done", True), first


async def test_a_run_waited_for_in_another_location_whose_agent_dies_ends_with_an_answer(
    cluster: Cluster, api: Api
) -> None:
    asker = cluster.start("a1", "loc-a")
    runner = cluster.start("b1", "loc-b")
    async with asker.client() as client:
        await client.apply({"calls": [{"name": "slow", "url": f"{api.url}/slow", "timeout": 30}]})

        async def two_live() -> bool:
            return len((await client.agents()).agents) == 2

        await eventually(two_live, timeout=20, interval=0.5, what="both agents")

    async def kill_when_running() -> None:
        while api.hits["/slow"] == 0:
            await asyncio.sleep(0.1)
        runner.kill()

    killer = asyncio.create_task(kill_when_running())
    started = asyncio.get_running_loop().time()
    reply = await asyncio.to_thread(
        asker.http.request,
        "POST",
        "/v1/calls/slow/run",
        json.dumps({"wait": True, "location": "loc-b"}).encode(),
        timeout=45,
    )
    await killer
    assert reply.status == 409, reply.body
    assert "stopped answering" in reply.json()["error"]["message"]
    assert asyncio.get_running_loop().time() - started < 40


async def test_a_run_asked_of_a_location_whose_only_agent_is_stopped_is_withdrawn(
    cluster: Cluster, api: Api
) -> None:
    asker = cluster.start("a1", "loc-a")
    frozen = cluster.start("b1", "loc-b")
    async with asker.client() as client:
        await client.apply({"calls": [{"name": "c", "url": f"{api.url}/c"}]})

        async def two_live() -> bool:
            return len((await client.agents()).agents) == 2

        await eventually(two_live, timeout=20, interval=0.5, what="both agents")
    os.kill(frozen.pid, signal.SIGSTOP)
    try:
        reply = await asyncio.to_thread(
            asker.http.request,
            "POST",
            "/v1/calls/c/run",
            json.dumps({"wait": True, "location": "loc-b"}).encode(),
            timeout=45,
        )
    finally:
        os.kill(frozen.pid, signal.SIGCONT)
    assert reply.status == 409, reply.body
    assert "no live agent in loc-b" in reply.json()["error"]["message"]
    await asyncio.sleep(5)
    assert api.hits["/c"] == 0  # withdrawn: the agent that woke up did not run it


class Forwarder:
    """A TCP forwarder to the PostgreSQL server that can be cut: its sessions closed, and new
    ones accepted but never answered (a server gone behind a firewall)."""

    def __init__(self) -> None:
        self.cut = False
        self.port = 0
        self._writers: list[asyncio.StreamWriter] = []
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.append(writer)
        if self.cut:
            return  # accepted, never answered
        host, port = postgres.url_of("x").split("@")[1].split("/")[0].split(":")
        up_reader, up_writer = await asyncio.open_connection(host, int(port))
        self._writers.append(up_writer)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    def cut_off(self) -> None:
        self.cut = True
        for writer in self._writers:
            writer.transport.abort()
        self._writers.clear()

    async def close(self) -> None:
        self.cut_off()
        if self._server is not None:
            self._server.close()


async def test_status_and_results_when_the_store_is_unreachable(cluster: Cluster, api: Api) -> None:
    forwarder = Forwarder()
    await forwarder.start()
    server = urlsplit(postgres.ADMIN_URL).netloc.split("@")[-1]
    url = postgres.url_of(cluster.database).replace(server, f"127.0.0.1:{forwarder.port}")
    agent = DaemonProcess(
        extra_env={
            "APIMD_DATABASE_URL": url,
            "APIMD_AGENT": "a1",
            "APIMD_LOCATION": "loc-a",
            "APIMD_SECRET_KEY": TEST_KEY,
        }
    )
    try:
        await asyncio.to_thread(agent.start)
        async with agent.client() as client:
            await client.apply({"calls": [{"name": "c", "url": f"{api.url}/c"}]})
            await client.run("calls", "c", wait=True)
        forwarder.cut_off()
        began = time.monotonic()
        code, out, err = await agent.cli("status", timeout=60)
        assert code == 0, err
        assert time.monotonic() - began < 10
        assert "agent       a1 in loc-a" in out
        assert "warning     the store: it did not answer within 3 s" in out, out
        began = time.monotonic()
        reply = await asyncio.to_thread(agent.http.request, "GET", "/v1/results", timeout=60)
        assert reply.status == 503, reply.body  # not a 500: nothing is broken here
        assert reply.json()["error"]["code"] == "store_unavailable"
        assert "unavailable" in reply.json()["error"]["message"]
    finally:
        await forwarder.close()
        await asyncio.to_thread(agent.kill)
        agent.remove(keep_home=False)


ODD_LOCATIONS: list[Any] = [
    "",
    "x" * 10_000,
    "loc\x00a",
    "loc\na",
    "*",
    "all",
    "'; DROP TABLE firings; --",
    "loc-a%",
    "é",
    5,
    None,
    ["loc-a"],
    {"a": 1},
    "loc-nowhere",
]


async def test_odd_locations_in_a_run_request_are_refused_with_a_4xx(
    cluster: Cluster, api: Api
) -> None:
    agent = cluster.start("a1", "loc-a")
    async with agent.client() as client:
        await client.apply({"calls": [{"name": "c", "url": f"{api.url}/c"}]})
    seen = []
    for location in ODD_LOCATIONS:
        body = json.dumps({"location": location, "wait": True}).encode()
        reply = await asyncio.to_thread(
            agent.http.request, "POST", "/v1/calls/c/run", body, timeout=30
        )
        seen.append((str(location)[:20], reply.status))
    # None and the agent's own location run here; the rest are refused, none with a 5xx
    assert all(status < 500 for _, status in seen), seen
    refused = [where for where, status in seen if status >= 400]
    assert len(refused) == len(ODD_LOCATIONS) - 1, seen
    assert "firings" in {row[0] for row in tables(cluster.database)}
    for args in (["--location", "x" * 200], ["--location", "a b"], ["--location", ""]):
        code, out, err = await agent.cli("run", "c", *args)
        assert code == 2 and "Traceback" not in err, (args, out, err)


def tables(database: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(postgres.url_of(database)) as conn:
        return conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
        ).fetchall()


def tamper(database: str, sql: str) -> int:
    with psycopg.connect(postgres.url_of(database), autocommit=True) as conn:
        return conn.execute(sql).rowcount


async def test_a_tampered_firing_row_of_a_lost_run_does_not_jam_the_leader(
    cluster: Cluster, api: Api
) -> None:
    leader = cluster.start("lead", "loc-l")
    async with leader.client() as client:

        async def leading() -> bool:
            return [a.agent for a in (await client.agents()).agents if a.leader] == ["lead"]

        await eventually(leading, timeout=20, interval=0.5, what="the first agent to lead")
        worker = cluster.start("x", "loc-x")
        await client.apply(
            {
                "calls": [{"name": "slow", "url": f"{api.url}/slow", "timeout": 30}],
                "schedules": [
                    {"name": "s", "every": "10s", "targets": ["slow"], "locations": ["loc-x"]}
                ],
            }
        )

        async def in_flight() -> bool:
            return api.hits["/slow"] >= 1

        await eventually(in_flight, timeout=30, interval=0.5, what="a run of `slow` on agent x")
        worker.process.send_signal(signal.SIGSTOP)
        try:
            changed = await asyncio.to_thread(
                tamper,
                cluster.database,
                "UPDATE firings SET due_at = 9000000000000000000 WHERE state = 'running'",
            )
            assert changed == 1

            def stalled_jobs() -> list[tuple[Any, ...]]:
                with psycopg.connect(postgres.url_of(cluster.database)) as conn:
                    return conn.execute(
                        "SELECT id FROM procrastinate_jobs WHERE status = 'doing'"
                    ).fetchall()

            async def job_failed() -> bool:
                return not await asyncio.to_thread(stalled_jobs)

            await eventually(job_failed, timeout=30, interval=0.5, what="the lost job failed")
        finally:
            worker.process.send_signal(signal.SIGCONT)
        await asyncio.sleep(3)
    log = leader.log_path.read_text(errors="replace")
    assert log.count("housekeeping failed") == 0, log[-3000:]
    assert "Traceback" not in log
    assert "is unreadable" in log, log[-3000:]


async def test_a_tampered_next_fire_time_does_not_break_a_followers_summary(
    cluster: Cluster, api: Api
) -> None:
    first = cluster.start("a1", "loc-a")
    second = cluster.start("a2", "loc-a")
    async with first.client() as client:
        await client.apply(
            {
                "calls": [{"name": "c", "url": f"{api.url}/c"}],
                "schedules": [
                    {"name": "s", "every": "1h", "targets": ["c"]},
                    {"name": "t", "every": "2h", "targets": ["c"]},
                ],
            }
        )
    await asyncio.sleep(2)
    await asyncio.to_thread(
        tamper,
        cluster.database,
        "UPDATE meta SET value = CASE WHEN key = 'next_fire:s' THEN 'soon'"
        " ELSE '99999999999999999999' END WHERE key LIKE 'next_fire:%'",
    )
    now_us = int(time.time() * 1_000_000)
    bogus = [
        ("evil-1", "x" * 100, 1, 9 * 10**18, now_us + 10**9, 0, "not json"),
        ("evil-2", "\x01", -1, -(9 * 10**18), now_us, 1, '{"a": 1}'),
        ("evil-3", "", 2**31 - 1, 0, 9 * 10**18, 0, "[1, null, {}]"),
    ]
    await asyncio.to_thread(insert_agents, cluster.database, bogus)
    for agent in (first, second):
        for path in ("/v1/summary", "/v1/agents", "/v1/status"):
            reply = await asyncio.to_thread(agent.http.request, "GET", path)
            assert reply.status == 200, (agent.env["APIMD_AGENT"], path, reply.body)
        listed = await asyncio.to_thread(agent.http.request, "GET", "/v1/agents")
        assert {a["agent"] for a in listed.json()["agents"]} == {"a1", "a2"}
        assert "Traceback" not in agent.log_path.read_text(errors="replace")


def insert_agents(database: str, rows: list[tuple[Any, ...]]) -> None:
    with psycopg.connect(postgres.url_of(database), autocommit=True) as conn:
        for row in rows:
            conn.execute(
                "INSERT INTO agents (agent, location, pid, started_at, heartbeat_at, leader,"
                " running) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                row,
            )
