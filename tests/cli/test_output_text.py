"""Terminal text: tables fit the terminal but never cut piped output, expiries read as such,
`results --follow` keeps its columns, and the example project runs against `demo --api-only`."""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import re
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from apimd.cli.output import TerminalSafe, format_apply, print_result, terminal_safe
from apimd.cli.table import column_widths, table
from apimd.model.api import ApplySummary
from apimd.model.durations import expiry
from tests.cli.test_run_command import apimd
from tests.store.conftest import make_result
from tests.support.daemon import start_cli

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "project.yaml"
NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
ERROR = "refresh workflow 'sso-refresh' failed: get-token: CONNECTION_ERROR " + "x" * 80


def test_the_last_column_fits_the_given_width_and_is_whole_without_one() -> None:
    rows = [["main", "needs_sign_in", ERROR]]
    whole = table(["TOKEN", "STATE", "LAST ERROR"], rows)
    assert whole.splitlines()[1].endswith(ERROR)
    fitted = table(["TOKEN", "STATE", "LAST ERROR"], rows, width=80)
    assert all(len(line) <= 80 for line in fitted.splitlines())
    assert fitted.splitlines()[1].endswith("…")
    wide = table(["TOKEN", "STATE", "LAST ERROR"], rows, width=400)
    assert wide == whole  # a wide terminal shows it whole too


def test_an_error_with_line_breaks_stays_on_its_row() -> None:
    out = table(["A", "ERROR"], [["x", "first line\nsecond line"]])
    assert out.splitlines() == ["A  ERROR", "x  first line second line"]


def test_a_table_shows_a_servers_escapes_escaped_even_piped() -> None:
    """`apimd results | head` wrote a server's escapes to the terminal: the guard acts on a
    terminal only, and a table is built the same piped or not."""
    out = table(["A", "ERROR"], [["x\x9b", "HTTP 500 \x1b]0;PWNED\x07\x1b[2J\ttab"]])
    assert out.splitlines()[1] == "x\\x9b  HTTP 500 \\x1b]0;PWNED\\x07\\x1b[2J\ttab"


def test_rows_printed_later_keep_the_columns_of_the_first_ones() -> None:
    headers = ["NAME", "OUTCOME", "ERROR"]
    widths = column_widths(headers, [["a", "PASS", ""]], floor=[12, 7])
    first = table(headers, [["a", "PASS", ""]], widths=widths)
    later = table(headers, [["longer-name", "WARNING", "slow"]], header=False, widths=widths)
    assert first.splitlines()[0].index("OUTCOME") == later.index("WARNING")


def test_an_expiry_in_the_past_reads_expired() -> None:
    assert expiry(NOW - timedelta(minutes=4), NOW) == "expired 4m ago"
    assert expiry(NOW + timedelta(minutes=5), NOW) == "expires in 5m"


def test_apply_summary_names_each_change() -> None:
    summary = ApplySummary(
        created={"calls": ["new"]},
        updated={"workflows": ["flow"]},
        unchanged={"tokens": ["main"], "auth": ["sso"]},
        token_state_set=["main"],
    )
    assert format_apply("p.yaml", summary).splitlines() == [
        "applied p.yaml: 1 created, 1 replaced, token state set for 1, 2 unchanged",
        "  created    calls/new",
        "  replaced   workflows/flow",
        "  state set  tokens/main (saved variables from the file)",
    ]


async def test_the_example_project_runs_against_demo_api_only() -> None:
    server = await start_cli(
        "demo", "--api-only", "--port", "0", env={**os.environ, "NO_COLOR": "1"}
    )
    try:
        assert server.stdout is not None
        first = (await asyncio.wait_for(server.stdout.readline(), 30)).decode()
        url = re.search(r"http://127\.0\.0\.1:\d+", first)
        assert url, first
        second = (await asyncio.wait_for(server.stdout.readline(), 5)).decode()
        assert "APIMD_DEMO_URL" in first + second
        code, out, err = await apimd(
            "run", "list-orders", "-f", str(EXAMPLE), env={"APIMD_DEMO_URL": url.group(0)}
        )
        assert code == 0, out + err
        assert out.startswith("PASS")
    finally:
        server.send_signal(signal.SIGINT)
        await asyncio.wait_for(server.wait(), 15)


async def test_the_demo_states_the_schedules_it_really_runs() -> None:
    from apimd.cli.demo import PROJECT, signin_resources
    from apimd.model.loader import load_project_file

    schedules = load_project_file(PROJECT, {"APIMD_DEMO_URL": "http://127.0.0.1:1"}).schedules
    every = {s.every for s in schedules} | {
        s["every"] for s in signin_resources("http://127.0.0.1:1")["schedules"]
    }
    seconds = sorted(int(str(e).removesuffix("s")) for e in every)
    expected = " and ".join(f"{n} s" for n in seconds)
    demo = await start_cli(
        "demo",
        "--no-tui",
        "--port",
        "0",
        env={**os.environ, "NO_COLOR": "1", "APIMD_CALLBACK_PORT": "0"},
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        assert demo.stdout is not None
        line = ""
        while "schedules" not in line:
            line = (await asyncio.wait_for(demo.stdout.readline(), 60)).decode()
            assert line, "the demo ended before describing its schedules"
        assert f"(every {expected})" in line, line
    finally:
        demo.send_signal(signal.SIGINT)
        await asyncio.wait_for(demo.wait(), 30)


def test_what_a_server_said_cannot_drive_the_terminal() -> None:
    """A token endpoint's error description with escapes (set the title, clear the screen, `\\r`
    and a fake line) was printed raw by `apimd run` and `apimd token show` (a helper's retest):
    every control character but newline and tab is escaped; colour codes stay."""
    said = "x\x1b]0;PWNED\x07\x1b[2J\rFAKE\u2028LINE\x9b"
    assert terminal_safe(said) == "x\\x1b]0;PWNED\\x07\\x1b[2J\\x0dFAKE\\u2028LINE\\x9b"
    ours = "\x1b[1;32mPASS   \x1b[0m\tok\n"
    assert terminal_safe(ours) == ours


def test_a_command_on_a_terminal_writes_through_the_guard() -> None:
    """On a real terminal (a pty) the CLI's output is guarded; a pipe gets what was written."""
    script = (
        "import sys; from apimd.cli.output import guard_terminal; guard_terminal();"
        " print('a\\x1b]0;T\\x07b'); sys.stdout.flush()"
    )
    leader, follower = os.openpty()
    try:
        done = subprocess.run(
            [sys.executable, "-c", script], stdout=follower, stderr=follower, timeout=30
        )
        os.close(follower)
        follower = -1
        written = b""
        with contextlib.suppress(OSError):  # EIO once the child's side is closed
            while chunk := os.read(leader, 4096):
                written += chunk
    finally:
        os.close(leader)
        if follower != -1:
            os.close(follower)
    assert done.returncode == 0
    assert b"a\\x1b]0;T\\x07b" in written and b"\x1b]0" not in written, written
    piped = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, timeout=30, check=True
    )
    assert piped.stdout == b"a\x1b]0;T\x07b\n"


def test_a_result_is_printed_through_the_guarded_stream(monkeypatch: pytest.MonkeyPatch) -> None:
    """`print_result` wrote to the stdout of when its module was imported, before
    `guard_terminal` replaced it: `apimd run`'s error went to the terminal raw (this session's
    own check on a pty)."""
    shown = io.StringIO()
    monkeypatch.setattr(sys, "stdout", TerminalSafe(shown))
    print_result(make_result("r", error="said \x1b]0;T\x07 this"), as_json=False)
    assert "said \\x1b]0;T\\x07 this" in shown.getvalue(), shown.getvalue()


def test_a_result_printed_into_a_pipe_is_escaped_and_its_json_exact() -> None:
    """`apimd run NAME | …` wrote a server's escapes raw (the guard acts on a terminal only):
    a result as text is for a person, escaped wherever it goes; as JSON it is exact."""
    result = make_result("r", error="said \x1b]0;T\x07 this")
    piped = io.StringIO()
    print_result(result, as_json=False, stream=piped)
    assert "said \\x1b]0;T\\x07 this" in piped.getvalue() and "\x1b" not in piped.getvalue()
    exact = io.StringIO()
    print_result(result, as_json=True, stream=exact)
    assert '"said \\u001b]0;T\\u0007 this"' in exact.getvalue()
