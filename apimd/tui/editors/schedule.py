"""The schedule editor: `every` or `cron` (with a time zone), targets, enabled, jitter."""

from __future__ import annotations

import zoneinfo
from functools import cache
from typing import ClassVar

from pydantic import BaseModel
from textual import on
from textual.app import ComposeResult
from textual.suggester import SuggestFromList
from textual.widgets import Checkbox, Select, SelectionList

from apimd.model.resources import Schedule
from apimd.tui.editors.base import Document, EditorScreen, dump, without_none
from apimd.tui.editors.fields import (
    Choice,
    FormField,
    check_field,
    field_of,
    number_or_text,
    number_text,
    text_field,
)
from apimd.tui.editors.paths import Path
from apimd.tui.ports import DaemonClient


@cache
def time_zones() -> list[str]:
    return sorted(zoneinfo.available_timezones())


async def target_names(client: DaemonClient) -> list[tuple[str, str]]:
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


class TargetsEditor(EditorScreen):
    """What the schedule and maintenance window editors share: a choice of two ways to say when
    (`CHOICE`, each way showing its own fields: `SHOWN`), a cron and a time zone, and the targets
    ticked from every call and workflow."""

    CHOICE: ClassVar[str] = ""
    """The id of the Choice between the ways."""
    SHOWN: ClassVar[dict[str, tuple[str, ...]]] = {}
    """For each way, the fields it shows (the others' are hidden)."""

    def __init__(self, client: DaemonClient, name: str | None = None) -> None:
        super().__init__(client, name)
        self.target_names: list[tuple[str, str]] = []

    def compose_when(self, label: str, ways: tuple[tuple[str, str], ...]) -> ComposeResult:
        yield FormField(label, Choice(ways, id=self.CHOICE), path=self.CHOICE)

    def compose_cron(self, note: str = "") -> ComposeResult:
        yield text_field("Cron", "cron", placeholder="minute hour day month weekday", note=note)

    def compose_timezone(self, note: str = "") -> ComposeResult:
        yield text_field(
            "Time zone", "timezone", note=note, suggester=SuggestFromList(time_zones())
        )

    def compose_targets(self, note: str = "") -> ComposeResult:
        yield FormField("Targets", TargetList(id="targets"), path="targets", note=note)

    async def load_choices(self) -> None:
        self.target_names = await target_names(self.client)

    def fill_when(self, way: str, timezone: str | None, targets: list[str] | None) -> None:
        """Choose `way`; show the time zone and the ticked targets."""
        self.query_one(f"#{self.CHOICE}", Choice).choose(way)
        self.set_text("#timezone", timezone or "UTC")
        self.query_one("#targets", TargetList).load(sorted(self.target_names), targets or [])
        self._show_way()

    @property
    def way(self) -> str | None:
        return self.query_one(f"#{self.CHOICE}", Choice).chosen

    @on(Select.Changed)
    def _way_changed(self, event: Select.Changed) -> None:
        if event.select.id == self.CHOICE:
            self._show_way()

    def _show_way(self) -> None:
        way = self.way
        for shown_by, selectors in self.SHOWN.items():
            for selector in selectors:
                field_of(self, selector).display = shown_by == way

    def targets(self) -> Document:
        """The targets, the description and the tags as the form says."""
        return {"targets": self.query_one("#targets", TargetList).targets, **self.notes()}


class ScheduleEditor(TargetsEditor):
    """Edit (or create) a schedule."""

    KIND = "schedules"
    NOUN = "schedule"
    CHOICE = "trigger"
    SHOWN: ClassVar[dict[str, tuple[str, ...]]] = {
        "every": ("#every",),
        "cron": ("#cron", "#timezone"),
    }

    def compose_fields(self) -> ComposeResult:
        yield from self.compose_when(
            "Runs", (("every interval", "every"), ("cron expression", "cron"))
        )
        yield text_field("Every", "every", placeholder="30s, 5m, 1h")
        yield from self.compose_cron()
        yield from self.compose_timezone("for cron; e.g. Europe/London (→ completes)")
        yield from self.compose_targets()
        yield check_field("Enabled", "run on schedule", "enabled")
        yield text_field("Jitter (s)", "jitter", note="a random delay of up to this many seconds")
        yield from self.compose_notes()

    async def fill(self, model: BaseModel | None) -> None:
        schedule = model if isinstance(model, Schedule) else None
        self.set_text("#every", schedule.every if schedule else None)
        self.set_text("#cron", schedule.cron if schedule else None)
        self.query_one("#enabled", Checkbox).value = schedule.enabled if schedule else True
        self.set_text("#jitter", number_text(schedule.jitter if schedule else 0))
        self.fill_notes(schedule)
        self.fill_when(
            "cron" if schedule and schedule.cron else "every",
            schedule.timezone if schedule else None,
            schedule.targets if schedule else None,
        )

    def document(self) -> Document:
        cron = self.way == "cron"
        doc: Document = {
            **dump(self.original),
            "name": self.target_name,
            "every": None if cron else self.text("#every"),
            "cron": self.text("#cron") if cron else None,
            "timezone": self.text("#timezone"),
            "enabled": self.query_one("#enabled", Checkbox).value,
            "jitter": number_or_text(self.raw("#jitter")),
            **self.targets(),
        }
        return without_none(doc)
