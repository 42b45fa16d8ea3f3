"""Pydantic reports a value that fits no member of a union (`bool | Literal["ca_only"]`,
`str | PemFile`, `list[...] | Literal["all"]`) once per member, each under a location part naming
the member in pydantic's words (`list[constrained-str]`, `literal['all']`, `PemFile`). A project
file's author has to read one problem at the field they wrote: these helpers find those parts and
decide which of the members' errors to show."""

from __future__ import annotations

import types
from collections.abc import Sequence
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo

Loc = tuple[str | int, ...]

SHAPE_ERRORS = frozenset(
    {
        "string_type",
        "int_type",
        "float_type",
        "bool_type",
        "bool_parsing",
        "dict_type",
        "model_type",
        "model_attributes_type",
        "list_type",
        "literal_error",
    }
)
"""Errors saying the value is not of a member's kind at all (as opposed to a list whose items or a
mapping whose fields are wrong: then the author meant that member)."""


def unwrap_annotation(annotation: Any) -> Any:
    """`Annotated[X, …]` → X, and `X | None` → X when one member is left."""
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
        elif origin in (Union, types.UnionType):
            members = [a for a in get_args(annotation) if a is not type(None)]
            if len(members) != 1:
                return annotation
            annotation = members[0]
        else:
            return annotation


def _members(annotation: Any) -> list[Any] | None:
    """The members of a union of two or more non-None types, else None."""
    annotation = unwrap_annotation(annotation)
    if get_origin(annotation) in (Union, types.UnionType):
        return [a for a in get_args(annotation) if a is not type(None)]
    return None


def _named(member: Any, tag: str) -> bool:
    """Whether pydantic's location part `tag` names this union member."""
    member = unwrap_annotation(member)
    origin = get_origin(member)
    if origin is list:
        return tag.startswith("list[")
    if origin is dict:
        return tag.startswith("dict[")
    if origin is Literal:
        return tag.startswith("literal[")
    if isinstance(member, type):
        name = member.__name__
        return tag == name or tag.endswith((f"-{name}", f"[{name}]"))
    return False


def model_field(model: type[BaseModel], key: Any) -> FieldInfo | None:
    """The field of `model` named `key` (or aliased so)."""
    for name, info in model.model_fields.items():
        if key in (name, info.alias):
            return info
    return None


def union_tags(root: type[BaseModel], loc: Loc) -> tuple[int, ...]:
    """Positions in `loc` that name a union member rather than a field, item or key."""
    tags: list[int] = []
    annotation: Any = root
    for index, part in enumerate(loc):
        members = _members(annotation)
        if members is not None:
            chosen = [m for m in members if isinstance(part, str) and _named(m, part)]
            if len(chosen) != 1:
                break
            tags.append(index)
            annotation = chosen[0]
            continue
        annotation = unwrap_annotation(annotation)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            info = model_field(annotation, part)
            if info is None:
                break
            annotation = info.annotation
        elif get_origin(annotation) in (list, dict):
            annotation = get_args(annotation)[-1]
        else:
            break
    return tuple(tags)


def annotation_at(root: type[BaseModel], loc: Loc) -> tuple[Any, FieldInfo | None] | None:
    """The annotation of the value at `loc` (a path without union tags) and, when that value is
    a model's field, the field; None when `loc` leads nowhere."""
    annotation: Any = root
    info: FieldInfo | None = None
    for part in loc:
        annotation = unwrap_annotation(annotation)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            info = model_field(annotation, part)
            if info is None:
                return None
            annotation = info.annotation
        elif get_origin(annotation) in (list, dict):
            info = None
            annotation = get_args(annotation)[-1]
        else:
            return None
    return annotation, info


def field_description(root: type[BaseModel], loc: Loc) -> str | None:
    """The `description` of the model field at `loc` (a path without union tags), if any."""
    found = annotation_at(root, loc)
    return found[1].description if found is not None and found[1] is not None else None


def meant_members(errors: Sequence[tuple[Loc, str, int]]) -> set[str] | None:
    """Of one union's errors, as (loc, type, position of the member's tag), the members the
    author evidently meant (the value has their shape but something inside is wrong), or None
    when the value has the shape of none of them."""
    meant = {
        str(loc[tag]) for loc, kind, tag in errors if len(loc) > tag + 1 or kind not in SHAPE_ERRORS
    }
    return meant or None
