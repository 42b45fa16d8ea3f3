"""Templates (SPEC §3): `%%NAME%%`, `__NAME__` and `{{ NAME }}`, substituted once, never recursively.

STUB — to be implemented. The signatures below are the contract the rest of the engine codes against.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class Scope:
    """Variable lookup, first hit wins, in the order the layers are given (SPEC §3):
    run variables → token's saved variables → auth CLIENT_ID/CLIENT_SECRET → environment → system.
    Names are case-insensitive (layers hold upper-case keys; lookups upper-case the name)."""

    def __init__(self, *layers: Mapping[str, str]) -> None:
        raise NotImplementedError

    def lookup(self, name: str) -> str | None:
        """The value of `name` in the first layer that has it, else None."""
        raise NotImplementedError

    def with_layer_first(self, layer: Mapping[str, str]) -> Scope:
        """A new scope that looks in `layer` before these layers."""
        raise NotImplementedError


def render(text: str, scope: Scope, where: str) -> str:
    """Substitute every `%%NAME%%`, `{{ NAME }}` and `__NAME__` in `text`; `%%%%` writes `%%`.
    An unknown `%%X%%`/`{{X}}` raises `UnknownVariable(X, where)`; an unknown `__X__` stays as written.
    Values are inserted as-is and never re-scanned."""
    raise NotImplementedError


def render_json(value: Any, scope: Scope, where: str) -> Any:
    """Substitute inside every string value of a JSON document (dict keys are left alone), so a
    value containing quotes can never break the JSON. Non-strings are returned unchanged."""
    raise NotImplementedError


def system_variables(
    *,
    call_name: str | None = None,
    workflow_name: str | None = None,
    run_id: str | None = None,
    token_name: str | None = None,
    auth_name: str | None = None,
) -> dict[str, str]:
    """DATETIME (ISO 8601 UTC, seconds, `Z`), DATE (YYYY-MM-DD), TIME (HH:MM:SS), UNIXTIME, UUID and
    GUID (the same v4), RANDINT (1–10000), CALL_NAME, WORKFLOW_NAME, RUN_ID, TOKEN_NAME, AUTH_NAME
    (empty string when not given). Computed once; the caller reuses the dict for one call."""
    raise NotImplementedError


def referenced_variables(text: str) -> set[str]:
    """Upper-cased names referenced by `%%X%%`, `{{X}}` and `__X__` in `text`."""
    raise NotImplementedError
