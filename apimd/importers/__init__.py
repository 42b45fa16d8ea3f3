"""Importers (SPEC §12): curl commands, Postman collections, OpenAPI documents and HAR recordings
made into a project document, with what could not be translated and where secrets went.

Used by `apimd import` and the TUI's Import screen; imports only the model, never the engine,
store, daemon or Textual."""

from __future__ import annotations

import json
import re
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Literal

from apimd.importers.builder import ImportFailed, ProjectBuilder, to_yaml

Format = Literal["curl", "postman", "openapi", "har"]
FORMATS: tuple[Format, ...] = ("curl", "postman", "openapi", "har")
MAX_SOURCE_MIB = 128
"""No source is larger (a HAR with every response body stays far below); /dev/zero is refused."""


@dataclass(frozen=True)
class ImportOptions:
    """What `apimd import` takes besides the source."""

    secrets: bool = False
    keep_cookies: bool = False
    environment: str | None = None
    """Text of a Postman environment file (postman only)."""


@dataclass
class ImportResult:
    """The project document, and what the user must be told about it."""

    document: dict[str, Any]
    untranslated: list[str] = field(default_factory=list)
    secrets: list[str] = field(default_factory=list)

    @property
    def yaml(self) -> str:
        return to_yaml(self.document)

    def summary(self) -> str:
        """One line: how many of each kind will be created."""
        kinds = ("variables", "auth", "tokens", "calls", "workflows")
        counts = [
            f"{len(self.document[k])} {k if len(self.document[k]) != 1 else _ONE.get(k, k)}"
            for k in kinds
            if self.document.get(k)
        ]
        return ", ".join(counts) or "nothing"


_ONE = {"variables": "variable", "tokens": "token", "calls": "call", "workflows": "workflow"}


def read_source(stream: BinaryIO, name: str) -> str:
    """The text of a source file (`name` says which in errors): UTF-8, a BOM dropped, at most
    MAX_SOURCE_MIB; ImportFailed otherwise."""
    limit = MAX_SOURCE_MIB * 1024 * 1024
    data = stream.read(limit + 1)
    if len(data) > limit:
        raise ImportFailed(f"{name} is larger than {MAX_SOURCE_MIB} MiB: not imported")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ImportFailed(
            f"{name} is not UTF-8 text (invalid byte at offset {exc.start})"
        ) from None


def detect_format(text: str) -> Format | None:
    """Which format `text` is in, from its content: a curl command, a HAR log, a Postman
    collection, an OpenAPI document; None when it looks like none of them."""
    stripped = text.lstrip()
    if re.match(r"(\$\s*)?curl(\.exe)?\s", stripped):
        return "curl"
    if re.search(r'"log"\s*:\s*\{', stripped[:2000]) and '"entries"' in stripped:
        return "har"
    if "schema.getpostman.com" in stripped[:5000] or '"_postman_id"' in stripped[:5000]:
        return "postman"
    if re.search(r"""^\s*["']?openapi["']?\s*:""", stripped[:5000], re.MULTILINE):
        return "openapi"
    if stripped.startswith("{") and '"openapi"' in stripped:  # JSON on one line: its own key?
        try:
            document = json.loads(stripped)
        except ValueError:
            return None
        if isinstance(document, dict) and "openapi" in document:
            return "openapi"
    return None


def import_text(fmt: str, text: str, options: ImportOptions | None = None) -> ImportResult:
    """Translate `text` in format `fmt`; raises `ImportFailed` when it cannot be read at all."""
    options = options or ImportOptions()
    try:
        return _import(fmt, text, options)
    except RecursionError:
        raise ImportFailed(
            "nested too deeply to read (lists or objects inside each other a thousand levels "
            "deep, or a YAML alias inside itself)"
        ) from None
    except ImportFailed:
        raise
    except Exception as exc:
        # A shape of input no check foresaw. The exception's text may quote the file (a token
        # in a URL, a header): only its kind and where apimd stopped are told.
        raise ImportFailed(
            f"cannot be read as {fmt}: something in it is of a shape the importer does not "
            f"expect ({_failure_site(exc)}; the content is not shown, it may hold secrets)"
        ) from None


def _failure_site(exc: Exception) -> str:
    """`KeyError in openapi.py line 12`: the kind of error and the last place in apimd it passed."""
    ours = str(Path(__file__).parent.parent)
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename.startswith(ours)]
    if not frames:
        return type(exc).__name__
    last = frames[-1]
    return f"{type(exc).__name__} in {Path(last.filename).name} line {last.lineno}"


def _import(fmt: str, text: str, options: ImportOptions) -> ImportResult:
    builder = ProjectBuilder(reveal_secrets=options.secrets)
    if fmt == "curl":
        from apimd.importers.curl import import_curl

        import_curl(text, builder)
    elif fmt == "postman":
        from apimd.importers.postman import import_postman

        import_postman(text, builder, environment=options.environment)
    elif fmt == "openapi":
        from apimd.importers.openapi import import_openapi

        import_openapi(text, builder)
    elif fmt == "har":
        from apimd.importers.har import import_har

        import_har(text, builder, keep_cookies=options.keep_cookies)
    else:
        raise ImportFailed(f"unknown format {fmt!r}: use one of {', '.join(FORMATS)}")
    document = builder.document()
    return ImportResult(document, builder.untranslated, builder.secrets)


__all__ = [
    "FORMATS",
    "ImportFailed",
    "ImportOptions",
    "ImportResult",
    "detect_format",
    "import_text",
    "read_source",
]
