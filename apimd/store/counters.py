"""Consecutive-alert counters of webhooks. Keys are stored as keyed hashes: a key may well contain
a webhook URL, which is a secret."""

from __future__ import annotations

from apimd.store.secrets import SecretBox
from apimd.store.sql import Database
from apimd.store.timestamps import to_us, utc_now


class CounterStore:
    """`key → count`, 0 for a key never saved."""

    def __init__(self, db: Database, box: SecretBox) -> None:
        self._db = db
        self._box = box

    async def load(self, key: str) -> int:
        row = await self._db.fetchone(
            "SELECT count FROM webhook_counters WHERE key = ?", (self._box.lookup_key(key),)
        )
        return 0 if row is None else int(row[0])

    async def save(self, key: str, count: int) -> None:
        """Set the counter (committed on return)."""
        async with self._db.transaction() as conn:
            await conn.execute(
                "INSERT INTO webhook_counters (key, count, updated_at) VALUES (?, ?, ?)"
                " ON CONFLICT (key) DO UPDATE SET"
                " count = excluded.count, updated_at = excluded.updated_at",
                (self._box.lookup_key(key), count, to_us(utc_now())),
            )
