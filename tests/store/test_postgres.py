"""The PostgreSQL store's own rules (SPEC §13): migrations twinned with SQLite's and applied once
under an advisory lock by agents starting together, procrastinate's schema embedded, a newer schema
refused, the same key check as SQLite, clear errors, and no secret in clear in any table."""

from __future__ import annotations

import asyncio
import importlib.metadata
import os
import sqlite3
from pathlib import Path

import psycopg
import pytest
from cryptography.fernet import Fernet

from apimd.store import NewerSchemaError, SecretKeyError, StoreError, StoreInUse, open_store
from apimd.store.migrations import LATEST_VERSION, MIGRATIONS
from apimd.store.pg_migrations import PG_LATEST_VERSION, PG_MIGRATIONS
from apimd.store.postgres import PgDatabase
from apimd.store.transfer import NOT_COPIED, TABLES
from tests import postgres
from tests.store.conftest import TEST_KEY, make_result
from tests.store.test_secrets import (
    SECRETS,
    encodings,
    read_every_kind_of_secret_back,
    write_every_kind_of_secret,
)


def test_every_sqlite_migration_has_its_postgresql_twin() -> None:
    """A schema change made on one store only fails here: add the same numbered migration to
    both `apimd.store.migrations` and `apimd.store.pg_migrations`."""
    assert [(m.version, m.description) for m in PG_MIGRATIONS] == [
        (m.version, m.description) for m in MIGRATIONS
    ]
    assert PG_LATEST_VERSION == LATEST_VERSION


async def test_both_schemas_have_the_tables_apimd_migrate_copies(pg_url: str, db_dir: Path) -> None:
    await (await open_store(pg_url, secret_key=TEST_KEY, key_file=None, owner=False)).close()
    await (
        await open_store(db_dir / "a.db", secret_key=TEST_KEY, key_file=None, owner=False)
    ).close()
    with sqlite3.connect(db_dir / "a.db") as lite:
        sqlite_tables = {
            row[0] for row in lite.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        }
    lite.close()
    with psycopg.connect(pg_url) as conn:
        pg_tables = {
            row[0]
            for row in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
                " AND tablename NOT LIKE 'procrastinate%'"
            )
        }
    assert sqlite_tables == pg_tables == set(TABLES) | set(NOT_COPIED)


async def test_a_new_database_gets_every_migration_and_procrastinate(pg_url: str) -> None:
    store = await open_store(pg_url, secret_key=TEST_KEY, key_file=None, owner=True)
    assert await store.integrity_check() == ["ok"]
    await store.close()
    with psycopg.connect(pg_url) as conn:
        versions = [row[0] for row in conn.execute("SELECT version FROM schema_version")]
        release = conn.execute("SELECT value FROM meta WHERE key = 'procrastinate_schema'")
        jobs = conn.execute("SELECT COUNT(*) FROM procrastinate_jobs").fetchone()
        assert release.fetchone() == (importlib.metadata.version("procrastinate"),)
    assert versions == list(range(1, PG_LATEST_VERSION + 1))
    assert jobs == (0,)


async def test_agents_starting_together_migrate_once(pg_url: str) -> None:
    stores = await asyncio.gather(
        *(open_store(pg_url, secret_key=TEST_KEY, key_file=None, owner=False) for _ in range(5))
    )
    try:
        await stores[0].save_counter("shared", 4)
        assert [await s.load_counter("shared") for s in stores] == [4] * 5
    finally:
        for store in stores:
            await store.close()
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT COUNT(*) FROM schema_version").fetchone() == (
            PG_LATEST_VERSION,
        )
        assert conn.execute("SELECT COUNT(*) FROM meta WHERE key = 'secret_check'").fetchone() == (
            1,
        )


async def test_one_owner_at_a_time_named_to_the_next(pg_url: str) -> None:
    """Like the SQLite file's lock: a second daemon (or `apimd run --db`) on the same database is
    refused, naming the first, until the first closes."""
    first = await open_store(
        pg_url, secret_key=TEST_KEY, key_file=None, owner=True, owner_description="the daemon"
    )
    try:
        with pytest.raises(StoreInUse) as caught:
            await open_store(pg_url, secret_key=TEST_KEY, key_file=None, owner=True)
        assert str(caught.value).startswith(
            f"the PostgreSQL database apimd_test_{pg_url.rsplit('_', 1)[1]} on 127.0.0.1:5432 "
            f"is in use by the daemon (pid {os.getpid()})"
        )
        reader = await open_store(pg_url, secret_key=TEST_KEY, key_file=None, owner=False)
        await reader.close()
    finally:
        await first.close()
    await (await open_store(pg_url, secret_key=TEST_KEY, key_file=None, owner=True)).close()


async def test_a_database_from_a_newer_apimd_is_refused(pg_url: str) -> None:
    await (await open_store(pg_url, secret_key=TEST_KEY, key_file=None, owner=False)).close()
    with psycopg.connect(pg_url) as conn:
        conn.execute(
            "INSERT INTO schema_version VALUES (%s, 'from the future', '2099-01-01')",
            (PG_LATEST_VERSION + 3,),
        )
    with pytest.raises(NewerSchemaError, match=r"was written by a newer apimd \(schema "):
        await open_store(pg_url, secret_key=TEST_KEY, key_file=None, owner=False)


async def test_a_different_key_is_refused(pg_url: str) -> None:
    await (await open_store(pg_url, secret_key=TEST_KEY, key_file=None, owner=False)).close()
    with pytest.raises(SecretKeyError, match="is not the key PostgreSQL database apimd_test_"):
        await open_store(
            pg_url, secret_key=Fernet.generate_key().decode(), key_file=None, owner=False
        )


async def test_an_unreachable_server_is_a_clear_error_without_the_password() -> None:
    url = "postgresql://apimd:hunter2-secret@127.0.0.1:9/monitoring"
    with pytest.raises(StoreError) as caught:
        await open_store(url, secret_key=TEST_KEY, key_file=None, owner=False)
    message = str(caught.value)
    assert message.startswith("cannot connect to the PostgreSQL database monitoring on 127.0.0.1:9")
    assert "hunter2" not in message


async def test_no_secret_is_in_clear_in_any_table(pg_url: str) -> None:
    """The SQLite leak test's writes, then every row of every table read as text."""
    store = await open_store(pg_url, secret_key=TEST_KEY, key_file=None, owner=False)
    try:
        await write_every_kind_of_secret(store)
        await read_every_kind_of_secret_back(store)
    finally:
        await store.close()
    with psycopg.connect(pg_url) as conn:
        dump = "\n".join(
            str(row[0])
            for table in [*TABLES, "meta"]
            for row in conn.execute(f"SELECT t::text FROM {table} AS t")
        )
    assert "list-orders" in dump  # the dump holds the rows (names are not secret)
    found = [
        f"{secret!r} ({form})"
        for secret in SECRETS
        for form, needle in encodings(secret).items()
        if needle.decode("latin-1") in dump or needle.hex() in dump
    ]
    assert found == []


def _drop_connections(url: str, *, refuse_new: bool = False) -> None:
    """What a server restart does to a store's pooled connections (and, with `refuse_new`, a
    server that stays down)."""
    name = url.rsplit("/", 1)[1]
    with psycopg.connect(postgres.ADMIN_URL, autocommit=True) as admin:
        if refuse_new:
            admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        )


async def test_connections_dropped_by_the_server_cost_no_failed_write(pg_url: str) -> None:
    store = await open_store(pg_url, secret_key=TEST_KEY, key_file=None, owner=True)
    try:
        await store.add_result(make_result("before"))
        _drop_connections(pg_url)
        await store.add_result(make_result("after"))
        assert await store.get_result("after") is not None
    finally:
        await store.close()


async def test_a_server_that_stays_down_is_a_store_error_naming_the_database(pg_url: str) -> None:
    database = await PgDatabase.open(pg_url, wait_s=1)
    try:
        _drop_connections(pg_url, refuse_new=True)
        with pytest.raises(StoreError, match=r"^the PostgreSQL database apimd_test_\w+ on 127"):
            await database.fetchall("SELECT 1")
    finally:
        await database.close()
        with psycopg.connect(postgres.ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'ALTER DATABASE "{pg_url.rsplit("/", 1)[1]}" ALLOW_CONNECTIONS true')
