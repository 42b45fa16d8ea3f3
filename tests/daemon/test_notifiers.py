"""Notifiers through Apprise (SPEC §11): a real daemon sends through Apprise's `json://` to a local
HTTP receiver — a FAIL, a repeat after `repeat_every`, a resolved message, a token that needs a
sign-in — never a secret, and never making a `wait: true` answer wait for a slow receiver."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from apimd.demo.server import RunningServer
from tests.conftest import server_state
from tests.daemon.conftest import Daemon, eventually, unique
from tests.daemon.test_tokens import revealed_token, run, token_project
from tests.support.web import app_of

SECRET = "hdr-secret-value-4417"


@dataclass
class Inbox:
    """A loopback server standing in for a notification service, and a target whose status and
    answer time the test sets."""

    port: int
    messages: list[dict[str, Any]] = field(default_factory=list)
    raw: list[str] = field(default_factory=list)
    status: int = 500
    delay_s: float = 0.0

    def apprise_url(self, path: str) -> str:
        return f"json://127.0.0.1:{self.port}/{path}"

    @property
    def target(self) -> str:
        return f"http://127.0.0.1:{self.port}/target"

    def titles(self) -> list[str]:
        return [m["title"] for m in self.messages]


@pytest.fixture
async def inbox() -> AsyncIterator[Inbox]:
    box = Inbox(port=0)

    async def notify(request: web.Request) -> web.Response:
        text = await request.text()
        box.raw.append(text + json.dumps(dict(request.headers)))
        await asyncio.sleep(box.delay_s)
        box.messages.append(json.loads(text) | {"path": request.path, "at": time.monotonic()})
        return web.json_response({"ok": True})

    async def target(_request: web.Request) -> web.Response:
        return web.json_response({"status": box.status}, status=box.status)

    app = app_of(web.get("/target", target), web.post("/{tail:.*}", notify))
    async with RunningServer(app) as running:
        box.port = running.port
        yield box


async def test_apprise_alert_repeat_and_resolved_without_secrets(
    daemon: Daemon, inbox: Inbox
) -> None:
    name = unique("watched")
    project = {
        "variables": {"API_KEY": {"value": SECRET, "secret": True}},
        "calls": [
            {
                "name": name,
                "url": inbox.target,
                "headers": {"X-Api-Key": "%%API_KEY%%"},
                "conditions": [{"source": "status", "op": "eq", "value": 200}],
                "webhooks": [
                    {
                        "type": "apprise",
                        "url": inbox.apprise_url(f"hook/{name}"),
                        "repeat_every": "1s",
                        "resolved": True,
                    }
                ],
            }
        ],
    }
    async with daemon.client() as client:
        await client.apply(project)
        inbox.status = 500
        ran = time.monotonic()
        assert (await run(client, name)).outcome.value == "FAIL"
        await eventually(lambda: _count(inbox, 1))
        first = inbox.messages[0]
        assert first["title"] == f"apimd: call {name} FAIL"
        status = await client.status()  # the result as recorded: by this agent, from here
        assert f"Where: {status.location} (agent {status.agent})" in first["message"]
        assert "Outcome: FAIL (CONTENT_ERROR) (HTTP 500)" in first["message"]
        assert "- status eq 200: actual 500" in first["message"]
        assert "Response time:" in first["message"]
        await eventually(lambda: _count(inbox, 2), timeout=5)
        repeat = inbox.messages[1]
        assert repeat["title"] == f"apimd: still call {name} FAIL"
        # 1 s after the alert was sent (its delivery may take a while: Apprise loads on first use)
        assert repeat["at"] - ran >= 0.9

        inbox.status = 200
        assert (await run(client, name)).outcome.value == "PASS"
        await eventually(lambda: _has_title(inbox, f"apimd: resolved: call {name} is PASS again"))
        settled = len(inbox.messages)
        await asyncio.sleep(1.6)
        assert len(inbox.messages) == settled  # resolved: no more reminders
        exported = await client.export()
    assert all(m["path"] == f"/hook/{name}" for m in inbox.messages)
    assert not any(SECRET in raw for raw in inbox.raw)
    hook = exported["calls"][0]["webhooks"][0]
    assert hook["url"] == "••••"  # the Apprise URL is a secret


async def test_a_slow_notification_service_never_delays_a_wait_true_answer(
    daemon: Daemon, inbox: Inbox
) -> None:
    name = unique("slow-inbox")
    inbox.delay_s = 3.0
    async with daemon.client() as client:
        await client.apply(
            {
                "calls": [
                    {
                        "name": name,
                        "url": inbox.target,
                        "webhooks": [{"type": "apprise", "url": inbox.apprise_url("slow")}],
                    }
                ]
            }
        )
        started = time.monotonic()
        assert (await run(client, name)).outcome.value == "FAIL"
        assert time.monotonic() - started < 2.0
        await eventually(lambda: _count(inbox, 1), timeout=10)


async def test_a_token_that_needs_sign_in_alerts_with_what_to_do(
    daemon: Daemon, inbox: Inbox, token_server: RunningServer
) -> None:
    prefix = unique("tok")
    project = token_project(token_server.url, prefix)
    project["auth"][0]["webhooks"] = [
        {"type": "apprise", "url": inbox.apprise_url("tokens"), "resolved": True}
    ]
    async with daemon.client() as client:
        await client.apply(project)
        assert (await run(client, f"{prefix}-orders")).outcome.value == "PASS"
        access_token = ((await revealed_token(client, f"{prefix}-token")).variables or {})[
            "ACCESS_TOKEN"
        ]
        server_state(token_server).invalid_grant = True
        await client.refresh_token(f"{prefix}-token")
        assert (await run(client, f"{prefix}-orders")).result.value == "NEEDS_SIGN_IN"
        await eventually(lambda: _count(inbox, 1))
    message = inbox.messages[0]
    assert message["title"] == f"apimd: token {prefix}-token NEEDS_SIGN_IN"
    assert f"apimd token signin {prefix}-token" in message["message"]
    assert not any(access_token in raw or "demo-secret" in raw for raw in inbox.raw)


async def _count(inbox: Inbox, at_least: int) -> bool:
    return len(inbox.messages) >= at_least


async def _has_title(inbox: Inbox, title: str) -> bool:
    return title in inbox.titles()


async def test_a_restart_neither_repeats_early_nor_forgets(inbox: Inbox) -> None:
    from tests.daemon.conftest import start_daemon, stop_daemon

    first_daemon = start_daemon()
    project = {
        "calls": [
            {
                "name": "kept",
                "url": inbox.target,
                "webhooks": [
                    {"type": "apprise", "url": inbox.apprise_url("kept"), "repeat_every": "4s"}
                ],
            }
        ]
    }
    async with first_daemon.client() as client:
        await client.apply(project)
        assert (await run(client, "kept")).outcome.value == "FAIL"
        await eventually(lambda: _count(inbox, 1))
    stop_daemon(first_daemon, remove_home=False)
    second_daemon = start_daemon(first_daemon.home)
    try:
        await asyncio.sleep(max(0.0, inbox.messages[0]["at"] + 2.5 - time.monotonic()))
        assert len(inbox.messages) == 1  # not repeated early by the restart
        await eventually(lambda: _count(inbox, 2), timeout=6)  # nor forgotten
        # 4 s apart when sent; arrival also counts each daemon's first Apprise import
        assert inbox.messages[1]["at"] - inbox.messages[0]["at"] >= 3.0
        assert inbox.messages[1]["title"] == "apimd: still call kept FAIL"
    finally:
        stop_daemon(second_daemon)


async def test_nothing_is_sent_in_a_maintenance_window_and_counts_stay_frozen(
    daemon: Daemon, inbox: Inbox
) -> None:
    name = unique("maint")
    call = {
        "name": name,
        "url": inbox.target,
        "webhooks": [{"type": "apprise", "url": inbox.apprise_url("m"), "fails_in_a_row": 2}],
    }
    always = {"name": f"{name}-window", "cron": "* * * * *", "duration": "1h", "targets": [name]}
    inbox.status = 500
    async with daemon.client() as client:
        await client.apply({"calls": [call], "maintenance": [always]})
        for _ in range(3):
            result = await run(client, name)
            assert result.outcome.value == "FAIL" and result.maintenance
        stats = await client.stats(name)
        assert stats.maintenance == 3 and stats.total == 0 and stats.uptime is None
        summary = {t.name: t for t in (await client.summary()).targets}
        assert summary[name].uptime is None  # runs in a window are left out of uptime
        exported = await client.export()
        assert exported["maintenance"][0]["cron"] == "* * * * *"

        await client.delete("maintenance", f"{name}-window")
        await asyncio.sleep(1.0)
        assert inbox.messages == []  # nothing was sent in the window
        first = await run(client, name)
        assert not first.maintenance
        # still failing after the window: the first result alerts (not 2 more, fails_in_a_row)
        await eventually(lambda: _count(inbox, 1))
    assert inbox.messages[0]["title"] == f"apimd: call {name} FAIL"


async def test_counts_do_not_advance_in_a_window(daemon: Daemon, inbox: Inbox) -> None:
    name = unique("frozen")
    hook = {"type": "apprise", "url": inbox.apprise_url("f"), "fails_in_a_row": 2}
    window: dict[str, object] = {
        "name": f"{name}-w",
        "cron": "* * * * *",
        "duration": "1h",
        "targets": [name],
    }
    inbox.status = 500
    async with daemon.client() as client:
        await client.apply({"calls": [{"name": name, "url": inbox.target, "webhooks": [hook]}]})
        await run(client, name)  # 1 of 2
        await client.put("maintenance", f"{name}-w", window)
        inbox.status = 200
        await run(client, name)  # a PASS in the window does not reset the count either
        await client.delete("maintenance", f"{name}-w")
        inbox.status = 500
        await run(client, name)  # 2 of 2: the count held across the window
        await eventually(lambda: _count(inbox, 1))


async def test_mute_adds_a_one_off_window_from_now(daemon: Daemon, inbox: Inbox) -> None:
    name = unique("muted")
    async with daemon.client() as client:
        await client.apply({"calls": [{"name": name, "url": inbox.target}]})
    code, out, err = await daemon.cli("mute", name, "30m")
    assert code == 0, err
    assert f"muted {name} until" in out
    async with daemon.client() as client:
        windows = await client.list("maintenance")
        mine = [w for w in windows if name in getattr(w, "targets", [])]
        assert len(mine) == 1
        window: Any = mine[0]
        assert (window.end - window.start).total_seconds() == 1800
        assert (await run(client, name)).maintenance
    code, _out, err = await daemon.cli("mute", "no-such-target", "30m")
    assert code == 2 and "no call or workflow named 'no-such-target'" in err
    code, _out, err = await daemon.cli("mute", name, "soon")
    assert code == 2 and "DURATION" in err


async def test_reminders_pause_while_a_maintenance_window_covers_the_target(
    daemon: Daemon, inbox: Inbox
) -> None:
    name = unique("remind")
    hook = {"type": "apprise", "url": inbox.apprise_url("r"), "repeat_every": "1s"}
    inbox.status = 500
    async with daemon.client() as client:
        await client.apply({"calls": [{"name": name, "url": inbox.target, "webhooks": [hook]}]})
        await run(client, name)
        await eventually(lambda: _count(inbox, 2), timeout=5)  # the alert and a reminder
        window: dict[str, object] = {
            "name": f"{name}-quiet",
            "cron": "* * * * *",
            "duration": "1h",
            "targets": [name],
        }
        await client.put("maintenance", f"{name}-quiet", window)
        await asyncio.sleep(0.5)  # a reminder already on its way may still land
        paused = len(inbox.messages)
        await asyncio.sleep(2.5)
        assert len(inbox.messages) == paused  # silent in the window
        await client.delete("maintenance", f"{name}-quiet")
        await eventually(lambda: _count(inbox, paused + 1), timeout=5)  # and on again after
