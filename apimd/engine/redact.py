"""Redaction of secrets in everything recorded or printed (SPEC §3).

STUB — to be implemented.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from apimd.model.common import SECRET_MASK

ALWAYS_REDACTED_HEADERS = frozenset(
    {"authorization", "cookie", "set-cookie", "proxy-authorization"}
)
ALWAYS_REDACTED_KEYS = frozenset(
    {"access_token", "refresh_token", "id_token", "client_secret", "password", "code"}
)
MIN_FREE_TEXT_SECRET = 4

__all__ = ["ALWAYS_REDACTED_HEADERS", "ALWAYS_REDACTED_KEYS", "SECRET_MASK", "Redactor"]


class Redactor:
    """Replaces known secret values with `••••`, in raw, URL-encoded (quote and quote_plus),
    JSON-escaped and base64 forms. Values shorter than 4 characters are not searched for in free
    text (but `value()` still masks an exact match)."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        raise NotImplementedError

    def add(self, *secrets: str) -> None:
        """Learn more secret values (e.g. a token just extracted)."""
        raise NotImplementedError

    def add_basic_credentials(self, username: str, password: str) -> None:
        """Learn the base64 of `username:password` as sent in `Authorization: Basic …`."""
        raise NotImplementedError

    def text(self, text: str) -> str:
        """`text` with every known secret (in every form) replaced by the mask."""
        raise NotImplementedError

    def value(self, value: Any) -> Any:
        """A condition's actual value or a variable: a string equal to or containing a secret is
        masked; lists and dicts are redacted element-wise; other values unchanged."""
        raise NotImplementedError

    def headers(self, headers: Mapping[str, str]) -> dict[str, str]:
        """Headers with Authorization/Cookie/Set-Cookie/Proxy-Authorization values masked, and
        secrets masked in every other value."""
        raise NotImplementedError

    def url(self, url: str) -> str:
        """The URL with the always-redacted query keys masked and secrets masked elsewhere."""
        raise NotImplementedError

    def body(self, body: str, content_type: str | None = None) -> str:
        """A request/response body: for JSON, values of the always-redacted keys (at any depth)
        masked; for form/query bodies the same keys; then secrets masked in the text."""
        raise NotImplementedError
