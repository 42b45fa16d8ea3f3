"""`POST /v1/apply`, `GET /v1/export` and the `apimd apply` / `apimd export` commands against a
real daemon (SPEC §2 apply semantics, §6, §7)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from apimd.client import ApiError, Client
from tests.daemon.conftest import Daemon, unique

# CRUD, apply, tokens across expiries and schedules: the same on a PostgreSQL daemon (SPEC §13).
pytestmark = pytest.mark.both_stores

MASK = "••••"
DEAD_URL = "http://127.0.0.1:9/nothing"


def names(items: list[Any]) -> set[str]:
    return {item.name for item in items}


def project(**kinds: Any) -> dict[str, Any]:
    return {"version": 1, **kinds}


async def test_apply_upserts_and_leaves_other_resources_alone(app_client: Client) -> None:
    """In-process: REST behaviour needs no daemon process."""
    first, second, third = unique("a"), unique("b"), unique("c")
    async with app_client as client:
        summary = await client.apply(
            project(calls=[{"name": first, "url": DEAD_URL}, {"name": second, "url": DEAD_URL}])
        )
        assert set(summary.created["calls"]) == {first, second}

        summary = await client.apply(
            project(
                calls=[
                    {"name": second, "url": DEAD_URL, "method": "DELETE"},
                    {"name": third, "url": DEAD_URL},
                ]
            )
        )
        assert summary.created["calls"] == [third]
        assert summary.updated["calls"] == [second]
        assert first not in json.dumps(summary.model_dump()), "an omitted call is left alone"

        calls = names(await client.list("calls"))
        assert {first, second, third} <= calls
        replaced = await client.get("calls", second)
        assert replaced.method == "DELETE"  # type: ignore[attr-defined]

        summary = await client.apply(project(calls=[{"name": third, "url": DEAD_URL}]))
        assert summary.unchanged.get("calls") == [third]
        assert not summary.created and not summary.updated and not summary.deleted


async def test_apply_with_prune_deletes_what_the_document_omits(own_app_client: Client) -> None:
    """In-process, on a store of its own."""
    async with own_app_client as client:
        await client.apply(
            project(
                variables={"KEEP": "1", "DROP": "2"},
                calls=[{"name": "keep", "url": DEAD_URL}, {"name": "drop", "url": DEAD_URL}],
                workflows=[{"name": "drop-flow", "steps": ["drop"]}],
            )
        )
        summary = await client.apply(
            project(variables={"KEEP": "1"}, calls=[{"name": "keep", "url": DEAD_URL}]),
            prune=True,
        )
        assert {kind: sorted(items) for kind, items in summary.deleted.items()} == {
            "variables": ["DROP"],
            "calls": ["drop"],
            "workflows": ["drop-flow"],
        }
        assert names(await client.list("calls")) == {"keep"}
        assert names(await client.list("variables")) == {"KEEP"}
        assert names(await client.list("workflows")) == set()


async def test_a_document_with_one_bad_reference_changes_nothing(app_client: Client) -> None:
    """In-process: REST behaviour needs no daemon process."""
    existing, new, ghost = unique("existing"), unique("new"), unique("ghost")
    async with app_client as client:
        await client.apply(project(calls=[{"name": existing, "url": DEAD_URL}]))
        before = await client.export(secrets=True)

        with pytest.raises(ApiError) as caught:
            await client.apply(
                project(
                    variables={"ALL_OR_NOTHING": "x"},
                    calls=[
                        {"name": existing, "url": DEAD_URL, "method": "PATCH"},
                        {"name": new, "url": DEAD_URL, "token": ghost},
                    ],
                )
            )
        assert caught.value.status == 422
        assert ghost in str(caught.value)

        assert await client.export(secrets=True) == before
        assert new not in names(await client.list("calls"))
        assert (await client.get("calls", existing)).method == "GET"  # type: ignore[attr-defined]


async def test_apimd_apply_prints_a_summary_and_a_bad_file_exits_2_naming_the_line(
    daemon: Daemon, tmp_path: Path
) -> None:
    call = unique("cli-call")
    good = tmp_path / "good.yaml"
    good.write_text(f"version: 1\ncalls:\n  - name: {call}\n    url: {DEAD_URL}\n")
    code, out, err = await daemon.cli("apply", str(good))
    assert code == 0, err
    assert "created" in out and f"calls/{call}" in out

    code, out, err = await daemon.cli("apply", str(good))
    assert code == 0, err
    assert "nothing changed" in out and "1 unchanged" in out

    bad_call = unique("bad-call")
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "version: 1\n"
        "calls:\n"
        f"  - name: {bad_call}\n"
        f"    url: {DEAD_URL}\n"
        "    timeout: soon\n"
        f"  - name: {unique('other')}\n"
        f"    url: {DEAD_URL}\n"
        "    colour: red\n"
    )
    code, out, err = await daemon.cli("apply", str(bad))
    assert code == 2, out + err
    assert f"{bad}:5" in err and f"{bad}:8" in err, err  # every error, with its line
    assert "timeout" in err and "colour" in err
    assert "nothing was applied" in err
    async with daemon.client() as client:
        assert bad_call not in names(await client.list("calls"))

    # References are checked by the daemon against what it holds; the line is still named.
    dangling = tmp_path / "dangling.yaml"
    dangling.write_text(
        f"version: 1\ncalls:\n  - name: {bad_call}\n    url: {DEAD_URL}\n"
        f"    token: {unique('ghost')}\n"
    )
    code, out, err = await daemon.cli("apply", str(dangling))
    assert code == 2, out + err
    assert f"{dangling}:5" in err and "unknown token" in err, err

    code, _out, err = await daemon.cli("apply", str(tmp_path / "missing.yaml"))
    assert code == 2 and "missing.yaml" in err


ROUND_TRIP = """\
version: 1
variables:
  PLAIN: hello
  PASSWORD: {value: var-secret-value, secret: true}
auth:
  - name: api
    type: manual
    client_id: my-client
    client_secret: client-secret-value
    webhooks:
      - {type: http, url: "http://127.0.0.1:9/hook-secret-path", alerts: [NEEDS_SIGN_IN]}
tokens:
  - name: api-token
    auth: api
    headers: {Authorization: "Bearer %%ACCESS_TOKEN%%"}
    variables: {ACCESS_TOKEN: access-token-value}
calls:
  - name: orders
    url: "http://127.0.0.1:9/orders"
    token: api-token
    conditions:
      - {source: status, op: eq, value: 200}
    sla: {slow_ms: 800}
workflows:
  - name: flow
    steps: [orders]
schedules:
  - name: hourly
    cron: "0 * * * *"
    timezone: Europe/Paris
    targets: [flow]
"""


async def test_export_apply_export_is_identical_and_keeps_secrets(
    own_daemon: Daemon, tmp_path: Path
) -> None:
    source = tmp_path / "project.yaml"
    source.write_text(ROUND_TRIP)
    code, _out, err = await own_daemon.cli("apply", str(source))
    assert code == 0, err

    exported = tmp_path / "exported.yaml"
    code, out, err = await own_daemon.cli("export", str(exported))
    assert code == 0, err
    first = exported.read_text()
    for secret in (
        "var-secret-value",
        "client-secret-value",
        "hook-secret-path",
        "access-token-value",
    ):
        assert secret not in first
    assert MASK in first

    code, out, err = await own_daemon.cli("apply", str(exported))
    assert code == 0, err
    assert "nothing changed" in out, out

    code, second, err = await own_daemon.cli("export")
    assert code == 0, err
    assert second == first

    async with own_daemon.client() as client:
        variable = await client.get("variables", "PASSWORD", reveal=True)
        assert variable.value == "var-secret-value"  # type: ignore[attr-defined]
        auth = await client.get("auth", "api", reveal=True)
        assert auth.client_secret == "client-secret-value"  # type: ignore[attr-defined]
        assert auth.webhooks[0].url == "http://127.0.0.1:9/hook-secret-path"  # type: ignore[attr-defined]
        token = await client.get("tokens", "api-token", reveal=True)
        assert token.variables == {"ACCESS_TOKEN": "access-token-value"}  # type: ignore[attr-defined]

    code, clear, err = await own_daemon.cli("export", "--secrets")
    assert code == 0, err
    document = YAML(typ="safe").load(clear)
    assert document["variables"]["PASSWORD"] == {"value": "var-secret-value", "secret": True}
    assert document["auth"][0]["client_secret"] == "client-secret-value"
