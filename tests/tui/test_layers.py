"""The TUI knows the daemon only through `apimd.client` and the model (STYLE.md "Layers")."""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys

import apimd.tui

FORBIDDEN = ("apimd.engine", "apimd.store", "apimd.daemon", "apimd.settings", "apimd.cli")


def test_the_tui_imports_no_engine_store_daemon_or_settings() -> None:
    modules = [m.name for m in pkgutil.walk_packages(apimd.tui.__path__, "apimd.tui.")]
    code = (
        "import importlib, json, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = set(json.loads(out.stdout))
    bad = sorted(m for m in loaded if any(m == f or m.startswith(f + ".") for f in FORBIDDEN))
    assert not bad, f"apimd.tui pulled in {bad}"
    assert "apimd.tui.app" in loaded and "apimd.client" in loaded
