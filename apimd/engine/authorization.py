"""The browser's authorization URL of an authorization_code sign-in: the plain query, or with PAR
(RFC 9126) only `client_id` and `request_uri` after the parameters were pushed with client
authentication (and a DPoP proof when the token is DPoP-bound)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlencode

from apimd.engine.discovery import endpoints
from apimd.engine.errors import SetupError
from apimd.engine.http import HttpExecutor
from apimd.engine.oauth2 import OAuthError, endpoint_request
from apimd.engine.template import Scope
from apimd.model.resources import AuthSetting

# A `request_uri` goes into the browser's address bar: printable ASCII, no spaces, and short
# enough for any browser (RFC 9126 §2.2 shows a URN of some 60 characters).
MAX_REQUEST_URI = 2048
_URI_CHARS = re.compile(r"[\x21-\x7e]+")


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
        query = {"client_id": query["client_id"], "request_uri": _request_uri(answer)}
    base = found.authorize_url
    url = f"{base}{'&' if '?' in base else '?'}{urlencode(query)}"
    return AuthorizationRequest(url=url, issuer=found.issuer, pushed=pushed)


def _request_uri(answer: dict[str, object]) -> str:
    """The PAR answer's `request_uri`, when a browser can carry it. Raises `OAuthError`."""
    uri = str(answer["request_uri"])
    where = "the pushed authorization request endpoint's request_uri"
    if len(uri) > MAX_REQUEST_URI:
        raise OAuthError(
            "invalid_response", f"{where} is {len(uri)} characters long (at most {MAX_REQUEST_URI})"
        )
    if not _URI_CHARS.fullmatch(uri):
        raise OAuthError(
            "invalid_response", f"{where} is empty or holds spaces or control characters"
        )
    return uri
