"""Every event of `GET /v1/events` (SPEC §6) as one typed model: the engine and the daemon build
them, the hub frames them as SSE, the relay carries them between agents, and the client parses them
back into the same classes (as APScheduler 4's `_events.py` does for its events)."""

from __future__ import annotations

import functools
import json
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
)
from pydantic_core import PydanticSerializationError

from apimd.model.outcome import Outcome, ResultCode
from apimd.model.reason import short_reason
from apimd.model.resources import SLA, TokenState
from apimd.model.result import Result, Trigger


def utc_iso(moment: datetime) -> str:
    """`moment` in UTC as ISO 8601 with a `Z` (a naive time is taken as UTC)."""
    return _aware(moment).astimezone(UTC).isoformat().replace("+00:00", "Z")


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _utc(moment: datetime) -> datetime:
    """`moment` in UTC (a naive one taken as UTC): the same instant, held in `datetime.UTC`."""
    return moment if moment.tzinfo is UTC else _aware(moment).astimezone(UTC)


def _now() -> datetime:
    return datetime.now(UTC)


Timestamp = Annotated[datetime, AfterValidator(_utc)]
"""A moment on the wire: ISO 8601 in UTC with a `Z`; a naive one is taken as UTC. Held in UTC from
validation on, so pydantic's own serializer writes it (`utc_iso`'s text for every UTC moment) and
an event's encoding calls no Python function per moment: `utc_iso` as a `PlainSerializer` was two
of the ~11 µs of a `schedule.fired` frame (three events a run)."""


class Event(BaseModel):
    """What every event has: its `type` and when it happened. Values are already redacted."""

    model_config = ConfigDict(frozen=True)

    type: str
    at: Timestamp = Field(default_factory=functools.partial(datetime.now, UTC))  # `_now`, no frame

    omitted_when_none: ClassVar[frozenset[str]] = frozenset()
    """Fields left out of the payload while None (they were never sent empty)."""

    def payload(self) -> dict[str, Any]:
        """The JSON-ready payload: `{"type", "at", …fields}` (what an SSE frame's data holds)."""
        data = self.model_dump(mode="json")
        for key in self.omitted_when_none:
            if data.get(key, "") is None:
                del data[key]
        return data

    def payload_json(self) -> bytes:
        """`payload()` as one line of compact JSON (UTF-8), from pydantic's serializer in one call:
        a third of the cost of `json.dumps(payload())`, which stays for what the serializer cannot
        encode (a lone surrogate from a hostile body: escaped) and for a subclass that shapes its
        own `payload()`."""
        if type(self).payload is Event.payload:
            omitted = {key for key in self.omitted_when_none if getattr(self, key) is None}
            try:
                return self.__pydantic_serializer__.to_json(self, exclude=omitted or None)
            except PydanticSerializationError:
                pass
        return json.dumps(self.payload(), separators=(",", ":")).encode()


class RunStarted(Event):
    """A call or workflow run began."""

    type: Literal["run.started"] = "run.started"
    run_id: str
    kind: Literal["call", "workflow"]
    name: str
    trigger: Trigger


class RunEnded(Event):
    """What a finished run and a finished workflow step both report."""

    run_id: str
    name: str
    outcome: Outcome
    result: ResultCode
    http_status: int | None = None
    total_ms: float | None = None
    reason: str | None = None
    """Why it is not a PASS, in a few words (`short_reason`); None for a PASS. Added later:
    absent from older daemons' events."""

    omitted_when_none = frozenset({"reason"})


class RunStep(RunEnded):
    """A workflow's step finished: step `index` (from 0) of `of`, the call `name`."""

    type: Literal["run.step"] = "run.step"
    workflow: str
    index: int
    of: int


class RunFinished(RunEnded):
    """A run ended and its result `result_id` is stored (every run that starts ends so)."""

    type: Literal["run.finished"] = "run.finished"
    result_id: str
    kind: Literal["call", "workflow"]
    trigger: Trigger
    location: str | None = None
    """The location of the agent that ran it (SPEC §13); None on a daemon without one."""

    @classmethod
    def of(cls, result: Result, run_id: str, sla: SLA | None = None) -> RunFinished:
        """The event announcing `result`, the outcome of run `run_id` (`sla`: its call's)."""
        # Validated from a dict: the same validation as `cls(...)`, without `__init__`'s frame.
        return cls.model_validate(
            {
                "run_id": run_id,
                "result_id": result.id,
                "kind": result.kind,
                "name": result.name,
                "trigger": result.trigger,
                "outcome": result.outcome,
                "result": result.result,
                "http_status": result.http_status,
                "total_ms": result.timings_ms.total,
                "location": result.location,
                "reason": short_reason(result, sla),
            }
        )


class TokenSaved(Event):
    """A token's variables were filled (refresh, sign-in, webhook)."""

    type: Literal["token.saved"] = "token.saved"
    token: str
    expires_at: Timestamp | None = None


class TokenStateChanged(Event):
    """A token moved to `state` (from `previous`); `error` says why when it failed."""

    type: Literal["token.state"] = "token.state"
    token: str
    state: TokenState
    previous: TokenState | None = None
    error: str | None = None

    omitted_when_none = frozenset({"previous", "error"})


class SignInOpened(Event):
    """A sign-in waits for a person: the URL to open (or the device code to enter). `run_id` is
    the run that opened it, when a run did."""

    type: Literal["signin.open"] = "signin.open"
    id: str
    run_id: str | None = None
    url: str
    token: str | None = None
    user_code: str | None = None
    verification_uri: str | None = None
    expires_at: Timestamp

    omitted_when_none = frozenset({"run_id", "user_code", "verification_uri"})


class SignInEnded(Event):
    """Sign-in `id` ended: `ok`, in words in `message`; `result_id` is the run it continued."""

    type: Literal["signin.done"] = "signin.done"
    id: str
    token: str | None = None
    ok: bool
    message: str
    expires_at: Timestamp | None = None
    result_id: str | None = None

    omitted_when_none = frozenset({"result_id"})


class ResourceChanged(Event):
    """Resources were created, replaced or deleted; each named `kind/name`."""

    type: Literal["resource.changed"] = "resource.changed"
    resources: tuple[str, ...]

    @property
    def pairs(self) -> tuple[tuple[str, str], ...]:
        """`resources` as `(kind, name)` pairs, e.g. `("calls", "list-orders")`."""
        split = (entry.partition("/") for entry in self.resources)
        return tuple((kind, name) for kind, _, name in split if name)


class ScheduleFired(Event):
    """Schedule `schedule` started `targets`, `lateness_ms` after it was due."""

    type: Literal["schedule.fired"] = "schedule.fired"
    schedule: str
    targets: tuple[str, ...]
    scheduled_at: Timestamp
    lateness_ms: float


class Lagged(Event):
    """This client missed `missed` events (it read too slowly, or an agent reconnected): state
    must be read again."""

    type: Literal["lagged"] = "lagged"
    missed: int
    reason: str | None = None

    omitted_when_none = frozenset({"reason"})


class UnknownEvent(Event):
    """An event this side cannot read: a type it does not know (a newer daemon), or a known type
    whose fields do not fit. `data` is the payload as it came."""

    data: dict[str, Any] = Field(default_factory=dict)

    def payload(self) -> dict[str, Any]:
        return {"type": self.type, "at": utc_iso(self.at)} | {
            key: value for key, value in self.data.items() if key not in ("type", "at")
        }


KnownEvent = Annotated[
    RunStarted
    | RunStep
    | RunFinished
    | TokenSaved
    | TokenStateChanged
    | SignInOpened
    | SignInEnded
    | ResourceChanged
    | ScheduleFired
    | Lagged,
    Field(discriminator="type"),
]
"""Every event type the daemon publishes, told apart by `type`."""

_KNOWN: TypeAdapter[KnownEvent] = TypeAdapter(KnownEvent)


def decode_event(text: str | bytes) -> Event | None:
    """The typed event one JSON payload holds (an SSE frame's data, a relayed event), validated
    strictly as JSON. A payload that does not fit its type's model, or whose type is not known
    here, comes back as an `UnknownEvent`; None when the text is no JSON object. Never raises."""
    try:
        return _KNOWN.validate_json(text, strict=True)
    except ValidationError:
        pass
    try:
        payload = json.loads(text)
    except (ValueError, RecursionError):
        return None
    if not isinstance(payload, dict):
        return None
    kind = payload.get("type")
    if not isinstance(kind, str) or "\n" in kind or "\r" in kind:
        return None  # no type to name it by, or one that would break an SSE frame
    return UnknownEvent(type=kind, at=_moment(payload.get("at")), data=payload)


def _moment(value: object) -> datetime:
    """A payload's `at` when it is readable, else now."""
    try:
        return _aware(datetime.fromisoformat(value)) if isinstance(value, str) else _now()
    except ValueError:
        return _now()
