"""The call editor's Schedule tab: tick the schedules that run the call, or give an interval for a
new `every` schedule. Saved after the call, each change as a PUT of the schedule."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Input, SelectionList, Static

from apimd.model.api import ErrorDetail
from apimd.model.resources import Schedule
from apimd.tui.editors.fields import FormField, field_of
from apimd.tui.editors.paths import resource_path
from apimd.tui.widgets.text_input import TextInput

Change = tuple[str, dict[str, Any], bool]
"""(schedule name, PUT body, whether the schedule is new)."""


def schedule_label(schedule: Schedule) -> Text:
    when = f"every {schedule.every}" if schedule.every else f"cron {schedule.cron}"
    count = len(schedule.targets)
    text = Text(schedule.name, style="bold")
    text.append(f"  {when}, {count} target{'s' if count != 1 else ''}", style="dim")
    if not schedule.enabled:
        text.append("  (disabled)", style="dim italic")
    return text


class CallSchedules(Vertical):
    """The schedules that target one call, as ticks; and a new `every` schedule for it."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, classes="call-schedules")
        self.schedules: dict[str, Schedule] = {}

    def compose(self) -> ComposeResult:
        yield Static(
            "Schedules that run this call (space ticks; saved with the call):",
            classes="form-intro",
        )
        yield FormField(
            "Schedules", SelectionList[str](compact=True, id="schedules"), path="schedules"
        )
        yield FormField(
            "New: every",
            TextInput(placeholder="e.g. 5m (empty: no new schedule)", compact=True, id="new-every"),
            path="new.every",
        )
        yield FormField(
            "New: name", TextInput(compact=True, id="new-schedule-name"), path="new.name"
        )

    def load(self, schedules: list[Schedule], call: str | None) -> None:
        """Show `schedules`, those that run `call` (None: a new call) ticked."""
        self.schedules = {s.name: s for s in schedules}
        ticks = self.query_one("#schedules", SelectionList)
        ticks.clear_options()
        ticks.add_options(
            (schedule_label(s), s.name, call is not None and call in s.targets)
            for s in sorted(schedules, key=lambda s: s.name)
        )
        field_of(self, "#schedules").display = bool(schedules)
        default = default_name(call or "<call>", "<interval>")
        self.query_one("#new-schedule-name", Input).placeholder = f"default: {default}"

    @property
    def state(self) -> tuple[list[str], str, str]:
        """What the tab says (for "unsaved changes")."""
        return (
            sorted(self.query_one("#schedules", SelectionList).selected),
            self.query_one("#new-every", Input).value.strip(),
            self.query_one("#new-schedule-name", Input).value.strip(),
        )

    def changes(self, call: str) -> list[Change]:
        """The PUTs that make the schedules match the ticks and add the new schedule."""
        ticked, every, new_name = self.state
        out: list[Change] = []
        for schedule in self.schedules.values():
            has, want = call in schedule.targets, schedule.name in ticked
            if has != want:
                targets = (
                    [*schedule.targets, call]
                    if want
                    else [t for t in schedule.targets if t != call]
                )
                body = schedule.model_dump(mode="json", by_alias=True, exclude_none=True)
                out.append((schedule.name, {**body, "targets": targets}, False))
        if every:
            name = new_name or default_name(call, every)
            out.append((name, {"name": name, "every": every, "targets": [call]}, True))
        return out

    def saved(self, schedule: Schedule, *, is_new: bool) -> None:
        self.schedules[schedule.name] = schedule
        if is_new:
            self.query_one("#new-every", Input).value = ""
            self.query_one("#new-schedule-name", Input).value = ""

    def failed(self, schedule: str, details: list[ErrorDetail], *, is_new: bool) -> FormField:
        """Show why a schedule was refused at the field concerned; that field."""
        listed = field_of(self, "#schedules")
        every = field_of(self, "#new-every")
        named = field_of(self, "#new-schedule-name")
        for detail in details:
            path = resource_path(detail.field, "schedules")
            if not is_new:
                listed.show_error(f"schedule {schedule}: {detail.message}")
            elif path[:1] == ("name",):
                named.show_error(detail.message)
            else:
                every.show_error(detail.message)
        return every if is_new else listed


def default_name(call: str, every: str) -> str:
    return f"{call}-every-{every}"
