"""`apimd migrate`'s copy (SPEC §13): everything a SQLite store holds reads back the same from the
PostgreSQL store it was copied into, counts verified; a database in use is never written over."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from apimd.store import Store, StoreError, open_store
from apimd.store.result_rows import decode_id
from apimd.store.transfer import TABLES, copy_database
from tests.store.conftest import TEST_KEY, make_result
from tests.store.test_secrets import read_every_kind_of_secret_back, write_every_kind_of_secret

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


async def test_a_copied_store_reads_back_the_same(db_dir: Path, pg_url: str) -> None:
    source = await open_store(db_dir / "a.db", secret_key=TEST_KEY, key_file=None, owner=True)
    target = await open_store(pg_url, secret_key=TEST_KEY, key_file=None, owner=True)
    try:
        await write_every_kind_of_secret(source)
        # Equal start times: the copy keeps their order (newest first, then by insertion).
        await source.add_results(
            [make_result(f"bulk-{i}", started_at=T0, total_ms=5.0 * i) for i in range(1, 40)]
        )
        token_before = await source.load_token("example-token")
        page_before = await source.list_results(limit=1000)
        stats_before = await source.stats("list-orders", T0, T0 + timedelta(days=1))

        counts = await copy_database(source.db, target.db)

        assert {c.table for c in counts} == set(TABLES)
        assert all(c.source == c.target for c in counts)
        assert next(c for c in counts if c.table == "results").target == 40
        assert await target.load_token("example-token") == token_before
        assert (await target.list_results(limit=1000)).results == page_before.results
        assert await target.stats("list-orders", T0, T0 + timedelta(days=1)) == stats_before
        assert await target.export(secrets=True) == await source.export(secrets=True)
        await read_every_kind_of_secret_back(target)
    finally:
        await source.close()
        await target.close()


async def test_a_database_that_holds_data_is_refused(db_dir: Path, pg_url: str) -> None:
    source = await open_store(db_dir / "a.db", secret_key=TEST_KEY, key_file=None, owner=True)
    target = await open_store(pg_url, secret_key=TEST_KEY, key_file=None, owner=True)
    try:
        await target.add_result(make_result("already-there"))
        await source.add_result(make_result("from-sqlite"))
        with pytest.raises(StoreError, match=r"is not empty \(it has targets, results, rollups"):
            await copy_database(source.db, target.db)
        assert await target.get_result("from-sqlite") is None
    finally:
        await source.close()
        await target.close()


async def test_a_table_streams_in_batches_in_order(store: Store) -> None:
    """What the copy reads a big table with, on both databases: every row once, in order, at
    most `size` rows in memory."""
    await store.add_results([make_result(f"s-{i:02d}") for i in range(25)])
    batches = [
        [decode_id(row["id"]) for row in rows]
        async for rows in store.db.stream("SELECT id FROM results ORDER BY seq", size=10)
    ]
    assert [len(b) for b in batches] == [10, 10, 5]
    assert [i for b in batches for i in b] == [f"s-{i:02d}" for i in range(25)]


async def test_results_compressed_with_a_dictionary_and_bodies_by_hash_copy_over(
    db_dir: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from apimd.store import codec
    from tests.store.test_codec import sample

    monkeypatch.setattr(codec, "TRAIN_AFTER", 100)
    source = await open_store(db_dir / "a.db", secret_key=TEST_KEY, key_file=None, owner=True)
    target = await open_store(pg_url, secret_key=TEST_KEY, key_file=None, owner=True)
    try:
        results = [sample(i, body='{"same": true}' if i % 2 else None) for i in range(200)]
        await source.add_results(results[:150])
        await source.add_results(results[150:])  # written with dictionary 1
        counts = {c.table: c.target for c in await copy_database(source.db, target.db)}
        assert counts["result_dicts"] == 1 and counts["result_bodies"] >= 1
        page = await target.list_results(limit=1000)
        assert {r.id: r for r in page.results} == {r.id: r for r in results}
    finally:
        await source.close()
        await target.close()
