"""End-to-end fixtures: a real daemon process, the demo authorization server, Debian's Chromium
driven by Playwright (never a downloaded browser; missing chromium fails the tests), and a tmux
server of the test's own for the real TUI."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, async_playwright

from apimd.client import Client
from apimd.demo.server import RunningServer, create_app
from apimd.model.api import SignInInfo
from tests.support.daemon import DaemonProcess as Daemon
from tests.support.daemon import started

__all__ = ["Daemon"]
SESSION = "apimd-e2e"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
async def daemon() -> AsyncIterator[Daemon]:
    """A daemon of the test's own (tests/support), stopped with SIGTERM (exit 0 required)."""
    async with started(Daemon()) as running:
        yield running


@asynccontextmanager
async def signing_in(
    daemon: Daemon, project: dict[str, Any], token: str
) -> AsyncIterator[tuple[Client, SignInInfo]]:
    """A client of `daemon` after applying `project` and starting the sign-in of `token`, with
    what `POST /v1/tokens/{token}/signin` answered."""
    async with daemon.client() as client:
        await client.apply(project)
        yield client, await client.signin(token)


@pytest.fixture
async def demo() -> AsyncIterator[str]:
    """The demo API and authorization server; its base URL."""
    async with RunningServer(create_app()) as server:
        yield server.url


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    assert Path(CHROMIUM).exists(), "Debian's chromium is required: apt-get install chromium"
    async with async_playwright() as playwright:
        instance = await playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield instance
        finally:
            await instance.close()


def server_environ() -> dict[str, str]:
    """The environment of the tmux server, and so of `apimd` in it. Built from `os.environ`
    on purpose: under pytest, children inherit COLUMNS=80 and LINES=24 (set below Python's
    `os.environ`), and an app that reads them (Textual does) would draw 80×24 in a 100×30 pane."""
    return {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "TMUX")}


@dataclass
class Tmux:
    """A tmux server of the test's own (`-L`), so no one's sessions are touched."""

    socket_name: str
    config: Path

    def command(self, *args: str) -> list[str]:
        return ["tmux", "-L", self.socket_name, "-f", str(self.config), *args]

    async def run(self, *args: str, check: bool = True) -> str:
        process = await asyncio.create_subprocess_exec(
            *self.command(*args),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=server_environ(),
        )
        out, err = await asyncio.wait_for(process.communicate(), 10)
        if check and process.returncode != 0:
            raise AssertionError(f"tmux {' '.join(args)} failed: {err.decode().strip()}")
        return out.decode()

    async def pane(self) -> str:
        return await self.run("capture-pane", "-p", "-t", SESSION)

    async def pane_dead(self) -> bool:
        shown = await self.run("display-message", "-p", "-t", SESSION, "#{pane_dead}")
        return shown.strip() == "1"


@pytest.fixture
def tmux(tmp_path: Path) -> Iterator[Tmux]:
    config = tmp_path / "tmux.conf"
    # remain-on-exit keeps the pane after `apimd` exits, so its exit status can be read.
    config.write_text("set -g remain-on-exit on\nset -g default-terminal xterm-256color\n")
    server = Tmux(f"apimd-e2e-{os.getpid()}", config)
    try:
        yield server
    finally:
        if shutil.which("tmux"):
            subprocess.run(
                server.command("kill-server"),
                capture_output=True,
                check=False,
                env=server_environ(),
            )
