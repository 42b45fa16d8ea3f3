"""Agents sharing one PostgreSQL store (SPEC §13, issue 17): real daemon processes on a database of
their own, a loopback API they all check, schedules fired by the leader alone."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import re
import shutil
import signal
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from aiohttp import web

from apimd.client import ApiError
from apimd.model.result import Result
from tests import postgres
from tests.daemon.conftest import Api, Daemon, Receiver, serving, start_daemon
from tests.store.conftest import TEST_KEY
from tests.support.polling import eventually
from tests.support.web import app_of

pytestmark = pytest.mark.slow


@dataclass
class Cluster:
    database: str
    agents: dict[str, Daemon] = field(default_factory=dict)

    def start(self, name: str, location: str) -> Daemon:
        daemon = start_daemon(
            store="postgres",
            database=self.database,
            APIMD_AGENT=name,
            APIMD_LOCATION=location,
            APIMD_SECRET_KEY=TEST_KEY,
        )
        self.agents[name] = daemon
        return daemon

    def any(self) -> Daemon:
        return next(d for d in self.agents.values() if d.process.poll() is None)


@pytest.fixture
async def cluster(api: Api) -> AsyncIterator[Cluster]:
    """A database of its own for the agents; they are stopped while `api` still answers, and
    without blocking the loop it answers on."""
    postgres.require_postgres()
    database = postgres.create_database()
    running = Cluster(database)
    try:
        yield running
    finally:
        for daemon in running.agents.values():
            if daemon.process.poll() is None:
                code = await daemon.stop()
                assert code == 0, f"an agent exited {code} after SIGTERM:\n{daemon.stderr()}"
            daemon.stderr_path.unlink(missing_ok=True)
            shutil.rmtree(daemon.home, ignore_errors=True)
        postgres.drop_database(database)


def project(api: Api) -> dict[str, Any]:
    return {
        "calls": [
            {"name": "anywhere", "url": f"{api.url}/anywhere"},
            {"name": "everywhere", "url": f"{api.url}/everywhere"},
            {"name": "in-b", "url": f"{api.url}/in-b"},
        ],
        "schedules": [
            {"name": "s-any", "every": "2s", "targets": ["anywhere"]},
            {"name": "s-all", "every": "2s", "targets": ["everywhere"], "locations": "all"},
            {"name": "s-b", "every": "2s", "targets": ["in-b"], "locations": ["loc-b"]},
        ],
    }


async def all_results(daemon: Daemon, name: str) -> list[Result]:
    found: list[Result] = []
    cursor: str | None = None
    async with daemon.client() as client:
        while True:
            page = await client.results(name=name, limit=1000, cursor=cursor)
            found += page.results
            if page.next_cursor is None:
                return found
            cursor = page.next_cursor


def firings(database: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(postgres.url_of(database)) as conn:
        return conn.execute(
            "SELECT schedule, target, location, due_at, state, agent, result_id FROM firings"
        ).fetchall()


async def leaders(daemon: Daemon) -> list[str]:
    async with daemon.client() as client:
        return [a.agent for a in (await client.agents()).agents if a.leader]


async def test_three_agents_two_locations_one_run_per_firing_and_takeover(
    cluster: Cluster, api: Api
) -> None:
    a1 = cluster.start("a1", "loc-a")
    cluster.start("a2", "loc-a")
    cluster.start("b1", "loc-b")
    async with a1.client() as client:
        await client.apply(project(api))

        async def three_live_one_leader() -> bool:
            agents = (await client.agents()).agents
            return len(agents) == 3 and sum(a.leader for a in agents) == 1

        await eventually(
            three_live_one_leader,
            timeout=20,
            interval=0.5,
            what="3 live agents, one of them leading",
        )
        listed = (await client.agents()).agents
        assert sorted((a.agent, a.location) for a in listed) == [
            ("a1", "loc-a"),
            ("a2", "loc-a"),
            ("b1", "loc-b"),
        ]
        status = await client.status()
        assert (status.agent, status.location) == ("a1", "loc-a")
        assert len(status.agents) == 3
    code, out, err = await a1.cli("status")
    assert code == 0, err
    assert "agent       a1 in loc-a" in out
    listed_lines = [line.split() for line in out.splitlines() if line.startswith("    ")]
    assert sorted(line[:2] for line in listed_lines) == [
        ["a1", "loc-a"],
        ["a2", "loc-a"],
        ["b1", "loc-b"],
    ]
    assert sum("leader:" in " ".join(line) for line in listed_lines) == 1

    await asyncio.sleep(12)
    leader = (await leaders(a1))[0]
    cluster.agents[leader].kill()  # SIGKILL: its session ends, the lock goes with it
    killed_at = time.monotonic()
    survivor = cluster.any()

    async def new_leader() -> bool:
        return [x for x in await leaders(survivor) if x != leader] != []

    await eventually(new_leader, timeout=15 + 5, interval=0.5, what="another agent to lead")
    assert time.monotonic() - killed_at <= 15 + 5
    assert len(await leaders(survivor)) == 1  # the dead one no longer shows as leader
    await asyncio.sleep(10)

    rows = firings(cluster.database)
    keys = Counter((s, t, loc, due) for s, t, loc, due, *_ in rows)
    assert max(keys.values()) == 1
    results = {
        name: await all_results(survivor, name) for name in ("anywhere", "everywhere", "in-b")
    }
    # Every result belongs to exactly one firing, and no firing has two.
    by_firing = Counter(row[6] for row in rows if row[6] is not None)
    assert max(by_firing.values()) == 1
    for name, found in results.items():
        assert found, f"{name} never ran"
        assert all(r.agent in cluster.agents and r.location for r in found), name
    # `locations: [loc-b]` runs in loc-b only; `all` in both locations.
    assert {r.location for r in results["in-b"]} == {"loc-b"}
    assert {r.location for r in results["everywhere"]} == {"loc-a", "loc-b"}
    # Scheduled runs only: one request per recorded result (a run lost with its agent may or
    # may not have reached the API before the SIGKILL). The agents keep firing every 2 s, so each
    # bound is read in the order that makes it hold for the runs in flight: the requests counted
    # first, then every one of them recorded (a run that has hit the API records its result a
    # moment later); the results read first, then no more of them finished than requests made.
    for name in results:
        requests = api.hits[f"/{name}"]

        async def each_request_recorded(name: str = name, requests: int = requests) -> bool:
            return len(await all_results(survivor, name)) >= requests

        await eventually(
            each_request_recorded, timeout=20, interval=0.5, what=f"a result per /{name} request"
        )
        found = await all_results(survivor, name)
        finished = [r for r in found if r.result != "CANCELLED"]
        assert len(finished) <= api.hits[f"/{name}"], name


async def test_a_presumed_dead_agent_records_no_second_result_for_a_lost_firing(
    cluster: Cluster, api: Api, receiver: Receiver
) -> None:
    leader = cluster.start("lead", "loc-l")
    async with leader.client() as client:

        async def leading() -> bool:
            return await leaders(leader) == ["lead"]

        await eventually(leading, timeout=20, interval=0.5, what="the first agent to lead")
        worker = cluster.start("x", "loc-x")
        await client.apply(
            {
                "calls": [
                    {
                        "name": "slow",
                        "url": f"{api.url}/slow",
                        "timeout": 30,
                        # Every run FAILs and alerts: the dropped one must not.
                        "conditions": [{"source": "status", "op": "eq", "value": 201}],
                        "webhooks": [{"type": "http", "url": receiver.url}],
                    }
                ],
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

            async def lost() -> bool:
                page = await client.results(name="slow")
                return any(r.result == "CANCELLED" for r in page.results)

            await eventually(
                lost,
                timeout=25,
                interval=0.5,
                what="the run on the stopped agent to be recorded lost",
            )
            await asyncio.sleep(max(0.0, 20 - 15))
        finally:
            worker.process.send_signal(signal.SIGCONT)
        # The resumed agent finishes its run (the API answered long ago) and tries to record it.
        await asyncio.sleep(8)

        found = await all_results(leader, "slow")
        # Firings due while x was stopped ran too late when it resumed: recorded SKIPPED.
        skipped = [r for r in found if (r.error or "").startswith("skipped: ")]
        cancelled = [r for r in found if r.result == "CANCELLED" and r not in skipped]
        assert len(cancelled) == 1
        assert cancelled[0].agent == "x" and "agent lost" in (cancelled[0].error or "")
        # Each names its schedule and when it was due (SPEC §4), run, lost or skipped alike.
        assert all(r.schedule is not None and r.scheduled_at is not None for r in found)
        rows = [row for row in firings(cluster.database) if row[1] == "slow"]
        lost_rows = [row for row in rows if row[4] == "lost"]
        assert len(lost_rows) == 1 and lost_rows[0][6] == cancelled[0].id
        assert {r.id for r in skipped} == {row[6] for row in rows if row[4] == "dropped"}
        # Every result is the one result of its firing: none was added beside the lost one.
        recorded = {row[6] for row in rows if row[6] is not None}
        assert {r.id for r in found} == recorded
        log_text = worker.log_path.read_text()
        assert "was recorded lost; its result is dropped" in log_text
        # Its worker, pruned as dead, failed and restarted: one line, saying why (the database
        # error procrastinate wraps), not procrastinate's multi-line "Database error.".
        restarts = [line for line in log_text.splitlines() if "the job worker stopped" in line]
        assert restarts, log_text
        assert all(
            re.search(r"stopped \(psycopg\.\w+: \S.*\); restarting it$", line) for line in restarts
        ), restarts
        # Nor was the dropped result announced: every alert names a recorded result.
        alerted = {json.loads(r["body"])["result_id"] for r in receiver.requests}
        assert alerted <= recorded, alerted - recorded


@dataclass
class TokenApi:
    """An OAuth-like server: 8 s tokens from `/oauth/token`, `/api/orders` needs a live one."""

    url: str = ""
    issued: dict[str, float] = field(default_factory=dict)
    token_requests: list[float] = field(default_factory=list)
    rejected: int = 0


@pytest.fixture
async def token_api() -> AsyncIterator[TokenApi]:
    server = TokenApi()

    async def token(_request: web.Request) -> web.Response:
        now = time.monotonic()
        server.token_requests.append(now)
        value = f"t{len(server.token_requests)}"
        server.issued[value] = now + 8
        return web.json_response({"access_token": value, "expires_in": 8})

    async def orders(request: web.Request) -> web.Response:
        value = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if server.issued.get(value, 0) < time.monotonic():
            server.rejected += 1
            return web.json_response({"error": "invalid_token"}, status=401)
        return web.json_response({"orders": []})

    app = app_of(web.post("/oauth/token", token), web.get("/api/orders", orders))
    async with serving(app) as server.url:
        yield server


def token_project(url: str) -> dict[str, Any]:
    return {
        "auth": [
            {"name": "oauth", "type": "manual", "client_id": "c", "refresh_workflow": "refresh"}
        ],
        "tokens": [
            {
                "name": "tok",
                "auth": "oauth",
                "headers": {"Authorization": "Bearer %%ACCESS_TOKEN%%"},
            }
        ],
        "calls": [
            {
                "name": "get-token",
                "method": "POST",
                "url": f"{url}/oauth/token",
                "conditions": [
                    {
                        "source": "json",
                        "path": "$.access_token",
                        "op": "exists",
                        "save_as": "ACCESS_TOKEN",
                    },
                    {"source": "json", "path": "expires_in", "save_as": "EXPIRES_IN"},
                ],
            },
            {"name": "orders", "url": f"{url}/api/orders", "token": "tok"},
            {"name": "orders-anywhere", "url": f"{url}/api/orders", "token": "tok"},
        ],
        "workflows": [{"name": "refresh", "steps": ["get-token"]}],
        "schedules": [
            {"name": "s-all", "every": "2s", "targets": ["orders"], "locations": "all"},
            {"name": "s-any", "every": "2s", "targets": ["orders-anywhere"]},
        ],
    }


@pytest.mark.parametrize("victim", ["leader", "follower"])
async def test_sixty_seconds_three_agents_sigkill_in_loc_a(
    cluster: Cluster, token_api: TokenApi, victim: str
) -> None:
    """The done-when of issue 17: at most one result per firing, no gap in loc-a longer than the
    15 s takeover plus one interval, one token request per expiry for the whole cluster."""
    a1 = cluster.start("a1", "loc-a")
    a2 = cluster.start("a2", "loc-a")
    cluster.start("b1", "loc-b")
    started = time.monotonic()
    async with a1.client() as client:
        await client.apply(token_project(token_api.url))

        async def three_live() -> bool:
            agents = (await client.agents()).agents
            return len(agents) == 3 and sum(a.leader for a in agents) == 1

        await eventually(
            three_live, timeout=20, interval=0.5, what="3 live agents, one of them leading"
        )
    await asyncio.sleep(20)
    leader = (await leaders(a1))[0]
    if victim == "leader" and leader.startswith("a"):
        killed = cluster.agents[leader]
    else:  # a follower of loc-a (or the leader is in loc-b: kill a loc-a agent all the same)
        killed = a2 if leader == "a1" else a1
    killed.kill()
    survivor = cluster.any()
    await asyncio.sleep(max(40.0, 60 - (time.monotonic() - started)))

    rows = firings(cluster.database)
    results = await all_results(survivor, "orders") + await all_results(survivor, "orders-anywhere")
    # Each result is the one result of one firing: none without a firing, none twice.
    recorded = [row[6] for row in rows if row[6] is not None]
    assert len(recorded) == len(set(recorded))
    assert {r.id for r in results} == set(recorded)
    # loc-a never went quiet for longer than the takeover plus one interval.
    in_a = sorted(r.started_at for r in results if r.location == "loc-a" and r.name == "orders")
    assert in_a, "loc-a never ran"
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(in_a)]
    assert max(gaps) <= 15 + 2, gaps
    assert {r.location for r in results if r.name == "orders"} == {"loc-a", "loc-b"}
    # One token request per expiry for the cluster: 8 s tokens refreshed 0.8 s early, so two
    # requests closer than that are a refresh spent twice.
    assert len(token_api.token_requests) >= 5
    spacing = [b - a for a, b in itertools.pairwise(token_api.token_requests)]
    assert min(spacing) >= 6, spacing


async def collect(daemon: Daemon, into: list[dict[str, Any]], ready: asyncio.Event) -> None:
    async with daemon.client() as client:
        stream = client.events()
        ready.set()
        async for event in stream:
            into.append(event.payload())


@contextlib.asynccontextmanager
async def watching(daemon: Daemon) -> AsyncIterator[list[dict[str, Any]]]:
    """The events of `daemon`'s stream while the block runs (open on the daemon's side when
    the block starts)."""
    seen: list[dict[str, Any]] = []
    ready = asyncio.Event()
    task = asyncio.create_task(collect(daemon, seen, ready))
    try:
        await asyncio.wait_for(ready.wait(), 10)
        await asyncio.sleep(1)
        yield seen
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def run_seen(daemon: Daemon, seen: list[dict[str, Any]], api: Api, *, what: str) -> str:
    """Apply and run a call `c` on `daemon`; wait until its `run.finished` is in `seen`."""
    async with daemon.client() as client:
        await client.apply({"calls": [{"name": "c", "url": f"{api.url}/c"}]})
        accepted = await client.run("calls", "c", wait=True)

    async def arrived() -> bool:
        return any(e["type"] == "run.finished" and e.get("run_id") == accepted.run_id for e in seen)

    await eventually(arrived, timeout=15, interval=0.5, what=what)
    return accepted.run_id


async def test_events_of_every_agent_reach_every_agents_stream(cluster: Cluster, api: Api) -> None:
    first = cluster.start("a1", "loc-a")
    second = cluster.start("a2", "loc-b")
    seen_first: list[dict[str, Any]] = []
    seen_second: list[dict[str, Any]] = []
    ready = [asyncio.Event(), asyncio.Event()]
    tasks = [
        asyncio.create_task(collect(first, seen_first, ready[0])),
        asyncio.create_task(collect(second, seen_second, ready[1])),
    ]
    try:
        await asyncio.wait_for(asyncio.gather(*(r.wait() for r in ready)), 10)
        await asyncio.sleep(1)  # both streams are open on the daemons' side
        # An apply this large makes a `resource.changed` over the 7 KB a NOTIFY carries.
        calls = [{"name": f"call-{i:03d}-{'x' * 40}", "url": f"{api.url}/c"} for i in range(200)]
        async with first.client() as client:
            await client.apply({"calls": calls})
            accepted = await client.run("calls", calls[0]["name"], wait=True)

        def finished(seen: list[dict[str, Any]]) -> list[dict[str, Any]]:
            return [
                e
                for e in seen
                if e["type"] == "run.finished" and e.get("run_id") == accepted.run_id
            ]

        async def arrived() -> bool:
            return bool(finished(seen_second))

        await eventually(arrived, timeout=15, interval=0.5, what="a1's run.finished on a2's stream")
        await asyncio.sleep(1)
        assert len(finished(seen_first)) == 1  # its own, not echoed back
        assert len(finished(seen_second)) == 1
        # Relayed in the order they happened (a batch is one NOTIFY statement).
        kinds = [e["type"] for e in seen_second if e.get("run_id") == accepted.run_id]
        assert kinds.index("run.started") < kinds.index("run.finished"), kinds
        changed = [e for e in seen_second if e["type"] == "resource.changed"]
        assert changed and len(changed[0]["resources"]) == 200
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def test_apimd_mutex_holds_across_agents(cluster: Cluster) -> None:
    active = {"now": 0, "max": 0}

    async def slow(_request: web.Request) -> web.Response:
        active["now"] += 1
        active["max"] = max(active["max"], active["now"])
        await asyncio.sleep(1.5)
        active["now"] -= 1
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_get("/slow", slow)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}/slow"
    try:
        first = cluster.start("a1", "loc-a")
        second = cluster.start("a2", "loc-b")
        async with first.client() as one, second.client() as two:
            await one.apply(
                {"calls": [{"name": "one-at-a-time", "url": url, "tags": ["apimd:mutex"]}]}
            )

            async def on_second() -> bool:
                names = [getattr(c, "name", None) for c in await two.list("calls")]
                return "one-at-a-time" in names

            await eventually(
                on_second, timeout=10, interval=0.5, what="the apply to reach the second agent"
            )
            runs = [
                client.run("calls", "one-at-a-time", wait=True) for client in (one, two, one, two)
            ]
            done = await asyncio.gather(*runs)
        assert all(r.result is not None and r.result.outcome.value == "PASS" for r in done)
        assert active["max"] == 1
    finally:
        for daemon in cluster.agents.values():
            if daemon.process.poll() is None:
                await daemon.stop()
        await runner.cleanup()


async def test_a_run_asked_of_one_agent_for_another_location_runs_there(
    cluster: Cluster, api: Api
) -> None:
    """`location` in a run request: the run goes on that location's queue and an agent there
    runs it (its variables sealed on the way); an unknown location is a 400 naming the live
    ones. A follower's dashboard shows the leader's next run times."""
    a1 = cluster.start("a1", "loc-a")
    cluster.start("b1", "loc-b")
    async with a1.client() as client:
        await client.apply(
            {
                "calls": [{"name": "probe", "url": f"{api.url}/probe?v=%%PROBE_VALUE%%"}],
                "schedules": [{"name": "s-probe", "every": "5s", "targets": ["probe"]}],
            }
        )

        async def two_live() -> bool:
            agents = (await client.agents()).agents
            return len(agents) == 2 and sum(a.leader for a in agents) == 1

        await eventually(
            two_live, timeout=20, interval=0.5, what="2 live agents, one of them leading"
        )
        secret = "sealed-7f3a9c"
        there = await client.run(
            "calls", "probe", wait=True, location="loc-b", variables={"PROBE_VALUE": secret}
        )
        assert there.result is not None and there.result.outcome == "PASS"
        assert (there.result.location, there.result.agent) == ("loc-b", "b1")
        assert there.result.trigger == "manual" and there.result.id == there.run_id
        here = await client.run("calls", "probe", wait=True, location="loc-a")
        assert here.result is not None and here.result.agent == "a1"
        # Results from two places: `apimd results` says where each ran.
        code, out, err = await a1.cli("results", "probe", env={"COLUMNS": "200"})
        assert code == 0 and "WHERE" in out.splitlines()[0], (out, err)
        assert "loc-b/b1" in out and "loc-a/a1" in out, out
        # Queued while b1 is stopped: the job waits in the queue, its variables sealed.
        cluster.agents["b1"].process.send_signal(signal.SIGSTOP)
        try:
            queued = await client.run(
                "calls", "probe", location="loc-b", variables={"PROBE_VALUE": secret}
            )
            assert queued.result is None
            with psycopg.connect(postgres.url_of(cluster.database)) as conn:
                jobs = conn.execute(
                    "SELECT args::text FROM procrastinate_jobs WHERE status = 'todo'"
                ).fetchall()
        finally:
            cluster.agents["b1"].process.send_signal(signal.SIGCONT)
        assert [row for row in jobs if queued.run_id in row[0]], jobs
        assert not any(secret in row[0] for row in jobs), jobs

        async def recorded() -> bool:
            page = await client.results(name="probe", limit=50)
            return any(r.id == queued.run_id and r.agent == "b1" for r in page.results)

        await eventually(recorded, timeout=15, interval=0.5, what="the queued run's result from b1")
        with pytest.raises(ApiError) as refused:
            await client.run("calls", "probe", wait=True, location="nowhere")
        assert refused.value.status == 400
        assert "no live agent in 'nowhere'; the live locations are loc-a, loc-b" in str(
            refused.value
        )
    code, out, err = await a1.cli(
        "run", "probe", "--location", "loc-b", "--var", "PROBE_VALUE=1", "--json"
    )
    assert code == 0, (out, err)
    assert Result.model_validate_json(out).agent == "b1"
    code, out, err = await a1.cli("run", "probe", "--location", "nowhere")
    assert code == 2 and "no live agent in 'nowhere'" in err, (out, err)
    code, out, err = await a1.cli("run", "probe", "--location", "loc-b", "-f", "project.yaml")
    assert code == 2 and "--location goes with one NAME run through the daemon" in err, err

    leader = (await leaders(a1))[0]
    follower = next(d for name, d in cluster.agents.items() if name != leader)
    async with follower.client() as client, cluster.agents[leader].client() as lead:

        async def same_next_run() -> bool:
            theirs = next(t for t in (await client.summary()).targets if t.name == "probe")
            ours = next(t for t in (await lead.summary()).targets if t.name == "probe")
            return theirs.next_run is not None and theirs.next_run == ours.next_run

        await eventually(
            same_next_run,
            timeout=15,
            interval=0.5,
            what="the follower's next run of probe to be the leader's",
        )
        # A schedule applied through the follower: the leader fires it, the follower shows when.
        await client.apply({"calls": [{"name": "probe2", "url": f"{api.url}/p2"}]})
        await client.put(
            "schedules", "s-probe2", {"name": "s-probe2", "every": "1h", "targets": ["probe2"]}
        )

        async def shown() -> bool:
            found = [t for t in (await client.summary()).targets if t.name == "probe2"]
            return bool(found) and found[0].next_run is not None

        await eventually(
            shown, timeout=15, interval=0.5, what="the follower to show the new schedule's next run"
        )
        added = next(t for t in (await client.summary()).targets if t.name == "probe2")
        assert added.next_run is not None
        assert timedelta(minutes=59) < added.next_run - datetime.now(UTC) <= timedelta(hours=1)


async def test_reminders_go_once_per_cluster_and_late_firings_are_recorded_skipped(
    cluster: Cluster, api: Api, receiver: Receiver
) -> None:
    """`repeat_every` is the leader's alone (two agents running the failing target); a firing
    that could only start after its interval is a SKIPPED result saying why, fenced on its firing
    row like any other."""
    a1 = cluster.start("a1", "loc-a")
    cluster.start("b1", "loc-b")
    hook = {"type": "http", "url": receiver.url, "repeat_every": "2s"}
    async with a1.client() as client:
        await client.apply(
            {
                "calls": [
                    {
                        "name": "down",
                        "url": f"{api.url}/down",
                        "conditions": [{"source": "status", "op": "eq", "value": 500}],
                        "webhooks": [hook],
                    },
                    {"name": "slow", "url": f"{api.url}/slow", "timeout": 30},
                ],
                "schedules": [
                    {"name": "s-down", "every": "1s", "targets": ["down"], "locations": "all"},
                    {"name": "s-slow", "every": "2s", "targets": ["slow"], "locations": ["loc-a"]},
                ],
            }
        )

        def sent(event: str) -> list[float]:
            return [r["at"] for r in receiver.requests if json.loads(r["body"])["event"] == event]

        async def alerted() -> bool:
            return bool(sent("alert"))

        await eventually(alerted, timeout=30, interval=0.5, what="the alert of `down`")
        # An apply through b1 reloads every agent: each takes up the alert's reminder.
        async with cluster.agents["b1"].client() as other:
            await other.put("calls", "idle", {"name": "idle", "url": f"{api.url}/idle"})
        counted_from = time.monotonic()
        await asyncio.sleep(12)
        repeats = [at for at in sent("repeat") if at >= counted_from]
        assert len(sent("alert")) == 1
        # One reminder every 2 s for the cluster (6 in 12 s), not one per agent (12).
        assert 3 <= len(repeats) <= 8, repeats
        spacing = [b - a for a, b in itertools.pairwise(repeats)]
        assert min(spacing) >= 1.5, spacing
        down = await all_results(a1, "down")
        assert {r.agent for r in down} == {"a1", "b1"}  # both agents ran the failing target

        # Resolved by whichever agent runs it next: the reminders stop for the whole cluster.
        fixed = {"source": "status", "op": "eq", "value": 200}
        await client.put(
            "calls",
            "down",
            {"name": "down", "url": f"{api.url}/down", "conditions": [fixed], "webhooks": [hook]},
        )

        async def passing() -> bool:
            return (await client.results(name="down", limit=1)).results[0].outcome == "PASS"

        await eventually(passing, timeout=15, interval=0.5, what="`down` to pass again")
        resolved_at = time.monotonic()
        await asyncio.sleep(5)
        assert [at for at in sent("repeat") if at > resolved_at + 0.5] == []

        slow = await all_results(a1, "slow")
    skipped = [r for r in slow if r.result == "CANCELLED"]
    assert skipped, [(r.result, r.error) for r in slow]
    for result in skipped:
        assert result.outcome == "SKIPPED" and (result.location, result.agent) == ("loc-a", "a1")
        assert result.scheduled_at == result.started_at and result.schedule is not None
        assert result.error is not None
        assert result.error.startswith("skipped: it could start only ")
        assert "more than its 2 s interval (the previous run of slow in loc-a" in result.error
    rows = [row for row in firings(cluster.database) if row[1] == "slow"]
    dropped = {row[6] for row in rows if row[4] == "dropped"}
    assert {r.id for r in skipped} == dropped
    recorded = [row[6] for row in rows if row[6] is not None]
    assert len(recorded) == len(set(recorded)) and {r.id for r in slow} == set(recorded)


async def test_status_says_which_scheduled_location_has_no_live_agent(
    cluster: Cluster, api: Api
) -> None:
    """A schedule's location with no live agent runs nothing (its jobs are dropped): `apimd
    status` and `GET /v1/status` say so, until an agent of that location is live."""
    a1 = cluster.start("a1", "loc-a")
    async with a1.client() as client:
        await client.apply(
            {
                "calls": [{"name": "in-b", "url": f"{api.url}/in-b"}],
                "schedules": [
                    {
                        "name": "s-ab",
                        "every": "1h",
                        "targets": ["in-b"],
                        "locations": ["loc-a", "loc-b"],
                    }
                ],
            }
        )
        status = await client.status()
        assert status.clustered
        assert status.unserved_locations == ["loc-b"]
    code, out, _ = await a1.cli("status")
    assert code == 0
    assert "no live agent in loc-b" in out
    assert f"a1               loc-a        pid {a1.process.pid}" in out  # alone, still listed
    assert "1 call, 0 workflows, 0 tokens" in out
    cluster.start("b1", "loc-b")

    async def served() -> bool:
        async with a1.client() as client:
            return (await client.status()).unserved_locations == []

    await eventually(served, timeout=30)
