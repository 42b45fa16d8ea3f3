"""Loading project files: YAML 1.2 (ruamel.yaml) or JSON, `{env: NAME}` values, every error at once
with file, resource, field and line.

STUB — to be implemented.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from apimd.model.project import Project


def load_project_file(path: str | Path, environ: Mapping[str, str] | None = None) -> Project:
    """Read, parse, resolve `{env: NAME}`, validate (models + `check_project`) and return the
    project; on any problem raise `ValidationFailed` holding every issue found."""
    raise NotImplementedError


def load_project_text(
    text: str, *, filename: str = "<project>", environ: Mapping[str, str] | None = None
) -> Project:
    """As `load_project_file`, from text (YAML or JSON)."""
    raise NotImplementedError


def validate_project_data(
    data: Any,
    *,
    filename: str | None = None,
    lines: Any = None,
    environ: Mapping[str, str] | None = None,
) -> Project:
    """Validate already-parsed data (e.g. a REST body); `lines` maps locations to line numbers."""
    raise NotImplementedError
