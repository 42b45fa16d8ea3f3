"""Template functions (SPEC §10): evaluating a parsed `{{ f(args) | g }}` expression.

Values are text or bytes: hashes and HMACs return bytes, which become lowercase hex when they end
up in text; encoders take bytes as they are and text as UTF-8.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import jwt as pyjwt

from apimd.engine.errors import SetupError

Value = str | bytes


def as_text(value: Value) -> str:
    """Bytes become lowercase hex when they end up in text."""
    return value.hex() if isinstance(value, bytes) else value


def as_bytes(value: Value) -> bytes:
    return value if isinstance(value, bytes) else value.encode()


def _hmac(algorithm: str) -> Callable[[Value, Value], bytes]:
    def sign(key: Value, message: Value) -> bytes:
        return hmac.new(as_bytes(key), as_bytes(message), algorithm).digest()

    return sign


def _hash(algorithm: str) -> Callable[[Value], bytes]:
    def digest(value: Value) -> bytes:
        return hashlib.new(algorithm, as_bytes(value)).digest()

    return digest


def _base64_decode(value: Value) -> bytes:
    text = as_text(value).strip().replace("-", "+").replace("_", "/")
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise SetupError("base64_decode: the value is not base64") from None


def _hex_decode(value: Value) -> bytes:
    try:
        return bytes.fromhex(as_text(value).strip())
    except ValueError:
        raise SetupError("hex_decode: the value is not hexadecimal") from None


_JWT_ALGORITHMS = ("HS256", "HS384", "HS512", "RS256", "PS256", "ES256", "EdDSA")


class Evaluation:
    """The functions for one request: every time value shares `instant` (SPEC §10)."""

    def __init__(self, instant: datetime) -> None:
        self.instant = instant
        self.functions: dict[str, Callable[..., Value]] = {
            "hmac_sha256": _hmac("sha256"),
            "hmac_sha512": _hmac("sha512"),
            "hmac_sha1": _hmac("sha1"),
            "sha256": _hash("sha256"),
            "sha512": _hash("sha512"),
            "sha1": _hash("sha1"),
            "md5": _hash("md5"),
            "base64": lambda v: base64.b64encode(as_bytes(v)).decode(),
            "base64url": lambda v: base64.urlsafe_b64encode(as_bytes(v)).decode().rstrip("="),
            "hex": lambda v: as_bytes(v).hex(),
            "base64_decode": _base64_decode,
            "hex_decode": _hex_decode,
            "hex_to_base64": lambda v: base64.b64encode(_hex_decode(v)).decode(),
            "urlencode": lambda v: quote(as_text(v), safe="-_.~"),
            "upper": lambda v: as_text(v).upper(),
            "lower": lambda v: as_text(v).lower(),
            "trim": lambda v: as_text(v).strip(),
            "now": lambda fmt: self.instant.strftime(as_text(fmt)),
            "unixtime_ms": lambda: str(int(self.instant.timestamp() * 1000)),
            "uuid": lambda: str(uuid.uuid4()),
            "jwt": self._jwt,
        }

    def call(self, name: str, args: list[Value]) -> Value:
        return self.functions[name](*args)

    def _jwt(self, alg: Value, key: Value, claims_json: Value) -> str:
        algorithm = as_text(alg)
        if algorithm not in _JWT_ALGORITHMS:
            raise SetupError(
                f"jwt: algorithm {algorithm!r} is not one of {', '.join(_JWT_ALGORITHMS)}"
            )
        try:
            claims: Any = json.loads(as_text(claims_json))
        except ValueError as exc:
            raise SetupError(f"jwt: the claims are not JSON ({exc.args[0]})") from None
        if not isinstance(claims, dict):
            raise SetupError("jwt: the claims must be a JSON object")
        now = int(self.instant.timestamp())
        claims = {"iat": now, "exp": now + 300, **claims}
        try:
            return pyjwt.encode(claims, key, algorithm=algorithm)
        except (ValueError, TypeError, pyjwt.PyJWTError) as exc:
            raise SetupError(
                f"jwt: the key does not fit {algorithm} ({type(exc).__name__})"
            ) from None


def instant_now() -> datetime:
    """The one instant a request's time values share, with millisecond precision."""
    # Whole milliseconds from the integer clock (`round(time.time(), 3)` formats the float).
    milliseconds = (time.time_ns() + 500_000) // 1_000_000
    return datetime.fromtimestamp(milliseconds / 1000, UTC)
