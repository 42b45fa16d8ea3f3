"""End-to-end fixtures: a real daemon process, the demo authorization server, and Debian's
Chromium driven by Playwright (never a downloaded browser; missing chromium fails the tests)."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.async_api import Browser, async_playwright

from apimd.client import Client, DaemonUnavailable

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


@dataclass
class Daemon:
    home: Path
    process: asyncio.subprocess.Process
    env: dict[str, str]

    def client(self) -> Client:
        return Client(self.home / "apimd.sock")

    async def cli(self, *args: str, timeout: float = 60) -> tuple[int, str, str]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "apimd",
            *args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=self.env,
        )
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
        assert proc.returncode is not None
        return proc.returncode, out.decode(), err.decode()


@pytest.fixture
async def daemon() -> AsyncIterator[Daemon]:
    home = Path(tempfile.mkdtemp(prefix="apimd-", dir="/tmp"))
    env = {**os.environ, "APIMD_HOME": str(home), "APIMD_CALLBACK_PORT": "0", "NO_COLOR": "1"}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "apimd",
        "daemon",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
        env=env,
    )
    handle = Daemon(home, process, env)
    try:
        async with handle.client() as client:
            for _ in range(200):
                try:
                    await client.health()
                    break
                except DaemonUnavailable:
                    await asyncio.sleep(0.05)
            else:
                raise AssertionError("the daemon did not start")
        yield handle
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                assert await asyncio.wait_for(process.wait(), 20) == 0
            finally:
                if process.returncode is None:
                    process.kill()
        shutil.rmtree(home, ignore_errors=True)


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
