"""How a token's state and last refresh read to a person, in the TUI and the CLI alike."""

from __future__ import annotations

from datetime import datetime

from apimd.model.durations import ago
from apimd.model.resources import Token, TokenState

REFRESH_DUE = "refresh due"
NEVER_SIGNED_IN = "never signed in"


def state_word(token: Token, now: datetime) -> str | None:
    """The token's state; `refresh due` for one inside its refresh margin (the daemon counts it
    `expired` so it is refreshed on next use, but its expiry has not come: "expired in 3s")."""
    if token.state is None:
        return None
    if token.state is TokenState.EXPIRED and token.expires_at and token.expires_at > now:
        return REFRESH_DUE
    return token.state.value


def never_signed_in(token: Token) -> bool:
    """A token waiting for its first sign-in: the daemon's failed attempts set `last_refresh`,
    but no values were ever saved."""
    return token.state is TokenState.NEEDS_SIGN_IN and not token.variables


def refreshed_word(token: Token, now: datetime) -> str | None:
    """`3m ago`, `never signed in`, or None when it was never refreshed."""
    if never_signed_in(token):
        return NEVER_SIGNED_IN
    return None if token.last_refresh is None else ago(token.last_refresh, now)
