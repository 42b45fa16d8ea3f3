"""Form building blocks: a labelled field that shows the daemon's complaint under its control,
a secret input that keeps the stored secret unless retyped, and an editable key/value list."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar, Protocol, runtime_checkable

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.dom import DOMNode
from textual.message import Message
from textual.suggester import Suggester
from textual.widget import Widget
from textual.widgets import Checkbox, Input, Label, Select, Static

from apimd.model.common import SECRET_MASK
from apimd.tui.editors.paths import Path, join_path
from apimd.tui.formatting import screen_text
from apimd.tui.widgets.text_input import TextInput

KEPT_PLACEHOLDER = f"{SECRET_MASK}  stored; type to replace"


class Form(VerticalScroll, can_focus=False):
    """A scrolling column of fields; focus moves between the fields, never to the column."""

    def __init__(self, *children: Widget, id: str | None = None) -> None:
        super().__init__(*children, id=id, classes="form")


class FormEdited(Message):
    """A compound form widget changed in a way no built-in `Changed` message reports."""


@runtime_checkable
class LocatesErrors(Protocol):
    """A control holding several values (a list, a map) that can point at the one at fault."""

    def mark_invalid(self, rest: Path) -> str:
        """Highlight the item `rest` points at; return words that name it (`"condition 2: "`)."""
        ...

    def clear_invalid(self) -> None: ...


class FormField(Vertical):
    """A label, its control, and below them the error the daemon reported for it (if any)."""

    def __init__(
        self,
        label: str,
        control: Widget,
        *,
        path: str,
        aliases: Iterable[str] = (),
        note: str = "",
        stacked: bool = False,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(id=id, classes=classes)
        self.label = label
        self.control = control
        self.paths = (path, *aliases)
        self._note = note
        self._errors: list[str] = []
        self.set_class(stacked, "-stacked")

    def compose(self) -> ComposeResult:
        if self.has_class("-stacked"):
            # A wide control (a table) gets the whole width, under its label.
            yield Label(self.label, classes="field-label")
            with Horizontal(classes="field-row"):
                yield self.control
        else:
            with Horizontal(classes="field-row"):
                yield Label(self.label, classes="field-label")
                yield self.control
        yield Static("", classes="field-error", markup=False)
        if self._note:
            yield Static(self._note, classes="field-note", markup=False)

    def show_error(self, message: str, rest: Path = ()) -> None:
        where = ""
        if rest:
            where = (
                self.control.mark_invalid(rest)
                if isinstance(self.control, LocatesErrors)
                else f"{join_path(rest)}: "
            )
        self._errors.append(f"{where}{message}")
        self.query_one(".field-error", Static).update(
            screen_text("\n".join(self._errors), lines=True)
        )
        self.add_class("-invalid")

    @property
    def errors(self) -> list[str]:
        """What is shown as wrong with this field."""
        return list(self._errors)

    def clear_error(self) -> None:
        self._errors.clear()
        self.remove_class("-invalid")
        self.query_one(".field-error", Static).update("")
        if isinstance(self.control, LocatesErrors):
            self.control.clear_invalid()


def text_field(
    label: str,
    id: str,
    *,
    path: str | None = None,
    value: str = "",
    placeholder: str = "",
    note: str = "",
    suggester: Suggester | None = None,
) -> FormField:
    """A one-line text field: `id` names the Input, `path` (by default `id` with `_` for `-`)
    the value the daemon's errors name."""
    control = TextInput(value, placeholder=placeholder, compact=True, id=id, suggester=suggester)
    return FormField(label, control, path=path or id.replace("-", "_"), note=note)


def check_field(
    label: str, text: str, id: str, *, path: str | None = None, value: bool = False, note: str = ""
) -> FormField:
    """A checkbox field (`text` beside the box); `id` and `path` as in `text_field`."""
    control = Checkbox(text, value, compact=True, id=id)
    return FormField(label, control, path=path or id.replace("-", "_"), note=note)


def field_of(node: DOMNode, selector: str) -> FormField:
    """The FormField around the control `selector` matches inside `node`."""
    control = node.query_one(selector)
    for ancestor in control.ancestors:
        if isinstance(ancestor, FormField):
            return ancestor
    raise LookupError(f"{selector} is not inside a FormField")


class SecretInput(TextInput):
    """A secret: empty with a `••••` placeholder while the stored value is kept; what the user
    types replaces it. `secret` is what to send: the typed text, `••••` (keep) or None."""

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(password=True, compact=True, id=id, classes=classes)
        self._stored = False

    def load(self, value: str | None) -> None:
        """Show a stored value: `••••` (a secret kept unless retyped) or a value in clear."""
        self._stored = value == SECRET_MASK
        self.value = "" if value in (None, SECRET_MASK) else str(value)
        self.placeholder = KEPT_PLACEHOLDER if self._stored else ""

    @property
    def secret(self) -> str | None:
        if self.value:
            return self.value
        return SECRET_MASK if self._stored else None


class Choice(Select[str]):
    """A compact Select of names or words. `blank` is the prompt meaning "none", or None when a
    value is required. A value the options lack is added rather than dropped, so a reference the
    daemon knows survives a save even when the list of names failed to load. Options and value
    may be set before the widget is mounted (in `compose`)."""

    def __init__(
        self,
        options: Iterable[str | tuple[str, str]] = (),
        *,
        blank: str | None = None,
        id: str | None = None,
    ) -> None:
        self._pairs = [(o, o) if isinstance(o, str) else o for o in options]
        self._blank = blank
        self._pending: tuple[str | None] | None = None
        self._options_changed = False
        super().__init__(
            self._pairs,
            prompt=blank or "",
            allow_blank=blank is not None,
            compact=True,
            id=id,
        )

    def on_mount(self) -> None:
        # After Select's own mount handler, which selects the constructor's value.
        self.call_later(self._apply_pending)

    def _apply_pending(self) -> None:
        if self._pending is not None:
            self.choose(self._pending[0])
        elif self._options_changed:
            self._options_changed = False
            self.set_options(self._pairs)

    @property
    def chosen(self) -> str | None:
        if self._pending is not None:
            return self._pending[0]
        value = self.value
        return value if isinstance(value, str) else None

    def set_choices(self, options: Iterable[str | tuple[str, str]]) -> None:
        """Replace the options, keeping the current value."""
        current = self.chosen
        self._pairs = [(o, o) if isinstance(o, str) else o for o in options]
        if not self.is_mounted:
            self._options_changed = True
            return
        self.set_options(self._pairs)
        self.choose(current)

    def choose(self, value: str | None) -> None:
        if value is not None and value not in {v for _label, v in self._pairs}:
            self._pairs.append((value, value))
            self._options_changed = True
        if not self.is_mounted:
            self._pending = (value,)
            return
        self._pending = None
        if self._options_changed:
            self._options_changed = False
            self.set_options(self._pairs)
        if value is not None:
            self.value = value
        elif self._blank is not None:
            self.clear()


def number_or_text(text: str) -> int | float | str | None:
    """A typed number as a number, nothing as None, anything else as typed (the daemon then says
    at the field that it must be a number)."""
    text = text.strip()
    if not text:
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            continue
    return text


def number_text(value: float | None) -> str:
    return "" if value is None else f"{value:g}"


def split_words(text: str) -> list[str]:
    """`a, b c` as `["a", "b", "c"]` (tags, scopes)."""
    return [word for word in text.replace(",", " ").split() if word]


def literal_text(value: Any) -> str:
    """A condition value as the user types it: strings bare, anything else as JSON."""
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value)


def parse_literal(text: str) -> Any:
    """What `literal_text` shows, back: numbers, `true`, `false` and `null` as JSON values,
    JSON lists and objects as such, anything else as the string typed."""
    if not text:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return text
    return text if isinstance(value, str) else value


class KeyValueRow(Horizontal):
    """One `name: value` pair of a `KeyValueList`."""

    def __init__(
        self, key: str, value: str, *, secret: bool, placeholders: tuple[str, str]
    ) -> None:
        super().__init__(classes="kv-row")
        self.key_input = TextInput(key, placeholder=placeholders[0], compact=True, classes="kv-key")
        self.value_input: Input
        if secret and (value == SECRET_MASK or not key):
            # A masked value (or a new one) is a secret; a value the daemon shows in clear
            # (a token's EXPIRES_IN) stays readable.
            secret_input = SecretInput(classes="kv-value")
            secret_input.load(value if key else None)
            secret_input.placeholder = secret_input.placeholder or placeholders[1]
            self.value_input = secret_input
        else:
            self.value_input = TextInput(
                value, placeholder=placeholders[1], compact=True, classes="kv-value"
            )

    def compose(self) -> ComposeResult:
        yield self.key_input
        yield Static(":", classes="kv-colon")
        yield self.value_input

    @property
    def pair(self) -> tuple[str, str]:
        value = self.value_input
        if isinstance(value, SecretInput):
            return self.key_input.value.strip(), value.secret or ""
        return self.key_input.value.strip(), value.value


class KeyValueList(Vertical):
    """Editable `name → value` pairs (headers, params, form fields, variables); an empty row is
    ignored, so typing into the last row is how the list grows."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+n", "add_row", "Add row", id="editor.add_row"),
        Binding("ctrl+r", "remove_row", "Remove row", id="editor.remove_row"),
    ]

    def __init__(
        self,
        *,
        placeholders: tuple[str, str] = ("name", "value"),
        secret_values: bool = False,
        id: str | None = None,
    ) -> None:
        super().__init__(id=id, classes="kv-list")
        self._placeholders = placeholders
        self._secret = secret_values
        # The rows in order, kept here rather than read back from the DOM, so the list is right
        # at once after `load` even before Textual has finished mounting and removing rows.
        self.rows: list[KeyValueRow] = [self._row("", "")]

    def compose(self) -> ComposeResult:
        yield from self.rows

    def _row(self, key: str, value: str) -> KeyValueRow:
        return KeyValueRow(key, value, secret=self._secret, placeholders=self._placeholders)

    def load(self, items: Mapping[str, str] | None) -> None:
        """Show `items`, and an empty row after them to type a new one into."""
        for row in self.rows:
            row.remove()
        self.rows = [self._row(k, v) for k, v in (items or {}).items()]
        self.rows.append(self._row("", ""))
        self.mount_all(self.rows)

    def pairs(self) -> list[tuple[str, str]]:
        """The rows, in order, without empty ones."""
        return [row.pair for row in self.rows if any(row.pair)]

    def as_dict(self) -> dict[str, str]:
        return dict(self.pairs())

    def _focused_row(self) -> KeyValueRow | None:
        focused = self.screen.focused
        for row in self.rows:
            if focused is not None and focused in row.children:
                return row
        return None

    def action_add_row(self) -> None:
        row = self._row("", "")
        current = self._focused_row()
        if current is None:
            self.rows.append(row)
            self.mount(row)
        else:
            self.rows.insert(self.rows.index(current) + 1, row)
            self.mount(row, after=current)
        self.call_after_refresh(row.key_input.focus)

    def action_remove_row(self) -> None:
        row = self._focused_row()
        if row is None:
            return
        if len(self.rows) == 1:
            row.key_input.value = ""
            row.value_input.value = ""
            row.key_input.focus()
        else:
            index = self.rows.index(row)
            self.rows.remove(row)
            row.remove()
            self.rows[min(index, len(self.rows) - 1)].key_input.focus()
        self.post_message(FormEdited())

    def mark_invalid(self, rest: Path) -> str:
        key = str(rest[0])
        for row in self.rows:
            if row.pair[0] == key:
                row.add_class("-invalid")
        return f"{key}: "

    def clear_invalid(self) -> None:
        for row in self.rows:
            row.remove_class("-invalid")

    @on(Input.Submitted)
    def _next_row(self, event: Input.Submitted) -> None:
        """Enter in a row's name moves to its value; in a value, to the next row (adding one
        after the last, when that is filled in)."""
        event.stop()
        row = self._focused_row()
        if row is None:
            return
        if event.input is row.key_input:
            row.value_input.focus()
        elif row is not self.rows[-1]:
            self.rows[self.rows.index(row) + 1].key_input.focus()
        elif any(row.pair):
            self.action_add_row()
        else:
            self.screen.focus_next()


def pairs_field(
    label: str, id: str, name: str = "name", value: str = "value", *, note: str = ""
) -> FormField:
    """A field of names and values (headers, params, variables), `name` and `value` the
    placeholders of a row; `id` names the list and the path."""
    return FormField(label, KeyValueList(placeholders=(name, value), id=id), path=id, note=note)


def table_field(label: str, table: Widget, *, note: str = "") -> FormField:
    """A list of items shown as a table the whole width under its label; its id is the path."""
    return FormField(label, table, path=str(table.id), stacked=True, note=note)
