"""Where the engine reports its events (the typed models of `apimd.model.events`; the daemon
streams them as SSE)."""

from __future__ import annotations

from collections.abc import Callable

from apimd.model.events import Event

EventSink = Callable[[Event], None]


def discard(event: Event) -> None:
    """An event sink that drops everything (standalone runs without listeners)."""
