"""The leader's firings of one instant dispatched together (issue 17, follow-up): few transactions,
each run once, and a leader SIGKILLed in the middle of one leaves no firing without its job nor
job without its firing. Real daemons on a PostgreSQL database of their own."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from tests import postgres
from tests.daemon.conftest import Api
from tests.daemon.test_agents import Cluster, cluster, leaders  # noqa: F401
from tests.support.polling import eventually

pytestmark = pytest.mark.slow

ANYWHERE_N = 200
EVERYWHERE_N = 100
ROWS = ANYWHERE_N + 2 * EVERYWHERE_N
"""Firing rows per minute: two live locations for each `locations: all` schedule."""


def minute_project(api: Api) -> dict[str, Any]:
    """300 schedules due at the start of every minute, one call each."""
    n = ANYWHERE_N + EVERYWHERE_N
    return {
        "calls": [{"name": f"c{i}", "url": f"{api.url}/c{i}"} for i in range(n)],
        "schedules": [
            {"name": f"s{i}", "cron": "* * * * *", "targets": [f"c{i}"]}
            | ({"locations": "all"} if i >= ANYWHERE_N else {})
            for i in range(n)
        ],
    }


def query(database: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(postgres.url_of(database), autocommit=True) as conn:
        return conn.execute(sql, params).fetchall()


def next_minute(after: datetime) -> datetime:
    return after.replace(second=0, microsecond=0) + timedelta(minutes=1)


def us(when: datetime) -> int:
    return int(when.timestamp()) * 1_000_000


def kill_in_dispatch(database: str, pid: int, until: float) -> bool:
    """SIGKILL `pid` as soon as a dispatch transaction (the leader's alone) is seen open; False if
    none was seen before `until` (monotonic). This query names `procrastinate_defer_jobs` too: its
    own backend is left out (it matched itself, and the leader was killed before the minute)."""
    with psycopg.connect(postgres.url_of(database), autocommit=True) as conn:
        while time.monotonic() < until:
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()"
                " AND state IN ('active', 'idle in transaction') AND (query LIKE 'INSERT INTO"
                " firings%%' OR query LIKE '%%procrastinate_defer_jobs%%'"
                " OR query LIKE 'UPDATE firings SET job_id%%')",
                (database,),
            ).fetchone()
            if row is not None and row[0] > 0:
                os.kill(pid, signal.SIGKILL)
                return True
            time.sleep(0.002)
    return False


@pytest.mark.timeout(300)  # up to two minutes waiting for minute boundaries
async def test_firings_of_one_instant_go_in_few_transactions_once_each_and_survive_a_kill(
    cluster: Cluster,  # noqa: F811
    api: Api,
) -> None:
    a1 = cluster.start("a1", "loc-a")
    b1 = cluster.start("b1", "loc-b")
    async with a1.client() as client:

        async def one_leader() -> list[str]:
            agents = (await client.agents()).agents
            return [a.agent for a in agents if a.leader] if len(agents) == 2 else []

        leader_name = (await eventually(one_leader, timeout=30, interval=0.5, what="a leader"))[0]
    leader, other = (a1, b1) if leader_name == "a1" else (b1, a1)
    if datetime.now(UTC).second >= 50:  # the apply well before the minute it fires
        await asyncio.sleep(61 - datetime.now(UTC).second)
    async with leader.client() as client:
        await client.apply(minute_project(api))
    first = next_minute(datetime.now(UTC))

    async def first_done() -> bool:
        rows = query(
            cluster.database,
            "SELECT count(*) FROM firings WHERE due_at = %s AND state = 'done'",
            us(first),
        )
        return bool(rows[0][0] == ROWS)

    await eventually(first_done, timeout=120, interval=1, what=f"{ROWS} firings done")
    # One dispatch transaction stamps its rows with one `created_at`.
    batches = query(
        cluster.database,
        "SELECT count(DISTINCT created_at), count(*), count(DISTINCT result_id) FROM firings"
        " WHERE due_at = %s",
        us(first),
    )[0]
    assert batches[0] <= 3, f"{ROWS} firings of one instant took {batches[0]} transactions"
    assert batches[1:] == (ROWS, ROWS)
    # Each firing ran once: one request per `locations: all` call and location, one per other.
    hits = {f"/c{i}": 1 if i < ANYWHERE_N else 2 for i in range(ANYWHERE_N + EVERYWHERE_N)}
    assert {path: api.hits[path] for path in hits} == hits

    # The next minute: the leader SIGKILLed while its dispatch transaction is open.
    second = first + timedelta(minutes=1)
    await asyncio.sleep(max(0.0, (second - datetime.now(UTC)).total_seconds() - 1))
    seen = await asyncio.to_thread(
        kill_in_dispatch, cluster.database, leader.process.pid, time.monotonic() + 15
    )
    assert seen, "no dispatch transaction seen at the minute"
    assert datetime.now(UTC) >= second, "killed before the minute's dispatch"
    await asyncio.to_thread(leader.process.wait, 10)

    async def taken_over() -> bool:
        return await leaders(other) == [other.extra_env["APIMD_AGENT"]]

    await eventually(taken_over, timeout=30, interval=0.5, what="the other agent to lead")
    orphans = query(
        cluster.database,
        "SELECT (SELECT count(*) FROM firings WHERE job_id IS NULL),"
        " (SELECT count(*) FROM procrastinate_jobs AS j WHERE j.task_name = 'apimd.run_firing'"
        " AND NOT EXISTS (SELECT 1 FROM firings AS f WHERE f.job_id = j.id))",
    )[0]
    assert orphans == (0, 0), "firings without their job, jobs without their firing"
    # All of the killed minute's firings were committed with their jobs, or none.
    killed = query(cluster.database, "SELECT count(*) FROM firings WHERE due_at = %s", us(second))
    assert killed[0][0] in (0, ROWS)
