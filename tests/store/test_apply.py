"""Apply, prune and export (SPEC §2 "Apply semantics") on the SQLite store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from apimd.model import SECRET_MASK, AuthSetting, Call, Project, Token, ValidationFailed, Variable
from apimd.model.resources import TokenState
from apimd.model.runtime import TokenRuntime
from apimd.store import ResourceInUse, ResourceNotFound, SqliteStore
from apimd.store.resources import ResourceStore
from tests.store.conftest import OpenStore

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
SLACK = "https://hooks.slack.com/services/T0/B0/first"
OTHER_HOOK = "https://hooks.example.com/second"


def project_data() -> dict[str, Any]:
    return {
        "variables": {
            "OP": "https://login.example.com",
            "API_KEY": {"value": "api-key-value", "secret": True},
        },
        "auth": [
            {
                "name": "example",
                "type": "manual",
                "client_id": "my-client",
                "client_secret": "client-secret-value",
                "refresh_workflow": "refresh-example",
                "webhooks": [{"type": "slack", "url": SLACK, "alerts": ["NEEDS_SIGN_IN"]}],
            }
        ],
        "tokens": [
            {
                "name": "example-token",
                "auth": "example",
                "headers": {"Authorization": "Bearer %%ACCESS_TOKEN%%"},
            }
        ],
        "calls": [
            {
                "name": "get-token",
                "method": "POST",
                "url": "%%OP%%/oauth/token",
                "form": {"grant_type": "client_credentials"},
                "conditions": [
                    {
                        "source": "json",
                        "path": "$.access_token",
                        "op": "exists",
                        "save_as": "ACCESS_TOKEN",
                    }
                ],
                "webhooks": [{"type": "save_auth_token", "token": "example-token"}],
            },
            {
                "name": "list-orders",
                "url": "https://api.example.com/orders",
                "token": "example-token",
                "webhooks": [
                    {"type": "slack", "url": SLACK, "alerts": ["FAIL"], "fails_in_a_row": 3},
                    {"type": "http", "url": OTHER_HOOK},
                ],
            },
        ],
        "workflows": [{"name": "refresh-example", "steps": ["get-token"]}],
        "schedules": [{"name": "every-minute", "every": "1m", "targets": ["list-orders"]}],
    }


def project(**changes: Any) -> Project:
    data = project_data()
    data.update(changes)
    return Project.model_validate(data)


@pytest.fixture
async def store(open_any_store: OpenStore) -> SqliteStore:
    return await open_any_store(clock=lambda: NOW)


async def test_apply_creates_then_reports_nothing_changed(store: SqliteStore) -> None:
    first = await store.apply(project())
    assert "calls/list-orders" in first.created
    assert "variables/API_KEY" in first.created
    again = await store.apply(project())
    assert not again.changed
    assert sorted(again.unchanged) == sorted(first.created)


async def test_reapplying_keeps_a_signed_in_token_valid(store: SqliteStore) -> None:
    await store.apply(project())
    signed_in = TokenRuntime(
        name="example-token",
        variables={"ACCESS_TOKEN": "at", "REFRESH_TOKEN": "rt", "EXPIRES_IN": "3600"},
        expires_at=NOW + timedelta(hours=1),
        state=TokenState.VALID,
        saved_at=NOW,
        lifetime_s=3600,
        last_refresh=NOW,
    )
    await store.save_token(signed_in)
    await store.apply(project())
    await store.apply(project(), prune=True)
    changed = project_data()
    changed["tokens"][0]["headers"] = {"X-Token": "%%ACCESS_TOKEN%%"}
    report = await store.apply(Project.model_validate(changed))
    assert report.updated == ["tokens/example-token"]
    assert await store.load_token("example-token") == signed_in


async def test_applying_an_export_changes_nothing(store: SqliteStore) -> None:
    await store.apply(project())
    await store.save_token(
        TokenRuntime(
            name="example-token",
            variables={"ACCESS_TOKEN": "at", "EXPIRES_IN": "60"},
            expires_at=NOW + timedelta(seconds=60),
            state=TokenState.VALID,
        )
    )
    before = await store.export(secrets=True)
    runtime_before = await store.load_token("example-token")
    exported = await store.export()
    assert exported.auth[0].client_secret == SECRET_MASK
    assert exported.auth[0].webhooks[0].url == SECRET_MASK
    assert exported.variables["API_KEY"].value == SECRET_MASK
    assert exported.tokens[0].variables == {"ACCESS_TOKEN": SECRET_MASK, "EXPIRES_IN": "60"}
    # As a document: through JSON, as `apimd export` writes it and `apimd apply` reads it.
    document = Project.model_validate(exported.model_dump(mode="json", by_alias=True))
    report = await store.apply(document)
    assert not report.changed, report
    assert await store.export(secrets=True) == before
    assert await store.load_token("example-token") == runtime_before
    assert not (await store.apply(document, prune=True)).changed


async def test_a_masked_or_omitted_secret_keeps_the_stored_value(store: SqliteStore) -> None:
    await store.apply(project())
    auth = (await store.project.get("auth", "example")).model_copy(
        update={"client_id": "new-client"}
    )
    assert auth.client_secret == SECRET_MASK
    await store.project.put("auth", auth)
    await store.project.put("auth", auth.model_copy(update={"client_secret": None}))
    stored = await store.project.get("auth", "example", reveal=True)
    assert stored.client_id == "new-client"
    assert stored.client_secret == "client-secret-value"
    assert stored.webhooks[0].url == SLACK
    await store.project.put("variables", Variable(name="api_key", value=SECRET_MASK, secret=True))
    variable = await store.load_variable("API_KEY")
    assert variable is not None and variable.value == "api-key-value"


async def test_masked_webhook_urls_follow_their_webhooks(store: SqliteStore) -> None:
    await store.apply(project())
    call = await store.project.get("calls", "list-orders")
    # The first webhook is removed: the remaining one keeps its own URL, not the first's.
    await store.project.put("calls", call.model_copy(update={"webhooks": call.webhooks[1:]}))
    stored = await store.project.get("calls", "list-orders", reveal=True)
    assert [h.url for h in stored.webhooks] == [OTHER_HOOK]
    # Edited in place (alerts changed): keeps the URL at its position.
    hook = stored.webhooks[0].model_copy(update={"url": SECRET_MASK, "alerts": ["WARNING"]})
    await store.project.put("calls", stored.model_copy(update={"webhooks": [hook]}))
    stored = await store.project.get("calls", "list-orders", reveal=True)
    assert (stored.webhooks[0].url, stored.webhooks[0].alerts) == (OTHER_HOOK, ["WARNING"])


async def test_a_mask_with_nothing_stored_is_refused(store: SqliteStore) -> None:
    data = project_data()
    data["auth"][0]["client_secret"] = SECRET_MASK
    data["variables"]["API_KEY"]["value"] = SECRET_MASK
    with pytest.raises(ValidationFailed) as caught:
        await store.apply(Project.model_validate(data))
    fields = {issue.field for issue in caught.value.issues}
    assert fields == {"auth[0].client_secret", "variables.API_KEY.value"}
    assert await store.export(secrets=True) == Project()


async def test_document_token_variables_set_the_token(store: SqliteStore) -> None:
    data = project_data()
    data["tokens"][0]["variables"] = {"access_token": "seeded", "EXPIRES_IN": "600"}
    report = await store.apply(Project.model_validate(data))
    assert report.tokens_set == ["example-token"]
    runtime = await store.load_token("example-token")
    assert runtime is not None
    assert runtime.variables == {"ACCESS_TOKEN": "seeded", "EXPIRES_IN": "600"}
    assert runtime.expires_at == NOW + timedelta(seconds=600)
    assert runtime.state == TokenState.VALID
    # Without EXPIRES_IN the expiry is cleared (only a 401 refreshes it then).
    data["tokens"][0]["variables"] = {"ACCESS_TOKEN": "other"}
    await store.apply(Project.model_validate(data))
    runtime = await store.load_token("example-token")
    assert runtime is not None
    assert runtime.variables == {"ACCESS_TOKEN": "other"}
    assert runtime.expires_at is None
    # Masked values keep what is saved; the same variables again change nothing.
    data["tokens"][0]["variables"] = {"ACCESS_TOKEN": SECRET_MASK}
    assert not (await store.apply(Project.model_validate(data))).tokens_set
    runtime = await store.load_token("example-token")
    assert runtime is not None and runtime.variables == {"ACCESS_TOKEN": "other"}


async def test_applying_a_call_that_uses_a_stored_token_works(store: SqliteStore) -> None:
    await store.apply(project())
    extra = Call(name="get-order", url="https://api.example.com/orders/1", token="example-token")
    report = await store.apply(Project(calls=[extra]))
    assert report.created == ["calls/get-order"]


async def test_a_reference_to_nothing_is_refused_and_changes_nothing(store: SqliteStore) -> None:
    await store.apply(project())
    before = await store.export(secrets=True)
    broken = Call(name="get-order", url="https://x", token="no-such-token")
    with pytest.raises(ValidationFailed) as caught:
        await store.apply(Project(calls=[broken]))
    assert [(i.field, i.message) for i in caught.value.issues] == [
        ("calls[0].token", "unknown token 'no-such-token'")
    ]
    # Prune would leave `list-orders` pointing at a deleted token.
    with pytest.raises(ValidationFailed):
        await store.apply(Project(calls=[project().call("list-orders")]), prune=True)
    assert await store.export(secrets=True) == before


async def test_a_name_taken_by_the_other_target_kind_is_refused(store: SqliteStore) -> None:
    await store.apply(project())
    with pytest.raises(ValidationFailed, match="duplicate name 'list-orders'"):
        await store.apply(
            Project.model_validate({"workflows": [{"name": "list-orders", "steps": ["get-token"]}]})
        )


async def test_prune_deletes_what_the_document_omits(store: SqliteStore) -> None:
    await store.apply(project())
    await store.save_token(TokenRuntime(name="example-token", variables={"ACCESS_TOKEN": "x"}))
    minimal = Project.model_validate({"variables": {"OP": "https://login.example.com"}})
    report = await store.apply(minimal, prune=True)
    assert "tokens/example-token" in report.deleted
    assert "variables/API_KEY" in report.deleted
    exported = await store.export()
    assert exported == Project.model_validate({"variables": {"OP": "https://login.example.com"}})
    assert await store.load_token("example-token") is None


async def test_a_failure_mid_apply_leaves_nothing_partial(
    store: SqliteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    await store.apply(project())
    before = await store.export(secrets=True)
    original = ResourceStore.put_in
    calls = 0

    async def failing_put(self: ResourceStore, *args: Any) -> None:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise OSError("disk full (forced)")
        await original(self, *args)

    monkeypatch.setattr(ResourceStore, "put_in", failing_put)
    changed = project_data()
    changed["variables"]["OP"] = "https://changed.example.com"
    for call in changed["calls"]:
        call["description"] = "changed"
    changed["auth"][0]["client_secret"] = "new-secret"
    changed["schedules"].append({"name": "hourly", "every": "1h", "targets": ["get-token"]})
    with pytest.raises(OSError, match="forced"):
        await store.apply(Project.model_validate(changed), prune=True)
    assert calls == 3
    assert await store.export(secrets=True) == before
    monkeypatch.undo()
    assert (await store.apply(Project.model_validate(changed))).changed


async def test_get_and_list_mask_secrets_unless_revealed(store: SqliteStore) -> None:
    await store.apply(project())
    await store.save_token(
        TokenRuntime(name="example-token", variables={"ACCESS_TOKEN": "at"}, state=TokenState.VALID)
    )
    token = await store.project.get("tokens", "example-token")
    assert isinstance(token, Token)
    assert (token.variables, token.state) == ({"ACCESS_TOKEN": SECRET_MASK}, TokenState.VALID)
    revealed = await store.project.get("tokens", "example-token", reveal=True)
    assert revealed.variables == {"ACCESS_TOKEN": "at"}
    auths = await store.project.list("auth")
    assert [a.client_secret for a in auths] == [SECRET_MASK]
    assert isinstance(auths[0], AuthSetting)
    variables = await store.project.list("variables")
    assert [(v.name, v.value) for v in variables] == [
        ("API_KEY", SECRET_MASK),
        ("OP", "https://login.example.com"),
    ]
    assert await store.project.get("calls", "nope") is None


async def test_delete_refuses_while_referenced(store: SqliteStore) -> None:
    await store.apply(project())
    with pytest.raises(ResourceInUse) as caught:
        await store.project.delete("tokens", "example-token")
    assert caught.value.referrers == ["call 'get-token'", "call 'list-orders'"]
    assert "token 'example-token' is used by call 'get-token', call 'list-orders'" in str(
        caught.value
    )
    with pytest.raises(ResourceNotFound):
        await store.project.delete("calls", "nope")
    await store.project.delete("schedules", "every-minute")
    await store.project.delete("calls", "list-orders")
    await store.project.delete("variables", "api_key")
    exported = await store.export()
    assert [c.name for c in exported.calls] == ["get-token"]
    assert exported.schedules == []
    assert list(exported.variables) == ["OP"]


async def test_issue_13_fields_survive_export_and_apply(store: SqliteStore) -> None:
    """aws_sigv4, digest, proxies (credentials as secrets), multipart, api_key in a cookie,
    `cookies: false` and signature templates round-trip through export and apply."""
    data = {
        "auth": [
            {
                "name": "aws",
                "type": "aws_sigv4",
                "access_key_id": "AKID",
                "secret_access_key": "aws-secret-value",
                "session_token": "aws-session-value",
                "region": "eu-west-1",
                "service": "execute-api",
                "proxy": "socks5h://ann:proxy-secret@127.0.0.1:1080",
            },
            {"name": "dig", "type": "digest", "username": "u", "password": "digest-pw"},
            {"name": "k", "type": "api_key", "key_name": "sid", "key_value": "kv", "in": "cookie"},
            {"name": "m", "type": "manual"},
        ],
        "tokens": [
            {
                "name": "sig",
                "auth": "m",
                "headers": {"X-Sig": "{{ hmac_sha256(K, '%%REQUEST_PATH%%') | base64 }}"},
            }
        ],
        "calls": [
            {
                "name": "up",
                "method": "POST",
                "url": "https://api.example.com/up",
                "multipart": {
                    "note": "hi",
                    "doc": {"file": "/tmp/x.csv", "content_type": "text/csv"},
                },
                "proxy": "none",
                "auth": "aws",
            }
        ],
        "workflows": [{"name": "w", "steps": ["up"], "cookies": False}],
    }
    await store.apply(Project.model_validate(data))
    before = await store.export(secrets=True)
    assert before.auth[0].proxy == "socks5h://ann:proxy-secret@127.0.0.1:1080"
    assert before.calls[0].multipart is not None and before.workflows[0].cookies is False
    exported = await store.export()
    assert exported.auth[0].secret_access_key == SECRET_MASK
    assert exported.auth[0].proxy == SECRET_MASK
    document = Project.model_validate(exported.model_dump(mode="json", by_alias=True))
    report = await store.apply(document)
    assert not report.changed, report
    assert await store.export(secrets=True) == before
