"""Done-when of issue 13 §1: an API that verifies an HMAC signature over method, path, timestamp
and body hash (and rejects a stale timestamp) is monitored PASS by a manual token whose headers
are built only from template functions and request variables."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp import web

from apimd.engine.context import RunOrder
from apimd.engine.memory import MemoryStateStore
from apimd.engine.runner import Engine
from apimd.model import Outcome, ResultCode, TokenState
from apimd.model.runtime import effective_state, is_due
from tests.support.engine import run_once
from tests.support.projects import build
from tests.support.web import CatchAllApi

SECRET = "sig-secret-0123456789"


class SignedApi(CatchAllApi):
    """Verifies `X-Signature = base64(hmac_sha256(SECRET, METHOD\\nPATH?QUERY\\nTS\\nsha256(body)))`."""

    def __init__(self, max_age_s: float = 30) -> None:
        self.max_age_s = max_age_s
        self.seen: list[dict[str, str]] = []
        super().__init__()

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        timestamp = request.headers.get("X-Timestamp", "")
        self.seen.append(dict(request.headers))
        if request.path.startswith("/old/"):  # same origin: the next hop is signed afresh
            raise web.HTTPTemporaryRedirect(request.raw_path.replace("/old/", "/v1/", 1))
        if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > self.max_age_s:
            return web.json_response({"error": "stale timestamp"}, status=401)
        message = "\n".join(
            [request.method, request.raw_path, timestamp, hashlib.sha256(body).hexdigest()]
        )
        expected = base64.b64encode(
            hmac.new(SECRET.encode(), message.encode(), "sha256").digest()
        ).decode()
        if not hmac.compare_digest(expected, request.headers.get("X-Signature", "")):
            return web.json_response({"error": "bad signature"}, status=401)
        return web.json_response({"ok": True})


@pytest.fixture
async def signed_api() -> AsyncIterator[SignedApi]:
    async with SignedApi() as api:
        yield api


def signed_project(base: str, *, timestamp: str = "%%UNIXTIME%%") -> dict[str, Any]:
    return {
        "variables": {"API_SECRET": {"value": SECRET, "secret": True}},
        "auth": [{"name": "signed", "type": "manual"}],
        "tokens": [
            {
                "name": "sig",
                "auth": "signed",
                "headers": {
                    "X-Timestamp": timestamp,
                    "X-Signature": (
                        "{{ hmac_sha256(API_SECRET, '%%REQUEST_METHOD%%\\n%%REQUEST_PATH%%"
                        "?%%REQUEST_QUERY%%\\n" + timestamp + "\\n%%REQUEST_BODY_SHA256%%')"
                        " | base64 }}"
                    ),
                },
                "params": {"key_id": "k1"},
            }
        ],
        "calls": [
            {
                "name": "orders",
                "method": "POST",
                "url": f"{base}/v1/orders/a b",
                "params": {"q": "x&y"},
                "json": {"item": "book"},
                "token": "sig",
                "conditions": [{"source": "status", "op": "eq", "value": 200}],
            }
        ],
        "schedules": [{"name": "often", "every": "1m", "targets": ["orders"]}],
    }


async def run(doc: dict[str, Any], name: str) -> Any:
    # Nothing is saved in the token: its headers are template functions and variables alone.
    return await run_once(
        Engine(build(doc), MemoryStateStore()), name, RunOrder(trigger="schedule")
    )


async def test_signed_api_is_monitored_pass(signed_api: SignedApi) -> None:
    result = await run(signed_project(signed_api.server.url), "orders")
    assert result.outcome == Outcome.PASS, (result.error, result.response)
    sent = signed_api.seen[-1]
    assert sent["X-Signature"] and sent["X-Timestamp"].isdigit()
    # The result records the computed headers, the signature (made from a secret) redacted.
    recorded = dict(result.request.headers)
    assert recorded["X-Timestamp"] == sent["X-Timestamp"]
    assert recorded["X-Signature"] == "••••"
    assert sent["X-Signature"] not in result.model_dump_json()


async def test_a_stale_timestamp_is_rejected(signed_api: SignedApi) -> None:
    stale = str(int(time.time()) - 3600)
    result = await run(signed_project(signed_api.server.url, timestamp=stale), "orders")
    assert result.outcome == Outcome.FAIL
    assert result.result == ResultCode.CONTENT_ERROR
    assert "stale timestamp" in (result.response.body or "")


def test_a_static_token_shows_valid_and_is_never_due() -> None:
    project = build(signed_project("http://127.0.0.1:9"))
    auth = project.auth_setting("signed")
    now = datetime.now(UTC)
    assert effective_state(None, auth, now) == TokenState.VALID
    assert not is_due(None, auth, now)
    refreshed = auth.model_copy(update={"refresh_workflow": "w"}) if auth else None
    assert effective_state(None, refreshed, now) == TokenState.EXPIRED
    assert is_due(None, refreshed, now)


async def test_each_redirect_hop_is_signed_afresh(signed_api: SignedApi) -> None:
    doc = signed_project(signed_api.server.url)
    doc["calls"][0]["url"] = f"{signed_api.server.url}/old/orders"
    result = await run(doc, "orders")
    assert result.outcome == Outcome.PASS, (result.error, result.response)
    first, second = signed_api.seen[-2:]
    assert first["X-Signature"] != second["X-Signature"]
    dumped = result.model_dump_json()
    assert first["X-Signature"] not in dumped and second["X-Signature"] not in dumped
