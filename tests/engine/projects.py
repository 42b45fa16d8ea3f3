"""Project documents the engine tests run, built against a live token server's URL."""

from __future__ import annotations

from typing import Any

from apimd.engine.memory import MemoryStateStore
from apimd.engine.runner import Engine
from apimd.model import Project, check_project
from apimd.model.result import Result


def build(doc: dict[str, Any]) -> Project:
    project = Project.model_validate(doc)
    issues = check_project(project)
    assert not issues, issues
    return project


async def run_doc(doc: dict[str, Any], name: str, **options: Any) -> Result:
    """Run `name` once on a fresh engine over the project `doc` (options: `Engine.run`'s)."""
    engine = Engine(build(doc), MemoryStateStore())
    try:
        return await engine.run(name, **options)
    finally:
        await engine.close()


def get_token_call(base: str, name: str = "get-token", **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "method": "POST",
        "url": f"{base}/oauth/token",
        "form": {
            "grant_type": "client_credentials",
            "client_id": "%%CLIENT_ID%%",
            "client_secret": "%%CLIENT_SECRET%%",
        },
        "conditions": [
            {"source": "status", "op": "eq", "value": 200},
            {"source": "json", "path": "$.access_token", "op": "exists", "save_as": "ACCESS_TOKEN"},
            {"source": "json", "path": "expires_in", "save_as": "EXPIRES_IN"},
        ],
        **extra,
    }


def manual_token_project(base: str, *, tokens: tuple[str, ...] = ("t1",)) -> Project:
    """Manual-auth tokens kept fresh by a client-credentials refresh workflow, and a call on each."""
    return build(
        {
            "auth": [
                {
                    "name": "manual",
                    "type": "manual",
                    "client_id": "demo-client",
                    "client_secret": "demo-secret",
                    "refresh_workflow": "refresh",
                }
            ],
            "tokens": [
                {
                    "name": t,
                    "auth": "manual",
                    "headers": {"Authorization": "Bearer %%ACCESS_TOKEN%%"},
                }
                for t in tokens
            ],
            "calls": [
                get_token_call(base),
                *(
                    {
                        "name": f"orders-{t}",
                        "url": f"{base}/api/orders",
                        "token": t,
                        "conditions": [{"source": "status", "op": "eq", "value": 200}],
                    }
                    for t in tokens
                ),
            ],
            "workflows": [{"name": "refresh", "steps": ["get-token"]}],
        }
    )
