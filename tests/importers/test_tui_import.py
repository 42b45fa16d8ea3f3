"""The TUI's Import screen: a real Textual app (Pilot) previews what a file will create and
applies the document through the client it was given."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from textual.app import App
from textual.command import CommandPalette
from textual.pilot import Pilot
from textual.screen import Screen
from textual.widgets import Button, Checkbox, Input, Select, Static

from apimd.client import ApiError
from apimd.importers import ImportResult
from apimd.model.api import ApplySummary
from apimd.model.errors import ValidationFailed
from apimd.model.loader import validate_project_data
from apimd.tui.app import build_app
from apimd.tui.keys import TuiSettings
from apimd.tui.screens.importer import ImportScreen
from tests.daemon.conftest import Daemon
from tests.daemon.conftest import daemon as daemon  # the module-scoped daemon fixture
from tests.daemon.conftest import daemon_store as daemon_store  # which store it runs on
from tests.importers.support import FIXTURES
from tests.tui.conftest import notices, wait_for

POSTMAN_V21 = "https://schema.getpostman.com/json/collection/v2.1.0/collection.json"


class _RecordingDaemon:
    """Stands in for the daemon's apply and export endpoints; the document applied is checked by
    apimd's loader."""

    def __init__(self, project: dict[str, Any] | None = None) -> None:
        self.applied: list[dict[str, Any]] = []
        self.project = project or {}
        """What `export` gives: the daemon's project, secrets masked."""

    async def export(self, *, secrets: bool = False) -> dict[str, Any]:
        return self.project

    async def apply(self, project: dict[str, Any]) -> ApplySummary:
        try:
            validate_project_data(project, environ={})
        except ValidationFailed as exc:
            raise ApiError(422, "invalid", str(exc), []) from None
        self.applied.append(project)
        return ApplySummary(created={"calls": [c["name"] for c in project["calls"]]})


async def click_done(pilot: Pilot[None], selector: str) -> None:
    """Click `selector` and wait until the work it started has finished."""
    await pilot.click(selector)
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


def preview_of(screen: Screen[Any]) -> str:
    return str(screen.query_one("#preview-text", Static).render())


async def test_import_screen_previews_then_applies() -> None:
    daemon = _RecordingDaemon()
    app: App[None] = App()
    async with app.run_test(size=(120, 50)) as pilot:
        await app.push_screen(ImportScreen(daemon))
        await pilot.pause()
        screen = app.screen
        screen.query_one("#source", Input).value = str(FIXTURES / "petstore.yaml")
        await click_done(pilot, "#preview-button")
        preview = preview_of(screen)
        assert "Will create: 2 variables, 3 calls" in preview
        assert "call showPetById" in preview
        assert "not translated: operation showPetById: path parameter 'petId'" in preview
        assert not screen.query_one("#apply", Button).disabled
        await click_done(pilot, "#apply")
        assert [c["name"] for c in daemon.applied[0]["calls"]] == [
            "listPets",
            "createPets",
            "showPetById",
        ]
        assert not isinstance(app.screen, ImportScreen)
        assert [n.message for n in app._notifications] == ["Imported: 3 created"]


async def test_import_screen_says_why_a_file_cannot_be_imported() -> None:
    app: App[None] = App()
    async with app.run_test(size=(120, 50)) as pilot:
        await app.push_screen(ImportScreen(_RecordingDaemon()))
        screen = app.screen
        screen.query_one("#source", Input).value = "/nonexistent/api.yaml"
        await click_done(pilot, "#preview-button")
        assert "Cannot read '/nonexistent/api.yaml'" in preview_of(screen)
        assert screen.query_one("#apply", Button).disabled


async def test_secrets_stay_out_of_the_preview_and_reach_the_daemon_only_if_chosen() -> None:
    for store, expected in ((True, "kane"), (False, {"env": "ABHIJIT_PASSWORD"})):
        daemon = _RecordingDaemon()
        app: App[None] = App()
        async with app.run_test(size=(120, 50)) as pilot:
            await app.push_screen(ImportScreen(daemon))
            screen = app.screen
            screen.query_one("#format", Select).value = "postman"
            screen.query_one("#source", Input).value = str(
                FIXTURES / "transformer-helpers-v2.1.0.json"
            )
            screen.query_one("#store-secrets", Checkbox).value = store
            await click_done(pilot, "#preview-button")
            preview = preview_of(screen)
            assert "kane" not in preview and "wkjehbxoqnunc2k3" not in preview
            assert "ABHIJIT_PASSWORD" in preview
            assert 'untick "Store the secrets found" to leave them out' in preview
            await click_done(pilot, "#apply")
        if store:
            assert daemon.applied[0]["auth"][0]["password"] == expected
        else:
            assert daemon.applied == []  # the recording daemon's loader refuses unset env vars


async def test_palette_import_applies_to_the_running_daemon(daemon: Daemon) -> None:
    """The real app on a real daemon: palette → Import… → preview → Apply → the dashboard."""
    app = build_app(daemon.socket_path, settings=TuiSettings())
    # The notice checked below must not expire before the check comes round, however loaded
    # the machine: a test-long timeout for this app's notices (Textual reads it at each notify).
    vars(app)["NOTIFICATION_TIMEOUT"] = 600.0
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("ctrl+p")
        await wait_for(pilot, lambda: isinstance(app.screen, CommandPalette), what="the palette")
        await pilot.press(*"Import")
        await pilot.pause(0.5)
        await pilot.press("enter")
        screen = await wait_for(
            pilot, lambda: isinstance(app.screen, ImportScreen) and app.screen, what="Import…"
        )
        screen.query_one("#source", Input).value = str(FIXTURES / "webhook-example.yaml")
        await pilot.click("#preview-button")
        preview = screen.query_one("#preview-text", Static)
        await wait_for(pilot, lambda: "Will create" in str(preview.render()), what="the preview")
        assert "Will create: 1 variable, 1 call" in str(preview.render())
        await pilot.click("#apply")
        await wait_for(pilot, lambda: not isinstance(app.screen, ImportScreen), what="applied")
        await wait_for(
            pilot, lambda: "Imported: 2 created" in notices(app), what="the 'Imported' notice"
        )
    async with daemon.client() as client:
        assert "listPets" in {getattr(c, "name", "") for c in await client.list("calls")}


async def test_import_screen_keeps_har_cookies_when_asked() -> None:
    for keep, cookie in ((False, None), (True, "{{COOKIE}}")):
        daemon = _RecordingDaemon()
        app: App[None] = App()
        async with app.run_test(size=(120, 50)) as pilot:
            await app.push_screen(ImportScreen(daemon))
            screen = app.screen
            screen.query_one("#source", Input).value = str(
                FIXTURES / "harviewer-firefox47-post-empty.har"
            )
            screen.query_one("#keep-cookies", Checkbox).value = keep
            await click_done(pilot, "#preview-button")
            preview = preview_of(screen)
            assert ("Cookie header dropped" in preview) is not keep
            await click_done(pilot, "#apply")
        assert daemon.applied[0]["calls"][0].get("headers", {}).get("Cookie") == cookie


async def test_the_preview_says_what_apply_replaces_and_a_secret_variable_stays_secret(
    tmp_path: Path,
) -> None:
    """The preview said "Will create: 1 variable, 1 call, 1 workflow" of a call and a secret
    variable the project had; Apply replaced the call whole and made the variable plain text
    (the retest)."""
    collection = {
        "info": {"name": "wf", "schema": POSTMAN_V21},
        "variable": [{"key": "SV", "value": "replaced-plain"}],
        "item": [{"name": "fail-bearer", "request": {"method": "GET", "url": "http://h/x"}}],
    }
    source = tmp_path / "clobber.postman.json"
    source.write_text(json.dumps(collection))
    daemon = _RecordingDaemon(
        {
            "variables": {"SV": {"value": "••••", "secret": True}},
            "calls": [{"name": "fail-bearer", "url": "https://api.example/orders"}],
        }
    )
    app: App[None] = App()
    async with app.run_test(size=(120, 50)) as pilot:
        await app.push_screen(ImportScreen(daemon))
        screen = app.screen
        screen.query_one("#source", Input).value = str(source)
        await click_done(pilot, "#preview-button")
        preview = preview_of(screen)
        assert "Will REPLACE" in preview and "call fail-bearer" in preview.split("\n")[0]
        assert "variable SV" in preview.split("\n")[0]
        assert "variable SV stays secret" in preview
        assert "In all: 1 variable, 1 call, 1 workflow" in preview and "Will create" not in preview
        await click_done(pilot, "#apply")
    assert daemon.applied[0]["variables"]["SV"] == {"value": "replaced-plain", "secret": True}


_BAD_URL_HAR = {
    "log": {
        "entries": [
            {
                "request": {
                    "method": "GET",
                    "url": "http://[::1/x",
                    "headers": [{"name": "Authorization", "value": "Bearer HARLEAK-secret-zzz"}],
                },
                "response": {"status": 200},
            }
        ]
    }
}


async def test_import_screen_shows_a_har_it_cannot_read_in_the_dialog(tmp_path: Path) -> None:
    # An unclosed IPv6 address in the URL ended the whole TUI, its traceback showing the token.
    source = tmp_path / "bad.har"
    source.write_text(json.dumps(_BAD_URL_HAR))
    app: App[None] = App()
    async with app.run_test(size=(120, 50)) as pilot:
        await app.push_screen(ImportScreen(_RecordingDaemon()))
        screen = app.screen
        screen.query_one("#source", Input).value = str(source)
        await click_done(pilot, "#preview-button")
        preview = preview_of(screen)
        assert "Cannot import" in preview and "no entry of the HAR log has a valid" in preview
        assert "HARLEAK" not in preview
        assert screen.query_one("#apply", Button).disabled
        assert app.is_running and app.screen is screen


async def test_import_screen_shows_an_unexpected_failure_without_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No known input fails so; a failing preview stands in for the next one found.
    def failing(result: ImportResult) -> str:
        raise ValueError("Bearer PREVIEWLEAK-secret")

    monkeypatch.setattr("apimd.tui.screens.importer.preview_text", failing)
    app: App[None] = App()
    async with app.run_test(size=(120, 50)) as pilot:
        await app.push_screen(ImportScreen(_RecordingDaemon()))
        screen = app.screen
        screen.query_one("#source", Input).value = str(FIXTURES / "petstore.yaml")
        await click_done(pilot, "#preview-button")
        preview = preview_of(screen)
        assert "Cannot import" in preview and "could not preview it (ValueError" in preview
        assert "PREVIEWLEAK" not in preview
        assert app.is_running and app.screen is screen
