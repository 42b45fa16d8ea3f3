"""The call editor: tabs Request, Auth, Conditions, Webhooks, Meta and Schedule (SPEC §8)."""

from __future__ import annotations

import json
from typing import Any, ClassVar

from pydantic import BaseModel
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import (
    Checkbox,
    Select,
    TabbedContent,
    TabPane,
    TextArea,
)

from apimd.client import ApiError, DaemonUnavailable
from apimd.model.api import ErrorDetail
from apimd.model.resources import Call, Schedule
from apimd.tui.editors.base import Document, EditorScreen, dump, focus_within, without_none
from apimd.tui.editors.call_schedules import CallSchedules
from apimd.tui.editors.fields import (
    Choice,
    Form,
    FormField,
    KeyValueList,
    SecretInput,
    check_field,
    field_of,
    number_or_text,
    number_text,
    pairs_field,
    table_field,
    text_field,
)
from apimd.tui.editors.items import ConditionTable, WebhookTable
from apimd.tui.editors.tls import compose_tls, fill_tls, tls_document
from apimd.tui.ports import DaemonClient
from apimd.tui.widgets.text_input import TextAreaInput

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
BODY_KINDS = (
    ("none", "none"),
    ("text body", "body"),
    ("JSON", "json"),
    ("form fields", "form"),
    ("multipart", "multipart"),
)


def multipart_rows(parts: dict[str, Any] | None) -> dict[str, str] | None:
    """Multipart parts as rows: a file part as `@PATH` (as curl's -F writes it)."""
    if parts is None:
        return None
    return {
        name: part if isinstance(part, str) else "@" + str(getattr(part, "file", ""))
        for name, part in parts.items()
    }


def multipart_parts(rows: dict[str, str], original: dict[str, Any] | None) -> dict[str, Any]:
    """Rows back into parts; a file row keeps the content type it had."""
    parts: dict[str, Any] = {}
    for name, value in rows.items():
        if not value.startswith("@"):
            parts[name] = value
            continue
        before = (original or {}).get(name)
        parts[name] = without_none(
            {**(dump(before) if isinstance(before, BaseModel) else {}), "file": value[1:]}
        )
    return parts


TABS = ("Request", "Auth", "Conditions", "Webhooks", "Meta", "Schedule")


def body_kind(call: Call) -> str:
    if call.json_body is not None:
        return "json"
    if call.form is not None:
        return "form"
    if call.multipart is not None:
        return "multipart"
    return "body" if call.body is not None else "none"


class CallEditor(EditorScreen):
    """Edit (or create) a call; on the Schedule tab, choose the schedules that run it."""

    KIND = "calls"
    NOUN = "call"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("alt+right,ctrl+pagedown", "switch_tab(1)", "Next tab", id="editor.next_tab"),
        Binding(
            "alt+left,ctrl+pageup",
            "switch_tab(-1)",
            "Previous tab",
            show=False,
            id="editor.previous_tab",
        ),
    ]

    def __init__(self, client: DaemonClient, name: str | None = None) -> None:
        super().__init__(client, name)
        self.schedules: list[Schedule] = []
        self.names: dict[str, list[str]] = {}

    # --- layout ---------------------------------------------------------------------------

    def compose_form(self) -> ComposeResult:
        with TabbedContent(id="call-tabs"):
            with TabPane("Request", id="request"), Form():
                yield from self.compose_name()
                yield FormField("Method", Choice(METHODS, id="method"), path="method")
                yield text_field("URL", "url", placeholder="https://api.example.com/…")
                yield pairs_field("Headers", "headers", "Header-Name")
                yield pairs_field("Query params", "params", "param")
                yield FormField("Body", Choice(BODY_KINDS, id="body-kind"), path="body_kind")
                yield FormField(
                    "",
                    TextAreaInput(
                        id="body-text", soft_wrap=True, compact=True, tab_behavior="focus"
                    ),
                    path="body",
                    aliases=("json",),
                )
                yield pairs_field("Form fields", "form", "field")
                yield pairs_field(
                    "Parts",
                    "multipart",
                    value="text, or @/path/to/file",
                    note="a value starting with @ sends that file",
                )
            with TabPane("Auth", id="auth-tab"), Form():
                yield FormField(
                    "Auth",
                    Choice(blank="— none", id="auth"),
                    path="auth",
                    note="none: the token's auth, if the call has a token",
                )
                yield FormField("Token", Choice(blank="— none", id="token"), path="token")
                yield text_field("Timeout (s)", "timeout", note="seconds, at most 300 (default 30)")
                yield check_field("Redirects", "follow (up to 10)", "follow-redirects")
                yield check_field("TLS", "verify certificates", "verify-tls")
                yield check_field(
                    "Keep-alive",
                    "reuse connections",
                    "keepalive",
                    note="off: a fresh connection per run, as a new client sees it",
                )
                yield from compose_tls("c")
                yield FormField(
                    "Proxy",
                    SecretInput(id="proxy"),
                    path="proxy",
                    note="http://, https://, socks5:// URL, or none; empty: the auth's or the environment's",
                )
            with TabPane("Conditions", id="conditions-tab"), Form():
                yield table_field(
                    "Conditions",
                    ConditionTable(id="conditions"),
                    note="checked in order; a value saved as NAME is %%NAME%% in later ones",
                )
                for key, label in (
                    ("slow", "SLA slow"),
                    ("warn", "SLA warning"),
                    ("fail", "SLA fail"),
                ):
                    yield text_field(
                        f"{label} ms", f"sla-{key}", path=f"sla.{key}_ms", placeholder="—"
                    )
            with TabPane("Webhooks", id="webhooks-tab"), Form():
                yield table_field(
                    "Webhooks",
                    WebhookTable(id="webhooks"),
                    note="what happens after a run whose outcome is in `alerts`",
                )
            with TabPane("Meta", id="meta"), Form():
                yield from self.compose_notes(
                    tags_note="comma-separated; e.g. apimd:mutex, apimd:timeout:N"
                )
            with TabPane("Schedule", id="schedule"), Form():
                yield CallSchedules(id="call-schedules")

    def action_switch_tab(self, step: int) -> None:
        tabbed = self.query_one(TabbedContent)
        panes = [pane.id for pane in tabbed.query(TabPane) if pane.id]
        index = panes.index(tabbed.active) if tabbed.active in panes else 0
        tabbed.active = panes[(index + step) % len(panes)]
        self.call_after_refresh(self._focus_in_tab)

    def _focus_in_tab(self) -> None:
        pane = self.query_one(TabbedContent).active_pane
        for field in pane.query(FormField) if pane else ():
            if field.display and focus_within(field.control):
                return

    # --- loading --------------------------------------------------------------------------

    async def load_choices(self) -> None:
        for kind in ("auth", "tokens", "calls", "workflows"):
            self.names[kind] = sorted(
                str(getattr(m, "name", "")) for m in await self.client.list(kind)
            )
        self.schedules = [s for s in await self.client.list("schedules") if isinstance(s, Schedule)]

    async def fill(self, model: BaseModel | None) -> None:
        call = model if isinstance(model, Call) else Call(name="new", url="")
        q = self.query_one
        q("#method", Choice).choose(call.method)
        self.set_text("#url", call.url)
        q("#headers", KeyValueList).load(call.headers)
        q("#params", KeyValueList).load(call.params)
        kind = body_kind(call)
        q("#body-kind", Choice).choose(kind)
        text = call.body or ""
        if kind == "json":
            text = json.dumps(call.json_body, indent=2, ensure_ascii=False)
        q("#body-text", TextArea).load_text(text)
        q("#form", KeyValueList).load(call.form)
        q("#multipart", KeyValueList).load(multipart_rows(call.multipart))
        q("#proxy", SecretInput).load(call.proxy)
        self._show_body(kind)
        auth = q("#auth", Choice)
        auth.set_choices(self.names.get("auth", []))
        auth.choose(call.auth)
        token = q("#token", Choice)
        token.set_choices(self.names.get("tokens", []))
        token.choose(call.token)
        self.set_text("#timeout", number_text(call.timeout))
        q("#follow-redirects", Checkbox).value = call.follow_redirects
        q("#verify-tls", Checkbox).value = call.verify_tls
        q("#keepalive", Checkbox).value = call.keepalive
        fill_tls(self, "c", call.tls)
        q("#conditions", ConditionTable).load(dump(c) for c in call.conditions)
        sla = call.sla
        for key in ("slow", "warn", "fail"):
            value = getattr(sla, f"{key}_ms") if sla else None
            self.set_text(f"#sla-{key}", number_text(value))
        webhooks = q("#webhooks", WebhookTable)
        webhooks.choices = self.names
        webhooks.load(dump(w) for w in call.webhooks)
        self.fill_notes(call)
        q("#call-schedules", CallSchedules).load(self.schedules, self.resource_name)

    # --- the form, both ways --------------------------------------------------------------

    @on(Select.Changed, "#body-kind")
    def _body_kind_changed(self, event: Select.Changed) -> None:
        self._show_body(str(event.value))

    def _show_body(self, kind: str) -> None:
        field_of(self, "#body-text").display = kind in ("body", "json")
        field_of(self, "#form").display = kind == "form"
        field_of(self, "#multipart").display = kind == "multipart"

    def _body(self) -> dict[str, Any]:
        kind = self.query_one("#body-kind", Choice).chosen or "none"
        text = self.query_one("#body-text", TextArea).text
        out: dict[str, Any] = {"body": None, "json": None, "form": None, "multipart": None}
        if kind == "body":
            out["body"] = text
        elif kind == "json" and text.strip():
            try:
                out["json"] = json.loads(text)
            except ValueError:
                out["json"] = text  # `local_problems` stops the save; "unsaved" still works
        elif kind == "form":
            out["form"] = self.query_one("#form", KeyValueList).as_dict()
        elif kind == "multipart":
            original = self.original.multipart if isinstance(self.original, Call) else None
            rows = self.query_one("#multipart", KeyValueList).as_dict()
            out["multipart"] = multipart_parts(rows, original)
        return out

    def document(self) -> Document:
        q = self.query_one
        sla = without_none(
            {
                f"{key}_ms": number_or_text(self.raw(f"#sla-{key}"))
                for key in ("slow", "warn", "fail")
            }
        )
        doc: Document = {
            **dump(self.original),
            "name": self.target_name,
            "method": q("#method", Choice).chosen,
            "url": self.raw("#url").strip(),
            "headers": q("#headers", KeyValueList).as_dict(),
            "params": q("#params", KeyValueList).as_dict(),
            **self._body(),
            "auth": q("#auth", Choice).chosen,
            "token": q("#token", Choice).chosen,
            "timeout": number_or_text(self.raw("#timeout")),
            "follow_redirects": q("#follow-redirects", Checkbox).value,
            "verify_tls": q("#verify-tls", Checkbox).value,
            "keepalive": q("#keepalive", Checkbox).value,
            "tls": tls_document(self, "c", dump(self.original).get("tls")),
            "proxy": q("#proxy", SecretInput).secret,
            "sla": sla or None,
            "conditions": q("#conditions", ConditionTable).items,
            "webhooks": q("#webhooks", WebhookTable).items,
            **self.notes(),
        }
        return without_none(doc)

    def snapshot(self) -> Any:
        return (self.document(), self.query_one("#call-schedules", CallSchedules).state)

    def local_problems(self) -> list[tuple[str, str]]:
        problems = []
        if self.query_one("#body-kind", Choice).chosen == "json":
            text = self.query_one("#body-text", TextArea).text
            if text.strip():
                try:
                    json.loads(text)
                except json.JSONDecodeError as exc:
                    problems.append(
                        (
                            "json",
                            f"not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})",
                        )
                    )
        for field in ("headers", "params", "form", "multipart"):
            if any(not key for key, _ in self.query_one(f"#{field}", KeyValueList).pairs()):
                problems.append((field, "a row has a value but no name"))
        return problems

    # --- schedules ------------------------------------------------------------------------

    async def after_save(self, saved: BaseModel) -> bool:
        """PUT each schedule whose targets gain or lose this call, and the new `every` schedule."""
        call = self.target_name or ""
        tab = self.query_one("#call-schedules", CallSchedules)
        failed = False
        for name, body, is_new in tab.changes(call):
            try:
                stored = await self.client.put("schedules", name, body)
            except (ApiError, DaemonUnavailable) as exc:
                failed = True
                message = exc.message if isinstance(exc, ApiError) else str(exc)
                details = exc.errors if isinstance(exc, ApiError) else []
                field = tab.failed(name, details or [ErrorDetail(message=message)], is_new=is_new)
                self.set_summary(
                    f"Saved call {call}, but not schedule {name}: {message} — see Schedule",
                    error=True,
                )
                self.reveal(field)
                self.query_one(TabbedContent).get_tab("schedule").label = "Schedule !"
                continue
            if isinstance(stored, Schedule):
                tab.saved(stored, is_new=is_new)
        tab.load(list(tab.schedules.values()), call)
        return not failed
