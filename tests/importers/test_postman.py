"""Postman import: newman's sample collection, postman-collection-transformer's auth helpers,
and the common test idioms with an environment file and OAuth2 auth."""

from __future__ import annotations

import base64
import json
from pathlib import Path

from aiohttp import web

from tests.importers.support import env_names, imported, load, run_target
from tests.support.web import app_of


def test_newman_sample_collection_becomes_calls_in_a_workflow() -> None:
    result = imported("postman", "newman-sample-collection.json")
    project = load(result)
    assert [w.steps for w in project.workflows] == [[c.name for c in project.calls]]
    get, text, js = project.calls
    assert [(c.source, c.op, c.value) for c in get.conditions] == [("status", "eq", 200)]
    assert text.body == "Duis posuere augue vel cursus pharetra. In luctus a ex nec pretium..."
    assert js.json_body == {
        "text": "Duis posuere augue vel cursus pharetra. In luctus a ex nec pretium..."
    }
    assert result.untranslated == []


def test_transformer_auth_helpers_map_auth_and_list_the_rest() -> None:
    result = imported("postman", "transformer-helpers-v2.1.0.json")
    project = load(result)
    kinds = {a.name: a.type for a in project.auth}
    # digest auth exists since issue 13, so the importer translates it too
    assert kinds == {"basic-abhijit": "basic", "bearer": "bearer", "digest-abhijit": "digest"}
    assert "kane" not in result.yaml and "wkjehbxoqnunc2k3" not in result.yaml
    assert any("ABHIJIT_PASSWORD" in s for s in result.secrets)
    assert "c1/OAuth: oauth1 auth is not translated (this apimd has no such auth type)" in (
        result.untranslated
    )
    assert not any("digest auth is not translated" in line for line in result.untranslated)
    assert any("postman.setEnvironmentVariable" in line for line in result.untranslated)
    assert project.call("OAuth").url == "https://httpbin.org/post"  # type: ignore[union-attr]


COLLECTION = {
    "info": {
        "name": "Orders API",
        "schema": "https://schema.getpostman.com/json/collection/v2.1.0/collection.json",
    },
    "auth": {
        "type": "oauth2",
        "oauth2": [
            {"key": "grant_type", "value": "client_credentials"},
            {"key": "accessTokenUrl", "value": "{{auth_url}}/token"},
            {"key": "clientId", "value": "orders-client"},
            {"key": "clientSecret", "value": "very-secret-1"},
            {"key": "scope", "value": "orders.read orders.write"},
        ],
    },
    "variable": [{"key": "base-url", "value": "https://api.test"}],
    "item": [
        {
            "name": "Orders",
            "item": [
                {
                    "name": "create order",
                    "event": [
                        {
                            "listen": "test",
                            "script": {
                                "exec": [
                                    'pm.test("created", function () {',
                                    "    pm.response.to.have.status(201);",
                                    "});",
                                    "var jsonData = pm.response.json();",
                                    'pm.environment.set("order_id", jsonData.order.id);',
                                    'pm.expect(jsonData.order.state).to.eql("new");',
                                    "pm.expect(pm.response.responseTime).to.be.below(500);",
                                    "console.log(jsonData);",
                                ]
                            },
                        }
                    ],
                    "request": {
                        "method": "POST",
                        "url": {"raw": "{{base-url}}/orders?sig=abcdef123"},
                        "header": [{"key": "X-Trace", "value": "{{$guid}}"}],
                        "body": {
                            "mode": "raw",
                            "raw": '{"item": "{{item}}"}',
                            "options": {"raw": {"language": "json"}},
                        },
                    },
                },
                {
                    "name": "get order",
                    "request": {"method": "GET", "url": "{{base-url}}/orders/{{order_id}}"},
                },
            ],
        }
    ],
}
ENVIRONMENT = {
    "name": "prod",
    "values": [
        {"key": "auth_url", "value": "https://login.test", "enabled": True},
        {"key": "item", "value": "book", "enabled": True},
        {"key": "api_token", "value": "tok-123456", "type": "secret", "enabled": True},
    ],
}


def test_idioms_environment_and_oauth2_client_credentials() -> None:
    result = imported("postman", json.dumps(COLLECTION), environment=json.dumps(ENVIRONMENT))
    project = load(result)
    auth = project.auth[0]
    assert (auth.type, auth.grant, auth.token_url) == (
        "oauth2",
        "client_credentials",
        "{{AUTH_URL}}/token",
    )
    assert auth.scopes == ["orders.read", "orders.write"]
    assert "very-secret-1" not in result.yaml and "tok-123456" not in result.yaml
    create, get = project.calls
    assert create.token == get.token == project.tokens[0].name
    assert create.url == "{{BASE_URL}}/orders?sig={{SIG}}"
    assert create.headers == {"X-Trace": "{{UUID}}"}
    assert create.json_body == {"item": "{{ITEM}}"}
    assert [(c.source, c.path, c.op, c.value, c.save_as) for c in create.conditions] == [
        ("status", None, "eq", 201, None),
        ("json", "$.order.id", None, None, "ORDER_ID"),
        ("json", "$.order.state", "eq", "new", None),
        ("response_time", None, "lt", 500, None),
    ]
    assert [(w.type, w.names) for w in create.webhooks] == [("save_variables", ["ORDER_ID"])]
    assert project.workflows[0].steps == ["create-order", "get-order"]
    assert project.variables["API_TOKEN"].secret
    assert result.untranslated == [
        "Orders API/Orders/create order: test line not translated: console.log(jsonData)"
    ]


def test_secrets_flag_writes_them_in_clear() -> None:
    result = imported("postman", json.dumps(COLLECTION), secrets=True)
    assert "very-secret-1" in result.yaml
    assert load(result).auth[0].client_secret == "very-secret-1"


def test_oauth2_with_only_a_current_token_is_sent_as_postman_sends_it() -> None:
    result = imported("postman", "insomnia-oauth2-v2_1.postman_collection.json")
    project = load(result)
    query_auth, header_auth = project.auth
    assert (query_auth.type, query_auth.key_name, query_auth.in_) == (
        "api_key",
        "access_token",
        "query",
    )
    assert header_auth.type == "bearer"
    assert [c.auth for c in project.calls] == [query_auth.name, header_auth.name]
    assert "oauth2.0-access-token-url" not in result.yaml
    assert "oauth2.0-adccess-token-headers" not in result.yaml
    assert len({line.split("{env: ")[1].split("}")[0] for line in result.secrets}) == 2
    assert all("its current token is sent, never renewed" in u for u in result.untranslated)


def test_inherit_uses_the_parents_auth_and_path_variables_are_filled() -> None:
    collection = {
        "info": {
            "name": "c",
            "schema": "https://schema.getpostman.com/json/collection/v2.1.0/collection.json",
        },
        "auth": {"type": "bearer", "bearer": [{"key": "token", "value": "{{token}}"}]},
        "item": [
            {
                "name": "get user",
                "request": {
                    "auth": {"type": "inherit"},
                    "method": "PUT",
                    "url": {
                        "raw": "https://api.test/users/:id/keys/:kid?x=1",
                        "variable": [
                            {"key": "id", "value": "{{user}}"},
                            {"key": "kid", "value": "7"},
                        ],
                    },
                    "body": {
                        "mode": "raw",
                        "raw": '{"profile": {"password": "p4ssw0rd!"}, "keys": [{"secret": "s3c"}]}',
                        "options": {"raw": {"language": "json"}},
                    },
                },
            }
        ],
    }
    result = imported("postman", json.dumps(collection))
    project = load(result)
    call = project.calls[0]
    assert call.url == "https://api.test/users/{{USER}}/keys/7?x=1"
    assert call.auth == "bearer" and project.auth[0].token == "{{TOKEN}}"
    assert call.json_body == {
        "profile": {"password": "{{PASSWORD}}"},
        "keys": [{"secret": "{{SECRET}}"}],
    }
    assert "p4ssw0rd!" not in result.yaml and "s3c" not in result.yaml


def test_chai_assertions_become_conditions() -> None:
    script = [
        "const body = pm.response.json();",
        'pm.expect(body).to.have.property("id");',
        "pm.expect(body.items[0].price).to.be.above(10);",
        "pm.expect(body.count).to.be.at.least(3);",
        'pm.expect(body.name).to.not.eql("x");',
        'pm.expect(body.tags).to.include("new");',
        "pm.expect(body.owner).to.exist;",
        'pm.expect(pm.response.headers.get("Content-Type")).to.include("json");',
        "pm.expect(body.total).to.be.closeTo(3, 0.1);",
    ]
    collection = {
        "info": {"name": "c", "schema": "https://schema.getpostman.com/json/collection/v2.0.0/x"},
        "item": [
            {
                "name": "r",
                "event": [{"listen": "test", "script": {"exec": script}}],
                "request": {"url": "https://api.test/r"},
            }
        ],
    }
    result = imported("postman", json.dumps(collection))
    call = load(result).calls[0]
    assert [(c.source, c.path, c.op, c.value) for c in call.conditions] == [
        ("json", "$.id", "exists", None),
        ("json", "$.items[0].price", "gt", 10),
        ("json", "$.count", "ge", 3),
        ("json", "$.name", "ne", "x"),
        ("json", "$.tags", "contains", "new"),
        ("json", "$.owner", "exists", None),
        ("header", "Content-Type", "contains", "json"),
    ]
    assert result.untranslated == [
        "c/r: test line not translated: pm.expect(body.total).to.be.closeTo(3, 0.1)"
    ]


def _orders_api() -> web.Application:
    """An OAuth2 client-credentials token endpoint and the API it protects."""
    issued = "tok-" + "9" * 12

    async def token(request: web.Request) -> web.Response:
        form = await request.post()
        auth = request.headers.get("Authorization", "")
        expected = "Basic " + base64.b64encode(b"orders-client:very-secret-1").decode()
        if form.get("grant_type") != "client_credentials" or auth != expected:
            return web.json_response({"error": "invalid_client"}, status=401)
        return web.json_response(
            {"access_token": issued, "token_type": "Bearer", "expires_in": 300}
        )

    def authorised(request: web.Request) -> bool:
        return request.headers.get("Authorization") == f"Bearer {issued}"

    async def create(request: web.Request) -> web.Response:
        if not authorised(request) or (await request.json()) != {"item": "book"}:
            return web.json_response({}, status=401)
        return web.json_response({"order": {"id": 7, "state": "new"}}, status=201)

    async def show(request: web.Request) -> web.Response:
        ok = authorised(request) and request.match_info["id"] == "7"
        return web.json_response({"id": 7}, status=200 if ok else 404)

    return app_of(
        web.post("/token", token), web.post("/orders", create), web.get("/orders/{id}", show)
    )


async def test_imported_oauth2_collection_runs_pass_against_a_local_api(
    aiohttp_server: object, tmp_path: Path
) -> None:
    server = await aiohttp_server(_orders_api())  # type: ignore[operator]
    base = f"http://127.0.0.1:{server.port}"
    collection = json.loads(json.dumps(COLLECTION).replace("?sig=abcdef123", ""))
    environment = {
        "values": [
            {"key": "auth_url", "value": base},
            {"key": "base-url", "value": base},
            {"key": "item", "value": "book"},
        ]
    }
    result = imported("postman", json.dumps(collection), environment=json.dumps(environment))
    project_file = tmp_path / "orders.yaml"
    project_file.write_text(result.yaml)
    secret_env = {"CLIENT_SECRET": "very-secret-1"}
    assert env_names(result.document) == set(secret_env)
    code, out = await run_target(project_file, "Orders", secret_env)
    assert code == 0, out
    assert out.count("PASS") >= 2


def test_postman_names_that_differ_stay_different_variables() -> None:
    collection = {
        "info": {"name": "c", "schema": "https://schema.getpostman.com/json/collection/v2.1.0/x"},
        "variable": [
            {"key": "base-url", "value": "https://a.test"},
            {"key": "base_url", "value": "https://b.test"},
        ],
        "item": [
            {"name": "a", "request": {"url": "{{base-url}}/x"}},
            {"name": "b", "request": {"url": "{{base_url}}/x"}},
        ],
    }
    project = load(imported("postman", json.dumps(collection)))
    assert {n: v.value for n, v in project.variables.items()} == {
        "BASE_URL": "https://a.test",
        "BASE_URL_2": "https://b.test",
    }
    assert [c.url for c in project.calls] == ["{{BASE_URL}}/x", "{{BASE_URL_2}}/x"]
