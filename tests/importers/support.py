"""Helpers for importer tests: load an import result with apimd's own loader, run its calls with
the real `apimd run -f`."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any

from apimd.importers import ImportOptions, ImportResult, import_text
from apimd.model.loader import load_project_text
from apimd.model.project import Project

FIXTURES = Path(__file__).parent.parent / "fixtures" / "import"


def env_names(node: Any) -> set[str]:
    """Every `{env: NAME}` the document asks for."""
    if isinstance(node, dict):
        if set(node) <= {"env", "secret"} and "env" in node:
            return {str(node["env"])}
        return set().union(*(env_names(v) for v in node.values())) if node else set()
    if isinstance(node, list):
        return set().union(*(env_names(v) for v in node)) if node else set()
    return set()


def imported(fmt: str, source: str, **options: Any) -> ImportResult:
    """Import a fixture file (or text when `source` is not a fixture name)."""
    is_name = "\n" not in source and len(source) < 100 and (FIXTURES / source).exists()
    text = (FIXTURES / source).read_text(encoding="utf-8") if is_name else source
    return import_text(fmt, text, ImportOptions(**options))


def load(result: ImportResult, environ: dict[str, str] | None = None) -> Project:
    """The result's YAML through apimd's loader, env vars it needs set to placeholders."""
    env = {name: f"value-of-{name.lower()}" for name in env_names(result.document)}
    env.update(environ or {})
    return load_project_text(result.yaml, filename="imported.yaml", environ=env)


async def run_target(
    project_file: Path, name: str, env: dict[str, str], *variables: str
) -> tuple[int, str]:
    """`apimd run NAME -f FILE --var …` in a real process: (exit code, output)."""
    args = [sys.executable, "-m", "apimd", "run", name, "-f", str(project_file)]
    for variable in variables:
        args += ["--var", variable]
    proc = await asyncio.create_subprocess_exec(
        *args,
        env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode or 0, out.decode()
