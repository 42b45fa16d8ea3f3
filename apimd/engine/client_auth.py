"""OAuth client authentication (SPEC §10 `client_auth`) for every request apimd makes to an
authorization server: token, PAR, device and revocation endpoints alike, a fresh assertion each time."""

from __future__ import annotations

import base64
import secrets
import time
from dataclasses import dataclass, field
from urllib.parse import quote

from apimd.engine.signer import SigningKey, hmac_key, load_signing_key, sign
from apimd.engine.template import Scope, render
from apimd.model.resources import AuthSetting

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASSERTION_LIFETIME_S = 60
GRANT_LIFETIME_S = 300


@dataclass
class ClientCredentials:
    """What client authentication adds to one request: headers, form fields, secrets to redact."""

    headers: list[tuple[str, str]] = field(default_factory=list)
    form: dict[str, str] = field(default_factory=dict)
    secrets: list[str] = field(default_factory=list)


def _opt(value: str | None, scope: Scope, where: str) -> str | None:
    return None if value is None else render(value, scope, where)


def client_credentials(
    auth: AuthSetting, scope: Scope, endpoint_url: str, issuer: str | None
) -> ClientCredentials:
    """The client authentication of `auth` for a request to `endpoint_url`."""
    where = f"auth {auth.name}"
    client_id = _opt(auth.client_id, scope, f"{where} client_id") or ""
    client_secret = _opt(auth.client_secret, scope, f"{where} client_secret")
    out = ClientCredentials()
    method = auth.client_auth
    if method == "basic" and client_secret is not None:
        pair = f"{quote(client_id, safe='')}:{quote(client_secret, safe='')}"
        out.headers.append(("Authorization", "Basic " + base64.b64encode(pair.encode()).decode()))
        out.secrets.append(client_secret)
        return out
    out.form["client_id"] = client_id
    if method in ("basic", "body") and client_secret is not None:
        out.form["client_secret"] = client_secret
        out.secrets.append(client_secret)
    elif method in ("client_secret_jwt", "private_key_jwt"):
        audience = _opt(auth.client_assertion_aud, scope, f"{where} client_assertion_aud")
        now = int(time.time())
        claims = {
            "iss": client_id,
            "sub": client_id,
            "aud": audience or issuer or endpoint_url,
            "jti": secrets.token_urlsafe(24),
            "iat": now,
            "exp": now + ASSERTION_LIFETIME_S,
        }
        if method == "client_secret_jwt":
            key = hmac_key(client_secret or "")
            out.secrets.append(client_secret or "")
        else:
            key = signing_key(auth, scope)
        out.form["client_assertion_type"] = ASSERTION_TYPE
        out.form["client_assertion"] = sign(key, claims)
    return out


def signing_key(auth: AuthSetting, scope: Scope) -> SigningKey:
    """The auth's `client_key`, loaded (and checked) once."""
    where = f"auth {auth.name} client_key"
    text = render(auth.client_key or "", scope, where)
    return load_signing_key(
        text, kid=auth.client_key_id, alg=auth.client_assertion_alg, where=where
    )


def jwt_bearer_assertion(auth: AuthSetting, scope: Scope, token_url: str) -> str:
    """The RFC 7523 §2.1 grant assertion: signed with `client_key`, merged with `assertion_claims`."""
    client_id = _opt(auth.client_id, scope, f"auth {auth.name} client_id") or ""
    now = int(time.time())
    claims: dict[str, object] = {
        "iss": client_id,
        "sub": client_id,
        "aud": _opt(auth.client_assertion_aud, scope, f"auth {auth.name} client_assertion_aud")
        or token_url,
        "iat": now,
        "exp": now + GRANT_LIFETIME_S,
        "jti": secrets.token_urlsafe(24),
    }
    if auth.scopes:
        claims["scope"] = " ".join(auth.scopes)
    claims.update(auth.assertion_claims)
    return sign(signing_key(auth, scope), claims)
