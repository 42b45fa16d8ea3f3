"""The layer rules of STYLE.md: model, engine and store never pull in Textual, aiohttp.web or
APScheduler; checked in a fresh interpreter so other tests' imports can't hide a violation."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

FORBIDDEN = ("textual", "aiohttp.web", "apscheduler")
REPO = Path(__file__).resolve().parent.parent


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


def _lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    lint = Path(sys.executable).with_name("lint-imports")
    return subprocess.run(
        [str(lint), "--config", str(root / "pyproject.toml"), "--no-cache"],
        cwd=root,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(root)},
    )


def test_import_contracts_hold() -> None:
    result = _lint_imports(REPO)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("module", "planted"),
    [
        ("apimd/tui/keys.py", "import apimd.engine.template"),
        ("apimd/model/errors.py", "import apimd.store"),
        ("apimd/engine/errors.py", "import textual"),
    ],
)
def test_import_contracts_catch_a_planted_forbidden_import(
    tmp_path: Path, module: str, planted: str
) -> None:
    shutil.copytree(
        REPO / "apimd", tmp_path / "apimd", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    target = tmp_path / module
    target.write_text(target.read_text() + f"\n{planted}  # planted by the test\n")
    result = _lint_imports(tmp_path)
    assert result.returncode != 0
    assert "BROKEN" in result.stdout
