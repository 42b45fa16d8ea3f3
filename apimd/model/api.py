"""Payloads of the daemon's REST API (SPEC §6) that are not resources or results themselves."""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, TypeAdapter, ValidationError

from apimd.model.common import LocationName, StrictModel
from apimd.model.outcome import Outcome, ResultCode
from apimd.model.resources import TokenState
from apimd.model.result import Result


class ErrorDetail(BaseModel):
    """One problem, located: `field` is a dotted path like `calls[0].timeout`."""

    message: str
    field: str | None = None
    line: int | None = None
    resource: str | None = None


class ErrorInfo(BaseModel):
    code: str
    message: str
    field: str | None = None
    errors: list[ErrorDetail] = Field(default_factory=list)


class ErrorBody(BaseModel):
    """Every 4xx answer: `{"error": {code, message, field, errors}}`."""

    error: ErrorInfo


class Health(BaseModel):
    ok: bool = True
    version: str


class AgentInfo(BaseModel):
    """One live agent of `GET /v1/agents` (SPEC §13)."""

    agent: str
    location: str
    pid: int
    started_at: datetime
    last_heartbeat: datetime
    leader: bool
    running: list[str] = Field(default_factory=list)


class AgentList(BaseModel):
    """`GET /v1/agents`: the live agents, by location then name."""

    agents: list[AgentInfo]


class StatusInfo(BaseModel):
    """`GET /v1/status`."""

    version: str
    pid: int
    started_at: datetime
    uptime_s: float
    counts: dict[str, int]
    scheduler: str
    schedules: int
    running: list[str] = Field(default_factory=list)
    callback_url: str
    callback_bound: bool
    callback_error: str | None = None
    db_path: str
    socket_path: str
    log_path: str | None = None
    location: str | None = None
    agent: str | None = None
    leader: bool = True
    agents: list[AgentInfo] = Field(default_factory=list)
    clustered: bool = False
    """Agents share this store (PostgreSQL, SPEC §13); a lone daemon is every location's agent."""
    unserved_locations: list[str] = Field(default_factory=list)
    """Locations that enabled schedules name and no live agent serves: their runs are dropped
    until an agent of that location is back (SPEC §13)."""
    store_error: str | None = None
    """Why the agents could not be listed: the store did not answer in time (SPEC §13)."""


class RunRequest(StrictModel):
    """Body of `POST /v1/calls/{name}/run` and `/v1/workflows/{name}/run`."""

    variables: dict[str, str] = Field(default_factory=dict)
    interactive: bool = False
    wait: bool = False
    location: LocationName | None = None
    """Run on an agent of this location (SPEC §13: its queue); default: the agent asked."""


class RunAccepted(BaseModel):
    run_id: str
    result: Result | None = None


class ResultPage(BaseModel):
    """`GET /v1/results`: newest first; `next_cursor` fetches the next (older) page."""

    results: list[Result]
    next_cursor: str | None = None


class ApplySummary(BaseModel):
    """What `POST /v1/apply` changed, per kind: names created, updated (replaced), deleted,
    unchanged; and the tokens whose saved state (`variables`) the document set."""

    created: dict[str, list[str]] = Field(default_factory=dict)
    updated: dict[str, list[str]] = Field(default_factory=dict)
    deleted: dict[str, list[str]] = Field(default_factory=dict)
    unchanged: dict[str, list[str]] = Field(default_factory=dict)
    token_state_set: list[str] = Field(default_factory=list)


class SignInRequest(StrictModel):
    """Body of `POST /v1/tokens/{name}/signin`."""

    mode: Literal["browser", "device"] = "browser"


class SignInInfo(BaseModel):
    """A pending sign-in, as `GET /v1/signins` lists it."""

    id: str
    url: str
    token: str | None = None
    expires_at: datetime
    user_code: str | None = None
    verification_uri: str | None = None


class SignInList(BaseModel):
    signins: list[SignInInfo]


class SignInResult(BaseModel):
    """How a completed sign-in ended (`POST /v1/signins/complete`)."""

    ok: bool
    message: str
    token: str | None = None
    expires_at: datetime | None = None
    result_id: str | None = None


class CompleteSignInRequest(StrictModel):
    """Body of `POST /v1/signins/complete`: the final redirect URL pasted from the browser."""

    url: str


class Deleted(BaseModel):
    deleted: str


class Listing(BaseModel):
    """`GET /v1/<kind>`: the resources of one kind, in project-file form."""

    items: list[dict[str, Any]]


class TargetSummary(BaseModel):
    """One call or workflow at a glance: what the dashboard shows for it."""

    name: str
    kind: Literal["call", "workflow"]
    outcome: Outcome | None = None
    result: ResultCode | None = None
    http_status: int | None = None
    last_run: datetime | None = None
    last_result_id: str | None = None
    error: str | None = None
    step_of: str | None = None
    """When the latest run was as a step: the workflow it ran in (`last_result_id` is its)."""
    recent_ms: list[float] = Field(default_factory=list)
    """Latencies of the latest non-skipped runs in the window, oldest first (at most 20)."""
    counts: dict[Outcome, int] = Field(default_factory=dict)
    uptime: float | None = None
    """Non-FAIL / non-SKIPPED runs in the window; None when nothing ran."""
    next_run: datetime | None = None
    token: str | None = None
    token_state: TokenState | None = None
    cert_expires_at: datetime | None = None
    """When the server certificate of the latest https result expires (SPEC §11)."""
    description: str | None = None
    tags: list[str] = Field(default_factory=list)
    locations: list[str] = Field(default_factory=list)
    """Where its schedules run it (SPEC §13): location names, `*` for a schedule without
    `locations` (anywhere); empty when no schedule runs it."""
    last_location: str | None = None
    """The location of the agent that ran its latest result (a manual run too)."""
    reason: str | None = Field(
        default=None,
        description="Why the latest result is not a PASS, in a few words (`HTTP 503`, "
        "`status eq 200 → 503`, `timeout after 10s`, `needs sign-in`, …); null for a PASS or "
        "when nothing ran. Absent from the summaries of daemons older than this field.",
    )
    """Why the latest result is not a PASS (`apimd.model.reason.short_reason`)."""


SummaryOrder = Literal["project", "dashboard"]
"""The order of `Summary.targets`: as the project lists them (calls, then workflows), or the
dashboard's (`dashboard_key`)."""


def dashboard_rank(outcome: Outcome | None, token_state: TokenState | None = None) -> int:
    """FAIL first, then SKIPPED / needs sign-in, then WARNING, then the rest."""
    if outcome is Outcome.FAIL:
        return 0
    if outcome is Outcome.SKIPPED or token_state is TokenState.NEEDS_SIGN_IN:
        return 1
    if outcome is Outcome.WARNING:
        return 2
    return 3


def dashboard_key(
    name: str, outcome: Outcome | None, token_state: TokenState | None
) -> tuple[int, str, str]:
    """The dashboard's order: `dashboard_rank`, then the name ignoring case, then exactly."""
    return (dashboard_rank(outcome, token_state), name.lower(), name)


class Summary(BaseModel):
    """`GET /v1/summary?window=24h`: every target at once, for dashboards; with `limit`, the
    first targets in `order` (a dashboard's first screen before the rest)."""

    generated_at: datetime
    window_s: float
    total: int | None = None
    """How many targets there are in all (`targets` holds fewer when `limit` cut them)."""
    targets: list[TargetSummary]

    @property
    def complete(self) -> bool:
        """Every target is in `targets` (no `limit` cut any)."""
        return self.total is None or len(self.targets) >= self.total


SUMMARY_CHUNK = 250
"""`parse_summary` validates this many targets at a time (a few milliseconds)."""
_TARGETS = TypeAdapter(list[TargetSummary])


_TARGETS_OPEN = re.compile(r'"targets"\s*:\s*\[\s*')
_TARGETS_CLOSE = re.compile(r"\s*\]\s*\}\s*$")
_TARGET_GAP = re.compile(r'\}\s*,\s*\{(?=\s*"name")')


def _parse_summary_text(text: str) -> Summary:
    """The summary as the daemon writes it (`targets` last, each target's `name` first),
    validated from the text by pydantic a few hundred targets at a time: the fast way (a third
    of decoding then validating) that still gives the GIL back between pieces. Each piece is
    the exact text of whole targets, so text of any other layout fails to validate (a
    ValidationError; LookupError when `targets` is not where expected) rather than misparses."""
    # The end is looked for near the end only: a search from the start costs 50 ms at 10,000.
    opening = _TARGETS_OPEN.search(text)
    closing = _TARGETS_CLOSE.search(text, max(0, len(text) - 4096))
    if opening is None or closing is None or closing.end() <= opening.end():
        raise LookupError("no targets list at the end of the summary")
    shell = text[: opening.start()] + '"targets": []' + text[closing.start() :].lstrip()[1:]
    summary = Summary.model_validate_json(shell)
    start, stop = opening.end(), max(opening.end(), closing.start())
    if start == stop:
        return summary
    gaps = list(_TARGET_GAP.finditer(text, start, stop))
    starts = [start, *(gap.end() - 1 for gap in gaps)]
    ends = [*(gap.start() + 1 for gap in gaps), stop]
    for first in range(0, len(starts), SUMMARY_CHUNK):
        last = min(first + SUMMARY_CHUNK, len(starts)) - 1
        piece = f"[{text[starts[first] : ends[last]]}]"
        summary.targets += _TARGETS.validate_json(piece)
    return summary


_DECODER = json.JSONDecoder()
_SPACE = re.compile(r"[ \t\n\r]*")


def decode_in_pieces(text: str) -> Any:
    """`json.loads(text)`, but a top-level object's members, and the items of a list member,
    decoded one at a time: one `json.loads` of a large document holds the GIL throughout (10,000
    summary targets: ~0.1 s during which the event loop beside the thread cannot run)."""
    at = _SPACE.match(text).end()  # type: ignore[union-attr]
    if not text.startswith("{", at):
        return json.loads(text)
    document: dict[str, Any] = {}
    at = _SPACE.match(text, at + 1).end()  # type: ignore[union-attr]
    if text.startswith("}", at):
        return json.loads(text)  # `{}` (and what trails it) as json.loads says
    while True:
        key, at = _DECODER.raw_decode(text, at)
        if not isinstance(key, str):
            raise json.JSONDecodeError(
                "Expecting property name enclosed in double quotes", text, at
            )
        at = _expect(text, at, ":")
        if text.startswith("[", at):
            document[key], at = _decode_list(text, at)
        else:
            document[key], at = _DECODER.raw_decode(text, at)
        at = _SPACE.match(text, at).end()  # type: ignore[union-attr]
        if text.startswith("}", at):
            break
        at = _expect(text, at, ",")
    if text[at + 1 :].strip():
        raise json.JSONDecodeError("Extra data", text, at + 1)
    return document


def _decode_list(text: str, at: int) -> tuple[list[Any], int]:
    """The list that starts at `at`, item by item; and the index after it."""
    items: list[Any] = []
    at = _SPACE.match(text, at + 1).end()  # type: ignore[union-attr]
    if text.startswith("]", at):
        return items, at + 1
    while True:
        item, at = _DECODER.raw_decode(text, at)
        items.append(item)
        at = _SPACE.match(text, at).end()  # type: ignore[union-attr]
        if text.startswith("]", at):
            return items, at + 1
        at = _expect(text, at, ",")


def _expect(text: str, at: int, char: str) -> int:
    """The index after `char` (and any white space after it) at `at`, or a JSONDecodeError."""
    at = _SPACE.match(text, at).end()  # type: ignore[union-attr]
    if not text.startswith(char, at):
        raise json.JSONDecodeError(f"Expecting {char!r} delimiter", text, at)
    return _SPACE.match(text, at + 1).end()  # type: ignore[union-attr]


def parse_summary(payload: Any) -> Summary:
    """`Summary.model_validate(payload)`, a few hundred targets at a time, so that a thread
    running it (10,000 targets: a few hundred milliseconds) gives the GIL back between pieces
    and the event loop beside it stays responsive. Invalid input raises the error the whole
    model would (with the target's own index). A `str` payload is the JSON text, decoded here
    so that decoding is off the event loop too: validated from the text in pieces when laid
    out as the daemon writes it (10,000 targets: ~70 ms of CPU, half of decoding and then
    validating), else decoded member by member and validated as above."""
    if isinstance(payload, str):
        try:
            return _parse_summary_text(payload)
        except (ValidationError, LookupError):
            payload = decode_in_pieces(payload)  # raises what json.loads would, or validates
    targets = payload.get("targets") if isinstance(payload, dict) else None
    if not isinstance(targets, list) or len(targets) <= SUMMARY_CHUNK:
        return Summary.model_validate(payload)
    try:
        summary = Summary.model_validate({**payload, "targets": []})
        for start in range(0, len(targets), SUMMARY_CHUNK):
            summary.targets += _TARGETS.validate_python(targets[start : start + SUMMARY_CHUNK])
    except ValidationError:
        return Summary.model_validate(payload)  # raises with the whole payload's locations
    return summary
