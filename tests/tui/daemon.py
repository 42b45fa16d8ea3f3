"""A real `apimd daemon` process on a short temporary APIMD_HOME, and the demo API on a thread of
its own, for the TUI's behaviour tests."""

from __future__ import annotations

import asyncio
import threading
from typing import Any, Self

from apimd.client import Client
from apimd.demo.server import RunningServer, create_app
from tests.support.daemon import DaemonProcess, run_sync, short_home

__all__ = ["Daemon", "DemoServer", "run_sync", "short_home"]


class Daemon(DaemonProcess):
    """The daemon process of tests/support, with blocking shortcuts for tests that run inside the
    app's event loop (each opens a client on a loop of its own)."""

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

    def start(self) -> Self:
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
