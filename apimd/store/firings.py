"""The agents sharing a store and the firings the leader hands them (SPEC §13). A firing row is
keyed (schedule, target, location, due instant): inserted once, whoever tries; it moves
`queued` → `running` (claimed by the job that owns it) → `done` / `lost` / `dropped`. A result of
a scheduled run is written only while its firing is still `running` for that job: the fence that
keeps an agent presumed dead from recording a second result."""

from __future__ import annotations

import contextlib
import json
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from apimd.model.api import AgentInfo
from apimd.model.result import Result
from apimd.store.errors import CorruptRecord
from apimd.store.results import ResultStore
from apimd.store.sql import Connection, Database
from apimd.store.timestamps import from_us, to_us, utc_now


@dataclass(frozen=True)
class Firing:
    """One (schedule, target, location, due instant); `location` `*` means anywhere."""

    schedule: str
    target: str
    location: str
    due_at: datetime

    @property
    def key(self) -> tuple[str, str, str, int]:
        return (self.schedule, self.target, self.location, to_us(self.due_at))


log = logging.getLogger(__name__)

_KEY = "schedule = ? AND target = ? AND location = ? AND due_at = ?"
# The leader's next fire time of each schedule: a `meta` row per schedule (not copied by
# `apimd migrate`; rewritten whenever a leader starts or the schedules change).
_NEXT = "next_fire:"
_SAVE_NEXT = "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value"


class FiringStore:
    """Agents' heartbeats and the life of each firing."""

    def __init__(self, db: Database, results: ResultStore) -> None:
        self._db = db
        self._results = results
        self._unreadable: set[str] = set()

    # --- agents ---------------------------------------------------------------------------------

    async def heartbeat(
        self,
        agent: str,
        location: str,
        pid: int,
        started_at: datetime,
        *,
        leader: bool,
        running: list[str],
    ) -> None:
        async with self._db.transaction() as conn:
            await conn.execute(
                "INSERT INTO agents (agent, location, pid, started_at, heartbeat_at, leader,"
                " running) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (agent) DO UPDATE SET"
                " location = excluded.location, pid = excluded.pid,"
                " started_at = excluded.started_at, heartbeat_at = excluded.heartbeat_at,"
                " leader = excluded.leader, running = excluded.running",
                (
                    agent,
                    location,
                    pid,
                    to_us(started_at),
                    to_us(utc_now()),
                    int(leader),
                    json.dumps(sorted(running)),
                ),
            )

    async def crown(self, agent: str) -> None:
        """`agent` leads now: a former leader (dead, its row not yet stale) no longer shows so."""
        async with self._db.transaction() as conn:
            await conn.execute(
                "UPDATE agents SET leader = CASE WHEN agent = ? THEN 1 ELSE 0 END", (agent,)
            )

    async def leave(self, agent: str) -> None:
        async with self._db.transaction() as conn:
            await conn.execute("DELETE FROM agents WHERE agent = ?", (agent,))

    async def live(self, since: datetime) -> list[AgentInfo]:
        """Agents heard from since `since`, by location then name. A row no agent wrote (any
        DB user can insert one) is left out, with one log line per name."""
        rows = await self._db.fetchall(
            "SELECT agent, location, pid, started_at, heartbeat_at, leader, running FROM agents"
            " WHERE heartbeat_at >= ? ORDER BY location, agent",
            (to_us(since),),
        )
        agents = []
        for row in rows:
            try:
                agents.append(
                    AgentInfo(
                        agent=row[0],
                        location=row[1],
                        pid=int(row[2]),
                        started_at=from_us(int(row[3])),
                        last_heartbeat=from_us(int(row[4])),
                        leader=bool(row[5]),
                        running=json.loads(row[6]),
                    )
                )
            except (ValueError, OverflowError, TypeError) as exc:
                if row[0] not in self._unreadable:
                    self._unreadable.add(row[0])
                    shown = str(row[0])[:100].encode("unicode_escape").decode("ascii")
                    log.warning("agents row %r left out: %s", shown, str(exc).splitlines()[0])
        return agents

    async def forget_agents(self, before: datetime) -> None:
        """Drop agents not heard from since `before` (the leader's housekeeping)."""
        async with self._db.transaction() as conn:
            await conn.execute("DELETE FROM agents WHERE heartbeat_at < ?", (to_us(before),))

    # --- firings --------------------------------------------------------------------------------

    @staticmethod
    async def insert_many(conn: Connection, firings: list[Firing]) -> list[Firing]:
        """Insert `firings` as `queued` in the caller's transaction (PostgreSQL, one statement);
        returns those inserted: not those another leader, or a leader taking over, decided."""
        if not firings:
            return []
        rows = await conn.fetchall(
            "INSERT INTO firings (schedule, target, location, due_at, state, created_at)"
            " SELECT f.s, f.t, f.l, f.d, 'queued', ?"
            " FROM unnest(?::text[], ?::text[], ?::text[], ?::bigint[]) AS f(s, t, l, d)"
            " ON CONFLICT DO NOTHING RETURNING schedule, target, location, due_at",
            (to_us(utc_now()), *_columns([firing.key for firing in firings])),
        )
        inserted = {(row[0], row[1], row[2], int(row[3])) for row in rows}
        return [firing for firing in firings if firing.key in inserted]

    @staticmethod
    async def attach_jobs(conn: Connection, jobs: list[tuple[Firing, int]]) -> None:
        """Each firing's job id, in the caller's transaction (PostgreSQL, one statement)."""
        if not jobs:
            return
        await conn.execute(
            "UPDATE firings SET job_id = j.job_id"
            " FROM unnest(?::text[], ?::text[], ?::text[], ?::bigint[], ?::bigint[])"
            " AS j(s, t, l, d, job_id) WHERE firings.schedule = j.s AND firings.target = j.t"
            " AND firings.location = j.l AND firings.due_at = j.d",
            _columns([(*firing.key, job_id) for firing, job_id in jobs]),
        )

    async def claim(self, firing: Firing, job_id: int, agent: str) -> bool:
        """The job `job_id` starts running its firing; False if the firing is not its own or no
        longer queued (recorded lost, or dropped)."""
        async with self._db.transaction() as conn:
            changed = await conn.execute(
                f"UPDATE firings SET state = 'running', agent = ? WHERE {_KEY}"
                " AND job_id = ? AND state = 'queued'",
                (agent, *firing.key, job_id),
            )
        return changed == 1

    async def drop(self, firing: Firing, job_id: int, skipped: Result | None = None) -> bool:
        """A job too late to run: its firing is `dropped`, with the result `skipped` (saying why)
        written in the same transaction; False, and nothing written, if it was not queued."""
        async with self._db.transaction() as conn:
            changed = await conn.execute(
                f"UPDATE firings SET state = 'dropped', result_id = ? WHERE {_KEY}"
                " AND job_id = ? AND state = 'queued'",
                (skipped.id if skipped else None, *firing.key, job_id),
            )
            if changed != 1:
                return False
            if skipped is not None:
                await self._results.write(conn, [skipped])
        return True

    async def record_fenced(self, result: Result, job_id: int, agent: str) -> bool:
        """Write `result` only if its firing is still running for `job_id` on `agent` (one
        transaction); False, and nothing written, when it is not (recorded lost meanwhile)."""
        async with self._db.transaction() as conn:
            changed = await conn.execute(
                "UPDATE firings SET state = 'done', result_id = ?"
                " WHERE job_id = ? AND agent = ? AND state = 'running'",
                (result.id, job_id, agent),
            )
            if changed != 1:
                return False
            await self._results.write(conn, [result])
        return True

    async def lose(self, job_id: int, lost: Result) -> bool:
        """The job's worker stopped heartbeating: its firing is recorded `lost` with the result
        `lost` (CANCELLED, "agent lost") in one transaction; False if it had finished meanwhile."""
        async with self._db.transaction() as conn:
            changed = await conn.execute(
                "UPDATE firings SET state = 'lost', result_id = ?"
                " WHERE job_id = ? AND state IN ('queued', 'running')",
                (lost.id, job_id),
            )
            if changed != 1:
                return False
            await self._results.write(conn, [lost])
        return True

    async def get(self, job_id: int) -> tuple[Firing, str, str | None] | None:
        """The firing of `job_id`, its state and the agent that claimed it; `CorruptRecord` when
        the row holds what no firing can (a due instant past year 9999: any DB user can write)."""
        row = await self._db.fetchone(
            "SELECT schedule, target, location, due_at, state, agent FROM firings WHERE job_id = ?",
            (job_id,),
        )
        if row is None:
            return None
        try:
            firing = Firing(row[0], row[1], row[2], from_us(int(row[3])))
        except (ValueError, OverflowError, TypeError) as exc:
            raise CorruptRecord(f"the firing of job {job_id} is unreadable: {exc}") from None
        return firing, str(row[4]), row[5]

    # --- the leader's next fire times, for every agent's dashboard ------------------------------

    @staticmethod
    async def save_next_fire_many(conn: Connection, times: dict[str, datetime]) -> None:
        """In the caller's transaction (the firings'): when each schedule fires next."""
        if times:
            await conn.execute(
                "INSERT INTO meta (key, value) SELECT * FROM unnest(?::text[], ?::text[])"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (
                    [_NEXT + name for name in times],
                    [str(to_us(when)) for when in times.values()],
                ),
            )

    async def save_next_fires(self, times: dict[str, datetime]) -> None:
        """Every schedule's next fire time, replacing those of schedules gone."""
        async with self._db.transaction() as conn:
            await conn.execute("DELETE FROM meta WHERE key LIKE ?", (_NEXT + "%",))
            await conn.executemany(
                _SAVE_NEXT, [(_NEXT + name, str(to_us(when))) for name, when in times.items()]
            )

    async def next_fires(self) -> dict[str, datetime]:
        """Schedule name → its next fire time, as the leader last shared it (a value no time can
        hold, written by hand, is left out: that schedule shows no next run)."""
        rows = await self._db.fetchall(
            "SELECT key, value FROM meta WHERE key LIKE ?", (_NEXT + "%",)
        )
        times: dict[str, datetime] = {}
        for row in rows:
            with contextlib.suppress(ValueError, OverflowError, TypeError):
                times[str(row[0])[len(_NEXT) :]] = from_us(int(row[1]))
        return times

    async def prune(self, before: datetime) -> int:
        """Forget firings created before `before` (the leader's retention)."""
        async with self._db.transaction() as conn:
            return await conn.execute("DELETE FROM firings WHERE created_at < ?", (to_us(before),))


def _columns(rows: list[tuple[Any, ...]]) -> tuple[list[Any], ...]:
    """Rows as one list per column (PostgreSQL arrays for `unnest`)."""
    return tuple(list(column) for column in zip(*rows, strict=True))
