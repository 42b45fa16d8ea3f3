"""Webhooks (SPEC §2): what happens after a run, or a token state change, whose outcome is in
`alerts`: state webhooks save tokens and variables or run targets; notifiers send alerts."""

from __future__ import annotations

from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from apimd.model.common import Name, Secret, StrictModel, VariableName, parse_duration
from apimd.model.fields import TemplateStr
from apimd.model.outcome import Outcome

StringMap = dict[str, TemplateStr]

WebhookType = Literal[
    "save_auth_token", "save_variables", "run_call", "run_workflow", "http", "slack", "apprise"
]
STATE_WEBHOOK_TYPES = ("save_auth_token", "save_variables", "run_call", "run_workflow")
NOTIFY_WEBHOOK_TYPES = ("http", "slack", "apprise")
TOKEN_ALERTS = ("NEEDS_SIGN_IN", "ERROR")
"""What auth webhooks fire on: token state changes, not run outcomes."""


def _has_user_info(url: str) -> bool:
    """Whether an http(s) URL names a user or password before its host."""
    try:
        parts = urlsplit(url.strip())
    except ValueError:  # sending it says why
        return False
    return "@" in parts.netloc


class Webhook(StrictModel):
    """What happens after a run (or a token state change) whose outcome is in `alerts`."""

    type: WebhookType
    token: Name | None = None
    names: list[VariableName] | None = None
    call: Name | None = None
    workflow: Name | None = None
    url: Secret | None = None
    method: str = "POST"
    headers: StringMap = Field(default_factory=dict)
    alerts: list[str] | None = None
    fails_in_a_row: int = Field(default=1, ge=1, le=1000)
    resolved: bool = False
    repeat_every: str | None = None

    @field_validator("repeat_every", mode="before")
    @classmethod
    def _repeat_every(cls, value: Any) -> Any:
        if value is None:
            return None
        if parse_duration(value) < 1:
            raise ValueError("`repeat_every` must be at least 1s")
        return str(value)

    @property
    def repeat_seconds(self) -> float | None:
        """`repeat_every` in seconds, or None when the alert is sent once."""
        return parse_duration(self.repeat_every) if self.repeat_every else None

    @model_validator(mode="after")
    def _required_fields(self) -> Webhook:
        needs = {
            "save_auth_token": "token",
            "run_call": "call",
            "run_workflow": "workflow",
            "http": "url",
            "slack": "url",
            "apprise": "url",
        }.get(self.type)
        if self.repeat_every is not None and self.type not in NOTIFY_WEBHOOK_TYPES:
            raise ValueError(
                f"`repeat_every` is for notifiers (http, slack, apprise), not {self.type}"
            )
        if needs and getattr(self, needs) is None:
            raise ValueError(f"a {self.type} webhook needs `{needs}`")
        if self.type in ("http", "slack") and self.url is not None and _has_user_info(self.url):
            # Not echoed: the URL holds a password. Refused here, not at each delivery.
            raise ValueError(
                f"a {self.type} webhook's url cannot carry credentials (user:password@): send"
                " them in `headers` (an Authorization header)"
            )
        return self

    @field_validator("alerts")
    @classmethod
    def _known_alerts(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        allowed = {o.value for o in Outcome} | {"NEEDS_SIGN_IN", "ERROR"}
        bad = [a for a in value if a.upper() not in allowed]
        if bad:
            raise ValueError(
                f"unknown alert {bad[0]!r}; use outcomes like PASS, SLOW, WARNING, FAIL"
            )
        return [a.upper() for a in value]

    def effective_alerts(self) -> list[str]:
        """`alerts`, or the default for this webhook's type (SPEC §2)."""
        if self.alerts is not None:
            return self.alerts
        if self.type in STATE_WEBHOOK_TYPES:
            return ["PASS", "SLOW"]
        return ["WARNING", "FAIL"]
