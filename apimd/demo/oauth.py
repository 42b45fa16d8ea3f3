"""The demo authorization server's endpoints (RFC 6749, 7636 PKCE, 8628 device flow, 9207 iss,
9126 PAR, 9449 DPoP, 7523 private_key_jwt for the FAPI client; discovery metadata).

`GET/POST /oauth/authorize` (login form, code flow), `POST /oauth/token` (client_credentials,
password, refresh_token, authorization_code, device_code), `POST /oauth/device_authorization`,
`GET/POST /device` (where a person approves a device).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal
from urllib.parse import unquote, urlencode, urlsplit, urlunsplit

from aiohttp import web

from apimd.demo import pages
from apimd.demo.fapi import Refused
from apimd.demo.state import STATE_KEY, GrantError, TokenServerState

DEVICE_CODE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
_LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


class _Untrusted(Exception):
    """The request names no known client or a redirect URI we will not send anyone to: the
    person gets an error page, never a redirect (RFC 6749 §4.1.2.1)."""


@dataclass(frozen=True)
class AuthorizationRequest:
    """An authorization request whose client and redirect URI are known to be acceptable."""

    client_id: str
    redirect_uri: str
    state: str | None
    scope: str | None
    response_type: str
    code_challenge: str | None
    code_challenge_method: str | None
    response_mode: Literal["query", "fragment"]
    dpop_jkt: str | None = None

    @classmethod
    def read(cls, params: Mapping[str, str], server: TokenServerState) -> AuthorizationRequest:
        """Check the client and the redirect URI; raise `_Untrusted` when either is wrong."""
        client_id = params.get("client_id", "")
        if client_id not in (server.client_id, server.fapi.client_id):
            raise _Untrusted(f"unknown client_id {client_id!r}")
        redirect_uri = params.get("redirect_uri", "")
        if not _is_loopback_http(redirect_uri):
            raise _Untrusted(
                "redirect_uri must be an http URL on 127.0.0.1 or localhost (any port)"
            )
        mode = params.get("response_mode") or ("fragment" if server.fragment_response else "query")
        return cls(
            client_id=client_id,
            redirect_uri=redirect_uri,
            state=params.get("state"),
            scope=params.get("scope") or None,
            response_type=params.get("response_type", ""),
            code_challenge=params.get("code_challenge") or None,
            code_challenge_method=params.get("code_challenge_method") or None,
            response_mode="fragment" if mode == "fragment" else "query",
            dpop_jkt=params.get("dpop_jkt") or None,
        )

    def problem(self, server: TokenServerState) -> tuple[str, str] | None:
        """The OAuth error to send back to the client for an unacceptable request, if any."""
        if self.response_type != "code":
            return "unsupported_response_type", "only response_type=code is supported"
        if self.code_challenge is None:
            if server.require_pkce:
                return "invalid_request", "PKCE is required: send an S256 code_challenge"
        elif self.code_challenge_method != "S256":
            return "invalid_request", "code_challenge_method must be S256"
        return None

    def fields(self) -> dict[str, str]:
        """The request as the login form's hidden fields."""
        values = {
            "response_type": self.response_type,
            "client_id": self.client_id,
            "redirect_uri": self.redirect_uri,
            "state": self.state,
            "scope": self.scope,
            "code_challenge": self.code_challenge,
            "code_challenge_method": self.code_challenge_method,
            "response_mode": self.response_mode,
            "dpop_jkt": self.dpop_jkt,
        }
        return {k: v for k, v in values.items() if v is not None}


def _is_loopback_http(uri: str) -> bool:
    try:
        parts = urlsplit(uri)
        _ = parts.port  # raises on a malformed port
    except ValueError:
        return False
    return (
        parts.scheme == "http"
        and parts.hostname in _LOOPBACK_HOSTS
        and parts.username is None
        and not parts.fragment
    )


def _origin(request: web.Request) -> str:
    server = request.app[STATE_KEY]
    return server.issuer or f"{request.scheme}://{request.host}"


def _redirect(
    request: web.Request, auth: AuthorizationRequest, params: dict[str, str]
) -> web.Response:
    answer = dict(params)
    if auth.state is not None:
        answer["state"] = auth.state
    if request.app[STATE_KEY].send_iss:
        answer["iss"] = _origin(request)
    encoded = urlencode(answer)
    parts = urlsplit(auth.redirect_uri)
    if auth.response_mode == "fragment":
        location = urlunsplit(parts._replace(fragment=encoded))
    else:
        query = f"{parts.query}&{encoded}" if parts.query else encoded
        location = urlunsplit(parts._replace(query=query))
    return web.Response(
        status=302,
        headers={
            "Location": location,
            "Cache-Control": "no-store",
            "Referrer-Policy": "no-referrer",
        },
    )


def _account(server: TokenServerState) -> tuple[str, str]:
    return server.username, server.password


async def authorize_form(request: web.Request) -> web.Response:
    """GET /oauth/authorize: the login form for a valid request."""
    server = request.app[STATE_KEY]
    try:
        auth = AuthorizationRequest.read(server.fapi.pulled(dict(request.query)), server)
    except (_Untrusted, Refused) as exc:
        return pages.message_page("Sign-in request refused", str(exc), 400)
    if problem := auth.problem(server):
        return _redirect(request, auth, {"error": problem[0], "error_description": problem[1]})
    return pages.login_page(auth.client_id, auth.fields(), _account(server))


async def authorize_submit(request: web.Request) -> web.Response:
    """POST /oauth/authorize: the login form sent back; the hidden fields are checked again."""
    server = request.app[STATE_KEY]
    form = await _form(request)
    try:
        auth = AuthorizationRequest.read(form, server)
    except _Untrusted as exc:
        return pages.message_page("Sign-in request refused", str(exc), 400)
    if problem := auth.problem(server):
        return _redirect(request, auth, {"error": problem[0], "error_description": problem[1]})
    if form.get("deny"):
        return _redirect(
            request,
            auth,
            {"error": "access_denied", "error_description": "the person denied the sign-in"},
        )
    username = form.get("username", "")
    if not server.check_user(username, form.get("password", "")):
        return pages.login_page(
            auth.client_id,
            auth.fields(),
            _account(server),
            error="Wrong username or password.",
            username=username,
        )
    code = server.new_code(
        auth.client_id, auth.redirect_uri, auth.code_challenge, auth.scope, auth.dpop_jkt
    )
    return _redirect(request, auth, {"code": code})


def _client(request: web.Request, form: Mapping[str, str]) -> tuple[str, str]:
    header = request.headers.get("Authorization", "")
    if header.startswith("Basic "):
        try:
            pair = base64.b64decode(header[6:], validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return "", ""
        user, _, password = pair.partition(":")
        return unquote(user), unquote(password)
    return form.get("client_id", ""), form.get("client_secret", "")


def _authenticated(request: web.Request, form: Mapping[str, str]) -> str | None:
    """The client_id when the client authenticated (Basic or in the body), else None."""
    server = request.app[STATE_KEY]
    if _client(request, form) != (server.client_id, server.client_secret):
        return None
    return server.client_id


def _oauth_error(error: str, status: int = 400, description: str | None = None) -> web.Response:
    body: dict[str, str] = {"error": error}
    if description:
        body["error_description"] = description
    return web.json_response(body, status=status, headers={"Cache-Control": "no-store"})


async def _form(request: web.Request) -> dict[str, str]:
    return {k: v for k, v in (await request.post()).items() if isinstance(v, str)}


async def token_endpoint(request: web.Request) -> web.Response:
    """POST /oauth/token."""
    server = request.app[STATE_KEY]
    server.token_requests += 1
    if server.token_delay_s:
        await asyncio.sleep(server.token_delay_s)
    form = await _form(request)
    grant = form.get("grant_type", "")
    server.grants.append(grant)
    if server.fail_next > 0:
        server.fail_next -= 1
        return _oauth_error("temporarily_unavailable", 503)
    if server.invalid_grant:
        return _oauth_error("invalid_grant", description="the grant was revoked")
    client = _client_of(request, form)
    if isinstance(client, web.Response):
        return client
    client_id, jkt = client
    try:
        payload = _grant(server, client_id, grant, form, jkt)
    except GrantError as exc:
        return _oauth_error(exc.error, exc.status, exc.description)
    return web.json_response(payload, headers={"Cache-Control": "no-store"})


def _client_of(request: web.Request, form: dict[str, str]) -> tuple[str, str | None] | web.Response:
    """(client_id, DPoP jkt) of an authenticated client, else the error answer to send."""
    try:
        client_id, jkt = _fapi_checks(request, form)
    except Refused as exc:
        return _refused(request.app[STATE_KEY], exc)
    if client_id is None:
        return _oauth_error("invalid_client", 401)
    return client_id, jkt


def _fapi_checks(request: web.Request, form: dict[str, str]) -> tuple[str | None, str | None]:
    """(client_id, DPoP jkt) of a request to a client-authenticated endpoint: the FAPI client
    must send a valid assertion and DPoP proof; other clients a secret (and a proof if any)."""
    server = request.app[STATE_KEY]
    fapi = server.fapi
    jkt = None
    if request.headers.get("DPoP") or form.get("client_id") == fapi.client_id:
        jkt = fapi.proof(request.headers.get("DPoP"), "POST", str(request.url), None)
    if form.get("client_id") != fapi.client_id:
        return _authenticated(request, form), jkt
    origin = _origin(request)
    fapi.authenticate(form, {origin, f"{origin}/oauth/token", f"{origin}/oauth/par"})
    return fapi.client_id, jkt


def _refused(server: TokenServerState, exc: Refused) -> web.Response:
    server.fapi.refused.append(str(exc))
    response = _oauth_error(
        exc.error, 401 if exc.error == "invalid_client" else 400, exc.description
    )
    if exc.error == "use_dpop_nonce" and server.fapi.dpop_nonce:
        response.headers["DPoP-Nonce"] = server.fapi.dpop_nonce
    return response


async def pushed_authorization(request: web.Request) -> web.Response:
    """POST /oauth/par (RFC 9126): keep the request's parameters, answer a request_uri."""
    server = request.app[STATE_KEY]
    form = await _form(request)
    client = _client_of(request, form)
    if isinstance(client, web.Response):
        return client
    _, jkt = client
    for key in ("client_secret", "client_assertion", "client_assertion_type"):
        form.pop(key, None)
    uri = server.fapi.push(form, jkt)
    return web.json_response({"request_uri": uri, "expires_in": 60}, status=201)


async def metadata(request: web.Request) -> web.Response:
    """GET /.well-known/openid-configuration (and RFC 8414's name for it)."""
    origin = _origin(request)
    return web.json_response(
        {
            "issuer": origin,
            "authorization_endpoint": f"{origin}/oauth/authorize",
            "token_endpoint": f"{origin}/oauth/token",
            "pushed_authorization_request_endpoint": f"{origin}/oauth/par",
            "device_authorization_endpoint": f"{origin}/oauth/device_authorization",
            "authorization_response_iss_parameter_supported": request.app[STATE_KEY].send_iss,
            "dpop_signing_alg_values_supported": ["ES256"],
            "token_endpoint_auth_methods_supported": [
                "client_secret_basic",
                "client_secret_post",
                "private_key_jwt",
            ],
        }
    )


def _grant(
    server: TokenServerState,
    client_id: str,
    grant: str,
    form: Mapping[str, str],
    jkt: str | None = None,
) -> dict[str, object]:
    if grant == "client_credentials":
        return server.issue(jkt=jkt)
    if grant == "password":
        if not server.check_user(form.get("username", ""), form.get("password", "")):
            raise GrantError("invalid_grant", "wrong username or password")
        return server.issue()
    if grant == "refresh_token":
        return server.refresh(form.get("refresh_token", ""), jkt)
    if grant == "authorization_code":
        return server.exchange_code(
            client_id,
            form.get("code", ""),
            form.get("redirect_uri", ""),
            form.get("code_verifier"),
            jkt,
        )
    if grant == DEVICE_CODE_GRANT:
        return server.poll_device(client_id, form.get("device_code", ""), jkt)
    raise GrantError("unsupported_grant_type")


async def device_authorization(request: web.Request) -> web.Response:
    """POST /oauth/device_authorization (RFC 8628 §3.1–3.2)."""
    server = request.app[STATE_KEY]
    form = await _form(request)
    client_id = _authenticated(request, form)
    if client_id is None:
        return _oauth_error("invalid_client", 401)
    grant = server.start_device(client_id, form.get("scope") or None)
    verification_uri = f"{_origin(request)}/device"
    return web.json_response(
        {
            "device_code": grant.device_code,
            "user_code": grant.user_code,
            "verification_uri": verification_uri,
            "verification_uri_complete": f"{verification_uri}?{urlencode({'user_code': grant.user_code})}",
            "expires_in": server.device_expires_in,
            "interval": server.device_interval,
        },
        headers={"Cache-Control": "no-store"},
    )


async def device_form(request: web.Request) -> web.Response:
    """GET /device: enter the user code (prefilled from verification_uri_complete)."""
    server = request.app[STATE_KEY]
    return pages.device_page(_account(server), request.query.get("user_code", ""))


async def device_submit(request: web.Request) -> web.Response:
    """POST /device: approve (with the account's credentials) or deny a device sign-in."""
    server = request.app[STATE_KEY]
    form = await _form(request)
    user_code = form.get("user_code", "")
    grant = server.device_by_user_code(user_code)
    if grant is None or grant.status != "pending":
        return pages.device_page(
            _account(server), user_code, error="That code is unknown, used or expired."
        )
    if form.get("action") == "deny":
        server.deny_device(grant.user_code)
        return pages.message_page("Device not connected", "You denied the sign-in.")
    if not server.check_user(form.get("username", ""), form.get("password", "")):
        return pages.device_page(_account(server), user_code, error="Wrong username or password.")
    server.approve_device(grant.user_code)
    return pages.message_page("Device connected", "You can return to your device.")


def add_routes(app: web.Application) -> None:
    """Mount the authorization server's endpoints."""
    app.router.add_get("/oauth/authorize", authorize_form)
    app.router.add_post("/oauth/authorize", authorize_submit)
    app.router.add_post("/oauth/token", token_endpoint)
    app.router.add_post("/oauth/par", pushed_authorization)
    app.router.add_get("/.well-known/openid-configuration", metadata)
    app.router.add_get("/.well-known/oauth-authorization-server", metadata)
    app.router.add_post("/oauth/device_authorization", device_authorization)
    app.router.add_get("/device", device_form)
    app.router.add_post("/device", device_submit)
