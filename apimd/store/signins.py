"""Pending browser sign-ins (SPEC §5): single use, expiring after 10 minutes, encrypted at rest.
Only the id, expiry, used flag and a keyed hash of the state (the look-up key) are in clear."""

from __future__ import annotations

import hmac
from datetime import datetime

from apimd.model.signin import PendingSignIn
from apimd.store.secrets import SecretBox
from apimd.store.sql import Database
from apimd.store.timestamps import to_us, utc_now


class SignInStore:
    """Pending sign-ins, looked up by state exactly once."""

    def __init__(self, db: Database, box: SecretBox) -> None:
        self._db = db
        self._box = box

    async def create(self, signin: PendingSignIn) -> None:
        """Record `signin` (committed on return)."""
        async with self._db.transaction() as conn:
            await conn.execute(
                "INSERT INTO signins (id, state_key, created_at, expires_at, used, doc)"
                " VALUES (?, ?, ?, ?, 0, ?)",
                (
                    signin.id,
                    self._box.lookup_key(signin.state),
                    to_us(signin.created_at),
                    to_us(signin.expires_at),
                    self._box.encrypt(signin.model_dump_json().encode()),
                ),
            )

    async def consume(self, state: str, *, now: datetime | None = None) -> PendingSignIn | None:
        """The unexpired, unused sign-in whose state is `state`, marked used; None otherwise.

        The look-up is by a keyed hash of the state (timing reveals nothing about stored states),
        then the decrypted state is compared in constant time."""
        moment = to_us(now or utc_now())
        async with self._db.transaction() as conn:
            rows = await conn.fetchall(
                "UPDATE signins SET used = 1"
                " WHERE state_key = ? AND used = 0 AND expires_at > ? RETURNING id, doc",
                (self._box.lookup_key(state), moment),
            )
            for row in rows:
                signin = self._decode(row[0], row[1])
                if hmac.compare_digest(signin.state.encode(), state.encode()):
                    return signin
                # Only a hash collision gets here: leave the record usable.
                await conn.execute("UPDATE signins SET used = 0 WHERE id = ?", (row[0],))
        return None

    async def get(self, signin_id: str) -> PendingSignIn | None:
        row = await self._db.fetchone("SELECT id, doc FROM signins WHERE id = ?", (signin_id,))
        return None if row is None else self._decode(row[0], row[1])

    async def pending(self, *, now: datetime | None = None) -> list[PendingSignIn]:
        """Unused, unexpired sign-ins, oldest first."""
        rows = await self._db.fetchall(
            "SELECT id, doc FROM signins WHERE used = 0 AND expires_at > ? ORDER BY created_at",
            (to_us(now or utc_now()),),
        )
        return [self._decode(row[0], row[1]) for row in rows]

    async def cancel(self, signin_id: str) -> bool:
        """Forget a pending sign-in; whether there was one."""
        async with self._db.transaction() as conn:
            return await conn.execute("DELETE FROM signins WHERE id = ?", (signin_id,)) > 0

    async def prune(self, *, now: datetime | None = None) -> int:
        """Delete used and expired sign-ins; returns how many."""
        async with self._db.transaction() as conn:
            return await conn.execute(
                "DELETE FROM signins WHERE used = 1 OR expires_at <= ?",
                (to_us(now or utc_now()),),
            )

    def _decode(self, signin_id: str, doc: bytes) -> PendingSignIn:
        return PendingSignIn.model_validate_json(
            self._box.decrypt(doc, what=f"sign-in {signin_id}")
        )
