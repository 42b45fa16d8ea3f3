"""`apimd tokens`, `apimd token show|refresh` (SPEC §7): token state through the daemon."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from apimd.cli import UsageError
from apimd.cli.remote import client_for
from apimd.cli.table import fit_width, table
from apimd.client import ApiError, Client
from apimd.model.durations import expiry, until
from apimd.model.resources import Token, TokenState
from apimd.model.token_status import never_signed_in, refreshed_word, state_word
from apimd.settings import Settings

HEADERS = ["TOKEN", "AUTH", "STATE", "EXPIRES", "LAST REFRESH", "LAST ERROR"]


def token_row(token: Token, now: datetime) -> list[str]:
    return [
        token.name,
        token.auth,
        state_word(token, now) or "-",
        until(token.expires_at, now) if token.expires_at else "-",
        refreshed_word(token, now) or "never",
        token.last_error or "",
    ]


async def tokens_command(settings: Settings, as_json: bool) -> int:
    async with client_for(settings) as client:
        tokens = [t for t in await client.list("tokens") if isinstance(t, Token)]
    if as_json:
        print(json.dumps([t.model_dump(mode="json", exclude_none=True) for t in tokens], indent=2))
        return 0
    if not tokens:
        print("no tokens")
        return 0
    now = datetime.now(UTC)
    print(table(HEADERS, [token_row(t, now) for t in tokens], width=fit_width()))
    return 0


async def _token(client: Client, name: str) -> Token:
    try:
        token = await client.get("tokens", name)
    except ApiError as exc:
        if exc.status == 404:
            raise UsageError(f"the daemon has no token named {name!r}") from None
        raise
    assert isinstance(token, Token)
    return token


def describe_token(token: Token, now: datetime) -> str:
    """One token's whole state, one field a line, its last error in full."""
    state = state_word(token, now) or "unknown"
    refreshed = refreshed_word(token, now)
    lines = [
        f"token {token.name}",
        f"  auth          {token.auth}",
        f"  state         {state}",
        f"  expiry        {expiry(token.expires_at, now) if token.expires_at else 'none known'}",
        "  last refresh  "
        + (
            f"{token.last_refresh.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC ({refreshed})"
            if token.last_refresh and not never_signed_in(token)
            else refreshed or "never"
        ),
        f"  last error    {token.last_error or 'none'}",
    ]
    if token.variables:
        lines.append(f"  variables     {', '.join(sorted(token.variables))} (values hidden)")
    for label, values in (("headers", token.headers), ("params", token.params)):
        if values:
            lines.append(f"  {label:<13} {', '.join(values)}")
    return "\n".join(lines)


async def token_show_command(settings: Settings, name: str, as_json: bool) -> int:
    async with client_for(settings) as client:
        token = await _token(client, name)
    if as_json:
        print(token.model_dump_json(indent=2, exclude_none=True))
    else:
        print(describe_token(token, datetime.now(UTC)))
    return 0


async def token_refresh_command(settings: Settings, name: str) -> int:
    async with client_for(settings) as client:
        try:
            token = await client.refresh_token(name)
        except ApiError as exc:
            if exc.status == 404:
                raise UsageError(f"the daemon has no token named {name!r}") from None
            raise
    now = datetime.now(UTC)
    state = state_word(token, now) or "unknown"
    when = f", {expiry(token.expires_at, now)}" if token.expires_at else ""
    error = f": {token.last_error}" if token.last_error else ""
    print(f"token {name}: {state}{when}{error}")
    return 0 if token.state is TokenState.VALID else 1
