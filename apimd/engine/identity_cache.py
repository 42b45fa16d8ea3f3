"""Values worked out once per object that lives while a project is loaded (a call's request plan, a
condition's plan): held by the object's id while the object lives, dropped as it goes."""

from __future__ import annotations

import weakref
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class IdentityCache(Generic[K, V]):
    """`get(obj)` gives what `put(obj, value)` stored for this very object, else None. An entry
    goes when its object is collected (a weak reference's callback), before its id can be another
    object's; a later `put` for a new object under a reused id is not dropped by an old callback."""

    __slots__ = ("_entries",)

    def __init__(self) -> None:
        self._entries: dict[int, tuple[weakref.ref[K], V]] = {}

    def get(self, obj: K) -> V | None:
        entry = self._entries.get(id(obj))
        if entry is not None and entry[0]() is obj:
            return entry[1]
        return None

    def put(self, obj: K, value: V) -> None:
        key = id(obj)
        entries = self._entries

        def forget(ref: weakref.ref[K]) -> None:
            held = entries.get(key)
            if held is not None and held[0] is ref:
                del entries[key]

        entries[key] = (weakref.ref(obj, forget), value)

    def __contains__(self, key: object) -> bool:
        """Whether an entry is held under the id `key` (for tests of an entry's lifetime)."""
        return key in self._entries

    def __len__(self) -> int:
        return len(self._entries)
