"""Target names by number (`apimd.store.targets`), on SQLite and PostgreSQL."""

from __future__ import annotations

from apimd.model import Call, Project
from apimd.store import SqliteStore
from apimd.store.targets import target_ids


async def numbers(store: SqliteStore) -> dict[str, int]:
    rows = await store.db.fetchall("SELECT id, name FROM targets")
    return {str(row[1]): int(row[0]) for row in rows}


async def test_apply_numbers_every_target(store: SqliteStore) -> None:
    """An apply numbers its calls and workflows in its own transaction: agents that write the
    first results of 1,000 new names at once no longer contend for the next number (issue 17:
    their transactions retried the numbering for most of a minute)."""
    calls = [Call(name=f"call-{i:04d}", url=f"https://api.example.com/{i}") for i in range(600)]
    await store.apply(Project(calls=calls))
    numbered = await numbers(store)
    assert set(numbered) == {call.name for call in calls}
    assert sorted(numbered.values()) == list(range(1, 601))
    # A second apply with one more call keeps the numbers given and numbers the new one next.
    await store.apply(Project(calls=[*calls, Call(name="a-new-one", url="https://x.example")]))
    again = await numbers(store)
    assert again == {**numbered, "a-new-one": 601}


async def test_names_numbered_in_one_pass_keep_their_numbers(store: SqliteStore) -> None:
    """Many new names (more than one statement's 500) are numbered after the largest number,
    distinct, and a name already numbered keeps its number."""
    async with store.db.transaction() as conn:
        first = await target_ids(conn, ["b", "a"])
    assert first == {"a": 1, "b": 2}
    names = [f"n{i:04d}" for i in range(1200)]
    async with store.db.transaction() as conn:
        ids = await target_ids(conn, ["a", *names, "b"])
    assert ids["a"] == 1 and ids["b"] == 2
    assert sorted(ids[name] for name in names) == list(range(3, 1203))
    assert await numbers(store) == ids
