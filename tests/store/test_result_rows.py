"""Schemas 6 and 7: result ids in 16 bytes, docs without the columns their row holds, kind,
trigger, outcome and result code as small integers. A store written by schema 5 (text ids and
codes, whole-result docs) is migrated, reads back the same results, and the same results written
in the new encoding read back identical (as objects and as the API's JSON)."""

from __future__ import annotations

import json
import uuid
import zlib
from collections import Counter
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, get_args

import pytest
import zstandard

from apimd.model.outcome import Outcome, ResultCode
from apimd.model.result import Result, Trigger
from apimd.store.codec import ResultCodec
from apimd.store.migrations import MIGRATIONS
from apimd.store.pg_migrations import PG_MIGRATIONS
from apimd.store.result_rows import CODES, TRIGGERS, code_of, decode_id, encode_id
from apimd.store.timestamps import to_us
from tests.store.conftest import OpenStore, make_result
from tests.store.test_codec import _all, sample

START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    "result_id",
    [
        str(uuid.uuid4()),
        str(uuid.uuid4()).upper(),  # not canonical: kept as text, read back as given
        "r1",
        "x" * 15,  # 0xff + 15 bytes would be 16: stored with a second 0xff
        "x" * 16,
        "é" * 8,
        "21789e20_cdf1_4f81_98e9_30892ce7fd54",
        "21789e20-cdf1-4f81-98e9-30892ce7fd5g",
        " 1789e20-cdf1-4f81-98e9-30892ce7fd54",
    ],
)
def test_every_id_reads_back_as_the_same_string(result_id: str) -> None:
    stored = encode_id(result_id)
    assert decode_id(stored) == result_id
    assert (len(stored) == 16) == _is_uuid(result_id)


def _results() -> list[Result]:
    """UUID and other ids, UTC, other-offset and naive times, workflows with steps, bodies."""
    results = [sample(i) for i in range(120)]
    results = [
        r.model_copy(update={"id": str(uuid.uuid4())}) if i % 2 else r
        for i, r in enumerate(results)
    ]
    paris = timezone(timedelta(hours=1))
    results.append(
        make_result(
            "x" * 15, started_at=START.astimezone(paris), maintenance=True, http_status=None
        )
    )
    naive = START.replace(tzinfo=None) + timedelta(minutes=5)
    results.append(make_result(str(uuid.uuid4()), started_at=naive, trigger="manual"))
    # Every trigger and result code (so every outcome), each stored as its number from schema 7.
    for i, code in enumerate(ResultCode):
        trigger = TRIGGERS[i % len(TRIGGERS)]
        when = START - timedelta(minutes=i + 1)
        results.append(_coded(code, trigger, when))
    return results


def _coded(code: ResultCode, trigger: Trigger, when: datetime) -> Result:
    return make_result(str(uuid.uuid4()), name="coded", code=code, trigger=trigger, started_at=when)


def test_the_codes_cover_every_value_of_the_model() -> None:
    assert set(CODES["trigger"]) == set(get_args(Trigger))
    assert set(CODES["outcome"]) == set(Outcome)
    assert set(CODES["result"]) == set(ResultCode)
    assert set(CODES["kind"]) == set(get_args(Result.model_fields["kind"].annotation))


async def _write_schema_5(
    open_any_store: OpenStore, results: list[Result], patch: pytest.MonkeyPatch
) -> None:
    """A store at schema 5 holding `results` as schema 5 wrote them: text ids, each doc the
    whole result's JSON (a zstd frame without a dictionary, or zlib as schema 1 wrote)."""
    patch.setattr("apimd.store.db.MIGRATIONS", MIGRATIONS[:5])
    patch.setattr("apimd.store.db.LATEST_VERSION", 5)
    patch.setattr("apimd.store.postgres.PG_MIGRATIONS", PG_MIGRATIONS[:5])
    patch.setattr("apimd.store.postgres.PG_LATEST_VERSION", 5)
    store = await open_any_store()
    zstd = zstandard.ZstdCompressor(level=3)
    rows = []
    for i, r in enumerate(results):
        payload = r.model_dump_json().encode()
        doc = zlib.compress(payload, 6) if i % 3 == 0 else zstd.compress(payload)
        rows.append(
            (
                r.id,
                r.kind,
                r.name,
                r.trigger,
                to_us(r.started_at),
                to_us(r.finished_at),
                r.outcome.value,
                r.result.value,
                r.http_status,
                r.timings_ms.total,
                doc,
                int(r.maintenance),
            )
        )
    async with store.db.transaction() as conn:
        await conn.executemany(
            "INSERT INTO results (id, kind, name, trigger, started_at, finished_at, outcome,"
            " result, http_status, total_ms, doc, maintenance)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
    await store.close()


async def test_schema_5_results_are_migrated_and_read_back_identical_to_the_new_encoding(
    open_any_store: OpenStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    results = _results()
    with monkeypatch.context() as patch:
        await _write_schema_5(open_any_store, results, patch)

    store = await open_any_store()  # migration 6: ids to 16 bytes; old docs stay as they are
    ids = {
        decode_id(row[0]): bytes(row[0])
        for row in await store.db.fetchall("SELECT id FROM results")
    }
    assert set(ids) == {r.id for r in results}
    assert all((len(ids[r.id]) == 16) == _is_uuid(r.id) for r in results)
    # migration 7: the codes are numbers (every value of each column seen once at least)
    coded = await store.db.fetchall("SELECT kind, trigger, outcome, result FROM results")
    for index, column in enumerate(CODES):
        assert {row[index] for row in coded} == set(range(len(CODES[column]))), column
    old = await _all(store)
    assert old == {r.id: r for r in results}
    for result in results[:3] + results[120:]:
        assert await store.get_result(result.id) == result
    await _check_queries(store, results)

    # The same results in the new encoding: docs without the row's columns.
    async with store.db.transaction() as conn:
        await conn.execute("DELETE FROM results")
    assert await store.add_results(results) == len(results)
    new = await _all(store)
    assert new == old
    for row in await store.db.fetchall("SELECT id, doc FROM results"):
        result_id = decode_id(row[0])
        payload = store.results.codec.payload(bytes(row[1]), result_id)
        utc = result_id not in (results[120].id, results[121].id)  # Paris, naive
        assert (f'"id":"{result_id}"'.encode() not in payload) == utc
    assert {k: v.model_dump_json() for k, v in new.items()} == {
        k: v.model_dump_json() for k, v in old.items()
    }
    assert json.loads(new[results[120].id].model_dump_json())["started_at"].endswith("+01:00")
    await _check_queries(store, results)
    # Adding them again stores nothing twice.
    assert await store.add_results(results) == 0
    count = await store.db.fetchone("SELECT COUNT(*) FROM results")
    assert count is not None and count[0] == len(results)


async def test_schema_7_rows_are_migrated_to_integer_times_and_read_back_identical(
    open_any_store: OpenStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rows as schema 7 wrote them (the end as `finished_at`, `total_ms` a float, docs without
    the row's columns) read back field by field identical after migration 8, and the same
    results written in the new layout too; `recent` gives the same totals."""
    results = _results()
    with monkeypatch.context() as patch:
        patch.setattr("apimd.store.db.MIGRATIONS", MIGRATIONS[:7])
        patch.setattr("apimd.store.db.LATEST_VERSION", 7)
        patch.setattr("apimd.store.postgres.PG_MIGRATIONS", PG_MIGRATIONS[:7])
        patch.setattr("apimd.store.postgres.PG_LATEST_VERSION", 7)
        store = await open_any_store()
        codec = ResultCodec()
        rows = []
        for r in results:
            doc, ref = codec.encode(r)
            assert ref is None
            rows.append(
                (
                    encode_id(r.id),
                    code_of("kind", r.kind),
                    r.name,
                    code_of("trigger", r.trigger),
                    to_us(r.started_at),
                    to_us(r.finished_at),
                    code_of("outcome", r.outcome),
                    code_of("result", r.result),
                    r.http_status,
                    r.timings_ms.total,
                    doc,
                    int(r.maintenance),
                )
            )
        async with store.db.transaction() as conn:
            await conn.executemany(
                "INSERT INTO results (id, kind, name, trigger, started_at, finished_at, outcome,"
                " result, http_status, total_ms, doc, maintenance)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
        await store.close()

    store = await open_any_store()  # migration 8
    old = await _all(store)
    assert old == {r.id: r for r in results}
    for result in results:
        found = await store.get_result(result.id)
        assert found is not None
        for field in Result.model_fields:
            assert getattr(found, field) == getattr(result, field), field
    times = await store.db.fetchall("SELECT id, duration_us, total_us FROM results")
    by_id = {r.id: r for r in results}
    for row in times:
        result = by_id[decode_id(row[0])]
        assert row[1] == to_us(result.finished_at) - to_us(result.started_at)
        assert row[2] == round(result.timings_ms.total * 1000)
    await _check_queries(store, results)
    recent_before = await store.recent_results(START - timedelta(days=1))

    async with store.db.transaction() as conn:
        await conn.execute("DELETE FROM results")
    assert await store.add_results(results) == len(results)
    assert await _all(store) == old
    assert await store.recent_results(START - timedelta(days=1)) == recent_before
    coded = recent_before["coded"]
    assert sorted(coded.totals) == sorted(
        r.timings_ms.total
        for r in results
        if r.name == "coded" and r.outcome is not Outcome.SKIPPED
    )
    await store.close()


async def _check_queries(store: Any, results: list[Result]) -> None:
    """The queries that filter or count on the coded columns give what the results say."""
    coded = [r for r in results if r.name == "coded"]
    for outcome in Outcome:
        page = await store.list_results(name="coded", outcome=outcome, limit=1000)
        assert {r.id for r in page.results} == {r.id for r in coded if r.outcome is outcome}
    recent = (await store.recent_results(START - timedelta(days=1)))["coded"]
    assert recent.counts == Counter(r.outcome for r in coded)
    assert len(recent.totals) == len([r for r in coded if r.outcome is not Outcome.SKIPPED])


def _is_uuid(text: str) -> bool:
    try:
        return str(uuid.UUID(text)) == text
    except ValueError:
        return False
