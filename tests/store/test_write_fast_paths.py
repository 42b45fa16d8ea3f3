"""The store's fast paths for writing results (issue 18) keep what the general paths store: a
batch of one part written in one trip (`Database.transact`) against the pipelined parts, bytes
bound as `bytearray` against `bytes`, a PASS body's digest reused against computed again, target
numbers remembered against looked up, a group commit awaited without `asyncio.shield`."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import cast

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from apimd.model.outcome import ResultCode
from apimd.model.result import ResponseRecord, Result
from apimd.store import SqliteStore, results
from apimd.store.codec import ResultCodec, body_hash
from apimd.store.errors import StoreError
from apimd.store.group_commit import GroupCommit
from apimd.store.result_rows import _SQLITE_INSERT, SQLITE_COLUMNS, insert_rows, result_row
from apimd.store.sql import Row
from apimd.store.targets import name_of
from tests.store.conftest import OpenStore, make_result
from tests.store.test_codec import sample

_TABLES = {
    # (A target by name: parts number the names each new to it, in their own order.)
    "results": f"SELECT {', '.join(SQLITE_COLUMNS).replace('target', name_of())}"
    " FROM results ORDER BY seq",
    "result_bodies": "SELECT hash, last_used, body FROM result_bodies ORDER BY hash",
    "rollups": "SELECT * FROM rollups ORDER BY name, hour",
    "rollup_buckets": "SELECT * FROM rollup_buckets ORDER BY name, hour, bucket",
    "targets": "SELECT name FROM targets ORDER BY name",
}


def _values(row: Row) -> tuple[object, ...]:
    return tuple(cast("Sequence[object]", row))  # (sqlite3.Row: a sequence of its values)


async def _tables(store: SqliteStore) -> dict[str, list[tuple[object, ...]]]:
    return {
        name: [_values(row) for row in await store.db.fetchall(sql)]
        for name, sql in _TABLES.items()
    }


def _batches() -> list[list[Result]]:
    """Results in batches as a group commit hands them over: PASS bodies repeated per target (so
    rows refer to stored bodies), failures, workflows, a new target now and then."""
    same = json.dumps({"status": "ok", "items": list(range(50))})
    made = [sample(i, body=same if i % 4 else None) for i in range(90)]
    return [made[start : start + 9] for start in range(0, len(made), 9)]


async def test_a_batch_of_one_part_stores_what_the_pipelined_parts_store(
    open_test_store: OpenStore, db_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each batch written in one trip (it fits in a part) and the same batches written a result
    to a part through `transact_parts` leave every table byte for byte the same."""
    one_trip = await open_test_store(path=db_dir / "one.db")
    for batch in _batches():
        assert await one_trip.add_results(batch) == len(batch)
    monkeypatch.setattr(results, "PART", 1)
    parts = await open_test_store(path=db_dir / "parts.db")
    for batch in _batches():
        assert await parts.add_results(batch) == len(batch)
    assert await _tables(one_trip) == await _tables(parts)
    assert (await one_trip.list_results(limit=1000)).results == (
        await parts.list_results(limit=1000)
    ).results


_IDS = (
    "0b7a3a5e-8f43-4c59-9d0c-2b8f4a1e6c3d",  # a UUID: 16 bytes
    "0B7A3A5E-8F43-4C59-9D0C-2B8F4A1E6C3D",  # not lowercase: text
    "run-15-chars-xx",  # \xff\xff + 15 bytes
    "ü\x00",
)
_DOCS = (b"\x00", b"\x01\x02\xff" * 40, bytes(range(256)))


async def test_a_row_bound_with_bytearrays_is_the_row_bound_with_bytes(
    open_test_store: OpenStore, db_dir: Path
) -> None:
    """`insert_rows` binds a row's id and doc as `bytearray` (sqlite3 adapts `bytes` first):
    the row it stores is the one the same values bound as `bytes` store, BLOBs both."""
    store = await open_test_store(path=db_dir / "rows.db")
    select = f"SELECT {', '.join(SQLITE_COLUMNS)}, typeof(id), typeof(doc) FROM results"
    for result_id in _IDS:
        for doc in _DOCS:
            result = make_result(result_id, started_at=datetime(2026, 3, 1, 12, 0, tzinfo=UTC))
            row = result_row(result, doc, 1)
            assert isinstance(row[0], bytes) and isinstance(row[10], bytes)
            stored: list[list[tuple[object, ...]]] = []
            for fast in (False, True):
                async with store.db.transaction() as conn:
                    await conn.execute(
                        "INSERT INTO targets (id, name) VALUES (1, 'list-orders')"
                        " ON CONFLICT DO NOTHING"
                    )
                    if fast:
                        assert await insert_rows(conn, [row]) == {row[0]}
                    else:
                        await conn.executemany(_SQLITE_INSERT, [row])
                    stored.append([_values(found) for found in await conn.fetchall(select)])
                    await conn.execute("DELETE FROM results")
            assert stored[0] == stored[1]
            assert stored[0][0][-2:] == ("blob", "blob")
            assert stored[0][0][1] == row[0] and stored[0][0][6] == doc


_BODIES = ("", "a", "b", json.dumps({"ok": True}), json.dumps({"ok": False}))


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["t1", "t2"]), st.sampled_from(_BODIES), st.booleans()),
        max_size=30,
    )
)
def test_a_reused_body_digest_is_the_digest_of_the_body(
    runs: Sequence[tuple[str, str, bool]],
) -> None:
    """A PASS body the same as its target's previous one refers to it by `body_hash` of its name
    and body, whether the codec hashes it again or reuses the digest of an equal body (equal
    bodies here are distinct `str` objects, as each response's are); a failure's body is never
    referred to, and does not count as its target's previous body."""
    codec = ResultCodec()
    previous: dict[str, str] = {}
    for i, (name, body, passed) in enumerate(runs):
        text = "".join(list(body))  # a new object for a non-empty body
        code = ResultCode.COMPLETE if passed else ResultCode.HTTP_SERVER_ERROR
        result = make_result(
            f"r{i}", name=name, code=code, response=ResponseRecord(headers={}, body=text)
        )
        payload, ref = codec.encode_payload(result)
        if passed and text and previous.get(name) == text:
            assert ref == (body_hash(name, text), text)
            assert payload[1:17] == body_hash(name, text)
        else:
            assert ref is None
        if passed and text:
            previous[name] = text


async def test_a_number_given_in_a_rolled_back_batch_is_not_remembered(
    open_any_store: OpenStore,
) -> None:
    """Target numbers are remembered once committed: a batch that numbered a new name and then
    failed leaves no number behind, and the name gets its own when it is stored."""
    store = await open_any_store()
    assert await store.add_results([sample(0)]) == 1
    too_early = datetime(1800, 1, 1, tzinfo=UTC)  # no key holds it on SQLite
    ghost = make_result("ghost-1", name="ghost", started_at=too_early)
    if store.db.dialect == "sqlite":
        with pytest.raises(StoreError):
            await store.add_results([ghost])
    other = make_result("other-1", name="other")
    assert await store.add_results([other]) == 1
    ghost = make_result("ghost-2", name="ghost")
    assert await store.add_results([ghost]) == 1
    assert [r.id for r in (await store.list_results(name="ghost")).results] == ["ghost-2"]
    assert [r.id for r in (await store.list_results(name="other")).results] == ["other-1"]
    assert (await store.get_result("ghost-2")) == ghost
    await store.close()
    store = await open_any_store()  # a new process: numbers from the store only
    assert (await store.get_result("ghost-2")) == ghost
    assert (await store.get_result("other-1")) == other


async def test_a_cancelled_caller_of_a_group_commit_leaves_its_item_and_the_others_written() -> (
    None
):
    """A caller cancelled while its batch is written is cancelled alone: the item is written
    with its batch, the others return once it is committed."""
    written: list[list[str]] = []
    release = asyncio.Event()

    async def write_many(items: Sequence[str]) -> None:
        await release.wait()
        written.append(list(items))

    commits: GroupCommit[str] = GroupCommit(write_many)
    callers = [asyncio.create_task(commits.add(item)) for item in ("a", "b", "c")]
    await asyncio.sleep(0.01)
    callers[1].cancel()
    await asyncio.sleep(0)
    release.set()
    outcomes = await asyncio.gather(*callers, return_exceptions=True)
    assert outcomes[0] is None and outcomes[2] is None
    assert isinstance(outcomes[1], asyncio.CancelledError)
    await commits.drain()
    assert written == [["a", "b", "c"]]
    await asyncio.wait_for(commits.add("d"), 1)
    assert written[-1] == ["d"]
