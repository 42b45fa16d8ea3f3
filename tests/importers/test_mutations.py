"""Every value of a Postman collection, an OpenAPI document and a HAR log replaced, one at a time,
by a value of another type: each import succeeds or fails with a message of its own, and none
reaches the safety net for failures no check foresaw (the tester's fuzzer, made a test)."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

import pytest

from apimd.importers import ImportFailed, ImportOptions, import_text

WRONG = [None, -1, "x", [None], {"a": None}, "http://[::1/x", {"$ref": "#/nowhere"}]

POSTMAN: dict[str, Any] = {
    "info": {
        "name": "c",
        "schema": "https://schema.getpostman.com/json/collection/v2.1.0/collection.json",
    },
    "variable": [{"key": "k", "value": "v", "type": "secret"}],
    "auth": {"type": "bearer", "bearer": [{"key": "token", "value": "t"}]},
    "event": [{"listen": "prerequest", "script": {"exec": "x"}}],
    "item": [
        {
            "name": "f",
            "item": [
                {
                    "name": "r",
                    "event": [
                        {
                            "listen": "test",
                            "script": {
                                "exec": [
                                    "pm.response.to.have.status(200);",
                                    "pm.environment.set('T', pm.response.json().a.b);",
                                ]
                            },
                        }
                    ],
                    "request": {
                        "method": "POST",
                        "header": [{"key": "A", "value": "b"}],
                        "url": {
                            "raw": "http://h/{{k}}/p/:id?q=1",
                            "host": ["h"],
                            "query": [{"key": "q", "value": "1"}],
                            "variable": [{"key": "id", "value": "1"}],
                        },
                        "body": {"mode": "urlencoded", "urlencoded": [{"key": "a", "value": "b"}]},
                        "auth": {
                            "type": "oauth2",
                            "oauth2": [
                                {"key": "grant_type", "value": "authorization_code"},
                                {"key": "authUrl", "value": "http://h/a"},
                                {"key": "accessTokenUrl", "value": "http://h/t"},
                                {"key": "clientSecret", "value": "s"},
                            ],
                        },
                    },
                },
                {
                    "name": "g",
                    "request": {
                        "method": "POST",
                        "url": "http://h/g",
                        "body": {
                            "mode": "graphql",
                            "graphql": {"query": "q", "variables": '{"a": 1}'},
                        },
                    },
                },
            ],
        },
        {
            "name": "r2",
            "request": {
                "url": "http://h/x",
                "body": {
                    "mode": "raw",
                    "raw": '{"a": 1}',
                    "options": {"raw": {"language": "json"}},
                },
                "auth": {"type": "apikey", "apikey": [{"key": "in", "value": "query"}]},
            },
        },
    ],
}
OPENAPI: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {"title": "t", "version": "1"},
    "servers": [{"url": "http://h/{v}", "variables": {"v": {"default": "v1"}}}],
    "security": [{"key": []}],
    "paths": {
        "/a/{id}": {
            "parameters": [{"name": "id", "in": "path", "required": True, "example": "1"}],
            "get": {
                "operationId": "getA",
                "parameters": [
                    {"name": "q", "in": "query", "schema": {"type": "string", "enum": ["x"]}},
                    {"$ref": "#/components/parameters/P"},
                ],
                "security": [{"oa": ["s"]}, {"key": []}],
                "responses": {"200": {"description": "ok"}},
            },
            "post": {
                "requestBody": {
                    "content": {
                        "application/json": {"examples": {"e": {"value": {"a": 1}}}},
                        "text/plain": {"example": "t"},
                    }
                },
                "responses": {"201": {"description": "ok"}},
            },
        }
    },
    "components": {
        "parameters": {"P": {"name": "p", "in": "header", "schema": {"examples": ["b"]}}},
        "securitySchemes": {
            "oa": {
                "type": "oauth2",
                "flows": {"clientCredentials": {"tokenUrl": "/t", "scopes": {"s": "d"}}},
            },
            "b": {"type": "http", "scheme": "bearer"},
            "key": {"type": "apiKey", "in": "header", "name": "X-K"},
        },
    },
}
HAR: dict[str, Any] = {
    "log": {
        "pages": [{"title": "p"}],
        "entries": [
            {
                "request": {
                    "method": "POST",
                    "url": "http://h/a?x=1",
                    "headers": [{"name": ":authority", "value": "h"}],
                    "queryString": [{"name": "x", "value": "1"}],
                    "postData": {
                        "mimeType": "multipart/form-data",
                        "params": [{"name": "a", "value": "b"}, {"name": "f", "fileName": "x"}],
                    },
                },
                "response": {"status": 200},
            }
        ],
    }
}


def _paths(node: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    if path:
        yield path
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _paths(value, (*path, index))


def _replaced(document: dict[str, Any], path: tuple[Any, ...], value: Any) -> str:
    changed = copy.deepcopy(document)
    node: Any = changed
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = copy.deepcopy(value)
    return json.dumps(changed)


@pytest.mark.parametrize(
    ("fmt", "document"), [("postman", POSTMAN), ("openapi", OPENAPI), ("har", HAR)]
)
def test_every_value_of_the_wrong_type_is_an_import_or_a_message(
    fmt: str, document: dict[str, Any]
) -> None:
    unforeseen = []
    for path in _paths(document):
        for value in WRONG:
            try:
                import_text(fmt, _replaced(document, path, value), ImportOptions()).yaml  # noqa: B018
            except ImportFailed as exc:
                if str(exc).startswith(f"cannot be read as {fmt}:"):
                    unforeseen.append(f"{'/'.join(map(str, path))} = {value!r}: {exc}")
    assert unforeseen == []
