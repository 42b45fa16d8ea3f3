"""daemon.log (issue 10 point 13): an event-stream client leaving is not an error; one INFO line
for a run whose outcome changed, a token saved or changing state, a sign-in and an apply; a
request aiohttp cannot parse is logged without its bytes, and the callback port answers it with
its own security headers and without echoing it."""

from __future__ import annotations

import asyncio
import logging
import os
import re
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
from hypothesis import given, settings
from hypothesis import strategies as st

from apimd.daemon.logs import ActivityLog, _short
from apimd.demo.server import RunningServer
from apimd.model.events import (
    Event,
    Lagged,
    ResourceChanged,
    RunFinished,
    RunStarted,
    ScheduleFired,
    SignInEnded,
    SignInOpened,
    TokenSaved,
    TokenStateChanged,
)
from apimd.model.outcome import Outcome, ResultCode
from apimd.model.resources import TokenState
from tests.daemon.conftest import Daemon, unique
from tests.daemon.test_tokens import token_project
from tests.reliability.conftest import exchange_server, signin_project, state_of


def _lines(log: str, pattern: str) -> list[str]:
    return [line for line in log.splitlines() if re.search(pattern, line)]


async def _raw(
    reader_writer: tuple[asyncio.StreamReader, asyncio.StreamWriter], data: bytes
) -> bytes:
    reader, writer = reader_writer
    writer.write(data)
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(65536), 10)
    writer.close()
    return answer


async def test_an_event_stream_client_leaving_logs_no_traceback(own_daemon: Daemon) -> None:
    for _ in range(3):
        reader, writer = await asyncio.open_unix_connection(str(own_daemon.socket_path))
        writer.write(b"GET /v1/events HTTP/1.1\r\nHost: apimd\r\n\r\n")
        await writer.drain()
        assert b"200 OK" in await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        writer.close()
        await writer.wait_closed()
    async with own_daemon.client() as client:
        for index in range(4):  # events the hub writes to the streams that are gone
            await client.put("variables", f"V{index}", {"value": "x"})
            await asyncio.sleep(0.3)
    assert await own_daemon.stop() == 0
    log = own_daemon.log_path.read_text()
    assert "Traceback" not in log, log[-3000:]
    assert "unexpected error" not in log, log[-3000:]


async def test_the_log_has_one_line_per_change_a_person_looks_for(
    own_daemon: Daemon, token_server: RunningServer
) -> None:
    prefix = unique("act")
    async with own_daemon.client() as client:
        await client.apply(token_project(token_server.url, prefix))
        await client.put("calls", "down", {"url": "http://127.0.0.1:9/down"})
        for _ in range(3):
            await client.run("calls", f"{prefix}-orders", wait=True)
        for _ in range(2):
            await client.run("calls", "down", wait=True)
        await client.put("calls", "down", {"url": f"{token_server.url}/api/status"})
        await client.run("calls", "down", wait=True)
        await client.refresh_token(f"{prefix}-token")
        async with exchange_server() as exchange:
            await client.apply(signin_project(exchange.url))
            started = await client.signin("sso-token")
            callback_url = (await client.status()).callback_url
            async with (
                aiohttp.ClientSession() as browser,
                browser.get(f"{callback_url}?state={state_of(started.url)}&code=x") as page,
            ):
                assert "Signed in" in await page.text()
    log = own_daemon.log_path.read_text()

    assert len(_lines(log, rf"call {prefix}-orders is PASS")) == 1, log
    assert len(_lines(log, r"call down is FAIL \(CONNECTION_ERROR\)$")) == 1, log
    assert len(_lines(log, r"call down is PASS \(COMPLETE HTTP 200\), was FAIL")) == 1, log
    assert _lines(log, rf"applied \d+ change\(s\): .*calls/{prefix}-orders"), log
    assert _lines(log, rf"token {prefix}-token saved; expires 20"), log
    assert _lines(log, r"sign-in started for token sso-token"), log
    assert _lines(log, r"sign-in for token sso-token signed in"), log
    assert _lines(log, r"token sso-token is valid"), log
    assert not _lines(log, r"is refreshing"), "a transient state is not a line of its own"


async def test_an_unreadable_request_is_logged_and_answered_without_its_bytes(
    own_daemon: Daemon,
) -> None:
    secret = "s3cret-" + os.urandom(6).hex()
    async with own_daemon.client() as client:
        port = int((await client.status()).callback_url.split(":")[2].split("/")[0])
    unreadable = (
        f"GET /tokens/callback?code={secret} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Bad header {secret}\r\n\r\n"
    ).encode()
    answer = await _raw(await asyncio.open_connection("127.0.0.1", port), unreadable)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert re.match(rb"HTTP/1\.[01] 400 ", head), answer[:600]
    headers = head.decode().lower()
    for header in ("content-security-policy:", "cache-control: no-store", "x-frame-options: deny"):
        assert header in headers, headers
    assert secret.encode() not in answer
    assert b"Sign-in failed" in body
    for method, path in (("GET", "/elsewhere"), ("PUT", "/tokens/callback")):
        answer = await _raw(
            await asyncio.open_connection("127.0.0.1", port),
            f"{method} {path}?code={secret} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode(),
        )
        assert re.match(rb"HTTP/1\.1 40[45] ", answer), answer[:300]
        assert b"content-security-policy:" in answer.lower() and secret.encode() not in answer

    socket_answer = await _raw(
        await asyncio.open_unix_connection(str(own_daemon.socket_path)),
        unreadable.replace(b"/tokens/callback", b"/v1/tokens/x"),
    )
    assert re.match(rb"HTTP/1\.[01] 400 ", socket_answer), socket_answer[:300]
    assert await own_daemon.stop() == 0
    log = Path(own_daemon.log_path).read_text()
    assert secret not in log, log[-3000:]
    assert "Traceback" not in log, log[-3000:]
    assert len(_lines(log, r"an unreadable HTTP request \(BadHttpMessage, status 400\)")) == 2, log


async def test_a_request_path_cannot_write_a_line_of_its_own_into_the_log(
    own_daemon: Daemon,
) -> None:
    """The access line quotes the decoded path: a `%0A` in it wrote a forged line of its own, a
    `%00` a NUL that made the file binary (a helper's attack). Control characters are escaped."""
    forged = "2026-12-07 10:00:00,000 ERROR apimd.security: FORGED LINE"
    path = "/v1/results/abc%0A" + forged.replace(" ", "%20") + "%00%E2%80%A8end"
    answer = await _raw(
        await asyncio.open_unix_connection(str(own_daemon.socket_path)),
        f"GET {path} HTTP/1.1\r\nHost: apimd\r\n\r\n".encode(),
    )
    assert re.match(rb"HTTP/1\.1 404 ", answer), answer[:300]
    assert await own_daemon.stop() == 0
    log = Path(own_daemon.log_path).read_text()
    assert not any(line.startswith(forged) for line in log.splitlines()), log[-3000:]
    assert "\0" not in log and "\u2028" not in log
    assert (
        len(_lines(log, re.escape(r"/v1/results/abc\x0a2026-12-07") + r".*\\x00\\u2028end 404"))
        == 1
    ), log


class _OtherRunFinished(RunFinished):
    """A subclass: handled as its base, as `isinstance` did."""


class _Unlogged(Event):
    type: str = "x.other"


def _reference_log(activity: ActivityLog, event: Event) -> None:
    """`ActivityLog.__call__` as it was: a chain of `isinstance` checks per event."""
    if isinstance(event, RunFinished):
        activity._run_finished(event)
    elif isinstance(event, TokenSaved):
        expires = event.expires_at.isoformat() if event.expires_at else "—"
        logging.getLogger("apimd.activity").info("token %s saved; expires %s", event.token, expires)
    elif isinstance(event, TokenStateChanged):
        activity._token_state(event.token, event.state.value)
    elif isinstance(event, SignInOpened):
        logging.getLogger("apimd.activity").info(
            "sign-in started %s",
            f"for token {event.token}" if event.token else "by a workflow's browser step",
        )
    elif isinstance(event, SignInEnded):
        verdict = "signed in" if event.ok else "failed"
        logging.getLogger("apimd.activity").info(
            "sign-in %s %s: %s",
            f"for token {event.token}" if event.token else "by a workflow's browser step",
            verdict,
            _short(event.message),
        )
    elif isinstance(event, ResourceChanged):
        names = event.resources
        more = f" and {len(names) - 10} more" if len(names) > 10 else ""
        logging.getLogger("apimd.activity").info(
            "applied %d change(s): %s%s", len(names), ", ".join(names[:10]), more
        )


def _activity_events() -> list[Event]:
    moment = datetime(2026, 12, 7, tzinfo=UTC)
    finished = {
        "run_id": "r",
        "result_id": "r",
        "kind": "call",
        "trigger": "schedule",
        "result": ResultCode.COMPLETE,
        "http_status": 200,
    }
    return [
        RunStarted(run_id="r", kind="call", name="a", trigger="schedule"),
        RunFinished(name="a", outcome=Outcome.PASS, **finished),
        RunFinished(name="a", outcome=Outcome.FAIL, **finished),
        _OtherRunFinished(name="b", outcome=Outcome.PASS, **finished),
        ScheduleFired(schedule="s", targets=("a",), scheduled_at=moment, lateness_ms=1.0),
        TokenSaved(token="t", expires_at=moment),
        TokenSaved(token="t"),
        TokenStateChanged(token="t", state=TokenState.REFRESHING),
        TokenStateChanged(token="t", state=TokenState.VALID),
        TokenStateChanged(token="t", state=TokenState.ERROR, error="no"),
        SignInOpened(id="i", url="https://x", expires_at=moment, token="t"),
        SignInOpened(id="w", url="https://x", expires_at=moment, run_id="r"),
        SignInEnded(id="i", ok=False, message="denied\n by  the user"),
        ResourceChanged(resources=tuple(f"calls/c{i}" for i in range(12))),
        _Unlogged(),
        Lagged(missed=3),
    ]


@settings(max_examples=200, deadline=None)
@given(order=st.lists(st.integers(0, 15), max_size=30))
def test_the_activity_log_logs_what_its_isinstance_chain_did(order: list[int]) -> None:
    """The handler looked up by the event's class (found once per class) logs the same lines, in
    the same order, as the `isinstance` chain it replaced, for every kind of event, a subclass
    and events it ignores, in any order (a run's outcome is logged when it changes)."""
    events = _activity_events()
    said: dict[str, list[str]] = {"fast": [], "reference": []}
    into: list[str] = said["fast"]

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            into.append(record.getMessage())

    logger = logging.getLogger("apimd.activity")
    keep, level = Keep(), logger.level
    logger.addHandler(keep)
    logger.setLevel(logging.INFO)
    try:
        fast, reference = ActivityLog(), ActivityLog()
        for index in order:
            into = said["fast"]
            fast(events[index])
            into = said["reference"]
            _reference_log(reference, events[index])
    finally:
        logger.removeHandler(keep)
        logger.setLevel(level)
    assert said["fast"] == said["reference"]
    assert len(said["fast"]) <= len(order)


def test_a_workflows_sign_in_is_logged_as_its_browser_steps() -> None:
    """A workflow's browser step (no token) was logged `sign-in started for token (none)`,
    which said nothing of whose sign-in it was (a newcomer's run)."""
    said: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            said.append(record.getMessage())

    logger = logging.getLogger("apimd.activity")
    keep, level = Keep(), logger.level
    logger.addHandler(keep)
    logger.setLevel(logging.INFO)
    try:
        activity = ActivityLog()
        moment = datetime(2026, 12, 7, tzinfo=UTC)
        activity(SignInOpened(id="w", url="https://x", expires_at=moment, run_id="r"))
        activity(SignInEnded(id="w", ok=True, message="Signed in"))
    finally:
        logger.removeHandler(keep)
        logger.setLevel(level)
    assert said == [
        "sign-in started by a workflow's browser step",
        "sign-in by a workflow's browser step signed in: Signed in",
    ]
