"""Runtime state the engine keeps per token (not part of the project file)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from apimd.model.resources import TokenState


class TokenRuntime(BaseModel):
    """A token's saved variables and refresh state; secret except `EXPIRES_IN`."""

    name: str
    variables: dict[str, str] = Field(default_factory=dict)
    expires_at: datetime | None = None
    state: TokenState = TokenState.EXPIRED
    saved_at: datetime | None = None
    lifetime_s: float | None = None
    last_refresh: datetime | None = None
    last_error: str | None = None
    backoff_s: float = 0.0
    next_attempt_at: datetime | None = None
    generation: int = 0
    """Counts the saves of new token values (sign-ins, refreshes, webhooks): agents sharing one
    store tell an old token from a new one by it, not by clocks (SPEC §13)."""
    dpop_key: str | None = None
    """The token's own DPoP private key (JWK), made before its first grant and kept (SPEC §10)."""

    @property
    def filled(self) -> bool:
        return bool(self.variables)


class SentAlert(BaseModel):
    """The last alert a notifier sent while it lasts: when, and what it said (to repeat it)."""

    sent_at: datetime
    notice: dict[str, Any] = Field(default_factory=dict)
