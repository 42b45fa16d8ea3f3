"""`apimd demo --once`: the newcomer's first command shows passing monitors and one failure."""

from __future__ import annotations

from tests.cli.test_run_command import apimd


async def test_demo_runs_the_example_and_shows_a_failure() -> None:
    code, out, err = await apimd("demo", "--once", "--port", "0")
    assert code == 0, err
    for name in ("service-status", "list-orders", "order-flow", "catalogue-xml"):
        line = next(line for line in out.splitlines() if f" {name}" in line and "HTTP" in line)
        assert line.startswith("PASS"), line
    failing = next(
        line for line in out.splitlines() if "checkout-health" in line and "HTTP" in line
    )
    assert failing.startswith("FAIL")
    assert "fails on purpose" in out
