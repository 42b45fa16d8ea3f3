"""Caps on what one response can make apimd keep: matches, actual values, saved variables.

A cut is always visible: a cut string ends with `… [cut: …]`, a cut list ends with a string item
`… N items, first K shown`, a cut object with the key `…`. The caps are far above anything a real
API returns for one value (a JWT is a few KiB), and far below what a hostile one can send.
"""

from __future__ import annotations

import json
from typing import Any

MAX_MATCHES = 10_000
"""Matches a JSONPath or XPath lookup collects before it stops looking."""
SHOWN_MATCHES = 100
"""Matches kept in a condition's actual value."""
SAVED_VALUE_CHARS = 64 * 1024
"""A variable saved from a response (save_as): room for any real token."""
CONDITION_VALUE_CHARS = 64 * 1024
"""A condition's actual value as evaluated; the recorder cuts it further after redaction."""
CUT_MARK = "…"


def cut_text(text: str, limit: int, what: str = "chars") -> str:
    """`text`, or its first `limit` characters and a marker saying how long it was."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}{CUT_MARK} [cut: {len(text)} {what}, first {limit} kept]"


def cap_value(value: Any, limit: int) -> Any:
    """A JSON value whose JSON text is about `limit` characters at most: long strings cut, lists
    and objects cut to the items that fit, each cut marked."""
    if isinstance(value, str):
        return cut_text(value, limit)
    if isinstance(value, list):
        return _cap_list(value, limit)
    if isinstance(value, dict):
        return _cap_dict(value, limit)
    return value


def shown_matches(values: list[Any], total: int | str, limit: int) -> list[Any]:
    """The first of a lookup's matches that fit in `limit` (at most `SHOWN_MATCHES`), and a
    marker item when some are left out (`total`: the count, or e.g. "over 10000")."""
    return _cap_list(values[:SHOWN_MATCHES], limit, total=total)


def saved_text(value: Any, *, more: bool = False) -> str:
    """A looked-up value as a run variable (strings as-is, other JSON values as JSON text),
    cut to `SAVED_VALUE_CHARS`; `more` marks a match list that was cut at `MAX_MATCHES`."""
    if isinstance(value, str):
        text = value
    elif type(value) is int:  # its JSON text, without an encoder built for one number
        text = repr(value)
    else:
        text = json.dumps(value)
    if more:
        text += f"{CUT_MARK} [cut: over {MAX_MATCHES} matches, first {MAX_MATCHES} kept]"
    return cut_text(text, SAVED_VALUE_CHARS)


def _cap_list(items: list[Any], limit: int, total: int | str | None = None) -> list[Any]:
    count = len(items) if total is None else total
    noun = "items" if total is None else "matches"
    kept: list[Any] = []
    budget = limit
    for item in items:
        capped = cap_value(item, max(budget, 0))
        size = _json_size(capped) + 2
        if size > budget:
            break
        kept.append(capped)
        budget -= size
    if len(kept) < len(items) or count != len(items):
        kept.append(f"{CUT_MARK} {count} {noun}, first {len(kept)} shown")
    return kept


def _cap_dict(document: dict[str, Any], limit: int) -> dict[str, Any]:
    kept: dict[str, Any] = {}
    budget = limit
    for index, (key, item) in enumerate(document.items()):
        capped = cap_value(item, max(budget - len(key), 0))
        size = _json_size(capped) + len(key) + 4
        if size > budget:
            kept[CUT_MARK] = f"{len(document)} keys, first {index} shown"
            return kept
        kept[key] = capped
        budget -= size
    return kept


def _json_size(value: Any) -> int:
    try:
        return len(json.dumps(value))
    except (TypeError, ValueError):
        return len(str(value))
