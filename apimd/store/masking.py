"""Secret fields on resource models (every field annotated `Secret`, at any depth): masking them for
export, and keeping stored values where a document omits them or gives `••••` (SPEC §2)."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel

from apimd.model.common import SECRET_MASK, secret_field_names
from apimd.model.errors import Issue

M = TypeVar("M", bound=BaseModel)
Loc = tuple[str | int, ...]


def mask_secrets(model: M) -> M:
    """`model` with every set secret field, at any depth, replaced by `••••`."""
    update: dict[str, Any] = {
        name: SECRET_MASK
        for name in secret_field_names(type(model))
        if getattr(model, name) is not None
    }
    for name in type(model).model_fields:
        value = getattr(model, name)
        if isinstance(value, BaseModel):
            masked = mask_secrets(value)
            if masked is not value:
                update[name] = masked
        elif isinstance(value, list) and any(isinstance(item, BaseModel) for item in value):
            items = [mask_secrets(i) if isinstance(i, BaseModel) else i for i in value]
            if any(new is not old for new, old in zip(items, value, strict=True)):
                update[name] = items
    return model.model_copy(update=update) if update else model


def keep_stored_secrets(new: M, stored: M | None, loc: Loc) -> tuple[M, list[Issue]]:
    """`new` with each secret field that is omitted or `••••` taken from `stored`; an `••••` with
    nothing stored to keep is an issue (the mask must never be stored as a value)."""
    issues: list[Issue] = []
    update: dict[str, Any] = {}
    for name in secret_field_names(type(new)):
        value = getattr(new, name)
        if value is not None and value != SECRET_MASK:
            continue
        kept = getattr(stored, name, None) if stored is not None else None
        if kept is not None:
            update[name] = kept
        elif value == SECRET_MASK:
            issues.append(
                Issue(
                    f"`{name}` is {SECRET_MASK} (keep the stored value) but there is no stored "
                    "value to keep; give the value",
                    loc=(*loc, name),
                )
            )
    for name in type(new).model_fields:
        value = getattr(new, name)
        old = getattr(stored, name, None) if stored is not None else None
        if isinstance(value, BaseModel):
            kept_model, found = keep_stored_secrets(
                value, old if isinstance(old, type(value)) else None, (*loc, name)
            )
            issues += found
            if kept_model is not value:
                update[name] = kept_model
        elif isinstance(value, list) and any(isinstance(item, BaseModel) for item in value):
            kept_items, found = _keep_in_list(
                value, old if isinstance(old, list) else [], (*loc, name)
            )
            issues += found
            if any(k is not v for k, v in zip(kept_items, value, strict=True)):
                update[name] = kept_items
    return (new.model_copy(update=update) if update else new), issues


def _keep_in_list(items: list[Any], olds: list[Any], loc: Loc) -> tuple[list[Any], list[Issue]]:
    """Items of a list (webhooks) matched to their stored counterparts: the one at the same position
    when it is the same apart from secrets, else any such one (an item was removed or moved), else
    the one at the same position when it is of the same type (an item was edited)."""
    used: set[int] = set()
    out: list[Any] = []
    issues: list[Issue] = []
    for index, item in enumerate(items):
        if not isinstance(item, BaseModel):
            out.append(item)
            continue
        match = _counterpart(item, index, olds, used)
        if match is not None:
            used.add(match)
        kept, found = keep_stored_secrets(
            item, None if match is None else olds[match], (*loc, index)
        )
        out.append(kept)
        issues += found
    return out, issues


def _counterpart(item: BaseModel, index: int, olds: list[Any], used: set[int]) -> int | None:
    def free(j: int) -> bool:
        return j < len(olds) and j not in used and type(olds[j]) is type(item)

    public = _public(item)
    if free(index) and _public(olds[index]) == public:
        return index
    for j in range(len(olds)):
        if free(j) and _public(olds[j]) == public:
            return j
    if free(index) and getattr(olds[index], "type", None) == getattr(item, "type", None):
        return index
    return None


def _public(model: BaseModel) -> dict[str, Any]:
    return model.model_dump(exclude=set(secret_field_names(type(model))))
