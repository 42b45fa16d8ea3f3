"""`GET /v1/summary`: every target at a glance in one request (the dashboard's data)."""

from __future__ import annotations

import asyncio
import socket

import pytest
from aiohttp import web
from pytest_aiohttp import AiohttpClient

from apimd.client import Client
from apimd.demo.server import RunningServer
from apimd.model.resources import TokenState
from tests.support.app import App, AppClient, serve_app
from tests.support.daemon import DaemonProcess as Daemon
from tests.support.web import app_of


async def test_summary_has_latest_outcome_recent_latencies_uptime_and_next_run(
    own_app_client: Client,
) -> None:
    """In-process: the summary needs no daemon process."""
    async with own_app_client as client:
        await client.apply(
            {
                "auth": [{"name": "a", "type": "manual"}],
                "tokens": [{"name": "t", "auth": "a"}],
                "calls": [
                    {"name": "ok", "url": "http://127.0.0.1:9/", "conditions": []},
                    {"name": "uses-token", "url": "http://127.0.0.1:9/", "token": "t"},
                    {"name": "never-ran", "url": "http://127.0.0.1:9/"},
                ],
                "workflows": [{"name": "flow", "steps": ["ok", "uses-token"]}],
                "schedules": [{"name": "hourly", "every": "1h", "targets": ["ok"]}],
            }
        )
        for _ in range(3):
            await client.run("calls", "ok", wait=True)
        summary = await client.summary(window="24h")
    by_name = {t.name: t for t in summary.targets}
    assert set(by_name) == {"ok", "never-ran", "uses-token", "flow"}
    ok = by_name["ok"]
    assert ok.kind == "call"
    assert ok.outcome is not None and ok.outcome.value == "FAIL"
    assert ok.result is not None and ok.result.value == "CONNECTION_ERROR"
    assert len(ok.recent_ms) == 3
    assert ok.uptime == 0.0
    assert ok.next_run is not None
    assert by_name["never-ran"].outcome is None and by_name["never-ran"].uptime is None
    assert by_name["flow"].kind == "workflow"
    assert by_name["flow"].token == "t"  # a workflow shows the worst token of its steps
    assert by_name["flow"].token_state is not None


@pytest.mark.both_stores
async def test_summary_limited_to_the_first_targets_in_dashboard_order(
    own_home: Daemon, aiohttp_client: AiohttpClient
) -> None:
    """`order=dashboard&limit=N`: a dashboard's first screen of a large project, before the
    rest; `total` says how many there are. Bad values are a 400 saying what is allowed."""
    app = await serve_app(aiohttp_client, own_home)
    async with AppClient(app) as client:
        await client.apply(
            {
                "auth": [
                    {
                        "name": "people",
                        "type": "oauth2",
                        "grant": "authorization_code",
                        "authorize_url": "http://127.0.0.1:9/authorize",
                        "token_url": "http://127.0.0.1:9/token",
                        "client_id": "demo-client",
                    }
                ],
                "tokens": [{"name": "t", "auth": "people"}],
                "calls": [
                    {"name": name, "url": "http://127.0.0.1:9/"}
                    for name in ("zeta", "beta", "Alpha", "delta")
                ]
                + [{"name": "gamma", "url": "http://127.0.0.1:9/", "token": "t"}],
                "workflows": [{"name": "flow", "steps": ["beta"]}],
            }
        )
        for name in ("zeta", "Alpha"):  # nothing listens on port 9: FAIL
            await client.run("calls", name, wait=True)
        assert (await client.refresh_token("t")).state is TokenState.NEEDS_SIGN_IN
        whole = await client.summary()
        head = await client.summary(order="dashboard", limit=3)
        every = await client.summary(order="dashboard")
        first = await client.summary(limit=2)
    project_order = [t.name for t in whole.targets]  # calls, then workflows
    assert sorted(project_order[:5], key=str.lower) == ["Alpha", "beta", "delta", "gamma", "zeta"]
    assert project_order[5] == "flow"
    assert whole.total == 6 and whole.complete
    by_name = {t.name: t for t in whole.targets}
    assert by_name["gamma"].token_state is TokenState.NEEDS_SIGN_IN
    # FAIL first, then a token needing sign-in, then the rest; by name regardless of case.
    dashboard = ["Alpha", "zeta", "gamma", "beta", "delta", "flow"]
    assert [t.name for t in every.targets] == dashboard
    assert [t.name for t in head.targets] == dashboard[:3]
    assert head.total == 6 and not head.complete
    assert head.targets == [by_name[n] for n in dashboard[:3]]  # the same targets, only fewer
    assert first.targets == whole.targets[:2] and first.total == 6

    for query, field, message in (
        ("order=worst", "order", "`order` must be project or dashboard, not 'worst'"),
        ("limit=0", "limit", "`limit` must be at least 1"),
        ("limit=-5", "limit", "`limit` must be at least 1"),
        ("limit=ten", "limit", "`limit` must be a whole number"),
        ("limit=", "limit", "`limit` must be a whole number"),
    ):
        async with app.get(f"/v1/summary?{query}") as response:
            assert response.status == 400, query
            error = (await response.json())["error"]
            assert (error["field"], error["message"]) == (field, message)


async def test_the_openapi_document_describes_the_summary_order_and_limit(app: App) -> None:
    async with app.get("/v1/openapi.json") as response:
        document = await response.json()
    parameters = document["paths"]["/v1/summary"]["get"]["parameters"]
    kinds = {p["name"]: p["schema"]["type"] for p in parameters}
    assert kinds == {"window": "string", "order": "string", "limit": "integer"}
    described = {p["name"]: p["description"] for p in parameters}
    assert "dashboard" in described["order"] and "total" in described["limit"]
    summary = document["components"]["schemas"]["Summary"]["properties"]
    assert "total" in summary
    target = document["components"]["schemas"]["TargetSummary"]["properties"]
    assert "not a PASS" in target["reason"]["description"]


def _closed_port() -> int:
    """A loopback port nothing listens on (bound, then closed)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.both_stores
async def test_the_summary_says_why_each_failing_target_fails(
    own_home: Daemon, aiohttp_client: AiohttpClient
) -> None:
    """`reason`: the latest result's why in a few words, from real calls against a real local
    server (a 503, a JSON condition, a status condition, a refused connection, a slow answer, a
    failing workflow step); a PASS has none."""

    async def down(_request: web.Request) -> web.Response:
        return web.json_response({"ok": False}, status=503)

    async def health(_request: web.Request) -> web.Response:
        return web.json_response({"ok": False})

    async def slow(_request: web.Request) -> web.Response:
        await asyncio.sleep(0.15)
        return web.json_response({"ok": True})

    server = RunningServer(
        app_of(web.get("/down", down), web.get("/health", health), web.get("/slow", slow))
    )
    await server.start()
    refused = f"http://127.0.0.1:{_closed_port()}/"
    app = await serve_app(aiohttp_client, own_home)
    try:
        async with AppClient(app) as client:
            await client.apply(
                {
                    "calls": [
                        {"name": "down", "url": f"{server.url}/down"},
                        {
                            "name": "json-ok",
                            "url": f"{server.url}/health",
                            "conditions": [
                                {"source": "json", "path": "$.ok", "op": "eq", "value": "true"}
                            ],
                        },
                        {
                            "name": "status-200",
                            "url": f"{server.url}/down",
                            "conditions": [{"source": "status", "op": "eq", "value": "200"}],
                        },
                        {"name": "refused", "url": refused},
                        {"name": "slow", "url": f"{server.url}/slow", "sla": {"fail_ms": 100}},
                        {"name": "fine", "url": f"{server.url}/slow"},
                    ],
                    "workflows": [{"name": "flow", "steps": ["fine", "down"]}],
                }
            )
            for name in ("down", "json-ok", "status-200", "refused", "slow", "fine"):
                await client.run("calls", name, wait=True)
            await client.run("workflows", "flow", wait=True)
            summary = await client.summary()
            async with app.get("/v1/summary") as response:
                raw = await response.json()
    finally:
        await server.stop()
    why = {t.name: t.reason for t in summary.targets}
    assert why["down"] == "HTTP 503"  # its latest run: as the workflow's step
    assert why["json-ok"] == "$.ok eq true → false"
    assert why["status-200"] == "status eq 200 → 503"
    assert why["refused"] == "connection refused"
    assert why["slow"] is not None and why["slow"].startswith("SLOW 0.")
    assert why["slow"].endswith("s > 0.1s")
    assert why["flow"] == "down: HTTP 503"
    assert why["fine"] is None  # a PASS has no why
    assert "reason" in raw["targets"][0]  # on the wire, under its documented name
