"""An in-memory daemon that holds nothing: the base of the TUI's test fakes and of the TUI
benchmark's client. It subclasses `apimd.tui.ports.DaemonClient`, so mypy checks every fake
against the one client protocol; subclasses override what they serve."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from apimd.client import ApiError
from apimd.model import api
from apimd.model.events import Event, Lagged
from apimd.model.resources import Token
from apimd.model.result import Result
from apimd.model.stats import Stats
from apimd.tui.ports import DaemonClient


def served(summary: api.Summary, order: api.SummaryOrder, limit: int | None) -> api.Summary:
    """`summary` as the daemon serves it when asked for the first `limit` targets in `order`."""
    targets = summary.targets
    if order == "dashboard":
        targets = sorted(targets, key=lambda t: api.dashboard_key(t.name, t.outcome, t.token_state))
    return summary.model_copy(update={"total": len(targets), "targets": targets[:limit]})


def _missing(what: str) -> ApiError:
    return ApiError(404, "not_found", f"no {what}", [])


class EmptyDaemon(DaemonClient):
    """Answers like a running daemon with no resources, no results and no sign-ins; refuses changes."""

    def __init__(self, socket_path: Path) -> None:
        self.socket_path = socket_path
        self.runs: list[tuple[str, str]] = []
        """Every `(kind, name)` asked to run, in order."""

    async def status(self) -> api.StatusInfo:
        return api.StatusInfo(
            version="0.1.0",
            pid=4242,
            started_at=datetime.now(UTC),
            uptime_s=0,
            counts={},
            scheduler="running",
            schedules=0,
            callback_url="http://127.0.0.1:8765/tokens/callback",
            callback_bound=True,
            db_path=str(self.socket_path.with_name("apimd.db")),
            socket_path=str(self.socket_path),
        )

    async def list(self, kind: str) -> list[BaseModel]:
        return []

    async def get(self, kind: str, name: str, *, reveal: bool = False) -> BaseModel:
        for item in await self.list(kind):
            if getattr(item, "name", None) == name:
                return item
        raise _missing(f"{kind} named {name!r}")

    async def put(self, kind: str, name: str, resource: BaseModel | dict[str, Any]) -> BaseModel:
        raise ApiError(409, "read_only", "this daemon is read-only", [])

    async def run(self, kind: str, name: str, **_options: Any) -> api.RunAccepted:
        self.runs.append((kind, name))
        return await self.accept_run(kind, name)

    async def accept_run(self, kind: str, name: str) -> api.RunAccepted:
        """What `run` answers once it has noted the run."""
        raise ApiError(409, "read_only", "this daemon runs nothing", [])

    async def results(self, **_filters: Any) -> api.ResultPage:
        return api.ResultPage(results=[], next_cursor=None)

    async def result(self, result_id: str) -> Result:
        raise _missing(f"result with id {result_id!r}")

    async def summary(
        self, *, window: str = "24h", order: api.SummaryOrder = "project", limit: int | None = None
    ) -> api.Summary:
        return api.Summary(generated_at=datetime.now(UTC), window_s=86400.0, targets=[])

    async def stats(self, name: str, *, window: str = "24h") -> Stats:
        now = datetime.now(UTC)
        return Stats(name=name, since=now, until=now)

    async def refresh_token(self, name: str) -> Token:
        raise _missing(f"token named {name!r}")

    async def signin(self, name: str, *, mode: str = "browser") -> api.SignInInfo:
        raise _missing(f"token named {name!r}")

    async def signins(self) -> api.SignInList:
        return api.SignInList(signins=[])

    async def complete_signin(self, url: str) -> api.SignInResult:
        raise ApiError(400, "signin_refused", "no sign-in is pending", [])

    async def events(self) -> AsyncIterator[Event]:
        await asyncio.Event().wait()  # a quiet daemon: no events, ever
        yield Lagged(missed=0)

    async def close(self) -> None:
        return None
