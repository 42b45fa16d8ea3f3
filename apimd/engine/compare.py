"""Comparing a looked-up value with a condition's expected value (SPEC §2 "Conditions").

Both sides that read as decimal numbers compare as `Decimal` ("1.0" == 1); JSON literals compare in
their JSON form (True == "true", None == "null"); everything else compares as text. Lists and
objects compare structurally (an expected JSON text is parsed first).
"""

from __future__ import annotations

import json
import math
import re
from decimal import Decimal, InvalidOperation
from typing import Any

_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def number(value: Any) -> Decimal | None:
    """`value` as a decimal number, or None when it does not read as one."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        return Decimal(repr(value)) if math.isfinite(value) else None
    if isinstance(value, str):
        text = value.strip()
        if _NUMBER.fullmatch(text):
            try:
                return Decimal(text)
            except (InvalidOperation, ValueError):  # exponent beyond what Decimal holds
                return None
    return None


def text(value: Any) -> str:
    """The text form used for string comparison: JSON literals and containers as JSON."""
    if isinstance(value, str):
        return value
    if value is None or isinstance(value, bool | list | dict):
        return json.dumps(value)
    return str(value)


def container(value: Any) -> list[Any] | dict[str, Any] | None:
    """`value` as a list or object, parsing JSON text; None when it is neither."""
    if isinstance(value, list | dict):
        return value
    if isinstance(value, str) and value.lstrip()[:1] in ("[", "{"):
        try:
            parsed = json.loads(value)
        except (ValueError, RecursionError):
            return None
        if isinstance(parsed, list | dict):
            return parsed
    return None


def equal(actual: Any, expected: Any) -> bool:
    if isinstance(actual, list | dict) or isinstance(expected, list | dict):
        left, right = container(actual), container(expected)
        if isinstance(left, list) and isinstance(right, list):
            return len(left) == len(right) and all(
                equal(a, b) for a, b in zip(left, right, strict=True)
            )
        if isinstance(left, dict) and isinstance(right, dict):
            return left.keys() == right.keys() and all(equal(left[k], right[k]) for k in left)
        return False
    left_number, right_number = number(actual), number(expected)
    if left_number is not None and right_number is not None:
        return left_number == right_number
    return text(actual) == text(expected)


def order(actual: Any, expected: Any) -> int | None:
    """-1, 0 or 1 as `actual` is below, equal to or above `expected`; None if not orderable."""
    if isinstance(actual, list | dict) or isinstance(expected, list | dict):
        return None
    left_number, right_number = number(actual), number(expected)
    if left_number is not None and right_number is not None:
        return (left_number > right_number) - (left_number < right_number)
    left, right = text(actual), text(expected)
    return (left > right) - (left < right)


def contains(actual: Any, expected: Any) -> bool:
    if isinstance(actual, list):
        needle = text(expected)
        return any(
            equal(item, expected) or (isinstance(item, str) and needle in item) for item in actual
        )
    if isinstance(actual, dict):
        return text(expected) in actual
    return text(expected) in text(actual)


class Expected:
    """A condition's expected value with its number and text forms made once, for a condition
    checked on every call: `equal`, `order` and `contains` give what the functions of the same
    name give with `value` as `expected`."""

    __slots__ = ("is_container", "number", "text", "value")

    def __init__(self, value: Any) -> None:
        self.value = value
        self.is_container = isinstance(value, list | dict)
        self.number = number(value)
        self.text = text(value)

    def equal(self, actual: Any) -> bool:
        if self.is_container or isinstance(actual, list | dict):
            return equal(actual, self.value)
        right = self.number
        if right is not None:
            # An int reads as the Decimal it equals, which compares with an int exactly.
            left = actual if type(actual) is int else number(actual)
            if left is not None:
                return bool(left == right)
        return text(actual) == self.text

    def order(self, actual: Any) -> int | None:
        if self.is_container or isinstance(actual, list | dict):
            return None
        right = self.number
        if right is not None:
            left = actual if type(actual) is int else number(actual)
            if left is not None:
                return (left > right) - (left < right)
        shown = text(actual)
        return (shown > self.text) - (shown < self.text)

    def contains(self, actual: Any) -> bool:
        needle = self.text
        if isinstance(actual, list):
            return any(
                self.equal(item) or (isinstance(item, str) and needle in item) for item in actual
            )
        if isinstance(actual, dict):
            return needle in actual
        return needle in text(actual)
