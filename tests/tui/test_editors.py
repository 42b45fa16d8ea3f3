"""The resource editors against a real daemon (the module's `daemon` fixture, conftest.py): what a
person types and saves is what the daemon then serves; secrets survive; the daemon's validation
errors appear at the field they concern; unsaved changes are not lost to a stray esc."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from joserfc.jwk import ECKey
from pydantic import BaseModel
from textual import events
from textual.dom import DOMNode
from textual.pilot import Pilot
from textual.screen import Screen
from textual.widgets import Checkbox, Input, OptionList, SelectionList, Static, TabbedContent

from apimd.client import Client
from apimd.model import AuthSetting, Call, Schedule, Token, Workflow
from apimd.model.common import SECRET_MASK
from apimd.tui.app import ApimdApp
from apimd.tui.editors import (
    AuthEditor,
    CallEditor,
    EditorScreen,
    WorkflowEditor,
    open_editor,
)
from apimd.tui.editors.dialogs import ConditionDialog, ConfirmDiscard, PickDialog
from apimd.tui.editors.fields import Choice, KeyValueList, SecretInput, field_of
from apimd.tui.editors.items import ConditionTable, StepTable
from apimd.tui.editors.paths import named_fields, resource_path
from tests.support.tls import TestCA
from tests.tui.conftest import make_app, screen_of, wait_for
from tests.tui.daemon import Daemon


@pytest.fixture
async def client(daemon: Daemon) -> AsyncIterator[Client]:
    """A second client, to check what the daemon serves after the editor saved."""
    async with Client(daemon.socket_path) as second:
        yield second


async def open_loaded(
    pilot: Pilot[None], kind: str, name: str | None, saved: list[BaseModel] | None = None
) -> Any:
    """Open the editor the way the app will (`open_editor`), and wait until it has loaded."""
    app = pilot.app
    assert isinstance(app, ApimdApp)
    app.animation_level = "none"  # tab underlines slide; Pilot would wait for every slide
    open_editor(app, app.client, kind, name, on_saved=None if saved is None else saved.append)
    editor = await wait_for(
        pilot,
        lambda: isinstance(app.screen, EditorScreen) and app.screen.loaded and app.screen,
        what=f"the {kind} editor to load",
    )
    await pilot.pause(0.05)
    return editor


async def type_into(pilot: Pilot[None], editor: Screen[Any], selector: str, text: str) -> None:
    """Focus a field (its text selected, as a click or tab would) and type over it; longer text
    is pasted, as a terminal delivers a paste (typing it key by key only makes tests slow)."""
    widget = editor.query_one(selector, Input)
    widget.focus()
    widget.select_all()
    if len(text) > 4:
        widget.post_message(events.Paste(text))
        await pilot.pause()
    else:
        await pilot.press(*text) if text else await pilot.press("backspace")


async def save_and_close(pilot: Pilot[None]) -> None:
    """Save the editor with ctrl+s and wait until it has closed."""
    await pilot.press("ctrl+s")
    await wait_for(pilot, lambda: not isinstance(pilot.app.screen, EditorScreen), what="close")


async def saved_auth(client: Client, name: str, *, masked: str) -> AuthSetting:
    """The auth setting `name` as the daemon keeps it (revealed), having checked that its
    `masked` secret is masked when not revealed."""
    shown = await client.get("auth", name)
    assert getattr(shown, masked, None) == SECRET_MASK
    auth = await client.get("auth", name, reveal=True)
    assert isinstance(auth, AuthSetting)
    return auth


def summary(editor: EditorScreen) -> str:
    return str(editor.query_one("#editor-summary", Static).render())


def error_at(editor: Any, selector: str) -> str:
    """The error shown under the field of the control `selector` (empty: none)."""
    field = field_of(editor, selector)
    shown = str(field.query_one(".field-error", Static).render())
    assert shown == "\n".join(field.errors)
    return shown


async def test_editing_a_calls_url_and_saving_changes_what_the_daemon_serves(
    daemon: Daemon, client: Client
) -> None:
    saved: list[BaseModel] = []
    async with make_app(daemon).run_test(size=(80, 24)) as pilot:
        editor = await open_loaded(pilot, "calls", "quiet-call", saved)
        assert str(editor.query_one("#editor-title", Static).render()) == "Edit call quiet-call"
        assert editor.query_one("#url", Input).value.endswith("/api/status")
        new_url = "%%DEMO%%/api/orders?page=2"
        await type_into(pilot, editor, "#url", new_url)
        assert "unsaved changes" in str(editor.query_one("#editor-title", Static).render())
        await save_and_close(pilot)
    call = await client.get("calls", "quiet-call")
    assert isinstance(call, Call)
    assert call.url == new_url
    assert [getattr(m, "url", None) for m in saved] == [new_url]


async def test_a_secret_left_masked_survives_a_save(daemon: Daemon, client: Client) -> None:
    async with make_app(daemon).run_test(size=(80, 24)) as pilot:
        editor = await open_loaded(pilot, "auth", "demo-oauth")
        assert isinstance(editor, AuthEditor)
        secret = editor.query_one("#a-client_secret", SecretInput)
        assert secret.value == "" and secret.password
        assert secret.placeholder.startswith(SECRET_MASK)
        await type_into(pilot, editor, "#a-client_id", "demo-client-2")
        await save_and_close(pilot)
    auth = await saved_auth(client, "demo-oauth", masked="client_secret")
    assert auth.client_id == "demo-client-2"
    assert auth.client_secret == "demo-secret"


async def test_the_daemons_error_shows_at_the_field_and_nothing_is_saved(
    daemon: Daemon, client: Client
) -> None:
    async with make_app(daemon).run_test(size=(80, 24)) as pilot:
        editor = await open_loaded(pilot, "calls", "service-status")
        tabs = editor.query_one(TabbedContent)
        await type_into(pilot, editor, "#description", "checked every hour")
        await type_into(pilot, editor, "#timeout", "999")
        tabs.active = "request"  # the error is on another tab: the editor must go there
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: error_at(editor, "#timeout"), what="the timeout error")
        assert "at most 300" in error_at(editor, "#timeout")
        assert error_at(editor, "#url") == ""
        assert tabs.active == "auth-tab"
        assert tabs.get_tab("auth-tab").label_text == "Auth !"
        assert summary(editor).startswith("Not saved")
        assert "Auth › timeout (s)" in summary(editor)
        assert pilot.app.screen == editor  # (`is` would narrow `editor` to a bare Screen)
        assert editor.focused is editor.query_one("#timeout")
        refused = await client.get("calls", "service-status")
        assert (getattr(refused, "timeout", None), getattr(refused, "description", 0)) == (30, None)
        # Fixing the value clears the marks on the next save, which goes through.
        await type_into(pilot, editor, "#timeout", "12")
        await save_and_close(pilot)
    call = await client.get("calls", "service-status")
    assert isinstance(call, Call)
    assert (call.timeout, call.description) == (12, "checked every hour")


async def test_nothing_is_saved_while_the_daemon_refuses(daemon: Daemon, client: Client) -> None:
    before = await client.get("calls", "checkout-health")
    async with make_app(daemon).run_test(size=(80, 24)) as pilot:
        editor = await open_loaded(pilot, "calls", "checkout-health")
        await type_into(pilot, editor, "#timeout", "999")
        await type_into(pilot, editor, "#url", "%%DEMO%%/api/other")
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: error_at(editor, "#timeout"), what="the timeout error")
    assert await client.get("calls", "checkout-health") == before


async def test_esc_after_an_edit_asks_before_discarding(daemon: Daemon, client: Client) -> None:
    before = await client.get("workflows", "order-flow")
    async with make_app(daemon).run_test(size=(80, 24)) as pilot:
        app = pilot.app
        editor = await open_loaded(pilot, "workflows", "order-flow")
        await pilot.press("escape")  # nothing changed: closes at once
        assert not isinstance(app.screen, EditorScreen)

        editor = await open_loaded(pilot, "workflows", "order-flow")
        await type_into(pilot, editor, "#description", "orders end to end")
        await pilot.press("escape")
        assert isinstance(app.screen, ConfirmDiscard)
        assert "Unsaved changes to workflow order-flow — discard? (y/n)" in str(
            app.screen.query_one(Static).render()
        )
        await pilot.pause()
        # On the screen, not only in the widget: its box showed empty, 6 cells wide (a helper's
        # retest: the text had no width inside the box sized to it).
        shown = " ".join(
            "".join(segment.text for segment in strip)
            for strip in app.screen._compositor.render_strips()  # no public accessor
        )
        assert "discard? (y/n)" in shown, shown
        await pilot.press("n")
        assert app.screen is editor
        assert editor.query_one("#description", Input).value == "orders end to end"
        await pilot.press("escape", "y")
        assert not isinstance(app.screen, (EditorScreen, ConfirmDiscard))
    assert await client.get("workflows", "order-flow") == before


async def test_a_new_condition_round_trips(daemon: Daemon, client: Client) -> None:
    async with make_app(daemon).run_test(size=(80, 24)) as pilot:
        app = pilot.app
        editor = await open_loaded(pilot, "calls", "unreachable")
        await pilot.press("alt+right", "alt+right")
        assert editor.query_one(TabbedContent).active == "conditions-tab"
        table = editor.query_one("#conditions", ConditionTable)
        assert table.table.has_focus
        assert "No conditions yet" in str(table.query_one(".list-empty").render())
        await pilot.press("a")
        dialog = await screen_of(pilot, ConditionDialog)
        dialog.query_one("#cond-value", Input).focus()
        await pilot.press("2", "0", "4")
        await pilot.press("ctrl+s")
        assert app.screen is editor
        assert table.items == [{"source": "status", "op": "eq", "value": 204}]
        assert "eq 204" in str(table.table.get_row_at(0))
        await save_and_close(pilot)
    call = await client.get("calls", "unreachable")
    assert isinstance(call, Call)
    assert [c.model_dump(exclude_defaults=True) for c in call.conditions] == [
        {"source": "status", "op": "eq", "value": 204}
    ]


async def test_a_condition_the_model_refuses_is_explained_in_the_dialog(daemon: Daemon) -> None:
    async with make_app(daemon).run_test(size=(80, 24)) as pilot:
        app = pilot.app
        editor = await open_loaded(pilot, "calls", "quiet-call")
        await pilot.press("alt+right", "alt+right", "a")
        dialog = await screen_of(pilot, ConditionDialog)
        dialog.query_one("#cond-source", Choice).value = "json"
        await pilot.pause()
        await pilot.press("ctrl+s")
        assert app.screen is dialog  # a json condition needs a path: not applied
        assert "needs `path`" in error_at(dialog, "#cond-path")
        await pilot.press("escape")
        assert app.screen is editor
        assert editor.query_one("#conditions", ConditionTable).items == []


async def test_a_workflow_step_added_and_moved_round_trips(daemon: Daemon, client: Client) -> None:
    async with make_app(daemon).run_test(size=(80, 24)) as pilot:
        editor = await open_loaded(pilot, "workflows", "order-flow")
        assert isinstance(editor, WorkflowEditor)
        steps = editor.query_one("#steps", StepTable)
        steps.table.focus()
        await pilot.press("a")
        picker = await screen_of(pilot, PickDialog)
        names = picker.names
        assert "quiet-call" in names and "order-flow" not in names
        picker.query_one(OptionList).highlighted = names.index("quiet-call")
        await pilot.press("enter")
        assert steps.steps == ["service-status", "list-orders", "quiet-call"]
        await pilot.press("shift+up")
        assert steps.steps == ["service-status", "quiet-call", "list-orders"]
        await save_and_close(pilot)
    workflow = await client.get("workflows", "order-flow")
    assert isinstance(workflow, Workflow)
    assert workflow.steps == ["service-status", "quiet-call", "list-orders"]


async def test_a_new_call_with_a_new_schedule(daemon: Daemon, client: Client) -> None:
    async with make_app(daemon).run_test(size=(80, 24)) as pilot:
        editor = await open_loaded(pilot, "calls", None)
        assert isinstance(editor, CallEditor)
        assert str(editor.query_one("#editor-title", Static).render()) == "New call"
        await pilot.press("ctrl+s")  # no name yet: said at the name field, nothing sent
        await wait_for(pilot, lambda: error_at(editor, "#resource-name"))
        assert "give the call a name" in error_at(editor, "#resource-name")
        await type_into(pilot, editor, "#resource-name", "health-probe")
        await type_into(pilot, editor, "#url", "%%DEMO%%/api/status")
        await type_into(pilot, editor, "#new-every", "10m")
        editor.query_one("#schedules", SelectionList).select("hourly")
        await save_and_close(pilot)
    call = await client.get("calls", "health-probe")
    assert getattr(call, "url", None) == "%%DEMO%%/api/status"
    schedule = await client.get("schedules", "health-probe-every-10m")
    assert isinstance(schedule, Schedule)
    assert (schedule.every, schedule.targets) == ("10m", ["health-probe"])
    hourly = await client.get("schedules", "hourly")
    assert getattr(hourly, "targets", None) == ["service-status", "health-probe"]


async def test_a_tokens_saved_variables_change_only_when_asked(
    daemon: Daemon, client: Client
) -> None:
    await client.apply(
        {
            "tokens": [
                {"name": "demo-token", "auth": "demo-oauth", "variables": {"ACCESS_TOKEN": "at-1"}}
            ]
        }
    )
    async with make_app(daemon).run_test(size=(80, 24)) as pilot:
        editor = await open_loaded(pilot, "tokens", "demo-token")
        assert str(editor.query_one("#state", Static).render()).startswith("valid")
        params = editor.query_one("#params", KeyValueList)
        params.rows[-1].key_input.value = "tenant"
        params.rows[-1].value_input.value = "acme"
        await save_and_close(pilot)
        token = await client.get("tokens", "demo-token", reveal=True)
        assert isinstance(token, Token)
        assert (token.params, token.variables) == ({"tenant": "acme"}, {"ACCESS_TOKEN": "at-1"})

        editor = await open_loaded(pilot, "tokens", "demo-token")
        assert not editor.query_one("#variables-field").display
        editor.query_one("#set-variables", Checkbox).value = True
        variables = editor.query_one("#variables", KeyValueList)
        assert [r.pair for r in variables.rows] == [("ACCESS_TOKEN", SECRET_MASK), ("", "")]
        variables.rows[-1].key_input.value = "REFRESH_TOKEN"
        variables.rows[-1].value_input.value = "rt-2"
        await save_and_close(pilot)
    token = await client.get("tokens", "demo-token", reveal=True)
    assert getattr(token, "variables", None) == {"ACCESS_TOKEN": "at-1", "REFRESH_TOKEN": "rt-2"}


def test_error_fields_are_read_relative_to_the_resource() -> None:
    # What the daemon answers a PUT with: the resource as a one-item project document.
    assert resource_path("calls[0].timeout", "calls") == ("timeout",)
    assert resource_path("calls[0].conditions[1].op", "calls") == ("conditions", 1, "op")
    assert resource_path("calls[0]", "calls") == ()
    assert resource_path("variables.API_KEY.value", "variables") == ("value",)
    # Already relative (as the API may answer later): taken as it is.
    assert resource_path("conditions[0].op", "calls") == ("conditions", 0, "op")
    assert resource_path(None, "auth") == ()
    assert named_fields("a basic auth needs `username`, `password`") == ["username", "password"]


def test_every_editor_binding_has_an_id() -> None:
    from apimd.tui.editors import BINDING_CLASSES

    for cls in BINDING_CLASSES:
        assert issubclass(cls, DOMNode), cls
        for binding in cls.BINDINGS:
            assert getattr(binding, "id", None), f"{cls.__name__}: {binding}"


async def test_fapi_fields_round_trip_and_the_client_key_stays_masked(
    daemon: Daemon, client: Client
) -> None:
    key = json.dumps(ECKey.generate_key("P-256").as_dict(private=True))
    async with make_app(daemon).run_test(size=(100, 40)) as pilot:
        editor = await open_loaded(pilot, "auth", "demo-sso")
        assert editor.query_one("#field-client_key").display  # shown for oauth2
        editor.query_one("#a-client_auth", Choice).choose("private_key_jwt")
        await type_into(pilot, editor, "#a-client_key", key)
        await type_into(pilot, editor, "#a-issuer", "https://as.example")
        await type_into(pilot, editor, "#a-client_key_id", "k-1")
        editor.query_one("#a-dpop", Checkbox).value = True
        await save_and_close(pilot)
    auth = await saved_auth(client, "demo-sso", masked="client_key")
    assert (auth.client_auth, auth.client_key, auth.issuer) == (
        "private_key_jwt",
        key,
        "https://as.example",
    )
    assert (auth.client_key_id, auth.dpop) == ("k-1", True)
    # Saved again without retyping: the key is kept.
    async with make_app(daemon).run_test(size=(100, 40)) as pilot:
        editor = await open_loaded(pilot, "auth", "demo-sso")
        assert editor.query_one("#a-client_key", SecretInput).value == ""
        await type_into(pilot, editor, "#a-client_key_id", "k-2")
        await save_and_close(pilot)
    again = await client.get("auth", "demo-sso", reveal=True)
    assert getattr(again, "client_key", None) == key
    assert getattr(again, "client_key_id", None) == "k-2"


async def test_tls_files_password_and_verify_round_trip_and_inline_pems_are_kept(
    daemon: Daemon, client: Client, tmp_path: Any
) -> None:
    ca = TestCA()
    inline = ca.issue("inline-client")
    filed = ca.issue("filed-client", password="pw-for-the-key")
    auth = await client.get("auth", "demo-sso", reveal=True)
    assert isinstance(auth, AuthSetting)
    stored = auth.model_dump(mode="json", by_alias=True, exclude_none=True)
    stored["tls"] = {"client_cert": inline.cert, "client_key": inline.key}
    await client.put("auth", "demo-sso", stored)
    async with make_app(daemon).run_test(size=(100, 40)) as pilot:
        editor = await open_loaded(pilot, "auth", "demo-sso")
        assert editor.query_one("#a-tls-client_cert", Input).placeholder.startswith("an inline")
        await type_into(pilot, editor, "#a-client_id", "demo-client-3")
        await save_and_close(pilot)
    kept = await client.get("auth", "demo-sso", reveal=True)
    assert kept.tls is not None  # type: ignore[attr-defined]
    assert kept.tls.client_key == inline.key  # type: ignore[attr-defined]
    (tmp_path / "c.pem").write_text(filed.cert)
    (tmp_path / "c.key").write_text(filed.key)
    (tmp_path / "ca.pem").write_text(ca.pem)
    async with make_app(daemon).run_test(size=(100, 40)) as pilot:
        editor = await open_loaded(pilot, "auth", "demo-sso")
        await type_into(pilot, editor, "#a-tls-client_cert", str(tmp_path / "c.pem"))
        await type_into(pilot, editor, "#a-tls-client_key", str(tmp_path / "c.key"))
        await type_into(pilot, editor, "#a-tls-ca_bundle", str(tmp_path / "ca.pem"))
        await type_into(pilot, editor, "#a-tls-client_key_password", "pw-for-the-key")
        editor.query_one("#a-tls-verify", Choice).choose("ca_only")
        await save_and_close(pilot)
    saved = await client.get("auth", "demo-sso", reveal=True)
    tls = saved.tls  # type: ignore[attr-defined]
    assert tls.client_cert.file == str(tmp_path / "c.pem")
    assert tls.client_key.file == str(tmp_path / "c.key")
    assert tls.ca_bundle.file == str(tmp_path / "ca.pem")
    assert (tls.client_key_password, tls.verify) == ("pw-for-the-key", "ca_only")
    masked = await client.get("auth", "demo-sso")
    assert masked.tls.client_key_password == SECRET_MASK  # type: ignore[attr-defined]


async def test_a_calls_tls_fields_are_saved(daemon: Daemon, client: Client, tmp_path: Any) -> None:
    (tmp_path / "ca.pem").write_text(TestCA().pem)
    async with make_app(daemon).run_test(size=(100, 40)) as pilot:
        editor = await open_loaded(pilot, "calls", "quiet-call")
        editor.query_one(TabbedContent).active = "auth-tab"
        await pilot.pause()
        await type_into(pilot, editor, "#c-tls-ca_bundle", str(tmp_path / "ca.pem"))
        editor.query_one("#c-tls-verify", Choice).choose("ca_only")
        await save_and_close(pilot)
    call = await client.get("calls", "quiet-call")
    assert isinstance(call, Call)
    assert call.tls is not None
    assert call.tls.verify == "ca_only"
    assert getattr(call.tls.ca_bundle, "file", None) == str(tmp_path / "ca.pem")


async def test_a_new_aws_sigv4_auth_with_a_proxy(daemon: Daemon, client: Client) -> None:
    async with make_app(daemon).run_test(size=(100, 40)) as pilot:
        editor = await open_loaded(pilot, "auth", None)
        assert isinstance(editor, AuthEditor)
        assert not field_of(editor, "#a-region").display
        editor.query_one("#a-type", Choice).choose("aws_sigv4")
        await pilot.pause(0.05)
        assert field_of(editor, "#a-region").display
        assert not field_of(editor, "#a-client_id").display
        await type_into(pilot, editor, "#resource-name", "aws-api")
        for selector, text in (
            ("#a-access_key_id", "AKIDEXAMPLE"),
            ("#a-secret_access_key", "aws-secret-typed"),
            ("#a-region", "eu-west-1"),
            ("#a-service", "execute-api"),
            ("#a-proxy", "socks5h://ann:pw-typed@127.0.0.1:1080"),
        ):
            await type_into(pilot, editor, selector, text)
        await save_and_close(pilot)
    auth = await saved_auth(client, "aws-api", masked="proxy")
    assert (auth.type, auth.access_key_id, auth.region, auth.service) == (
        "aws_sigv4",
        "AKIDEXAMPLE",
        "eu-west-1",
        "execute-api",
    )
    assert auth.secret_access_key == "aws-secret-typed"
    assert auth.proxy == "socks5h://ann:pw-typed@127.0.0.1:1080"


async def test_multipart_parts_and_workflow_cookies_round_trip(
    daemon: Daemon, client: Client
) -> None:
    async with make_app(daemon).run_test(size=(100, 40)) as pilot:
        editor = await open_loaded(pilot, "calls", None)
        assert isinstance(editor, CallEditor)
        await type_into(pilot, editor, "#resource-name", "upload-report")
        await type_into(pilot, editor, "#url", "%%DEMO%%/api/upload")
        editor.query_one("#body-kind", Choice).choose("multipart")
        await pilot.pause(0.05)
        assert field_of(editor, "#multipart").display
        editor.query_one("#multipart", KeyValueList).load({"note": "hi", "doc": "@/tmp/r.csv"})
        await type_into(pilot, editor, "#proxy", "none")
        await save_and_close(pilot)
        editor = await open_loaded(pilot, "workflows", "order-flow")
        cookies = editor.query_one("#cookies", Checkbox)
        assert cookies.value is True
        cookies.value = False
        await save_and_close(pilot)
    call = await client.get("calls", "upload-report", reveal=True)
    assert isinstance(call, Call) and call.multipart is not None
    assert call.multipart["note"] == "hi"
    assert getattr(call.multipart["doc"], "file", None) == "/tmp/r.csv"
    assert call.proxy == "none"
    workflow = await client.get("workflows", "order-flow")
    assert isinstance(workflow, Workflow) and workflow.cookies is False


async def test_a_maintenance_window_created_then_made_one_off(
    daemon: Daemon, client: Client
) -> None:
    from apimd.model.maintenance import MaintenanceWindow
    from apimd.tui.editors import MaintenanceEditor
    from apimd.tui.editors.fields import Choice
    from apimd.tui.editors.schedule import TargetList

    async with make_app(daemon).run_test(size=(100, 40)) as pilot:
        editor = await open_loaded(pilot, "maintenance", None)
        assert isinstance(editor, MaintenanceEditor)
        assert not field_of(editor, "#start").display  # recurring first: start/end hidden
        await type_into(pilot, editor, "#resource-name", "sunday-deploys")
        await type_into(pilot, editor, "#cron", "0 2 * * 0")
        await type_into(pilot, editor, "#duration", "2h")
        await type_into(pilot, editor, "#timezone", "Europe/Paris")
        editor.query_one("#targets", TargetList).select("list-orders")
        await save_and_close(pilot)
        window = await client.get("maintenance", "sunday-deploys")
        assert isinstance(window, MaintenanceWindow)
        assert (window.cron, window.duration, window.timezone, window.targets) == (
            "0 2 * * 0",
            "2h",
            "Europe/Paris",
            ["list-orders"],
        )

        editor = await open_loaded(pilot, "maintenance", "sunday-deploys")
        editor.query_one("#when", Choice).choose("once")
        await pilot.pause()
        assert field_of(editor, "#start").display and not field_of(editor, "#cron").display
        await type_into(pilot, editor, "#start", "2026-12-24T22:00:00Z")
        await type_into(pilot, editor, "#end", "2026-12-24T21:00:00Z")
        await pilot.press("ctrl+s")  # the daemon refuses: said in the editor, which stays
        await wait_for(pilot, lambda: "`end` must be after `start`" in error_at(editor, "#end"))
        await type_into(pilot, editor, "#end", "2026-12-25T02:00:00Z")
        await save_and_close(pilot)
    window = await client.get("maintenance", "sunday-deploys")
    assert isinstance(window, MaintenanceWindow)
    assert (window.cron, window.start, window.targets) == (
        None,
        datetime(2026, 12, 24, 22, tzinfo=UTC),
        ["list-orders"],
    )
    await client.delete("maintenance", "sunday-deploys")


async def test_an_apprise_notifier_with_repeat_every_round_trips(
    daemon: Daemon, client: Client
) -> None:
    from apimd.tui.editors.dialogs import WebhookDialog
    from apimd.tui.editors.fields import Choice
    from apimd.tui.editors.items import WebhookTable

    async with make_app(daemon).run_test(size=(100, 40)) as pilot:
        app = pilot.app
        editor = await open_loaded(pilot, "calls", "quiet-call")
        editor.query_one(TabbedContent).active = "webhooks-tab"
        await pilot.pause()
        table = editor.query_one("#webhooks", WebhookTable)
        table.table.focus()
        await pilot.press("a")
        dialog = await screen_of(pilot, WebhookDialog)
        dialog.query_one("#hook-type", Choice).choose("apprise")
        await pilot.pause()
        assert field_of(dialog, "#hook-repeat").display
        dialog.query_one("#hook-url", SecretInput).focus()
        dialog.query_one("#hook-url", SecretInput).post_message(
            events.Paste("ntfy://ntfy.example/alerts-secret-topic")
        )
        await type_into(pilot, dialog, "#hook-repeat", "30m")
        await pilot.press("ctrl+s")
        assert app.screen is editor
        await save_and_close(pilot)
    call = await client.get("calls", "quiet-call")
    assert isinstance(call, Call)
    hook = call.webhooks[0]
    assert (hook.type, hook.repeat_every, hook.url) == ("apprise", "30m", SECRET_MASK)
    revealed = await client.get("calls", "quiet-call", reveal=True)
    assert isinstance(revealed, Call)
    assert revealed.webhooks[0].url == "ntfy://ntfy.example/alerts-secret-topic"
    await client.put("calls", "quiet-call", revealed.model_copy(update={"webhooks": []}))
