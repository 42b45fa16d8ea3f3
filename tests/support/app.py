"""The daemon's REST API in-process, as aiohttp-demos tests it: `create_app(settings)` served by
aiohttp's test server (the `aiohttp_client` fixture of pytest-aiohttp), and apimd's own client
talking to it. For REST behaviour that needs no process: validation, CRUD, errors. Signals,
kills, locks and peer uids stay with real daemon processes (tests/support/daemon.py)."""

from __future__ import annotations

from pathlib import Path

import aiohttp
from aiohttp.test_utils import TestClient
from pytest_aiohttp import AiohttpClient

from apimd.client import Client
from apimd.daemon.app import create_app
from apimd.settings import Settings
from tests.support.daemon import DaemonProcess

App = TestClient[aiohttp.web.Request, aiohttp.web.Application]


async def serve_app(aiohttp_client: AiohttpClient, home: DaemonProcess) -> App:
    """`create_app` with the settings a daemon on `home` would load (its home, its environment,
    its database), served by aiohttp's test server; started and cleaned up by the fixture."""
    return await aiohttp_client(create_app(Settings.load(home.env)))


class AppClient(Client):
    """`apimd.client.Client` over TCP to the in-process app instead of over the Unix socket; every
    request, answer and error goes through the client's own code."""

    def __init__(self, app: App) -> None:
        super().__init__(Path("/in-process/apimd.sock"))  # never connected to
        self._base_url = app.make_url("/").origin()

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(base_url=self._base_url)
        return self._session
