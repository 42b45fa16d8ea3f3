"""Events the engine reports while it works (the daemon streams them as SSE)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

EventSink = Callable[["Event"], None]


@dataclass(frozen=True)
class Event:
    """`type` is one of run.started, run.finished, token.saved, token.state, signin.open, …;
    `data` is JSON-ready and already redacted."""

    type: str
    data: dict[str, Any]
    at: datetime = field(default_factory=lambda: datetime.now(UTC))


def discard(event: Event) -> None:
    """An event sink that drops everything (standalone runs without listeners)."""
