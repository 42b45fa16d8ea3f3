"""The store depends only on model, engine interfaces, aiosqlite and cryptography (STYLE.md)."""

from __future__ import annotations

import subprocess
import sys

FORBIDDEN = (
    "textual",
    "aiohttp.web",
    "apscheduler",
    "apimd.daemon",
    "apimd.tui",
    "apimd.engine.http",
)


def test_importing_the_store_pulls_in_no_outer_layer() -> None:
    code = (
        "import sys, apimd.store, apimd.model.stats\n"
        f"print(sorted(m for m in sys.modules if m.startswith({FORBIDDEN!r})))"
    )
    output = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert output.strip() == "[]"
