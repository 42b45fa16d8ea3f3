"""Helpers for the model tests: load a project from text and collect its issues."""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

from apimd.model import Issue, Project, ValidationFailed
from apimd.model.loader import load_project_text

DATA = Path(__file__).parent / "data"

LoadIssues = Callable[..., list[Issue]]
Load = Callable[..., Project]


@pytest.fixture
def load() -> Load:
    """Load dedented YAML text as `project.yaml` with an empty environment unless given."""

    def run(text: str, environ: Mapping[str, str] | None = None) -> Project:
        return load_project_text(
            textwrap.dedent(text), filename="project.yaml", environ=environ or {}
        )

    return run


@pytest.fixture
def issues(load: Load) -> LoadIssues:
    """The issues loading dedented YAML text raises (the test fails if it loads)."""

    def run(text: str, environ: Mapping[str, str] | None = None) -> list[Issue]:
        with pytest.raises(ValidationFailed) as failed:
            load(text, environ)
        return failed.value.issues

    return run
