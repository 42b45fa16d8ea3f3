"""JUnit XML of runs for CI (SPEC §11), in the Ant JUnit format GitLab and Jenkins read: a
testsuite per workflow (a testcase per step, steps never reached `skipped`) and one for the calls;
FAIL, WARNING and NEEDS_SIGN_IN are `failure`s, CONNECTION_ERROR, TIMEOUT and SETUP_ERROR
`error`s."""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from datetime import UTC

from lxml import etree

from apimd.engine.notices import notice_for_result
from apimd.model.outcome import Outcome, ResultCode
from apimd.model.result import Result

CALLS_SUITE = "apimd calls"
ERROR_CODES = frozenset(
    {ResultCode.CONNECTION_ERROR, ResultCode.TIMEOUT, ResultCode.SETUP_ERROR, ResultCode.CANCELLED}
)
FAILURE_OUTCOMES = frozenset({Outcome.FAIL, Outcome.WARNING, Outcome.SKIPPED})


@dataclass
class TargetRun:
    """A run to report: its result and, for a workflow, the names of all its steps."""

    result: Result
    steps: list[str] = field(default_factory=list)


def verdict(result: Result) -> str | None:
    """`error`, `failure`, or None (passed) for a call's or step's result."""
    if result.result in ERROR_CODES:
        return "error"
    if result.outcome in FAILURE_OUTCOMES:  # NEEDS_SIGN_IN must turn CI red too
        return "failure"
    return None


def junit_xml(runs: list[TargetRun], *, hostname: str | None = None) -> bytes:
    """The `<testsuites>` document of `runs`, in the order they ran."""
    host = hostname or socket.gethostname() or "localhost"
    root = etree.Element("testsuites")
    calls = [r.result for r in runs if r.result.kind == "call"]
    suites: list[tuple[str, list[etree._Element]]] = []
    if calls:
        suites.append((CALLS_SUITE, [_testcase(r, "apimd.calls") for r in calls]))
    for run in (r for r in runs if r.result.kind == "workflow"):
        suites.append((run.result.name, _workflow_cases(run)))
    started = {r.result.name: r.result.started_at for r in runs}
    first = min(started.values()) if started else None
    for index, (name, cases) in enumerate(suites):
        when = started.get(name, first)
        suite = etree.SubElement(
            root,
            "testsuite",
            package="apimd",
            id=str(index),
            name=name,
            timestamp=when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S") if when else "",
            hostname=host,
            tests=str(len(cases)),
            failures=str(_count(cases, "failure")),
            errors=str(_count(cases, "error")),
            skipped=str(_count(cases, "skipped")),
            time=_seconds(sum(float(c.get("time", "0")) for c in cases)),
        )
        etree.SubElement(suite, "properties")
        suite.extend(cases)
        etree.SubElement(suite, "system-out")
        etree.SubElement(suite, "system-err")
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True))


def _workflow_cases(run: TargetRun) -> list[etree._Element]:
    workflow = run.result
    if not workflow.steps:  # nothing ran (e.g. SETUP_ERROR): the workflow is the testcase
        return [_testcase(workflow, workflow.name)]
    cases = [_testcase(step, workflow.name) for step in workflow.steps]
    for name in run.steps[len(workflow.steps) :]:
        case = etree.Element("testcase", name=name, classname=workflow.name, time=_seconds(0))
        etree.SubElement(case, "skipped", message="not reached: an earlier step stopped the run")
        cases.append(case)
    return cases


def _testcase(result: Result, classname: str) -> etree._Element:
    case = etree.Element(
        "testcase",
        name=result.name,
        classname=classname,
        time=_seconds(result.timings_ms.total / 1000),
    )
    kind = verdict(result)
    if kind is not None:
        message = f"{result.outcome.value}: {result.result.value}"
        if result.error:
            message += f" — {result.error}"
        detail = etree.SubElement(case, kind, message=message, type=result.result.value)
        detail.text = notice_for_result(result).body
    return case


def _count(cases: list[etree._Element], kind: str) -> int:
    return sum(1 for case in cases if case.find(kind) is not None)


def _seconds(value: float) -> str:
    return f"{max(value, 0.0):.6f}"  # to the µs: a loopback call takes well under a ms
