"""Pretty-printing of response bodies for the viewer: JSON indented, XML re-indented, else as is."""

from __future__ import annotations

import json
from dataclasses import dataclass
from xml.dom import minidom
from xml.parsers.expat import ExpatError

MAX_PRETTY_BYTES = 512 * 1024
"""Larger bodies are shown as they came (stored bodies are capped at 64 KiB anyway)."""


@dataclass(frozen=True)
class PrettyBody:
    """Text to show and the Pygments lexer that highlights it."""

    text: str
    lexer: str


def content_type_of(headers: dict[str, str]) -> str:
    """The media type of a response, lower-case without parameters (`""` when absent)."""
    for name, value in headers.items():
        if name.lower() == "content-type":
            return value.split(";", 1)[0].strip().lower()
    return ""


def pretty_body(body: str | None, content_type: str = "") -> PrettyBody:
    """`body` made readable: JSON by its content type or its look, then XML, else plain text."""
    if not body:
        return PrettyBody("", "text")
    if len(body) > MAX_PRETTY_BYTES:
        return PrettyBody(body, "text")
    stripped = body.lstrip()
    looks_json = "json" in content_type or stripped[:1] in ("{", "[")
    if looks_json:
        try:
            return PrettyBody(json.dumps(json.loads(body), indent=2, ensure_ascii=False), "json")
        except ValueError:
            pass
    looks_xml = "xml" in content_type or stripped.startswith("<?xml")
    if looks_xml or (stripped.startswith("<") and "html" not in content_type):
        pretty = _pretty_xml(body)
        if pretty is not None:
            return PrettyBody(pretty, "xml")
    if "html" in content_type:
        return PrettyBody(body, "html")
    return PrettyBody(body, "text")


def _pretty_xml(body: str) -> str | None:
    # A DTD can declare entities (expansion bombs, external files): show such bodies as they are.
    if "<!DOCTYPE" in body or "<!ENTITY" in body:
        return None
    try:
        document = minidom.parseString(body.encode())
    except (ExpatError, ValueError, UnicodeError):
        return None
    pretty = document.toprettyxml(indent="  ")
    lines = [line for line in pretty.splitlines() if line.strip()]
    if lines and lines[0].startswith("<?xml") and not body.lstrip().startswith("<?xml"):
        lines = lines[1:]
    return "\n".join(lines)
