"""Fixed data for snapshot tests: an object with the methods of `apimd.client.Client` that the TUI
uses, returning the same model objects every time, at a frozen time. Behaviour tests use a real
daemon instead; this exists because snapshots need data that never changes."""

from __future__ import annotations

import asyncio
import json
import math
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cronsim import CronSim
from pydantic import BaseModel

from apimd.client import ApiError
from apimd.model import (
    Call,
    Condition,
    ConditionResult,
    Outcome,
    RequestRecord,
    ResponseRecord,
    Result,
    ResultCode,
    Schedule,
    Timings,
    Token,
    TokenState,
    Workflow,
)
from apimd.model.api import (
    ResultPage,
    RunAccepted,
    StatusInfo,
    Summary,
    SummaryOrder,
    TargetSummary,
)
from apimd.model.common import SECRET_MASK
from apimd.model.events import Event
from apimd.model.stats import Latency, Stats, StatsPoint
from tests.support.clients import EmptyDaemon, served

FROZEN = datetime(2026, 3, 14, 12, 0, 0, tzinfo=UTC)
SOCKET = Path("/tmp/apimd-snapshots/apimd.sock")
API = "https://api.example.com"


def frozen_clock() -> datetime:
    return FROZEN


CALLS = [
    Call(
        name="checkout-health",
        url=f"{API}/checkout/health",
        conditions=[Condition(source="status", op="eq", value=200)],
    ),
    Call(name="list-orders", url=f"{API}/orders", token="demo-token"),
    Call(name="service-status", url=f"{API}/status"),
    Call(name="catalogue-xml", url=f"{API}/items.xml"),
    Call(name="get-token", method="POST", url="https://login.example.com/oauth/token"),
    Call(name="partner-feed", url="https://partner.example.net/feed", token="partner-token"),
    Call(name="search", url=f"{API}/search?q=shoes"),
    Call(name="new-endpoint", url=f"{API}/v2/things"),
]
WORKFLOWS = [
    Workflow(name="order-flow", steps=["service-status", "list-orders"]),
    Workflow(name="refresh-demo", steps=["get-token"]),
]
TOKENS = [
    Token(
        name="demo-token",
        auth="demo-oauth",
        headers={"Authorization": "Bearer %%ACCESS_TOKEN%%"},
        variables={"ACCESS_TOKEN": SECRET_MASK, "EXPIRES_IN": "300", "REFRESH_TOKEN": SECRET_MASK},
        expires_at=FROZEN + timedelta(minutes=4, seconds=12),
        state=TokenState.VALID,
        last_refresh=FROZEN - timedelta(seconds=48),
    ),
    Token(
        name="partner-token",
        auth="partner-sso",
        headers={"Authorization": "Bearer %%ACCESS_TOKEN%%"},
        variables={"ACCESS_TOKEN": SECRET_MASK},
        expires_at=FROZEN - timedelta(hours=2),
        state=TokenState.NEEDS_SIGN_IN,
        last_refresh=FROZEN - timedelta(hours=3),
        last_error="invalid_grant: the refresh token was revoked; sign in again",
    ),
    Token(name="legacy-token", auth="legacy", state=TokenState.EXPIRED),
]
REVEALED = {
    "demo-token": {
        "ACCESS_TOKEN": "at-7Qx2mN4pL9",
        "EXPIRES_IN": "300",
        "REFRESH_TOKEN": "rt-Zk3vB8sW1c",
    },
    "partner-token": {"ACCESS_TOKEN": "at-old-0000"},
}
SCHEDULES = [
    Schedule(
        name="every-30s",
        every="30s",
        targets=["checkout-health", "list-orders", "service-status", "catalogue-xml"],
    ),
    Schedule(name="every-5m", every="5m", targets=["order-flow", "partner-feed", "search"]),
    Schedule(name="nightly", cron="0 3 * * *", targets=["refresh-demo"]),
]

# name -> (outcome, result code, http status, base latency ms, seconds since the last run)
LAST = {
    "checkout-health": (Outcome.FAIL, ResultCode.HTTP_SERVER_ERROR, 500, 42.0, 7),
    "list-orders": (Outcome.PASS, ResultCode.COMPLETE, 200, 120.0, 12),
    "service-status": (Outcome.PASS, ResultCode.COMPLETE, 200, 18.0, 7),
    "catalogue-xml": (Outcome.WARNING, ResultCode.CONTENT_WARNING, 200, 65.0, 7),
    "get-token": (Outcome.PASS, ResultCode.COMPLETE, 200, 210.0, 3 * 3600),
    "partner-feed": (Outcome.SKIPPED, ResultCode.NEEDS_SIGN_IN, None, 0.0, 140),
    "search": (Outcome.SLOW, ResultCode.SLOW_COMPLETE, 200, 900.0, 95),
    "order-flow": (Outcome.PASS, ResultCode.COMPLETE, 200, 150.0, 200),
    "refresh-demo": (Outcome.PASS, ResultCode.COMPLETE, 200, 220.0, 3 * 3600),
}
# name -> why its latest result is not a PASS (what the daemon's `short_reason` says)
REASON = {
    "checkout-health": "status eq 200 → 500",
    "catalogue-xml": "count(/items/item) eq 3 → 2",
    "partner-feed": "needs sign-in",
    "search": "SLOW 0.9s > 0.8s",
}
UPTIME = {
    "checkout-health": 0.62,
    "list-orders": 1.0,
    "service-status": 0.9993,
    "catalogue-xml": 1.0,
    "get-token": 1.0,
    "partner-feed": None,
    "search": 0.995,
    "order-flow": 1.0,
    "refresh-demo": 1.0,
}


def _latency(base: float, i: int) -> float:
    return round(base * (1 + 0.35 * math.sin(i * 0.9) + 0.1 * (i % 3)), 1)


def _timings(total: float) -> Timings:
    return Timings(
        dns=round(total * 0.06, 1),
        connect=round(total * 0.22, 1),
        send=round(total * 0.02, 1),
        wait=round(total * 0.6, 1),
        receive=round(total * 0.1, 1),
        total=total,
    )


def _result_id(name: str, i: int) -> str:
    return f"{abs(hash_name(name)):08x}-{i:04d}-4000-8000-000000000000"


def hash_name(name: str) -> int:
    """A stable (unsalted) hash, so ids are the same in every run."""
    value = 7
    for char in name:
        value = (value * 31 + ord(char)) % 0xFFFFFFFF
    return value


def _detail(name: str, result: Result) -> Result:
    """The full document of the latest result of `name`: request, response, conditions."""
    url = next((c.url for c in CALLS if c.name == name), f"{API}/{name}")
    request = RequestRecord(
        method="GET",
        url=url,
        headers={"User-Agent": "apimd/0.1.0", "Accept": "*/*", "Authorization": SECRET_MASK},
    )
    if name == "checkout-health":
        body = json.dumps({"error": "upstream timeout", "service": "payments", "retry": True})
        return result.model_copy(
            update={
                "request": request,
                "response": ResponseRecord(
                    headers={"Content-Type": "application/json", "Content-Length": "64"},
                    body=body,
                ),
                "size": 64,
                "conditions": [
                    ConditionResult(
                        source="status", op="eq", expected=200, actual=500, passed=False
                    ),
                    ConditionResult(
                        source="json",
                        path="$.service",
                        op="eq",
                        expected="payments",
                        actual="payments",
                        passed=True,
                    ),
                ],
                "error": None,
            }
        )
    if name == "catalogue-xml":
        body = '<items><item id="1">alpha</item><item id="2">beta</item></items>'
        return result.model_copy(
            update={
                "request": request,
                "response": ResponseRecord(headers={"Content-Type": "application/xml"}, body=body),
                "size": len(body),
                "conditions": [
                    ConditionResult(
                        source="xml",
                        path="count(/items/item)",
                        op="eq",
                        expected=3,
                        actual=2,
                        passed=False,
                        on_fail="warning",
                    ),
                ],
            }
        )
    body = json.dumps({"status": "ok", "version": "1.4.2", "healthy": True})
    return result.model_copy(
        update={
            "request": request,
            "response": ResponseRecord(headers={"Content-Type": "application/json"}, body=body),
            "size": len(body),
            "conditions": [
                ConditionResult(source="status", op="eq", expected=200, actual=200),
                ConditionResult(
                    source="json", path="$.healthy", op="eq", expected=True, actual=True
                ),
                ConditionResult(source="json", path="$.version", save_as="VERSION", actual="1.4.2"),
            ],
        }
    )


def _history(name: str) -> list[Result]:
    """20 results of `name`, newest first; the newest is LAST[name]."""
    outcome, code, status, base, ago = LAST[name]
    kind = "workflow" if any(w.name == name for w in WORKFLOWS) else "call"
    results = []
    for i in range(20):
        started = FROZEN - timedelta(seconds=ago + i * 30)
        total = 0.0 if outcome is Outcome.SKIPPED else _latency(base, i)
        results.append(
            Result(
                id=_result_id(name, i),
                kind=kind,
                name=name,
                trigger="schedule",
                started_at=started,
                finished_at=started + timedelta(milliseconds=total),
                outcome=outcome
                if i == 0
                else Outcome.PASS
                if outcome is not Outcome.SKIPPED
                else outcome,
                result=code
                if i == 0
                else ResultCode.COMPLETE
                if outcome is not Outcome.SKIPPED
                else code,
                http_status=status,
                timings_ms=_timings(total),
            )
        )
    return results


def _stats(name: str) -> Stats:
    """24 hours of 120 results each; UPTIME[name] decides how many failed, in the last hours
    (an incident the uptime strip shows); no uptime means everything was SKIPPED."""
    since = FROZEN - timedelta(hours=24)
    if name not in LAST:
        return Stats(name=name, since=since, until=FROZEN)
    uptime = UPTIME.get(name)
    to_fail = 0 if uptime is None else round((1 - uptime) * 120 * 24)
    series = []
    for hour in reversed(range(24)):
        counts = dict.fromkeys(Outcome, 0)
        if uptime is None:
            counts[Outcome.SKIPPED] = 120
        else:
            fails = min(to_fail, 91)
            to_fail -= fails
            counts[Outcome.FAIL] = fails
            counts[Outcome.PASS] = 120 - fails
        p50 = _latency(LAST[name][3] or 10.0, hour)
        series.append(
            StatsPoint(
                start=since.replace(minute=0) + timedelta(hours=hour),
                counts=counts,
                uptime=None if uptime is None else counts[Outcome.PASS] / 120,
                latency=Latency(
                    count=120,
                    p50_ms=p50,
                    p95_ms=round(p50 * 1.8, 1),
                    min_ms=p50 / 2,
                    max_ms=p50 * 3,
                ),
            )
        )
    series.reverse()
    counts = {o: sum(p.counts[o] for p in series) for o in Outcome}
    counted = sum(counts.values()) - counts[Outcome.SKIPPED]
    return Stats(
        name=name,
        since=since,
        until=FROZEN,
        total=sum(counts.values()),
        counts=counts,
        uptime=(counted - counts[Outcome.FAIL]) / counted if counted else None,
        latency=Latency(
            count=counted,
            min_ms=min(p.latency.min_ms or 0 for p in series),
            max_ms=max(p.latency.max_ms or 0 for p in series),
            mean_ms=round(sum(p.latency.p50_ms or 0 for p in series) / len(series) * 1.1, 1),
            p50_ms=sorted(p.latency.p50_ms or 0 for p in series)[12],
            p95_ms=sorted(p.latency.p95_ms or 0 for p in series)[22],
            p99_ms=max(p.latency.p95_ms or 0 for p in series),
        ),
        series=series,
    )


def _next_run(name: str) -> datetime | None:
    """What the daemon's scheduler would say: interval schedules fired at the last run."""
    soonest: datetime | None = None
    for schedule in SCHEDULES:
        if name not in schedule.targets or not schedule.enabled:
            continue
        if schedule.every_seconds is not None:
            every = timedelta(seconds=schedule.every_seconds)
            due = FROZEN - timedelta(seconds=LAST[name][4]) + every
            while due <= FROZEN:
                due += every
        else:
            assert schedule.cron is not None
            due = next(CronSim(schedule.cron, FROZEN))
        soonest = due if soonest is None else min(soonest, due)
    return soonest


def target_summary(name: str) -> TargetSummary:
    """`name` as `GET /v1/summary` describes it."""
    call = next((c for c in CALLS if c.name == name), None)
    item: Call | Workflow = call or next(w for w in WORKFLOWS if w.name == name)
    history = _history(name) if name in LAST else []
    latest = history[0] if history else None
    stats = _stats(name)
    token = call.token if call is not None else None
    state = next((t.state for t in TOKENS if t.name == token), None)
    return TargetSummary(
        name=name,
        kind="call" if call is not None else "workflow",
        outcome=latest.outcome if latest else None,
        result=latest.result if latest else None,
        http_status=latest.http_status if latest else None,
        last_run=latest.started_at if latest else None,
        last_result_id=latest.id if latest else None,
        recent_ms=[
            r.timings_ms.total for r in reversed(history) if r.outcome is not Outcome.SKIPPED
        ],
        counts={o: n for o, n in stats.counts.items() if n},
        uptime=stats.uptime,
        next_run=_next_run(name) if name in LAST else None,
        token=token,
        token_state=state,
        description=item.description,
        tags=list(item.tags),
        reason=REASON.get(name) if latest else None,
    )


class FakeClient(EmptyDaemon):
    """Answers like a daemon that holds the data above and never changes."""

    def __init__(self, socket_path: Path = SOCKET) -> None:
        super().__init__(socket_path)
        self.requests: Counter[str] = Counter()
        """How many times each method was called."""

    async def status(self) -> StatusInfo:
        return StatusInfo(
            version="0.1.0",
            pid=4242,
            started_at=FROZEN - timedelta(hours=3, minutes=5),
            uptime_s=3 * 3600 + 300,
            counts={"calls": len(CALLS), "workflows": len(WORKFLOWS), "tokens": len(TOKENS)},
            scheduler="running",
            schedules=len(SCHEDULES),
            callback_url="http://127.0.0.1:8765/tokens/callback",
            callback_bound=True,
            db_path="/tmp/apimd-snapshots/apimd.db",
            socket_path=str(self.socket_path),
        )

    async def list(self, kind: str) -> list[BaseModel]:
        items: dict[str, list[Any]] = {
            "calls": CALLS,
            "workflows": WORKFLOWS,
            "tokens": TOKENS,
            "schedules": SCHEDULES,
        }
        return list(items.get(kind, []))

    async def get(self, kind: str, name: str, *, reveal: bool = False) -> BaseModel:
        for item in await self.list(kind):
            if getattr(item, "name", None) == name:
                if reveal and isinstance(item, Token):
                    return item.model_copy(update={"variables": REVEALED.get(name, {})})
                return item
        raise ApiError(404, "not_found", f"no {kind} named {name!r}", [])

    async def accept_run(self, kind: str, name: str) -> RunAccepted:
        result = await self.result(_result_id(name, 0))
        return RunAccepted(run_id=result.id, result=result)

    async def results(
        self,
        *,
        name: str | None = None,
        outcome: str | None = None,
        since: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
        **_others: Any,
    ) -> ResultPage:
        self.requests["results"] += 1
        names = [name] if name else list(LAST)
        every = [r for n in names if n in LAST for r in _history(n)]
        if outcome:
            every = [r for r in every if r.outcome.value == outcome]
        every.sort(key=lambda r: (r.started_at, r.name), reverse=True)
        start = int(cursor or 0)
        size = limit or 100
        page = every[start : start + size]
        more = start + size < len(every)
        return ResultPage(results=page, next_cursor=str(start + size) if more else None)

    async def result(self, result_id: str) -> Result:
        for name in LAST:
            for result in _history(name):
                if result.id == result_id:
                    if name == "order-flow":
                        steps = [
                            _detail(step, _history(step)[0]).model_copy(
                                update={"workflow_run_id": result.id}
                            )
                            for step in ("service-status", "list-orders")
                        ]
                        return result.model_copy(update={"steps": steps})
                    return _detail(name, result)
        raise ApiError(404, "not_found", f"no result with id {result_id!r}", [])

    async def summary(
        self, *, window: str = "24h", order: SummaryOrder = "project", limit: int | None = None
    ) -> Summary:
        self.requests["summary"] += 1
        names = [c.name for c in CALLS] + [w.name for w in WORKFLOWS]
        whole = Summary(
            generated_at=FROZEN,
            window_s=86400.0,
            targets=[target_summary(n) for n in names],
        )
        return served(whole, order, limit)

    async def stats(self, name: str, *, window: str = "24h") -> Stats:
        self.requests["stats"] += 1
        return _stats(name)

    async def refresh_token(self, name: str) -> Token:
        return next(t for t in TOKENS if t.name == name)


class StreamingClient(FakeClient):
    """The fixed daemon above, with an event stream the test feeds."""

    def __init__(self) -> None:
        super().__init__()
        self.stream: asyncio.Queue[Event] = asyncio.Queue()

    async def events(self) -> AsyncIterator[Event]:
        while True:
            yield await self.stream.get()
