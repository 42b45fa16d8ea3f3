"""Where a daemon validation error points inside the resource being edited.

The daemon validates a PUT as a one-resource project document, so `ErrorDetail.field` reads
`calls[0].conditions[1].op` (or `variables.NAME.value`); editors want `conditions[1].op`."""

from __future__ import annotations

import re
from collections.abc import Iterable

_PART = re.compile(r"\[(\d+)\]|\.?([^.\[\]]+)")
_BACKTICKED = re.compile(r"`([A-Za-z_][A-Za-z0-9_.]*)`")

Path = tuple[str | int, ...]


def split_path(path: str) -> Path:
    """`conditions[1].op` as `("conditions", 1, "op")`."""
    return tuple(
        int(index) if index else str(name) for index, name in _PART.findall(path) if index or name
    )


def join_path(parts: Iterable[str | int]) -> str:
    """The inverse of `split_path`."""
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else ("." if out else "") + part
    return out


def resource_path(field: str | None, kind: str) -> Path:
    """`field` relative to the edited resource: the document prefix (`calls[0]`,
    `variables.NAME`) removed when present; `()` means the resource as a whole."""
    parts = split_path(field or "")
    if kind == "variables" and len(parts) >= 2 and parts[0] == "variables":
        return parts[2:]
    if len(parts) >= 2 and parts[0] == kind and isinstance(parts[1], int):
        return parts[2:]
    return parts


def named_fields(message: str) -> list[str]:
    """Field names a resource-level message quotes in backticks ("needs `path`")."""
    return _BACKTICKED.findall(message)
