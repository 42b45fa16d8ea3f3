"""The one error middleware: domain errors to `{"error": {...}}` JSON with a 4xx status, never a
traceback, never a 5xx for bad input (SPEC §6)."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Awaitable, Callable
from typing import TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from apimd.daemon.runs import NotFound, ShuttingDown
from apimd.engine.tokens import NothingToRefresh
from apimd.model.api import ErrorBody, ErrorDetail, ErrorInfo, RunRequest
from apimd.model.errors import Issue, ValidationFailed
from apimd.model.validation import validation_issues
from apimd.store import (
    InvalidCursor,
    ResourceInUse,
    ResourceNotFound,
    StoreError,
    StoreUnavailable,
)

M = TypeVar("M", bound=BaseModel)

log = logging.getLogger(__name__)

_MODELS: dict[str, type[BaseModel]] = {m.__name__: m for m in (RunRequest,)}

# Far deeper than any project, run variables or request body a person writes; deep enough
# documents would exhaust the recursion of the parser, the models and the store.
MAX_JSON_DEPTH = 64

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class BadRequest(Exception):
    """A malformed request (not JSON, wrong query parameter, …)."""

    def __init__(self, message: str, *, field: str | None = None, code: str = "bad_request"):
        super().__init__(message)
        self.message = message
        self.field = field
        self.code = code


def error_response(
    status: int,
    code: str,
    message: str,
    *,
    field: str | None = None,
    issues: list[Issue] | None = None,
) -> web.Response:
    details = [
        ErrorDetail(message=i.message, field=i.field or None, line=i.line, resource=i.resource)
        for i in issues or []
    ]
    body = ErrorBody(error=ErrorInfo(code=code, message=message, field=field, errors=details))
    return web.json_response(body.model_dump(exclude_none=True), status=status)


def issues_of(exc: ValidationError) -> list[Issue]:
    """Friendly, located issues for a model validation error (the model is the one that failed)."""
    model = exc.title and _MODELS.get(exc.title)
    if model:
        return validation_issues(exc, model)
    return [
        Issue(err["msg"], loc=tuple(p for p in err["loc"] if isinstance(p, str | int)))
        for err in exc.errors(include_url=False)
    ]


def _validation(issues: list[Issue]) -> web.Response:
    count = len(issues)
    message = f"{count} problem{'s' if count != 1 else ''} found; nothing was changed"
    field = issues[0].field if count == 1 else None
    return error_response(422, "validation_failed", message, field=field or None, issues=issues)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = exc.reason.lower().replace(" ", "_")
        text = exc.text if exc.text and not exc.text.startswith(f"{exc.status}:") else exc.reason
        return error_response(exc.status, code, text or exc.reason)
    except ValidationFailed as exc:
        return _validation(exc.issues)
    except ValidationError as exc:
        return _validation(issues_of(exc))
    except BadRequest as exc:
        return error_response(400, exc.code, exc.message, field=exc.field)
    except (NotFound, ResourceNotFound) as exc:
        return error_response(404, "not_found", str(exc))
    except ResourceInUse as exc:
        return error_response(409, "in_use", str(exc))
    except NothingToRefresh as exc:
        return error_response(409, "nothing_to_refresh", str(exc))
    except InvalidCursor as exc:
        return error_response(400, "bad_cursor", str(exc), field="cursor")
    except ShuttingDown as exc:
        return error_response(503, "shutting_down", str(exc))
    except StoreUnavailable as exc:  # not this request's fault, nor a bug: try again later
        log.warning("%s %s: %s", request.method, request.rel_url.path, exc)
        return error_response(503, "store_unavailable", str(exc))
    except StoreError as exc:
        log.error("store error on %s %s: %s", request.method, request.rel_url.path, exc)
        return error_response(500, "store_error", str(exc))
    except Exception:
        log.exception("unexpected error on %s %s", request.method, request.rel_url.path)
        return error_response(500, "internal_error", "an internal error occurred; see daemon.log")


async def json_body(request: web.Request) -> object:
    """The request body parsed as JSON, or a 400 saying what is wrong with it."""
    if request.content_type not in ("application/json", "application/octet-stream", ""):
        raise BadRequest(f"send JSON (Content-Type: application/json), not {request.content_type}")
    raw = await request.read()
    if not raw.strip():
        raise BadRequest("the request body is empty; send a JSON document")
    return parse_json(raw)


async def body_as(request: web.Request, model: type[M], *, optional: bool = False) -> M:
    """The JSON body as `model` (a 422 naming each problem: the middleware maps pydantic's
    errors); with `optional`, a request without a body gets the model's defaults."""
    raw = await json_body(request) if request.can_read_body or not optional else {}
    return model.model_validate(raw)


def parse_json(raw: bytes) -> object:
    """`raw` as JSON that the store and the engine can take, or a `BadRequest` naming what and
    where: not JSON, nested deeper than `MAX_JSON_DEPTH`, or text with a lone UTF-16 surrogate
    (valid JSON escapes such as `"\\ud800"` that no UTF-8 store or HTTP request can carry)."""
    try:
        document = json.loads(raw, parse_constant=_not_json, parse_float=_finite)
    except RecursionError:
        raise BadRequest(_too_deep(None), code="too_deep") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"the request body is not valid JSON: {exc}") from None
    _check_json(document)
    return document


def _too_deep(field: str | None) -> str:
    where = f" at {field}" if field else ""
    return f"the request body is nested more than {MAX_JSON_DEPTH} levels deep{where}"


def _check_json(document: object) -> None:
    """Depth and surrogates, walked without recursion (the document may be deep)."""
    stack: list[tuple[object, tuple[str | int, ...]]] = [(document, ())]
    while stack:
        value, path = stack.pop()
        if len(path) > MAX_JSON_DEPTH:
            raise BadRequest(_too_deep(_field(path[:8]) + "…"), code="too_deep")
        if isinstance(value, dict):
            for key, item in value.items():
                _check_text(key, path)
                stack.append((item, (*path, key)))
        elif isinstance(value, list):
            stack.extend((item, (*path, index)) for index, item in enumerate(value))
        elif isinstance(value, str):
            _check_text(value, path)


def _check_text(text: str, path: tuple[str | int, ...]) -> None:
    try:
        text.encode()
    except UnicodeEncodeError as exc:
        field = _field(path)
        raise BadRequest(
            f"{field or 'the request body'}: text holds a lone UTF-16 surrogate "
            f"({text[exc.start]!a} at character {exc.start + 1}); send valid Unicode",
            field=field or None,
            code="invalid_text",
        ) from None


def _field(path: tuple[str | int, ...]) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")


def _not_json(constant: str) -> float:
    # Python's json module reads NaN and Infinity; JSON has neither, and they would not survive
    # a round trip through the store and back out (serialized as null).
    raise ValueError(f"{constant} is not a JSON number")


def _finite(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"{text} is too large for a number")
    return value
