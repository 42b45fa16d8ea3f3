"""`apimd migrate --to postgresql://…` (SPEC §13) with real daemons: a SQLite daemon's signed-in
token, results and project move to PostgreSQL, and a daemon on the new URL keeps using the token
without asking the token server again."""

from __future__ import annotations

import asyncio
import functools
import json
import shutil

from apimd.demo.server import RunningServer
from tests.conftest import server_state
from tests.daemon.conftest import daemon_env, run_cli, short_home, start_daemon, stop_daemon
from tests.daemon.test_tokens import token_project


async def test_a_migrated_store_keeps_its_token_signed_in(
    token_server: RunningServer, pg_url: str
) -> None:
    home = short_home()
    try:
        sqlite_daemon = await asyncio.to_thread(start_daemon, home)
        async with sqlite_daemon.client() as client:
            await client.apply(token_project(token_server.url, "moved"))
            first = await client.run("calls", "moved-orders", wait=True)
        assert first.result is not None and first.result.outcome == "PASS"
        code, before, err = await sqlite_daemon.cli("tokens", "--json")
        assert code == 0, err
        await asyncio.to_thread(stop_daemon, sqlite_daemon, remove_home=False)
        assert server_state(token_server).token_requests == 1

        env = sqlite_daemon.env
        code, out, err = await run_cli("migrate", "--to", pg_url, env=env)
        assert code == 0, out + err
        assert "row counts verified" in out
        assert "token_runtime     1" in out and "results           2" in out, out

        # The SQLite file is moved away: everything now comes from PostgreSQL.
        (home / "apimd.db").rename(home / "old.db")
        pg_daemon = await asyncio.to_thread(
            functools.partial(start_daemon, home, APIMD_DATABASE_URL=pg_url)
        )
        try:
            code, after, err = await pg_daemon.cli("tokens", "--json")
            assert code == 0, err
            assert json.loads(after) == json.loads(before)
            assert json.loads(after)[0]["state"] == "valid"
            async with pg_daemon.client() as client:
                again = await client.run("calls", "moved-orders", wait=True)
                kept = await client.result(first.run_id)
                status = await client.status()
            assert again.result is not None and again.result.outcome == "PASS"
            assert kept.outcome == "PASS"
            assert status.db_path.startswith("PostgreSQL database apimd_test_")
            assert server_state(token_server).token_requests == 1, "still signed in"
            assert not (home / "apimd.db").exists()
        finally:
            await asyncio.to_thread(stop_daemon, pg_daemon, remove_home=False)
    finally:
        shutil.rmtree(home, ignore_errors=True)


async def test_migrate_refuses_while_the_daemon_runs_and_names_bad_urls(pg_url: str) -> None:
    home = short_home()
    daemon = await asyncio.to_thread(start_daemon, home)
    try:
        code, _out, err = await run_cli("migrate", "--to", pg_url, env=daemon.env)
        assert code == 2
        assert err.startswith(f"apimd: migrate: {home / 'apimd.db'} is in use by the apimd daemon")
        assert err.endswith(
            f"(pid {daemon.pid}); stop it first, or give another SQLite file with --from\n"
        )
        code, _out, err = await run_cli(
            "migrate", "--to", "mysql://root:S3cretPW@db/x", env=daemon.env
        )
        assert code == 2
        assert "--to: a mysql:// URL; expected a postgresql://user@host:port/database URL" in err
        assert "S3cretPW" not in err
    finally:
        await asyncio.to_thread(stop_daemon, daemon)


async def test_migrate_into_a_database_in_use_changes_nothing(pg_url: str) -> None:
    home = short_home()
    try:
        daemon = await asyncio.to_thread(start_daemon, home)
        async with daemon.client() as client:
            await client.put("calls", "kept", {"url": "http://127.0.0.1:9/x"})
        await asyncio.to_thread(stop_daemon, daemon, remove_home=False)
        code, out, err = await run_cli("migrate", "--to", pg_url, env=daemon.env)
        assert code == 0, out + err
        code, _out, err = await run_cli("migrate", "--to", pg_url, env=daemon.env)
        assert code == 2
        assert "is not empty (it has resources" in err  # (and the targets numbered at apply)
        assert "migrate into a new, empty database" in err
    finally:
        shutil.rmtree(home, ignore_errors=True)


async def test_a_bad_or_unreachable_database_url_is_a_clear_error() -> None:
    home = short_home()
    try:
        env = daemon_env(home, APIMD_DATABASE_URL="postgresql://apimd:pw-secret@127.0.0.1:9/nope")
        code, out, err = await run_cli("daemon", env=env, timeout=30)
        assert code == 1
        assert "cannot connect to the PostgreSQL database nope on 127.0.0.1:9" in err
        assert "pw-secret" not in out + err + (home / "daemon.log").read_text()
        assert "Traceback" not in err
        code, out, err = await run_cli("status", env={**env, "APIMD_DATABASE_URL": "mysql://x/y"})
        assert code == 1
        assert "APIMD_DATABASE_URL must be a postgresql://user@host:port/database URL" in err
    finally:
        shutil.rmtree(home, ignore_errors=True)


async def test_migrate_from_a_file_that_is_no_sqlite_store_leaves_it_alone(pg_url: str) -> None:
    home = short_home()
    try:
        project = home / "project.yaml"
        project.write_text("calls: []\n")
        project.chmod(0o644)
        empty = home / "empty.db"
        empty.touch()
        for source, said in [(project, "is not a SQLite database"), (empty, "is empty")]:
            code, out, err = await run_cli(
                "migrate", "--from", str(source), "--to", pg_url, env=daemon_env(home)
            )
            assert code == 2, out + err
            assert err == (
                f"apimd: --from: {source} {said}; give the daemon's SQLite store (apimd.db)\n"
            )
        assert sorted(p.name for p in home.iterdir()) == ["empty.db", "project.yaml"]
        assert project.read_text() == "calls: []\n" and project.stat().st_mode & 0o777 == 0o644
        assert empty.stat().st_size == 0
    finally:
        shutil.rmtree(home, ignore_errors=True)
