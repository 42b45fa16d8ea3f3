"""What the TUI needs from the daemon, as one protocol: `apimd.client.Client` implements it; the
screens, the editors and the sign-in screen all take it; the test fakes and the benchmark's
in-memory daemon subclass it, so mypy checks them against it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from pydantic import BaseModel

from apimd.model.api import (
    ResultPage,
    RunAccepted,
    SignInInfo,
    SignInList,
    SignInResult,
    StatusInfo,
    Summary,
    SummaryOrder,
)
from apimd.model.events import Event
from apimd.model.resources import Token
from apimd.model.result import Result
from apimd.model.stats import Stats

Clock = Callable[[], datetime]
"""Returns the current time, timezone-aware (UTC)."""


def system_clock() -> datetime:
    return datetime.now(UTC)


class DaemonClient(Protocol):
    """The calls the TUI makes to the daemon (a subset of `apimd.client.Client`)."""

    socket_path: Path

    async def status(self) -> StatusInfo: ...

    async def list(self, kind: str) -> list[BaseModel]: ...

    async def get(self, kind: str, name: str, *, reveal: bool = False) -> BaseModel: ...

    async def put(
        self, kind: str, name: str, resource: BaseModel | dict[str, Any]
    ) -> BaseModel: ...

    async def run(
        self,
        kind: str,
        name: str,
        *,
        variables: dict[str, str] | None = None,
        interactive: bool = False,
        wait: bool = False,
    ) -> RunAccepted: ...

    async def results(
        self,
        *,
        name: str | None = None,
        outcome: str | None = None,
        since: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> ResultPage: ...

    async def result(self, result_id: str) -> Result: ...

    async def summary(
        self, *, window: str = "24h", order: SummaryOrder = "project", limit: int | None = None
    ) -> Summary: ...

    async def stats(self, name: str, *, window: str = "24h") -> Stats: ...

    async def refresh_token(self, name: str) -> Token: ...

    async def signin(self, name: str, *, mode: str = "browser") -> SignInInfo: ...

    async def signins(self) -> SignInList: ...

    async def complete_signin(self, url: str) -> SignInResult: ...

    def events(self) -> AsyncIterator[Event]: ...

    async def close(self) -> None: ...
