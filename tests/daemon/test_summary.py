"""`GET /v1/summary`: every target at a glance in one request (the dashboard's data)."""

from __future__ import annotations

from apimd.client import Client


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
