"""The token editor: auth, the headers and params calls get; state and expiry read-only. Saved
variables are left alone unless "set variables" is ticked (then the list replaces them)."""

from __future__ import annotations

from pydantic import BaseModel
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.widgets import Checkbox, Static

from apimd.model.resources import Token
from apimd.model.token_status import NEVER_SIGNED_IN, never_signed_in
from apimd.tui.editors.base import Document, EditorScreen, dump, without_none
from apimd.tui.editors.fields import Choice, FormField, KeyValueList, check_field, pairs_field
from apimd.tui.formatting import screen_text


def token_status(token: Token | None) -> Text:
    """State, expiry, last refresh and last error, as the daemon reported them."""
    if token is None or token.state is None:
        return Text("not used yet: the first call that needs it refreshes it", style="dim")
    text = Text(token.state.value, style="bold")
    if token.expires_at is not None:
        text.append(f" · expires {token.expires_at:%Y-%m-%d %H:%M:%S} UTC")
    if never_signed_in(token):
        text.append(f" · {NEVER_SIGNED_IN}", style="dim")
    elif token.last_refresh is not None:
        text.append(f" · refreshed {token.last_refresh:%Y-%m-%d %H:%M:%S} UTC", style="dim")
    if token.last_error:
        text.append(f"\nlast error: {screen_text(token.last_error)}", style="red")
    return text


class TokenEditor(EditorScreen):
    """Edit (or create) an auth token."""

    KIND = "tokens"
    NOUN = "token"

    def compose_fields(self) -> ComposeResult:
        yield FormField("Auth", Choice(blank="— choose an auth setting", id="auth"), path="auth")
        yield pairs_field(
            "Headers",
            "headers",
            "Header-Name",
            "value, e.g. Bearer %%ACCESS_TOKEN%%",
            note="sent by every call using it (oauth2 default: Bearer)",
        )
        yield pairs_field("Params", "params")
        yield FormField("State", Static(id="state", markup=False), path="state")
        yield from self.compose_notes(tags_note="comma-separated")
        yield check_field(
            "Variables",
            "set saved variables on save",
            "set-variables",
            note="off: what sign-ins and refreshes saved stays as it is",
        )
        yield FormField(
            "",
            KeyValueList(
                placeholders=("ACCESS_TOKEN", "value"), secret_values=True, id="variables"
            ),
            path="variables",
            note="replaces them all; •••• keeps one; EXPIRES_IN sets expiry",
            id="variables-field",
        )

    async def load_choices(self) -> None:
        names = sorted(str(getattr(m, "name", "")) for m in await self.client.list("auth"))
        self.query_one("#auth", Choice).set_choices(names)

    async def fill(self, model: BaseModel | None) -> None:
        token = model if isinstance(model, Token) else None
        q = self.query_one
        if token is not None:
            q("#auth", Choice).choose(token.auth)
        q("#headers", KeyValueList).load(token.headers if token else None)
        q("#params", KeyValueList).load(token.params if token else None)
        q("#state", Static).update(token_status(token))
        self.fill_notes(token)
        q("#variables", KeyValueList).load(token.variables if token else None)
        q("#variables-field").display = False

    @on(Checkbox.Changed, "#set-variables")
    def _set_variables(self, event: Checkbox.Changed) -> None:
        self.query_one("#variables-field").display = event.value

    def document(self) -> Document:
        q = self.query_one
        original = dump(self.original)
        for field in (*Token.READ_ONLY_FIELDS, "variables"):
            original.pop(field, None)
        doc: Document = {
            **original,
            "name": self.target_name,
            "auth": q("#auth", Choice).chosen,
            "headers": q("#headers", KeyValueList).as_dict(),
            "params": q("#params", KeyValueList).as_dict(),
            **self.notes(),
        }
        if q("#set-variables", Checkbox).value:
            doc["variables"] = q("#variables", KeyValueList).as_dict()
        return without_none(doc)

    def local_problems(self) -> list[tuple[str, str]]:
        problems = []
        for field in ("headers", "params", "variables"):
            if any(not key for key, _ in self.query_one(f"#{field}", KeyValueList).pairs()):
                problems.append((field, "a row has a value but no name"))
        return problems
