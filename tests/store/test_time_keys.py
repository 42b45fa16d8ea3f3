"""Schema 9 on SQLite: results kept under a key made of their start (`apimd.store.result_keys`),
`started_at` computed from it, no time index, ids indexed by their last bytes. A store written by
schema 8 is migrated and reads back the same results in the same order (ties in one microsecond
too), pages, cursors, `recent`, `latest` and `prune` give what they gave."""

from __future__ import annotations

import itertools
import sqlite3
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from apimd.model.result import Result
from apimd.store.codec import ResultCodec
from apimd.store.errors import StoreError
from apimd.store.migrations import MIGRATIONS
from apimd.store.result_keys import SEQ_SHIFT
from apimd.store.result_rows import CODES, PACKED, RESULT_COLUMNS, result_row
from apimd.store.results import _make_cursor
from apimd.store.targets import target_ids
from apimd.store.timestamps import to_us
from tests.store.conftest import OpenStore, make_result
from tests.store.test_codec import sample
from tests.store.test_result_rows import _check_queries as check_queries
from tests.store.test_result_rows import _results as every_code

START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _results() -> list[Result]:
    """Realistic results, ties in one microsecond (written out of id order), text ids sharing
    their last bytes, a start before 1970."""
    results = [
        sample(i).model_copy(update={"id": str(uuid.uuid4())}) if i % 2 else sample(i)
        for i in range(60)
    ]
    tie = START + timedelta(seconds=30, microseconds=7)
    results += [make_result(f"tie-{i}", started_at=tie, total_ms=i) for i in (3, 1, 2, 0)]
    results += [make_result(f"{prefix}-0001", name="shared") for prefix in "ab"]
    results.append(make_result("old", started_at=datetime(1969, 7, 20, 20, 17, tzinfo=UTC)))
    # Every trigger and result code, maintenance, other offsets and naive times.
    return results + every_code()[120:]


async def _order(store: Any, **filters: Any) -> list[str]:
    """Ids of every page of a listing, in page order (small pages: many cursors)."""
    ids: list[str] = []
    cursor = None
    while True:
        page = await store.list_results(limit=7, cursor=cursor, **filters)
        ids += [r.id for r in page.results]
        if not page.next_cursor:
            return ids
        cursor = page.next_cursor


async def _write_schema_8(open_test_store: OpenStore, results: list[Result]) -> str:
    """A store at schema 8 holding `results` as schema 8 wrote them (in that order); returns a
    cursor it gave after the 20th newest."""
    store = await open_test_store()
    codec = ResultCodec()
    rows = []
    for result in results:
        doc, ref = codec.encode(result)
        assert ref is None
        rows.append((result, doc))
    async with store.db.transaction() as conn:
        ids = await target_ids(conn, [r.name for r in results])
        await conn.executemany(
            f"INSERT INTO results ({', '.join(RESULT_COLUMNS)})"
            f" VALUES ({', '.join('?' * len(RESULT_COLUMNS))})",
            [result_row(r, doc, ids[r.name]) for r, doc in rows],
        )
    twentieth = (
        await store.db.fetchall(
            "SELECT started_at, seq FROM results ORDER BY started_at DESC, seq DESC LIMIT 1 OFFSET 19"
        )
    )[0]
    await store.close()
    return _make_cursor(int(twentieth[0]), int(twentieth[1]))


def _newest_first(results: list[Result]) -> list[str]:
    """Ids by start, newest first; of one start, the last written first."""
    written = {r.id: at for at, r in enumerate(results)}
    ordered = sorted(results, key=lambda r: (to_us(r.started_at), written[r.id]), reverse=True)
    return [r.id for r in ordered]


async def test_schema_8_rows_are_migrated_to_start_keys_and_read_back_identical(
    open_test_store: OpenStore, db_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    results = _results()
    with monkeypatch.context() as patch:
        patch.setattr("apimd.store.db.MIGRATIONS", MIGRATIONS[:8])
        patch.setattr("apimd.store.db.LATEST_VERSION", 8)
        cursor = await _write_schema_8(open_test_store, results)

    store = await open_test_store()  # migration 9
    indexes = await store.db.fetchall("SELECT name FROM pragma_index_list('results')")
    assert {row[0] for row in indexes} == {"results_by_name", "results_by_id"}
    columns = await store.db.fetchall("SELECT name, hidden FROM pragma_table_xinfo('results')")
    assert {row[0]: row[1] for row in columns}["started_at"] == 2  # virtual: no bytes
    for result in results:
        found = await store.get_result(result.id)
        assert found is not None
        for field in Result.model_fields:
            assert getattr(found, field) == getattr(result, field), field
    order = _newest_first(results)
    assert await _order(store) == order
    await check_queries(store, results)
    ties = order.index("tie-0")
    assert order[ties : ties + 4] == ["tie-0", "tie-2", "tie-1", "tie-3"]
    # A cursor given before the migration continues where it stood.
    page = await store.list_results(limit=1000, cursor=cursor)
    assert [r.id for r in page.results] == order[20:]

    # The same results written anew give the same answers.
    fresh = await open_test_store(path=db_dir / "fresh.db")
    assert await fresh.add_results(results) == len(results)
    window = {"since": START + timedelta(seconds=10), "until": START.replace(minute=1)}
    for filters in ({}, {"name": "target-1"}, window):
        assert await _order(store, **filters) == await _order(fresh, **filters)
    since = START - timedelta(days=1)
    assert await store.recent_results(since) == await fresh.recent_results(since)
    assert await store.latest_results() == await fresh.latest_results()
    await fresh.close()

    # Written after it: after the results of the same microsecond, and stored once.
    tie = results[60].started_at
    assert await store.add_results([make_result("tie-4", started_at=tie), results[0]]) == 1
    assert (await _order(store))[ties : ties + 5] == ["tie-4", *order[ties : ties + 4]]
    older = [r for r in results if to_us(r.started_at) < to_us(START)]
    assert await store.prune_results(START) == len(older)  # "old" (1969) among them
    assert "old" not in await _order(store)


async def test_results_are_found_by_ids_that_share_their_last_bytes(
    open_any_store: OpenStore,
) -> None:
    store = await open_any_store()
    results = [make_result(f"{prefix}-0001", total_ms=i) for i, prefix in enumerate("abc")]
    assert await store.add_results(results[:2]) == 2
    assert await store.add_results(results) == 1  # the first two are stored already
    for result in results:
        assert await store.get_result(result.id) == result
    assert await store.get_result("d-0001") is None


async def test_a_start_no_key_holds_is_refused(open_test_store: OpenStore) -> None:
    store = await open_test_store()
    with pytest.raises(StoreError, match="1827-2112"):
        await store.add_results([make_result("far", started_at=datetime(2113, 1, 1, tzinfo=UTC))])
    assert await store.get_result("far") is None
    assert SEQ_SHIFT == 11  # (what the message's years are for)


async def test_a_listing_bounded_at_any_instant_is_answered(open_any_store: OpenStore) -> None:
    """`since`/`until` anywhere a datetime reaches (`GET /v1/results?since=9999-12-31T23:59:59Z`
    was an OverflowError, a 500): outside the years a key holds, a bound takes all or nothing."""
    store = await open_any_store()
    assert await store.add_results([make_result("now", started_at=START)]) == 1
    latest = datetime.max.replace(tzinfo=UTC)
    earliest = datetime.min.replace(tzinfo=UTC)
    assert await _order(store, since=latest) == []
    assert await _order(store, until=latest) == ["now"]
    assert await _order(store, since=earliest) == ["now"]
    assert await _order(store, until=earliest) == []
    assert await _order(store, since=datetime(2200, 1, 1, tzinfo=UTC)) == []


def test_every_code_fits_its_packed_bits() -> None:
    """SQLite packs the codes in one integer: a value past its width would change another's."""
    for column, (_, width) in PACKED.items():
        assert len(CODES.get(column, ("no", "yes"))) <= 1 << width, column
    spans = sorted((at, at + width) for at, width in PACKED.values())
    assert all(end <= start for (_, end), (start, _) in itertools.pairwise(spans))


async def test_results_started_in_one_microsecond_keep_their_write_order(
    open_test_store: OpenStore,
) -> None:
    """Results of one start in one batch (among others) and in a later one each get a key of
    their own, in write order."""
    store = await open_test_store()
    tie = START + timedelta(seconds=5, microseconds=3)
    first = [
        make_result(f"tie-{i}", started_at=tie if i % 3 else tie + timedelta(microseconds=i))
        for i in range(151)
    ]
    assert await store.add_results(first) == len(first)
    later = [make_result(f"late-{i}", started_at=tie) for i in range(5)]
    assert await store.add_results([*later[:3], first[7], *later[3:]]) == len(later)
    written = [*first, *later]
    assert await _order(store) == _newest_first(written)
    keys = await store.db.fetchall("SELECT seq FROM results")
    assert len({row[0] for row in keys}) == len(written)
    for result in written:
        assert await store.get_result(result.id) == result


async def test_more_results_in_one_microsecond_than_its_keys_are_refused(
    open_test_store: OpenStore,
) -> None:
    """2,048 results may start in one microsecond; a batch holding one more is refused whole,
    and what was stored stays."""
    store = await open_test_store()
    tie = START + timedelta(microseconds=1)
    assert await store.add_results([make_result("before", started_at=tie)]) == 1
    many = [make_result(f"tie-{i}", started_at=tie) for i in range(1 << SEQ_SHIFT)]
    with pytest.raises(sqlite3.IntegrityError, match="datatype mismatch"):
        await store.add_results(many)
    assert await _order(store) == ["before"]
    assert await store.add_results(many[1:]) == len(many) - 1  # 2,048 in all
