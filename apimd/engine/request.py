"""Turning a call definition, its token and its auth into one concrete `HttpRequest`, through the
ordered steps of SPEC §10's request pipeline (`REQUEST_STEPS`)."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlencode, urlsplit

from yarl import URL

from apimd.engine import dpop
from apimd.engine.digest import DigestAnswer
from apimd.engine.errors import SetupError
from apimd.engine.hops import Hop, HopAnswer, HopStep
from apimd.engine.http import HttpRequest
from apimd.engine.multipart import MultipartBody
from apimd.engine.proxies import select_proxy
from apimd.engine.request_plan import CallPlan, call_plan, computes_secret
from apimd.engine.request_vars import request_variables
from apimd.engine.sigv4 import AwsCredentials, sign
from apimd.engine.template import Scope, referenced_variables, render, render_json, render_url
from apimd.engine.tls import resolve_tls
from apimd.model.expressions import REQUEST_VARIABLES
from apimd.model.resources import AuthSetting, Call, Token


@dataclass(frozen=True)
class DpopBinding:
    """A DPoP-bound token's key and access token: every hop of the call gets a fresh proof."""

    key_jwk: str
    access_token: str
    scheme: str = "DPoP"

    def add_proof(self, hop: Hop) -> None:
        """The per-hop DPoP step: a fresh proof for this hop's method and URL, with `ath`."""
        proof = dpop.proof(self.key_jwk, hop.method, hop.url, access_token=self.access_token)
        hop.set_header("DPoP", proof)


@dataclass(slots=True)
class PreparedCall:
    """The request to send, and the secrets its preparation revealed (for redaction)."""

    request: HttpRequest
    secrets: list[str] = field(default_factory=list)
    basic_credentials: tuple[str, str] | None = None


@dataclass(slots=True)
class RequestDraft:
    """A call's request while the steps of `REQUEST_STEPS` build it."""

    call: Call
    plan: CallPlan
    scope: Scope
    token: Token | None
    auth: AuthSetting | None
    dpop_binding: DpopBinding | None
    url: str = ""
    headers: list[tuple[str, str]] = field(default_factory=list)
    params: list[tuple[str, str]] = field(default_factory=list)
    body: bytes | None = None
    sensitive_headers: set[str] = field(default_factory=set)
    sensitive_params: set[str] = field(default_factory=set)
    hop_steps: list[HopStep] = field(default_factory=list)
    answers: list[HopAnswer] = field(default_factory=list)
    secrets: list[str] = field(default_factory=list)
    basic_credentials: tuple[str, str] | None = None

    @property
    def token_where(self) -> str:
        return f"token {self.token.name}" if self.token else ""


def _set_header(headers: list[tuple[str, str]], name: str, value: str) -> None:
    """Replace any header of the same name (case-insensitive), else append."""
    headers[:] = [(k, v) for k, v in headers if k.lower() != name.lower()]
    headers.append((name, value))


def _set_param(params: list[tuple[str, str]], name: str, value: str) -> None:
    params[:] = [(k, v) for k, v in params if k != name]
    params.append((name, value))


def _call_parts(draft: RequestDraft) -> None:
    """The call's own URL, params, headers and body."""
    call, scope, plan = draft.call, draft.scope, draft.plan
    url = plan.url
    if url is not None:
        draft.url = url.render(scope, plan.url_where)
    else:
        draft.url = render_url(call.url, scope, plan.url_where)
    try:
        parts = urlsplit(draft.url)
    except ValueError as exc:  # "Invalid IPv6 URL": a `[` without its `]`
        raise SetupError(f"{plan.url_where}: {draft.url!r} is not a valid URL ({exc})") from None
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise SetupError(f"{plan.url_where}: {draft.url!r} is not an absolute http(s) URL")
    headers = draft.headers
    for header in plan.headers:
        name = header.name.render(scope)
        rendered = header.value.render(scope)
        if plan.headers_distinct:
            headers.append((name, rendered))
        else:
            _set_header(headers, name, rendered)
        if header.computed:
            draft.secrets.append(rendered)
    params = draft.params
    for name_part, value_part in plan.params:
        params.append((name_part.render(scope), value_part.render(scope)))
    where = plan.where
    if plan.body is not None:
        draft.body = plan.body
        if call.json_body is not None:
            _add_content_type(headers, "application/json")
        elif call.form is not None:
            _add_content_type(headers, "application/x-www-form-urlencoded")
    elif call.body is not None:
        draft.body = render(call.body, scope, f"{where} body").encode()
    elif call.json_body is not None:
        draft.body = json.dumps(render_json(call.json_body, scope, f"{where} json")).encode()
        _add_content_type(headers, "application/json")
    elif call.form is not None:
        form = {k: render(v, scope, f"{where} form.{k}") for k, v in call.form.items()}
        draft.body = urlencode(form).encode()
        _add_content_type(headers, "application/x-www-form-urlencoded")
    elif call.multipart is not None:
        draft.body, content_type = _multipart(call, scope, where)
        _set_header(headers, "Content-Type", content_type)


def _add_content_type(headers: list[tuple[str, str]], content_type: str) -> None:
    """The body's Content-Type, unless the call's headers give one."""
    if not any(k.lower() == "content-type" for k, _ in headers):
        headers.append(("Content-Type", content_type))


def _token_params(draft: RequestDraft) -> None:
    """The token's params (name → template)."""
    if draft.token is None:
        return
    for key, value in draft.token.params.items():
        name = render(key, draft.scope, f"{draft.token_where} params")
        _set_param(
            draft.params, name, render(value, draft.scope, f"{draft.token_where} params.{key}")
        )
        draft.sensitive_params.add(name)


def _token_headers(draft: RequestDraft) -> None:
    """The token's headers; an oauth2 token without any sends `Authorization: Bearer` (or
    `DPoP` when the token endpoint said its type is DPoP)."""
    token, auth = draft.token, draft.auth
    if token is None:
        return
    token_headers = dict(token.headers)
    if not token_headers and not token.params and auth is not None and auth.type == "oauth2":
        scheme = draft.dpop_binding.scheme if draft.dpop_binding else "Bearer"
        token_headers = {"Authorization": f"{scheme} %%ACCESS_TOKEN%%"}
    per_hop: dict[str, str] = {}
    for key, template in token_headers.items():
        if referenced_variables(template) & REQUEST_VARIABLES:
            # SPEC §10: it describes the request as sent, so it is made for each hop.
            per_hop[key] = template
            draft.sensitive_headers.add(render(key, draft.scope, draft.token_where).lower())
            continue
        name = render(key, draft.scope, f"{draft.token_where} headers")
        value = render(template, draft.scope, f"{draft.token_where} headers.{key}")
        _set_header(draft.headers, name, value)
        draft.sensitive_headers.add(name.lower())
        _computed_is_secret(template, value, draft.secrets)
    if per_hop:
        draft.hop_steps.append(
            _RequestHeaders(per_hop, draft.scope, draft.token_where, draft.secrets)
        )


def _auth_credentials(draft: RequestDraft) -> None:
    """What a basic, api_key or bearer auth sends."""
    if draft.auth is not None:
        _apply_auth(draft.auth, draft)


def _dpop_proof(draft: RequestDraft) -> None:
    """A DPoP proof, made afresh for each hop (redirects included)."""
    if draft.dpop_binding is not None:
        draft.hop_steps.append(draft.dpop_binding.add_proof)


def _aws_sigv4(draft: RequestDraft) -> None:
    """AWS Signature Version 4, made for each hop (it signs the hop's URL, headers and body)."""
    if draft.auth is None or draft.auth.type != "aws_sigv4":
        return
    credentials = _sigv4_credentials(draft.auth, draft.scope, draft.secrets)
    instant = draft.scope.instant
    draft.sensitive_headers |= {"authorization", "x-amz-security-token"}

    def signed(hop: Hop) -> None:
        hop.headers = sign(hop.method, URL(hop.url), hop.headers, hop.body, credentials, instant)

    draft.hop_steps.append(signed)


def _digest_answer(draft: RequestDraft) -> None:
    """A `digest` auth answers the server's challenge with a hop of its own."""
    auth = draft.auth
    if auth is None or auth.type != "digest":
        return
    where, scope = f"auth {auth.name}", draft.scope
    user = render(auth.username or "", scope, f"{where} username")
    password = render(auth.password or "", scope, f"{where} password")
    draft.secrets.append(password)
    draft.answers.append(DigestAnswer(user, password))


REQUEST_STEPS: tuple[Callable[[RequestDraft], None], ...] = (
    _call_parts,
    _token_params,
    _token_headers,
    _auth_credentials,
    _aws_sigv4,
    _dpop_proof,
    _digest_answer,
)
"""SPEC §10's request pipeline, in order, run once per request (and again from the start for the
401 retry). Steps that depend on the hop (its URL, method, headers) add a `HopStep` that the
executor runs for every hop, redirects included, or a `HopAnswer` it consults after each hop's
response: a new auth kind adds a step here, not a branch in the executor."""

_UNAUTHENTICATED_STEPS = REQUEST_STEPS[:1]
"""The steps of a call without a token, an auth or a DPoP binding: the others add only what those
send."""


def prepare_call(
    call: Call,
    scope: Scope,
    *,
    token: Token | None,
    auth: AuthSetting | None,
    browser: bool = False,
    dpop_binding: DpopBinding | None = None,
) -> PreparedCall:
    """Template every part of `call` (SPEC §3) and add what its token and auth send, running
    `REQUEST_STEPS`. Raises `SetupError` naming what could not be prepared."""
    plan = call_plan(call)
    draft = RequestDraft(call, plan, scope, token, auth, dpop_binding)
    credentials = token is not None or auth is not None or dpop_binding is not None
    for step in REQUEST_STEPS if credentials else _UNAUTHENTICATED_STEPS:
        step(draft)
    params = draft.params
    if (
        browser
        and not any(k == "state" for k, _ in params)
        and "state=" not in urlsplit(draft.url).query
    ):
        params.append(("state", render("%%STATE%%", scope, f"{plan.where} state")))
    tls = plan.plain_tls
    if tls is None or (auth is not None and auth.tls is not None):
        tls = resolve_tls(call.tls, auth.tls if auth else None, call.verify_tls)
    request = HttpRequest(
        method=call.method,
        url=draft.url,
        headers=draft.headers,
        params=params,
        body=draft.body,
        timeout=plan.timeout,
        follow_redirects=plan.follow_redirects,
        verify_tls=call.verify_tls,
        tls=tls,
        keepalive=call.keepalive,
        sensitive_headers=frozenset(draft.sensitive_headers),
        sensitive_params=frozenset(draft.sensitive_params),
        hop_steps=tuple(draft.hop_steps),
        answers=tuple(draft.answers),
        proxy=_proxy(call, auth, draft.url, draft.secrets),
    )
    return PreparedCall(request, draft.secrets, draft.basic_credentials)


def _apply_auth(auth: AuthSetting, draft: RequestDraft) -> None:
    where, scope = f"auth {auth.name}", draft.scope
    headers, params = draft.headers, draft.params
    if auth.type == "basic":
        user = render(auth.username or "", scope, f"{where} username")
        password = render(auth.password or "", scope, f"{where} password")
        encoded = base64.b64encode(f"{user}:{password}".encode()).decode()
        _set_header(headers, "Authorization", f"Basic {encoded}")
        draft.sensitive_headers.add("authorization")
        draft.secrets.append(password)
        draft.basic_credentials = (user, password)
    elif auth.type == "bearer":
        token = render(auth.token or "", scope, f"{where} token")
        _set_header(headers, "Authorization", f"Bearer {token}")
        draft.sensitive_headers.add("authorization")
        draft.secrets.append(token)
    elif auth.type == "api_key":
        name = render(auth.key_name or "", scope, f"{where} key_name")
        value = render(auth.key_value or "", scope, f"{where} key_value")
        draft.secrets.append(value)
        if auth.in_ == "query":
            _set_param(params, name, value)
            draft.sensitive_params.add(name)
        elif auth.in_ == "cookie":
            _add_cookie(headers, name, value)
            draft.sensitive_headers.add("cookie")
        else:
            _set_header(headers, name, value)
            draft.sensitive_headers.add(name.lower())


class _RequestHeaders:
    """Token headers that use `REQUEST_*` variables, rendered for each hop as it is sent."""

    def __init__(
        self, templates: dict[str, str], scope: Scope, where: str, secrets: list[str]
    ) -> None:
        self.templates, self.scope, self.where, self.secrets = templates, scope, where, secrets

    def __call__(self, hop: Hop) -> None:
        variables = request_variables(hop.method, hop.url, [], hop.headers, hop.body)
        scope = self.scope.with_layer_first(variables)
        for key, template in self.templates.items():
            where = f"{self.where} headers.{key}"
            value = render(template, scope, where)
            hop.set_header(render(key, scope, where), value)
            _computed_is_secret(template, value, self.secrets)


def _computed_is_secret(template: str, rendered: str, secrets: list[str]) -> None:
    """A header computed by a function (a signature made from a secret) is a secret."""
    if computes_secret(template):
        secrets.append(rendered)


def _add_cookie(headers: list[tuple[str, str]], name: str, value: str) -> None:
    """Add `name=value` to the request's one Cookie header (RFC 6265 §5.4)."""
    current = next((v for k, v in headers if k.lower() == "cookie"), "")
    pairs = [p for p in current.split("; ") if p and p.split("=", 1)[0] != name]
    _set_header(headers, "Cookie", "; ".join([*pairs, f"{name}={value}"]))


def _multipart(call: Call, scope: Scope, where: str) -> tuple[bytes, str]:
    assert call.multipart is not None
    built = MultipartBody()
    for name, part in call.multipart.items():
        pwhere = f"{where} multipart.{name}"
        if isinstance(part, str):
            built.add_field(name, render(part, scope, pwhere))
        else:
            built.add_file(
                name,
                render(part.file, scope, f"{pwhere}.file"),
                content_type=part.content_type,
                filename=render(part.filename, scope, f"{pwhere}.filename")
                if part.filename
                else None,
                where=pwhere,
            )
    return built.build()


def _sigv4_credentials(auth: AuthSetting, scope: Scope, secrets: list[str]) -> AwsCredentials:
    where = f"auth {auth.name}"
    credentials = AwsCredentials(
        access_key_id=render(auth.access_key_id or "", scope, f"{where} access_key_id"),
        secret_access_key=render(auth.secret_access_key or "", scope, f"{where} secret_access_key"),
        region=render(auth.region or "", scope, f"{where} region"),
        service=render(auth.service or "", scope, f"{where} service"),
        session_token=render(auth.session_token, scope, f"{where} session_token")
        if auth.session_token
        else None,
    )
    secrets.append(credentials.secret_access_key)
    if credentials.session_token:
        secrets.append(credentials.session_token)
    return credentials


def _proxy(call: Call, auth: AuthSetting | None, url: str, secrets: list[str]) -> str | None:
    """SPEC §10: the call's proxy wins over its auth's; else the environment's."""
    configured = call.proxy if call.proxy is not None else (auth.proxy if auth else None)
    chosen = select_proxy(configured, url)
    if chosen is not None:
        try:
            password = URL(chosen).password
        except ValueError as exc:  # (an environment's proxy: a project's is checked at apply)
            raise SetupError(f"call {call.name}: its proxy URL does not parse ({exc})") from None
        if password:
            secrets.append(password)
    return chosen
