"""The settings file (`settings.toml`, SPEC §1): where it is and its TOML, for the daemon's
settings (`apimd.settings`) and the TUI's `[keys]` table alike."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path

import platformdirs


class SettingsError(Exception):
    """A setting has a value apimd cannot use; the message names it and its source."""


def settings_file_path(environ: Mapping[str, str] | None = None) -> Path:
    """`settings.toml` under APIMD_HOME, else in the user config folder."""
    env = os.environ if environ is None else environ
    if env.get("APIMD_HOME"):
        return Path(env["APIMD_HOME"]).expanduser().absolute() / "settings.toml"
    return Path(platformdirs.user_config_dir("apimd")) / "settings.toml"


def read_settings_document(path: Path) -> dict[str, object]:
    """The whole document; empty when there is no file, `SettingsError` naming the file when it
    cannot be read or is not TOML."""
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        return {}
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise SettingsError(f"{path}: {exc}") from None
