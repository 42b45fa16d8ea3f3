"""Built-in OAuth 2.0 grants that need no browser: client_credentials, password, refresh_token."""

from __future__ import annotations

import json
import re
from typing import Any, Literal
from urllib.parse import urlencode

from yarl import URL

from apimd.engine import dpop
from apimd.engine.client_auth import client_credentials, jwt_bearer_assertion
from apimd.engine.discovery import endpoints
from apimd.engine.errors import SetupError
from apimd.engine.http import HttpExecutor, HttpFailure, HttpRequest, HttpResponse
from apimd.engine.lookups import json_error
from apimd.engine.proxies import select_proxy
from apimd.engine.redact import Redactor
from apimd.engine.template import Scope, render
from apimd.engine.tls import resolve_tls
from apimd.engine.tokens import NEEDS_SIGN_IN_ERRORS, RefreshOutcome
from apimd.model.common import escaped_controls
from apimd.model.resources import AuthSetting
from apimd.model.runtime import TokenRuntime

TOKEN_REQUEST_TIMEOUT_S = 30.0
_SAVED_FIELDS = {
    "access_token": "ACCESS_TOKEN",
    "refresh_token": "REFRESH_TOKEN",
    "expires_in": "EXPIRES_IN",
    "id_token": "ID_TOKEN",
    "token_type": "TOKEN_TYPE",
    "scope": "SCOPE",
}
_ENDPOINT_NAMES = {
    "token_url": "token endpoint",
    "device_authorization_url": "device authorization endpoint",
    "par_url": "pushed authorization request endpoint",
}
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"


class OAuthError(Exception):
    """The token endpoint answered with an OAuth error (RFC 6749 §5.2) or something unusable."""

    def __init__(self, error: str, description: str | None = None, status: int | None = None):
        message = error + (f": {description}" if description else "")
        if status is not None:
            message = f"HTTP {status} {message}"
        super().__init__(message)
        self.error = error
        self.description = description
        self.status = status

    @property
    def needs_sign_in(self) -> bool:
        return self.error in NEEDS_SIGN_IN_ERRORS

    def redacted(self, redactor: Redactor) -> OAuthError:
        """This error with every secret `redactor` knows masked: a token endpoint's error page may
        quote the request it got (its Authorization header, the client secret in the form); and
        with its control characters escaped: it is a token's one-line `last_error`, which the
        CLI and the TUI show (escapes in it cleared the TUI's Tokens screen)."""

        def said(text: str) -> str:
            return escaped_controls(redactor.text(text))

        description = said(self.description) if self.description else self.description
        return OAuthError(said(self.error), description, self.status)


def oauth_error_of(body: str | bytes | None) -> str | None:
    """The `error` code of an OAuth error body (JSON object with a string `error`), if any."""
    if not body:
        return None
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    error = data.get("error") if isinstance(data, dict) else None
    return error if isinstance(error, str) else None


def token_variables(payload: dict[str, Any]) -> dict[str, str]:
    """The variables a token response gives: ACCESS_TOKEN, REFRESH_TOKEN, EXPIRES_IN, …"""
    out: dict[str, str] = {}
    for key, name in _SAVED_FIELDS.items():
        value = payload.get(key)
        if value is not None and not isinstance(value, dict | list):
            out[name] = str(value)
    return out


Endpoint = Literal["token_url", "device_authorization_url", "par_url"]


_PUBLIC_FORM = frozenset(
    (
        *("grant_type", "client_id", "scope", "audience", "resource", "redirect_uri"),
        *("response_type", "response_mode", "code_challenge", "code_challenge_method", "prompt"),
        *("client_assertion_type", "token_type_hint", "subject_token_type", "requested_token_type"),
    )
)
"""Token request fields that are not secret (every other field's value is masked in an error)."""


async def token_request(
    http: HttpExecutor,
    auth: AuthSetting,
    params: dict[str, str],
    scope: Scope,
    *,
    dpop_key: str | None = None,
) -> dict[str, Any]:
    """POST `params` (plus client authentication, scopes, audience, extra params) to the auth's
    token endpoint and return the JSON answer; raise `OAuthError` on an error answer."""
    return await endpoint_request(
        http, auth, "token_url", params, scope, required="access_token", dpop_key=dpop_key
    )


async def endpoint_request(
    http: HttpExecutor,
    auth: AuthSetting,
    endpoint: Endpoint,
    params: dict[str, str],
    scope: Scope,
    *,
    required: str,
    dpop_key: str | None = None,
) -> dict[str, Any]:
    """`token_request` for any of the auth's client-authenticated endpoints: the answer must be
    a JSON object with a string `required` field, else `OAuthError`, in which every secret the
    request carried is masked (it becomes a token's `last_error`, shown without a reveal). With
    `dpop_key`, every attempt carries a fresh DPoP proof, and a `use_dpop_nonce` answer is retried
    once."""
    where = f"auth {auth.name}"
    found = await endpoints(http, auth, scope)
    url = getattr(found, endpoint)
    if not url:
        raise SetupError(f"{where} has no {endpoint} (and its issuer's metadata names none)")
    if params.get("grant_type") == JWT_BEARER and "assertion" not in params:
        params = {**params, "assertion": jwt_bearer_assertion(auth, scope, url)}
    form = dict(params)
    if auth.scopes and "scope" not in form:
        form["scope"] = " ".join(auth.scopes)
    if auth.audience:
        form.setdefault("audience", render(auth.audience, scope, f"{where} audience"))
    for key, value in auth.extra_params.items():
        form.setdefault(key, render(value, scope, f"{where} extra_params.{key}"))
    redactor = Redactor()  # learns the secrets of each request as it goes
    for attempt in range(2):
        # A fresh assertion and a fresh proof for every request, retries included.
        credentials = client_credentials(auth, scope, url, found.issuer)
        body = {**form, **credentials.form}
        redactor.add(*credentials.secrets, *(v for k, v in body.items() if k not in _PUBLIC_FORM))
        for name, value in credentials.headers:
            if name.lower() == "authorization":
                redactor.add(value.partition(" ")[2] or value)  # what follows the scheme
        headers = [
            ("Accept", "application/json"),
            ("Content-Type", "application/x-www-form-urlencoded"),
            *credentials.headers,
        ]
        if dpop_key:
            headers.append(("DPoP", dpop.proof(dpop_key, "POST", url)))
        request = HttpRequest(
            method="POST",
            url=url,
            headers=headers,
            body=urlencode(body).encode(),
            timeout=TOKEN_REQUEST_TIMEOUT_S,
            tls=resolve_tls(None, auth.tls),
            proxy=select_proxy(auth.proxy, URL(url)),  # SPEC §10: the auth's proxy, token too
        )
        try:
            response = await http.send(request)
        except HttpFailure as exc:
            raise OAuthError("unreachable", exc.message).redacted(redactor) from None
        new_nonce = dpop_key is not None and dpop.remember_nonce(url, response.headers)
        if attempt == 0 and new_nonce and oauth_error_of(response.body) == "use_dpop_nonce":
            continue
        break
    try:
        if dpop_key and (problem := dpop.nonce_problem(response.headers)):
            raise OAuthError("use_dpop_nonce", problem, response.status)
        payload = _answer(response, endpoint, required)
        if required == "access_token":
            _check_token_type(payload, response.status, dpop_key is not None)
    except OAuthError as exc:
        raise exc.redacted(redactor) from None
    return payload


def _check_token_type(payload: dict[str, Any], status: int, dpop_sent: bool) -> None:
    """RFC 9449 §5: a token asked for with a DPoP proof must come back `token_type: DPoP` (else
    it is an unbound bearer token), and a DPoP token is of no use to a client without the key."""
    token_type = payload.get("token_type")
    is_dpop = isinstance(token_type, str) and token_type.lower() == "dpop"
    shown = str(token_type)[:40] if token_type is not None else "missing"
    if dpop_sent and not is_dpop:
        raise OAuthError(
            "invalid_response",
            f"token_type {shown} though a DPoP proof was sent: the token is not bound to the key",
            status,
        )
    if is_dpop and not dpop_sent:
        raise OAuthError(
            "invalid_response",
            "token_type DPoP but no DPoP proof was sent (set `dpop: true` on the auth)",
            status,
        )


def _says_json(content_type: str) -> bool:
    """`application/json` or a `+json` type (`application/problem+json`)."""
    kind = content_type.lower()
    return kind == "application/json" or kind.endswith("+json")


def _answer(response: HttpResponse, endpoint: Endpoint, required: str) -> dict[str, Any]:
    name = _ENDPOINT_NAMES[endpoint]
    if not response.body:
        raise OAuthError("invalid_response", f"the {name} answered nothing", response.status)
    try:
        payload = json.loads(response.body)
    except ValueError as exc:
        kind = (response.headers.get("Content-Type") or "no content type").split(";")[0].strip()
        said = f"the {name} answered {kind[:60]}"
        if isinstance(exc, json.JSONDecodeError) and _says_json(kind):
            why = f"{said} that does not parse ({json_error(exc)})"
        else:
            why = f"{said}, not JSON"
        raise OAuthError("invalid_response", why, response.status) from None
    if not isinstance(payload, dict):
        raise OAuthError(
            "invalid_response",
            f"the {name} answered a JSON {_json_kind(payload)}, not a JSON object",
            response.status,
        )
    if response.status >= 400 or "error" in payload:
        error = payload.get("error")
        description = payload.get("error_description")
        raise OAuthError(
            error if isinstance(error, str) else "http_error",
            description if isinstance(description, str) else None,
            response.status,
        )
    if not isinstance(payload.get(required), str):
        raise OAuthError(
            "invalid_response", f"no {required} (a string) in the {name}'s answer", response.status
        )
    for field in _HEADER_BOUND:
        value = payload.get(field)
        if isinstance(value, str) and _CONTROL.search(value):
            # RFC 6749 A.12/A.17: printable characters only. Saved, it would be `valid` while
            # every call using it ended on the forbidden character.
            raise OAuthError(
                "invalid_response",
                f"the {name}'s {field} holds a control character (RFC 6749 allows printable"
                " characters only)",
                response.status,
            )
    return payload


_HEADER_BOUND = ("access_token", "refresh_token")
"""Tokens apimd sends back (in a header, a form), where a control character is an injection or
an error."""
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


def _json_kind(value: object) -> str:
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if value is None:
        return "null"
    return "number" if isinstance(value, int | float) and not isinstance(value, bool) else "boolean"


def grant_params(auth: AuthSetting, runtime: TokenRuntime, scope: Scope) -> dict[str, str] | None:
    """The form for refreshing without a person: refresh_token when held, else the auth's own
    grant when it needs nobody (client_credentials, password); None when a sign-in is needed."""
    refresh_token = runtime.variables.get("REFRESH_TOKEN")
    if refresh_token:
        return {"grant_type": "refresh_token", "refresh_token": refresh_token}
    if auth.grant == "client_credentials":
        return {"grant_type": "client_credentials"}
    if auth.grant == "jwt_bearer":
        return {"grant_type": JWT_BEARER}
    if auth.grant == "password":
        return {
            "grant_type": "password",
            "username": render(auth.username or "", scope, f"auth {auth.name} username"),
            "password": render(auth.password or "", scope, f"auth {auth.name} password"),
        }
    return None


async def builtin_refresh(
    http: HttpExecutor, auth: AuthSetting, runtime: TokenRuntime, scope: Scope
) -> RefreshOutcome:
    """Refresh an oauth2 token with the built-in grants (DPoP-bound with the token's key)."""
    try:
        params = grant_params(auth, runtime, scope)
        if params is None:
            return RefreshOutcome(
                needs_sign_in=True,
                error=f"no refresh token held and grant {auth.grant} needs a person to sign in",
            )
        payload = await token_request(http, auth, params, scope, dpop_key=runtime.dpop_key)
    except OAuthError as exc:
        return RefreshOutcome(needs_sign_in=exc.needs_sign_in, error=str(exc))
    except SetupError as exc:
        return RefreshOutcome(error=str(exc))
    variables = token_variables(payload)
    if "EXPIRES_IN" not in variables:
        variables.setdefault("ACCESS_TOKEN", str(payload["access_token"]))
    return RefreshOutcome(variables=variables)
