"""A workflow whose second step is a browser sign-in on the demo authorization server (code flow
with PKCE): the steps before it run at once, the ones after it once the browser comes back."""

from __future__ import annotations

from typing import Any

WORKFLOW = "browser-login"
STEPS = ["service-status", "authorize", "exchange-code", "my-orders"]


def browser_workflow_project(base: str) -> dict[str, Any]:
    client = {"client_id": "demo-client", "client_secret": "demo-secret"}
    passes = {"source": "status", "op": "eq", "value": 200}
    return {
        "version": 1,
        "calls": [
            {"name": "service-status", "url": f"{base}/api/status", "conditions": [passes]},
            {
                "name": "authorize",
                "url": f"{base}/oauth/authorize",
                "tags": ["apimd:browser"],
                "params": {
                    "response_type": "code",
                    "client_id": client["client_id"],
                    "redirect_uri": "%%CALLBACK_URL%%",
                    "code_challenge": "%%CODE_CHALLENGE%%",
                    "code_challenge_method": "S256",
                },
            },
            {
                "name": "exchange-code",
                "method": "POST",
                "url": f"{base}/oauth/token",
                "form": {
                    "grant_type": "authorization_code",
                    "code": "%%CODE%%",
                    "redirect_uri": "%%CALLBACK_URL%%",
                    "code_verifier": "%%CODE_VERIFIER%%",
                    **client,
                },
                "conditions": [
                    passes,
                    {"source": "json", "path": "access_token", "save_as": "ACCESS_TOKEN"},
                ],
            },
            {
                "name": "my-orders",
                "url": f"{base}/api/orders",
                "headers": {"Authorization": "Bearer %%ACCESS_TOKEN%%"},
                "conditions": [passes],
            },
        ],
        "workflows": [{"name": WORKFLOW, "steps": STEPS}],
    }
