"""Key remapping from the settings file: `[keys]` in `$APIMD_HOME/settings.toml` (else the user
config folder, as for the daemon's settings) maps binding ids to keys,
e.g. `"dashboard.run" = "ctrl+r"`. Bad entries are reported, never fatal."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from textual.binding import Binding, BindingType
from textual.keys import Keys, key_to_character

from apimd.model.settings_file import SettingsError, read_settings_document, settings_file_path

MODIFIERS = frozenset({"ctrl", "shift", "alt", "meta", "super", "hyper"})
_KEY_NAMES = frozenset(key.value for key in Keys)


@dataclass(frozen=True)
class TuiSettings:
    """What the TUI reads from the settings file: the raw `[keys]` table and any read problem."""

    keys: Mapping[str, object] = field(default_factory=dict)
    source: Path | None = None
    problems: tuple[str, ...] = ()


def load_tui_settings(path: Path | None = None) -> TuiSettings:
    """Read the `[keys]` table of `path` (default: the settings file the daemon reads); a missing
    file is fine, a bad one a problem to show."""
    path = path or settings_file_path()
    try:
        data = read_settings_document(path)
    except SettingsError as exc:
        return TuiSettings(source=path, problems=(str(exc),))
    keys = data.get("keys", {})
    if not isinstance(keys, dict):
        return TuiSettings(source=path, problems=(f"{path}: [keys] must be a table",))
    return TuiSettings(keys=keys, source=path)


def binding_ids(bindings: Iterable[BindingType]) -> set[str]:
    return {b.id for b in bindings if isinstance(b, Binding) and b.id}


def valid_key(key: str) -> bool:
    """Whether Textual can bind `key`: `r`, `R`, `ctrl+r`, `f5`, `question_mark`, `?`…"""
    *modifiers, base = key.split("+")
    if any(m not in MODIFIERS for m in modifiers) or not base:
        return False
    if len(base) == 1:
        return base.isprintable()
    return base in _KEY_NAMES or key_to_character(base) is not None


def validate_keymap(
    raw: Mapping[str, object], known_ids: set[str], source: Path | None = None
) -> tuple[dict[str, str], list[str]]:
    """The usable entries of a `[keys]` table, and one message per bad entry."""
    where = f"{source} [keys]" if source else "[keys]"
    keymap: dict[str, str] = {}
    problems: list[str] = []
    for binding_id, value in raw.items():
        if binding_id not in known_ids:
            problems.append(f"{where}: no binding has id {binding_id!r}")
            continue
        if not isinstance(value, str) or not value.strip():
            problems.append(f'{where}: {binding_id} must be a key like "ctrl+r", not {value!r}')
            continue
        keys = [k.strip() for k in value.split(",")]
        bad = [k for k in keys if not valid_key(k)]
        if bad:
            problems.append(f"{where}: {binding_id}: {bad[0]!r} is not a key Textual knows")
            continue
        keymap[binding_id] = ",".join(keys)
    return keymap, problems
