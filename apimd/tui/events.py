"""Typed views of the daemon's event stream (`GET /v1/events`), parsed once where they arrive."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar, overload

from apimd.model.outcome import Outcome, ResultCode
from apimd.model.resources import TokenState

E = TypeVar("E", Outcome, ResultCode, TokenState)


@dataclass(frozen=True)
class DaemonEvent:
    """Any event: its type, when it happened, and its raw fields."""

    type: str
    at: datetime
    data: dict[str, Any] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class RunStarted(DaemonEvent):
    run_id: str = ""
    kind: str = ""
    name: str = ""
    trigger: str = ""


@dataclass(frozen=True)
class RunFinished(DaemonEvent):
    run_id: str = ""
    result_id: str = ""
    kind: str = ""
    name: str = ""
    trigger: str = ""
    outcome: Outcome | None = None
    result: ResultCode | None = None
    http_status: int | None = None
    total_ms: float | None = None


@dataclass(frozen=True)
class RunStep(DaemonEvent):
    """A workflow's step finished: step `index` (from 0) of `of`, the call `name`."""

    run_id: str = ""
    workflow: str = ""
    name: str = ""
    index: int = 0
    of: int = 0
    outcome: Outcome | None = None
    result: ResultCode | None = None
    http_status: int | None = None
    total_ms: float | None = None


@dataclass(frozen=True)
class TokenSaved(DaemonEvent):
    token: str = ""
    expires_at: datetime | None = None


@dataclass(frozen=True)
class TokenStateChanged(DaemonEvent):
    token: str = ""
    state: TokenState | None = None
    error: str | None = None


@dataclass(frozen=True)
class ResourceChanged(DaemonEvent):
    """`resources` as `(kind, name)` pairs, e.g. `("calls", "list-orders")`."""

    resources: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class ScheduleFired(DaemonEvent):
    schedule: str = ""
    targets: tuple[str, ...] = ()


@dataclass(frozen=True)
class Lagged(DaemonEvent):
    """The daemon dropped events for this client: state must be re-read."""

    missed: int = 0


def parse_event(raw: dict[str, Any]) -> DaemonEvent:
    """A typed event from one SSE payload; unknown types and odd fields never raise."""
    kind = str(raw.get("type", ""))
    at = _datetime(raw.get("at")) or datetime.now(UTC)
    base: dict[str, Any] = {"type": kind, "at": at, "data": raw}
    if kind == "run.started":
        return RunStarted(
            **base,
            run_id=_str(raw.get("run_id")),
            kind=_str(raw.get("kind")),
            name=_str(raw.get("name")),
            trigger=_str(raw.get("trigger")),
        )
    if kind == "run.finished":
        return RunFinished(
            **base,
            run_id=_str(raw.get("run_id")),
            result_id=_str(raw.get("result_id") or raw.get("run_id")),
            kind=_str(raw.get("kind")),
            name=_str(raw.get("name")),
            trigger=_str(raw.get("trigger")),
            outcome=_enum(Outcome, raw.get("outcome")),
            result=_enum(ResultCode, raw.get("result")),
            http_status=_int(raw.get("http_status"), None),
            total_ms=_float(raw.get("total_ms")),
        )
    if kind == "run.step":
        return RunStep(
            **base,
            run_id=_str(raw.get("run_id")),
            workflow=_str(raw.get("workflow")),
            name=_str(raw.get("name")),
            index=_int(raw.get("index")),
            of=_int(raw.get("of")),
            outcome=_enum(Outcome, raw.get("outcome")),
            result=_enum(ResultCode, raw.get("result")),
            http_status=_int(raw.get("http_status"), None),
            total_ms=_float(raw.get("total_ms")),
        )
    if kind == "token.saved":
        return TokenSaved(
            **base, token=_str(raw.get("token")), expires_at=_datetime(raw.get("expires_at"))
        )
    if kind == "token.state":
        error = raw.get("error")
        return TokenStateChanged(
            **base,
            token=_str(raw.get("token")),
            state=_enum(TokenState, raw.get("state")),
            error=error if isinstance(error, str) else None,
        )
    if kind == "resource.changed":
        pairs = []
        for entry in raw.get("resources") or ():
            resource_kind, _, name = str(entry).partition("/")
            if name:
                pairs.append((resource_kind, name))
        return ResourceChanged(**base, resources=tuple(pairs))
    if kind == "schedule.fired":
        targets = raw.get("targets") or ()
        return ScheduleFired(
            **base,
            schedule=_str(raw.get("schedule")),
            targets=tuple(str(t) for t in targets) if isinstance(targets, list) else (),
        )
    if kind == "lagged":
        missed = raw.get("missed")
        return Lagged(**base, missed=missed if isinstance(missed, int) else 0)
    return DaemonEvent(**base)


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


@overload
def _int(value: Any) -> int: ...


@overload
def _int(value: Any, default: None) -> int | None: ...


def _int(value: Any, default: int | None = 0) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _float(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _enum(enum: type[E], value: Any) -> E | None:
    try:
        return enum(value)
    except ValueError:
        return None


def _datetime(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
