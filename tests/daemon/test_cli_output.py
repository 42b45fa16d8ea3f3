"""What `apimd` prints, as a user reads it (issue 10 points 12, 14, 15, 18): apply reports what
really changed, token errors are never cut when piped, `token show`, step results found by the
step's name, the log path in `status`, and help that names every command and setting."""

from __future__ import annotations

import asyncio
import json
import os
import re
import threading
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from ruamel.yaml import YAML

from apimd.client import ApiError
from apimd.demo.server import RunningServer
from apimd.settings import KEYS
from tests.daemon.conftest import Daemon, Receiver, unique
from tests.support.daemon import start_cli
from tests.support.web import app_of

DEAD_URL = "http://127.0.0.1:9/nothing"


def write_yaml(path: Path, document: dict[str, Any]) -> Path:
    YAML().dump(document, path)
    return path


async def test_apply_reports_a_token_state_the_file_gives_instead_of_nothing_changed(
    daemon: Daemon, tmp_path: Path
) -> None:
    auth, token = unique("auth"), unique("token")
    document: dict[str, Any] = {
        "version": 1,
        "auth": [{"name": auth, "type": "manual"}],
        "tokens": [{"name": token, "auth": auth, "variables": {"ACCESS_TOKEN": "first"}}],
    }
    path = write_yaml(tmp_path / "p.yaml", document)
    code, out, err = await daemon.cli("apply", str(path))
    assert code == 0, err
    assert f"auth/{auth}" in out and f"tokens/{token}" in out

    document["tokens"][0]["variables"] = {"ACCESS_TOKEN": "second"}
    code, out, err = await daemon.cli("apply", str(write_yaml(path, document)))
    assert code == 0, err
    assert "nothing changed" not in out, out
    assert out.splitlines()[0] == f"applied {path}: token state set for 1, 2 unchanged"
    assert f"state set  tokens/{token}" in out
    assert "second" not in out  # the value itself is a secret

    code, out, err = await daemon.cli("apply", str(path))
    assert code == 0, err
    assert "nothing changed (2 unchanged)" in out


async def test_apply_reports_shape_errors_and_unknown_references_in_one_pass(
    daemon: Daemon, tmp_path: Path
) -> None:
    stored, flow = unique("stored-call"), unique("flow")
    held = write_yaml(tmp_path / "held.yaml", {"calls": [{"name": stored, "url": DEAD_URL}]})
    assert (await daemon.cli("apply", str(held)))[0] == 0
    misspelt = stored[:-1]
    bad = write_yaml(
        tmp_path / "bad.yaml",
        {
            "calls": [{"name": unique("new"), "url": DEAD_URL, "timout": 3}],
            "workflows": [{"name": flow, "steps": [stored, misspelt]}],
        },
    )
    code, _out, err = await daemon.cli("apply", str(bad))
    assert code == 2
    assert "unknown field `timout`; did you mean `timeout`?" in err
    # The step the daemon holds is known; the misspelt one is named with the nearest name.
    assert f"unknown call {misspelt!r}; did you mean {stored!r}?" in err
    assert "2 problems found" in err, err


async def test_a_file_the_daemon_refuses_says_nothing_changed_once(
    daemon: Daemon, tmp_path: Path
) -> None:
    """Only the daemon knows the maintenance window names a target nobody has."""
    window, missing = unique("window"), unique("missing")
    bad = write_yaml(
        tmp_path / "refused.yaml",
        {
            "maintenance": [
                {"name": window, "cron": "0 3 * * *", "duration": "1h", "targets": [missing]}
            ]
        },
    )
    code, _out, err = await daemon.cli("apply", str(bad))
    assert code == 2
    assert f"unknown call or workflow {missing!r}" in err, err
    assert f"{bad} was not applied: 1 problem found; nothing was changed" in err, err
    assert err.count("nothing") == 1, err


async def test_token_errors_are_whole_when_piped_and_token_show_prints_the_whole_state(
    daemon: Daemon, tmp_path: Path
) -> None:
    auth, token, fetch, refresh = unique("auth"), unique("tok"), unique("fetch"), unique("wf")
    document = {
        "auth": [{"name": auth, "type": "manual", "refresh_workflow": refresh}],
        "tokens": [{"name": token, "auth": auth}],
        "calls": [{"name": fetch, "url": DEAD_URL + "/" + "x" * 80}],
        "workflows": [{"name": refresh, "steps": [fetch]}],
    }
    assert (await daemon.cli("apply", str(write_yaml(tmp_path / "t.yaml", document))))[0] == 0
    code, out, _err = await daemon.cli("token", "refresh", token)
    assert code == 1 and out.startswith(f"token {token}: "), out
    code, listed, err = await daemon.cli("tokens", "--json")
    assert code == 0, err
    (entry,) = [t for t in json.loads(listed) if t["name"] == token]
    last_error = entry["last_error"]
    assert len(last_error) > 60

    code, table, err = await daemon.cli("tokens")
    assert code == 0, err
    (row,) = [line for line in table.splitlines() if line.startswith(token)]
    assert row.endswith(last_error)  # piped: nothing is cut

    code, shown, err = await daemon.cli("token", "show", token)
    assert code == 0, err
    lines = shown.splitlines()
    assert lines[0] == f"token {token}"
    assert f"  auth          {auth}" in lines
    assert f"  last error    {last_error}" in lines
    assert any(line.startswith("  state ") for line in lines)

    code, _out, err = await daemon.cli("token", "show", "no-such-token")
    assert code == 2 and "no token named 'no-such-token'" in err


async def test_a_calls_runs_as_a_step_are_found_by_its_name(daemon: Daemon, tmp_path: Path) -> None:
    step, flow = unique("step"), unique("flow")
    document = {
        "calls": [{"name": step, "url": DEAD_URL}],
        "workflows": [{"name": flow, "steps": [step]}],
    }
    assert (await daemon.cli("apply", str(write_yaml(tmp_path / "s.yaml", document))))[0] == 0
    async with daemon.client() as client:
        await client.run("workflows", flow, wait=True)
        page = await client.results(name=step)
        (result,) = page.results
        assert (result.name, result.kind, result.workflow) == (step, "call", flow)
        summary = await client.summary()
        (target,) = [t for t in summary.targets if t.name == step]
        assert target.last_run is not None and target.step_of == flow
        opened = await client.result(str(target.last_result_id))
        assert opened.name == flow

    code, out, err = await daemon.cli("results", step)
    assert code == 0, err
    assert "no results yet" not in out
    assert f"{step} (step of {flow})" in out


async def test_status_names_the_log_and_help_describes_every_command(daemon: Daemon) -> None:
    code, out, err = await daemon.cli("status")
    assert code == 0, err
    assert f"  log         {daemon.log_path}" in out.splitlines()

    code, out, _err = await daemon.cli("help", "settings")
    assert code == 0
    for name in ("APIMD_HOME", *KEYS):  # every setting apimd reads is explained
        assert name in out
    code, top, _err = await daemon.cli("--help")
    assert code == 0 and "APIMD_HOME" in top and "APIMD_RETENTION_DAYS" in top
    for args, words in (
        (("start", "--help"), "in the background unless one already answers"),
        (("stop", "--help"), "in-flight runs get 10 s to finish"),
        (("daemon", "--help"), "serves the REST API on its Unix socket"),
        (("token", "refresh", "--help"), "and print its new state"),
        (("token", "show", "--help"), "whole last error"),
        (("demo", "--help"), "--api-only"),
    ):
        code, out, _err = await daemon.cli(*args)
        assert code == 0
        assert words in " ".join(out.split()), (args, out)


async def test_results_follow_prints_the_backlog_oldest_first_and_new_rows_aligned(
    daemon: Daemon, tmp_path: Path, receiver: Receiver
) -> None:
    call = unique("followed-call-with-a-long-name")
    path = write_yaml(tmp_path / "f.yaml", {"calls": [{"name": call, "url": DEAD_URL}]})
    assert (await daemon.cli("apply", str(path)))[0] == 0
    async with daemon.client() as client:
        first = (await client.run("calls", call, wait=True)).result
        second = (await client.run("calls", call, wait=True)).result
        assert first is not None and second is not None
        follower = await start_cli("results", call, "--follow", env=daemon.env)
        try:
            assert follower.stdout is not None and follower.stderr is not None
            note = (await asyncio.wait_for(follower.stderr.readline(), 30)).decode()
            assert "oldest first" in note
            header, *backlog = [
                (await asyncio.wait_for(follower.stdout.readline(), 5)).decode().rstrip("\n")
                for _ in range(3)
            ]
            stamps = [first.started_at, second.started_at]
            assert [row[:19] for row in backlog] == [f"{t:%Y-%m-%d %H:%M:%S}" for t in stamps]
            # A new row with shorter cells than the backlog's (PASS, COMPLETE, 200) keeps the
            # columns; so does one of another length altogether.
            write_yaml(path, {"calls": [{"name": call, "url": receiver.url}]})
            assert (await daemon.cli("apply", str(path)))[0] == 0
            await client.run("calls", call, wait=True)
            new = (await asyncio.wait_for(follower.stdout.readline(), 30)).decode()
            for column in ("OUTCOME", "RESULT", "HTTP", "MS", "TRIGGER"):
                at = header.index(column)
                assert new[at - 2 : at] == "  " and new[at] != " ", (column, header, new)
        finally:
            follower.terminate()
            await follower.wait()


async def test_token_refresh_says_a_past_expiry_is_expired(daemon: Daemon, tmp_path: Path) -> None:
    auth, token = unique("auth"), unique("token")
    document = {
        "auth": [{"name": auth, "type": "manual"}],
        "tokens": [
            {"name": token, "auth": auth, "variables": {"ACCESS_TOKEN": "a", "EXPIRES_IN": "1"}}
        ],
    }
    assert (await daemon.cli("apply", str(write_yaml(tmp_path / "e.yaml", document))))[0] == 0
    await asyncio.sleep(2.2)
    code, out, err = await daemon.cli("token", "refresh", token)
    assert code == 1, out + err  # nothing refreshes a manual token: refused, by name
    assert f"token {token} has nothing to refresh it" in out + err, out + err
    code, out, err = await daemon.cli("token", "show", token)
    assert re.search(r"  expiry        expired \d+s ago", out), out


async def test_results_say_which_condition_failed_and_what_it_saw(
    daemon: Daemon, tmp_path: Path
) -> None:
    """A failed condition leaves `error` empty: the ERROR column says why all the same."""

    async def down(_request: web.Request) -> web.Response:
        return web.json_response({"ok": False}, status=503)

    name = unique("wants-200")
    server = await RunningServer(app_of(web.get("/down", down))).start()
    try:
        document = {
            "calls": [
                {
                    "name": name,
                    "url": f"{server.url}/down",
                    "conditions": [{"source": "status", "op": "eq", "value": 200}],
                }
            ]
        }
        assert (await daemon.cli("apply", str(write_yaml(tmp_path / "c.yaml", document))))[0] == 0
        async with daemon.client() as client:
            await client.run("calls", name, wait=True)
    finally:
        await server.stop()
    code, out, err = await daemon.cli("results", name)
    assert code == 0, err
    (row,) = [line for line in out.splitlines() if name in line]
    assert "CONTENT_ERROR" in row and row.rstrip().endswith("status eq 200 → 503")


async def test_export_to_a_folder_or_into_a_missing_folder_says_it_cannot_write(
    daemon: Daemon, tmp_path: Path
) -> None:
    for target, why in [
        (tmp_path, "Is a directory"),
        (tmp_path / "missing" / "x.yaml", "No such file or directory"),
    ]:
        code, out, err = await daemon.cli("export", str(target))
        assert code == 2, out + err
        assert f"apimd: cannot write {target}: {why}; nothing exported" in err, err
        assert "Traceback" not in err and out == ""
    assert not (tmp_path / "missing").exists()


async def test_an_over_long_name_is_refused_up_front_and_a_plain_text_answer_is_an_error(
    daemon: Daemon,
) -> None:
    name = "a" * 8200
    for args in [
        ("results", name),
        ("run", name),
        ("token", "show", name),
        ("token", "refresh", name),
        ("mute", name, "1h"),
    ]:
        code, out, err = await daemon.cli(*args)
        assert code == 2, out + err
        assert err == "apimd: NAME: 8200 characters; a name is at most 100\n", err
    # The daemon's HTTP parser answers a request line over 8190 bytes with a plain-text 400.
    async with daemon.client() as client:
        with pytest.raises(ApiError) as refused:
            await client.results(name=name)
    assert refused.value.status == 400
    assert str(refused.value).startswith(
        "the daemon answered HTTP 400, not JSON: Got more than 8190 bytes"
    )
    assert len(str(refused.value)) < 300


async def test_apply_and_run_take_a_regular_project_file_of_at_most_128_mib(
    daemon: Daemon, tmp_path: Path
) -> None:
    """Or a pipe (`apimd apply <(render-project)`); not a folder, nor /dev/zero (read without
    end: the retest's MemoryError)."""
    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    writer = threading.Thread(target=pipe.write_text, args=("version: 1\n",))
    writer.start()
    code, out, err = await daemon.cli("apply", str(pipe), timeout=30)
    writer.join(10)
    assert code == 0, out + err
    huge = tmp_path / "huge.yaml"
    with huge.open("wb") as sparse:
        sparse.truncate(129 * 1024 * 1024)
    for path, said in [
        ("/dev/zero", "/dev/zero is a character device, not a regular file"),
        (str(tmp_path), f"{tmp_path} is a folder, not a regular file"),
        (str(huge), f"{huge} is larger than 128 MiB: not read"),
    ]:
        for args in [("apply", path), ("run", "x", "-f", path)]:
            code, out, err = await daemon.cli(*args, timeout=30)
            assert code == 2, out + err
            assert err.startswith(f"apimd: {said}"), err
