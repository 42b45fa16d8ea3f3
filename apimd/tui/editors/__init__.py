"""Resource editors (SPEC §8, §11): calls, workflows, auth, tokens, variables, schedules, maintenance.
`open_editor` pushes the right one; each saves through the client and is dismissed with the saved
model (or None)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel
from textual.app import App

from apimd.tui.editors.auth import AuthEditor
from apimd.tui.editors.base import EditorScreen
from apimd.tui.editors.call import CallEditor
from apimd.tui.editors.dialogs import ConfirmDiscard, ItemDialog, PickDialog
from apimd.tui.editors.fields import KeyValueList
from apimd.tui.editors.items import ItemTable
from apimd.tui.editors.maintenance import MaintenanceEditor
from apimd.tui.editors.schedule import ScheduleEditor
from apimd.tui.editors.token import TokenEditor
from apimd.tui.editors.variable import VariableEditor
from apimd.tui.editors.workflow import WorkflowEditor
from apimd.tui.ports import DaemonClient

EDITORS: dict[str, type[EditorScreen]] = {
    "calls": CallEditor,
    "workflows": WorkflowEditor,
    "auth": AuthEditor,
    "tokens": TokenEditor,
    "variables": VariableEditor,
    "schedules": ScheduleEditor,
    "maintenance": MaintenanceEditor,
}
_SINGULAR = {
    "call": "calls",
    "workflow": "workflows",
    "token": "tokens",
    "variable": "variables",
    "schedule": "schedules",
}

BINDING_CLASSES: tuple[type, ...] = (
    EditorScreen,
    CallEditor,
    KeyValueList,
    ItemTable,
    ItemDialog,
    PickDialog,
    ConfirmDiscard,
)
"""Every class of this package with bindings (for the app's list of remappable binding ids)."""


def open_editor(
    app: App[Any],
    client: DaemonClient,
    kind: str,
    name: str | None = None,
    *,
    on_saved: Callable[[BaseModel], None] | None = None,
) -> None:
    """Push the editor of `kind` (`calls` or `call`, `auth`, `tokens`…) for `name`, or for a new
    resource when `name` is None; `on_saved` gets the saved model."""
    editor = EDITORS.get(_SINGULAR.get(kind, kind))
    if editor is None:
        raise ValueError(f"no editor for {kind!r}; one of {', '.join(EDITORS)}")

    def closed(saved: BaseModel | None) -> None:
        if saved is not None and on_saved is not None:
            on_saved(saved)

    app.push_screen(editor(client, name), closed)


__all__ = [
    "EDITORS",
    "AuthEditor",
    "CallEditor",
    "EditorScreen",
    "MaintenanceEditor",
    "ScheduleEditor",
    "TokenEditor",
    "VariableEditor",
    "WorkflowEditor",
    "open_editor",
]
