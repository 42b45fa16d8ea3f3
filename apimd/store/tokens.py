"""Token runtime state (saved variables, expiry, refresh state), encrypted at rest as one document;
`state` and `expires_at` are also kept in clear for listing."""

from __future__ import annotations

from apimd.model.runtime import TokenRuntime
from apimd.store.secrets import SecretBox
from apimd.store.sql import Connection, Database
from apimd.store.timestamps import to_us, utc_now

_UPSERT = """
    INSERT INTO token_runtime (name, state, expires_at, saved_at, doc) VALUES (?, ?, ?, ?, ?)
    ON CONFLICT (name) DO UPDATE SET
        state = excluded.state, expires_at = excluded.expires_at,
        saved_at = excluded.saved_at, doc = excluded.doc
"""


class TokenRuntimeStore:
    """Runtime state of tokens, one row per token name."""

    def __init__(self, db: Database, box: SecretBox) -> None:
        self._db = db
        self._box = box

    async def load(self, name: str) -> TokenRuntime | None:
        row = await self._db.fetchone("SELECT doc FROM token_runtime WHERE name = ?", (name,))
        return None if row is None else self._decode(name, row[0])

    async def save(self, runtime: TokenRuntime) -> None:
        """Store `runtime`, committed on return."""
        async with self._db.transaction() as conn:
            await self.save_in(conn, runtime)

    async def all(self) -> dict[str, TokenRuntime]:
        rows = await self._db.fetchall("SELECT name, doc FROM token_runtime ORDER BY name")
        return {row[0]: self._decode(row[0], row[1]) for row in rows}

    async def load_in(self, conn: Connection, name: str) -> TokenRuntime | None:
        rows = await conn.fetchall("SELECT doc FROM token_runtime WHERE name = ?", (name,))
        return next((self._decode(name, row[0]) for row in rows), None)

    async def save_in(self, conn: Connection, runtime: TokenRuntime) -> None:
        await conn.execute(
            _UPSERT,
            (
                runtime.name,
                runtime.state.value,
                None if runtime.expires_at is None else to_us(runtime.expires_at),
                to_us(utc_now()),
                self._box.encrypt(runtime.model_dump_json().encode()),
            ),
        )

    async def delete_in(self, conn: Connection, name: str) -> None:
        await conn.execute("DELETE FROM token_runtime WHERE name = ?", (name,))

    def _decode(self, name: str, doc: bytes) -> TokenRuntime:
        return TokenRuntime.model_validate_json(
            self._box.decrypt(doc, what=f"the saved state of token {name!r}")
        )
