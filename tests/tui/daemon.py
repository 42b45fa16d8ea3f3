"""A real `apimd daemon` process on a short temporary APIMD_HOME, and the demo API on a thread of
its own, for the TUI's behaviour tests."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from apimd.client import Client, DaemonUnavailable
from apimd.demo.server import RunningServer, create_app

START_TIMEOUT_S = 20.0
T = TypeVar("T")


def short_home() -> Path:
    """Unix socket paths must stay under ~100 bytes: a short folder in /tmp."""
    return Path(tempfile.mkdtemp(prefix="apimd-", dir="/tmp"))


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run `coro` to completion on a loop of its own (fixtures may run inside another loop)."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


@dataclass
class Daemon:
    home: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def socket_path(self) -> Path:
        return self.home / "apimd.sock"

    @property
    def env(self) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("APIMD_SOCKET", "APIMD_SECRET_KEY", "APIMD_RETENTION_DAYS")
        }
        env.update(APIMD_HOME=str(self.home), APIMD_CALLBACK_PORT="0")
        return env

    def start(self) -> Daemon:
        """Start `python -m apimd daemon` and wait until it answers."""
        log = (self.home / "test-daemon.out").open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "apimd", "daemon"],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            env=self.env,
        )
        log.close()
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the daemon exited at start:\n{self.output()}")
            if self.socket_path.exists() and run_sync(self._answers()):
                return self
            time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"the daemon did not answer in {START_TIMEOUT_S} s:\n{self.output()}")

    async def _answers(self) -> bool:
        try:
            async with Client(self.socket_path, timeout=2) as client:
                await client.health()
        except DaemonUnavailable:
            return False
        return True

    def output(self) -> str:
        path = self.home / "test-daemon.out"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        """SIGTERM and wait for a clean exit."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.kill()
            raise
        self.process = None
        assert code == 0, f"the daemon exited {code} after SIGTERM:\n{self.output()}"

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(5)
        self.process = None

    def remove(self) -> None:
        shutil.rmtree(self.home, ignore_errors=True)

    def apply(self, project: dict[str, Any]) -> None:
        async def apply() -> None:
            async with Client(self.socket_path) as client:
                await client.apply(project)

        run_sync(apply())

    def put(self, kind: str, name: str, resource: dict[str, Any]) -> None:
        async def put() -> None:
            async with Client(self.socket_path) as client:
                await client.put(kind, name, resource)

        run_sync(put())

    def delete(self, kind: str, name: str) -> None:
        async def delete() -> None:
            async with Client(self.socket_path) as client:
                await client.delete(kind, name)

        run_sync(delete())

    def run(self, kind: str, name: str) -> None:
        async def run() -> None:
            async with Client(self.socket_path) as client:
                await client.run(kind, name, wait=True)

        run_sync(run())


class DemoServer:
    """The demo API (`/api/status` 200, `/api/broken` 500, `/api/orders` needs a token) served
    from a thread with its own event loop, so it outlives any one test's loop."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: RunningServer | None = None

    def start(self) -> DemoServer:
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(RunningServer(create_app()).start(), self._loop)
        self._server = future.result(10)
        return self

    @property
    def url(self) -> str:
        assert self._server is not None
        return self._server.url

    def stop(self) -> None:
        if self._server is not None:
            asyncio.run_coroutine_threadsafe(self._server.stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()
