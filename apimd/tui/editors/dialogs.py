"""Small dialogs on top of an editor: discard-changes confirmation, one condition, one webhook,
and picking a name from a list. Item dialogs check what they return with the shared model, so
mistakes show at the field at once (the daemon checks again on save)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, ClassVar, cast, get_args

from pydantic import BaseModel, ValidationError
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Checkbox, Footer, Input, OptionList, Select, SelectionList, Static

from apimd.model.errors import Issue
from apimd.model.outcome import Outcome
from apimd.model.resources import (
    NOTIFY_WEBHOOK_TYPES,
    TOKEN_ALERTS,
    VALUELESS_OPS,
    Condition,
    ConditionOp,
    ConditionSource,
    Webhook,
    WebhookType,
)
from apimd.model.validation import validation_issues
from apimd.tui.editors.fields import (
    Choice,
    Form,
    FormField,
    SecretInput,
    check_field,
    field_of,
    literal_text,
    number_or_text,
    parse_literal,
    split_words,
    text_field,
)
from apimd.tui.editors.paths import named_fields
from apimd.tui.formatting import screen_text

CSS = Path(__file__).with_name("editors.tcss")
Item = dict[str, Any]


class ConfirmDiscard(ModalScreen[bool]):
    """ "Unsaved changes — discard? (y/n)"."""

    CSS_PATH = CSS
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "answer(True)", "Discard", id="editor.discard"),
        Binding("n,escape", "answer(False)", "Keep editing", id="editor.keep_editing"),
    ]

    def __init__(self, what: str) -> None:
        super().__init__(classes="confirm")
        self.what = what

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm-box"):
            yield Static(f"Unsaved changes to {self.what} — discard? (y/n)", markup=False)

    def action_answer(self, discard: bool) -> None:
        self.dismiss(discard)


class ItemDialog(ModalScreen[Item | None]):
    """A form for one item of a list; ctrl+s (or enter in a field) applies, esc cancels."""

    CSS_PATH = CSS
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "apply", "Apply", id="editor.dialog_apply"),
        Binding("escape", "cancel", "Cancel", id="editor.dialog_cancel"),
    ]
    MODEL: ClassVar[type[BaseModel]]
    TITLE_NEW: ClassVar[str] = "New item"
    TITLE_EDIT: ClassVar[str] = "Edit item"

    def __init__(self, item: Item | None) -> None:
        super().__init__(classes="dialog")
        self.item = dict(item or {})
        self.is_new = item is None

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog-box"):
            title = self.TITLE_NEW if self.is_new else self.TITLE_EDIT
            yield Static(title, id="dialog-title", markup=False)
            with Form(id="dialog-form"):
                yield from self.compose_fields()
            yield Static("", id="dialog-summary", markup=False)
        yield Footer(compact=True)

    def compose_fields(self) -> ComposeResult:
        yield from ()

    def collect(self) -> Item:
        """The item as the form says (fields the form does not show kept as they were)."""
        raise NotImplementedError

    def action_cancel(self) -> None:
        self.dismiss(None)

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_apply()

    def action_apply(self) -> None:
        for field in self.query(FormField):
            field.clear_error()
        item = {k: v for k, v in self.collect().items() if v is not None}
        try:
            model = self.MODEL.model_validate(item)
        except ValidationError as exc:
            self._show_issues(validation_issues(exc, self.MODEL))
            return
        self.dismiss(model.model_dump(mode="json", by_alias=True, exclude_defaults=True))

    def _show_issues(self, issues: Iterable[Issue]) -> None:
        fields = {path: f for f in self.query(FormField) for path in f.paths if f.display}
        loose = []
        for issue in issues:
            loc = [p for p in issue.loc if isinstance(p, str)]
            names = loc[:1] or [n for n in named_fields(issue.message) if n in fields]
            targets = [fields[n] for n in names if n in fields]
            for field in targets:
                field.show_error(issue.message)
            if not targets:
                loose.append(issue.message)
        self.query_one("#dialog-summary", Static).update(screen_text("\n".join(loose), lines=True))


PATH_HINTS = {
    "status": "no path: the HTTP status",
    "header": "path: the header name",
    "body": "path: optional regex; group 1 (or the match) is the value",
    "json": "path: a JSONPath like $.orders[0].id",
    "xml": "path: an XPath 1.0 expression",
    "response_time": "no path: the total time in ms",
    "size": "no path: the body size in bytes",
    "cookie": "path: the name of a cookie this response sets",
}


class ConditionDialog(ItemDialog):
    """One condition: source, path, op, value, save_as, on_fail."""

    MODEL = Condition
    TITLE_NEW = "New condition"
    TITLE_EDIT = "Edit condition"

    def compose_fields(self) -> ComposeResult:
        item = self.item
        source = Choice(get_args(ConditionSource), id="cond-source")
        source.choose(item.get("source", "status"))
        op = Choice(get_args(ConditionOp), blank="— none: only extract (save as)", id="cond-op")
        op.choose("eq" if self.is_new else item.get("op"))
        on_fail = Choice(("fail", "warning"), id="cond-on-fail")
        on_fail.choose(item.get("on_fail", "fail"))
        yield FormField("Source", source, path="source")
        yield text_field(
            "Path",
            "cond-path",
            path="path",
            value=item.get("path") or "",
            note=PATH_HINTS[source.chosen or "status"],
        )
        yield FormField("Op", op, path="op")
        yield text_field(
            "Value",
            "cond-value",
            path="value",
            value=literal_text(item.get("value")),
            note="numbers, true, false and null compare as JSON",
        )
        yield text_field(
            "Save as",
            "cond-save-as",
            path="save_as",
            value=item.get("save_as") or "",
            note="a variable name such as ACCESS_TOKEN (optional)",
        )
        yield FormField("On fail", on_fail, path="on_fail")

    def on_mount(self) -> None:
        self.query_one("#cond-source").focus()

    @on(Select.Changed, "#cond-source")
    def _source_hint(self, event: Select.Changed) -> None:
        hint = PATH_HINTS.get(str(event.value), "")
        field_of(self, "#cond-path").query_one(".field-note", Static).update(hint)

    @on(Select.Changed, "#cond-op")
    def _value_needed(self, event: Select.Changed) -> None:
        needs = event.value not in (*VALUELESS_OPS, Select.NULL)
        field_of(self, "#cond-value").set_class(not needs, "-muted")

    def collect(self) -> Item:
        def text(selector: str) -> str:
            return self.query_one(selector, Input).value.strip()

        op = self.query_one("#cond-op", Choice).chosen
        return {
            **self.item,
            "source": self.query_one("#cond-source", Choice).chosen,
            "path": text("#cond-path") or None,
            "op": op,
            "value": None if op in VALUELESS_OPS else parse_literal(text("#cond-value")),
            "save_as": text("#cond-save-as") or None,
            "on_fail": self.query_one("#cond-on-fail", Choice).chosen,
        }


# What each webhook type refers to (and so shows); the other reference fields are dropped.
WEBHOOK_FIELDS: dict[str, tuple[str, ...]] = {
    "save_auth_token": ("token",),
    "save_variables": ("names",),
    "run_call": ("call",),
    "run_workflow": ("workflow",),
    "http": ("url", "method", "headers"),
    "slack": ("url",),
    "apprise": ("url",),
}
REFERENCE_FIELDS = ("token", "names", "call", "workflow", "url", "method", "headers")
RUN_ALERTS = tuple(o.value for o in Outcome)


class WebhookDialog(ItemDialog):
    """One webhook: type, what it refers to, alerts, fails_in_a_row, resolved, repeat_every."""

    MODEL = Webhook
    TITLE_NEW = "New webhook"
    TITLE_EDIT = "Edit webhook"

    def __init__(
        self, item: Item | None, *, choices: Mapping[str, list[str]], for_auth: bool = False
    ) -> None:
        super().__init__(item)
        self.choices = choices
        self.for_auth = for_auth

    def compose_fields(self) -> ComposeResult:
        item = self.item
        types = ("slack", "http", "apprise") if self.for_auth else get_args(WebhookType)
        kind = Choice(types, id="hook-type")
        kind.choose(item.get("type", "slack"))
        url = SecretInput(id="hook-url")
        url.load(item.get("url"))
        refs = {}
        for ref in ("token", "call", "workflow"):
            refs[ref] = Choice(self.choices.get(f"{ref}s", []), blank="—", id=f"hook-{ref}")
            refs[ref].choose(item.get(ref))
        alerts = TOKEN_ALERTS if self.for_auth else RUN_ALERTS
        hook = self.item.get("alerts") or []
        yield FormField("Type", kind, path="type")
        yield FormField("URL", url, path="url", note="a secret: stored encrypted, shown as ••••")
        yield FormField("Token", refs["token"], path="token")
        yield FormField("Call", refs["call"], path="call")
        yield FormField("Workflow", refs["workflow"], path="workflow")
        yield text_field(
            "Variables",
            "hook-names",
            path="names",
            value=", ".join(item.get("names") or []),
            note="names to save; empty saves every extracted variable",
        )
        yield FormField(
            "Alerts",
            SelectionList[str](
                *((a, a, a in hook) for a in alerts), compact=True, id="hook-alerts"
            ),
            path="alerts",
            note="none ticked: the type's default",
        )
        yield text_field(
            "Fails in a row",
            "hook-fails",
            path="fails_in_a_row",
            value=str(item.get("fails_in_a_row", 1)),
        )
        yield check_field(
            "Resolved",
            "also notify when it passes again",
            "hook-resolved",
            path="resolved",
            value=bool(item.get("resolved")),
        )
        yield text_field(
            "Repeat every",
            "hook-repeat",
            path="repeat_every",
            value=item.get("repeat_every") or "",
            note="e.g. 1h: send again while the alert lasts; empty: once",
        )

    def on_mount(self) -> None:
        self._show_type_fields(self.query_one("#hook-type", Choice).chosen or "slack")
        self.query_one("#hook-type").focus()

    @on(Select.Changed, "#hook-type")
    def _type_changed(self, event: Select.Changed) -> None:
        self._show_type_fields(str(event.value))

    def _show_type_fields(self, kind: str) -> None:
        shown = WEBHOOK_FIELDS.get(kind, ())
        for ref in ("url", "token", "call", "workflow", "names"):
            field_of(self, f"#hook-{ref}").display = ref in shown
        notify_only = kind in NOTIFY_WEBHOOK_TYPES
        field_of(self, "#hook-resolved").display = notify_only
        field_of(self, "#hook-repeat").display = notify_only
        # The model knows each type's default; an auth's webhooks fire on token states.
        default = (
            TOKEN_ALERTS
            if self.for_auth
            else Webhook.model_construct(type=cast(WebhookType, kind)).effective_alerts()
        )
        note = f"none ticked: {', '.join(default)} (the default)"
        field_of(self, "#hook-alerts").query_one(".field-note", Static).update(note)

    def collect(self) -> Item:
        kind = self.query_one("#hook-type", Choice).chosen or "slack"
        shown = WEBHOOK_FIELDS.get(kind, ())
        values: Item = {
            "url": self.query_one("#hook-url", SecretInput).secret,
            "token": self.query_one("#hook-token", Choice).chosen,
            "call": self.query_one("#hook-call", Choice).chosen,
            "workflow": self.query_one("#hook-workflow", Choice).chosen,
            "names": split_words(self.query_one("#hook-names", Input).value) or None,
        }
        item = {k: v for k, v in self.item.items() if k not in REFERENCE_FIELDS or k in shown}
        item.update({k: v for k, v in values.items() if k in shown})
        alerts: list[str] = self.query_one("#hook-alerts", SelectionList).selected
        item.update(
            type=kind,
            alerts=alerts or None,
            fails_in_a_row=number_or_text(self.query_one("#hook-fails", Input).value) or 1,
            resolved=self.query_one("#hook-resolved", Checkbox).value,
        )
        repeat = self.query_one("#hook-repeat", Input).value.strip()
        item.pop("repeat_every", None)
        if repeat and kind in NOTIFY_WEBHOOK_TYPES:
            item["repeat_every"] = repeat
        return item


class PickDialog(ModalScreen[Item | None]):
    """Pick one name from a list (enter), or cancel (esc); returns `{key: name}`."""

    CSS_PATH = CSS
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", id="editor.dialog_cancel"),
    ]

    def __init__(
        self,
        title: str,
        names: Iterable[str],
        *,
        current: str | None = None,
        key: str = "call",
        empty: str = "Nothing to pick.",
    ) -> None:
        super().__init__(classes="dialog")
        self.title_text = title
        self.names = list(names)
        self.current = current
        self.key = key
        self.empty = empty

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog-box"):
            yield Static(
                f"{self.title_text}: enter picks, esc cancels", id="dialog-title", markup=False
            )
            if self.names:
                yield OptionList(*self.names, id="pick-list", compact=True)
            else:
                yield Static(self.empty, id="dialog-summary", markup=False)
        yield Footer(compact=True)

    def on_mount(self) -> None:
        if self.names:
            options = self.query_one(OptionList)
            if self.current in self.names:
                options.highlighted = self.names.index(self.current)
            options.focus()

    @on(OptionList.OptionSelected)
    def _picked(self, event: OptionList.OptionSelected) -> None:
        self.dismiss({self.key: self.names[event.option_index]})

    def action_cancel(self) -> None:
        self.dismiss(None)
