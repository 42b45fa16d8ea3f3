"""The variables of a sign-in flow: STATE, CODE_VERIFIER, CODE_CHALLENGE (PKCE S256), CALLBACK_URL."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets

_STATE_TEMPLATE = re.compile(r"^\s*(%%STATE%%|\{\{\s*STATE\s*\}\}|__STATE__)\s*$", re.IGNORECASE)


def code_challenge(verifier: str) -> str:
    """The S256 PKCE challenge of `verifier` (RFC 7636 §4.2)."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def signin_variables(
    callback_url: str | None, *, state: str | None = None, verifier: str | None = None
) -> dict[str, str]:
    """Fresh (or given) sign-in variables: a 256-bit state and a 64-char PKCE verifier."""
    verifier = verifier or secrets.token_urlsafe(48)
    return {
        "STATE": state or secrets.token_urlsafe(32),
        "CODE_VERIFIER": verifier,
        "CODE_CHALLENGE": code_challenge(verifier),
        "CALLBACK_URL": callback_url or "",
    }


def is_state_template(value: str) -> bool:
    """Whether a browser step's `state` param is exactly the STATE template."""
    return bool(_STATE_TEMPLATE.match(value))
