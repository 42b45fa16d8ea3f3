"""Fixtures shared by every test package: the loopback demo API / token server."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from apimd.demo.server import STATE_KEY, RunningServer, TokenServerState, create_app


@pytest.fixture
async def token_server() -> AsyncIterator[RunningServer]:
    """The demo API and OAuth token server on a random 127.0.0.1 port; tokens live 60 s."""
    server = await RunningServer(create_app(TokenServerState())).start()
    try:
        yield server
    finally:
        await server.stop()


def server_state(server: RunningServer) -> TokenServerState:
    return server.app[STATE_KEY]
