"""Shared field types: names, variable names, secrets, durations."""

from __future__ import annotations

import math
import re
import stat
import types
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

SECRET_MASK = "••••"
"""What a secret reads as wherever it is not explicitly revealed."""

MAX_NAME = 100
NAME_PATTERN = rf"^[A-Za-z0-9][A-Za-z0-9_.:-]{{0,{MAX_NAME - 1}}}$"
VARIABLE_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

MAX_LOCATION = 100
LOCATION_PATTERN = rf"[A-Za-z0-9._-]{{1,{MAX_LOCATION}}}"
"""An agent or location name (SPEC §13): the one definition for `APIMD_LOCATION`/`APIMD_AGENT`,
schedules' `locations` and a run request's `location`."""

LocationName = Annotated[
    str, Field(min_length=1, max_length=MAX_LOCATION, pattern=rf"^{LOCATION_PATTERN}$")
]
"""An agent's `APIMD_LOCATION` as a schedule or a run request names it (SPEC §13)."""

ANYWHERE = "*"
"""Where a schedule without `locations` runs: any agent (its queue, and the summary's mark)."""

Name = Annotated[
    str,
    StringConstraints(pattern=NAME_PATTERN),
    Field(description="1–100 chars of [A-Za-z0-9_.:-], starting alphanumeric"),
]


def _upper_variable(value: str) -> str:
    if not VARIABLE_PATTERN.fullmatch(value):
        raise ValueError(f"{value!r} is not a variable name ([A-Za-z_][A-Za-z0-9_]*)")
    return value.upper()


VariableName = Annotated[str, AfterValidator(_upper_variable)]
"""A variable name, case-insensitive, stored upper-case."""


def unique_variable_names(value: Any) -> Any:
    """Before-validator for `name -> value` maps: names that differ only in case are one variable,
    so both spellings in one map are an error rather than one silently winning."""
    if isinstance(value, dict):
        seen: dict[str, str] = {}
        for key in value:
            if not isinstance(key, str):
                continue
            first = seen.setdefault(key.upper(), key)
            if first != key:
                raise ValueError(
                    f"`{first}` and `{key}` are the same variable (names are case-insensitive)"
                )
    return value


class SecretMarker:
    """Marks a string field as secret: masked on read, encrypted at rest, redacted in results."""

    def __repr__(self) -> str:
        return "SecretMarker()"


SECRET = SecretMarker()
Secret = Annotated[str, SECRET]


def _has_secret_marker(annotation: Any) -> bool:
    # `Secret | None` keeps the marker inside the union, not in the field's own metadata.
    if get_origin(annotation) is Annotated:
        return any(isinstance(meta, SecretMarker) for meta in annotation.__metadata__)
    if get_origin(annotation) in (Union, types.UnionType):
        return any(_has_secret_marker(arg) for arg in get_args(annotation))
    return False


def secret_field_names(model: type[BaseModel]) -> list[str]:
    """Names of the fields of `model` annotated as `Secret` (or `Secret | None`)."""
    return [
        name
        for name, info in model.model_fields.items()
        if any(isinstance(meta, SecretMarker) for meta in info.metadata)
        or _has_secret_marker(info.annotation)
    ]


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(text: str | int | float) -> float:
    """Seconds in `30s`, `5m`, `1h`, `2d`, `250ms` or a bare number of seconds."""
    # Validators call this on raw input: anything else must be a ValueError (pydantic turns
    # only those into validation errors; a TypeError would escape as a crash).
    if isinstance(text, bool) or not isinstance(text, str | int | float):
        raise ValueError("expected a duration like 30s, 5m or 1h")
    if isinstance(text, int | float):
        seconds = float(text)
    else:
        match = _DURATION.fullmatch(text)
        if not match:
            raise ValueError(f"{text!r} is not a duration like 30s, 5m or 1h")
        seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2) or "s"]
    if not math.isfinite(seconds):
        raise ValueError("expected a finite duration like 30s, 5m or 1h")
    return seconds


def format_duration(seconds: float) -> str:
    """The shortest of `90s`, `5m`, `1h` that states `seconds` exactly."""
    for unit in ("d", "h", "m"):
        size = _UNIT_SECONDS[unit]
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


class StrictModel(BaseModel):
    """Base for resources: unknown keys are errors, so typos in project files are caught."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, validate_default=True)


def scalar_to_str(value: Any) -> Any:
    """Accept YAML scalars where a string template is expected (`8080`, `true`)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return value


# A lone UTF-16 surrogate (from a JSON `\ud800` escape, or an undecodable byte kept by
# `surrogateescape`) is a valid `str` that UTF-8 cannot encode: the store, events and API refuse it.
LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def storable(text: str) -> str:
    """`text` with every lone surrogate replaced by U+FFFD, so it can be stored and sent."""
    if text.isascii():
        return text
    return LONE_SURROGATE.sub("\ufffd", text)


def has_lone_surrogate(text: str) -> bool:
    return not text.isascii() and LONE_SURROGATE.search(text) is not None


def _escape(code: int) -> str:
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


_ESCAPES = {
    code: _escape(code)
    for code in (
        *(c for c in range(0x20) if c != 0x09),
        *range(0x7F, 0xA0),
        0x2028,
        0x2029,
        *range(0xD800, 0xE000),  # a lone surrogate: UTF-8 cannot write it
    )
}
_ESCAPES_BUT_NEWLINE = {code: text for code, text in _ESCAPES.items() if code != 0x0A}


def escaped_controls(text: str, *, lines: bool = False) -> str:
    """`text` with its control characters but tab (and newline, with `lines`), the line and
    paragraph separators and lone surrogates escaped (`\\x0a`, `\\u2028`): one line of a log,
    or terminal text that what a server said cannot drive."""
    return text.translate(_ESCAPES_BUT_NEWLINE if lines else _ESCAPES)


class Resource(StrictModel):
    """Fields every resource has."""

    name: Name
    description: str | None = None
    tags: list[str] = Field(default_factory=list)


def file_kind(mode: int) -> str:
    """What a file of `mode` (from `os.lstat`) is, for messages: "a folder", "a regular file"."""
    kinds = (
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISLNK, "a symbolic link"),
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISREG, "a regular file"),
        (stat.S_ISFIFO, "a named pipe"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
    )
    return next((kind for test, kind in kinds if test(mode)), "a special file")
