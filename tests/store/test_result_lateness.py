"""`lateness_ms` of scheduled results (issue 18 item 2): stamped from the firing's due instant when
the result is recorded, stored, and absent (None) on rows written before it was kept."""

from __future__ import annotations

import zlib
from datetime import timedelta

from apimd.store import SqliteStore
from apimd.store.result_rows import insert_rows, result_row
from apimd.store.targets import target_ids
from tests.store.conftest import OpenStore, make_result


async def test_a_scheduled_result_records_how_late_it_started(store: SqliteStore) -> None:
    """And, SPEC §4, its schedule and the instant its firing was due (the retest found neither)."""
    result = make_result("r-late")
    due = result.started_at - timedelta(milliseconds=37.5)
    store.due[result.id] = ("every-minute", due)
    await store.add_result(result)
    found = await store.get_result(result.id)
    assert found is not None and found.lateness_ms == 37.5
    assert (found.schedule, found.scheduled_at) == ("every-minute", due)
    page = await store.list_results(name=result.name)
    assert [(r.lateness_ms, r.schedule) for r in page.results] == [(37.5, "every-minute")]


async def test_a_result_without_a_due_instant_has_no_lateness(store: SqliteStore) -> None:
    await store.add_result(make_result("r-manual", trigger="manual"))
    found = await store.get_result("r-manual")
    assert found is not None and found.lateness_ms is None


async def test_rows_written_before_lateness_was_kept_read_back(open_any_store: OpenStore) -> None:
    store = await open_any_store()
    old = [make_result(f"old-{i}") for i in range(3)]
    async with store.db.transaction() as conn:
        for result in old:
            # The JSON of a release without the field (and schema 1's encoding, still read).
            doc = result.model_dump_json(exclude={"lateness_ms", "schedule", "scheduled_at"})
            assert "lateness_ms" not in doc
            ids = await target_ids(conn, [result.name])
            row = result_row(result, zlib.compress(doc.encode(), 6), ids[result.name])
            await insert_rows(conn, [row])
    for result in old:
        found = await store.get_result(result.id)
        assert found == result and found.lateness_ms is None and found.schedule is None
    page = await store.list_results(name=old[0].name)
    assert {r.id for r in page.results} == {r.id for r in old}


async def test_a_scheduled_results_due_instant_reads_back_whether_or_not_its_doc_holds_it(
    open_any_store: OpenStore,
) -> None:
    """A doc leaves `scheduled_at` out when its start less its lateness gives it back exactly;
    every result reads back as written, its due instant kept or given back."""
    store = await open_any_store()
    base = make_result("s-0")
    start = base.started_at
    written = [
        # run: due 1.123 ms before its start (as `stamped` records it)
        base.model_copy(
            update={
                "lateness_ms": 1.123,
                "schedule": "every-minute",
                "scheduled_at": start - timedelta(microseconds=1123),
            }
        ),
        # skipped or lost: no lateness, recorded at its due instant
        make_result("s-1").model_copy(
            update={"schedule": "every-minute", "scheduled_at": make_result("s-1").started_at}
        ),
        # a due instant the start and lateness do not give: kept as it is
        make_result("s-2").model_copy(
            update={"lateness_ms": 5.0, "schedule": "hourly", "scheduled_at": start}
        ),
        # a due instant without a schedule: kept as it is
        make_result("s-3").model_copy(update={"scheduled_at": start}),
    ]
    codec = store.results.codec
    docs = [codec.encode_payload(result)[0] for result in written]
    assert [b"scheduled_at" in doc for doc in docs] == [False, False, True, True]
    await store.add_results(written)
    for result in written:
        assert await store.get_result(result.id) == result
