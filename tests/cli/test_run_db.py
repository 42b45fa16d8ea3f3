"""`apimd run -f FILE --db PATH`: tokens and results kept between standalone runs."""

from __future__ import annotations

import asyncio
import functools
import json
import os
import sqlite3
import sys
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
from aiohttp import web
from pytest_aiohttp import AiohttpServer

from apimd.demo.server import RunningServer
from tests.cli.test_run_command import EXAMPLE, apimd
from tests.conftest import server_state
from tests.support.daemon import DaemonProcess as Daemon
from tests.support.daemon import start_cli, start_daemon, stop_daemon


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


def with_password(url: str, password: str) -> str:
    """`url` with `password` for its user (trust authentication ignores it)."""
    parts = urlsplit(url)
    netloc = f"{parts.username}:{password}@{parts.hostname}:{parts.port or 5432}"
    return urlunsplit(parts._replace(netloc=netloc))


async def test_run_db_errors_never_show_the_password(tmp_path: Path, pg_url: str) -> None:
    env = {"APIMD_HOME": str(tmp_path)}
    project = tmp_path / "p.yaml"
    project.write_text("calls:\n  - name: ok\n    url: http://127.0.0.1:9/x\n")
    closed_port = with_password(pg_url, "S3cr%40tPW").replace(":5432/", ":1/")
    missing = with_password(pg_url, "S3cr%40tPW") + "_missing"
    malformed = with_password(pg_url, "S3cr%zztPW")
    unparsed = "postgresql://root:S3cr%40tPW@[::1/x"
    for url, said in [
        (closed_port, "cannot connect to the PostgreSQL database apimd_test_"),
        (missing, '_missing" does not exist'),
        (malformed, "invalid percent-encoded token"),
        (unparsed, "cannot connect to the PostgreSQL database (malformed URL)"),
    ]:
        code, out, err = await apimd("run", "ok", "-f", str(project), "--db", url, env=env)
        assert code == 2, out + err
        assert said in err, err
        assert "S3cr" not in out + err and "postgresql://" not in err, err


async def test_a_run_on_postgresql_names_its_session_without_the_password(
    tmp_path: Path, pg_url: str, aiohttp_server: AiohttpServer
) -> None:
    arrived, release = asyncio.Event(), asyncio.Event()

    async def slow(_request: web.Request) -> web.Response:
        arrived.set()
        await release.wait()
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/slow", slow)
    server = await aiohttp_server(app)
    project = tmp_path / "p.yaml"
    project.write_text(f"calls:\n  - name: slow\n    url: {server.make_url('/slow')}\n")
    url = with_password(pg_url, "PwInApp")
    env = {**os.environ, "NO_COLOR": "1", "APIMD_HOME": str(tmp_path)}
    first = await start_cli("run", "slow", "-f", str(project), "--db", url, env=env)
    try:
        await asyncio.wait_for(arrived.wait(), 30)  # the run owns the database by now
        with psycopg.connect(pg_url) as conn:
            names = [
                str(row[0])
                for row in conn.execute(
                    "SELECT application_name FROM pg_stat_activity WHERE datname = %s",
                    (urlsplit(pg_url).path.lstrip("/"),),
                )
            ]
        assert f"apimd {first.pid} apimd run --db" in names, names
        assert not [name for name in names if "PwInApp" in name or "postgresql" in name], names

        code, out, err = await apimd("run", "slow", "-f", str(project), "--db", url, env=env)
        assert code == 2, out + err
        assert f"is in use by apimd run --db (pid {first.pid})" in err, err
        assert "PwInApp" not in err
    finally:
        release.set()
        said = await asyncio.wait_for(first.communicate(), 30)
    assert first.returncode == 0, b"".join(said).decode()


async def test_a_db_url_of_another_kind_or_a_file_that_is_no_database_is_refused(
    tmp_path: Path,
) -> None:
    project = tmp_path / "p.yaml"
    project.write_text("calls:\n  - name: ok\n    url: http://127.0.0.1:9/x\n")
    project.chmod(0o644)
    env = {**os.environ, "NO_COLOR": "1", "APIMD_HOME": str(tmp_path / "home")}
    for db, said in [
        ("mysql://root:S3cret@127.0.0.1/x", "--db: mysql:// databases are not supported; give "),
        (str(project), f"run --db {project}: {project} is not a SQLite database"),
        (str(tmp_path), f"run --db {tmp_path}: {tmp_path} is a folder, not a SQLite database"),
    ]:
        # In tmp_path: a URL taken for a relative file name would be made there.
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "apimd",
            "run",
            "ok",
            "-f",
            str(project),
            "--db",
            db,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
            cwd=tmp_path,
        )
        out, err = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 2, out.decode() + err.decode()
        assert err.decode().startswith(f"apimd: {said}"), err.decode()
        assert "S3cret" not in err.decode() and out == b""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.yaml"], "no file made, none locked"
    assert project.stat().st_mode & 0o777 == 0o644
