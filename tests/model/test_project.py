"""The project document: the SPEC example, names, references and loops across resources."""

from __future__ import annotations

from typing import Any

import pytest

from apimd.model import Project, ValidationFailed, check_project
from apimd.model.loader import load_project_file, validate_project_data
from tests.model.conftest import DATA, LoadIssues

SPEC_ENV = {
    "EXAMPLE_API_KEY": "example-api-key-123",
    "EXAMPLE_CLIENT_SECRET": "example-client-secret",
    "SLACK_WEBHOOK": "https://hooks.slack.example/T000/B000/XXXX",
}


def test_spec_example_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in SPEC_ENV.items():
        monkeypatch.setenv(name, value)
    project = load_project_file(DATA / "spec_example.yaml")

    assert project.variables["OP"].value == "https://login.example.com"
    assert project.variables["API_KEY"].value == "example-api-key-123"
    assert project.variables["API_KEY"].secret is True
    (auth,) = project.auth
    assert auth.type == "manual"
    assert auth.client_secret == "example-client-secret"
    assert auth.refresh_workflow == "refresh-example"
    assert auth.webhooks[0].url == SPEC_ENV["SLACK_WEBHOOK"]
    assert auth.webhooks[0].alerts == ["NEEDS_SIGN_IN", "ERROR"]
    assert project.token("example-token") is not None
    get_token = project.call("get-token")
    assert get_token is not None
    assert get_token.method == "POST"
    assert get_token.form == {
        "grant_type": "client_credentials",
        "client_id": "%%CLIENT_ID%%",
        "client_secret": "%%CLIENT_SECRET%%",
    }
    assert [c.save_as for c in get_token.conditions] == [None, "ACCESS_TOKEN", "EXPIRES_IN"]
    assert get_token.webhooks[0].effective_alerts() == ["PASS", "SLOW"]
    list_orders = project.call("list-orders")
    assert list_orders is not None
    assert list_orders.method == "GET"
    assert list_orders.sla is not None
    assert list_orders.sla.fail_ms == 5000
    assert list_orders.webhooks[0].fails_in_a_row == 3
    assert project.schedules[0].every_seconds == 60
    assert check_project(project) == []


def test_spec_example_without_its_env_names_every_missing_variable() -> None:
    with pytest.raises(ValidationFailed) as failed:
        load_project_file(DATA / "spec_example.yaml", environ={})
    assert [(i.line, i.message) for i in failed.value.issues] == [
        (4, "environment variable EXAMPLE_API_KEY is not set"),
        (9, "environment variable EXAMPLE_CLIENT_SECRET is not set"),
        (12, "environment variable SLACK_WEBHOOK is not set"),
        (37, "environment variable SLACK_WEBHOOK is not set"),
    ]


# --- names -------------------------------------------------------------------------------------


def test_calls_and_workflows_share_one_namespace(issues: LoadIssues) -> None:
    (issue,) = issues(
        """\
        calls:
          - {name: orders, url: https://example.com}
        workflows:
          - {name: orders, steps: [orders]}
        """
    )
    assert issue.field == "workflows[0].name"
    assert issue.line == 4
    assert issue.resource == "workflow 'orders'"
    assert issue.message == (
        "duplicate name 'orders': already used by call 'orders'"
        " (calls and workflows share one namespace)"
    )


def test_duplicate_names_within_a_kind(issues: LoadIssues) -> None:
    found = issues(
        """\
        auth:
          - {name: a}
          - {name: a}
        tokens:
          - {name: t, auth: a}
          - {name: t, auth: a}
        schedules:
          - {name: s, every: 1m, targets: [c]}
          - {name: s, every: 2m, targets: [c]}
        calls:
          - {name: c, url: u}
        """
    )
    assert [(i.field, i.line) for i in found] == [
        ("auth[1].name", 3),
        ("tokens[1].name", 6),
        ("schedules[1].name", 9),
    ]


def test_same_name_in_different_kinds_is_fine() -> None:
    project = validate_project_data(
        {
            "auth": [{"name": "x"}],
            "tokens": [{"name": "x", "auth": "x"}],
            "calls": [{"name": "x", "url": "u"}],
            "schedules": [{"name": "x", "every": "1m", "targets": ["x"]}],
        },
        environ={},
    )
    assert check_project(project) == []


# --- references --------------------------------------------------------------------------------

BASE: dict[str, Any] = {
    "auth": [{"name": "a", "type": "manual"}],
    "tokens": [{"name": "t", "auth": "a"}],
    "calls": [{"name": "c", "url": "https://example.com"}],
    "workflows": [{"name": "w", "steps": ["c"]}],
}


def with_changes(kind: str, **fields: Any) -> dict[str, Any]:
    doc = {k: [dict(item) for item in v] for k, v in BASE.items()}
    doc.setdefault(kind, [{}])[0].update(fields)
    return doc


@pytest.mark.parametrize(
    ("kind", "fields", "field", "message"),
    [
        ("calls", {"auth": "nope"}, "calls[0].auth", "unknown auth 'nope'"),
        ("calls", {"token": "nope"}, "calls[0].token", "unknown token 'nope'"),
        ("tokens", {"auth": "nope"}, "tokens[0].auth", "unknown auth 'nope'"),
        (
            "auth",
            {"refresh_workflow": "nope"},
            "auth[0].refresh_workflow",
            "unknown workflow 'nope'",
        ),
        (
            "auth",
            {"signin_workflow": "nope"},
            "auth[0].signin_workflow",
            "unknown workflow 'nope'",
        ),
        ("auth", {"callback": {"call": "nope"}}, "auth[0].callback.call", "unknown call 'nope'"),
        (
            "auth",
            {"callback": {"workflow": "nope"}},
            "auth[0].callback.workflow",
            "unknown workflow 'nope'",
        ),
        ("workflows", {"steps": ["c", "nope"]}, "workflows[0].steps[1]", "unknown call 'nope'"),
        (
            "schedules",
            {"name": "s", "every": "1m", "targets": ["c", "nope"]},
            "schedules[0].targets[1]",
            "unknown call or workflow 'nope'",
        ),
        (
            "calls",
            {"webhooks": [{"type": "save_auth_token", "token": "nope"}]},
            "calls[0].webhooks[0].token",
            "unknown token 'nope'",
        ),
        (
            "calls",
            {"webhooks": [{"type": "run_call", "call": "nope"}]},
            "calls[0].webhooks[0].call",
            "unknown call 'nope'",
        ),
        (
            "calls",
            {"webhooks": [{"type": "run_workflow", "workflow": "nope"}]},
            "calls[0].webhooks[0].workflow",
            "unknown workflow 'nope'",
        ),
    ],
)
def test_unknown_references(kind: str, fields: dict[str, Any], field: str, message: str) -> None:
    with pytest.raises(ValidationFailed) as failed:
        validate_project_data(with_changes(kind, **fields), environ={})
    (issue,) = failed.value.issues
    assert (issue.field, issue.message) == (field, message)
    assert issue.resource is not None


def test_known_references_pass() -> None:
    doc = with_changes(
        "auth",
        refresh_workflow="w",
        signin_workflow="w",
        callback={"workflow": "w"},
    )
    doc["calls"][0] |= {
        "auth": "a",
        "token": "t",
        "webhooks": [{"type": "save_auth_token", "token": "t"}],
    }
    doc["schedules"] = [{"name": "s", "every": "1m", "targets": ["c", "w"]}]
    assert check_project(validate_project_data(doc, environ={})) == []


def test_a_workflow_as_a_step_is_an_error_with_a_hint() -> None:
    doc = with_changes("workflows")
    doc["workflows"].append({"name": "outer", "steps": ["w"]})
    with pytest.raises(ValidationFailed) as failed:
        validate_project_data(doc, environ={})
    (issue,) = failed.value.issues
    assert issue.field == "workflows[1].steps[0]"
    assert issue.message == "unknown call 'w' (steps are calls, not workflows)"
    assert issue.resource == "workflow 'outer'"


# --- loops -------------------------------------------------------------------------------------


def test_run_webhook_loop_through_a_workflow_is_an_error(issues: LoadIssues) -> None:
    (issue,) = issues(
        """\
        calls:
          - name: check
            url: https://example.com
          - name: notify
            url: https://example.com
            webhooks:
              - {type: run_workflow, workflow: nightly}
        workflows:
          - {name: nightly, steps: [check, notify]}
        """
    )
    assert "webhooks form a loop" in issue.message
    assert "notify → nightly → notify" in issue.message
    assert issue.field == "calls[1].webhooks[0].workflow"
    assert issue.resource == "call 'notify'"
    assert issue.line == 7


def test_run_call_chain_loop_is_an_error() -> None:
    doc = {
        "calls": [
            {"name": "a", "url": "u", "webhooks": [{"type": "run_call", "call": "b"}]},
            {"name": "b", "url": "u", "webhooks": [{"type": "run_call", "call": "a"}]},
        ]
    }
    with pytest.raises(ValidationFailed, match=r"loop: a → b → a"):
        validate_project_data(doc, environ={})


def test_run_chain_without_a_loop_is_fine() -> None:
    doc = {
        "calls": [
            {"name": "a", "url": "u", "webhooks": [{"type": "run_workflow", "workflow": "w"}]},
            {"name": "b", "url": "u", "webhooks": [{"type": "run_call", "call": "c"}]},
            {"name": "c", "url": "u"},
        ],
        "workflows": [{"name": "w", "steps": ["b", "c"]}],
    }
    assert check_project(validate_project_data(doc, environ={})) == []


def refresh_doc(token_of_b_step: str) -> dict[str, Any]:
    """Token ta's refresh runs a call on `token_of_b_step`; token tb's refresh runs a call on ta."""
    return {
        "auth": [
            {"name": "auth-a", "type": "manual", "refresh_workflow": "refresh-a"},
            {"name": "auth-b", "type": "manual", "refresh_workflow": "refresh-b"},
        ],
        "tokens": [{"name": "ta", "auth": "auth-a"}, {"name": "tb", "auth": "auth-b"}],
        "calls": [
            {"name": "get-a", "url": "u", "token": token_of_b_step},
            {"name": "get-b", "url": "u", "token": "ta"},
        ],
        "workflows": [
            {"name": "refresh-a", "steps": ["get-a"]},
            {"name": "refresh-b", "steps": ["get-b"]},
        ],
    }


def test_refresh_loop_between_tokens_is_an_error() -> None:
    with pytest.raises(ValidationFailed) as failed:
        validate_project_data(refresh_doc("tb"), environ={})
    (issue,) = failed.value.issues
    assert "token refreshes depend on each other in a loop: ta → tb → ta" in issue.message
    assert issue.field == "tokens[0].auth"
    assert issue.resource == "token 'ta'"


def test_a_call_on_the_token_inside_its_own_refresh_is_fine() -> None:
    # refresh-a runs get-a on ta itself; tb's refresh depends on ta, which is no loop.
    project = validate_project_data(refresh_doc("ta"), environ={})
    assert check_project(project) == []


def test_partial_documents_can_skip_the_cross_checks() -> None:
    doc = {"calls": [{"name": "c", "url": "u", "token": "stored-elsewhere"}]}
    project = validate_project_data(doc, environ={}, cross_check=False)
    assert project.calls[0].token == "stored-elsewhere"
    with pytest.raises(ValidationFailed, match="unknown token"):
        validate_project_data(doc, environ={})


def test_check_project_runs_only_when_the_models_validate(issues: LoadIssues) -> None:
    found = issues(
        """\
        calls:
          - {name: c, url: u, token: nope, timeout: soon}
        """
    )
    assert [i.message for i in found] == ["must be a number (got 'soon')"]


def test_project_lookups() -> None:
    project = Project.model_validate(BASE)
    assert project.call("c") is not None
    assert project.call("w") is None
    assert project.workflow("w") is not None
    assert project.auth_setting("a") is not None
    assert project.token("t") is not None
    assert project.token("nope") is None
