"""The result document (SPEC §4)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from apimd.model.outcome import Outcome, ResultCode

Trigger = Literal["schedule", "manual", "refresh", "signin", "callback", "webhook"]


class Timings(BaseModel):
    """Milliseconds per phase; `auth_wait` is not part of `total` (nor of the SLA)."""

    dns: float = 0.0
    connect: float = 0.0
    send: float = 0.0
    wait: float = 0.0
    receive: float = 0.0
    total: float = 0.0
    auth_wait: float = 0.0


class RequestRecord(BaseModel):
    """What was sent, redacted."""

    method: str
    url: str
    headers: dict[str, str] = Field(default_factory=dict)
    body: str | None = None


class ResponseRecord(BaseModel):
    """What came back, redacted, body capped at 64 KiB."""

    headers: dict[str, str] = Field(default_factory=dict)
    body: str | None = None
    body_truncated: bool = False


class ConditionResult(BaseModel):
    """One evaluated condition with the value it saw."""

    source: str
    path: str | None = None
    op: str | None = None
    expected: Any = None
    actual: Any = None
    found: bool = True
    passed: bool = True
    on_fail: Literal["fail", "warning"] = "fail"
    save_as: str | None = None
    message: str | None = None


class ClientCertificate(BaseModel):
    """The client certificate a call presented (SPEC §10 `tls`)."""

    subject: str
    expires_at: datetime


class TlsInfo(BaseModel):
    """The server's leaf certificate of an https result (SPEC §11)."""

    subject: str
    issuer: str
    not_after: datetime
    days_left: float


class Result(BaseModel):
    """One run of a call or workflow; a workflow's holds its steps' results."""

    id: str
    kind: Literal["call", "workflow"]
    name: str
    trigger: Trigger = "manual"
    started_at: datetime
    finished_at: datetime
    outcome: Outcome
    result: ResultCode
    http_status: int | None = None
    timings_ms: Timings = Field(default_factory=Timings)
    size: int | None = None
    request: RequestRecord | None = None
    response: ResponseRecord | None = None
    conditions: list[ConditionResult] = Field(default_factory=list)
    variables: dict[str, str] = Field(default_factory=dict)
    retried_after_401: bool = False
    client_cert: ClientCertificate | None = None
    error: str | None = None
    token: str | None = None
    workflow_run_id: str | None = None
    workflow: str | None = None
    """Set on a step's result listed by the step's name: the workflow it ran in."""
    tls: TlsInfo | None = None
    maintenance: bool = False  # run inside a maintenance window: no alerts, not in uptime
    location: str | None = None
    """The location (`APIMD_LOCATION`) of the agent that ran it (SPEC §13)."""
    agent: str | None = None
    """The agent (`APIMD_AGENT`) that ran it."""
    lateness_ms: float | None = None
    """A scheduled run: how long after its due instant it started (the scheduler's own delay,
    not the API's); None for other triggers and for results recorded before it was kept."""
    schedule: str | None = None
    """A scheduled run's schedule (SPEC §4); None for other triggers and for results recorded
    before it was kept."""
    scheduled_at: datetime | None = None
    """The instant its schedule's firing was due."""
    steps: list[Result] = Field(default_factory=list)

    @property
    def duration_ms(self) -> float:
        return (self.finished_at - self.started_at).total_seconds() * 1000
