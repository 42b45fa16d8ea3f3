"""`apimd run -f FILE --db PATH`: tokens and results kept between standalone runs."""

from __future__ import annotations

import asyncio
import functools
import json
import os
import sqlite3
from pathlib import Path

import psycopg

from apimd.demo.server import RunningServer
from tests.cli.test_run_command import EXAMPLE, apimd
from tests.conftest import server_state
from tests.support.daemon import DaemonProcess as Daemon
from tests.support.daemon import start_daemon, stop_daemon


async def test_token_filled_by_one_run_is_reused_by_the_next(
    token_server: RunningServer, tmp_path: Path
) -> None:
    db = tmp_path / "state.db"
    env = {"APIMD_DEMO_URL": token_server.url, "APIMD_HOME": str(tmp_path)}
    for _ in range(3):
        code, out, err = await apimd(
            "run", "list-orders", "-f", str(EXAMPLE), "--db", str(db), env=env
        )
        assert code == 0, out + err
    assert server_state(token_server).token_requests == 1
    with sqlite3.connect(db) as conn:
        names = [
            row[0]
            for row in conn.execute(
                "SELECT t.name FROM results r JOIN targets t ON t.id = r.target"
            )
        ]
    assert names.count("list-orders") == 3
    assert os.stat(db).st_mode & 0o777 == 0o600


async def test_expired_token_in_the_db_is_refreshed(
    token_server: RunningServer, tmp_path: Path
) -> None:
    server_state(token_server).lifetime_s = 1
    db = tmp_path / "state.db"
    env = {"APIMD_DEMO_URL": token_server.url, "APIMD_HOME": str(tmp_path)}
    code, _, _ = await apimd("run", "list-orders", "-f", str(EXAMPLE), "--db", str(db), env=env)
    assert code == 0
    await asyncio.sleep(1.2)
    code, out, _ = await apimd(
        "run", "list-orders", "-f", str(EXAMPLE), "--db", str(db), "--json", env=env
    )
    assert code == 0
    assert json.loads(out)["timings_ms"]["auth_wait"] > 0
    assert server_state(token_server).token_requests == 2


async def run_beside(daemon: Daemon, db: str, token_server: RunningServer) -> tuple[int, str, str]:
    """`apimd run --db DB` while `daemon` runs (stopped afterwards)."""
    env = {"APIMD_DEMO_URL": token_server.url, "APIMD_HOME": str(daemon.home)}
    try:
        return await apimd("run", "list-orders", "-f", str(EXAMPLE), "--db", db, env=env)
    finally:
        await asyncio.to_thread(stop_daemon, daemon)


async def test_db_held_by_a_running_daemon_is_refused(token_server: RunningServer) -> None:
    daemon = await asyncio.to_thread(start_daemon)
    code, out, err = await run_beside(daemon, str(daemon.home / "apimd.db"), token_server)
    assert code == 2
    assert out == ""
    assert "in use by the apimd daemon" in err
    assert server_state(token_server).token_requests == 0


async def test_a_postgresql_db_keeps_the_token_between_runs(
    token_server: RunningServer, tmp_path: Path, pg_url: str
) -> None:
    env = {"APIMD_DEMO_URL": token_server.url, "APIMD_HOME": str(tmp_path)}
    for _ in range(2):
        code, out, err = await apimd(
            "run", "list-orders", "-f", str(EXAMPLE), "--db", pg_url, env=env
        )
        assert code == 0, out + err
    assert server_state(token_server).token_requests == 1
    with psycopg.connect(pg_url) as conn:
        names = [
            row[0]
            for row in conn.execute(
                "SELECT t.name FROM results r JOIN targets t ON t.id = r.target"
            )
        ]
    assert names.count("list-orders") == 2
    code, out, err = await apimd(
        "run", "list-orders", "-f", str(EXAMPLE), "--db", "postgresql://127.0.0.1:9/x", env=env
    )
    assert code == 2
    assert "cannot connect to the PostgreSQL database x on 127.0.0.1:9" in err


async def test_a_postgresql_db_held_by_a_running_daemon_is_refused(
    token_server: RunningServer, pg_url: str
) -> None:
    daemon = await asyncio.to_thread(functools.partial(start_daemon, APIMD_DATABASE_URL=pg_url))
    code, out, err = await run_beside(daemon, pg_url, token_server)
    assert code == 2
    assert out == ""
    assert "is in use by the apimd daemon for" in err
    assert server_state(token_server).token_requests == 0
