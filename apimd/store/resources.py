"""Resource definitions (auth settings, tokens, calls, workflows, schedules) stored by kind and name
as their project-file JSON, each document encrypted whole: secret fields, webhook URLs and any
credential typed into a header are all covered without tracking which is which."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from apimd.model.kinds import ResourceKind
from apimd.model.resources import Token
from apimd.store.errors import CorruptRecord
from apimd.store.secrets import SecretBox
from apimd.store.sql import Connection, Database
from apimd.store.timestamps import to_us, utc_now

RESOURCE_KINDS: tuple[str, ...] = tuple(k for k in ResourceKind if k is not ResourceKind.VARIABLES)
"""The kinds stored here, in this order (variables have a table of their own)."""

# A token's definition is stored without its runtime fields: those live in `token_runtime`.
_TOKEN_RUNTIME_FIELDS = {"variables", *Token.READ_ONLY_FIELDS}


def definition_json(kind: str, resource: BaseModel) -> str:
    """The canonical stored JSON of a resource definition (equal JSON = unchanged resource)."""
    exclude = _TOKEN_RUNTIME_FIELDS if kind == "tokens" else None
    return resource.model_dump_json(by_alias=True, exclude=exclude)


@dataclass(frozen=True)
class StoredResource:
    """A stored definition and the exact JSON it was stored as."""

    model: Any
    json: str


class ResourceStore:
    """Definitions of every resource kind except variables (see `VariableStore`)."""

    def __init__(self, db: Database, box: SecretBox) -> None:
        self._db = db
        self._box = box

    async def all_in(self, conn: Connection) -> dict[str, dict[str, StoredResource]]:
        """Every stored definition, by kind then name (names sorted)."""
        rows = await conn.fetchall("SELECT kind, name, doc FROM resources ORDER BY kind, name")
        out: dict[str, dict[str, StoredResource]] = {kind: {} for kind in RESOURCE_KINDS}
        for row in rows:
            kind, name = row[0], row[1]
            out[kind][name] = self._decode(kind, name, row[2])
        return out

    async def get(self, kind: str, name: str) -> StoredResource | None:
        row = await self._db.fetchone(
            "SELECT doc FROM resources WHERE kind = ? AND name = ?", (kind, name)
        )
        return None if row is None else self._decode(kind, name, row[0])

    async def put_in(self, conn: Connection, kind: str, name: str, json: str) -> None:
        await conn.execute(
            "INSERT INTO resources (kind, name, doc, updated_at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (kind, name) DO UPDATE SET"
            " doc = excluded.doc, updated_at = excluded.updated_at",
            (kind, name, self._box.encrypt_text(json), to_us(utc_now())),
        )

    async def delete_in(self, conn: Connection, kind: str, name: str) -> None:
        await conn.execute("DELETE FROM resources WHERE kind = ? AND name = ?", (kind, name))

    def _decode(self, kind: str, name: str, doc: bytes) -> StoredResource:
        label = f"stored {kind} {name!r}"
        json = self._box.decrypt_text(doc, what=label)
        try:
            model = ResourceKind(kind).model.model_validate_json(json)
        except ValidationError as exc:
            raise CorruptRecord(f"{label} is no longer valid: {exc}") from None
        return StoredResource(model, json)
