"""Pending sign-ins (SPEC §5): what to run when the browser comes back to /tokens/callback."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel, Field, model_validator

SIGNIN_TTL = timedelta(minutes=10)


def new_state() -> str:
    """A random 256-bit `STATE`."""
    return secrets.token_urlsafe(32)


class PendingSignIn(BaseModel):
    """A sign-in waiting for its callback. Single use; expires 10 minutes after it was made."""

    id: str = Field(default_factory=lambda: secrets.token_hex(8))
    state: str = Field(default_factory=new_state)
    url: str
    token: str | None = None
    auth: str | None = None
    workflow: str | None = None
    remaining_steps: list[str] = Field(default_factory=list)
    variables: dict[str, str] = Field(default_factory=dict)
    code_verifier: str | None = None
    dpop_key: str | None = None
    """The token's DPoP key, made before the sign-in so PAR and the code exchange are bound to it."""
    callback_url: str | None = None
    """The redirect URI the sign-in started with: the code exchange repeats it, whichever agent
    the browser or the paste reaches (SPEC §13)."""
    data: dict[str, Any] = Field(default_factory=dict)
    """Anything else the continuation needs (e.g. the device flow's polling details)."""
    created_at: datetime
    expires_at: datetime

    @model_validator(mode="before")
    @classmethod
    def _expiry(cls, data: Any) -> Any:
        """`created_at` defaults to now, `expires_at` to `SIGNIN_TTL` after it."""
        if isinstance(data, dict):
            data = dict(data)
            created = data.setdefault("created_at", datetime.now(UTC))
            if "expires_at" not in data and isinstance(created, datetime):
                data["expires_at"] = created + SIGNIN_TTL
        return data
