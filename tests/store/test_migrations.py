"""Schema migrations: from empty, version recorded, a newer database refused, file modes."""

from __future__ import annotations

import sqlite3
import stat
from pathlib import Path

import pytest

from apimd.store import NewerSchemaError, StoreError
from apimd.store.migrations import LATEST_VERSION, MIGRATIONS
from tests.store.conftest import OpenStore


def test_migrations_are_numbered_from_one_without_gaps() -> None:
    assert [m.version for m in MIGRATIONS] == list(range(1, len(MIGRATIONS) + 1))


async def test_a_new_database_is_migrated_and_the_version_recorded(
    open_test_store: OpenStore, db_dir: Path
) -> None:
    store = await open_test_store()
    assert await store.integrity_check() == ["ok"]
    await store.close()
    with sqlite3.connect(db_dir / "apimd.db") as conn:
        versions = [row[0] for row in conn.execute("SELECT version FROM schema_version")]
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
        journal = conn.execute("PRAGMA journal_mode").fetchone()[0]
    conn.close()
    assert versions == list(range(1, LATEST_VERSION + 1))
    assert {"results", "rollups", "resources", "token_runtime", "signins"} <= tables
    assert journal == "wal"


async def test_reopening_applies_nothing_twice(open_test_store: OpenStore, db_dir: Path) -> None:
    await (await open_test_store()).close()
    await (await open_test_store()).close()
    with sqlite3.connect(db_dir / "apimd.db") as conn:
        count = conn.execute("SELECT COUNT(*) FROM schema_version").fetchone()[0]
    conn.close()
    assert count == LATEST_VERSION


async def test_a_database_from_a_newer_apimd_is_refused(
    open_test_store: OpenStore, db_dir: Path
) -> None:
    await (await open_test_store()).close()
    with sqlite3.connect(db_dir / "apimd.db") as conn:
        conn.execute(
            "INSERT INTO schema_version VALUES (?, 'from the future', '2099-01-01')",
            (LATEST_VERSION + 7,),
        )
    conn.close()
    with pytest.raises(NewerSchemaError) as caught:
        await open_test_store()
    assert str(caught.value) == (
        f"apimd.db was written by a newer apimd (schema {LATEST_VERSION + 7}, "
        f"this apimd knows {LATEST_VERSION}); upgrade apimd"
    )


async def test_database_files_are_private(open_test_store: OpenStore, db_dir: Path) -> None:
    store = await open_test_store()
    await store.save_counter("k", 1)
    for name in ("apimd.db", "apimd.db-wal", "apimd.db-shm"):
        mode = stat.S_IMODE((db_dir / name).stat().st_mode)
        assert mode == 0o600, f"{name} has mode {oct(mode)}"


async def test_a_file_that_is_not_a_database_is_a_clear_error(
    open_test_store: OpenStore, db_dir: Path
) -> None:
    (db_dir / "apimd.db").write_bytes(b"not sqlite" * 1000)
    with pytest.raises(StoreError, match="is not an apimd database, or is damaged"):
        await open_test_store()


async def test_a_database_from_before_the_alerts_migration_keeps_its_data(
    open_test_store: OpenStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    from apimd.model.loader import load_project_text
    from apimd.model.maintenance import MaintenanceWindow
    from tests.store.conftest import make_result

    with monkeypatch.context() as patch:
        patch.setattr("apimd.store.db.MIGRATIONS", MIGRATIONS[:2])
        patch.setattr("apimd.store.db.LATEST_VERSION", 2)

        async def unnumbered(_conn: object, _names: list[str]) -> dict[str, int]:
            return {}  # schema 2 had no target numbers (schema 8 gives them at apply)

        patch.setattr("apimd.store.apply.target_ids", unnumbered)
        old = await open_test_store()
        await old.apply(load_project_text("calls: [{name: c, url: 'https://x'}]"))
        await old.save_counter("k", 2)
        await old.close()
    store = await open_test_store()
    assert [c.name for c in (await store.load_project()).calls] == ["c"]
    await store.add_result(make_result("r-1", name="c"))
    assert await store.load_counter("k") == 2
    window = MaintenanceWindow(name="w", cron="0 2 * * 0", duration="1h", targets=["c"])
    await store.project.put("maintenance", window)
    await store.add_result(make_result("r-2", name="c", maintenance=True))
    assert [w.name for w in (await store.load_project()).maintenance] == ["w"]
    stats = await store.stats("c", make_result("x").started_at)
    assert (stats.total, stats.maintenance) == (1, 1)
