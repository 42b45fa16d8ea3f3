"""`apimd run NAME… [--tag T]… --junit FILE` (SPEC §11): several targets in one run, JUnit XML that
validates against the Ant JUnit schema GitLab and Jenkins read (tests/fixtures/junit/JUnit.xsd),
SPEC §11's mapping of outcomes, and the worst run as the exit code."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from apimd.demo.server import RunningServer
from tests.cli.test_run_command import apimd
from tests.daemon.conftest import Daemon, start_daemon, stop_daemon
from tests.engine.servers import closed_port

SCHEMA = etree.XMLSchema(
    etree.parse(str(Path(__file__).resolve().parents[1] / "fixtures" / "junit" / "JUnit.xsd"))
)


def valid(path: Path) -> etree._ElementTree:
    document = etree.parse(str(path))
    SCHEMA.assertValid(document)
    return document


def project(url: str) -> dict[str, Any]:
    return {
        # A sign-in nobody has done yet: a person must sign in, so CI must turn red.
        "auth": [
            {
                "name": "people",
                "type": "oauth2",
                "grant": "authorization_code",
                "authorize_url": f"{url}/oauth/authorize",
                "token_url": f"{url}/oauth/token",
                "client_id": "demo-client",
            }
        ],
        "tokens": [{"name": "signed-in", "auth": "people"}],
        "calls": [
            {"name": "status", "url": f"{url}/api/status", "tags": ["ci"]},
            {
                "name": "broken",
                "url": f"{url}/api/broken",
                "conditions": [{"source": "status", "op": "eq", "value": 200}],
            },
            {"name": "unreachable", "url": f"http://127.0.0.1:{closed_port()}/", "tags": ["ci"]},
            {"name": "needs-person", "url": f"{url}/api/orders", "token": "signed-in"},
        ],
        "workflows": [{"name": "flow", "steps": ["broken", "status"], "tags": ["ci"]}],
    }


def elements(document: etree._ElementTree, path: str) -> list[etree._Element]:
    """The elements `path` selects in `document` (an XPath that selects anything else fails)."""
    found = document.xpath(path)
    assert isinstance(found, list)
    return [element for element in found if isinstance(element, etree._Element)]


def case(document: etree._ElementTree, suite: str, name: str) -> etree._Element:
    found = elements(document, f"//testsuite[@name='{suite}']/testcase[@name='{name}']")
    assert len(found) == 1, etree.tostring(document).decode()
    return found[0]


async def test_several_targets_and_a_tag_standalone_give_schema_valid_junit(
    token_server: RunningServer, tmp_path: Path
) -> None:
    file = tmp_path / "project.json"
    file.write_text(json.dumps(project(token_server.url)))
    report = tmp_path / "report.xml"
    code, out, err = await apimd(
        "run", "broken", "needs-person", "--tag", "ci", "-f", str(file), "--junit", str(report)
    )
    assert code == 1, out + err  # the worst of the runs
    document = valid(report)
    suites = elements(document, "//testsuite")
    assert [s.get("name") for s in suites] == ["apimd calls", "flow"]
    calls = suites[0]
    assert [c.get("name") for c in calls.iter("testcase")] == [
        "broken",
        "needs-person",
        "status",
        "unreachable",
    ]
    assert (calls.get("tests"), calls.get("failures"), calls.get("errors")) == ("4", "2", "1")
    failure = case(document, "apimd calls", "broken").find("failure")
    assert failure is not None and failure.get("type") == "CONTENT_ERROR"
    assert "- status eq 200: actual 500" in (failure.text or "")
    signin = case(document, "apimd calls", "needs-person").find("failure")
    assert signin is not None and signin.get("type") == "NEEDS_SIGN_IN"  # CI turns red
    error = case(document, "apimd calls", "unreachable").find("error")
    assert error is not None and error.get("type") == "CONNECTION_ERROR"
    assert len(case(document, "apimd calls", "status")) == 0  # passed: no child
    assert float(case(document, "apimd calls", "status").get("time", "0")) > 0
    flow = suites[1]
    assert [c.get("name") for c in flow.iter("testcase")] == ["broken", "status"]
    assert case(document, "flow", "broken").find("failure") is not None
    assert case(document, "flow", "status").find("skipped") is not None  # never reached
    assert (flow.get("failures"), flow.get("skipped")) == ("1", "1")


@pytest.fixture
def daemon() -> Iterator[Daemon]:
    running = start_daemon()
    try:
        yield running
    finally:
        stop_daemon(running)


async def test_through_the_daemon_every_pass_exits_zero(
    daemon: Daemon, token_server: RunningServer, tmp_path: Path
) -> None:
    async with daemon.client() as client:
        await client.apply({"calls": project(token_server.url)["calls"][:1]})
    report = tmp_path / "ok.xml"
    code, out, err = await daemon.cli("run", "status", "--junit", str(report))
    assert code == 0, out + err
    document = valid(report)
    assert document.xpath("count(//testcase)") == 1
    assert document.xpath("sum(//testsuite/@failures) + sum(//testsuite/@errors)") == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "nope", "status"], "has no call or workflow named 'nope'"),
        (["run", "--tag", "nothing-has-this"], "has no call or workflow tagged nothing-has-this"),
        (["run"], "give a call or workflow NAME, or --tag T"),
    ],
)
async def test_bad_selections_are_usage_errors(
    tmp_path: Path, args: list[str], message: str
) -> None:
    file = tmp_path / "project.json"
    file.write_text(json.dumps(project("http://127.0.0.1:9")))
    code, _out, err = await apimd(*args, "-f", str(file))
    assert code == 2 and message in err, err
