"""What daemon.log says beyond access lines: one INFO line per thing a person would look for (a
run whose outcome changed, a token saved or changing state, a sign-in, an apply), and aiohttp's
errors for requests it cannot parse without the request's bytes (they can hold a query string
with a code or a token)."""

from __future__ import annotations

import logging

from aiohttp.http_exceptions import HttpProcessingError

from apimd.daemon.event_handlers import ByEventClass
from apimd.model.events import (
    Event,
    ResourceChanged,
    RunFinished,
    SignInEnded,
    SignInOpened,
    TokenSaved,
    TokenStateChanged,
)

log = logging.getLogger("apimd.activity")

# A transient state every refresh passes through: its start and end are what matter.
_QUIET_STATES = frozenset({"refreshing"})
_MAX_MESSAGE = 200
_MAX_NAMES = 10


class ActivityLog:
    """An event observer: logs the events a person reading daemon.log looks for. A run is logged
    when its outcome differs from the last one logged for that target (so the first run of each
    target after a start is logged once), not on every run."""

    def __init__(self) -> None:
        self._outcomes: dict[str, str] = {}
        self._states: dict[str, str] = {}
        self._dispatch = ByEventClass(
            (
                (RunFinished, self._run_finished),
                (TokenSaved, self._token_saved),
                (TokenStateChanged, self._token_state_changed),
                (SignInOpened, self._signin_opened),
                (SignInEnded, self._signin_ended),
                (ResourceChanged, self._resource_changed),
            )
        )

    def __call__(self, event: Event) -> None:
        self._dispatch(event)

    def _token_saved(self, event: TokenSaved) -> None:
        expires = event.expires_at.isoformat() if event.expires_at else "—"
        log.info("token %s saved; expires %s", event.token, expires)

    def _token_state_changed(self, event: TokenStateChanged) -> None:
        self._token_state(event.token, event.state.value)

    def _signin_opened(self, event: SignInOpened) -> None:
        log.info("sign-in started %s", _signin_of(event.token))

    def _signin_ended(self, event: SignInEnded) -> None:
        verdict = "signed in" if event.ok else "failed"
        message = _short(event.message)
        log.info("sign-in %s %s: %s", _signin_of(event.token), verdict, message)

    def _resource_changed(self, event: ResourceChanged) -> None:
        names = event.resources
        more = f" and {len(names) - _MAX_NAMES} more" if len(names) > _MAX_NAMES else ""
        log.info("applied %d change(s): %s%s", len(names), ", ".join(names[:_MAX_NAMES]), more)

    def _run_finished(self, event: RunFinished) -> None:
        name, outcome = event.name, event.outcome.value
        previous = self._outcomes.get(name)
        if previous == outcome:
            return
        self._outcomes[name] = outcome
        status = f" HTTP {event.http_status}" if event.http_status else ""
        log.info(
            "%s %s is %s (%s%s)%s",
            event.kind,
            name,
            outcome,
            event.result.value,
            status,
            f", was {previous}" if previous else "",
        )

    def _token_state(self, token: str, state: str) -> None:
        if state in _QUIET_STATES or self._states.get(token) == state:
            return
        previous = self._states.get(token)
        self._states[token] = state
        log.info("token %s is %s%s", token, state, f", was {previous}" if previous else "")


def _signin_of(token: str | None) -> str:
    """Whose sign-in it is, in the log: a token's, or a workflow's browser step (no token; it
    said `for token (none)`)."""
    return f"for token {token}" if token else "by a workflow's browser step"


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 1] + "…"


class UnparsedRequestFilter(logging.Filter):
    """aiohttp logs a request it cannot parse with a traceback whose message quotes the raw
    request line. Keep one line naming the error's kind; the bytes stay out of the log."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, HttpProcessingError):
            said = record.getMessage()
            record.msg = "%s; an unreadable HTTP request (%s, status %s) was refused"
            record.args = (said, type(error).__name__, error.code)
            record.exc_info = None
            record.exc_text = None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


_FILTER = UnparsedRequestFilter()


def hide_unparsed_requests() -> None:
    """Install the filter on aiohttp's server logger (idempotent)."""
    logger = logging.getLogger("aiohttp.server")
    if _FILTER not in logger.filters:
        logger.addFilter(_FILTER)


_MAX_QUEUE_LINE = 300


class QueueErrorFilter(logging.Filter):
    """procrastinate logs a job that failed with the job's arguments and a traceback: a job any
    database user inserted with odd arguments (SPEC §13) would fill the log with tracebacks of
    our task's code. Keep one line (the job, cut short; the error's kind and message); the
    traceback only at DEBUG."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith("procrastinate") or not record.exc_info:
            return True
        if logging.getLogger().isEnabledFor(logging.DEBUG):
            return True
        error = record.exc_info[1]
        said = _cut(record.getMessage())
        record.msg = "%s (%s: %s)" if error is not None else "%s"
        record.args = (said, type(error).__name__, _cut(str(error))) if error else (said,)
        record.exc_info = None
        record.exc_text = None
        return True


def _cut(text: str) -> str:
    text = " ".join(text.split()).encode("unicode_escape").decode("ascii")
    if len(text) <= _MAX_QUEUE_LINE:
        return text
    return f"{text[:_MAX_QUEUE_LINE]}… ({len(text) - _MAX_QUEUE_LINE} more characters)"


QUEUE_ERRORS = QueueErrorFilter()


def error_line(exc: BaseException) -> str:
    """`exc` in one line, by its underlying cause: a library that wraps another's error (as
    procrastinate's "Database error." wraps psycopg's) says nothing of why; its cause does.
    `psycopg.OperationalError: consuming input failed: server closed the connection`."""
    seen: set[int] = set()
    root = exc
    while id(root) not in seen:
        seen.add(id(root))
        nested = root.__cause__ or (None if root.__suppress_context__ else root.__context__)
        if nested is None:
            break
        root = nested
    kind = type(root)
    module = kind.__module__.split(".")[0]
    name = kind.__qualname__ if module == "builtins" else f"{module}.{kind.__qualname__}"
    message = " ".join(str(root).split())
    return f"{name}: {message}" if message else name
