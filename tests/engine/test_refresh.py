"""Token refresh end to end against a real token server and protected API (SPEC §5)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from apimd.demo.server import RunningServer
from apimd.engine.memory import MemoryStateStore
from apimd.engine.runner import Engine
from apimd.model import Outcome, ResultCode, TokenState
from tests.conftest import server_state
from tests.support.engine import run_once
from tests.support.projects import build, get_token_call, manual_auth, manual_token_project


class Clock:
    """Real time plus an offset the test can move forward."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset


async def test_empty_token_is_filled_by_its_refresh_workflow_then_reused(
    token_server: RunningServer,
) -> None:
    state = server_state(token_server)
    store = MemoryStateStore()
    engine = Engine(manual_token_project(token_server.url), store)
    try:
        first = await engine.run("orders-t1")
        second = await engine.run("orders-t1")
    finally:
        await engine.close()
    assert first.outcome == Outcome.PASS, first.error
    assert second.outcome == Outcome.PASS
    assert state.token_requests == 1
    saved = store.tokens["t1"]
    assert saved.state == TokenState.VALID
    assert saved.variables["ACCESS_TOKEN"].startswith("at-")
    assert saved.expires_at is not None
    assert 55 <= (saved.expires_at - datetime.now(UTC)).total_seconds() <= 61
    refresh_runs = [r for r in store.results if r.trigger == "refresh"]
    assert [r.name for r in refresh_runs] == ["refresh"]
    assert first.timings_ms.auth_wait > 0
    # A valid token's read from the store is no wait for a refresh (the retest read "auth wait
    # 2.0 ms waiting for a token refresh" on a run that refreshed nothing).
    assert second.timings_ms.auth_wait == 0


async def test_token_is_refreshed_once_per_expiry(token_server: RunningServer) -> None:
    state = server_state(token_server)
    state.lifetime_s = 2
    engine = Engine(manual_token_project(token_server.url), MemoryStateStore())
    try:
        outcomes = []
        for _ in range(3):
            outcomes.append((await engine.run("orders-t1")).outcome)
            await asyncio.sleep(0.3)
        assert state.token_requests == 1
        await asyncio.sleep(2.0)
        outcomes.append((await engine.run("orders-t1")).outcome)
    finally:
        await engine.close()
    assert outcomes == [Outcome.PASS] * 4
    assert state.token_requests == 2


async def test_each_new_token_has_the_next_generation(token_server: RunningServer) -> None:
    """Agents sharing a store tell an old token from a new one by its generation (SPEC §13): each
    refresh that saves new values counts one up; a failed refresh does not."""
    state = server_state(token_server)
    state.lifetime_s = 1
    store = MemoryStateStore()
    engine = Engine(manual_token_project(token_server.url), store)
    try:
        assert (await engine.run("orders-t1")).outcome == Outcome.PASS
        assert store.tokens["t1"].generation == 1
        await asyncio.sleep(1.1)
        assert (await engine.run("orders-t1")).outcome == Outcome.PASS
        assert store.tokens["t1"].generation == 2
        state.fail_next = 1
        await asyncio.sleep(1.1)
        await engine.run("orders-t1")
        assert store.tokens["t1"].state == TokenState.ERROR
        assert store.tokens["t1"].generation == 2
    finally:
        await engine.close()


async def test_refresh_skew_is_bounded_by_a_tenth_of_the_lifetime(
    token_server: RunningServer,
) -> None:
    """With a 2 s token and the default 10 s skew, the token must not be refreshed on every call."""
    state = server_state(token_server)
    state.lifetime_s = 2
    engine = Engine(manual_token_project(token_server.url), MemoryStateStore())
    try:
        for _ in range(5):
            assert (await engine.run("orders-t1")).outcome == Outcome.PASS
    finally:
        await engine.close()
    assert state.token_requests == 1


async def test_fifty_concurrent_calls_share_one_refresh(token_server: RunningServer) -> None:
    state = server_state(token_server)
    state.token_delay_s = 0.5
    engine = Engine(manual_token_project(token_server.url, tokens=("t1", "t2")), MemoryStateStore())
    in_flight = 0
    peak = 0
    original = engine.tokens.fresh

    async def counting(name: str):  # type: ignore[no-untyped-def]
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        try:
            return await original(name)
        finally:
            in_flight -= 1

    engine.tokens.fresh = counting  # type: ignore[method-assign]
    try:
        # Fill t2 first so its calls need no refresh, then check they are not held up by t1's.
        assert (await engine.run("orders-t2")).outcome == Outcome.PASS
        assert state.token_requests == 1
        loop = asyncio.get_running_loop()
        started = loop.time()
        t1_calls = [asyncio.create_task(engine.run("orders-t1")) for _ in range(50)]
        await asyncio.sleep(0.05)
        t2_started = loop.time()
        t2_result = await engine.run("orders-t2")
        t2_elapsed = loop.time() - t2_started
        results = await asyncio.gather(*t1_calls)
        total = loop.time() - started
    finally:
        await engine.close()
    assert state.token_requests == 2  # t2's first fill, and exactly one for the 50 calls on t1
    assert all(r.outcome == Outcome.PASS for r in results), [r.error for r in results if r.error]
    assert peak >= 40
    assert t2_result.outcome == Outcome.PASS
    assert t2_elapsed < 0.4 < total, (t2_elapsed, total)


async def test_token_endpoint_503_sets_error_with_backoff_then_recovers(
    token_server: RunningServer,
) -> None:
    state = server_state(token_server)
    state.fail_next = 1
    clock = Clock()
    store = MemoryStateStore()
    engine = Engine(manual_token_project(token_server.url), store, clock=clock)
    try:
        failed = await engine.run("orders-t1")
        assert failed.outcome == Outcome.FAIL
        assert failed.result == ResultCode.AUTH_ERROR
        token = store.tokens["t1"]
        assert token.state == TokenState.ERROR
        assert token.backoff_s == 30
        requests = state.token_requests
        during_backoff = await engine.run("orders-t1")
        assert during_backoff.result == ResultCode.AUTH_ERROR
        assert "next attempt" in (during_backoff.error or "")
        assert state.token_requests == requests  # the endpoint is left alone during the backoff
        clock.offset = timedelta(seconds=31)
        recovered = await engine.run("orders-t1")
    finally:
        await engine.close()
    assert recovered.outcome == Outcome.PASS, recovered.error
    assert store.tokens["t1"].state == TokenState.VALID
    assert store.tokens["t1"].backoff_s == 0


async def test_a_standalone_run_promises_no_next_attempt(token_server: RunningServer) -> None:
    """`apimd run -f` ends after the run: its AUTH_ERROR names no next attempt it won't make; a
    later run with the same --db during the backoff says why it did not retry."""
    state = server_state(token_server)
    state.fail_next = 1
    clock = Clock()
    store = MemoryStateStore()
    project = manual_token_project(token_server.url)
    first = Engine(project, store, clock=clock, standalone=True)
    second = Engine(project, store, clock=clock, standalone=True)
    try:
        failed = await first.run("orders-t1")
        during_backoff = await second.run("orders-t1")
    finally:
        await first.close()
        await second.close()
    assert failed.result == ResultCode.AUTH_ERROR
    assert "could not be refreshed" in (failed.error or "")
    assert "next attempt" not in (failed.error or "")
    assert during_backoff.result == ResultCode.AUTH_ERROR
    assert "next attempt" not in (during_backoff.error or "")
    assert "does not retry it" in (during_backoff.error or "")


async def test_backoff_doubles_up_to_fifteen_minutes(token_server: RunningServer) -> None:
    state = server_state(token_server)
    state.fail_next = 100
    clock = Clock()
    store = MemoryStateStore()
    engine = Engine(manual_token_project(token_server.url), store, clock=clock)
    seen = []
    try:
        for _ in range(7):
            await engine.run("orders-t1")
            seen.append(store.tokens["t1"].backoff_s)
            clock.offset += timedelta(seconds=store.tokens["t1"].backoff_s + 1)
    finally:
        await engine.close()
    assert seen == [30, 60, 120, 240, 480, 900, 900]


async def test_invalid_grant_needs_sign_in_and_skips_without_token_requests(
    token_server: RunningServer,
) -> None:
    state = server_state(token_server)
    state.invalid_grant = True
    store = MemoryStateStore()
    engine = Engine(manual_token_project(token_server.url), store)
    try:
        first = await engine.run("orders-t1")
        requests = state.token_requests
        later = [await engine.run("orders-t1") for _ in range(3)]
    finally:
        await engine.close()
    assert first.outcome == Outcome.SKIPPED
    assert first.result == ResultCode.NEEDS_SIGN_IN
    assert store.tokens["t1"].state == TokenState.NEEDS_SIGN_IN
    assert all(r.result == ResultCode.NEEDS_SIGN_IN for r in later)
    assert state.token_requests == requests == 1
    assert state.api_requests == 0


async def test_manual_refresh_clears_needs_sign_in(token_server: RunningServer) -> None:
    state = server_state(token_server)
    state.invalid_grant = True
    store = MemoryStateStore()
    engine = Engine(manual_token_project(token_server.url), store)
    try:
        assert (await engine.run("orders-t1")).result == ResultCode.NEEDS_SIGN_IN
        state.invalid_grant = False
        runtime = await engine.refresh_token("t1")
        assert runtime.state == TokenState.VALID
        assert (await engine.run("orders-t1")).outcome == Outcome.PASS
    finally:
        await engine.close()


async def test_401_triggers_one_refresh_and_one_retry(token_server: RunningServer) -> None:
    state = server_state(token_server)
    engine = Engine(manual_token_project(token_server.url), MemoryStateStore())
    try:
        assert (await engine.run("orders-t1")).outcome == Outcome.PASS
        state.access_tokens.clear()  # the server revokes every token it issued
        results = await asyncio.gather(*(engine.run("orders-t1") for _ in range(10)))
    finally:
        await engine.close()
    assert all(r.outcome == Outcome.PASS for r in results), [r.error for r in results]
    assert all(r.retried_after_401 for r in results)
    assert state.token_requests == 2  # the first fill, then one refresh for the burst of 401s


async def test_401_without_refresh_on_401_is_a_client_error(token_server: RunningServer) -> None:
    state = server_state(token_server)
    project = manual_token_project(token_server.url)
    project.auth[0].refresh_on_401 = False
    project.calls[1].conditions = []
    engine = Engine(project, MemoryStateStore())
    try:
        assert (await engine.run("orders-t1")).outcome == Outcome.PASS
        state.access_tokens.clear()
        result = await engine.run("orders-t1")
    finally:
        await engine.close()
    assert result.result == ResultCode.HTTP_CLIENT_ERROR
    assert not result.retried_after_401
    assert state.token_requests == 1


async def test_refresh_that_reaches_a_browser_step_needs_sign_in(
    token_server: RunningServer,
) -> None:
    base = token_server.url
    project = build(
        {
            "auth": [{"name": "a", "type": "manual", "refresh_workflow": "signin"}],
            "tokens": [{"name": "t", "auth": "a"}],
            "calls": [
                {"name": "authorize", "url": f"{base}/authorize", "tags": ["apimetrics:browser"]},
                {"name": "use", "url": f"{base}/api/status", "token": "t"},
            ],
            "workflows": [{"name": "signin", "steps": ["authorize"]}],
        }
    )
    store = MemoryStateStore()
    result = await run_once(Engine(project, store), "use")
    assert result.result == ResultCode.NEEDS_SIGN_IN
    assert "browser" in (store.tokens["t"].last_error or "")


async def test_refresh_that_extracts_nothing_is_an_error(token_server: RunningServer) -> None:
    base = token_server.url
    project = build(
        {
            "auth": [{"name": "a", "type": "manual", "refresh_workflow": "noop"}],
            "tokens": [{"name": "t", "auth": "a"}],
            "calls": [
                {"name": "ping", "url": f"{base}/api/status"},
                {"name": "use", "url": f"{base}/api/status", "token": "t"},
            ],
            "workflows": [{"name": "noop", "steps": ["ping"]}],
        }
    )
    store = MemoryStateStore()
    result = await run_once(Engine(project, store), "use")
    assert result.result == ResultCode.AUTH_ERROR
    assert store.tokens["t"].state == TokenState.ERROR
    assert "extracted no variables" in (store.tokens["t"].last_error or "")


async def test_calls_on_a_token_inside_its_own_refresh_do_not_recurse(
    token_server: RunningServer,
) -> None:
    """The refresh workflow's step uses the token itself (e.g. to send the old token along)."""
    base = token_server.url
    project = build(
        {
            "auth": [manual_auth("a", "r")],
            "tokens": [{"name": "t", "auth": "a", "headers": {"X-Old": "%%ACCESS_TOKEN%%"}}],
            "calls": [
                get_token_call(base, token="t"),
                {
                    "name": "use",
                    "url": f"{base}/api/orders",
                    "token": "t",
                    "headers": {"Authorization": "Bearer %%ACCESS_TOKEN%%"},
                },
            ],
            "workflows": [{"name": "r", "steps": ["get-token"]}],
        }
    )
    engine = Engine(project, MemoryStateStore())
    try:
        result = await asyncio.wait_for(engine.run("use"), 10)
    finally:
        await engine.close()
    # The step's own token header needs ACCESS_TOKEN, which the empty token lacks: the refresh
    # fails with SETUP_ERROR instead of recursing into itself.
    assert result.result == ResultCode.AUTH_ERROR
    assert "ACCESS_TOKEN" in (result.error or "")


async def test_save_auth_token_webhook_and_expires_in_rules(token_server: RunningServer) -> None:
    base = token_server.url
    project = build(
        {
            "auth": [manual_auth("a")],
            "tokens": [{"name": "t", "auth": "a"}],
            "calls": [
                get_token_call(
                    base, auth="a", webhooks=[{"type": "save_auth_token", "token": "t"}]
                ),
                {
                    "name": "token-no-expiry",
                    "method": "POST",
                    "url": f"{base}/oauth/token",
                    "form": {
                        "grant_type": "client_credentials",
                        "client_id": "demo-client",
                        "client_secret": "demo-secret",
                    },
                    "conditions": [
                        {"source": "json", "path": "access_token", "save_as": "ACCESS_TOKEN"}
                    ],
                    "webhooks": [{"type": "save_auth_token", "token": "t"}],
                },
            ],
        }
    )
    store = MemoryStateStore()
    engine = Engine(project, store)
    try:
        await engine.run("get-token")
        first = store.tokens["t"]
        assert first.expires_at is not None
        assert first.variables.keys() == {"ACCESS_TOKEN", "EXPIRES_IN"}
        await engine.run("token-no-expiry")
        second = store.tokens["t"]
    finally:
        await engine.close()
    assert second.expires_at is None  # ACCESS_TOKEN saved without EXPIRES_IN clears the expiry
    # A token filled by the webhook was refreshed then, not "never" (issue 10 point 19).
    assert first.last_refresh is not None and second.last_refresh is not None
    assert second.last_refresh >= first.last_refresh
    assert second.variables["EXPIRES_IN"] == "60"  # saving never drops variables it does not set
    assert second.variables["ACCESS_TOKEN"] != first.variables["ACCESS_TOKEN"]


async def test_builtin_oauth2_grants(token_server: RunningServer) -> None:
    state = server_state(token_server)
    state.lifetime_s = 1
    base = token_server.url
    common = {
        "type": "oauth2",
        "token_url": f"{base}/oauth/token",
        "client_id": "demo-client",
        "client_secret": "demo-secret",
    }
    project = build(
        {
            "auth": [
                {"name": "cc", "grant": "client_credentials", "client_auth": "body", **common},
                {
                    "name": "pw",
                    "grant": "password",
                    "username": "demo",
                    "password": "demo-password",
                    **common,
                },
            ],
            "tokens": [{"name": "cc-token", "auth": "cc"}, {"name": "pw-token", "auth": "pw"}],
            "calls": [
                {"name": "cc-orders", "url": f"{base}/api/orders", "token": "cc-token"},
                {"name": "pw-orders", "url": f"{base}/api/orders", "token": "pw-token"},
            ],
        }
    )
    engine = Engine(project, MemoryStateStore())
    try:
        for name in ("cc-orders", "pw-orders"):
            result = await engine.run(name)
            assert result.outcome == Outcome.PASS, result.error
        await asyncio.sleep(1.1)
        for name in ("cc-orders", "pw-orders"):
            assert (await engine.run(name)).outcome == Outcome.PASS
    finally:
        await engine.close()
    # client_credentials and password first, then refresh_token grants once a refresh token is held
    assert state.grants == ["client_credentials", "password", "refresh_token", "refresh_token"]
