"""Pydantic models of every resource, the project document and results, shared by every layer."""

from apimd.model.common import SECRET_MASK, Name, VariableName, secret_field_names
from apimd.model.errors import Issue, ValidationFailed
from apimd.model.kinds import ResourceKind
from apimd.model.outcome import Outcome, ResultCode
from apimd.model.project import KINDS, Project, check_project
from apimd.model.resources import (
    SLA,
    AuthSetting,
    Call,
    CallbackTarget,
    Condition,
    Schedule,
    Token,
    TokenState,
    Variable,
    VariableSpec,
    Webhook,
    Workflow,
)
from apimd.model.result import ConditionResult, RequestRecord, ResponseRecord, Result, Timings

__all__ = [
    "KINDS",
    "SECRET_MASK",
    "SLA",
    "AuthSetting",
    "Call",
    "CallbackTarget",
    "Condition",
    "ConditionResult",
    "Issue",
    "Name",
    "Outcome",
    "Project",
    "RequestRecord",
    "ResourceKind",
    "ResponseRecord",
    "Result",
    "ResultCode",
    "Schedule",
    "Timings",
    "Token",
    "TokenState",
    "ValidationFailed",
    "Variable",
    "VariableName",
    "VariableSpec",
    "Webhook",
    "Workflow",
    "check_project",
    "secret_field_names",
]
