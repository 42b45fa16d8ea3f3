"""The workflow editor: ordered steps (calls), stop-on-failure, initial variables."""

from __future__ import annotations

from pydantic import BaseModel
from textual.app import ComposeResult
from textual.widgets import Checkbox

from apimd.model.resources import Workflow
from apimd.tui.editors.base import Document, EditorScreen, dump, without_none
from apimd.tui.editors.fields import (
    KeyValueList,
    check_field,
    pairs_field,
    table_field,
    text_field,
)
from apimd.tui.editors.items import StepTable


class WorkflowEditor(EditorScreen):
    """Steps are added from the list of calls (`a`), moved with shift+↑/↓, removed with `x`."""

    KIND = "workflows"
    NOUN = "workflow"

    def compose_fields(self) -> ComposeResult:
        yield text_field("Description", "description")
        yield table_field(
            "Steps",
            StepTable(id="steps"),
            note="run in order; variables a step extracts reach every later step",
        )
        yield check_field("On failure", "stop at the first failed step", "stop-on-failure")
        yield check_field(
            "Cookies",
            "keep cookies from step to step",
            "cookies",
            note="one cookie jar per run; a step's Set-Cookie reaches later steps",
        )
        yield pairs_field(
            "Variables",
            "variables",
            "NAME",
            "initial value",
            note="initial run variables; a step's extractions overwrite them",
        )
        yield text_field("Tags", "tags", note="comma-separated")

    async def load_choices(self) -> None:
        calls = await self.client.list("calls")
        self.query_one("#steps", StepTable).calls = sorted(
            str(getattr(c, "name", "")) for c in calls
        )

    async def fill(self, model: BaseModel | None) -> None:
        workflow = model if isinstance(model, Workflow) else None
        q = self.query_one
        q("#steps", StepTable).load({"call": step} for step in (workflow.steps if workflow else []))
        q("#stop-on-failure", Checkbox).value = workflow.stop_on_failure if workflow else True
        q("#cookies", Checkbox).value = workflow.cookies if workflow else True
        q("#variables", KeyValueList).load(workflow.variables if workflow else None)
        self.fill_notes(workflow)

    def document(self) -> Document:
        q = self.query_one
        return without_none(
            {
                **dump(self.original),
                "name": self.target_name,
                "steps": q("#steps", StepTable).steps,
                "stop_on_failure": q("#stop-on-failure", Checkbox).value,
                "cookies": q("#cookies", Checkbox).value,
                "variables": q("#variables", KeyValueList).as_dict(),
                **self.notes(),
            }
        )

    def local_problems(self) -> list[tuple[str, str]]:
        if any(not key for key, _ in self.query_one("#variables", KeyValueList).pairs()):
            return [("variables", "a row has a value but no name")]
        return []
