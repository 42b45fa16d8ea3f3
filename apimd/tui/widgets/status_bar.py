"""The top line of every screen: where you are, and whether the daemon answers."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from rich.text import Text
from textual.widgets import Static

from apimd.tui.connection import DaemonState
from apimd.tui.formatting import screen_text

if TYPE_CHECKING:
    from apimd.tui.app import ApimdApp


class StatusBar(Static):
    """`apimd › Dashboard … ● daemon 0.1.0 started 3h ago · 5 calls`; red when no daemon answers."""

    def __init__(self, title: str, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.screen_title = title

    def on_mount(self) -> None:
        app = cast("ApimdApp", self.app)
        self.watch(app, "daemon", self._show, init=True)
        # The uptime moves on; the status itself is re-read by the app.
        self.set_interval(5, lambda: self._show(app.daemon))

    def on_resize(self) -> None:
        self._show(cast("ApimdApp", self.app).daemon)

    def _show(self, state: DaemonState) -> None:
        app = cast("ApimdApp", self.app)
        self.set_class(state.checked and not state.connected, "-offline")
        self.set_class(state.connected, "-online")
        mark = "●" if state.connected else "✗" if state.checked else "…"
        line = Text.assemble(
            (" apimd ", "bold"),
            ("› ", "dim"),
            (screen_text(self.screen_title), "bold"),
            "  ",
        )
        room = self.size.width - line.cell_len - 1 if self.size.width else 60
        # The daemon's words (its version, agents, locations, why it cannot be reached).
        said = screen_text(state.summary(app.clock(), max(10, room) - 2))
        summary = Text(f"{mark} {said}")
        summary.truncate(max(10, room), overflow="ellipsis")
        line.append_text(summary)
        self.update(line)

    def set_title(self, title: str) -> None:
        self.screen_title = title
        self._show(cast("ApimdApp", self.app).daemon)
