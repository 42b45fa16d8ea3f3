"""DPoP proofs (RFC 9449): one key pair per token, a fresh proof per request and per redirect hop,
`ath` on resource requests, and the last `DPoP-Nonce` each server gave, remembered per origin."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import time
from collections.abc import Mapping
from urllib.parse import urlsplit, urlunsplit

from apimd.engine.http import HttpResponse
from apimd.engine.signer import load_signing_key, sign

_nonces: dict[str, str] = {}
# RFC 9449 §8.1: nonce = 1*NQCHAR (printable ASCII but the quote and backslash). A longer or garbled
# `DPoP-Nonce` is never sent back in a proof: no retry, and the error says why.
MAX_NONCE = 1024
_NQCHARS = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def htu(url: str) -> str:
    """The `htu` claim: the URL without query and fragment."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def access_token_hash(access_token: str) -> str:
    """The `ath` claim: base64url SHA-256 of the access token."""
    digest = hashlib.sha256(access_token.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def proof(key_jwk: str, method: str, url: str, *, access_token: str | None = None) -> str:
    """A fresh DPoP proof for one request, with the server's remembered nonce if any."""
    key = load_signing_key(key_jwk, where="DPoP key")
    claims: dict[str, object] = {
        "jti": secrets.token_urlsafe(24),
        "htm": method.upper(),
        "htu": htu(url),
        "iat": int(time.time()),
    }
    if nonce := _nonces.get(_origin(url)):
        claims["nonce"] = nonce
    if access_token is not None:
        claims["ath"] = access_token_hash(access_token)
    return sign(key, claims, header={"typ": "dpop+jwt", "jwk": key.public_jwk()})


def nonce_problem(headers: Mapping[str, str]) -> str | None:
    """Why the response's `DPoP-Nonce` cannot be used, if it has one that cannot."""
    nonce = headers.get("DPoP-Nonce")
    if nonce is None:
        return None
    if len(nonce) > MAX_NONCE:
        return f"the server's DPoP-Nonce is {len(nonce)} characters long (at most {MAX_NONCE})"
    if not _NQCHARS.fullmatch(nonce):
        return "the server's DPoP-Nonce is empty or holds characters a nonce may not (RFC 9449)"
    return None


def remember_nonce(url: str, headers: Mapping[str, str]) -> bool:
    """Keep the `DPoP-Nonce` a response gave; True when it is new (a retry may succeed). A nonce
    that is too long or not of NQCHARs is ignored (see `nonce_problem`)."""
    nonce = headers.get("DPoP-Nonce")
    if not nonce or _nonces.get(_origin(url)) == nonce or nonce_problem(headers):
        return False
    _nonces[_origin(url)] = nonce
    return True


def thumbprint(key_jwk: str) -> str:
    """The RFC 7638 thumbprint of a token's DPoP key (`jkt`)."""
    return load_signing_key(key_jwk, where="DPoP key").thumbprint()


def dpop_nonce_asked(response: HttpResponse) -> bool:
    """Whether a resource server refused a proof for want of a (new) nonce, now remembered."""
    challenge = response.headers.get("WWW-Authenticate", "")
    return (
        response.status in (400, 401)
        and "use_dpop_nonce" in challenge
        and remember_nonce(response.final_url, response.headers)
    )
