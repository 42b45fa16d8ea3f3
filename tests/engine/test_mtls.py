"""Mutual TLS (SPEC §10 `tls`): client certificates on calls and token requests, against a real TLS
server on 127.0.0.1 that requires a certificate from a CA made in the test."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from apimd.engine.http import HttpExecutor, HttpRequest
from apimd.engine.memory import MemoryStateStore
from apimd.engine.runner import Engine
from apimd.engine.tls import TlsConfig
from apimd.model import Outcome, ResultCode
from apimd.model.errors import ValidationFailed
from apimd.model.loader import load_project_text
from tests.support.engine import run_once
from tests.support.projects import build
from tests.support.tls import TestCA
from tests.support.web import app_of


def _peer_cn(request: web.Request) -> str:
    cert = request.transport.get_extra_info("peercert") if request.transport else None
    subject = dict(item for rdn in (cert or {}).get("subject", ()) for item in rdn)
    return str(subject.get("commonName", ""))


async def whoami(request: web.Request) -> web.Response:
    peer = request.transport.get_extra_info("peername") if request.transport else None
    return web.json_response({"cn": _peer_cn(request), "peer": peer})


async def token(request: web.Request) -> web.Response:
    form = await request.post()
    if _peer_cn(request) != "bank-client" or form.get("client_id") != "bank-client":
        return web.json_response({"error": "invalid_client"}, status=401)
    return web.json_response({"access_token": "mtls-token", "expires_in": 60})


@pytest.fixture
def ca() -> TestCA:
    return TestCA()


@pytest.fixture
async def server(ca: TestCA, tmp_path: Path) -> AsyncIterator[str]:
    app = app_of(web.get("/whoami", whoami), web.post("/token", token))
    test_server = TestServer(app, host="127.0.0.1", port=0)
    await test_server.start_server(ssl=ca.server_context(tmp_path))
    try:
        yield f"https://127.0.0.1:{test_server.port}"
    finally:
        await test_server.close()


def call(base: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": "whoami",
        "url": f"{base}/whoami",
        "conditions": [
            {"source": "status", "op": "eq", "value": 200},
            {"source": "json", "path": "$.cn", "op": "exists", "save_as": "CN"},
        ],
        **extra,
    }


async def run(doc: dict[str, Any], name: str = "whoami") -> Any:
    return await run_once(Engine(build(doc), MemoryStateStore()), name)


async def test_client_certificate_with_password_and_ca_only(server: str, ca: TestCA) -> None:
    client = ca.issue("monitor-1", password="pw-123456")
    tls = {
        "client_cert": client.cert,
        "client_key": client.key,
        "client_key_password": "pw-123456",
        "ca_bundle": ca.pem,
        "verify": "ca_only",
    }
    result = await run({"calls": [call(server, tls=tls)]})
    assert result.outcome == Outcome.PASS, result.error
    assert result.variables["CN"] == "monitor-1"
    timings = result.timings_ms
    assert timings.connect > 0  # TCP and the TLS handshake with the client certificate
    # Phases are recorded to the µs: 0.518 + 9.919 is 10.437000000000001 in floats.
    assert timings.total >= round(timings.connect + timings.wait, 3)


async def test_no_or_foreign_client_certificate_is_refused(server: str, ca: TestCA) -> None:
    missing = await run({"calls": [call(server, tls={"ca_bundle": ca.pem})]})
    foreign = TestCA("another CA").issue("intruder")
    wrong = await run(
        {
            "calls": [
                call(
                    server,
                    tls={
                        "ca_bundle": ca.pem,
                        "client_cert": foreign.cert,
                        "client_key": foreign.key,
                    },
                )
            ]
        }
    )
    for result in (missing, wrong):
        assert result.outcome == Outcome.FAIL
        assert result.result == ResultCode.CONNECTION_ERROR, result.error


async def test_auth_tls_for_token_endpoint_and_call_fields_override(
    server: str, ca: TestCA
) -> None:
    bank = ca.issue("bank-client")
    other = ca.issue("call-override")
    doc = {
        "auth": [
            {
                "name": "bank",
                "type": "oauth2",
                "grant": "client_credentials",
                "client_id": "bank-client",
                "token_url": f"{server}/token",
                "client_auth": "tls_client_auth",
                "tls": {"client_cert": bank.cert, "client_key": bank.key, "ca_bundle": ca.pem},
            }
        ],
        "tokens": [{"name": "t", "auth": "bank"}],
        "calls": [
            call(server, name="as-auth", token="t"),
            call(
                server,
                name="overridden",
                token="t",
                tls={"client_cert": other.cert, "client_key": other.key},
            ),
        ],
    }
    as_auth = await run(doc, "as-auth")
    overridden = await run(doc, "overridden")
    assert as_auth.outcome == Outcome.PASS, as_auth.error
    assert as_auth.variables["CN"] == "bank-client"
    assert overridden.outcome == Outcome.PASS, overridden.error
    assert overridden.variables["CN"] == "call-override"  # its ca_bundle still the auth's


async def test_file_pems_are_reread_and_keepalive_never_crosses_certificates(
    server: str, ca: TestCA, tmp_path: Path
) -> None:
    cert_file, key_file = tmp_path / "c.pem", tmp_path / "c.key"
    first = ca.issue("first")
    cert_file.write_text(first.cert)
    key_file.write_text(first.key)
    tls = {"client_cert": {"file": str(cert_file)}, "client_key": {"file": str(key_file)}}
    doc = {
        "calls": [call(server, tls={**tls, "ca_bundle": ca.pem}, keepalive=True)],
    }
    engine = Engine(build(doc), MemoryStateStore())
    try:
        one = await engine.run("whoami")
        second = ca.issue("second")
        cert_file.write_text(second.cert)
        key_file.write_text(second.key)
        two = await engine.run("whoami")
    finally:
        await engine.close()
    assert one.variables["CN"] == "first", one.error
    assert two.variables["CN"] == "second", two.error


async def test_keepalive_connections_are_pooled_per_client_certificate(
    server: str, ca: TestCA, executor: HttpExecutor
) -> None:
    """The pool is keyed by the TLS settings: each certificate keeps its own connection."""
    configs = {
        name: TlsConfig(client_cert=issued.cert, client_key=issued.key, ca_bundle=ca.pem)
        for name, issued in (("one", ca.issue("client-one")), ("two", ca.issue("client-two")))
    }
    seen: list[tuple[str, str, int]] = []
    for name in ["one", "two", "one", "two"]:
        request = HttpRequest("GET", f"{server}/whoami", keepalive=True, tls=configs[name])
        answer = json.loads((await executor.send(request)).body)
        seen.append((name, answer["cn"], answer["peer"][1]))
    assert [cn for _, cn, _ in seen] == ["client-one", "client-two", "client-one", "client-two"]
    ports = {name: {port for used, _, port in seen if used == name} for name in configs}
    assert len(ports["one"]) == len(ports["two"]) == 1  # each reused its own connection
    assert ports["one"] != ports["two"]


def _load(tls: dict[str, Any]) -> str:
    doc = {"calls": [{"name": "c", "url": "https://x.example", "tls": tls}]}
    with pytest.raises(ValidationFailed) as failed:
        load_project_text(json.dumps(doc), filename="p.json")
    return str(failed.value)


def test_wrong_certificate_or_key_is_a_load_error_naming_the_field(ca: TestCA) -> None:
    one, two = ca.issue("one"), ca.issue("two", password="secret-pw")
    mismatch = _load({"client_cert": one.cert, "client_key": ca.issue("x").key})
    assert "certificate and key do not match" in mismatch
    assert "tls" in mismatch
    assert "not a PEM certificate" in _load({"client_cert": "nope", "client_key": one.key})
    assert "not a PEM private key" in _load(
        {
            "client_cert": one.cert,
            "client_key": "-----BEGIN PRIVATE KEY-----\nAA\n-----END PRIVATE KEY-----",
        }
    )
    encrypted = _load({"client_cert": two.cert, "client_key": two.key})
    assert "give client_key_password" in encrypted
    assert "secret-pw" not in encrypted


async def test_results_show_the_client_certificate_and_cert_days_checks_it(
    server: str, ca: TestCA
) -> None:
    client = ca.issue("expiring", days=10)
    tls = {"client_cert": client.cert, "client_key": client.key, "ca_bundle": ca.pem}
    conditions = [
        {"source": "cert_days", "path": "client", "op": "gt", "value": 9},
        {"source": "cert_days", "path": "client", "op": "lt", "value": 10.01},
    ]
    doc = {
        "calls": [
            call(server, tls=tls, conditions=conditions),
            call(server, name="alerting", tls=tls, conditions=[{**conditions[0], "value": 30}]),
            call(server, name="no-cert", tls={"ca_bundle": ca.pem}, conditions=conditions[:1]),
        ]
    }
    ok = await run(doc)
    alerting = await run(doc, "alerting")
    assert ok.outcome == Outcome.PASS, (ok.error, ok.conditions)
    assert ok.client_cert is not None
    assert ok.client_cert.subject == "CN=expiring"
    assert ok.client_cert.expires_at == client.not_after
    assert alerting.outcome == Outcome.FAIL
    assert alerting.conditions[0].passed is False
    no_cert = await run(doc, "no-cert")
    assert no_cert.client_cert is None


def test_cert_days_checks_the_client_path() -> None:
    doc = {
        "calls": [
            {
                "name": "c",
                "url": "https://x.example",
                # no path: the server certificate (SPEC §11); `client`: the client's
                "conditions": [{"source": "cert_days", "path": "proxy", "op": "gt", "value": 5}],
            }
        ]
    }
    with pytest.raises(ValidationFailed, match="path: client"):
        load_project_text(json.dumps(doc), filename="p.json")


async def test_bad_key_files_are_setup_errors_never_a_prompt_or_a_hang(
    server: str, ca: TestCA, tmp_path: Path
) -> None:
    client = ca.issue("monitor-1", password="pw-123456")
    cert_file, key_file = tmp_path / "c.pem", tmp_path / "c.key"
    cert_file.write_text(client.cert)
    key_file.write_text(client.key)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    files = {"client_cert": {"file": str(cert_file)}, "client_key": {"file": str(key_file)}}
    cases = {
        "no password": (files, "client_key_password"),
        "wrong password": ({**files, "client_key_password": "nope"}, "client_key_password"),
        "a fifo": ({**files, "client_key": {"file": str(fifo)}}, "not a regular file"),
        "a folder": ({**files, "client_key": {"file": str(tmp_path)}}, "not a regular file"),
        "a device": ({**files, "client_cert": {"file": "/dev/zero"}}, "not a regular file"),
    }
    for case, (tls, said) in cases.items():
        result = await asyncio.wait_for(run({"calls": [call(server, tls=tls)]}), 10)
        assert result.result == ResultCode.SETUP_ERROR, (case, result.error)
        assert said in (result.error or ""), (case, result.error)
        assert "pw-123456" not in result.model_dump_json()
