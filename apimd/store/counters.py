"""Consecutive-alert counters of webhooks and the alert each last sent (for `repeat_every`). Keys
are stored as keyed hashes: a key may well contain a webhook URL, which is a secret."""

from __future__ import annotations

from apimd.model.runtime import SentAlert
from apimd.store.secrets import SecretBox
from apimd.store.sql import Database
from apimd.store.timestamps import from_us, to_us, utc_now


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

    async def load_alert(self, key: str) -> SentAlert | None:
        row = await self._db.fetchone(
            "SELECT sent_at, alert FROM webhook_counters WHERE key = ? AND sent_at IS NOT NULL",
            (self._box.lookup_key(key),),
        )
        if row is None:
            return None
        notice = self._box.decrypt_json(row[1], what="a webhook's last alert")
        return SentAlert(sent_at=from_us(int(row[0])), notice=notice)

    async def save_alert(self, key: str, alert: SentAlert | None) -> None:
        """Set or clear (None) the last alert sent for `key` (committed on return)."""
        sent_at = None if alert is None else to_us(alert.sent_at)
        doc = None if alert is None else self._box.encrypt_json(alert.notice)
        async with self._db.transaction() as conn:
            await conn.execute(
                "INSERT INTO webhook_counters (key, count, updated_at, sent_at, alert)"
                " VALUES (?, 0, ?, ?, ?) ON CONFLICT (key) DO UPDATE SET"
                " sent_at = excluded.sent_at, alert = excluded.alert,"
                " updated_at = excluded.updated_at",
                (self._box.lookup_key(key), to_us(utc_now()), sent_at, doc),
            )

    async def increment(self, key: str) -> int:
        """Add one and return the new count, atomically (agents count one target together)."""
        async with self._db.transaction() as conn:
            rows = await conn.fetchall(
                "INSERT INTO webhook_counters (key, count, updated_at) VALUES (?, 1, ?)"
                " ON CONFLICT (key) DO UPDATE SET"
                " count = webhook_counters.count + 1, updated_at = excluded.updated_at"
                " RETURNING count",
                (self._box.lookup_key(key), to_us(utc_now())),
            )
        return int(rows[0][0])

    async def reset(self, key: str) -> int:
        """Back to 0, atomically; returns the count it had (so one agent alone sees the streak
        end and sends `resolved`)."""
        async with self._db.transaction() as conn:
            rows = await conn.fetchall(
                "DELETE FROM webhook_counters WHERE key = ? RETURNING count",
                (self._box.lookup_key(key),),
            )
        return int(rows[0][0]) if rows else 0
