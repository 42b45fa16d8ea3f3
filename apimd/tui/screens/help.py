"""`?`: the keys of the current screen, with the ids to remap them under `[keys]`."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen, Screen
from textual.widgets import DataTable, Static


def help_rows(app: App[None], screen: Screen[object]) -> list[tuple[str, str, str]]:
    """(key, what it does, binding id) for each described binding active on `screen`."""
    rows: dict[str, tuple[str, str, str]] = {}
    for active in screen.active_bindings.values():
        binding = active.binding
        if not binding.description:
            continue
        key = app.get_key_display(binding)
        ident = binding.id or ""
        slot = ident or binding.action
        if slot in rows:
            previous = rows[slot]
            rows[slot] = (f"{previous[0]}/{key}", previous[1], previous[2])
        else:
            rows[slot] = (key, binding.description, ident)
    # Ours (with ids, remappable) first, then the widgets' own navigation keys.
    return sorted(rows.values(), key=lambda row: row[2] == "")


class HelpScreen(ModalScreen[None]):
    """A list of keys over the screen it was opened from."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "dismiss", "Close", id="help.close"),
    ]

    def __init__(self, rows: list[tuple[str, str, str]], settings_file: Path | None) -> None:
        super().__init__()
        self._rows = rows
        self._settings_file = settings_file

    def compose(self) -> ComposeResult:
        with Vertical(id="help-box"):
            yield Static("Keys on this screen", id="help-title")
            table: DataTable[str] = DataTable(id="help-keys", cursor_type="row")
            table.add_columns("key", "action", "id")
            table.add_rows(self._rows)
            yield table
            where = str(self._settings_file) if self._settings_file else "settings.toml"
            yield Static(
                f"Remap a key in {where}:\n"
                '[keys]\n"dashboard.run" = "ctrl+r"    # id = key (comma-separate several)\n'
                "ctrl+p opens every action by name · esc or ? closes",
                id="help-hint",
                markup=False,
            )
