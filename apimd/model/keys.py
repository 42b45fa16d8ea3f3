"""Private keys in project files (`client_key`): PEM or JWK, RSA, EC P-256 or Ed25519, checked when
the project is loaded so a wrong key is a load error naming the field, not a failed run."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from pydantic import AfterValidator

from apimd.model.common import SECRET, SECRET_MASK

AssertionAlg = Literal["RS256", "PS256", "ES256", "EdDSA"]

_JWK_TYPES = {"RSA": None, "EC": "P-256", "OKP": "Ed25519"}
_NOT_A_KEY = "not a PEM private key or a private JWK (RSA, EC P-256 or Ed25519)"


def check_private_key(value: str) -> str:
    """`value` unchanged when it is a usable private key (or a mask or template to fill later)."""
    text = value.strip()
    if value == SECRET_MASK or "%%" in value:
        return value
    if text.startswith("{"):
        _check_jwk(text)
    else:
        _check_pem(text)
    return value


def _check_pem(text: str) -> None:
    if "PRIVATE KEY-----" not in text:
        raise ValueError(_NOT_A_KEY)
    try:
        key = load_pem_private_key(text.encode(), password=None)
    except TypeError:
        raise ValueError(
            "an encrypted private key: give it unencrypted (apimd stores it encrypted)"
        ) from None
    except ValueError:
        raise ValueError("not a PEM private key") from None
    if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name != "secp256r1":
        raise ValueError(f"EC keys must be on P-256, not {key.curve.name}")
    if not isinstance(
        key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
    ):
        raise ValueError("unsupported key type: use RSA, EC P-256 or Ed25519")


def _check_jwk(text: str) -> None:
    try:
        jwk: Any = json.loads(text)
    except ValueError:
        raise ValueError(_NOT_A_KEY) from None
    if not isinstance(jwk, dict) or jwk.get("kty") not in _JWK_TYPES:
        raise ValueError(_NOT_A_KEY)
    curve = _JWK_TYPES[jwk["kty"]]
    if curve is not None and jwk.get("crv") != curve:
        raise ValueError(f"a {jwk['kty']} JWK must be on {curve}")
    if not isinstance(jwk.get("d"), str):
        raise ValueError("a public JWK: the private key (with `d`) is needed to sign")


PrivateKeySecret = Annotated[str, SECRET, AfterValidator(check_private_key)]
"""A secret private key, PEM or JWK text."""
