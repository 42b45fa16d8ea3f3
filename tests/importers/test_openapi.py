"""OpenAPI import: real documents from the OpenAPI Initiative and others (tests/fixtures/import)."""

from __future__ import annotations

import base64
from collections.abc import Callable
from pathlib import Path

from aiohttp import web

from tests.importers.support import env_names, imported, load, run_target
from tests.support.web import app_of


def _petstore_app() -> web.Application:
    pets = [{"id": 1, "name": "Rex"}]

    async def list_pets(request: web.Request) -> web.Response:
        return web.json_response(pets[: int(request.query.get("limit", "100"))])

    async def create_pet(request: web.Request) -> web.Response:
        return web.Response(status=201)

    async def show_pet(request: web.Request) -> web.Response:
        found = [p for p in pets if str(p["id"]) == request.match_info["pet_id"]]
        return web.json_response(found, status=200 if found else 404)

    return app_of(
        web.get("/v1/pets", list_pets),
        web.post("/v1/pets", create_pet),
        web.get("/v1/pets/{pet_id}", show_pet),
    )


def test_petstore_imports_every_operation_with_its_first_2xx_status() -> None:
    result = imported("openapi", "petstore.yaml")
    project = load(result)
    assert [c.name for c in project.calls] == ["listPets", "createPets", "showPetById"]
    assert project.variables["BASE_URL"].value == "http://petstore.swagger.io/v1"
    statuses = {c.name: [(k.op, k.value) for k in c.conditions] for c in project.calls}
    assert statuses == {
        "listPets": [("eq", 200)],
        "createPets": [("eq", 201)],
        "showPetById": [("eq", 200)],
    }
    assert project.call("createPets").method == "POST"  # type: ignore[union-attr]
    assert result.untranslated == [
        "operation showPetById: path parameter 'petId' has no example: fill in SHOWPETBYID_PETID"
    ]


async def test_imported_petstore_calls_run_pass_against_a_local_petstore(
    aiohttp_server: object, tmp_path: Path
) -> None:
    server = await aiohttp_server(_petstore_app())  # type: ignore[operator]
    project_file = tmp_path / "petstore.yaml"
    project_file.write_text(imported("openapi", "petstore.yaml").yaml)
    base = f"BASE_URL=http://127.0.0.1:{server.port}/v1"
    for name in ("listPets", "createPets", "showPetById"):
        code, out = await run_target(project_file, name, {}, base, "SHOWPETBYID_PETID=1")
        assert code == 0, out
        assert "PASS" in out


def test_openapi_31_webhooks_are_listed_not_dropped() -> None:
    result = imported("openapi", "webhook-example.yaml")
    project = load(result)
    assert [c.name for c in project.calls] == ["listPets"]
    assert "webhooks: requests the API sends are not translated" in result.untranslated
    assert "servers: none given: BASE_URL is http://localhost, change it" in result.untranslated


def test_oauth2_authorization_code_becomes_an_oauth2_auth_with_a_token() -> None:
    result = imported("openapi", "securitySchemes.yaml")
    project = load(result)
    auth = project.auth_setting("OAuth2")
    assert auth is not None
    assert (auth.type, auth.grant) == ("oauth2", "authorization_code")
    assert auth.authorize_url == "https://example.com/oauth/authorize"
    assert auth.token_url == "https://example.com/oauth/token"
    assert auth.scopes == ["read", "write", "admin"]
    call = project.call("listPets")
    assert call is not None and call.token == "OAuth2-token"
    assert "security scheme ClientCertificate: mutualTLS security is not translated" in (
        result.untranslated
    )
    assert any("OAUTH2_CLIENT_SECRET" in line for line in result.secrets)


def test_scopes_per_operation_and_secrets_never_in_clear() -> None:
    result = imported("openapi", "insomnia-oauth2-input.yaml")
    project = load(result, {"OAUTH2_AUTHORIZATIONCODE_CLIENT_ID": "cid"})
    assert [c.token for c in project.calls] == ["OAuth2-AuthorizationCode-token"] * 3
    assert project.auth[0].client_id == "cid"
    assert "client_secret:\n    env: OAUTH2_AUTHORIZATIONCODE_CLIENT_SECRET" in result.yaml


def test_recursive_schema_does_not_loop() -> None:
    doc = """
openapi: 3.1.0
info: {title: t, version: '1'}
servers: [{url: 'https://api.test'}]
paths:
  /nodes:
    post:
      operationId: addNode
      requestBody:
        content:
          application/json:
            schema: {$ref: '#/components/schemas/Node'}
            example: {name: root, children: [{name: leaf, children: []}]}
      responses: {'201': {description: ok}}
components:
  schemas:
    Node:
      type: object
      properties:
        name: {type: string}
        children: {type: array, items: {$ref: '#/components/schemas/Node'}}
"""
    project = load(imported("openapi", doc))
    call = project.call("addNode")
    assert call is not None
    assert call.json_body == {"name": "root", "children": [{"name": "leaf", "children": []}]}


def test_endpoint_security_maps_each_scheme_cookie_keys_included() -> None:
    result = imported("openapi", "insomnia-endpoint-security.yaml")
    project = load(result)
    auth_of = {c.url.removeprefix("{{BASE_URL}}"): c.auth for c in project.calls}
    assert auth_of == {
        "/none": None,
        "/none/basic": None,  # `{}` first: anonymous access is allowed
        "/basic": "Basic",
        "/bearer": "Bearer",
        "/key/header": "Key-Header",
        "/key/cookie": "Key-Cookie",  # api_key `in: cookie` exists since issue 13
        "/key/query": "Key-Query",
        "/all": None,
    }
    types = {a.name: (a.type, a.key_name, a.in_) for a in project.auth if a.type == "api_key"}
    assert types["Key-Query"] == ("api_key", "key", "query")
    assert types["Key-Header"] == ("api_key", "x-api_key", "header")
    assert types["Key-Cookie"] == ("api_key", "CookieName", "cookie")
    assert types["AnotherKey-Cookie"] == ("api_key", "AnotherCookieName", "cookie")
    assert result.untranslated == []


def test_path_item_ref_is_resolved_and_a_property_named_ref_is_not_a_reference() -> None:
    result = imported("openapi", "validator-petstore-3.1.yaml")
    project = load(result)
    assert [c.name for c in project.calls] == ["listPets", "createPets", "showPetById"]
    assert project.call("showPetById").url == "{{BASE_URL}}/pets/{{SHOWPETBYID_PETID}}"  # type: ignore[union-attr]
    assert not [line for line in result.untranslated if "$ref" in line]


def test_recursive_schema_fixture_imports_without_looping() -> None:
    result = imported("openapi", "validator-property-recursive.yaml")
    assert load(result).calls == []
    assert result.untranslated == ["servers: none given: BASE_URL is http://localhost, change it"]


def test_schemes_required_together_give_each_call_the_key_and_the_openid_token() -> None:
    result = imported("openapi", "openapi-net-petstore-security.yaml")
    project = load(result)
    oidc = next(a for a in project.auth if a.name == "securitySchemeName2")
    assert (oidc.type, oidc.issuer, oidc.grant) == (
        "oauth2",
        "http://example.com",
        "authorization_code",
    )
    assert {(c.auth, c.token) for c in project.calls} == {
        ("securitySchemeName1", "securitySchemeName2-token")
    }
    assert not [line for line in result.untranslated if "securitySchemeName2" in line]


def test_api_key_and_oauth2_together_give_the_call_an_auth_and_a_token() -> None:
    doc = """
openapi: 3.0.3
info: {title: t, version: '1'}
servers: [{url: 'https://api.test/v2'}]
security: [{key: [], oauth: [read]}]
paths:
  /things: {get: {operationId: things, responses: {'200': {description: ok}}}}
components:
  securitySchemes:
    key: {type: apiKey, name: X-Key, in: header}
    oauth:
      type: oauth2
      flows: {clientCredentials: {tokenUrl: /oauth/token, scopes: {read: r}}}  # RFC 3986 reference
"""
    project = load(imported("openapi", doc))
    call = project.calls[0]
    assert (call.auth, call.token) == ("key", "oauth-token")
    assert project.auth_setting("oauth").token_url == "https://api.test/oauth/token"  # type: ignore[union-attr]


def test_validator_problems_are_listed_as_warnings() -> None:
    doc = """
openapi: 3.0.3
info: {title: t}
servers: [{url: 'https://{region}.api.test/{base}', variables: {region: {default: eu}, base: {default: v1}}}]
paths:
  /items/{id}:
    get:
      operationId: getItem
      parameters: [{name: id, in: path, required: true, schema: {type: integer}, example: 42}]
      responses: {'200': {description: ok}}
"""
    result = imported("openapi", doc)
    project = load(result)
    assert project.variables["BASE_URL"].value == "https://eu.api.test/v1"
    assert project.calls[0].url == "{{BASE_URL}}/items/42"
    assert "validation info: 'version' is a required property" in result.untranslated


async def test_refs_outside_the_document_are_listed_never_fetched(aiohttp_server: object) -> None:
    hits: list[str] = []

    async def schema(request: web.Request) -> web.Response:
        hits.append(request.path)
        return web.json_response({"name": "id", "in": "query", "example": "stolen"})

    app = web.Application()
    app.router.add_get("/param.json", schema)
    server = await aiohttp_server(app)  # type: ignore[operator]
    remote = f"http://127.0.0.1:{server.port}/param.json"
    doc = f"""
openapi: 3.0.3
info: {{title: t, version: '1'}}
servers: [{{url: 'https://api.test'}}]
paths:
  /remote:
    get:
      operationId: remote
      parameters: [{{$ref: '{remote}'}}]
      responses: {{'200': {{description: ok}}}}
  /file:
    get:
      operationId: file
      parameters: [{{$ref: 'file:///etc/hostname'}}]
      responses: {{'200': {{description: ok}}}}
  /nowhere:
    get:
      parameters: [{{$ref: '#/components/parameters/missing'}}]
      responses: {{'200': {{description: ok}}}}
  /loop: {{$ref: '#/components/pathItems/loop'}}
  /fine:
    get: {{operationId: fine, responses: {{'204': {{description: ok}}}}}}
components:
  pathItems:
    loop: {{$ref: '#/components/pathItems/loop'}}
"""
    result = imported("openapi", doc)
    project = load(result)
    assert [c.name for c in project.calls] == ["fine"]
    assert hits == []
    assert f"$ref: {remote!r} points outside this document: not resolved" in result.untranslated
    assert "$ref: 'file:///etc/hostname' points outside this document: not resolved" in (
        result.untranslated
    )
    assert any(u.startswith("path /nowhere: $ref cannot be resolved") for u in result.untranslated)
    assert "path /loop: $ref refers to itself: not translated" in result.untranslated


def _secured_app() -> web.Application:
    """Stands in for Insomnia's endpoint-security API: each route checks its own credential."""
    basic = "Basic " + base64.b64encode(b"ann:pw-basic").decode()
    checks: dict[str, Callable[[web.Request], bool]] = {
        "/v1/basic": lambda r: r.headers.get("Authorization") == basic,
        "/v1/bearer": lambda r: r.headers.get("Authorization") == "Bearer tok-bearer",
        "/v1/key/header": lambda r: r.headers.get("x-api_key") == "k-header",
        "/v1/key/query": lambda r: r.query.get("key") == "k-query",
        "/v1/none": lambda r: "Authorization" not in r.headers,
    }

    async def handle(request: web.Request) -> web.Response:
        return web.Response(status=200 if checks[request.path](request) else 401)

    app = web.Application()
    for path in checks:
        app.router.add_get(path, handle)
    return app


async def test_imported_security_schemes_authenticate_against_a_local_api(
    aiohttp_server: object, tmp_path: Path
) -> None:
    server = await aiohttp_server(_secured_app())  # type: ignore[operator]
    result = imported("openapi", "insomnia-endpoint-security.yaml")
    project_file = tmp_path / "secured.yaml"
    project_file.write_text(result.yaml)
    env = dict.fromkeys(env_names(result.document), "unused")
    env |= {
        "BASIC_USERNAME": "ann",
        "BASIC_PASSWORD": "pw-basic",
        "BEARER_TOKEN": "tok-bearer",
        "KEY_HEADER_KEY": "k-header",
        "KEY_QUERY_KEY": "k-query",
    }
    base = f"BASE_URL=http://127.0.0.1:{server.port}/v1"
    for path in ("basic", "bearer", "key/header", "key/query", "none"):
        code, out = await run_target(project_file, "get-" + path.replace("/", "-"), env, base)
        assert code == 0, f"{path}: {out}"
