"""Runtime state the engine keeps per token (not part of the project file), and the rules that
read it: when a token is due, the state to show, how saved variables fill it (SPEC §2, §5)."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from pydantic import BaseModel, Field

from apimd.model.common import storable
from apimd.model.resources import AuthSetting, TokenState

NOT_SECRET_TOKEN_VARIABLES = frozenset({"EXPIRES_IN"})


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


MAX_EXPIRES_IN_S = 1000 * 366 * 86400
"""The longest lifetime an expiry date is kept for: a token server's `expires_in: "1e20"` (or
1e308) is no date at all (a `datetime` ends in year 9999), so no known expiry."""


def parse_expires_in(value: str | None) -> float | None:
    """Seconds from an `EXPIRES_IN` value (integer, numeric string); None when absent or invalid
    (not a number, negative, or more than `MAX_EXPIRES_IN_S`)."""
    if value is None:
        return None
    try:
        seconds = Decimal(str(value).strip())
    except InvalidOperation:
        return None
    if not seconds.is_finite() or not 0 <= seconds <= MAX_EXPIRES_IN_S:
        return None
    return float(seconds)


def effective_skew(runtime: TokenRuntime, auth: AuthSetting | None) -> float:
    """`refresh_skew`, never more than a tenth of the token's last lifetime."""
    skew = auth.refresh_skew if auth else 10.0
    if runtime.lifetime_s is not None:
        skew = min(skew, runtime.lifetime_s / 10)
    return skew


def is_static(auth: AuthSetting | None) -> bool:
    """An auth whose tokens nothing refreshes or signs in: any but `oauth2` (whose flows do)
    with no refresh or sign-in workflow — a `manual` one's tokens of computed signatures, or
    a `bearer`/`basic`/`api_key`/`none` one's tokens of headers beside what the auth sends."""
    return (
        auth is not None
        and auth.type != "oauth2"
        and auth.refresh_workflow is None
        and auth.signin_workflow is None
    )


def is_due(runtime: TokenRuntime | None, auth: AuthSetting | None, now: datetime) -> bool:
    """Whether a call must refresh before using the token: never filled, or within skew of expiry.
    A token of an auth with nothing to fill it (`is_static`) has its headers built from template
    functions and variables alone, so it is never due."""
    if runtime is None or not runtime.filled:
        return not is_static(auth)
    if runtime.expires_at is None:
        return False
    return now >= runtime.expires_at - timedelta(seconds=effective_skew(runtime, auth))


def effective_state(
    runtime: TokenRuntime | None, auth: AuthSetting | None, now: datetime
) -> TokenState:
    """The state to show: `expired` when a valid token is due for refresh; `needs_sign_in`
    for a token never filled that only a person can fill (its first run would say so)."""
    if is_static(auth) and (runtime is None or not runtime.filled):
        return TokenState.VALID
    if runtime is None:
        return TokenState.NEEDS_SIGN_IN if _needs_a_person(auth) else TokenState.EXPIRED
    if runtime.state == TokenState.VALID and is_due(runtime, auth, now):
        return TokenState.EXPIRED
    return runtime.state


def _needs_a_person(auth: AuthSetting | None) -> bool:
    """An oauth2 auth whose grant needs a browser or a device sign-in and that no refresh
    workflow fills: without a refresh token held, only a person gets its first token."""
    return (
        auth is not None
        and auth.type == "oauth2"
        and auth.grant in ("authorization_code", "device_code")
        and not auth.refresh_workflow
    )


def apply_saved_variables(runtime: TokenRuntime, values: dict[str, str], now: datetime) -> None:
    """Merge `values` into the token (never dropping others) with the EXPIRES_IN rule of SPEC §2.
    A lone surrogate (from a JSON `\\ud800` escape), which cannot be stored or sent, becomes U+FFFD."""
    upper = {
        storable(k.upper()): storable(v) if isinstance(v, str) else v for k, v in values.items()
    }
    runtime.variables.update(upper)
    if "EXPIRES_IN" in upper:
        seconds = parse_expires_in(upper["EXPIRES_IN"])
        runtime.expires_at = now + timedelta(seconds=seconds) if seconds is not None else None
        runtime.lifetime_s = seconds
    elif "ACCESS_TOKEN" in upper:
        runtime.expires_at = None
        runtime.lifetime_s = None
    runtime.saved_at = now
    runtime.generation += 1
    runtime.state = TokenState.VALID
    runtime.last_error = None
    runtime.backoff_s = 0.0
    runtime.next_attempt_at = None
