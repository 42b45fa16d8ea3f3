"""Environment variables: values encrypted at rest (all of them, so flipping `secret` never leaves a
clear copy behind)."""

from __future__ import annotations

from apimd.model.resources import Variable
from apimd.store.secrets import SecretBox
from apimd.store.sql import Connection, Database, Row
from apimd.store.timestamps import to_us, utc_now

_UPSERT = """
    INSERT INTO variables (name, secret, value, updated_at) VALUES (?, ?, ?, ?)
    ON CONFLICT (name) DO UPDATE SET
        secret = excluded.secret, value = excluded.value, updated_at = excluded.updated_at
"""


class VariableStore:
    """`name → value` environment variables, names upper-case."""

    def __init__(self, db: Database, box: SecretBox) -> None:
        self._db = db
        self._box = box

    async def save(self, values: dict[str, str], *, secret: bool) -> None:
        """Set each of `values` (committed on return); other variables are untouched."""
        variables = [
            Variable(name=name, value=value, secret=secret) for name, value in values.items()
        ]
        async with self._db.transaction() as conn:
            for variable in variables:
                await self.put_in(conn, variable)

    async def get(self, name: str) -> Variable | None:
        row = await self._db.fetchone(
            "SELECT name, secret, value FROM variables WHERE name = ?", (name.upper(),)
        )
        return None if row is None else self._decode(row)

    async def all(self) -> dict[str, Variable]:
        rows = await self._db.fetchall("SELECT name, secret, value FROM variables ORDER BY name")
        return {row["name"]: self._decode(row) for row in rows}

    async def all_in(self, conn: Connection) -> dict[str, Variable]:
        rows = await conn.fetchall("SELECT name, secret, value FROM variables ORDER BY name")
        return {row["name"]: self._decode(row) for row in rows}

    async def put_in(self, conn: Connection, variable: Variable) -> None:
        await conn.execute(
            _UPSERT,
            (
                variable.name,
                int(variable.secret),
                self._box.encrypt_text(variable.value),
                to_us(utc_now()),
            ),
        )

    async def delete_in(self, conn: Connection, name: str) -> None:
        await conn.execute("DELETE FROM variables WHERE name = ?", (name,))

    def _decode(self, row: Row) -> Variable:
        value = self._box.decrypt_text(row["value"], what=f"variable {row['name']}")
        return Variable(name=row["name"], value=value, secret=bool(row["secret"]))
