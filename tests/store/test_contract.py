"""One contract for every `StateStore`: the in-memory one, SQLite and PostgreSQL behave the same."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from apimd.engine.memory import MemoryStateStore
from apimd.engine.ports import StateStore
from apimd.model.outcome import ResultCode
from apimd.model.resources import TokenState
from apimd.model.result import ConditionResult, RequestRecord, ResponseRecord
from apimd.model.runtime import SentAlert, TokenRuntime
from apimd.model.signin import PendingSignIn
from apimd.store import open_store
from tests.postgres import temporary_database
from tests.store.conftest import TEST_KEY, make_result


@dataclass
class Backend:
    """A store under test, and how to get it back as after a restart."""

    store: Any
    reopen: Callable[[], Awaitable[Any]]


@pytest.fixture(params=["memory", "sqlite", "postgres"])
async def backend(request: pytest.FixtureRequest, db_dir: Path) -> AsyncIterator[Backend]:
    if request.param == "memory":
        memory = MemoryStateStore()

        async def same() -> Any:
            return memory

        yield Backend(memory, same)
        return
    with contextlib.ExitStack() as stack:
        location: str | Path = db_dir / "apimd.db"
        if request.param == "postgres":
            location = stack.enter_context(temporary_database())

        async def opened() -> Any:
            return await open_store(location, secret_key=TEST_KEY, key_file=None, owner=False)

        holder = {"store": await opened()}

        async def reopen() -> Any:
            await holder["store"].close()
            holder["store"] = await opened()
            return holder["store"]

        try:
            yield Backend(holder["store"], reopen)
        finally:
            await holder["store"].close()


def full_runtime(name: str = "example-token") -> TokenRuntime:
    return TokenRuntime(
        name=name,
        variables={"ACCESS_TOKEN": "at-1", "REFRESH_TOKEN": "rt-1", "EXPIRES_IN": "3600"},
        expires_at=datetime(2026, 3, 1, 13, 0, tzinfo=UTC),
        state=TokenState.ERROR,
        saved_at=datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC),
        lifetime_s=3600.0,
        last_refresh=datetime(2026, 3, 1, 12, 0, tzinfo=timezone(timedelta(hours=2))),
        last_error="token endpoint said 500",
        backoff_s=60.0,
        next_attempt_at=datetime(2026, 3, 1, 12, 1, tzinfo=UTC),
        generation=7,
        dpop_key='{"kty": "EC", "crv": "P-256", "x": "x", "y": "y", "d": "d"}',
    )


def test_both_implement_the_port() -> None:
    def accepts(_: StateStore) -> None: ...

    accepts(MemoryStateStore())  # the SQLite store is checked by mypy in apimd/store/store.py


async def test_an_unknown_token_loads_as_none(backend: Backend) -> None:
    assert await backend.store.load_token("nope") is None


async def test_a_saved_token_loads_back_whole(backend: Backend) -> None:
    runtime = full_runtime()
    await backend.store.save_token(runtime)
    assert await backend.store.load_token("example-token") == runtime
    store = await backend.reopen()
    assert await store.load_token("example-token") == runtime


async def test_a_later_save_replaces_the_token_state(backend: Backend) -> None:
    await backend.store.save_token(full_runtime())
    newer = TokenRuntime(name="example-token", variables={"ACCESS_TOKEN": "at-2"})
    await backend.store.save_token(newer)
    assert await backend.store.load_token("example-token") == newer


async def test_a_loaded_token_is_a_copy(backend: Backend) -> None:
    await backend.store.save_token(full_runtime())
    loaded = await backend.store.load_token("example-token")
    loaded.variables["ACCESS_TOKEN"] = "changed in memory only"
    again = await backend.store.load_token("example-token")
    assert again.variables["ACCESS_TOKEN"] == "at-1"


async def test_tokens_are_kept_apart(backend: Backend) -> None:
    await backend.store.save_token(full_runtime("a"))
    await backend.store.save_token(TokenRuntime(name="b"))
    assert (await backend.store.load_token("a")).variables["ACCESS_TOKEN"] == "at-1"
    assert (await backend.store.load_token("b")).variables == {}


async def test_saved_variables_are_upper_case_and_keep_the_others(backend: Backend) -> None:
    await backend.store.save_variables({"region": "eu", "API_KEY": "k-1"}, secret=True)
    await backend.store.save_variables({"Region": "us"}, secret=False)
    region = await backend.store.load_variable("REGION")
    key = await backend.store.load_variable("api_key")
    assert (region.name, region.value, region.secret) == ("REGION", "us", False)
    assert (key.name, key.value, key.secret) == ("API_KEY", "k-1", True)
    assert await backend.store.load_variable("MISSING") is None
    store = await backend.reopen()
    assert (await store.load_variable("API_KEY")).value == "k-1"


async def test_counters_start_at_zero_and_keep_their_count(backend: Backend) -> None:
    key = "list-orders#webhooks[0]:https://hooks.slack.com/services/T0/B0/xyz?a=b"
    assert await backend.store.load_counter(key) == 0
    await backend.store.save_counter(key, 2)
    await backend.store.save_counter("other", 5)
    await backend.store.save_counter(key, 3)
    assert await backend.store.load_counter(key) == 3
    assert await backend.store.load_counter("other") == 5
    store = await backend.reopen()
    assert await store.load_counter(key) == 3
    await store.save_counter(key, 0)
    assert await store.load_counter(key) == 0


async def test_a_sent_alert_keeps_its_time_and_notice_until_cleared(backend: Backend) -> None:
    key = "call:x#0:https://hooks.example/secret-path"
    assert await backend.store.load_alert(key) is None
    sent = SentAlert(sent_at=datetime(2026, 12, 6, 4, 0, 1, 250000, tzinfo=UTC), notice={"a": 1})
    await backend.store.save_counter(key, 2)
    await backend.store.save_alert(key, sent)
    store = await backend.reopen()
    assert await store.load_alert(key) == sent
    assert await store.load_counter(key) == 2
    await store.save_alert(key, None)
    assert await store.load_alert(key) is None
    assert await store.load_counter(key) == 2


async def test_an_added_result_reads_back_whole(backend: Backend) -> None:
    result = make_result(
        "r-1",
        request=RequestRecord(
            method="GET",
            url="https://api.example.com/orders?x=1",
            headers={"Authorization": "••••"},
        ),
        response=ResponseRecord(
            headers={"Content-Type": "application/json"}, body='{"orders": []}'
        ),
        conditions=[
            ConditionResult(source="status", op="eq", expected=200, actual=200),
            ConditionResult(source="json", path="$.orders", op="exists", actual=[], passed=True),
        ],
        variables={"ORDER_COUNT": "0"},
        error=None,
    )
    await backend.store.add_result(result)
    assert await backend.store.get_result("r-1") == result
    store = await backend.reopen()
    assert await store.get_result("r-1") == result
    assert await store.get_result("nope") is None


async def test_a_workflow_result_keeps_its_steps(backend: Backend) -> None:
    steps = [
        make_result("s-1", name="get-token", workflow_run_id="w-1"),
        make_result(
            "s-2", name="list-orders", code=ResultCode.CONTENT_ERROR, workflow_run_id="w-1"
        ),
    ]
    workflow = make_result(
        "w-1", name="refresh-example", kind="workflow", code=ResultCode.CONTENT_ERROR, steps=steps
    )
    await backend.store.add_result(workflow)
    loaded = await backend.store.get_result("w-1")
    assert loaded == workflow
    assert [s.id for s in loaded.steps] == ["s-1", "s-2"]


def pending_signin(**fields: Any) -> PendingSignIn:
    return PendingSignIn(
        url="https://login.example.com/authorize?client_id=c&state=…",
        token="example-token",
        workflow="signin-example",
        remaining_steps=["exchange-code"],
        variables={"NONCE": "n-1"},
        code_verifier="v" * 43,
        dpop_key='{"kty": "EC", "d": "pending-dpop-key"}',
        **fields,
    )


async def test_a_signin_is_pending_until_consumed_once(backend: Backend) -> None:
    signin = pending_signin()
    await backend.store.create_signin(signin)
    store = await backend.reopen()
    assert await store.pending_signins() == [signin]
    assert await store.consume_signin(signin.state + "x") is None
    assert await store.consume_signin(signin.state) == signin
    assert await store.consume_signin(signin.state) is None
    assert await store.pending_signins() == []


async def test_an_expired_signin_is_neither_pending_nor_usable(backend: Backend) -> None:
    created = datetime.now(UTC) - timedelta(minutes=11)
    expired = pending_signin(created_at=created)
    fresh = pending_signin()
    await backend.store.create_signin(expired)
    await backend.store.create_signin(fresh)
    assert await backend.store.pending_signins() == [fresh]
    assert await backend.store.consume_signin(expired.state) is None


async def test_a_signin_raced_for_is_consumed_by_one_caller(backend: Backend) -> None:
    signin = pending_signin()
    await backend.store.create_signin(signin)
    won = await asyncio.gather(*(backend.store.consume_signin(signin.state) for _ in range(8)))
    assert [w for w in won if w is not None] == [signin]


async def test_concurrent_results_are_all_kept_and_counted_once(backend: Backend) -> None:
    """Group commit: many runs finishing together are all stored, and each counts once in the
    statistics (a second add of the same id changes nothing)."""
    started = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    results = [make_result(f"g-{i}", started_at=started, total_ms=10.0 + i) for i in range(120)]
    await asyncio.gather(*(backend.store.add_result(r) for r in results))
    await asyncio.gather(*(backend.store.add_result(r) for r in results[:10]))
    store = await backend.reopen()
    for result in results:
        assert await store.get_result(result.id) == result
    if hasattr(store, "stats"):
        stats = await store.stats("list-orders", started, started + timedelta(hours=1))
        assert stats.total == 120
        assert stats.latency.min_ms == 10.0
        assert stats.latency.max_ms == 129.0
