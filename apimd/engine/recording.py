"""Turning what a call did into a redacted `Result` (SPEC §3 redaction, §4 result document)."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import urlencode, urlsplit, urlunsplit

from yarl import URL

from apimd.engine.bounds import cap_value
from apimd.engine.certificates import tls_info
from apimd.engine.conditions import PROCESS_BODY_BYTES, Evaluation
from apimd.engine.http import HttpRequest, HttpResponse, decode_body, wire_url
from apimd.engine.redact import Redactor, is_secret_name, may_hold_redacted_key, storable
from apimd.engine.template import uuid4_text
from apimd.engine.worker_pool import WorkerFailed, run_in_worker
from apimd.model.common import secret_field_names
from apimd.model.outcome import ResultCode
from apimd.model.project import Project
from apimd.model.resources import AuthSetting, Webhook
from apimd.model.result import (
    ConditionResult,
    Result,
    Timings,
    Trigger,
)
from apimd.model.runtime import NOT_SECRET_TOKEN_VARIABLES

STORED_BODY_BYTES = 64 * 1024
STORED_VALUE_CHARS = 4096
LARGE_BODY_CHARS = 1024 * 1024


@dataclass(frozen=True, slots=True)
class CallIdentity:
    """Whose result a call's is: its run, name, trigger and start, the token it names, and
    whether it is a run of its own (`top_level`) or a step of the workflow run `run_id`."""

    run_id: str
    name: str
    trigger: Trigger
    started_at: datetime
    token: str | None = None
    top_level: bool = True


def secret_variables(variables: dict[str, str], names: Collection[str] = ()) -> list[str]:
    """The values of run variables that hold secrets: those in `names` (read from a secret's
    place, `RunContext.secret_names`) and those whose name says so (`is_secret_name`)."""
    return [v for k, v in variables.items() if k in names or is_secret_name(k)]


def token_secrets(variables: dict[str, str]) -> list[str]:
    """The values that are secret once saved into a token: all but EXPIRES_IN."""
    return [v for k, v in variables.items() if k not in NOT_SECRET_TOKEN_VARIABLES]


def secret_values_of_project(project: Project) -> list[str]:
    """Every secret the project's definitions hold: secret variables, auth secrets, webhook URLs."""
    values = [spec.value for spec in project.variables.values() if spec.secret]
    for auth in project.auth:
        values += [v for f in secret_field_names(AuthSetting) if (v := getattr(auth, f))]
        values += [h.url for h in auth.webhooks if h.url]
    for call in project.calls:
        values += [h.url for h in call.webhooks if h.url]
    secret_hook_fields = secret_field_names(Webhook)
    assert secret_hook_fields == ["url"], "update secret_values_of_project for new secret fields"
    return [v for v in values if v]


def full_url(request: HttpRequest) -> str:
    """The request URL as sent (SPEC §3): params appended to its query, encoded as on the wire;
    a URL that cannot be sent is returned with its params appended as written."""
    if request.sent_url is not None:  # the executor made it as it sent the request
        return request.sent_url
    try:
        return str(wire_url(URL(request.url), request.params))
    except (TypeError, ValueError):
        parts = urlsplit(request.url)
        extra = urlencode(request.params)
        query = f"{parts.query}&{extra}" if parts.query and extra else parts.query or extra
        return urlunsplit(parts._replace(query=query))


def cap_text(text: str, limit: int = STORED_BODY_BYTES) -> tuple[str, bool]:
    """`text` cut to `limit` UTF-8 bytes (on a character boundary), and whether it was cut."""
    if len(text) <= limit // 4:  # (UTF-8 takes at most 4 bytes a character) not cut
        return text, False
    data = text.encode()
    if len(data) <= limit:
        return text, False
    return data[:limit].decode(errors="ignore"), True


def failed_result(
    *,
    run_id: str,
    kind: Literal["call", "workflow"],
    name: str,
    trigger: Trigger,
    started_at: datetime,
    error: str,
    code: ResultCode = ResultCode.SETUP_ERROR,
    token: str | None = None,
    finished_at: datetime | None = None,
) -> Result:
    """The result of a run that could not run its calls: bad input, a crash (SETUP_ERROR, outcome
    FAIL), or a daemon stopping (CANCELLED). `error` must already be redacted."""
    return Result(
        id=run_id,
        kind=kind,
        name=name,
        trigger=trigger,
        started_at=started_at,
        finished_at=finished_at or datetime.now(UTC),
        outcome=code.outcome,
        result=code,
        error=storable(error),
        token=token,
    )


class ResultRecorder:
    """Builds results with every secret it knows redacted."""

    def __init__(self, secrets: Iterable[str]) -> None:
        self._redactor = Redactor([s for s in secrets if s])

    def add_secrets(self, values: Iterable[str]) -> None:
        values = [v for v in values if v]
        if values:
            self._redactor.add(*values)

    def add_basic_credentials(self, username: str, password: str) -> None:
        self._redactor.add_basic_credentials(username, password)

    def text(self, text: str) -> str:
        return self._redactor.text(text)

    def url(self, url: str) -> str:
        return self._redactor.url(url)

    def variables(self, values: dict[str, str]) -> dict[str, str]:
        """Variables as recorded: redacted, then cut to `STORED_VALUE_CHARS` with a marker."""
        if not self._redactor.knows_secrets and all(map(_left_alone, values.values())):
            return dict(values)  # what redacting and cutting each gives back
        return {
            k: cap_value(self._redactor.value(v), STORED_VALUE_CHARS) for k, v in values.items()
        }

    async def _body(
        self, text: str, content_type: str | None, parsed: tuple[Any] | None = None
    ) -> tuple[str, bool]:
        """The body redacted whole (so keys like `access_token` are found in any JSON), then cut
        to 64 KiB; large bodies are redacted in a worker thread to keep the event loop free.
        `parsed`: the body's JSON document when it was already parsed."""
        redact = functools.partial(self._redactor.body, text, content_type, parsed=parsed)
        redacted = await asyncio.to_thread(redact) if len(text) > LARGE_BODY_CHARS else redact()
        return cap_text(redacted)

    async def _response_body(
        self, body: bytes, content_type: str | None, text: str | None, parsed: tuple[Any] | None
    ) -> tuple[str, bool]:
        """A response body as stored (`text`: already decoded, and `parsed`: its JSON document,
        when the conditions did so); a large one is decoded, parsed and redacted in a worker
        process, since parsing it would hold the event loop (and its memory stays there)."""
        if len(body) <= PROCESS_BODY_BYTES:
            if text is None:
                text, parsed = decode_body(body, content_type), None
            return await self._body(text, content_type, parsed)
        try:
            return await run_in_worker(_redacted_body, self._redactor, body, content_type)
        except WorkerFailed as exc:
            return f"(a {len(body)}-byte body, not stored: redacting it {exc})", True

    async def build(
        self,
        identity: CallIdentity,
        *,
        code: ResultCode,
        error: str | None,
        timings: Timings,
        finished_at: datetime,
        request: HttpRequest | None = None,
        response: HttpResponse | None = None,
        response_text: str | None = None,
        evaluation: Evaluation | None = None,
        retried: bool = False,
    ) -> Result:
        """The call's result, every secret this recorder knows redacted; `response_text` is the
        response body already decoded, when it was (so it is decoded once).

        The result is validated in one call from plain values, its records as dicts in it: a
        record made a model of its own first costs pydantic's `__init__` once more each."""
        request_record: dict[str, Any] | None = None
        if request is not None:
            sent = response.sent_headers if response is not None else request.headers
            body = None
            if request.body:
                content_type = next((v for k, v in sent if k.lower() == "content-type"), None)
                body, _ = await self._body(request.body.decode(errors="replace"), content_type)
            request_record = {
                "method": request.method,
                "url": self._redactor.url(full_url(request)),
                "headers": self._redactor.header_pairs(sent),
                "body": body,
            }
        response_record: dict[str, Any] | None = None
        if response is not None:
            content_type = response.headers.get("Content-Type")
            parsed = evaluation.body_json if evaluation is not None else None
            body, truncated = await self._response_body(
                response.body, content_type, response_text, parsed
            )
            response_record = {
                "headers": self._redactor.header_pairs(response.headers.items()),
                "body": body,
                "body_truncated": truncated,
            }
        conditions: list[ConditionResult] = []
        extracted: dict[str, str] = {}
        if evaluation is not None:
            conditions = [self._condition(item) for item in evaluation.results]
            extracted = self.variables(evaluation.extracted)
        return Result.model_validate(
            {
                "client_cert": request.tls.client_certificate()
                if request and request.tls
                else None,
                "id": identity.run_id if identity.top_level else uuid4_text(),
                "kind": "call",
                "name": identity.name,
                "trigger": identity.trigger,
                "started_at": identity.started_at,
                "finished_at": finished_at,
                "outcome": code.outcome,
                "result": code,
                "http_status": response.status if response is not None else None,
                "timings_ms": timings,
                "size": response.size if response is not None else None,
                "request": request_record,
                "response": response_record,
                "conditions": conditions,
                "variables": extracted,
                "retried_after_401": retried,
                "error": self._redactor.text(error) if error else None,
                "token": identity.token,
                "workflow_run_id": None if identity.top_level else identity.run_id,
                "tls": tls_info(response.peer_certificate, finished_at)
                if response is not None
                else None,
            }
        )

    def _condition(self, item: ConditionResult) -> ConditionResult:
        """A condition's result as recorded: redacted, its actual value cut after redaction (so
        no secret is split); `item` itself when that changes none of its values."""
        redactor = self._redactor
        if (
            not redactor.knows_secrets
            and _left_alone(item.path)
            and _left_alone(item.actual)
            and _left_alone(item.expected)
            and (item.message is None or (item.message != "" and _left_alone(item.message)))
        ):
            return item  # what the checks below find
        path = redactor.text(item.path) if item.path else item.path
        actual = cap_value(redactor.value(item.actual), STORED_VALUE_CHARS)
        expected = redactor.value(item.expected)
        message = redactor.text(item.message) if item.message else None
        if (
            path is item.path
            and actual is item.actual
            and expected is item.expected
            and message is item.message
        ):
            return item
        update = {"path": path, "actual": actual, "expected": expected, "message": message}
        return item.model_copy(update=update)

    async def unsent(
        self,
        identity: CallIdentity,
        code: ResultCode,
        message: str,
        *,
        finished_at: datetime,
        auth_wait: float = 0.0,
    ) -> Result:
        """The result of a call that was not sent (no usable token, a setup error, a browser
        step): its code and why."""
        return await self.build(
            identity,
            code=code,
            error=message,
            timings=Timings(auth_wait=auth_wait),
            finished_at=finished_at,
        )


def _left_alone(value: Any) -> bool:
    """Whether a redactor that knows no secret gives `value` back itself from `value()` and
    `text()`, and cutting it to `STORED_VALUE_CHARS` leaves it: None, a bool, int or float, or
    an ASCII string (no lone surrogate) short enough. False says nothing."""
    kind = value.__class__
    if kind is str:
        return value.isascii() and len(value) <= STORED_VALUE_CHARS
    return value is None or kind is int or kind is float or kind is bool


def _redacted_body(redactor: Redactor, body: bytes, content_type: str | None) -> tuple[str, bool]:
    """In a worker process: a large response body decoded, redacted whole and cut. A body in
    which no always-redacted key can be (not even escaped) is kept as written rather than
    parsed and rewritten: parsing a large one is most of the cost."""
    text = decode_body(body, content_type)
    if not may_hold_redacted_key(text):
        return cap_text(redactor.text(text))
    return cap_text(redactor.body(text, content_type))
