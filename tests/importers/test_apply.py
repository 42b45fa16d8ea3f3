"""Every fixture imports into a file that `apimd apply` loads into a real daemon process unchanged
(the secrets it moved out supplied through the environment, as the stderr listing says)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from apimd.importers import detect_format
from tests.daemon.conftest import Daemon
from tests.daemon.conftest import daemon as daemon  # the module-scoped daemon fixture
from tests.daemon.conftest import daemon_store as daemon_store  # which store it runs on
from tests.importers.support import FIXTURES, env_names, imported

CASES = [
    ("openapi", "petstore.yaml"),
    ("openapi", "webhook-example.yaml"),
    ("openapi", "securitySchemes.yaml"),
    ("openapi", "insomnia-oauth2-input.yaml"),
    ("openapi", "insomnia-endpoint-security.yaml"),
    ("openapi", "validator-petstore-3.1.yaml"),
    ("openapi", "openapi-net-petstore-security.yaml"),
    ("postman", "newman-sample-collection.json"),
    ("postman", "transformer-helpers-v2.1.0.json"),
    ("postman", "insomnia-oauth2-v2_1.postman_collection.json"),
    ("har", "insomnia-deep-input.har"),
    ("har", "harviewer-post-data-no-page.har"),
    ("har", "harviewer-firefox47-post-empty.har"),
    ("curl", "chrome-copy-as-curl.sh"),
    ("curl", "chrome-windows-copy-as-curl.sh"),
]


def test_every_fixture_is_listed_here() -> None:
    on_disk = {p.name for p in FIXTURES.iterdir() if p.name != "README.md"}
    assert on_disk - {name for _, name in CASES} == {"validator-property-recursive.yaml"}


@pytest.mark.parametrize(("fmt", "fixture"), CASES, ids=[name for _, name in CASES])
async def test_import_result_applies_to_a_running_daemon(
    daemon: Daemon, fmt: str, fixture: str, tmp_path: Path
) -> None:
    result = imported(fmt, fixture)
    project_file = tmp_path / "imported.yaml"
    project_file.write_text(result.yaml)
    env = {name: f"secret-{name.lower()}" for name in env_names(result.document)}
    code, out, err = await daemon.cli("apply", str(project_file), env=env)
    assert code == 0, out + err
    async with daemon.client() as client:
        stored = {getattr(call, "name", "") for call in await client.list("calls")}
    assert {call["name"] for call in result.document.get("calls", [])} <= stored


@pytest.mark.parametrize(("fmt", "fixture"), CASES, ids=[name for _, name in CASES])
def test_the_format_is_detected_from_the_content(fmt: str, fixture: str) -> None:
    assert detect_format((FIXTURES / fixture).read_text(encoding="utf-8")) == fmt


def test_a_minified_json_openapi_document_is_detected() -> None:
    """One line of JSON, `openapi` not first: the TUI's Import said "not a curl command, HAR,
    Postman or OpenAPI: pick the format" (a helper's retest)."""
    info_first = {"info": {"title": "t", "version": "1"}, "openapi": "3.0.3", "paths": {}}
    assert detect_format(json.dumps(info_first, separators=(",", ":"))) == "openapi"
    assert detect_format(json.dumps({"data": {"openapi": "3.0.3"}})) is None  # not its key
