"""A curl command for a bank API that needs a client certificate (`--cert`, `--key`,
`--cacert`) imports as the call's `tls` files (SPEC §10, §12) and runs PASS against a server
that requires that certificate; a password in `--cert FILE:PASSWORD` is never written out."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.importers.support import imported, load, run_target
from tests.support.tls import TestCA
from tests.support.web import app_of


async def _whoami(request: web.Request) -> web.Response:
    cert = request.transport.get_extra_info("peercert") if request.transport else None
    subject = dict(item for rdn in (cert or {}).get("subject", ()) for item in rdn)
    return web.json_response({"cn": subject.get("commonName")})


@pytest.fixture
async def bank(tmp_path: Path) -> AsyncIterator[tuple[str, Path]]:
    ca = TestCA()
    client = ca.issue("bank-client")
    (tmp_path / "client.pem").write_text(client.cert)
    (tmp_path / "client.key").write_text(client.key)
    (tmp_path / "both.pem").write_text(client.cert + client.key)
    (tmp_path / "ca.pem").write_text(ca.pem)
    server = TestServer(app_of(web.get("/v1/whoami", _whoami)), host="127.0.0.1", port=0)
    await server.start_server(ssl=ca.server_context(tmp_path))
    try:
        yield f"https://127.0.0.1:{server.port}", tmp_path
    finally:
        await server.close()


@pytest.mark.parametrize(
    "options", ["--cert client.pem --key client.key", "-E both.pem", "--cert=both.pem"]
)
async def test_client_certificate_options_import_as_tls_and_run_pass(
    bank: tuple[str, Path], options: str
) -> None:
    url, folder = bank
    result = imported("curl", f"curl {options} --cacert ca.pem {url}/v1/whoami")
    assert not [line for line in result.untranslated if "--cert" in line or "--key" in line]
    call = result.document["calls"][0]
    assert set(call["tls"]) == {"client_cert", "client_key", "ca_bundle"}
    load(result)
    project = folder / "project.yaml"
    project.write_text(
        result.yaml.replace(": client.", f": {folder}/client.")
        .replace(": both.", f": {folder}/both.")
        .replace(": ca.", f": {folder}/ca.")
    )
    code, out = await run_target(project, call["name"], {})
    assert code == 0, out
    assert "&id" not in result.yaml  # one file named twice is written twice, not as an alias


def test_a_key_password_in_cert_is_never_written() -> None:
    result = imported("curl", "curl --cert client.pem:s3cr3t-pw https://bank.example/v1")
    assert "s3cr3t-pw" not in result.yaml
    assert not any("s3cr3t-pw" in line for line in result.untranslated)
    assert any("client_key_password" in line for line in result.untranslated)
    assert result.document["calls"][0]["tls"]["client_cert"] == {"file": "client.pem"}
