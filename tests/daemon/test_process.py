"""The daemon as a process (SPEC §1, §9): only its own user gets in, one daemon per state folder,
a killed daemon's socket is cleaned up, SIGTERM lets in-flight runs finish (or records them
CANCELLED) and exits 0, and the log holds no secrets or query strings."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import json
import os
import shutil
import signal
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from apimd.client import ApiError, Client, DaemonUnavailable
from apimd.demo.server import RunningServer
from tests import postgres
from tests.daemon.conftest import (
    Daemon,
    daemon_env,
    eventually,
    run_cli,
    short_home,
    start_daemon,
    stop_daemon,
    unique,
)
from tests.daemon.test_tokens import token_project

NOBODY = 65534


def _as_nobody_get_status(socket_path: Path) -> str:
    """In a forked child running as uid/gid 65534: GET /v1/status over the socket. Returns
    `refused <errno name>` or `http <status line>`. (Forked, not exec'd: the interpreter may live
    where that user cannot read.)"""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        outcome = "crashed"
        try:
            os.close(read_end)
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            probe.settimeout(5)
            try:
                probe.connect(str(socket_path))
                probe.sendall(b"GET /v1/status HTTP/1.0\r\nHost: apimd\r\n\r\n")
                answer = b""
                while chunk := probe.recv(65536):
                    answer += chunk
                outcome = "http " + answer.decode(errors="replace")
            except OSError as exc:
                outcome = f"refused {errno.errorcode.get(exc.errno or 0, exc.errno)}"
        except BaseException as exc:
            outcome = f"crashed {exc!r}"
        finally:
            os.write(write_end, outcome.encode())
            os._exit(0)
    os.close(write_end)
    chunks = []
    while chunk := os.read(read_end, 65536):
        chunks.append(chunk)
    os.close(read_end)
    os.waitpid(pid, 0)
    return b"".join(chunks).decode()


@pytest.mark.skipif(os.geteuid() != 0, reason="dropping to another uid needs root (as in CI)")
def test_the_socket_refuses_another_user(daemon: Daemon) -> None:
    outcome = _as_nobody_get_status(daemon.socket_path)
    assert outcome.startswith("refused"), outcome
    assert "EACCES" in outcome, "the 0700 folder and 0600 socket keep others out"

    # A socket made reachable by mistake still serves only the daemon's user (SO_PEERCRED).
    home_mode = daemon.home.stat().st_mode & 0o777
    socket_mode = daemon.socket_path.stat().st_mode & 0o777
    assert socket_mode == 0o600
    try:
        daemon.home.chmod(0o711)
        daemon.socket_path.chmod(0o666)
        outcome = _as_nobody_get_status(daemon.socket_path)
    finally:
        daemon.home.chmod(home_mode)
        daemon.socket_path.chmod(socket_mode)
    status_line = outcome.split("\r\n", 1)[0]
    assert status_line.startswith("http HTTP/") and " 403 " in status_line, outcome
    assert '"forbidden"' in outcome
    assert '"version"' not in outcome and "pid" not in outcome.split("\r\n\r\n", 1)[-1]


def test_the_state_files_are_private(daemon: Daemon) -> None:
    modes = {
        name: (daemon.home / name).stat().st_mode & 0o777
        for name in ("apimd.sock", "apimd.db", "secret.key", "daemon.lock", "daemon.log")
    }
    assert modes == dict.fromkeys(modes, 0o600)
    assert daemon.home.stat().st_mode & 0o077 == 0, "a mkdtemp home stays 0700 as the user set it"


async def test_a_second_daemon_on_the_same_home_refuses_naming_the_first(daemon: Daemon) -> None:
    code, out, err = await daemon.cli("daemon", timeout=30)
    assert code != 0
    assert f"pid {daemon.process.pid}" in err + out
    assert "already running" in err + out
    async with daemon.client() as client:
        assert (await client.status()).pid == daemon.process.pid, "the first one still serves"


@pytest.mark.both_stores
async def test_a_killed_daemon_leaves_a_stale_socket_that_the_next_one_removes(
    token_server: RunningServer, daemon_store: str
) -> None:
    home = short_home()
    first = await asyncio.to_thread(functools.partial(start_daemon, home, store=daemon_store))
    call = unique("committed")
    async with first.client() as client:
        await client.put("calls", call, {"url": f"{token_server.url}/api/status"})
        done = await client.run("calls", call, wait=True)
    assert done.result is not None and done.result.outcome == "PASS"

    first.kill()
    assert first.socket_path.exists(), "SIGKILL leaves the socket file behind"
    first.stderr_path.unlink(missing_ok=True)

    second = await asyncio.to_thread(
        functools.partial(start_daemon, home, store=daemon_store, database=first.database)
    )
    try:
        async with second.client() as client:
            status = await client.status()
            assert status.pid == second.process.pid
            kept = await client.result(done.run_id)
            assert (kept.name, kept.outcome) == (call, "PASS"), "committed results survive"
            again = await client.run("calls", call, wait=True)
            assert again.result is not None and again.result.outcome == "PASS"
    finally:
        await asyncio.to_thread(stop_daemon, second)


@pytest.mark.parametrize("kind", ["regular file", "folder", "link", "dangling link"])
async def test_a_socket_path_that_is_not_a_socket_is_refused_and_left_alone(kind: str) -> None:
    home = short_home()
    try:
        precious = home / "precious.txt"
        precious.write_text("data\n")
        where = home / "not-a-socket"
        if kind == "regular file":
            where = precious
        elif kind == "folder":
            where.mkdir()
        else:
            where.symlink_to(precious if kind == "link" else home / "nothing")
        env = daemon_env(home, APIMD_SOCKET=str(where))
        code, out, err = await run_cli("daemon", env=env, timeout=30)
        assert code == 1, out + err
        assert f"the socket path {where} is " in err and "refusing to replace it" in err, err
        assert "Traceback" not in err
        assert precious.read_text() == "data\n", "the file is left as it was"
        assert where.is_symlink() == kind.endswith("link") and where.exists() == (
            kind != "dangling link"
        )
        assert "removing stale socket" not in (home / "daemon.log").read_text()

        code, out, err = await run_cli("status", env=env)
        assert code == 1
        expected = "a symbolic link" if kind.endswith("link") else f"a {kind}"
        assert f"refusing to talk to {where}: it is {expected}, not a socket" in err, err
        assert "belongs to uid" not in err
    finally:
        shutil.rmtree(home, ignore_errors=True)


@contextlib.asynccontextmanager
async def daemon_on(
    home: Path, store: str = "sqlite", database: str | None = None
) -> AsyncIterator[Daemon]:
    """A daemon on `home` (and, on PostgreSQL, on `database`), stopped at the end."""
    running = await asyncio.to_thread(
        functools.partial(start_daemon, home, store=store, database=database)
    )
    try:
        yield running
    finally:
        if running.process.poll() is None:
            await asyncio.to_thread(stop_daemon, running, remove_home=False)
        running.stderr_path.unlink(missing_ok=True)


async def _read_events(daemon: Daemon) -> list[dict[str, Any]]:
    """Every event until the daemon ends the stream."""
    seen: list[dict[str, Any]] = []
    async with daemon.client() as listener:
        with contextlib.suppress(DaemonUnavailable):
            async for event in listener.events():
                seen.append(event.payload())
    return seen


async def _subscribed(client: Client) -> bool:
    return (await client.status()).counts["event_subscribers"] > 0


async def _running(client: Client, name: str) -> bool:
    return name in (await client.status()).running


@pytest.mark.both_stores
async def test_sigterm_lets_a_slow_run_finish_and_cancels_one_past_ten_seconds(
    token_server: RunningServer, daemon_store: str
) -> None:
    home = short_home()
    database = postgres.create_database() if daemon_store == "postgres" else None
    try:
        async with daemon_on(home, daemon_store, database) as daemon:
            async with daemon.client() as client:
                await client.put(
                    "calls",
                    "slow",
                    {
                        "url": f"{token_server.url}/api/slow?ms=3000",
                        "conditions": [{"source": "status", "op": "eq", "value": 200}],
                    },
                )
                await client.put(
                    "calls",
                    "too-slow",
                    {"url": f"{token_server.url}/api/slow?ms=14000", "timeout": 30},
                )
                run_id = (await client.run("calls", "slow")).run_id
                await eventually(lambda: _running(client, "slow"))
            assert await daemon.stop() == 0
            assert not daemon.socket_path.exists(), "the socket is removed"

        async with daemon_on(home, daemon_store, database) as daemon, daemon.client() as client:
            finished = await client.result(run_id)
            assert (finished.outcome, finished.result) == ("PASS", "COMPLETE")
            run_id = (await client.run("calls", "too-slow")).run_id
            await eventually(lambda: _running(client, "too-slow"))
            stream = asyncio.create_task(_read_events(daemon))
            await eventually(lambda: _subscribed(client))

            loop = asyncio.get_running_loop()
            started = loop.time()
            stopping = asyncio.create_task(daemon.stop())
            await asyncio.sleep(1)
            with pytest.raises((ApiError, DaemonUnavailable)) as refused:
                await client.run("calls", "slow")
            if isinstance(refused.value, ApiError):
                assert refused.value.status == 503, "no new runs while stopping"
            assert await stopping == 0
            assert 9 <= loop.time() - started < 15, "in-flight runs get 10 s"
            assert not daemon.socket_path.exists()
            await asyncio.wait_for(stream, 2)  # an open event stream did not hold it up

        async with daemon_on(home, daemon_store, database) as daemon, daemon.client() as client:
            cancelled = await client.result(run_id)
            assert (cancelled.outcome, cancelled.result) == ("SKIPPED", "CANCELLED")
            page = await client.results(name="too-slow")
            assert [r.id for r in page.results] == [run_id], "recorded once"
    finally:
        shutil.rmtree(home, ignore_errors=True)
        if database is not None:
            postgres.drop_database(database)


async def test_the_log_holds_no_secrets_and_no_query_strings(
    token_server: RunningServer,
) -> None:
    home = short_home()
    prefix = unique("log")
    variable_secret = "sv-" + os.urandom(8).hex()
    callback_code = "cb-code-" + os.urandom(8).hex()
    try:
        async with daemon_on(home) as daemon:
            async with daemon.client() as client:
                await client.apply(token_project(token_server.url, prefix))
                await client.put("variables", "API_KEY", {"value": variable_secret, "secret": True})
                await client.put(
                    "calls",
                    "keyed",
                    {
                        "url": f"{token_server.url}/api/status",
                        "params": {"key": "%%API_KEY%%"},
                        "headers": {"X-Api-Key": "%%API_KEY%%"},
                    },
                )
                await client.put(
                    "calls",
                    "keyed-down",
                    {"url": "http://127.0.0.1:9/down?key=%%API_KEY%%&also=%%API_KEY%%"},
                )
                for name in (f"{prefix}-orders", "keyed", "keyed-down"):
                    await client.run("calls", name, wait=True)
                token: Any = await client.get("tokens", f"{prefix}-token", reveal=True)
                access_token = token.variables["ACCESS_TOKEN"]
                assert access_token.startswith("at-")
                await client.results(name="keyed", since="2000-01-01T00:00:00Z")
                callback_url = (await client.status()).callback_url
            async with aiohttp.ClientSession() as session:
                url = f"{callback_url}?state=st-{callback_code}&code={callback_code}"
                async with session.get(url) as response:
                    assert response.status == 400
            await _socket_get(daemon.socket_path, f"/v1/tokens/{prefix}-token?reveal=true")
        log = (home / "daemon.log").read_text()
    finally:
        shutil.rmtree(home, ignore_errors=True)

    assert "GET /v1/tokens" in log, "access lines are logged, without their query"
    for secret in (variable_secret, access_token, callback_code):
        assert secret not in log
    assert "reveal=" not in log and "since=" not in log and "?state=" not in log


async def _socket_get(socket_path: Path, path: str) -> None:
    connector = aiohttp.UnixConnector(path=str(socket_path))
    async with (
        aiohttp.ClientSession(connector=connector) as session,
        session.get(f"http://apimd{path}") as response,
    ):
        assert response.status == 200


# --- the command line --------------------------------------------------------------------------


async def test_apimd_status_says_running_with_version_and_callback(daemon: Daemon) -> None:
    code, out, err = await daemon.cli("status")
    assert code == 0, err
    async with daemon.client() as client:
        status = await client.status()
    assert status.version in out
    assert f"pid {daemon.process.pid}" in out
    assert status.callback_url in out and "listening" in out
    assert status.callback_url.startswith("http://127.0.0.1:")
    assert not status.callback_url.startswith("http://127.0.0.1:0/")


async def test_apimd_run_through_the_daemon_exits_by_outcome(
    daemon: Daemon, token_server: RunningServer
) -> None:
    good, bad = unique("good"), unique("bad")
    async with daemon.client() as client:
        await client.put("calls", good, {"url": f"{token_server.url}/api/status"})
        await client.put("calls", bad, {"url": f"{token_server.url}/api/broken"})

    code, out, err = await daemon.cli("run", good)
    assert code == 0, out + err
    assert "PASS" in out and good in out

    code, out, err = await daemon.cli("run", bad, "--json")
    assert code == 1, out + err
    document = json.loads(out)
    assert (document["name"], document["outcome"], document["result"]) == (
        bad,
        "FAIL",
        "HTTP_SERVER_ERROR",
    )
    async with daemon.client() as client:
        assert (await client.results(name=bad)).results[0].id == document["id"]

    code, out, err = await daemon.cli("run", unique("nothing"))
    assert code == 2
    assert "no call or workflow" in err


async def test_apimd_start_and_stop_manage_a_background_daemon() -> None:
    home = short_home()
    env = daemon_env(home)
    pid: int | None = None
    try:
        code, out, err = await run_cli("start", env=env)
        assert code == 0, out + err
        assert "started" in out and str(home / "apimd.sock") in out
        async with Client(home / "apimd.sock") as client:
            pid = (await client.status()).pid
        assert f"pid {pid}" in out

        code, out, _err = await run_cli("start", env=env)
        assert code == 0 and "already running" in out

        code, out, err = await run_cli("stop", env=env)
        assert code == 0, out + err
        assert f"stopped (pid {pid})" in out
        assert not (home / "apimd.sock").exists()
        code, out, _err = await run_cli("status", env=env)
        assert code == 1 and "not running" in out
    finally:
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(home, ignore_errors=True)


@pytest.mark.parametrize(
    "args",
    [
        ("status",),
        ("run", "anything"),
        ("results",),
        ("tokens",),
        ("export",),
        ("token", "refresh", "anything"),
    ],
)
async def test_commands_say_clearly_when_no_daemon_runs(args: tuple[str, ...]) -> None:
    home = short_home()
    try:
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("APIMD_")},
            "APIMD_HOME": str(home),
            "APIMD_CALLBACK_PORT": "0",
        }
        code, out, err = await run_cli(*args, env=env)
    finally:
        shutil.rmtree(home, ignore_errors=True)
    assert code == 1, out + err
    said = out + err
    assert "not running" in said or "no apimd daemon" in said, said
    assert "Traceback" not in said
    if args != ("status",):
        assert "apimd start" in err
