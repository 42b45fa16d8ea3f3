"""Fixtures shared by every test package: the loopback demo API / token server, and PostgreSQL
databases of one test each."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from apimd.demo.server import STATE_KEY, RunningServer, TokenServerState, create_app
from tests import postgres
from tests.postgres import temporary_database


@pytest.fixture
async def token_server() -> AsyncIterator[RunningServer]:
    """The demo API and OAuth token server on a random 127.0.0.1 port; tokens live 60 s."""
    async with RunningServer(create_app(TokenServerState())) as server:
        yield server


def server_state(server: RunningServer) -> TokenServerState:
    return server.app[STATE_KEY]


@pytest.fixture
def pg_url() -> Iterator[str]:
    """The URL of a new, empty PostgreSQL database of this test alone (dropped afterwards)."""
    with temporary_database() as url:
        yield url


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    postgres.count_skip(report)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """One line saying which PostgreSQL tests did not run, and why."""
    if postgres.skipped:
        reason = postgres.unavailable_reason()
        terminalreporter.write_line(
            f"SKIPPED {len(postgres.skipped)} PostgreSQL tests: {reason}. "
            "Start PostgreSQL on 127.0.0.1:5432 (or set APIMD_TEST_POSTGRES_URL) to run them.",
            yellow=True,
        )
