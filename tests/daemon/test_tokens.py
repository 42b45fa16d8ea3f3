"""Tokens kept valid by the daemon against the loopback token server (SPEC §2 apply, §5): a re-apply
never forces a new token, expiries cost one token request each, and a revoked grant turns calls
into SKIPPED/NEEDS_SIGN_IN and notifies once."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from apimd.client import Client
from apimd.demo.server import RunningServer
from apimd.model.resources import Token, TokenState
from tests.conftest import server_state
from tests.daemon.conftest import Daemon, Receiver, eventually, unique
from tests.support.projects import TokenFlow, manual_token_document

# CRUD, apply, tokens across expiries and schedules: the same on a PostgreSQL daemon (SPEC §13).
pytestmark = pytest.mark.both_stores


def token_project(
    url: str,
    prefix: str,
    *,
    webhook_url: str | None = None,
    every: str | None = None,
) -> dict[str, Any]:
    """The example project's custom token flow, named `<prefix>-…`, against `url`."""
    document = manual_token_document(
        url, tokens={f"{prefix}-token": f"{prefix}-orders"}, names=TokenFlow.prefixed(prefix)
    )
    if webhook_url:
        hook = {"type": "http", "url": webhook_url, "alerts": ["NEEDS_SIGN_IN"]}
        document["auth"][0]["webhooks"] = [hook]
    if every:
        document["schedules"] = [
            {"name": f"{prefix}-schedule", "every": every, "targets": [f"{prefix}-orders"]}
        ]
    return document


async def run(client: Client, name: str) -> Any:
    accepted = await client.run("calls", name, wait=True)
    assert accepted.result is not None
    return accepted.result


async def revealed_token(client: Client, name: str) -> Token:
    token = await client.get("tokens", name, reveal=True)
    assert isinstance(token, Token)
    return token


async def test_reapplying_the_project_keeps_a_valid_token_valid(
    daemon: Daemon, token_server: RunningServer, tmp_path: Path
) -> None:
    prefix = unique("keep")
    path = tmp_path / "project.json"
    path.write_text(json.dumps(token_project(token_server.url, prefix)))
    code, _out, err = await daemon.cli("apply", str(path))
    assert code == 0, err

    async with daemon.client() as client:
        first = await run(client, f"{prefix}-orders")
        assert first.outcome == "PASS", first.error
        assert server_state(token_server).token_requests == 1
        before = await revealed_token(client, f"{prefix}-token")
        assert before.state == "valid" and before.expires_at is not None
        assert before.variables and before.variables["ACCESS_TOKEN"].startswith("at-")

        code, out, err = await daemon.cli("apply", str(path))
        assert code == 0, err
        after = await revealed_token(client, f"{prefix}-token")
        assert (after.state, after.expires_at, after.variables) == (
            before.state,
            before.expires_at,
            before.variables,
        )

        second = await run(client, f"{prefix}-orders")
        assert second.outcome == "PASS", second.error
        assert server_state(token_server).token_requests == 1, "no new token after re-apply"

    code, out, err = await daemon.cli("tokens")
    assert code == 0, err
    line = next(row for row in out.splitlines() if row.startswith(f"{prefix}-token"))
    assert "valid" in line and f"{prefix}-auth" in line

    code, out, err = await daemon.cli("token", "refresh", f"{prefix}-token")
    assert code == 0, out + err
    assert f"token {prefix}-token: valid" in out
    assert server_state(token_server).token_requests == 2, "a manual refresh asks once"


async def test_calls_keep_passing_across_expiries_with_one_token_request_each(
    daemon: Daemon, token_server: RunningServer
) -> None:
    state = server_state(token_server)
    state.lifetime_s = 2.0
    prefix = unique("expiry")
    name = f"{prefix}-orders"
    async with daemon.client() as client:
        await client.apply(token_project(token_server.url, prefix, every="1s"))
        await asyncio.sleep(6.5)
        await client.delete("schedules", f"{prefix}-schedule")
        await asyncio.sleep(0.3)  # a run that started just before the delete finishes
        page = await client.results(name=name)

    # On a busy machine a firing can find the previous run still going: it is recorded as
    # skipped (CANCELLED, saying so), never as a failure, and is not a run that sent anything.
    skipped = [r for r in page.results if r.result == "CANCELLED"]
    assert all("still going" in (r.error or "") for r in skipped), [r.error for r in skipped]
    results = [r for r in page.results if r.result != "CANCELLED"]
    assert len(results) >= 5, [r.started_at for r in results]
    assert {r.trigger for r in results} == {"schedule"}
    assert [r.outcome for r in results] == ["PASS"] * len(results), [
        (r.result, r.error) for r in results
    ]
    span = (results[0].started_at - results[-1].started_at).total_seconds()
    expiries = span / state.lifetime_s
    # One request fills the empty token, then one per expiry: never one per call.
    assert 2 <= state.token_requests <= int(expiries) + 2, (state.token_requests, span)
    assert state.token_requests < len(results)


async def test_invalid_grant_skips_calls_as_needs_sign_in_and_notifies_once(
    daemon: Daemon, token_server: RunningServer, receiver: Receiver
) -> None:
    state = server_state(token_server)
    state.lifetime_s = 1.0
    prefix = unique("revoked")
    async with daemon.client() as client:
        await client.apply(token_project(token_server.url, prefix, webhook_url=receiver.url))
        assert (await run(client, f"{prefix}-orders")).outcome == "PASS"
        assert state.token_requests == 1

        state.invalid_grant = True
        await asyncio.sleep(1.1)  # the token expires
        outcomes = [await run(client, f"{prefix}-orders") for _ in range(3)]
        assert [(r.outcome, r.result) for r in outcomes] == [("SKIPPED", "NEEDS_SIGN_IN")] * 3
        assert state.token_requests == 2, "only the first call touches the token endpoint"
        token = await revealed_token(client, f"{prefix}-token")
        assert token.state == "needs_sign_in"

        await eventually(lambda: _received(receiver))
        await asyncio.sleep(0.5)
        assert len(receiver.requests) == 1, receiver.requests
        assert f"{prefix}-token" in receiver.requests[0]["body"]
        assert json.loads(receiver.requests[0]["body"])["state"] == "needs_sign_in"


async def _received(receiver: Receiver) -> int:
    return len(receiver.requests)


async def test_a_token_no_one_signed_in_to_reads_needs_sign_in_before_its_first_run(
    daemon: Daemon,
) -> None:
    """It read `expired` until a run found out that a person is needed; a refresh workflow or a
    grant that needs nobody can still fill an empty token, so those stay `expired`."""
    browser, machine = unique("browser"), unique("machine")
    base = {"type": "oauth2", "token_url": "http://127.0.0.1:9/token", "client_id": "c"}
    project = {
        "auth": [
            {
                "name": browser,
                **base,
                "grant": "authorization_code",
                "authorize_url": "http://127.0.0.1:9/authorize",
            },
            {"name": machine, **base, "grant": "client_credentials", "client_secret": "s"},
        ],
        "tokens": [{"name": browser, "auth": browser}, {"name": machine, "auth": machine}],
        "calls": [{"name": browser, "url": "http://127.0.0.1:9/x", "token": browser}],
    }
    async with daemon.client() as client:
        await client.apply(project)
        states = {t.name: t.state for t in await client.list("tokens") if isinstance(t, Token)}
        summary = {t.name: t for t in (await client.summary()).targets}
    assert states[browser] is TokenState.NEEDS_SIGN_IN
    assert states[machine] is TokenState.EXPIRED
    assert summary[browser].token_state is TokenState.NEEDS_SIGN_IN
