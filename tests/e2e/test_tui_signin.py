"""The seed's headline flow as a person does it: the real `apimd` TUI in tmux against a real
daemon and the demo authorization server; Run on a workflow with a browser step; Debian's
Chromium opens the URL the TUI shows and signs in; the TUI then shows the workflow finishing PASS
with all its steps. Once with a browser opened for the person (its return reaches the callback
port), once over SSH, where the address the browser ended on is pasted into the TUI."""

from __future__ import annotations

import asyncio
import re
import shlex
import sys
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.async_api import Browser

from tests.e2e.conftest import SESSION, Daemon, Tmux
from tests.e2e.signin_workflow import STEPS, WORKFLOW, browser_workflow_project
from tests.e2e.test_browser_signin import landed_address, sign_in_in_browser
from tests.e2e.test_tmux import until
from tests.support.polling import eventually

WIDTH, HEIGHT = 110, 40


@pytest.fixture
async def auth_server(daemon: Daemon, demo: str) -> str:
    """The demo authorization server, with the browser workflow applied to the daemon."""
    async with daemon.client() as client:
        await client.apply(browser_workflow_project(demo))
    return demo


async def start_tui(tmux: Tmux, daemon: Daemon, **environ: str) -> None:
    """`apimd` in a 110×40 terminal; `environ` says where the person sits."""
    settings = {
        "APIMD_HOME": daemon.env["APIMD_HOME"],
        "APIMD_CALLBACK_PORT": "0",
        "TERM": "xterm-256color",
        **environ,
    }
    unset = [f"-u{name}" for name in ("DISPLAY", "WAYLAND_DISPLAY", "SSH_CONNECTION", "SSH_TTY")]
    command = shlex.join(
        ["env", *unset, *(f"{k}={v}" for k, v in settings.items()), sys.executable, "-m", "apimd"]
    )
    await tmux.run("new-session", "-d", "-s", SESSION, "-x", str(WIDTH), "-y", str(HEIGHT), command)
    await until(tmux, lambda s: f" {WORKFLOW} " in s, "the dashboard to list the workflow")
    await asyncio.sleep(1.0)  # keys typed while the app still talks to the terminal get lost
    # Filter the dashboard down to the workflow, then Run it.
    await tmux.run("send-keys", "-t", SESSION, "/")
    await asyncio.sleep(0.3)
    await tmux.run("send-keys", "-t", SESSION, "-l", "in-flow")  # the workflow alone
    await until(
        tmux,
        lambda s: s.splitlines()[1].strip() == "in-flow" and " service-status " not in s,
        "the filter to show the workflow alone",
    )
    await tmux.run("send-keys", "-t", SESSION, "Enter")
    await asyncio.sleep(0.5)  # the table takes the focus back
    await tmux.run("send-keys", "-t", SESSION, "r")


def shown_url(screen: str, base: str) -> str | None:
    """The sign-in URL as the TUI draws it: wrapped over several lines, never cut."""
    lines = screen.splitlines()
    prefix = f"{base}/oauth/authorize?"
    for i, line in enumerate(lines):
        if prefix in line:
            url = line[line.index(prefix) :].strip()
            for following in lines[i + 1 :]:
                part = following.strip()
                if not part or " " in part:
                    break
                url += part
            return url
    return None


async def tui_shows_pass(tmux: Tmux) -> str:
    def finished(screen: str) -> bool:
        steps = all(re.search(rf"\d\. {step}\b", screen) for step in STEPS)
        passed = re.search(rf"workflow {WORKFLOW}: ✓ PASS", screen)
        return bool(passed and steps and "⇱ handed to the browser" in screen)

    return await until(tmux, finished, "the workflow to finish PASS with its steps", timeout=30)


async def test_run_in_the_tui_opens_the_browser_and_finishes_when_it_comes_back(
    daemon: Daemon, auth_server: str, browser: Browser, tmux: Tmux, tmp_path: Path
) -> None:
    opened = tmp_path / "opened-url"
    recorder = tmp_path / "browser"
    recorder.write_text(f'#!/bin/sh\nprintf "%s" "$1" > {opened}\n')
    recorder.chmod(0o755)
    # A person at this machine's display: the TUI opens "the browser" ($BROWSER records it).
    await start_tui(tmux, daemon, DISPLAY=":99", BROWSER=f"{recorder} %s")
    try:
        screen = await until(
            tmux, lambda s: "Opened in your browser" in s, "the TUI to open the browser"
        )
        await eventually(lambda: _exists(opened), timeout=15, interval=0.2)
        url = opened.read_text().strip()
        assert shown_url(screen, auth_server) == url, screen
        assert f"Sign in for workflow {WORKFLOW}" in screen
        query = parse_qs(urlsplit(url).query)
        assert query["redirect_uri"][0].startswith("http://127.0.0.1:")

        heading, status = await sign_in_in_browser(browser, url)
        assert (heading, status) == ("Signed in", 200)
        screen = await tui_shows_pass(tmux)
        assert "Sign in for workflow" not in screen, "the run screen is back in front"
    finally:
        await tmux.run("kill-session", "-t", SESSION, check=False)


async def test_over_ssh_the_address_pasted_into_the_tui_finishes_the_run(
    daemon: Daemon, auth_server: str, browser: Browser, tmux: Tmux
) -> None:
    await start_tui(tmux, daemon, SSH_CONNECTION="10.0.0.2 50122 10.0.0.9 22")
    try:
        screen = await until(
            tmux,
            lambda s: "ssh -L" in s and (shown_url(s, auth_server) or "").count("state=") == 1,
            "the SSH view with the URL, the ssh -L hint and the paste field",
        )
        url = shown_url(screen, auth_server)
        assert url is not None
        assert "copied to your clipboard with OSC 52" in screen
        assert "Paste the address your browser ended on" in screen

        landed = await landed_address(browser, url)
        assert "/tokens/callback?" in landed
        await tmux.run("send-keys", "-t", SESSION, "-l", landed)
        await tmux.run("send-keys", "-t", SESSION, "Enter")
        await tui_shows_pass(tmux)
    finally:
        await tmux.run("kill-session", "-t", SESSION, check=False)


async def _exists(path: Path) -> bool:
    return path.exists() and bool(path.read_text().strip())
