"""The TUI's Import screen: a real Textual app (Pilot) previews what a file will create and
applies the document through the client it was given."""

from __future__ import annotations

from typing import Any

from textual.app import App
from textual.widgets import Button, Input, Static

from apimd.model.loader import validate_project_data
from apimd.tui.screens.importer import ImportScreen
from tests.importers.support import FIXTURES


class _RecordingDaemon:
    """Stands in for the daemon's apply endpoint only; the document is checked by apimd's loader."""

    def __init__(self) -> None:
        self.applied: list[dict[str, Any]] = []

    async def apply(self, project: dict[str, Any]) -> str:
        validate_project_data(project)
        self.applied.append(project)
        return "3 created"


async def test_import_screen_previews_then_applies() -> None:
    daemon = _RecordingDaemon()
    app: App[None] = App()
    async with app.run_test(size=(120, 50)) as pilot:
        await app.push_screen(ImportScreen(daemon))
        await pilot.pause()
        screen = app.screen
        screen.query_one("#source", Input).value = str(FIXTURES / "petstore.yaml")
        await pilot.click("#preview-button")
        await pilot.pause()
        preview = str(screen.query_one("#preview-text", Static).render())
        assert "Will create: 2 variables, 3 calls" in preview
        assert "call showPetById" in preview
        assert "not translated: operation showPetById: path parameter 'petId'" in preview
        assert not screen.query_one("#apply", Button).disabled
        await pilot.click("#apply")
        await pilot.pause(0.2)
        assert [c["name"] for c in daemon.applied[0]["calls"]] == [
            "listPets",
            "createPets",
            "showPetById",
        ]
        assert not isinstance(app.screen, ImportScreen)


async def test_import_screen_says_why_a_file_cannot_be_imported() -> None:
    app: App[None] = App()
    async with app.run_test(size=(120, 50)) as pilot:
        await app.push_screen(ImportScreen(_RecordingDaemon()))
        screen = app.screen
        screen.query_one("#source", Input).value = "/nonexistent/api.yaml"
        await pilot.click("#preview-button")
        await pilot.pause()
        assert "Cannot read '/nonexistent/api.yaml'" in str(
            screen.query_one("#preview-text", Static).render()
        )
        assert screen.query_one("#apply", Button).disabled
