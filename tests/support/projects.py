"""Project documents the tests and the benchmarks share: the example project's custom token flow
(a manual auth kept fresh by a client-credentials workflow against the demo token server, and a
call per token), built against a live server's URL."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from apimd.engine.memory import MemoryStateStore
from apimd.engine.runner import Engine
from apimd.model import Project, check_project
from apimd.model.result import Result


def build(doc: dict[str, Any]) -> Project:
    """The validated project of `doc`; fails on any reference problem."""
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


def token_saved(*more: dict[str, Any]) -> list[dict[str, Any]]:
    """The conditions of a token request: status 200, and ACCESS_TOKEN and EXPIRES_IN saved from
    its JSON answer (then `more`)."""
    return [
        {"source": "status", "op": "eq", "value": 200},
        {"source": "json", "path": "access_token", "save_as": "ACCESS_TOKEN"},
        {"source": "json", "path": "expires_in", "save_as": "EXPIRES_IN"},
        *more,
    ]


def manual_auth(name: str = "manual", refresh_workflow: str | None = None) -> dict[str, Any]:
    """A `manual` auth with the demo server's client credentials."""
    auth = {
        "name": name,
        "type": "manual",
        "client_id": "demo-client",
        "client_secret": "demo-secret",
    }
    if refresh_workflow:
        auth["refresh_workflow"] = refresh_workflow
    return auth


def get_token_call(base: str, name: str = "get-token", **extra: Any) -> dict[str, Any]:
    """`POST {base}/oauth/token` with the client credentials, saving ACCESS_TOKEN and EXPIRES_IN."""
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


@dataclass(frozen=True)
class TokenFlow:
    """The names of the token flow's auth, its token call and its refresh workflow."""

    auth: str = "manual"
    get_token: str = "get-token"
    refresh: str = "refresh"

    @classmethod
    def prefixed(cls, prefix: str) -> TokenFlow:
        return cls(f"{prefix}-auth", f"{prefix}-get-token", f"{prefix}-refresh")


def manual_token_document(
    base: str, *, tokens: dict[str, str], names: TokenFlow = TokenFlow()
) -> dict[str, Any]:
    """Manual-auth tokens kept fresh by a client-credentials refresh workflow; `tokens` maps each
    token's name to the name of its call (`GET {base}/api/orders` with the bearer, status 200)."""
    return {
        "version": 1,
        "auth": [manual_auth(names.auth, names.refresh)],
        "tokens": [
            {"name": t, "auth": names.auth, "headers": {"Authorization": "Bearer %%ACCESS_TOKEN%%"}}
            for t in tokens
        ],
        "calls": [
            get_token_call(base, names.get_token),
            *(
                {
                    "name": call,
                    "url": f"{base}/api/orders",
                    "token": token,
                    "conditions": [{"source": "status", "op": "eq", "value": 200}],
                }
                for token, call in tokens.items()
            ),
        ],
        "workflows": [{"name": names.refresh, "steps": [names.get_token]}],
    }


def manual_token_project(base: str, *, tokens: tuple[str, ...] = ("t1",)) -> Project:
    """`manual_token_document` with call `orders-<token>` for each token."""
    return build(manual_token_document(base, tokens={t: f"orders-{t}" for t in tokens}))
