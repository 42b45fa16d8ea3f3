"""The maintenance window editor (SPEC §11): recurring (`cron` + `duration`, time zone) or one-off
(`start` + `end`, UTC), and the targets it silences (none ticked: all)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel
from textual.app import ComposeResult

from apimd.model.maintenance import MaintenanceWindow
from apimd.tui.editors.base import Document, dump, without_none
from apimd.tui.editors.fields import text_field
from apimd.tui.editors.schedule import TargetsEditor


class MaintenanceEditor(TargetsEditor):
    """Edit (or create) a maintenance window."""

    KIND = "maintenance"
    NOUN = "maintenance window"
    CHOICE = "when"
    SHOWN: ClassVar[dict[str, tuple[str, ...]]] = {
        "cron": ("#cron", "#duration", "#timezone"),
        "once": ("#start", "#end"),
    }

    def compose_fields(self) -> ComposeResult:
        yield from self.compose_when(
            "Window", (("recurring (cron)", "cron"), ("once (start, end)", "once"))
        )
        yield from self.compose_cron("when each window starts, e.g. 0 2 * * 0 (Sundays 02:00)")
        yield text_field("Duration", "duration", placeholder="2h")
        yield from self.compose_timezone()
        yield text_field("Start (UTC)", "start", placeholder="2026-12-24T22:00:00Z")
        yield text_field("End (UTC)", "end", placeholder="2026-12-25T02:00:00Z")
        yield from self.compose_targets("none ticked: every target")
        yield from self.compose_notes()

    async def fill(self, model: BaseModel | None) -> None:
        window = model if isinstance(model, MaintenanceWindow) else None
        self.set_text("#cron", window.cron if window else None)
        self.set_text("#duration", window.duration if window else None)
        self.set_text("#start", window.start.isoformat() if window and window.start else None)
        self.set_text("#end", window.end.isoformat() if window and window.end else None)
        self.fill_notes(window)
        self.fill_when(
            "once" if window and window.start else "cron",
            window.timezone if window else None,
            window.targets if window else None,
        )

    def document(self) -> Document:
        once = self.way == "once"

        def text(selector: str, shown: bool) -> str | None:
            return self.text(selector) if shown else None

        doc: Document = {
            **dump(self.original),
            "name": self.target_name,
            "cron": text("#cron", not once),
            "duration": text("#duration", not once),
            "timezone": text("#timezone", not once),
            "start": text("#start", once),
            "end": text("#end", once),
            **self.targets(),
        }
        return without_none(doc)
