"""The layer rules of STYLE.md: model, engine and store never pull in Textual, aiohttp.web or
APScheduler; checked in a fresh interpreter so other tests' imports can't hide a violation."""

from __future__ import annotations

import subprocess
import sys

import pytest

FORBIDDEN = ("textual", "aiohttp.web", "apscheduler")


@pytest.mark.parametrize(
    "modules",
    [
        ["apimd.model", "apimd.model.loader"],
        [
            "apimd.engine.runner",
            "apimd.engine.template",
            "apimd.engine.conditions",
            "apimd.engine.http",
            "apimd.engine.oauth2",
            "apimd.engine.redact",
        ],
        ["apimd.store"],
    ],
)
def test_headless_layers_import_no_ui_server_or_scheduler(modules: list[str]) -> None:
    code = (
        "import importlib, json, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = set(__import__("json").loads(out.stdout))
    bad = sorted(m for m in loaded if any(m == f or m.startswith(f + ".") for f in FORBIDDEN))
    assert not bad, f"{modules} imported {bad}"
    assert set(modules) <= loaded
