"""The resource models on their own: names, variables, schedules, conditions, webhooks, auth, calls."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from apimd.model import (
    AuthSetting,
    Call,
    Condition,
    Project,
    Schedule,
    Token,
    VariableSpec,
    Webhook,
    Workflow,
    secret_field_names,
)
from apimd.model.common import format_duration, parse_duration


def error_text(model: type[Any], data: dict[str, Any]) -> str:
    with pytest.raises(ValidationError) as failed:
        model.model_validate(data)
    return str(failed.value)


# --- names and variables -----------------------------------------------------------------------


@pytest.mark.parametrize("name", ["a", "list-orders", "v1.2:get_x", "9lives", "A" * 100])
def test_valid_names(name: str) -> None:
    assert Call(name=name, url="u").name == name


@pytest.mark.parametrize(
    "name", ["", "-lead", "_lead", ".lead", "has space", "slash/y", "é", "A" * 101, "name\n"]
)
def test_invalid_names(name: str) -> None:
    with pytest.raises(ValidationError):
        Call(name=name, url="u")


def test_variable_names_are_upper_cased_everywhere() -> None:
    project = Project.model_validate(
        {
            "variables": {"api_key": "k", "Op": {"value": "x", "secret": True}},
            "tokens": [{"name": "t", "auth": "a", "variables": {"access_token": "v"}}],
            "workflows": [{"name": "w", "steps": ["c"], "variables": {"page": 1}}],
            "calls": [
                {
                    "name": "c",
                    "url": "u",
                    "conditions": [{"source": "json", "path": "a", "save_as": "token"}],
                    "webhooks": [{"type": "save_variables", "names": ["token"]}],
                }
            ],
        }
    )
    assert list(project.variables) == ["API_KEY", "OP"]
    assert project.variables["OP"] == VariableSpec(value="x", secret=True)
    assert project.tokens[0].variables == {"ACCESS_TOKEN": "v"}
    assert project.workflows[0].variables == {"PAGE": "1"}
    assert project.calls[0].conditions[0].save_as == "TOKEN"
    assert project.calls[0].webhooks[0].names == ["TOKEN"]


@pytest.mark.parametrize("name", ["1ABC", "A-B", "A B", "", "A\n"])
def test_invalid_variable_names(name: str) -> None:
    with pytest.raises(ValidationError, match="is not a variable name"):
        Project.model_validate({"variables": {name: "x"}})


@pytest.mark.parametrize("model", [Token, Workflow])
def test_variable_names_that_differ_in_case_collide(model: type[Any]) -> None:
    data: dict[str, Any] = {"name": "n", "variables": {"Page": "1", "PAGE": "2"}}
    data |= {"auth": "a"} if model is Token else {"steps": ["c"]}
    assert "`Page` and `PAGE` are the same variable" in error_text(model, data)


def test_variable_spec_accepts_plain_scalars() -> None:
    assert VariableSpec.model_validate(8080) == VariableSpec(value="8080")
    assert VariableSpec.model_validate(True) == VariableSpec(value="true")
    assert VariableSpec.model_validate({"value": "s", "secret": True}).secret is True


# --- durations and schedules -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("5m", 300), ("1h", 3600), ("2d", 172800), ("250ms", 0.25), ("45", 45), (90, 90)],
)
def test_parse_duration(text: str | int, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["soon", "5 minutes", "", True, [1], {"s": 1}, None, float("inf")])
def test_parse_duration_refuses_with_value_error_only(bad: Any) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(bad)


def test_format_duration() -> None:
    assert [format_duration(s) for s in (90, 300, 7200, 86400, 0.5)] == [
        "90s",
        "5m",
        "2h",
        "1d",
        "0.5s",
    ]


def test_schedule_every() -> None:
    schedule = Schedule(name="s", every="5m", targets=["c"])
    assert schedule.every_seconds == 300
    assert Schedule.model_validate({"name": "s", "every": 90, "targets": ["c"]}).every == "90s"
    assert "at least 1s" in error_text(Schedule, {"name": "s", "every": "500ms", "targets": ["c"]})
    assert "duration" in error_text(Schedule, {"name": "s", "every": [1], "targets": ["c"]})


def test_schedule_cron_and_timezone() -> None:
    schedule = Schedule(
        name="s", cron="*/5 9-17 * * MON-FRI", timezone="Europe/Paris", targets=["c"]
    )
    assert schedule.every_seconds is None
    assert "5 fields" in error_text(Schedule, {"name": "s", "cron": "* * *", "targets": ["c"]})
    assert "invalid cron" in error_text(
        Schedule, {"name": "s", "cron": "61 * * * *", "targets": ["c"]}
    )
    for zone in ("Mars/Base", "../etc", "/etc/passwd", ""):
        text = error_text(
            Schedule, {"name": "s", "every": "1m", "timezone": zone, "targets": ["c"]}
        )
        assert "unknown time zone" in text


def test_schedule_needs_exactly_one_trigger_and_a_target() -> None:
    both = {"name": "s", "every": "1m", "cron": "* * * * *", "targets": ["c"]}
    assert "exactly one of `every` or `cron`" in error_text(Schedule, both)
    assert "exactly one of `every` or `cron`" in error_text(
        Schedule, {"name": "s", "targets": ["c"]}
    )
    assert "at least 1 item" in error_text(Schedule, {"name": "s", "every": "1m", "targets": []})


# --- conditions --------------------------------------------------------------------------------


def test_condition_needs_op_or_save_as() -> None:
    assert "needs `op`" in error_text(Condition, {"source": "status"})
    assert Condition(source="status", op="eq", value=200).save_as is None
    extract = Condition(source="json", path="$.token", save_as="token")
    assert extract.op is None
    assert extract.save_as == "TOKEN"


def test_condition_path_and_value_rules() -> None:
    for source in ("header", "json", "xml"):
        assert "needs `path`" in error_text(Condition, {"source": source, "op": "exists"})
    assert "needs `value`" in error_text(Condition, {"source": "status", "op": "eq"})
    assert Condition(source="body", op="exists").path is None
    assert Condition(source="status", op="eq", value=200).on_fail == "fail"
    assert "'fail' or 'warning'" in error_text(
        Condition, {"source": "status", "op": "exists", "on_fail": "ignore"}
    )


# --- webhooks ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("hook_type", "needs"),
    [
        ("save_auth_token", "token"),
        ("run_call", "call"),
        ("run_workflow", "workflow"),
        ("http", "url"),
        ("slack", "url"),
    ],
)
def test_webhook_required_field_per_type(hook_type: str, needs: str) -> None:
    assert f"a {hook_type} webhook needs `{needs}`" in error_text(Webhook, {"type": hook_type})
    Webhook.model_validate({"type": hook_type, needs: "x"})


def test_save_variables_needs_nothing() -> None:
    assert Webhook(type="save_variables").names is None


@pytest.mark.parametrize(
    ("hook", "alerts"),
    [
        ({"type": "save_auth_token", "token": "t"}, ["PASS", "SLOW"]),
        ({"type": "save_variables"}, ["PASS", "SLOW"]),
        ({"type": "run_call", "call": "c"}, ["PASS", "SLOW"]),
        ({"type": "run_workflow", "workflow": "w"}, ["PASS", "SLOW"]),
        ({"type": "http", "url": "https://h"}, ["WARNING", "FAIL"]),
        ({"type": "slack", "url": "https://h"}, ["WARNING", "FAIL"]),
        ({"type": "slack", "url": "https://h", "alerts": ["fail"]}, ["FAIL"]),
    ],
)
def test_webhook_default_alerts(hook: dict[str, Any], alerts: list[str]) -> None:
    parsed = Webhook.model_validate(hook)
    assert parsed.effective_alerts() == alerts
    assert parsed.fails_in_a_row == 1
    assert parsed.resolved is False


def test_webhook_alerts_must_be_known() -> None:
    assert "unknown alert 'BROKEN'" in error_text(
        Webhook, {"type": "slack", "url": "u", "alerts": ["BROKEN"]}
    )


def test_auth_webhooks_alert_on_token_states() -> None:
    auth = AuthSetting.model_validate(
        {"name": "a", "webhooks": [{"type": "slack", "url": "https://h"}]}
    )
    assert auth.webhooks[0].effective_alerts() == ["NEEDS_SIGN_IN", "ERROR"]
    bad = {"name": "a", "webhooks": [{"type": "slack", "url": "u", "alerts": ["FAIL"]}]}
    assert "token states NEEDS_SIGN_IN and ERROR" in error_text(AuthSetting, bad)
    state_hook = {"name": "a", "webhooks": [{"type": "run_call", "call": "c"}]}
    assert "notify only" in error_text(AuthSetting, state_hook)


def test_call_webhooks_alert_on_outcomes() -> None:
    bad = {
        "name": "c",
        "url": "u",
        "webhooks": [{"type": "slack", "url": "h", "alerts": ["ERROR"]}],
    }
    assert "call webhooks fire on outcomes" in error_text(Call, bad)


# --- auth settings -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "missing"),
    [
        ({"type": "basic"}, "`username`, `password`"),
        ({"type": "basic", "username": "u"}, "`password`"),
        ({"type": "api_key", "key_name": "X-Key"}, "`key_value`"),
        ({"type": "bearer"}, "`token`"),
        ({"type": "oauth2"}, "`grant`, `token_url`, `client_id`"),
        (
            {"type": "oauth2", "grant": "authorization_code", "token_url": "t", "client_id": "c"},
            "`authorize_url`",
        ),
        (
            {"type": "oauth2", "grant": "device_code", "token_url": "t", "client_id": "c"},
            "`device_authorization_url`",
        ),
        (
            {"type": "oauth2", "grant": "password", "token_url": "t", "client_id": "c"},
            "`username`, `password`",
        ),
    ],
)
def test_auth_required_fields_per_type_and_grant(data: dict[str, Any], missing: str) -> None:
    text = error_text(AuthSetting, {"name": "a", **data})
    assert f"a {data['type']} auth needs {missing}" in text


@pytest.mark.parametrize(
    "data",
    [
        {"type": "none"},
        {"type": "manual"},
        {"type": "basic", "username": "u", "password": "p"},
        {"type": "api_key", "key_name": "k", "key_value": "v", "in": "query"},
        {"type": "bearer", "token": "t"},
        {"type": "oauth2", "grant": "client_credentials", "token_url": "t", "client_id": "c"},
    ],
)
def test_complete_auth_settings(data: dict[str, Any]) -> None:
    auth = AuthSetting.model_validate({"name": "a", **data})
    assert auth.type == data["type"]


def test_oauth2_pkce_defaults_to_authorization_code_only() -> None:
    common = {"name": "a", "type": "oauth2", "token_url": "t", "client_id": "c"}
    code = AuthSetting.model_validate(
        common | {"grant": "authorization_code", "authorize_url": "x"}
    )
    assert code.uses_pkce is True
    assert code.client_auth == "basic"
    assert AuthSetting.model_validate(common | {"grant": "client_credentials"}).uses_pkce is False
    no_pkce = common | {"grant": "authorization_code", "authorize_url": "x", "pkce": False}
    assert AuthSetting.model_validate(no_pkce).uses_pkce is False


def test_api_key_in_header_by_default() -> None:
    auth = AuthSetting.model_validate(
        {"name": "a", "type": "api_key", "key_name": "k", "key_value": "v"}
    )
    assert auth.in_ == "header"
    assert auth.model_dump(by_alias=True)["in"] == "header"


def test_secret_fields_are_found_behind_optional() -> None:
    assert secret_field_names(AuthSetting) == [
        "password",
        "key_value",
        "token",
        "client_secret",
        "client_key",
        "secret_access_key",
        "session_token",
        "proxy",
    ]
    assert secret_field_names(Webhook) == ["url"]
    assert secret_field_names(Call) == ["proxy"]


# --- calls -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "proxy", ["http://puser:pä\\ss-SECRET-17@127.0.0.1:1", "http://[::1:3128", "socks5://h:99999"]
)
def test_a_proxy_url_that_does_not_parse_is_refused_without_echoing_it(proxy: str) -> None:
    """Applied, then every run ended "internal error: ValueError" (the retest)."""
    with pytest.raises(ValidationError) as raised:
        Call(name="c", url="https://example.com", proxy=proxy)
    (message,) = [error["msg"] for error in raised.value.errors()]  # what `apply` says
    assert "the proxy URL does not parse" in message
    assert "SECRET-17" not in message and "puser" not in message


@pytest.mark.parametrize("kind", ["http", "slack"])
def test_a_notifier_url_with_credentials_is_refused_at_apply(kind: str) -> None:
    """Applied, then each alert failed 4 times ("the URL carries credentials") and was dropped
    (the retest): refused at apply, without echoing the password."""
    with pytest.raises(ValidationError) as raised:
        Webhook(type=kind, url="https://ann:hook-pw-77@hooks.example/x")
    (message,) = [error["msg"] for error in raised.value.errors()]
    assert "cannot carry credentials" in message and "hook-pw-77" not in message
    Webhook(type=kind, url="https://hooks.example/x?key=%%HOOK_KEY%%")  # a key in the query is fine


def test_call_defaults() -> None:
    call = Call(name="c", url="https://example.com")
    assert (call.method, call.timeout, call.follow_redirects, call.verify_tls, call.keepalive) == (
        "GET",
        30,
        True,
        True,
        False,
    )


def test_method_is_upper_cased() -> None:
    assert Call(name="c", url="u", method="post").method == "POST"
    assert "pattern" in error_text(Call, {"name": "c", "url": "u", "method": "GE T"})


@pytest.mark.parametrize(
    "bodies",
    [
        {"body": "x", "json": {"a": 1}},
        {"body": "x", "form": {"a": "1"}},
        {"json": [1], "form": {"a": "1"}},
        {"form": {"a": "1"}, "multipart": {"a": "1"}},
    ],
)
def test_call_takes_one_body_kind(bodies: dict[str, Any]) -> None:
    assert "at most one of `body`, `json`, `form` and `multipart`" in error_text(
        Call, {"name": "c", "url": "u", **bodies}
    )


def test_each_body_kind_alone_is_fine() -> None:
    assert Call.model_validate({"name": "c", "url": "u", "json": {"a": [1]}}).json_body == {
        "a": [1]
    }
    assert Call.model_validate({"name": "c", "url": "u", "json": False}).json_body is False
    assert Call.model_validate({"name": "c", "url": "u", "form": {"a": 1}}).form == {"a": "1"}
    assert Call.model_validate({"name": "c", "url": "u", "body": "<x/>"}).body == "<x/>"


def test_timeout_bounds() -> None:
    assert "less than or equal to 300" in error_text(
        Call, {"name": "c", "url": "u", "timeout": 301}
    )
    assert "greater than 0" in error_text(Call, {"name": "c", "url": "u", "timeout": 0})


def test_timeout_tag() -> None:
    assert Call(name="c", url="u", tags=["apimd:timeout:5"]).effective_timeout() == 5
    assert Call(name="c", url="u", tags=["APIMD:TIMEOUT:2.5"]).effective_timeout() == 2.5
    assert Call(name="c", url="u", timeout=12).effective_timeout() == 12
    for bad in ("apimd:timeout:soon", "apimd:timeout:0", "apimd:timeout:301"):
        assert "the timeout must be seconds" in error_text(
            Call, {"name": "c", "url": "u", "tags": [bad]}
        )


def test_apimetrics_prefix_is_an_alias() -> None:
    call = Call(
        name="c",
        url="u",
        tags=["apimetrics:workflow_mutex", "apimetrics:timeout:7", "apimetrics:noredirect", "x"],
    )
    assert call.meaning_tags() == {"mutex", "timeout:7", "noredirect"}
    assert call.has_tag("mutex")
    assert call.has_tag("noredirect")
    assert not call.has_tag("browser")
    assert call.effective_timeout() == 7
    assert Call(name="c", url="u", tags=["apimd:browser"]).has_tag("browser")


def test_unknown_fields_are_refused() -> None:
    assert "Extra inputs are not permitted" in error_text(
        Call, {"name": "c", "url": "u", "timout": 1}
    )


def test_token_read_only_fields_are_optional() -> None:
    token = Token(name="t", auth="a")
    assert (token.expires_at, token.state, token.variables) == (None, None, None)
    assert "expires_at" in Token.READ_ONLY_FIELDS


def test_workflow_needs_a_step() -> None:
    assert "at least 1 item" in error_text(Workflow, {"name": "w", "steps": []})
    assert Workflow(name="w", steps=["c"]).stop_on_failure is True
