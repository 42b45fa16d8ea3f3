"""The one place apimd signs: client assertions, jwt_bearer grants and DPoP proofs (RFC 7523, 9449),
over joserfc. Its warnings (EdDSA's deprecation, short keys) are handled here: a weak key is logged
once when it is loaded, never raised inside a request."""

from __future__ import annotations

import contextlib
import json
import logging
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, OctKey, OKPKey, RSAKey

from apimd.engine.errors import SetupError
from apimd.model.common import SECRET_MASK
from apimd.model.resources import AuthSetting

log = logging.getLogger(__name__)

AsymmetricKey = RSAKey | ECKey | OKPKey
_DEFAULT_ALG = {"RSA": "PS256", "EC": "ES256", "OKP": "EdDSA"}
_KEY_CLASSES: dict[str, type[AsymmetricKey]] = {"RSA": RSAKey, "EC": ECKey, "OKP": OKPKey}
_MIN_RSA_BITS = 2048
_MIN_HMAC_BYTES = 32


@dataclass(frozen=True)
class SigningKey:
    """A private key ready to sign, with its algorithm and optional `kid`."""

    key: AsymmetricKey | OctKey
    alg: str
    kid: str | None = None

    def public_jwk(self) -> dict[str, Any]:
        """The public half as a JWK (the `jwk` header of a DPoP proof)."""
        return dict(self.key.as_dict(private=False))

    def thumbprint(self) -> str:
        """RFC 7638 SHA-256 thumbprint, base64url."""
        return str(self.key.thumbprint())


def _quietly(fn: Any, *args: Any, **kwargs: Any) -> Any:
    # joserfc warns (SecurityWarning) about EdDSA and short keys: apimd reports weak keys itself,
    # once at load; a warning inside a request would be an error under `filterwarnings=error`.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


@lru_cache(maxsize=256)
def load_signing_key(
    text: str, *, kid: str | None = None, alg: str | None = None, where: str = "client_key"
) -> SigningKey:
    """Parse a PEM or JWK private key (RSA, EC P-256, Ed25519). Raises `SetupError` naming `where`."""
    stripped = text.strip()
    try:
        if stripped.startswith("{"):
            data = json.loads(stripped)
            kty = data.get("kty") if isinstance(data, dict) else None
            if kty not in _KEY_CLASSES:
                raise ValueError("not a private JWK")
            key: AsymmetricKey = _quietly(_KEY_CLASSES[kty].import_key, data)
            kid = kid or data.get("kid")
        else:
            parsed = load_pem_private_key(stripped.encode(), password=None)
            kty = _kty_of(parsed)
            key = _quietly(_KEY_CLASSES[kty].import_key, stripped)
    except (ValueError, TypeError, JoseError) as exc:
        raise SetupError(f"{where}: not a PEM private key or a private JWK ({exc})") from None
    if not key.is_private:
        raise SetupError(f"{where}: a public key; the private key is needed to sign")
    _report_if_weak(key, where)
    return SigningKey(key=key, alg=alg or _DEFAULT_ALG[kty], kid=kid)


def report_weak_keys(auths: Iterable[AuthSetting]) -> None:
    """Load every inline `client_key` now, so a weak one is logged once when the project loads
    (a key given by template is checked at its first use)."""
    for auth in auths:
        key = auth.client_key
        if key and "%%" not in key and key != SECRET_MASK:
            with contextlib.suppress(SetupError):
                load_signing_key(
                    key,
                    kid=auth.client_key_id,
                    alg=auth.client_assertion_alg,
                    where=f"auth {auth.name} client_key",
                )


def hmac_key(secret: str) -> SigningKey:
    """The HS256 key of `client_secret_jwt`."""
    if len(secret.encode()) < _MIN_HMAC_BYTES:
        _warn_once(f"client_secret is shorter than {_MIN_HMAC_BYTES} bytes: a weak HS256 key")
    return SigningKey(key=_quietly(OctKey.import_key, secret.encode()), alg="HS256")


def sign(key: SigningKey, claims: dict[str, Any], *, header: dict[str, Any] | None = None) -> str:
    """A compact JWS of `claims` (typ JWT unless `header` says otherwise)."""
    protected: dict[str, Any] = {"alg": key.alg, "typ": "JWT", **(header or {})}
    if key.kid and "jwk" not in protected:
        protected.setdefault("kid", key.kid)
    try:
        return str(_quietly(jwt.encode, protected, claims, key.key, algorithms=[key.alg]))
    except JoseError as exc:
        raise SetupError(f"cannot sign with {key.alg}: {exc}") from None
    except UnicodeError:  # a claim holding a lone surrogate (undecodable bytes)
        raise SetupError(f"cannot sign with {key.alg}: a claim is not valid Unicode") from None


def generate_key_jwk() -> str:
    """A new ES256 private key as JWK text (a token's DPoP key)."""
    key = ECKey.generate_key("P-256", private=True)
    return json.dumps(key.as_dict(private=True))


def _kty_of(key: object) -> str:
    if isinstance(key, rsa.RSAPrivateKey):
        return "RSA"
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return "EC"
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return "OKP"
    raise ValueError("unsupported key type: use RSA, EC P-256 or Ed25519")


def _report_if_weak(key: AsymmetricKey, where: str) -> None:
    if isinstance(key, RSAKey):
        bits = key.raw_value.key_size
        if bits < _MIN_RSA_BITS:
            # Once per key: `load_signing_key` is cached.
            log.warning(
                "%s: a %d-bit RSA key is weak; use %d bits or more", where, bits, _MIN_RSA_BITS
            )


_warned: set[str] = set()


def _warn_once(message: str) -> None:
    if message not in _warned:
        _warned.add(message)
        log.warning("%s", message)
