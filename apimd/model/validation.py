"""Pydantic validation errors as `Issue`s in the words of a project file's author: unknown fields
with a suggestion, missing fields, allowed values, bounds; secret inputs never quoted."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping, Set
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from apimd.model.common import LOCATION_PATTERN, MAX_LOCATION, NAME_PATTERN, secret_field_names
from apimd.model.errors import Issue
from apimd.model.resources import HTTP_METHOD
from apimd.model.union_errors import (
    annotation_at,
    field_description,
    meant_members,
    union_tags,
    unwrap_annotation,
)

Loc = tuple[str | int, ...]

_MAX_SHOWN = 40
"""Inputs longer than this (as repr) are described by kind, never quoted."""


def validation_issues(
    error: ValidationError,
    model: type[BaseModel],
    *,
    prefix: Loc = (),
    hide_input: Callable[[Loc], bool] | None = None,
) -> list[Issue]:
    """One `Issue` per error of `model.model_validate(...)`, located by `prefix + loc`.

    Inputs are quoted only when short, outside any `variables` mapping, not in a secret field
    and not hidden by `hide_input(loc)` (e.g. values read from the environment)."""
    issues: list[Issue] = []
    unions: dict[Loc, list[tuple[ErrorDetails, int]]] = {}
    for details in error.errors(include_url=False):
        loc = tuple(details["loc"])
        tags = union_tags(model, loc)
        if tags:
            # Gathered per union field, to show one problem there (see union_errors).
            first = unions.setdefault(loc[: tags[0]], [])
            first.append((details, tags[0]))
            if len(first) == 1:
                issues.append(Issue("", loc=loc[: tags[0]]))  # placeholder, keeps the order
            continue
        issues.append(_issue(details, model, prefix, hide_input))
    if not unions:
        return issues
    out: list[Issue] = []
    for issue in issues:
        if issue.message:
            out.append(issue)
            continue
        out.extend(_union_issues(issue.loc, unions[issue.loc], model, prefix, hide_input))
    return out


def _issue(
    details: ErrorDetails,
    model: type[BaseModel],
    prefix: Loc,
    hide_input: Callable[[Loc], bool] | None,
    message: str | None = None,
) -> Issue:
    loc = tuple(details["loc"])
    tags = union_tags(model, loc)
    plain = tuple(part for index, part in enumerate(loc) if index not in tags)
    show = (
        "variables" not in plain  # project, token and workflow variables: often secrets
        and not _is_secret_field(model, plain)
        and not (hide_input and hide_input(plain))
    )
    # pydantic's `[key]` marks an error in a mapping key; the key itself is the location.
    shown_loc = tuple(part for part in plain if part != "[key]")
    text = message if message is not None else _message(details, model, show_input=show)
    if message is not None:
        text += f" (got {_shown(details.get('input'), show)})"
    return Issue(text, loc=(*prefix, *shown_loc))


def _union_issues(
    at: Loc,
    errors: list[tuple[ErrorDetails, int]],
    model: type[BaseModel],
    prefix: Loc,
    hide_input: Callable[[Loc], bool] | None,
) -> list[Issue]:
    """A value that fits no member of a union: the errors of the members it has the shape of,
    or else one problem saying what the field accepts."""
    meant = meant_members([(tuple(d["loc"]), d["type"], tag) for d, tag in errors])
    if meant is not None:
        return [
            _issue(d, model, prefix, hide_input) for d, tag in errors if str(d["loc"][tag]) in meant
        ]
    described = field_description(model, at)
    if described is None:
        kinds = []
        for details, _ in errors:
            kind = _message(details, model, show_input=False).split(" (got ")[0]
            kind = kind.removeprefix("must be ")
            if kind not in kinds:
                kinds.append(kind)
        described = ", or ".join(kinds)
    return [_issue(errors[0][0], model, prefix, hide_input, message=f"must be {described}")]


def _message(error: ErrorDetails, root: type[BaseModel], *, show_input: bool) -> str:
    """A pydantic error in the words a project file's author uses."""
    kind, loc, ctx = error["type"], error["loc"], error.get("ctx") or {}
    last = str(loc[-1]) if loc else ""
    got = f" (got {_shown(error.get('input'), show_input)})"
    if kind == "extra_forbidden":
        message = f"unknown field `{last}`"
        model = _model_at(root, loc[:-1])
        known = [info.alias or name for name, info in model.model_fields.items()] if model else []
        close = difflib.get_close_matches(last, known, n=1, cutoff=0.6)
        return message + (f"; did you mean `{close[0]}`?" if close else "")
    if kind == "missing":
        return f"missing required field `{last}`"
    if kind in ("literal_error", "enum"):
        return f"must be {ctx.get('expected', 'one of the allowed values')}{got}"
    if kind in _BOUNDS:
        return f"{_BOUNDS[kind][1]} {_number(ctx.get(_BOUNDS[kind][0]))}"
    if kind in ("too_short", "too_long"):
        count = int(ctx.get("min_length" if kind == "too_short" else "max_length", 0))
        least = "at least" if kind == "too_short" else "at most"
        return f"needs {least} {count} item{'s' if count != 1 else ''}"
    if kind in ("string_too_short", "string_too_long"):
        count = int(ctx.get("min_length" if kind == "string_too_short" else "max_length", 0))
        least = "at least" if kind == "string_too_short" else "at most"
        return f"must be {least} {count} character{'s' if count != 1 else ''}"
    if kind == "string_pattern_mismatch":
        return _PATTERNS.get(str(ctx.get("pattern")), f"must match {ctx.get('pattern')}") + got
    if kind in ("value_error", "assertion_error") and "error" in ctx:
        return str(ctx["error"])
    if kind == "string_type" and isinstance(error.get("input"), int | float):
        # `01234` is the number 1234 in YAML: only quotes keep such a value as written.
        return f"must be a string (got {kind_of(error.get('input'))}; quote it)"
    if kind in _MUST_BE:
        return _MUST_BE[kind] + got
    text = error["msg"]
    return text[:1].lower() + text[1:]


_MUST_BE = {
    "string_type": "must be a string",
    "string_unicode": "must be a string",
    "int_type": "must be a whole number",
    "int_parsing": "must be a whole number",
    "int_from_float": "must be a whole number",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "finite_number": "must be a finite number",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "dict_type": "must be a mapping (key: value)",
    "model_type": "must be a mapping (key: value)",
    "model_attributes_type": "must be a mapping (key: value)",
    "list_type": "must be a list",
    "datetime_type": "must be a date and time like 2024-05-01T12:00:00Z",
    "datetime_parsing": "must be a date and time like 2024-05-01T12:00:00Z",
    "datetime_from_date_parsing": "must be a date and time like 2024-05-01T12:00:00Z",
}
_BOUNDS = {
    "greater_than": ("gt", "must be more than"),
    "greater_than_equal": ("ge", "must be at least"),
    "less_than": ("lt", "must be less than"),
    "less_than_equal": ("le", "must be at most"),
}
_PATTERNS = {
    NAME_PATTERN: "must be a name: 1–100 characters of letters, digits and `_ . : -`,"
    " starting with a letter or digit",
    HTTP_METHOD: "must be an HTTP method such as GET or POST",
    f"^{LOCATION_PATTERN}$": f"must be a location name: 1–{MAX_LOCATION} letters, digits and `. _ -`",
}


def _number(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def kind_of(value: Any) -> str:
    """What sort of value this is, in a message's words: `a list`, `a number`, `nothing`."""
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list | tuple | Set):
        return "a list"
    return "a value of another type"


def _shown(value: Any, allowed: bool) -> str:
    """The input quoted when it is short and may be shown, else only what kind of value it is."""
    if allowed and isinstance(value, str | int | float) and not isinstance(value, bool):
        text = repr(value)
        if len(text) <= _MAX_SHOWN:
            return text
    return kind_of(value)


def _model_at(root: type[BaseModel], loc: Loc) -> type[BaseModel] | None:
    """The model class that validates the value at `loc`, if that value is a model."""
    found = annotation_at(root, loc)
    annotation = unwrap_annotation(found[0]) if found is not None else None
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def _is_secret_field(root: type[BaseModel], loc: Loc) -> bool:
    model = _model_at(root, loc[:-1]) if loc else None
    return model is not None and loc[-1] in secret_field_names(model)
