"""The variable editor: name, value, secret. A secret's value reads `••••` and is kept unless
retyped."""

from __future__ import annotations

from pydantic import BaseModel
from textual import on
from textual.app import ComposeResult
from textual.widgets import Checkbox

from apimd.model.resources import Variable
from apimd.tui.editors.base import Document, EditorScreen
from apimd.tui.editors.fields import FormField, SecretInput, check_field


class VariableEditor(EditorScreen):
    """Edit (or create) an environment variable."""

    KIND = "variables"
    NOUN = "variable"

    def compose_fields(self) -> ComposeResult:
        yield FormField(
            "Value",
            SecretInput(id="value"),
            path="value",
            note="may use other variables: %%OTHER%%",
        )
        yield check_field("Secret", "encrypted at rest, masked everywhere", "secret")

    async def fill(self, model: BaseModel | None) -> None:
        variable = model if isinstance(model, Variable) else None
        value = self.query_one("#value", SecretInput)
        value.load(variable.value if variable else None)
        secret = variable.secret if variable else False
        value.password = secret
        self.query_one("#secret", Checkbox).value = secret

    @on(Checkbox.Changed, "#secret")
    def _secret_changed(self, event: Checkbox.Changed) -> None:
        self.query_one("#value", SecretInput).password = event.value

    def document(self) -> Document:
        value = self.query_one("#value", SecretInput)
        return {
            "name": self.target_name,
            "value": value.secret or "",
            "secret": self.query_one("#secret", Checkbox).value,
        }
