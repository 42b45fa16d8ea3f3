"""The browser's authorization URL of an authorization_code sign-in: the plain query, or with PAR
(RFC 9126) only `client_id` and `request_uri` after the parameters were pushed with client
authentication (and a DPoP proof when the token is DPoP-bound)."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode

from apimd.engine.discovery import endpoints
from apimd.engine.errors import SetupError
from apimd.engine.http import HttpExecutor
from apimd.engine.oauth2 import endpoint_request
from apimd.engine.template import Scope
from apimd.model.resources import AuthSetting


@dataclass(frozen=True)
class AuthorizationRequest:
    """Where to send the browser, and the issuer its answer must name (RFC 9207), if known."""

    url: str
    issuer: str | None
    pushed: bool


async def authorization_request(
    http: HttpExecutor,
    auth: AuthSetting,
    scope: Scope,
    query: dict[str, str],
    dpop_key: str | None,
) -> AuthorizationRequest:
    """The authorization request for `query`, pushed first when `par` (or the metadata) asks.
    Raises `SetupError` or `OAuthError`."""
    found = await endpoints(http, auth, scope)
    if not found.authorize_url:
        raise SetupError(f"auth {auth.name} has no authorize_url")
    pushed = auth.par if auth.par is not None else found.require_par
    if pushed:
        answer = await endpoint_request(
            http, auth, "par_url", query, scope, required="request_uri", dpop_key=dpop_key
        )
        query = {"client_id": query["client_id"], "request_uri": str(answer["request_uri"])}
    base = found.authorize_url
    url = f"{base}{'&' if '?' in base else '?'}{urlencode(query)}"
    return AuthorizationRequest(url=url, issuer=found.issuer, pushed=pushed)
