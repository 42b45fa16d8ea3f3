"""The kinds of resource (SPEC §2, §6): one name for each, as the REST path, the project file,
messages and the TUI spell it."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel

from apimd.model.maintenance import MaintenanceWindow
from apimd.model.resources import AuthSetting, Call, Schedule, Token, Variable, Workflow


class ResourceKind(StrEnum):
    """A kind of resource; its value is the REST path segment and the project file's key."""

    VARIABLES = "variables"
    AUTH = "auth"
    TOKENS = "tokens"
    CALLS = "calls"
    WORKFLOWS = "workflows"
    SCHEDULES = "schedules"
    MAINTENANCE = "maintenance"

    @classmethod
    def named(cls, value: object) -> ResourceKind | None:
        """The kind spelled `value`, or None for anything else (a typo, a number)."""
        return next((kind for kind in cls if kind.value == value), None)

    @property
    def singular(self) -> str:
        """One of them in prose: `no auth setting named 'x'`, `New maintenance window`."""
        return _SINGULAR[self]

    @property
    def label(self) -> str:
        """The short tag before a name in a validation issue: `auth 'a'`, `call 'c'`."""
        return "auth" if self is ResourceKind.AUTH else self.singular

    @property
    def model(self) -> type[BaseModel]:
        """The model of one resource of this kind, as the REST API serves it."""
        return _MODELS[self]

    def describe(self, name: str) -> str:
        """`call 'list-orders'`: the resource an issue is about."""
        return f"{self.label} {name!r}"


_SINGULAR = {
    ResourceKind.VARIABLES: "variable",
    ResourceKind.AUTH: "auth setting",
    ResourceKind.TOKENS: "token",
    ResourceKind.CALLS: "call",
    ResourceKind.WORKFLOWS: "workflow",
    ResourceKind.SCHEDULES: "schedule",
    ResourceKind.MAINTENANCE: "maintenance window",
}
_MODELS: dict[ResourceKind, type[BaseModel]] = {
    ResourceKind.VARIABLES: Variable,
    ResourceKind.AUTH: AuthSetting,
    ResourceKind.TOKENS: Token,
    ResourceKind.CALLS: Call,
    ResourceKind.WORKFLOWS: Workflow,
    ResourceKind.SCHEDULES: Schedule,
    ResourceKind.MAINTENANCE: MaintenanceWindow,
}
