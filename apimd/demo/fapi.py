"""The demo authorization server's FAPI side: a client that authenticates with private_key_jwt
(ES256), pushed authorization requests (RFC 9126) and DPoP (RFC 9449), each enforced.

Signatures are checked with `cryptography` directly, not with the JOSE library apimd signs with,
so the demo (and the tests that use it) catch a wrong signature rather than agree with it."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
_MAX_AGE_S = 120


class Refused(Exception):
    """A FAPI check failed; `error` is the OAuth error code to answer with."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def ec_public_key(jwk: dict[str, Any]) -> ec.EllipticCurvePublicKey:
    """A P-256 public key from its JWK."""
    if jwk.get("kty") != "EC" or jwk.get("crv") != "P-256":
        raise Refused("invalid_request", "only EC P-256 keys are accepted")
    numbers = ec.EllipticCurvePublicNumbers(
        int.from_bytes(b64url_decode(jwk["x"]), "big"),
        int.from_bytes(b64url_decode(jwk["y"]), "big"),
        ec.SECP256R1(),
    )
    return numbers.public_key()


def public_jwk(key: ec.EllipticCurvePublicKey) -> dict[str, Any]:
    """The JWK of a P-256 public key."""
    numbers = key.public_numbers()
    return {
        "kty": "EC",
        "crv": "P-256",
        "x": b64url(numbers.x.to_bytes(32, "big")),
        "y": b64url(numbers.y.to_bytes(32, "big")),
    }


def jwk_thumbprint(jwk: dict[str, Any]) -> str:
    """RFC 7638 thumbprint of an EC JWK."""
    members = {k: jwk[k] for k in ("crv", "kty", "x", "y")}
    canonical = json.dumps(members, separators=(",", ":"), sort_keys=True)
    return b64url(hashlib.sha256(canonical.encode()).digest())


def verify_es256(
    token: str, key: ec.EllipticCurvePublicKey | None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(header, claims) of a compact ES256 JWS signed by `key` (or by its own `jwk` header)."""
    try:
        head, body, signature = token.split(".")
        header = json.loads(b64url_decode(head))
        claims = json.loads(b64url_decode(body))
        raw = b64url_decode(signature)
    except (ValueError, TypeError) as exc:
        raise Refused("invalid_request", f"not a compact JWS: {exc}") from None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise Refused("invalid_request", "not a compact JWS")
    if header.get("alg") != "ES256" or len(raw) != 64:
        raise Refused("invalid_request", "only ES256 signatures are accepted")
    if key is None:
        key = ec_public_key(header.get("jwk") or {})
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    try:
        key.verify(der, f"{head}.{body}".encode(), ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise Refused("invalid_client", "the signature does not verify") from None
    return header, claims


@dataclass
class FapiState:
    """The FAPI client, and what the server enforces and remembers."""

    client_id: str = "demo-fapi"
    public_jwk: dict[str, Any] | None = None  # the client's key, registered by `apimd demo`
    require_par: bool = True
    dpop_nonce: str | None = None  # when set, DPoP proofs must carry it
    pushed: dict[str, tuple[dict[str, str], float]] = field(default_factory=dict)
    seen_jti: set[str] = field(default_factory=set)
    bound_tokens: dict[str, str] = field(default_factory=dict)  # access token -> jkt
    refused: list[str] = field(default_factory=list)

    def _fresh_jti(self, claims: dict[str, Any], what: str) -> None:
        jti = claims.get("jti")
        if not isinstance(jti, str) or not jti:
            raise Refused("invalid_request", f"{what} has no jti")
        if jti in self.seen_jti:
            raise Refused("invalid_request", f"{what} replayed (jti seen before)")
        self.seen_jti.add(jti)

    def authenticate(self, form: dict[str, str], audiences: set[str]) -> None:
        """Check a private_key_jwt client assertion (RFC 7523 §3)."""
        if form.get("client_assertion_type") != ASSERTION_TYPE or not form.get("client_assertion"):
            raise Refused("invalid_client", "a client assertion (private_key_jwt) is required")
        if self.public_jwk is None:
            raise Refused("invalid_client", "no key registered for the FAPI client")
        _, claims = verify_es256(form["client_assertion"], ec_public_key(self.public_jwk))
        now = time.time()
        if claims.get("iss") != self.client_id or claims.get("sub") != self.client_id:
            raise Refused("invalid_client", "assertion iss/sub is not the client_id")
        if claims.get("aud") not in audiences:
            raise Refused(
                "invalid_client", f"assertion aud {claims.get('aud')!r} is not this server"
            )
        if not isinstance(claims.get("exp"), int) or claims["exp"] < now:
            raise Refused("invalid_client", "assertion expired or without exp")
        self._fresh_jti(claims, "client assertion")

    def proof(self, header: str | None, method: str, url: str, access_token: str | None) -> str:
        """Check a DPoP proof; return its key's thumbprint (jkt)."""
        if not header:
            raise Refused("invalid_dpop_proof", "a DPoP proof is required")
        jose, claims = verify_es256(header, None)
        if jose.get("typ") != "dpop+jwt":
            raise Refused("invalid_dpop_proof", "typ must be dpop+jwt")
        if claims.get("htm") != method or claims.get("htu") != url.split("?")[0]:
            raise Refused("invalid_dpop_proof", "htm/htu do not match the request")
        if abs(time.time() - float(claims.get("iat", 0))) > _MAX_AGE_S:
            raise Refused("invalid_dpop_proof", "iat too old or in the future")
        if access_token is not None:
            expected = b64url(hashlib.sha256(access_token.encode()).digest())
            if claims.get("ath") != expected:
                raise Refused("invalid_dpop_proof", "ath does not match the access token")
        if self.dpop_nonce is not None and claims.get("nonce") != self.dpop_nonce:
            raise Refused("use_dpop_nonce", "use the DPoP-Nonce this server gave")
        self._fresh_jti(claims, "DPoP proof")
        return jwk_thumbprint(jose["jwk"])

    def push(self, params: dict[str, str], jkt: str | None, lifetime_s: float = 60) -> str:
        """Keep pushed authorization request parameters; return the request_uri."""
        uri = "urn:ietf:params:oauth:request_uri:" + secrets.token_urlsafe(16)
        if jkt:
            params = {**params, "dpop_jkt": jkt}
        self.pushed[uri] = (params, time.time() + lifetime_s)
        return uri

    def pulled(self, query: dict[str, str]) -> dict[str, str]:
        """The authorization request: the pushed one for a `request_uri` (single use)."""
        uri = query.get("request_uri")
        if uri is None:
            if self.require_par and query.get("client_id") == self.client_id:
                raise Refused("invalid_request", "pushed authorization request (PAR) required")
            return query
        params, expires_at = self.pushed.pop(uri, ({}, 0.0))
        if not params or time.time() > expires_at:
            raise Refused("invalid_request_uri", "unknown, used or expired request_uri")
        if query.get("client_id") != params.get("client_id"):
            raise Refused("invalid_request", "client_id differs from the pushed request")
        return params
