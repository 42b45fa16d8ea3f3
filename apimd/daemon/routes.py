"""The route table type and the OpenAPI 3 document generated from it and the models."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from apimd import __version__
from apimd.model.api import ErrorBody

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Route:
    """One operation: method, path, handler, and the models it takes and gives."""

    method: str
    path: str
    handler: Handler
    summary: str
    request: type[BaseModel] | None = None
    response: type[BaseModel] | None = None
    query: list[tuple[str, str, str]] = field(default_factory=list)
    stream: bool = False
    text: str | None = None  # the content type of a plain-text answer (`/metrics`)


def add_routes(app: web.Application, table: list[Route]) -> None:
    for route in table:
        app.router.add_route(route.method, route.path, route.handler)


def openapi_document(table: list[Route]) -> dict[str, Any]:
    """OpenAPI 3.1 for `table`: its paths are exactly the router's routes."""
    models: set[type[BaseModel]] = {ErrorBody}
    for route in table:
        models |= {m for m in (route.request, route.response) if m is not None}
    ordered = sorted(models, key=lambda m: m.__name__)
    keyed, schemas = models_json_schema(
        [(m, "validation") for m in ordered] + [(m, "serialization") for m in ordered],
        ref_template="#/components/schemas/{model}",
    )
    refs = dict(keyed)
    paths: dict[str, dict[str, Any]] = {}
    for route in table:
        operation: dict[str, Any] = {
            "summary": route.summary,
            "operationId": _operation_id(route),
            "responses": {
                "4XX": {
                    "description": "bad input",
                    "content": {"application/json": {"schema": refs[(ErrorBody, "serialization")]}},
                }
            },
        }
        parameters = [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            for name in re.findall(r"{(\w+)}", route.path)
        ]
        parameters += [
            {
                "name": name,
                "in": "query",
                "required": False,
                "description": text,
                "schema": {"type": kind},
            }
            for name, kind, text in route.query
        ]
        if parameters:
            operation["parameters"] = parameters
        if route.request is not None:
            operation["requestBody"] = {
                "required": route.method != "POST" or route.request.__name__ != "RunRequest",
                "content": {"application/json": {"schema": refs[(route.request, "validation")]}},
            }
        ok = "202" if route.path.endswith("/run") else "200"
        if route.text is not None:
            operation["responses"]["200"] = {
                "description": "text",
                "content": {route.text: {"schema": {"type": "string"}}},
            }
        elif route.stream:
            operation["responses"]["200"] = {
                "description": "text/event-stream",
                "content": {"text/event-stream": {"schema": {"type": "string"}}},
            }
        elif route.response is not None:
            content = {"application/json": {"schema": refs[(route.response, "serialization")]}}
            operation["responses"][ok] = {"description": "OK", "content": content}
            if ok == "202":
                operation["responses"]["200"] = {
                    "description": "finished (wait: true)",
                    "content": content,
                }
        paths.setdefault(route.path, {})[route.method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": "apimd daemon API", "version": __version__},
        "paths": paths,
        "components": {"schemas": schemas.get("$defs", {})},
    }


def _operation_id(route: Route) -> str:
    words = (
        re.sub(r"[{}]", "", route.path.removeprefix("/v1/").lstrip("/"))
        .replace("/", "_")
        .replace(".", "_")
    )
    return f"{route.method.lower()}_{words}"
