"""`Store`: the one object the daemon and `apimd run --db` hold, on SQLite or PostgreSQL, and
`open_store` to get it."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime, timedelta
from pathlib import Path

from apimd.dburl import is_postgres_url
from apimd.engine.ports import StateStore
from apimd.model.project import Project
from apimd.model.resources import Variable
from apimd.model.result import Result
from apimd.model.runtime import SentAlert, TokenRuntime
from apimd.model.signin import PendingSignIn
from apimd.model.stats import Stats
from apimd.store.apply import ApplyReport, ProjectStore
from apimd.store.counters import CounterStore
from apimd.store.db import SqliteDatabase
from apimd.store.errors import SecretKeyError
from apimd.store.firings import FiringStore
from apimd.store.lock import OwnerLock
from apimd.store.resources import ResourceStore
from apimd.store.results import RecentRuns, ResultStore
from apimd.store.rollups import query_stats
from apimd.store.secrets import KeySource, SecretBox
from apimd.store.signins import SignInStore
from apimd.store.sql import Database
from apimd.store.timestamps import utc_now
from apimd.store.tokens import TokenRuntimeStore
from apimd.store.variables import VariableStore

Clock = Callable[[], datetime]
log = logging.getLogger(__name__)


async def open_store(
    location: str | Path,
    *,
    secret_key: str | None,
    key_file: Path | None,
    owner: bool,
    owner_description: str = "another apimd process",
    clock: Clock = utc_now,
) -> Store:
    """Open (creating and migrating as needed) the database at `location`: a SQLite file, or a
    `postgresql://` URL (SPEC §13).

    The key is `secret_key` (APIMD_SECRET_KEY) when given, else the one in `key_file`, which is
    created only for a database that holds no secrets yet. With `owner` (a daemon, `apimd run
    --db`), the database is locked for this process until `close()` (a SQLite file by a flock,
    PostgreSQL by a session advisory lock); `StoreInUse` names the owner when another process
    holds it. Close the store (or use `async with`) when done."""
    if is_postgres_url(location):
        from apimd.store.postgres import PgDatabase

        pg = await PgDatabase.open(
            str(location), owner_description=owner_description if owner else None
        )
        try:
            store = Store(pg, await _unlock(pg, KeySource(secret_key, key_file)), None, clock)
            await store.results.open()
            return store
        except BaseException:
            await pg.close()
            raise
    path = Path(location)
    lock = OwnerLock.acquire(path, owner_description) if owner else None
    try:
        db: Database = await SqliteDatabase.open(path)
        try:
            box = await _unlock(db, KeySource(secret_key, key_file))
            store = Store(db, box, lock, clock)
            await store.results.open()
        except BaseException:
            await db.close()
            raise
    except BaseException:
        if lock is not None:
            lock.release()
        raise
    return store


async def _unlock(db: Database, source: KeySource) -> SecretBox:
    """The key, checked against the database's check value (written there by the first open)."""
    row = await db.fetchone("SELECT value FROM meta WHERE key = 'secret_check'")
    box = source.load(may_create=row is None, db_name=db.name)
    async with db.transaction() as conn:
        # ON CONFLICT: agents starting together on one PostgreSQL store; the first one's value
        # wins and the others check their key against it.
        await conn.execute(
            "INSERT INTO meta (key, value) VALUES ('secret_check', ?) ON CONFLICT (key) DO NOTHING",
            (box.check_value().decode(),),
        )
        rows = await conn.fetchall("SELECT value FROM meta WHERE key = 'secret_check'")
    if not box.matches(str(rows[0][0]).encode()):
        raise SecretKeyError(
            f"the secret key from {source.describe()} is not the key {db.name} was written "
            "with; set APIMD_SECRET_KEY (or restore the key file) to the key used when the "
            "database was created"
        )
    return box


class Store:
    """Everything apimd keeps, on SQLite or PostgreSQL. Implements `apimd.engine.ports.StateStore` (every write is
    committed before its coroutine returns), and holds results with their statistics, pending
    sign-ins (`signins`) and the project's resources (`project`: get/list/put/delete)."""

    def __init__(
        self, db: Database, box: SecretBox, lock: OwnerLock | None, clock: Clock = utc_now
    ) -> None:
        self.name = db.name
        self._db = db
        self.box = box
        """The key sealing secrets at rest (agents seal a run's variables they pass on with it)."""
        self.db = db
        """The database itself, for `apimd migrate` (the repositories are the way in otherwise)."""
        self._lock = lock
        self._clock = clock
        self.tokens = TokenRuntimeStore(db, box)
        self.variables = VariableStore(db, box)
        self.counters = CounterStore(db, box)
        self.results = ResultStore(db)
        # `GET /v1/results`: newest first; pass `next_cursor` back for the next page.
        self.list_results = self.results.page
        self.firings = FiringStore(db, self.results)
        self.origin: tuple[str, str] | None = None
        """(location, agent) stamped on the results this process records (SPEC §13)."""
        self.fences: dict[str, tuple[int, str]] = {}
        """Run id → (job id, agent) of scheduled runs whose result is fenced on their firing."""
        self.due: dict[str, tuple[str, datetime]] = {}
        """Run id → (schedule, due instant) of scheduled runs: their result records both, and
        `lateness_ms`."""
        self.signins = SignInStore(db, box)
        self.project = ProjectStore(db, ResourceStore(db, box), self.variables, self.tokens, clock)

    # --- StateStore ----------------------------------------------------------------------------

    async def load_token(self, name: str) -> TokenRuntime | None:
        return await self.tokens.load(name)

    async def save_token(self, runtime: TokenRuntime) -> None:
        await self.tokens.save(runtime)

    def cluster_lock(self, key: str) -> AbstractAsyncContextManager[object]:
        return self._db.exclusive(key)

    def token_lock(self, name: str) -> AbstractAsyncContextManager[object]:
        return self._db.exclusive(f"token:{name}")

    async def save_variables(self, values: dict[str, str], *, secret: bool) -> None:
        await self.variables.save(values, secret=secret)

    async def load_counter(self, key: str) -> int:
        return await self.counters.load(key)

    async def save_counter(self, key: str, count: int) -> None:
        await self.counters.save(key, count)

    async def load_alert(self, key: str) -> SentAlert | None:
        return await self.counters.load_alert(key)

    async def save_alert(self, key: str, alert: SentAlert | None) -> None:
        await self.counters.save_alert(key, alert)

    async def increment_counter(self, key: str) -> int:
        return await self.counters.increment(key)

    async def reset_counter(self, key: str) -> int:
        return await self.counters.reset(key)

    def stamped(self, result: Result) -> Result:
        """`result` as it is recorded: with the location and agent that ran it, and a scheduled
        run's schedule, due instant and how late it started."""
        if self.origin is not None and result.agent is None:
            location, agent = self.origin
            result = result.model_copy(update={"location": location, "agent": agent})
        firing = self.due.get(result.id)
        if firing is not None and result.scheduled_at is None:
            schedule, due = firing
            update: dict[str, object] = {"schedule": schedule, "scheduled_at": due}
            if result.lateness_ms is None:
                late_ms = (result.started_at - due) / timedelta(milliseconds=1)
                update["lateness_ms"] = round(late_ms, 3)
            result = result.model_copy(update=update)
        return result

    async def add_result(self, result: Result) -> Result | None:
        """Record `result`, stamped (`stamped`); returns it as recorded, or None when its
        firing was recorded lost meanwhile (the fence: it is dropped)."""
        result = self.stamped(result)
        fence = self.fences.get(result.id)
        if fence is None:
            await self.results.add(result)
        elif not await self.firings.record_fenced(result, *fence):
            # Presumed dead and recorded lost meanwhile: another result must not follow.
            log.warning(
                "run %s of %s was recorded lost; its result is dropped", result.id, result.name
            )
            return None
        return result

    async def create_signin(self, signin: PendingSignIn) -> None:
        await self.signins.create(signin)

    async def consume_signin(self, state: str) -> PendingSignIn | None:
        return await self.signins.consume(state, now=self._clock())

    async def pending_signins(self) -> list[PendingSignIn]:
        return await self.signins.pending(now=self._clock())

    async def cancel_signin(self, signin_id: str) -> bool:
        return await self.signins.cancel(signin_id)

    # --- reads shared with MemoryStateStore ----------------------------------------------------

    async def load_variable(self, name: str) -> Variable | None:
        return await self.variables.get(name)

    async def get_result(self, result_id: str) -> Result | None:
        return await self.results.get(result_id)

    # --- results -------------------------------------------------------------------------------

    async def add_results(self, results: Sequence[Result]) -> int:
        """Store many results in one transaction; returns how many were new."""
        return await self.results.add_many(results)

    async def recent_results(self, since: datetime) -> dict[str, RecentRuns]:
        """Latest result, recent totals and counts per outcome of every target since `since`."""
        return await self.results.recent(since)

    async def latest_results(self, names: Iterable[str] | None = None) -> dict[str, Result]:
        """The most recent result of each target (of `names`, when given)."""
        return await self.results.latest(names)

    async def prune_results(self, older_than: datetime) -> int:
        """Delete raw results started before `older_than`; hourly rollups are kept."""
        return await self.results.prune(older_than)

    async def stats(self, name: str, since: datetime, until: datetime | None = None) -> Stats:
        """Uptime, counts and latency percentiles of `name` from the hourly rollups."""
        return await query_stats(self._db, name, since, until or self._clock())

    # --- project -------------------------------------------------------------------------------

    async def apply(self, project: Project, *, prune: bool = False) -> ApplyReport:
        return await self.project.apply(project, prune=prune)

    async def export(self, *, secrets: bool = False) -> Project:
        return await self.project.export(secrets=secrets)

    async def load_project(self) -> Project:
        return await self.project.load_project()

    # --- lifecycle -----------------------------------------------------------------------------

    async def integrity_check(self) -> list[str]:
        return await self._db.integrity_check()

    async def close(self) -> None:
        await self.results.drain()
        try:
            await self._db.close()
        finally:
            if self._lock is not None:
                self._lock.release()
                self._lock = None

    async def __aenter__(self) -> Store:
        return self

    async def __aexit__(self, *_exc_info: object) -> None:
        await self.close()


SqliteStore = Store
"""The former name of `Store`, from when SQLite was its only database."""


def as_state_store(store: Store) -> StateStore:
    """`store` as the engine's port (mypy checks here that `Store` implements it)."""
    return store
