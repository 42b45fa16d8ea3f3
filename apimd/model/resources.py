"""The resources of a project (SPEC §2): variables, auth settings, tokens, calls, workflows,
schedules, and the conditions and webhooks inside them."""

from __future__ import annotations

import zoneinfo
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal

from cronsim import CronSim, CronSimError
from pydantic import BeforeValidator, Field, field_validator, model_validator

from apimd.model.common import (
    Name,
    Secret,
    StrictModel,
    VariableName,
    parse_duration,
    scalar_to_str,
    unique_variable_names,
)
from apimd.model.fields import JsonTemplate, Proxy, RequestTemplateStr, TemplateStr, TextValue
from apimd.model.keys import AssertionAlg, PrivateKeySecret
from apimd.model.outcome import Outcome
from apimd.model.tls import TlsSettings

StringMap = dict[str, TemplateStr]

VariableMap = Annotated[dict[VariableName, TextValue], BeforeValidator(unique_variable_names)]
"""Variable name -> template value; names are case-insensitive, so `a` and `A` collide."""


class Resource(StrictModel):
    """Fields every resource has."""

    name: Name
    description: str | None = None
    tags: list[str] = Field(default_factory=list)


# --- variables ---------------------------------------------------------------------------------


class VariableSpec(StrictModel):
    """A variable's value as the project file's `variables` mapping holds it."""

    value: TextValue
    secret: bool = False

    @model_validator(mode="before")
    @classmethod
    def _scalar(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return data
        return {"value": scalar_to_str(data)}


class Variable(StrictModel):
    """An environment variable as the REST API serves it (`/v1/variables/{name}`)."""

    name: VariableName
    value: TextValue
    secret: bool = False


# --- webhooks ----------------------------------------------------------------------------------

WebhookType = Literal[
    "save_auth_token", "save_variables", "run_call", "run_workflow", "http", "slack", "apprise"
]
STATE_WEBHOOK_TYPES = ("save_auth_token", "save_variables", "run_call", "run_workflow")
NOTIFY_WEBHOOK_TYPES = ("http", "slack", "apprise")
TOKEN_ALERTS = ("NEEDS_SIGN_IN", "ERROR")
"""What auth webhooks fire on: token state changes, not run outcomes."""


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


# --- auth settings -----------------------------------------------------------------------------

AuthType = Literal["none", "basic", "api_key", "bearer", "manual", "oauth2", "digest", "aws_sigv4"]
Grant = Literal["client_credentials", "authorization_code", "device_code", "password", "jwt_bearer"]
ClientAuth = Literal[
    "basic", "body", "none", "client_secret_jwt", "private_key_jwt", "tls_client_auth"
]

_AUTH_REQUIRED: dict[str, tuple[str, ...]] = {
    "basic": ("username", "password"),
    "api_key": ("key_name", "key_value"),
    "bearer": ("token",),
    "oauth2": ("grant", "token_url", "client_id"),
    "digest": ("username", "password"),
    "aws_sigv4": ("access_key_id", "secret_access_key", "region", "service"),
}
# Endpoints may instead come from the `issuer`'s discovery document (SPEC §10).
_GRANT_REQUIRED: dict[str, tuple[str, ...]] = {
    "client_credentials": (),
    "authorization_code": (),
    "device_code": (),
    "password": ("username", "password"),
    "jwt_bearer": ("client_key",),
}
_GRANT_ENDPOINTS: dict[str, tuple[str, ...]] = {
    "authorization_code": ("authorize_url",),
    "device_code": ("device_authorization_url",),
}
_CLIENT_AUTH_REQUIRED: dict[str, str] = {
    "client_secret_jwt": "client_secret",
    "private_key_jwt": "client_key",
}


class CallbackTarget(StrictModel):
    """What `/tokens/callback` runs when a sign-in has no remaining steps."""

    call: Name | None = None
    workflow: Name | None = None

    @model_validator(mode="after")
    def _one(self) -> CallbackTarget:
        if (self.call is None) == (self.workflow is None):
            raise ValueError("give exactly one of `call` or `workflow`")
        return self


class AuthSetting(Resource):
    """How calls authenticate (SPEC §2 "Auth settings")."""

    type: AuthType = "none"
    username: TemplateStr | None = None
    password: Secret | None = None
    key_name: str | None = None
    key_value: Secret | None = None
    in_: Literal["header", "query", "cookie"] = Field(default="header", alias="in")
    token: Secret | None = None
    client_id: TemplateStr | None = None
    client_secret: Secret | None = None
    grant: Grant | None = None
    token_url: str | None = None
    authorize_url: str | None = None
    device_authorization_url: str | None = None
    scopes: list[str] = Field(default_factory=list)
    audience: str | None = None
    extra_params: StringMap = Field(default_factory=dict)
    client_auth: ClientAuth = "basic"
    client_key: PrivateKeySecret | None = None
    client_key_id: str | None = None
    client_assertion_alg: AssertionAlg | None = None
    client_assertion_aud: str | None = None
    assertion_claims: dict[str, Any] = Field(default_factory=dict)
    issuer: str | None = None
    par_url: str | None = None
    par: bool | None = None
    dpop: bool = False
    tls: TlsSettings | None = None
    pkce: bool | None = None
    access_key_id: TemplateStr | None = None
    secret_access_key: Secret | None = None
    session_token: Secret | None = None
    region: str | None = None
    service: str | None = None
    proxy: Proxy | None = None
    refresh_workflow: Name | None = None
    signin_workflow: Name | None = None
    callback: CallbackTarget | None = None
    refresh_on_401: bool = True
    refresh_skew: float = Field(default=10, ge=0, le=86400)
    webhooks: list[Webhook] = Field(default_factory=list)

    @model_validator(mode="after")
    def _required_for_type(self) -> AuthSetting:
        required = list(_AUTH_REQUIRED.get(self.type, ()))
        if self.type == "oauth2" and self.grant:
            required += [*_GRANT_ENDPOINTS.get(self.grant, ()), *_GRANT_REQUIRED[self.grant]]
            if needed := _CLIENT_AUTH_REQUIRED.get(self.client_auth):
                required.append(needed)
        if self.issuer:  # its discovery document gives the endpoints
            required = [f for f in required if not f.endswith("_url")]
        missing = [f for f in required if getattr(self, f) is None]
        if missing:
            needs = ", ".join(f"`{m}`" for m in dict.fromkeys(missing))
            if self.type == "oauth2" and any(m.endswith("_url") for m in missing):
                needs += " (or `issuer`, to discover its endpoints)"
            raise ValueError(f"a {self.type} auth needs {needs}")
        for hook in self.webhooks:
            if hook.type not in NOTIFY_WEBHOOK_TYPES:
                raise ValueError("auth webhooks notify only: use type http, slack or apprise")
            if hook.alerts is None:
                # The run-outcome default (WARNING, FAIL) never matches a token state change.
                hook.alerts = list(TOKEN_ALERTS)
            elif bad := [a for a in hook.alerts if a not in TOKEN_ALERTS]:
                raise ValueError(
                    f"auth webhooks fire on token states NEEDS_SIGN_IN and ERROR, not {bad[0]}"
                )
        return self

    @property
    def uses_pkce(self) -> bool:
        return self.pkce if self.pkce is not None else self.grant == "authorization_code"


# --- tokens ------------------------------------------------------------------------------------


class TokenState(StrEnum):
    VALID = "valid"
    EXPIRED = "expired"
    REFRESHING = "refreshing"
    NEEDS_SIGN_IN = "needs_sign_in"
    ERROR = "error"


class Token(Resource):
    """An auth token: the exact headers and params calls get, and the variables that fill them."""

    auth: Name
    headers: dict[str, RequestTemplateStr] = Field(default_factory=dict)
    params: StringMap = Field(default_factory=dict)
    variables: VariableMap | None = None
    # Read-only runtime fields: served by the API, ignored on apply and PUT.
    expires_at: datetime | None = None
    state: TokenState | None = None
    last_refresh: datetime | None = None
    last_error: str | None = None

    READ_ONLY_FIELDS: ClassVar[tuple[str, ...]] = (
        "expires_at",
        "state",
        "last_refresh",
        "last_error",
    )


# --- calls -------------------------------------------------------------------------------------

ConditionSource = Literal[
    "status", "header", "body", "json", "xml", "response_time", "size", "cert_days", "cookie"
]
ConditionOp = Literal[
    "exists",
    "not_exists",
    "eq",
    "ne",
    "lt",
    "le",
    "gt",
    "ge",
    "contains",
    "not_contains",
    "matches",
]
VALUELESS_OPS = ("exists", "not_exists")


class Condition(StrictModel):
    """An assertion on the response, an extraction into a run variable, or both."""

    source: ConditionSource
    path: TemplateStr | None = None
    op: ConditionOp | None = None
    value: Any = None
    save_as: VariableName | None = None
    on_fail: Literal["fail", "warning"] = "fail"
    namespaces: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _meaningful(self) -> Condition:
        if self.op is None and self.save_as is None:
            raise ValueError("a condition needs `op` (to assert) or `save_as` (to extract)")
        if self.source in ("header", "json", "xml", "cookie") and not self.path:
            raise ValueError(f"a {self.source} condition needs `path`")
        if self.source == "cert_days" and self.path not in (None, "server", "client"):
            raise ValueError(
                "a cert_days condition checks the server certificate (no `path`, or"
                " `path: server`) or `path: client` (the tls client_cert)"
            )
        if self.op and self.op not in VALUELESS_OPS and self.value is None:
            raise ValueError(f"op `{self.op}` needs `value`")
        return self


class SLA(StrictModel):
    """Latency thresholds in milliseconds (SPEC §4: SLOW, SLA_WARNING, SLA_ERROR)."""

    slow_ms: float | None = Field(default=None, gt=0)
    warn_ms: float | None = Field(default=None, gt=0)
    fail_ms: float | None = Field(default=None, gt=0)


HTTP_METHOD = r"^[A-Za-z]{1,20}$"


class MultipartFile(StrictModel):
    """A file part of a `multipart` body: read from `file` when the call runs."""

    file: TemplateStr
    content_type: str | None = None
    filename: TemplateStr | None = None


class Call(Resource):
    """An API call: one HTTP request, its conditions and webhooks."""

    method: Annotated[str, Field(pattern=HTTP_METHOD)] = "GET"
    url: TemplateStr
    headers: StringMap = Field(default_factory=dict)
    params: StringMap = Field(default_factory=dict)
    body: TemplateStr | None = None
    json_body: JsonTemplate = Field(default=None, alias="json")
    form: StringMap | None = None
    multipart: dict[str, TemplateStr | MultipartFile] | None = None
    auth: Name | None = None
    token: Name | None = None
    timeout: float = Field(default=30, gt=0, le=300)
    follow_redirects: bool = True
    verify_tls: bool = True
    tls: TlsSettings | None = None
    keepalive: bool = False
    proxy: Proxy | None = None
    sla: SLA | None = None
    conditions: list[Condition] = Field(default_factory=list)
    webhooks: list[Webhook] = Field(default_factory=list)

    @field_validator("method")
    @classmethod
    def _upper(cls, value: str) -> str:
        return value.upper()

    @model_validator(mode="after")
    def _one_body(self) -> Call:
        given = [
            k for k in ("body", "json_body", "form", "multipart") if getattr(self, k) is not None
        ]
        if len(given) > 1:
            raise ValueError("give at most one of `body`, `json`, `form` and `multipart`")
        return self

    @model_validator(mode="after")
    def _meaningful_tags_and_alerts(self) -> Call:
        for tag in self.meaning_tags():
            if tag.startswith("timeout:") and not _timeout_tag_ok(tag.split(":", 1)[1]):
                raise ValueError(
                    f"tag `{tag}`: the timeout must be seconds, more than 0, at most 300"
                )
        outcomes = {o.value for o in Outcome}
        for hook in self.webhooks:
            if bad := [a for a in hook.alerts or () if a not in outcomes]:
                raise ValueError(
                    f"call webhooks fire on outcomes PASS, SLOW, WARNING, SKIPPED, FAIL, not {bad[0]}"
                )
        return self

    def has_tag(self, tag: str) -> bool:
        """Whether `apimd:<tag>` (or its `apimetrics:` alias) is among the tags."""
        return tag in self.meaning_tags()

    def meaning_tags(self) -> set[str]:
        """Tags with the `apimd:`/`apimetrics:` prefix, without the prefix."""
        out: set[str] = set()
        for tag in self.tags:
            for prefix in ("apimd:", "apimetrics:"):
                if tag.lower().startswith(prefix):
                    rest = tag[len(prefix) :].lower()
                    out.add("mutex" if rest == "workflow_mutex" else rest)
        return out

    def effective_timeout(self) -> float:
        """`timeout`, or the `apimd:timeout:N` tag when present."""
        for tag in self.meaning_tags():
            if tag.startswith("timeout:"):
                try:
                    return min(300.0, max(0.001, float(tag.split(":", 1)[1])))
                except ValueError:
                    continue
        return self.timeout


def _timeout_tag_ok(text: str) -> bool:
    try:
        seconds = float(text)
    except ValueError:
        return False
    return 0 < seconds <= 300


# --- workflows ---------------------------------------------------------------------------------


class Workflow(Resource):
    """Calls run in order, variables flowing forward."""

    steps: list[Name] = Field(min_length=1)
    stop_on_failure: bool = True
    cookies: bool = True
    variables: VariableMap = Field(default_factory=dict)


MAX_EVERY_S = 366 * 86400.0
LocationName = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9._-]+$")]
"""An agent's `APIMD_LOCATION` as a schedule names it (SPEC §13)."""


def cron_expression(value: str) -> str:
    """`value` when it is a 5-field cron expression CronSim accepts (schedules, maintenance)."""
    if len(value.split()) != 5:
        raise ValueError("`cron` needs 5 fields: minute hour day month weekday")
    try:
        CronSim(value, datetime(2000, 1, 1))
    except CronSimError as exc:
        raise ValueError(f"invalid cron expression: {exc}") from None
    return value


def time_zone(value: str) -> str:
    """`value` when it names an IANA time zone."""
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(f"unknown time zone {value!r}") from None
    return value


# --- schedules ---------------------------------------------------------------------------------


class Schedule(Resource):
    """When targets run: `every` interval or `cron` expression."""

    every: str | None = None
    cron: str | None = None
    timezone: str = "UTC"
    targets: list[Name] = Field(min_length=1)
    enabled: bool = True
    jitter: float = Field(default=0, ge=0, le=3600)
    locations: list[LocationName] | Literal["all"] | None = None
    """Where it runs (SPEC §13): omitted, once per due instant somewhere; a list, once in each of
    those locations; `all`, in every location with a live agent."""

    @field_validator("every", mode="before")
    @classmethod
    def _every(cls, value: Any) -> Any:
        if value is None:
            return None
        seconds = parse_duration(value)
        if seconds < 1:
            raise ValueError("`every` must be at least 1s")
        if seconds > MAX_EVERY_S:
            raise ValueError("`every` must be at most 366d (use `cron` for rarer runs)")
        return value if isinstance(value, str) else f"{value:g}s"

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        return None if value is None else cron_expression(value)

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        return time_zone(value)

    @model_validator(mode="after")
    def _one_trigger(self) -> Schedule:
        if (self.every is None) == (self.cron is None):
            raise ValueError("give exactly one of `every` or `cron`")
        return self

    @property
    def every_seconds(self) -> float | None:
        return None if self.every is None else parse_duration(self.every)
