"""`apimd run NAME -f FILE` as a person runs it: a real subprocess against a loopback server."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

from apimd.demo.server import RunningServer
from tests.conftest import server_state
from tests.support.daemon import run_cli

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "project.yaml"


async def apimd(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """`python -m apimd ARGS` without a daemon: (exit code, stdout, stderr)."""
    return await run_cli(*args, env={**os.environ, "NO_COLOR": "1", **(env or {})})


async def test_example_project_passes_against_the_demo_server(token_server: RunningServer) -> None:
    env = {"APIMD_DEMO_URL": token_server.url}
    code, out, err = await apimd("run", "list-orders", "-f", str(EXAMPLE), env=env)
    assert code == 0, out + err
    assert "PASS" in out and "list-orders" in out and "HTTP 200" in out
    assert "✓ status eq 200" in out
    assert "timings ms" in out and "waited" in out  # the token was fetched first
    assert server_state(token_server).token_requests == 1


async def test_json_output_is_the_result_document(token_server: RunningServer) -> None:
    env = {"APIMD_DEMO_URL": token_server.url}
    code, out, _ = await apimd("run", "order-flow", "-f", str(EXAMPLE), "--json", env=env)
    assert code == 0
    doc = json.loads(out)
    assert doc["kind"] == "workflow" and doc["outcome"] == "PASS"
    assert [s["name"] for s in doc["steps"]] == ["service-status", "list-orders"]
    assert set(doc["timings_ms"]) >= {
        "dns",
        "connect",
        "send",
        "wait",
        "receive",
        "total",
        "auth_wait",
    }
    assert "at-" not in out  # the access token is redacted everywhere


async def test_failing_call_exits_1_and_says_why(token_server: RunningServer) -> None:
    env = {"APIMD_DEMO_URL": token_server.url}
    code, out, _ = await apimd("run", "checkout-health", "-f", str(EXAMPLE), env=env)
    assert code == 1
    assert "FAIL" in out and "CONTENT_ERROR" in out
    assert "✗ status eq 200" in out and "(actual: 500)" in out


async def test_setup_error_exits_1(tmp_path: Path) -> None:
    project = tmp_path / "p.yaml"
    project.write_text("calls:\n  - name: c\n    url: http://127.0.0.1:9/%%MISSING%%\n")
    code, out, _ = await apimd("run", "c", "-f", str(project))
    assert code == 1
    assert "SETUP_ERROR" in out and "MISSING" in out


async def test_load_errors_exit_2_with_file_and_line(tmp_path: Path) -> None:
    project = tmp_path / "p.yaml"
    project.write_text(
        "calls:\n"
        "  - name: c\n"
        "    url: http://x\n"
        "    timeout: soon\n"
        "    timeout: 5\n"
        "  - name: c\n"
        "    url: http://y\n"
    )
    code, out, err = await apimd("run", "c", "-f", str(project))
    assert code == 2
    assert out == ""
    assert f"{project}:5" in err  # the duplicate key, with its line
    assert "nothing was run" in err


async def test_usage_errors_exit_2(tmp_path: Path, token_server: RunningServer) -> None:
    env = {"APIMD_DEMO_URL": token_server.url}
    code, _, err = await apimd("run", "nope", "-f", str(EXAMPLE), env=env)
    assert code == 2 and "no call or workflow named 'nope'" in err and "list-orders" in err
    code, _, err = await apimd("run", "x", "-f", str(tmp_path / "missing.yaml"))
    assert code == 2 and "No such file" in err
    code, _, err = await apimd(
        "run", "list-orders", "-f", str(EXAMPLE), "--var", "novalue", env=env
    )
    assert code == 2 and "NAME=VALUE" in err
    code, _, err = await apimd("run", "list-orders", "-f", str(EXAMPLE))
    assert code == 2 and "APIMD_DEMO_URL" in err
    code, _, _ = await apimd("run")
    assert code == 2


async def test_var_overrides(token_server: RunningServer, tmp_path: Path) -> None:
    project = tmp_path / "p.yaml"
    project.write_text(
        "calls:\n  - name: s\n    url: '%%BASE%%/api/status'\n"
        "    conditions: [{source: status, op: eq, value: 200}]\n"
    )
    code, out, _ = await apimd("run", "s", "-f", str(project), "--var", f"base={token_server.url}")
    assert code == 0, out


async def test_bad_names_and_locations_are_usage_errors_before_the_daemon(tmp_path: Path) -> None:
    """An empty or over-long `--location`, or a name that is not valid UTF-8 (an undecodable
    byte on the command line), is named in one line, exit 2: not a traceback from the client."""
    env = {"APIMD_HOME": str(tmp_path / "home")}  # no daemon there: the check comes first
    code, out, err = await apimd("run", "list-orders", "--location", "", env=env)
    assert (code, out) == (2, "") and "--location: empty" in err and "Traceback" not in err
    code, _, err = await apimd("run", "list-orders", "--location", "x" * 101, env=env)
    assert code == 2 and "--location" in err and "100" in err and "Traceback" not in err
    code, _, err = await apimd("run", "list-orders", "--location", "eu west", env=env)
    assert code == 2 and "--location 'eu west'" in err and "Traceback" not in err
    for args in (
        [b"run", b"li\xffst"],
        [b"run", b"list-orders", b"--location", b"loc-\xff"],
        [b"token", b"show", b"t\xff"],
        [b"mute", b"c\xff", b"2h"],
    ):
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "apimd", *args,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            env={**os.environ, **env},
        )  # fmt: skip
        raw_out, raw_err = await asyncio.wait_for(proc.communicate(), 60)
        err = raw_err.decode()
        assert proc.returncode == 2 and raw_out == b"", (args, err)
        assert "not valid UTF-8" in err and "Traceback" not in err, (args, err)
