"""Turning a call definition, its token and its auth into one concrete `HttpRequest`."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from urllib.parse import urlencode, urlsplit

from apimd.engine import dpop
from apimd.engine.errors import SetupError
from apimd.engine.http import HttpRequest
from apimd.engine.template import Scope, render, render_json, render_url
from apimd.engine.tls import resolve_tls
from apimd.model.resources import AuthSetting, Call, Token


@dataclass(frozen=True)
class DpopBinding:
    """A DPoP-bound token's key and access token: every hop of the call gets a fresh proof."""

    key_jwk: str
    access_token: str
    scheme: str = "DPoP"

    def hop_headers(self, method: str, url: str) -> list[tuple[str, str]]:
        return [("DPoP", dpop.proof(self.key_jwk, method, url, access_token=self.access_token))]


@dataclass
class PreparedCall:
    """The request to send, and the secrets its preparation revealed (for redaction)."""

    request: HttpRequest
    secrets: list[str] = field(default_factory=list)
    basic_credentials: tuple[str, str] | None = None


def _set_header(headers: list[tuple[str, str]], name: str, value: str) -> None:
    """Replace any header of the same name (case-insensitive), else append."""
    headers[:] = [(k, v) for k, v in headers if k.lower() != name.lower()]
    headers.append((name, value))


def _set_param(params: list[tuple[str, str]], name: str, value: str) -> None:
    params[:] = [(k, v) for k, v in params if k != name]
    params.append((name, value))


def prepare_call(
    call: Call,
    scope: Scope,
    *,
    token: Token | None,
    auth: AuthSetting | None,
    browser: bool = False,
    dpop_binding: DpopBinding | None = None,
) -> PreparedCall:
    """Template every part of `call` (SPEC §3) and add what its token and auth send.
    Raises `SetupError` naming what could not be prepared."""
    where = f"call {call.name}"
    url = render_url(call.url, scope, f"{where} url")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise SetupError(f"{where} url: {url!r} is not an absolute http(s) URL")
    headers: list[tuple[str, str]] = []
    for key, value in call.headers.items():
        name = render(key, scope, f"{where} headers")
        _set_header(headers, name, render(value, scope, f"{where} headers.{key}"))
    params: list[tuple[str, str]] = []
    for key, value in call.params.items():
        params.append(
            (render(key, scope, f"{where} params"), render(value, scope, f"{where} params.{key}"))
        )
    body: bytes | None = None
    if call.body is not None:
        body = render(call.body, scope, f"{where} body").encode()
    elif call.json_body is not None:
        body = json.dumps(render_json(call.json_body, scope, f"{where} json")).encode()
        if not any(k.lower() == "content-type" for k, _ in headers):
            headers.append(("Content-Type", "application/json"))
    elif call.form is not None:
        form = {k: render(v, scope, f"{where} form.{k}") for k, v in call.form.items()}
        body = urlencode(form).encode()
        if not any(k.lower() == "content-type" for k, _ in headers):
            headers.append(("Content-Type", "application/x-www-form-urlencoded"))

    sensitive_headers: set[str] = set()
    sensitive_params: set[str] = set()
    prepared = PreparedCall(request=HttpRequest(method=call.method, url=url))
    if token is not None:
        token_headers = dict(token.headers)
        if not token_headers and not token.params and auth is not None and auth.type == "oauth2":
            scheme = dpop_binding.scheme if dpop_binding else "Bearer"
            token_headers = {"Authorization": f"{scheme} %%ACCESS_TOKEN%%"}
        twhere = f"token {token.name}"
        for key, value in token_headers.items():
            name = render(key, scope, f"{twhere} headers")
            _set_header(headers, name, render(value, scope, f"{twhere} headers.{key}"))
            sensitive_headers.add(name.lower())
        for key, value in token.params.items():
            name = render(key, scope, f"{twhere} params")
            _set_param(params, name, render(value, scope, f"{twhere} params.{key}"))
            sensitive_params.add(name)
    if auth is not None:
        _apply_auth(auth, scope, headers, params, sensitive_headers, sensitive_params, prepared)

    if browser and not any(k == "state" for k, _ in params) and "state=" not in parts.query:
        params.append(("state", render("%%STATE%%", scope, f"{where} state")))

    prepared.request = HttpRequest(
        method=call.method,
        url=url,
        headers=headers,
        params=params,
        body=body,
        timeout=call.effective_timeout(),
        follow_redirects=call.follow_redirects and not call.has_tag("noredirect"),
        verify_tls=call.verify_tls,
        tls=resolve_tls(call.tls, auth.tls if auth else None, call.verify_tls),
        keepalive=call.keepalive,
        sensitive_headers=frozenset(sensitive_headers),
        sensitive_params=frozenset(sensitive_params),
        hop_headers=dpop_binding.hop_headers if dpop_binding else None,
    )
    return prepared


def _apply_auth(
    auth: AuthSetting,
    scope: Scope,
    headers: list[tuple[str, str]],
    params: list[tuple[str, str]],
    sensitive_headers: set[str],
    sensitive_params: set[str],
    prepared: PreparedCall,
) -> None:
    where = f"auth {auth.name}"
    if auth.type == "basic":
        user = render(auth.username or "", scope, f"{where} username")
        password = render(auth.password or "", scope, f"{where} password")
        encoded = base64.b64encode(f"{user}:{password}".encode()).decode()
        _set_header(headers, "Authorization", f"Basic {encoded}")
        sensitive_headers.add("authorization")
        prepared.secrets.append(password)
        prepared.basic_credentials = (user, password)
    elif auth.type == "bearer":
        token = render(auth.token or "", scope, f"{where} token")
        _set_header(headers, "Authorization", f"Bearer {token}")
        sensitive_headers.add("authorization")
        prepared.secrets.append(token)
    elif auth.type == "api_key":
        name = render(auth.key_name or "", scope, f"{where} key_name")
        value = render(auth.key_value or "", scope, f"{where} key_value")
        prepared.secrets.append(value)
        if auth.in_ == "query":
            _set_param(params, name, value)
            sensitive_params.add(name)
        else:
            _set_header(headers, name, value)
            sensitive_headers.add(name.lower())
