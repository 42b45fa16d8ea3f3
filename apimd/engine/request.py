"""Turning a call definition, its token and its auth into one concrete `HttpRequest`, through the
ordered steps of SPEC §10's request pipeline (`REQUEST_STEPS`)."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlencode, urlsplit

from apimd.engine import dpop
from apimd.engine.errors import SetupError
from apimd.engine.http import Hop, HopStep, HttpRequest
from apimd.engine.template import Scope, render, render_json, render_url
from apimd.engine.tls import resolve_tls
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


@dataclass
class PreparedCall:
    """The request to send, and the secrets its preparation revealed (for redaction)."""

    request: HttpRequest
    secrets: list[str] = field(default_factory=list)
    basic_credentials: tuple[str, str] | None = None


@dataclass
class RequestDraft:
    """A call's request while the steps of `REQUEST_STEPS` build it."""

    call: Call
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
    secrets: list[str] = field(default_factory=list)
    basic_credentials: tuple[str, str] | None = None

    @property
    def where(self) -> str:
        return f"call {self.call.name}"

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
    call, scope, where = draft.call, draft.scope, draft.where
    draft.url = render_url(call.url, scope, f"{where} url")
    parts = urlsplit(draft.url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise SetupError(f"{where} url: {draft.url!r} is not an absolute http(s) URL")
    headers = draft.headers
    for key, value in call.headers.items():
        name = render(key, scope, f"{where} headers")
        _set_header(headers, name, render(value, scope, f"{where} headers.{key}"))
    for key, value in call.params.items():
        draft.params.append(
            (render(key, scope, f"{where} params"), render(value, scope, f"{where} params.{key}"))
        )
    if call.body is not None:
        draft.body = render(call.body, scope, f"{where} body").encode()
    elif call.json_body is not None:
        draft.body = json.dumps(render_json(call.json_body, scope, f"{where} json")).encode()
        if not any(k.lower() == "content-type" for k, _ in headers):
            headers.append(("Content-Type", "application/json"))
    elif call.form is not None:
        form = {k: render(v, scope, f"{where} form.{k}") for k, v in call.form.items()}
        draft.body = urlencode(form).encode()
        if not any(k.lower() == "content-type" for k, _ in headers):
            headers.append(("Content-Type", "application/x-www-form-urlencoded"))


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
    for key, value in token_headers.items():
        name = render(key, draft.scope, f"{draft.token_where} headers")
        value = render(value, draft.scope, f"{draft.token_where} headers.{key}")
        _set_header(draft.headers, name, value)
        draft.sensitive_headers.add(name.lower())


def _auth_credentials(draft: RequestDraft) -> None:
    """What a basic, api_key or bearer auth sends."""
    if draft.auth is not None:
        _apply_auth(draft.auth, draft)


def _dpop_proof(draft: RequestDraft) -> None:
    """A DPoP proof, made afresh for each hop (redirects included)."""
    if draft.dpop_binding is not None:
        draft.hop_steps.append(draft.dpop_binding.add_proof)


REQUEST_STEPS: tuple[Callable[[RequestDraft], None], ...] = (
    _call_parts,
    _token_params,
    _token_headers,
    _auth_credentials,
    # aws_sigv4 goes here, as a per-hop step (it signs the hop's URL, headers and body)
    _dpop_proof,
    # the Digest answer goes here, as an extra hop of its own
)
"""SPEC §10's request pipeline, in order. Steps that depend on the hop (its URL, method) add a
`HopStep` that the executor runs for every hop, redirects included; the 401 retry prepares the
call again from the start."""


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
    draft = RequestDraft(call, scope, token, auth, dpop_binding)
    for step in REQUEST_STEPS:
        step(draft)
    params = draft.params
    query = urlsplit(draft.url).query
    if browser and not any(k == "state" for k, _ in params) and "state=" not in query:
        params.append(("state", render("%%STATE%%", scope, f"{draft.where} state")))
    request = HttpRequest(
        method=call.method,
        url=draft.url,
        headers=draft.headers,
        params=params,
        body=draft.body,
        timeout=call.effective_timeout(),
        follow_redirects=call.follow_redirects and not call.has_tag("noredirect"),
        verify_tls=call.verify_tls,
        tls=resolve_tls(call.tls, auth.tls if auth else None, call.verify_tls),
        keepalive=call.keepalive,
        sensitive_headers=frozenset(draft.sensitive_headers),
        sensitive_params=frozenset(draft.sensitive_params),
        hop_steps=tuple(draft.hop_steps),
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
        else:
            _set_header(headers, name, value)
            draft.sensitive_headers.add(name.lower())
