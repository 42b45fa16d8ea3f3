"""The maintenance window editor (SPEC §11): recurring (`cron` + `duration`, time zone) or one-off
(`start` + `end`, UTC), and the targets it silences (none ticked: all)."""

from __future__ import annotations

from pydantic import BaseModel
from textual import on
from textual.app import ComposeResult
from textual.suggester import SuggestFromList
from textual.widgets import Input, Select

from apimd.model.maintenance import MaintenanceWindow
from apimd.tui.editors.base import Document, EditorScreen, dump, without_none
from apimd.tui.editors.fields import Choice, Form, FormField, field_of, split_words
from apimd.tui.editors.ports import ResourceClient
from apimd.tui.editors.schedule import TargetList, target_names, time_zones

RECURRING_FIELDS = ("#cron", "#duration", "#timezone")
ONE_OFF_FIELDS = ("#start", "#end")


class MaintenanceEditor(EditorScreen):
    """Edit (or create) a maintenance window."""

    KIND = "maintenance"
    NOUN = "maintenance window"

    def __init__(self, client: ResourceClient, name: str | None = None) -> None:
        super().__init__(client, name)
        self.target_names: list[tuple[str, str]] = []

    def compose_form(self) -> ComposeResult:
        with Form():
            yield from self.compose_name()
            yield FormField(
                "Window",
                Choice((("recurring (cron)", "cron"), ("once (start, end)", "once")), id="when"),
                path="when",
            )
            yield FormField(
                "Cron",
                Input(placeholder="minute hour day month weekday", compact=True, id="cron"),
                path="cron",
                note="when each window starts, e.g. 0 2 * * 0 (Sundays 02:00)",
            )
            yield FormField(
                "Duration", Input(placeholder="2h", compact=True, id="duration"), path="duration"
            )
            yield FormField(
                "Time zone",
                Input(compact=True, id="timezone", suggester=SuggestFromList(time_zones())),
                path="timezone",
            )
            yield FormField(
                "Start (UTC)",
                Input(placeholder="2026-12-24T22:00:00Z", compact=True, id="start"),
                path="start",
            )
            yield FormField(
                "End (UTC)",
                Input(placeholder="2026-12-25T02:00:00Z", compact=True, id="end"),
                path="end",
            )
            yield FormField(
                "Targets",
                TargetList(id="targets"),
                path="targets",
                note="none ticked: every target",
            )
            yield FormField(
                "Description", Input(compact=True, id="description"), path="description"
            )
            yield FormField("Tags", Input(compact=True, id="tags"), path="tags")

    async def load_choices(self) -> None:
        self.target_names = await target_names(self.client)

    async def fill(self, model: BaseModel | None) -> None:
        window = model if isinstance(model, MaintenanceWindow) else None
        q = self.query_one
        q("#when", Choice).choose("once" if window and window.start else "cron")
        q("#cron", Input).value = (window.cron if window else None) or ""
        q("#duration", Input).value = (window.duration if window else None) or ""
        q("#timezone", Input).value = window.timezone if window else "UTC"
        q("#start", Input).value = window.start.isoformat() if window and window.start else ""
        q("#end", Input).value = window.end.isoformat() if window and window.end else ""
        targets = q("#targets", TargetList)
        targets.load(sorted(self.target_names), window.targets if window else [])
        q("#description", Input).value = (window.description if window else None) or ""
        q("#tags", Input).value = ", ".join(window.tags if window else [])
        self._show_when()

    @on(Select.Changed, "#when")
    def _show_when(self) -> None:
        once = self.query_one("#when", Choice).chosen == "once"
        for selector in RECURRING_FIELDS:
            field_of(self, selector).display = not once
        for selector in ONE_OFF_FIELDS:
            field_of(self, selector).display = once

    def document(self) -> Document:
        q = self.query_one
        once = q("#when", Choice).chosen == "once"

        def text(selector: str, shown: bool) -> str | None:
            return (q(selector, Input).value.strip() or None) if shown else None

        doc: Document = {
            **dump(self.original),
            "name": self.target_name,
            "cron": text("#cron", not once),
            "duration": text("#duration", not once),
            "timezone": text("#timezone", not once),
            "start": text("#start", once),
            "end": text("#end", once),
            "targets": q("#targets", TargetList).targets,
            "description": q("#description", Input).value.strip() or None,
            "tags": split_words(q("#tags", Input).value),
        }
        return without_none(doc)
