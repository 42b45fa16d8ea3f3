"""The real `apimd` command in a real terminal (tmux, 100×30) against a real daemon: the dashboard
lists the monitors with their outcomes (failing first), follows runs live, and `q` quits with
status 0. tmux is required: without it this test fails (`.ci/run` installs it)."""

from __future__ import annotations

import asyncio
import shutil
import sys
import time
from collections.abc import Callable

from tests.e2e.conftest import SESSION, Daemon, Tmux

WIDTH, HEIGHT = 100, 30
FRESH = ("now", "1s", "2s")
"""Last-run ages of a target that just ran (the dashboard ticks once a second)."""


def row(screen: str, name: str) -> str | None:
    for line in screen.splitlines():
        if f" {name} " in line:
            return line
    return None


def column(screen: str, name: str, header: str) -> str | None:
    """The text of one cell: from `header` in the table's heading line up to the next heading,
    on `name`'s row."""
    heading = next((line for line in screen.splitlines() if " outcome " in line), None)
    line = row(screen, name)
    if heading is None or line is None or f" {header} " not in heading:
        return None
    start = heading.index(f" {header} ") + 1
    rest = heading[start + len(header) :]
    end = start + len(header) + (len(rest) - len(rest.lstrip(" ")))
    return line[start:end].strip() if rest.strip() else line[start:].strip()


async def until(tmux: Tmux, check: Callable[[str], bool], what: str, timeout: float = 20) -> str:
    deadline = time.monotonic() + timeout
    screen = ""
    while time.monotonic() < deadline:
        screen = await tmux.pane()
        if check(screen):
            return screen
        await asyncio.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}; the terminal shows:\n{screen}")


async def test_the_dashboard_in_a_terminal_lists_updates_live_and_quits(
    daemon: Daemon, demo: str, tmux: Tmux
) -> None:
    # Fails, never skips: .ci/run installs tmux.
    assert shutil.which("tmux"), "tmux is required for this test: apt-get install tmux"
    schedule = {"every": "1s", "targets": ["ping-ok", "ping-broken"]}
    async with daemon.client() as client:
        await client.apply(
            {
                "version": 1,
                "calls": [
                    {
                        "name": "ping-ok",
                        "url": f"{demo}/api/status",
                        "conditions": [{"source": "status", "op": "eq", "value": 200}],
                    },
                    {
                        "name": "ping-broken",
                        "url": f"{demo}/api/broken",
                        "conditions": [{"source": "status", "op": "eq", "value": 200}],
                    },
                ],
                "schedules": [{"name": "every-second", **schedule}],
            }
        )

    # The real command, as a person would type it, in a 100×30 terminal. Its exit status is
    # written to a file: tmux's own #{pane_dead_status} is sometimes left empty (the pane's
    # pty closed, the process not yet reaped).
    exit_file = tmux.config.with_name("apimd-exit-status")
    command = " ".join(
        [
            "env",
            f"APIMD_HOME={daemon.env['APIMD_HOME']}",
            f"APIMD_CALLBACK_PORT={daemon.env['APIMD_CALLBACK_PORT']}",
            "TERM=xterm-256color",
            sys.executable,
            "-m apimd;",
            f"echo $? > {exit_file}",
        ]
    )
    await tmux.run("new-session", "-d", "-s", SESSION, "-x", str(WIDTH), "-y", str(HEIGHT), command)
    try:
        # The monitors, with their outcomes in words, the failing one first.
        screen = await until(
            tmux,
            lambda s: (
                "FAIL" in (row(s, "ping-broken") or "") and "PASS" in (row(s, "ping-ok") or "")
            ),
            "both monitors with their outcomes",
        )
        lines = screen.splitlines()
        assert len(lines) == HEIGHT and lines[-1].rstrip().endswith("^p Commands")
        assert len(lines[-1].rstrip()) >= WIDTH - 2, "the app draws on the whole terminal"
        assert lines.index(row(screen, "ping-broken") or "") < lines.index(
            row(screen, "ping-ok") or ""
        )
        assert "Dashboard" in lines[0] and "daemon" in lines[0]

        # Live: the schedule runs both every second, and their rows follow.
        first = column(screen, "ping-ok", "latency")
        await until(
            tmux,
            lambda s: column(s, "ping-ok", "latency") != first,
            "the latency sparkline to grow with the scheduled runs",
        )

        # Pause the schedule: the last-run ages grow. Then a run through the socket resets
        # the passing call's age alone.
        async with daemon.client() as client:
            await client.put("schedules", "every-second", {**schedule, "enabled": False})
        await until(
            tmux,
            lambda s: all(column(s, n, "last") not in FRESH for n in ("ping-ok", "ping-broken")),
            "the last-run ages to grow once the schedule is off",
        )
        async with daemon.client() as client:
            await client.run("calls", "ping-ok", wait=True)
        screen = await until(
            tmux,
            lambda s: column(s, "ping-ok", "last") in FRESH,
            "the run of ping-ok to show",
            timeout=10,
        )
        assert column(screen, "ping-broken", "last") not in FRESH

        await tmux.run("send-keys", "-t", SESSION, "q")
        deadline = time.monotonic() + 10
        while not (exit_file.exists() and await tmux.pane_dead()):
            assert time.monotonic() < deadline, f"apimd did not quit on q:\n{await tmux.pane()}"
            await asyncio.sleep(0.1)
        status = exit_file.read_text().strip()
        assert status == "0", f"apimd exited {status}:\n{await tmux.pane()}"
    finally:
        await tmux.run("kill-session", "-t", SESSION, check=False)
