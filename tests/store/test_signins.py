"""Pending sign-ins: consumed once, by state, until they expire."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from apimd.store import SIGNIN_TTL, PendingSignIn, SqliteStore, new_state


def signin(**fields: object) -> PendingSignIn:
    return PendingSignIn(
        url="https://login.example.com/authorize?state=…",
        token="example-token",
        code_verifier="verifier",
        variables={"NONCE": "n"},
        remaining_steps=["exchange-code"],
        **fields,
    )


def test_states_are_random_and_256_bits() -> None:
    states = {new_state() for _ in range(100)}
    assert len(states) == 100
    assert all(len(s) == 43 for s in states)


async def test_a_signin_is_consumed_exactly_once(store: SqliteStore) -> None:
    pending = signin()
    assert pending.expires_at - pending.created_at == SIGNIN_TTL
    await store.signins.create(pending)
    assert [s.id for s in await store.signins.pending()] == [pending.id]
    consumed = await store.signins.consume(pending.state)
    assert consumed == pending
    assert await store.signins.consume(pending.state) is None
    assert await store.signins.pending() == []


async def test_a_wrong_state_consumes_nothing(store: SqliteStore) -> None:
    pending = signin()
    await store.signins.create(pending)
    assert await store.signins.consume(pending.state[:-1]) is None
    assert await store.signins.consume("") is None
    assert await store.signins.consume(pending.state) == pending


async def test_an_expired_signin_cannot_be_used(store: SqliteStore) -> None:
    created = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    pending = signin(created_at=created, expires_at=created + SIGNIN_TTL)
    await store.signins.create(pending)
    late = created + SIGNIN_TTL + timedelta(seconds=1)
    assert await store.signins.pending(now=late) == []
    assert await store.signins.consume(pending.state, now=late) is None
    assert await store.signins.consume(pending.state, now=created + timedelta(minutes=9)) == pending


async def test_prune_and_cancel(store: SqliteStore) -> None:
    used, kept, cancelled = signin(), signin(), signin()
    for pending in (used, kept, cancelled):
        await store.signins.create(pending)
    await store.signins.consume(used.state)
    assert await store.signins.cancel(cancelled.id)
    assert not await store.signins.cancel(cancelled.id)
    assert await store.signins.prune() == 1
    assert await store.signins.get(kept.id) == kept
    assert await store.signins.prune(now=kept.expires_at) == 1
    assert await store.signins.get(kept.id) is None
