"""Ordered lists edited one item at a time: conditions, webhooks and workflow steps. Each is a
table with add (`a`), edit (`e`/enter), delete (`x`) and move (shift+↑/↓); adding and editing
open a dialog."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Static

from apimd.model.common import SECRET_MASK
from apimd.model.resources import Webhook
from apimd.tui.editors.dialogs import ConditionDialog, PickDialog, WebhookDialog
from apimd.tui.editors.fields import FormEdited, literal_text
from apimd.tui.editors.paths import Path
from apimd.tui.formatting import screen_text

Item = dict[str, Any]


def clip(text: str, width: int = 28) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


class ItemTable(Vertical):
    """A list of items (dicts in project-file form) shown as a table and edited in dialogs."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("a", "add", "Add", id="editor.add"),
        Binding("e", "edit", "Edit", id="editor.edit"),
        Binding("x,delete", "delete", "Delete", id="editor.delete"),
        Binding("shift+up", "move(-1)", "Up", id="editor.move_up"),
        Binding("shift+down", "move(1)", "Down", id="editor.move_down"),
    ]
    NOUN: ClassVar[str] = "item"
    COLUMNS: ClassVar[tuple[str, ...]] = ()
    WIDTHS: ClassVar[tuple[int, ...]] = ()
    """The widest each column's text may be at 80 columns (half as wide again from 100)."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, classes="item-table")
        self.items: list[Item] = []
        self._invalid: set[int] = set()

    def compose(self) -> ComposeResult:
        yield DataTable(cursor_type="row", zebra_stripes=True)
        yield Static(self.empty_text(), classes="list-empty", markup=False)

    def empty_text(self) -> str:
        return f"No {self.NOUN}s yet: press a to add one."

    @property
    def table(self) -> DataTable[str | Text]:
        return self.query_one(DataTable)

    def on_mount(self) -> None:
        self.table.add_columns("#", *self.COLUMNS)
        self._show()

    def load(self, items: Iterable[Item]) -> None:
        self.items = [dict(item) for item in items]
        self._invalid.clear()
        self._show()

    def cells(self, item: Item) -> tuple[str, ...]:
        """The cells of one row after `#`."""
        raise NotImplementedError

    def _widths(self) -> tuple[int, ...]:
        scale = 1.5 if self.app.size.width >= 100 else 1.0
        return tuple(int(w * scale) for w in self.WIDTHS)

    def dialog(self, item: Item | None) -> ModalScreen[Item | None]:
        """The dialog that edits `item` (None: a new one)."""
        raise NotImplementedError

    def _show(self, cursor: int | None = None) -> None:
        table = self.table
        if cursor is None:
            cursor = table.cursor_row
        table.clear()
        for index, item in enumerate(self.items):
            number = Text(f"{index + 1}!", style="bold red") if index in self._invalid else None
            # What the project says, shown as it is: no markup, its controls escaped.
            cells = (
                Text(clip(screen_text(c), w))
                for c, w in zip(self.cells(item), self._widths(), strict=True)
            )
            table.add_row(number or str(index + 1), *cells)
        self.query_one(".list-empty").display = not self.items
        if self.items:
            table.move_cursor(row=max(0, min(cursor, len(self.items) - 1)))

    def _changed(self, cursor: int | None = None) -> None:
        self._invalid.clear()
        self._show(cursor)
        self.post_message(FormEdited())

    def action_add(self) -> None:
        def added(item: Item | None) -> None:
            if item is not None:
                self.items.append(item)
                self._changed(len(self.items) - 1)
                self.table.focus()

        self.app.push_screen(self.dialog(None), added)

    def action_edit(self) -> None:
        if not self.items:
            self.action_add()
            return
        index = self.table.cursor_row

        def edited(item: Item | None) -> None:
            if item is not None and item != self.items[index]:
                self.items[index] = item
                self._changed(index)

        self.app.push_screen(self.dialog(self.items[index]), edited)

    def action_delete(self) -> None:
        if self.items:
            del self.items[self.table.cursor_row]
            self._changed()

    def action_move(self, step: int) -> None:
        index = self.table.cursor_row
        target = index + step
        if self.items and 0 <= target < len(self.items):
            self.items[index], self.items[target] = self.items[target], self.items[index]
            self._changed(target)

    @on(DataTable.RowSelected)
    def _enter_edits(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_edit()

    def mark_invalid(self, rest: Path) -> str:
        index = rest[0]
        if not isinstance(index, int):
            return ""
        self._invalid.add(index)
        self._show()
        field = f", {rest[1]}" if len(rest) > 1 else ""
        return f"{self.NOUN} {index + 1}{field}: "

    def clear_invalid(self) -> None:
        if self._invalid:
            self._invalid.clear()
            self._show()


class ConditionTable(ItemTable):
    """A call's conditions, in evaluation order."""

    NOUN = "condition"
    COLUMNS = ("source", "path", "check", "save as", "on fail")
    WIDTHS = (13, 16, 16, 10, 7)

    def cells(self, item: Item) -> tuple[str, ...]:
        op = item.get("op")
        check = f"{op} {literal_text(item.get('value'))}".strip() if op else "(extract only)"
        return (
            item.get("source", ""),
            item.get("path") or "",
            check,
            item.get("save_as") or "",
            item.get("on_fail", "fail"),
        )

    def dialog(self, item: Item | None) -> ModalScreen[Item | None]:
        return ConditionDialog(item)


class WebhookTable(ItemTable):
    """A call's (or an auth setting's) webhooks. `choices` holds the names a webhook may refer
    to: `tokens`, `calls`, `workflows`."""

    NOUN = "webhook"
    COLUMNS = ("type", "target", "alerts", "in a row", "resolved")
    WIDTHS = (15, 14, 18, 8, 8)

    def __init__(self, *, for_auth: bool = False, id: str | None = None) -> None:
        super().__init__(id=id)
        self.for_auth = for_auth
        self.choices: Mapping[str, list[str]] = {}

    def cells(self, item: Item) -> tuple[str, ...]:
        kind = item.get("type", "")
        target = {
            "save_auth_token": item.get("token"),
            "run_call": item.get("call"),
            "run_workflow": item.get("workflow"),
            "save_variables": ", ".join(item.get("names") or []) or "all extracted",
        }.get(kind, SECRET_MASK if item.get("url") else "")
        hook = _webhook(item)
        alerts = ", ".join(hook.effective_alerts()) if hook else ", ".join(item.get("alerts") or [])
        return (
            kind,
            target or "",
            alerts,
            str(item.get("fails_in_a_row", 1)),
            "yes" if item.get("resolved") else "no",
        )

    def dialog(self, item: Item | None) -> ModalScreen[Item | None]:
        return WebhookDialog(item, choices=self.choices, for_auth=self.for_auth)


def _webhook(item: Item) -> Webhook | None:
    try:
        return Webhook.model_validate(item)
    except ValueError:
        return None


class StepTable(ItemTable):
    """A workflow's steps: call names, run in order."""

    NOUN = "step"
    COLUMNS = ("call",)
    WIDTHS = (48,)

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.calls: list[str] = []

    def empty_text(self) -> str:
        return "No steps yet: press a to add a call."

    def cells(self, item: Item) -> tuple[str, ...]:
        name = str(item["call"])
        return (name if not self.calls or name in self.calls else f"{name} (no such call)",)

    def dialog(self, item: Item | None) -> ModalScreen[Item | None]:
        return PickDialog(
            "Add a step" if item is None else "Replace step",
            self.calls,
            current=None if item is None else str(item["call"]),
            empty="No calls to add: create a call first.",
        )

    @property
    def steps(self) -> list[str]:
        return [str(item["call"]) for item in self.items]
