"""apimd/importers may use the model, ruamel.yaml and the OpenAPI libraries, never the engine,
store, daemon, TUI or aiohttp (checked in a fresh interpreter)."""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys

import apimd.importers

FORBIDDEN = ("apimd.engine", "apimd.store", "apimd.daemon", "apimd.tui", "textual", "aiohttp")
MODULES = [m.name for m in pkgutil.walk_packages(apimd.importers.__path__, "apimd.importers.")]


def test_importers_import_only_the_model_and_parsers() -> None:
    code = (
        "import importlib, json, sys\n"
        f"for m in {MODULES!r}: importlib.import_module(m)\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = set(json.loads(out.stdout))
    bad = sorted(m for m in loaded if any(m == f or m.startswith(f + ".") for f in FORBIDDEN))
    assert not bad
    assert set(MODULES) <= loaded
