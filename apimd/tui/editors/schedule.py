"""The schedule editor: `every` or `cron` (with a time zone), targets, enabled, jitter."""

from __future__ import annotations

import zoneinfo
from functools import cache

from pydantic import BaseModel
from textual import on
from textual.app import ComposeResult
from textual.suggester import SuggestFromList
from textual.widgets import Checkbox, Input, Select, SelectionList

from apimd.model.resources import Schedule
from apimd.tui.editors.base import Document, EditorScreen, dump, without_none
from apimd.tui.editors.fields import (
    Choice,
    Form,
    FormField,
    field_of,
    number_or_text,
    number_text,
    split_words,
)
from apimd.tui.editors.paths import Path
from apimd.tui.editors.ports import ResourceClient


@cache
def time_zones() -> list[str]:
    return sorted(zoneinfo.available_timezones())


async def target_names(client: ResourceClient) -> list[tuple[str, str]]:
    """(name, "call" | "workflow") of every run target, for a `TargetList`."""
    calls = await client.list("calls")
    workflows = await client.list("workflows")
    return [
        *((str(getattr(m, "name", "")), "call") for m in calls),
        *((str(getattr(m, "name", "")), "workflow") for m in workflows),
    ]


class TargetList(SelectionList[str]):
    """Calls and workflows a schedule runs, ticked; keeps the order they were added in."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(compact=True, id=id)
        self.order: list[str] = []

    def load(self, names: list[tuple[str, str]], targets: list[str]) -> None:
        """`names`: (name, "call" | "workflow"); `targets`: the ticked ones, in order."""
        self.order = list(targets)
        known = {name for name, _kind in names}
        self.clear_options()
        self.add_options(
            (f"{name}  ({kind})", name, name in targets)
            for name, kind in [*names, *((t, "unknown") for t in targets if t not in known)]
        )

    @property
    def targets(self) -> list[str]:
        ticked = set(self.selected)
        kept = [name for name in self.order if name in ticked]
        return kept + sorted(ticked - set(kept))

    def mark_invalid(self, rest: Path) -> str:
        index = rest[0]
        if isinstance(index, int) and index < len(self.targets):
            return f"{self.targets[index]}: "
        return ""

    def clear_invalid(self) -> None:
        return None


class ScheduleEditor(EditorScreen):
    """Edit (or create) a schedule."""

    KIND = "schedules"
    NOUN = "schedule"

    def __init__(self, client: ResourceClient, name: str | None = None) -> None:
        super().__init__(client, name)
        self.target_names: list[tuple[str, str]] = []

    def compose_form(self) -> ComposeResult:
        with Form():
            yield from self.compose_name()
            yield FormField(
                "Runs",
                Choice((("every interval", "every"), ("cron expression", "cron")), id="trigger"),
                path="trigger",
            )
            yield FormField(
                "Every",
                Input(placeholder="30s, 5m, 1h", compact=True, id="every"),
                path="every",
            )
            yield FormField(
                "Cron",
                Input(placeholder="minute hour day month weekday", compact=True, id="cron"),
                path="cron",
            )
            yield FormField(
                "Time zone",
                Input(compact=True, id="timezone", suggester=SuggestFromList(time_zones())),
                path="timezone",
                note="for cron; e.g. Europe/London (→ completes)",
            )
            yield FormField("Targets", TargetList(id="targets"), path="targets")
            yield FormField(
                "Enabled", Checkbox("run on schedule", compact=True, id="enabled"), path="enabled"
            )
            yield FormField(
                "Jitter (s)",
                Input(compact=True, id="jitter"),
                path="jitter",
                note="a random delay of up to this many seconds",
            )
            yield FormField(
                "Description", Input(compact=True, id="description"), path="description"
            )
            yield FormField("Tags", Input(compact=True, id="tags"), path="tags")

    async def load_choices(self) -> None:
        self.target_names = await target_names(self.client)

    async def fill(self, model: BaseModel | None) -> None:
        schedule = model if isinstance(model, Schedule) else None
        q = self.query_one
        q("#trigger", Choice).choose("cron" if schedule and schedule.cron else "every")
        q("#every", Input).value = (schedule.every if schedule else None) or ""
        q("#cron", Input).value = (schedule.cron if schedule else None) or ""
        q("#timezone", Input).value = schedule.timezone if schedule else "UTC"
        targets = q("#targets", TargetList)
        targets.load(sorted(self.target_names), schedule.targets if schedule else [])
        q("#enabled", Checkbox).value = schedule.enabled if schedule else True
        q("#jitter", Input).value = number_text(schedule.jitter if schedule else 0)
        q("#description", Input).value = (schedule.description if schedule else None) or ""
        q("#tags", Input).value = ", ".join(schedule.tags if schedule else [])
        self._show_trigger()

    @on(Select.Changed, "#trigger")
    def _show_trigger(self) -> None:
        cron = self.query_one("#trigger", Choice).chosen == "cron"
        field_of(self, "#every").display = not cron
        field_of(self, "#cron").display = cron
        field_of(self, "#timezone").display = cron

    def document(self) -> Document:
        q = self.query_one
        cron = q("#trigger", Choice).chosen == "cron"
        doc: Document = {
            **dump(self.original),
            "name": self.target_name,
            "every": None if cron else (q("#every", Input).value.strip() or None),
            "cron": (q("#cron", Input).value.strip() or None) if cron else None,
            "timezone": q("#timezone", Input).value.strip() or None,
            "targets": q("#targets", TargetList).targets,
            "enabled": q("#enabled", Checkbox).value,
            "jitter": number_or_text(q("#jitter", Input).value),
            "description": q("#description", Input).value.strip() or None,
            "tags": split_words(q("#tags", Input).value),
        }
        return without_none(doc)
