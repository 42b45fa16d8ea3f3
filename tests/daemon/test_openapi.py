"""`GET /v1/openapi.json` describes exactly the routes the daemon serves (SPEC §6); asked of the
app in-process (no daemon process needed)."""

from __future__ import annotations

import shutil
from typing import Any

from apimd.daemon.app import create_app
from apimd.settings import Settings
from tests.daemon.conftest import short_home
from tests.support.app import App

METHODS = {"get", "put", "post", "delete", "patch"}


async def served_document(app: App) -> dict[str, Any]:
    async with app.get("/v1/openapi.json") as response:
        assert response.status == 200
        assert response.content_type == "application/json"
        document: dict[str, Any] = await response.json()
        return document


async def test_openapi_paths_equal_the_router_routes(app: App) -> None:
    document = await served_document(app)
    assert document["openapi"].startswith("3.")
    documented = {
        (method.upper(), path)
        for path, operations in document["paths"].items()
        for method in operations
        if method in METHODS
    }

    # Not started: building the app does no I/O, and its router is what the daemon serves.
    home = short_home()
    try:
        built = create_app(Settings.load({"APIMD_HOME": str(home), "APIMD_CALLBACK_PORT": "0"}))
    finally:
        shutil.rmtree(home, ignore_errors=True)
    every = {
        (route.method, route.resource.canonical)
        for route in built.router.routes()
        if route.resource is not None
    }
    # aiohttp answers HEAD wherever a route was added with add_get; OpenAPI leaves that implicit.
    routed = {(m, p) for m, p in every if not (m == "HEAD" and ("GET", p) in every)}
    assert documented == routed


async def test_every_operation_names_its_error_shape(app: App) -> None:
    document = await served_document(app)
    schemas = document["components"]["schemas"]
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            if path == "/v1/openapi.json":
                continue
            assert "4XX" in operation["responses"], (method, path)
            assert any(code.startswith("2") for code in operation["responses"]), (method, path)
    assert "ErrorBody" in schemas or any(name.startswith("ErrorBody") for name in schemas)


def test_the_document_covers_the_fapi_and_tls_fields() -> None:
    from apimd.daemon.api import routes
    from apimd.daemon.routes import openapi_document

    schemas = openapi_document(routes())["components"]["schemas"]
    auth = schemas["AuthSetting"]["properties"]
    for name in (
        "client_key",
        "client_key_id",
        "client_assertion_alg",
        "client_assertion_aud",
        "assertion_claims",
        "issuer",
        "par_url",
        "par",
        "dpop",
        "tls",
    ):
        assert name in auth, name
    assert "private_key_jwt" in auth["client_auth"]["enum"]
    assert "jwt_bearer" in str(auth["grant"])
    tls = schemas["TlsSettings"]["properties"]
    assert set(tls) == {"client_cert", "client_key", "client_key_password", "ca_bundle", "verify"}
    assert "tls" in schemas["Call"]["properties"]


async def test_the_document_covers_signing_proxy_and_cookie_fields(app: App) -> None:
    schemas = (await served_document(app))["components"]["schemas"]

    def properties(prefix: str) -> dict[str, Any]:
        merged: dict[str, Any] = {}
        for name, schema in schemas.items():
            if name.startswith(prefix):
                for key, value in schema.get("properties", {}).items():
                    merged.setdefault(key, {"enum": []})["enum"] += value.get("enum", [])
        return merged

    auth = properties("AuthSetting")
    for field in (
        "access_key_id",
        "secret_access_key",
        "session_token",
        "region",
        "service",
        "proxy",
    ):
        assert field in auth, field
    assert {"digest", "aws_sigv4"} <= set(auth["type"]["enum"])
    assert "cookie" in auth["in"]["enum"]
    call = properties("Call")
    assert {"multipart", "proxy"} <= set(call)
    assert "cookies" in properties("Workflow")
    assert "cookie" in properties("Condition")["source"]["enum"]
