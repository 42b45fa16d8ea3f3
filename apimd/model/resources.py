"""The resources of a project (SPEC §2): variables, auth settings, tokens, calls and workflows,
with the conditions inside them; webhooks (`model/webhooks.py`) and schedules
(`model/schedule.py`) have their own modules and are importable from here too."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BeforeValidator, Field, field_validator, model_validator

from apimd.model.common import (
    Name,
    Resource,
    Secret,
    StrictModel,
    VariableName,
    scalar_to_str,
    unique_variable_names,
)
from apimd.model.fields import (
    ApiKeySecret,
    HeaderName,
    HeaderSecret,
    HeaderTemplateStr,
    JsonTemplate,
    Proxy,
    RequestTemplateStr,
    TemplateStr,
    TextValue,
    UrlTemplateStr,
)
from apimd.model.keys import AssertionAlg, PrivateKeySecret
from apimd.model.outcome import Outcome
from apimd.model.schedule import MAX_EVERY_S as MAX_EVERY_S
from apimd.model.schedule import Schedule as Schedule
from apimd.model.schedule import cron_expression as cron_expression
from apimd.model.schedule import time_zone as time_zone
from apimd.model.tls import TlsSettings
from apimd.model.webhooks import NOTIFY_WEBHOOK_TYPES as NOTIFY_WEBHOOK_TYPES
from apimd.model.webhooks import STATE_WEBHOOK_TYPES as STATE_WEBHOOK_TYPES
from apimd.model.webhooks import TOKEN_ALERTS as TOKEN_ALERTS
from apimd.model.webhooks import StringMap
from apimd.model.webhooks import Webhook as Webhook
from apimd.model.webhooks import WebhookType as WebhookType

VariableMap = Annotated[dict[VariableName, TextValue], BeforeValidator(unique_variable_names)]
"""Variable name -> template value; names are case-insensitive, so `a` and `A` collide."""


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
    key_name: HeaderName | None = None
    key_value: ApiKeySecret | None = None
    in_: Literal["header", "query", "cookie"] = Field(default="header", alias="in")
    token: HeaderSecret | None = None
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
    session_token: HeaderSecret | None = None
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
    headers: dict[HeaderName, RequestTemplateStr] = Field(default_factory=dict)
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
    url: UrlTemplateStr
    headers: dict[HeaderName, HeaderTemplateStr] = Field(default_factory=dict)
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
        return bool(self.tags) and tag in self.meaning_tags()  # most have none: no set made

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
