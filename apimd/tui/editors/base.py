"""What every resource editor shares: loading through the client in a worker, ctrl+s to save with
a PUT, esc to close (asking before unsaved changes are lost), and the daemon's validation errors
shown at the fields they name. The screen is dismissed with the saved model, or None."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.message import Message
from textual.reactive import reactive
from textual.screen import ModalScreen
from textual.widget import Widget
from textual.widgets import (
    Checkbox,
    Footer,
    Input,
    Select,
    SelectionList,
    Static,
    TabbedContent,
    TabPane,
    TextArea,
)
from textual.worker import Worker, WorkerState

from apimd.client import ApiError, DaemonUnavailable
from apimd.model.api import ErrorDetail
from apimd.tui.editors.dialogs import ConfirmDiscard
from apimd.tui.editors.fields import Form, FormEdited, FormField, split_words, text_field
from apimd.tui.editors.paths import join_path, named_fields, resource_path
from apimd.tui.formatting import screen_text
from apimd.tui.ports import DaemonClient

CSS = Path(__file__).with_name("editors.tcss")
Document = dict[str, Any]


def dump(model: BaseModel | None) -> Document:
    """A model in project-file form (aliases, no unset optionals, no defaults)."""
    if model is None:
        return {}
    return model.model_dump(mode="json", by_alias=True, exclude_none=True, exclude_defaults=True)


def without_none(document: Document) -> Document:
    return {k: v for k, v in document.items() if v is not None}


def place_error(detail: ErrorDetail, kind: str, fields: dict[str, FormField]) -> list[FormField]:
    """Show one error at the field it names (or, for an error about the whole resource, at
    the fields its message quotes); the fields it was shown at."""
    path = resource_path(detail.field, kind)
    for size in range(len(path), 0, -1):
        field = fields.get(join_path(path[:size]))
        if field is not None:
            field.show_error(detail.message, path[size:])
            return [field]
    if path:
        return []
    quoted = [fields[n] for n in named_fields(detail.message) if n in fields]
    shown = [f for f in quoted if f.display]
    for field in shown:
        field.show_error(detail.message)
    return shown


def where_in_form(field: FormField) -> str:
    """Where `field` is, as the summary names it (`Tab › label`), marking its tab."""
    pane = next((a for a in field.ancestors if isinstance(a, TabPane)), None)
    label = field.label.lower()
    if pane is None:
        return label
    tabbed = next(a for a in pane.ancestors if isinstance(a, TabbedContent))
    tab = tabbed.get_tab(pane)
    title = tab.label_text.removesuffix(" !")
    tab.label = f"{title} !"
    return f"{title} › {label}"


class EditorScreen(ModalScreen[BaseModel | None]):
    """A resource editor. Subclasses compose the form and move values between it and the model:
    `fill` (model to widgets), `document` (widgets to the PUT body)."""

    # Absolute: the subclasses live in other modules, and Textual resolves relative paths per class.
    CSS_PATH = CSS
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "save", "Save", id="editor.save"),
        Binding("escape", "close", "Close", id="editor.close"),
    ]
    KIND: ClassVar[str] = ""
    NOUN: ClassVar[str] = ""

    dirty: reactive[bool] = reactive(False)

    def __init__(self, client: DaemonClient, name: str | None = None) -> None:
        super().__init__(classes="editor")
        self.client = client
        self.resource_name = name
        self.original: BaseModel | None = None
        self.loaded = False
        self._baseline: Any = None

    # --- what subclasses provide ----------------------------------------------------------

    def compose_form(self) -> ComposeResult:
        """The form: the name (of a new resource), then `compose_fields`."""
        with Form():
            yield from self.compose_name()
            yield from self.compose_fields()

    def compose_fields(self) -> ComposeResult:
        yield from ()

    async def load_choices(self) -> None:
        """Fetch the names the form's Selects offer (auth settings, tokens, calls…)."""

    async def fill(self, model: BaseModel | None) -> None:
        """Show `model` (None: a new resource) in the form."""

    def document(self) -> Document:
        """The resource as the form says, in project-file form: the body of the PUT."""
        raise NotImplementedError

    def snapshot(self) -> Any:
        """What "unsaved changes" compares with the state after loading or saving."""
        return self.document()

    def local_problems(self) -> list[tuple[str, str]]:
        """(field, message) for what cannot even be sent (a JSON body that does not parse)."""
        return []

    async def after_save(self, saved: BaseModel) -> bool:
        """More PUTs that go with the resource (a call's schedules); False keeps the editor open."""
        return True

    # --- layout ---------------------------------------------------------------------------

    @property
    def heading(self) -> str:
        if self.resource_name is None:
            return f"New {self.NOUN}"
        return f"Edit {self.NOUN} {self.resource_name}"

    def compose(self) -> ComposeResult:
        yield Static(self.heading, id="editor-title", markup=False)
        yield Static("", id="editor-summary", markup=False)
        with Vertical(id="editor-body"):
            yield from self.compose_form()
        yield Footer(compact=True)

    def compose_name(self) -> ComposeResult:
        """The name field, for a new resource only (a saved one is renamed by making a copy)."""
        if self.resource_name is None:
            yield text_field(
                "Name", "resource-name", path="name", placeholder="letters, digits, _ . : -"
            )

    def compose_notes(self, tags_note: str = "") -> ComposeResult:
        """The description and tags fields most resources have."""
        yield text_field("Description", "description")
        yield text_field("Tags", "tags", note=tags_note)

    def fill_notes(self, model: BaseModel | None) -> None:
        self.set_text("#description", getattr(model, "description", None))
        self.set_text("#tags", ", ".join(getattr(model, "tags", None) or []))

    def notes(self) -> Document:
        """The description and tags as the form says."""
        return {"description": self.text("#description"), "tags": split_words(self.raw("#tags"))}

    def raw(self, selector: str) -> str:
        """An Input's text as typed."""
        return self.query_one(selector, Input).value

    def text(self, selector: str) -> str | None:
        """An Input's text, stripped; None when empty."""
        return self.raw(selector).strip() or None

    def set_text(self, selector: str, value: str | None) -> None:
        self.query_one(selector, Input).value = value or ""

    @property
    def what(self) -> str:
        """The resource in words: "call list-orders", "the new call"."""
        if self.resource_name is None:
            return f"the new {self.NOUN}"
        return f"{self.NOUN} {self.resource_name}"

    @property
    def target_name(self) -> str | None:
        if self.resource_name is not None:
            return self.resource_name
        return self.text("#resource-name")

    def watch_dirty(self, dirty: bool) -> None:
        self.show_title()

    def show_title(self) -> None:
        title = self.query_one("#editor-title", Static)
        title.update(self.heading + ("  ● unsaved changes" if self.dirty else ""))
        title.set_class(self.dirty, "-dirty")

    def set_summary(self, text: str, *, error: bool = False) -> None:
        summary = self.query_one("#editor-summary", Static)
        summary.update(screen_text(text, lines=True))
        summary.set_class(bool(text) and error, "-error")
        summary.set_class(bool(text) and not error, "-info")

    # --- loading --------------------------------------------------------------------------

    def on_mount(self) -> None:
        self.query_one("#editor-body").loading = True
        self.load()

    @work(exclusive=True, group="editor-load", exit_on_error=False)
    async def load(self) -> None:
        body = self.query_one("#editor-body")
        name = self.resource_name
        try:
            model = await self.client.get(self.KIND, name) if name is not None else None
        except (ApiError, DaemonUnavailable) as exc:
            body.loading = False
            reason = exc.message if isinstance(exc, ApiError) else str(exc)
            self.set_summary(f"Could not load {self.NOUN} {name}: {reason}", error=True)
            return
        try:
            await self.load_choices()
        except (ApiError, DaemonUnavailable) as exc:
            self.set_summary(f"Lists of names could not be loaded, so choices are missing: {exc}")
        self.original = model
        await self.fill(model)
        self._baseline = self.snapshot()
        self.loaded = True
        body.loading = False
        self.call_after_refresh(self.focus_first)

    def focus_first(self) -> None:
        for field in self.query(FormField):
            if field.display and focus_within(field.control):
                return

    # --- editing --------------------------------------------------------------------------

    @on(Input.Changed)
    @on(Select.Changed)
    @on(Checkbox.Changed)
    @on(TextArea.Changed)
    @on(SelectionList.SelectedChanged)
    @on(FormEdited)
    def _edited(self, _event: Message) -> None:
        if self.loaded:
            self.dirty = self.snapshot() != self._baseline

    def action_close(self) -> None:
        if self.loaded and self.snapshot() != self._baseline:
            self.app.push_screen(ConfirmDiscard(self.what), self._discard)
        else:
            self.dismiss(None)

    def _discard(self, discard: bool | None) -> None:
        if discard:
            self.dismiss(None)

    # --- saving ---------------------------------------------------------------------------

    def action_save(self) -> None:
        if not self.loaded:
            self.set_summary(f"The {self.NOUN} did not load, so there is nothing to save.")
            return
        self.save()

    @work(exclusive=True, group="editor-save", exit_on_error=False)
    async def save(self) -> None:
        self.clear_errors()
        name = self.target_name
        problems = self.local_problems()
        if name is None:
            problems.insert(0, ("name", f"give the {self.NOUN} a name"))
        if problems or name is None:
            details = [ErrorDetail(message=m, field=f) for f, m in problems]
            self.show_errors(details, "Not saved")
            return
        self.set_summary(f"Saving {self.NOUN} {name}…")
        try:
            saved = await self.client.put(self.KIND, name, self.document())
        except ApiError as exc:
            if exc.errors:
                self.show_errors(exc.errors, f"Not saved: {exc.message}")
            else:  # not about a field (a conflict, a refusal): the message says it all
                self.set_summary(f"Not saved: {exc.message}", error=True)
            return
        except DaemonUnavailable as exc:
            self.set_summary(f"Not saved: {exc}", error=True)
            return
        # Saved: from here on this edits the stored resource (a failed `after_save` keeps the
        # editor open on it).
        self.resource_name = name
        self.original = saved
        self.query("#resource-name").set(disabled=True)
        finished = await self.after_save(saved)
        self._baseline = self.snapshot()
        self.dirty = False
        self.show_title()
        if not finished:
            return
        self.app.notify(screen_text(f"Saved {self.NOUN} {name}"), timeout=3, markup=False)
        if self.app.screen is self:
            self.dismiss(saved)

    def clear_errors(self) -> None:
        for field in self.query(FormField):
            field.clear_error()
        for tabbed in self.query(TabbedContent):
            for pane in tabbed.query(TabPane):
                tab = tabbed.get_tab(pane)
                tab.label = tab.label_text.removesuffix(" !")
        self.set_summary("")

    def error_fields(self) -> dict[str, FormField]:
        return {path: field for field in self.query(FormField) for path in field.paths}

    def show_errors(
        self,
        details: Iterable[ErrorDetail],
        headline: str,
        *,
        kind: str | None = None,
        local: bool = False,
    ) -> None:
        """Every error at its field; a summary line naming where they are, with the ones that
        have no field in this form spelt out."""
        fields = self.error_fields()
        placed: list[FormField] = []
        loose: list[str] = []
        for detail in details:
            shown = place_error(detail, kind or self.KIND, fields)
            placed += [f for f in shown if f not in placed]
            if not shown:
                where = join_path(resource_path(detail.field, kind or self.KIND))
                loose.append(f"{where}: {detail.message}" if where else detail.message)
        lines = [headline]
        if placed:
            lines[0] += " — see " + ", ".join(where_in_form(f) for f in placed)
        lines += loose
        self.set_summary("\n".join(lines), error=True)
        if placed:
            self.reveal(placed[0])

    def reveal(self, field: FormField) -> None:
        """Switch to the field's tab and focus it."""
        pane = next((a for a in field.ancestors if isinstance(a, TabPane)), None)
        if pane is not None and pane.id:
            for tabbed in self.query(TabbedContent):
                if pane in tabbed.query(TabPane):
                    tabbed.active = pane.id
        self.call_after_refresh(focus_within, field.control)
        self.call_after_refresh(field.scroll_visible)

    @on(Worker.StateChanged)
    def _worker_failed(self, event: Worker.StateChanged) -> None:
        """The one place an unexpected error in a load or save ends up."""
        if event.state is WorkerState.ERROR and event.worker.error is not None:
            event.stop()
            error = event.worker.error
            self.set_summary(f"{type(error).__name__}: {error}", error=True)


def focus_within(widget: Widget) -> bool:
    """Focus `widget`, or the first focusable widget inside it."""
    if widget.focusable:
        widget.focus()
        return True
    for child in widget.query("*"):
        if child.focusable:
            child.focus()
            return True
    return False
