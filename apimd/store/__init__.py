"""apimd's store, on SQLite (aiosqlite, the default) or PostgreSQL (psycopg): migrations, repositories,
secrets encrypted at rest, results, rollups and statistics, apply/export. `open_store` is the entry point."""

from apimd.model.signin import SIGNIN_TTL, PendingSignIn, new_state
from apimd.store.apply import ApplyReport
from apimd.store.errors import (
    CorruptRecord,
    InvalidCursor,
    NewerSchemaError,
    ResourceInUse,
    ResourceNotFound,
    SecretKeyError,
    StoreError,
    StoreInUse,
    StoreUnavailable,
)
from apimd.store.results import BODY_LIMIT, ResultPage
from apimd.store.store import SqliteStore, Store, open_store

__all__ = [
    "BODY_LIMIT",
    "SIGNIN_TTL",
    "ApplyReport",
    "CorruptRecord",
    "InvalidCursor",
    "NewerSchemaError",
    "PendingSignIn",
    "ResourceInUse",
    "ResourceNotFound",
    "ResultPage",
    "SecretKeyError",
    "SqliteStore",
    "Store",
    "StoreError",
    "StoreInUse",
    "StoreUnavailable",
    "new_state",
    "open_store",
]
