"""Wrongly typed or broken documents: each importer says what is wrong and where (the item, the
entry, the command), or leaves the item out with a note; never a Python exception."""

from __future__ import annotations

import json
from typing import Any

import pytest

from apimd.importers import ImportFailed
from tests.importers.support import imported


def test_har_entry_with_an_unclosed_ipv6_url_is_left_out_and_named() -> None:
    har: dict[str, Any] = {
        "log": {"entries": [{"request": {"method": "GET", "url": "http://[::1/x"}}]}
    }
    with pytest.raises(ImportFailed, match="no entry of the HAR log has a valid http"):
        imported("har", json.dumps(har))
    good = {"request": {"method": "GET", "url": "http://h/ok"}, "response": {"status": 200}}
    har["log"]["entries"].append(good)
    result = imported("har", json.dumps(har))
    assert [c["name"] for c in result.document["calls"]] == ["get-ok"]
    assert "entry 1: URL 'http://[::1/x' is not valid: entry not translated" in result.untranslated


def test_curl_with_an_unclosed_ipv6_url_names_the_command() -> None:
    with pytest.raises(ImportFailed, match=r"^curl command 1: URL 'http://\[::1/x' is not valid$"):
        imported("curl", "curl 'http://[::1/x' -H 'Authorization: Bearer zz'")


def _postman(*items: dict[str, Any], **top: Any) -> str:
    schema = "https://schema.getpostman.com/json/collection/v2.1.0/collection.json"
    return json.dumps({"info": {"name": "c", "schema": schema}, "item": list(items), **top})


def test_postman_request_that_is_not_an_object_names_the_item() -> None:
    with pytest.raises(ImportFailed, match=r"^c/r: `request` is neither an object nor a URL$"):
        imported("postman", _postman({"name": "r", "request": 0}))


@pytest.mark.parametrize(
    ("postman_request", "event", "note"),
    [
        ({"url": "http://h/x", "header": -1}, None, "c/r: `header` is not a list: ignored"),
        (
            {"url": {"raw": "http://h/:id", "variable": "x"}},
            None,
            "c/r: the URL's `variable` is not a list: ignored",
        ),
        (
            {"url": "http://h/x", "body": {"mode": "urlencoded", "urlencoded": -1}},
            None,
            "c/r: body `urlencoded` is not a list: ignored",
        ),
        (
            {"url": "http://h/x", "body": {"mode": "graphql", "graphql": "x"}},
            None,
            "c/r: body `graphql` is not an object: not translated",
        ),
        (
            {"url": "http://h/x", "auth": {"type": "bearer", "bearer": -1}},
            None,
            "c/r: bearer auth: `bearer` is not a list: its settings ignored",
        ),
        ({"url": "http://h/x"}, "x", "c/r: `event` is not a list: ignored"),
        ({"url": "http://h/x"}, ["x"], "c/r: event 1 is not an object: ignored"),
        (
            {"url": "http://h/x"},
            [{"listen": "test", "script": {"exec": -1}}],
            "c/r: a script's `exec` is not a list: ignored",
        ),
    ],
)
def test_postman_parts_of_the_wrong_type_are_left_out_and_named(
    postman_request: dict[str, Any], event: Any, note: str
) -> None:
    item: dict[str, Any] = {"name": "r", "request": postman_request}
    if event is not None:
        item["event"] = event
    result = imported("postman", _postman(item))
    assert [c["name"] for c in result.document["calls"]] == ["r"]
    assert note in result.untranslated


def test_postman_raw_body_options_of_the_wrong_type_are_ignored() -> None:
    body = {"mode": "raw", "raw": '{"a": 1}', "options": -1}
    result = imported("postman", _postman({"name": "r", "request": {"url": "h/x", "body": body}}))
    assert result.document["calls"][0]["body"] == '{"a": 1}'


def test_postman_collection_whose_item_is_not_a_list_says_so() -> None:
    result = imported("postman", _postman(item=5, event="x"))
    assert "collection: `item` is not a list: ignored" in result.untranslated
    assert "collection: `event` is not a list: ignored" in result.untranslated


def _openapi(**parts: Any) -> str:
    document = {"openapi": "3.0.3", "info": {"title": "t", "version": "1"}, "paths": {}}
    document.update(parts)
    return json.dumps(document)


_GET_A = {"/a": {"get": {"operationId": "a", "responses": {"200": {"description": "ok"}}}}}


@pytest.mark.parametrize(
    ("servers", "note"),
    [
        ("x", "servers: not a list: BASE_URL is http://localhost, change it"),
        ([None], "servers[0]: has no `url`: BASE_URL is http://localhost, change it"),
        ([{"url": "http://h/{v}", "variables": "x"}], "servers[0]: `variables` is not a mapping"),
        (
            [{"url": "http://h/{v}", "variables": {"v": None}}],
            "servers[0] variable v: has no default: left in BASE_URL",
        ),
    ],
)
def test_openapi_servers_of_the_wrong_shape_are_named(servers: Any, note: str) -> None:
    result = imported("openapi", _openapi(servers=servers))
    assert any(line.startswith(note) for line in result.untranslated), result.untranslated


def test_openapi_security_scheme_that_is_not_a_mapping_is_left_out() -> None:
    schemes = {"oa": "x", "flowless": {"type": "oauth2", "flows": {"clientCredentials": None}}}
    security: list[Any] = [{"oa": []}, {"flowless": []}]
    document = _openapi(paths=_GET_A, components={"securitySchemes": schemes}, security=security)
    result = imported("openapi", document)
    assert "security scheme oa: not a mapping: not translated" in result.untranslated
    assert (
        "security scheme flowless: OAuth2 clientCredentials flow is not a mapping: not translated"
        in result.untranslated
    )
    assert "auth" not in result.document["calls"][0]


@pytest.mark.parametrize(
    ("security", "note"),
    [
        (-1, "operation a: `security` is not a list: no auth sent"),
        ([-1], "operation a: security requirement 1 is not a mapping: ignored"),
    ],
)
def test_openapi_security_requirements_of_the_wrong_type_are_named(
    security: Any, note: str
) -> None:
    result = imported("openapi", _openapi(paths=_GET_A, security=security))
    assert note in result.untranslated


@pytest.mark.parametrize(
    ("path_parameters", "note"),
    [
        (None, "operation a: the path's `parameters` is not a list: ignored"),
        ([5], "operation a: the path's parameter 1 has no name or `in`: ignored"),
    ],
)
def test_openapi_parameters_of_the_wrong_type_are_named(path_parameters: Any, note: str) -> None:
    paths = {"/a": {"parameters": path_parameters, **_GET_A["/a"]}}
    result = imported("openapi", _openapi(paths=paths))
    assert [c["name"] for c in result.document["calls"]] == ["a"]
    assert note in result.untranslated


def test_openapi_paths_that_are_not_a_mapping_are_named() -> None:
    result = imported("openapi", _openapi(paths=-1))
    assert "paths: not a mapping: no operation translated" in result.untranslated


def test_openapi_ref_into_a_value_that_is_not_an_object_is_named() -> None:
    paths = {"/a": {"get": {**_GET_A["/a"]["get"], "parameters": [{"$ref": "#/components/p/P"}]}}}
    result = imported("openapi", _openapi(paths=paths, components=""))
    assert (
        "path /a: $ref points inside a value that is not an object or list: not translated"
        in result.untranslated
    )


def test_openapi_unresolvable_ref_is_named_by_the_ref_alone() -> None:
    document = _openapi(
        info={"title": "t", "version": "1", "description": "Bearer REFLEAK-secret"},
        servers={"$ref": "#/nowhere"},
        security={"$ref": "#/nowhere/else"},
        paths=_GET_A,
    )
    result = imported("openapi", document)
    assert "servers: $ref cannot be resolved ('/nowhere'): not translated" in result.untranslated
    assert "security: $ref cannot be resolved ('/nowhere/else'): not translated" in (
        result.untranslated
    )
    assert "REFLEAK" not in "\n".join(result.untranslated)
    assert [c["name"] for c in result.document["calls"]] == ["a"]


@pytest.mark.parametrize("pages", [-1, {"a": None}, [None]])
def test_har_pages_of_the_wrong_type_are_ignored(pages: Any) -> None:
    entry = {"request": {"method": "GET", "url": "http://h/ok"}, "response": {"status": 200}}
    result = imported("har", json.dumps({"log": {"pages": pages, "entries": [entry]}}))
    assert result.document["workflows"][0]["name"] == "h"


def test_an_unforeseen_failure_is_an_import_error_that_quotes_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # No known input fails so any more; a failing parser stands in for the next one found.
    def failing(text: str, builder: object, *, keep_cookies: bool = False) -> None:
        raise KeyError("Bearer NETLEAK-secret")

    monkeypatch.setattr("apimd.importers.har.import_har", failing)
    with pytest.raises(ImportFailed) as caught:
        imported("har", '{"log": {"entries": []}}')
    message = str(caught.value)
    assert message.startswith("cannot be read as har: something in it is of a shape")
    assert "(KeyError in __init__.py line " in message
    assert "NETLEAK" not in message and caught.value.__cause__ is None


def test_postman_request_with_an_unclosed_ipv6_url_names_the_item() -> None:
    with pytest.raises(ImportFailed, match=r"^c/r: URL 'http://\[::1/x' is not valid$"):
        imported("postman", _postman({"name": "r", "request": "http://[::1/x"}))


def test_openapi_server_with_an_unclosed_ipv6_url_is_named_and_replaced() -> None:
    result = imported("openapi", _openapi(servers=[{"url": "http://[::1/x"}], paths=_GET_A))
    assert result.document["variables"]["BASE_URL"] == "http://localhost"
    assert (
        "servers[0]: URL 'http://[::1/x' is not valid: BASE_URL is http://localhost"
        in result.untranslated
    )
