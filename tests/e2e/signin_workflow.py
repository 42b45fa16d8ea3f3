"""The demo's workflow with a browser step (code flow with PKCE on the demo authorization
server), on its own: the steps before the browser step run at once, the ones after it once the
browser comes back."""

from __future__ import annotations

from typing import Any

from apimd.cli.demo import BROWSER_WORKFLOW, browser_workflow

WORKFLOW = BROWSER_WORKFLOW
STEPS = ["service-status", "sso-authorize", "sso-exchange", "sso-orders"]


def browser_workflow_project(base: str) -> dict[str, Any]:
    flow = browser_workflow(base)
    status = {
        "name": "service-status",
        "url": f"{base}/api/status",
        "conditions": [{"source": "status", "op": "eq", "value": 200}],
    }
    return {
        "version": 1,
        "variables": flow["variables"],
        "calls": [status, *flow["calls"]],
        "workflows": flow["workflows"],
    }
