"""The palette's "Import…": a curl command, Postman collection, OpenAPI document or HAR file made
into a project, previewed (what will be created, what was not translated, where secrets went) and
applied through the daemon's apply call."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar, Protocol

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, Input, Select, Static

from apimd.client import ApiError, DaemonUnavailable
from apimd.importers import (
    FORMATS,
    ImportFailed,
    ImportOptions,
    ImportResult,
    detect_format,
    import_text,
    read_source,
)
from apimd.model.api import ApplySummary
from apimd.model.kinds import ResourceKind
from apimd.tui.formatting import screen_text
from apimd.tui.widgets.text_input import TextInput


class Applier(Protocol):
    """The client calls the screen needs (`apimd.client.Client`'s)."""

    async def apply(self, project: dict[str, Any]) -> ApplySummary: ...

    async def export(self, *, secrets: bool = False) -> dict[str, Any]: ...


_NAMED_KINDS = ("auth", "tokens", "calls", "workflows")


def replaced_names(document: dict[str, Any], project: dict[str, Any]) -> list[str]:
    """What applying `document` replaces in the daemon's `project` (its export): each imported
    resource or variable of a name the project has, as `call NAME` / `variable NAME`."""
    replaced: list[str] = []
    for kind in _NAMED_KINDS:
        have = {item.get("name") for item in project.get(kind) or [] if isinstance(item, dict)}
        label = ResourceKind(kind).label
        replaced += [
            f"{label} {item['name']}" for item in document.get(kind, []) if item["name"] in have
        ]
    have_variables = {str(name).upper() for name in project.get("variables") or {}}
    replaced += [
        f"variable {name}"
        for name in document.get("variables") or {}
        if name.upper() in have_variables
    ]
    return replaced


def secret_variables(project: dict[str, Any]) -> set[str]:
    """Upper-cased names of the project's secret variables (its export)."""
    return {
        str(name).upper()
        for name, value in (project.get("variables") or {}).items()
        if isinstance(value, dict) and value.get("secret")
    }


def kept_secret(document: dict[str, Any], secret: set[str]) -> dict[str, Any]:
    """`document` with each variable that replaces a secret one kept secret: an import must not
    turn a secret into plain text (the retest's Postman variable did)."""
    variables = document.get("variables")
    if not variables or not secret:
        return document
    kept: dict[str, Any] = {}
    for name, value in variables.items():
        if name.upper() in secret and not (isinstance(value, dict) and value.get("secret")):
            value = (
                {**value, "secret": True}
                if isinstance(value, dict)
                else {"value": value, "secret": True}
            )
        kept[name] = value
    return {**document, "variables": kept}


SECRETS_NOTE = (
    'Apply stores these secrets in the daemon, encrypted; untick "Store the secrets found" '
    "to leave them out (the daemon must then have each NAME in its own environment)."
)


def preview_text(result: ImportResult) -> str:
    """What the preview shows: the summary, each name to be created, the notes, then the YAML;
    all of it read from the file imported, so its control characters are escaped."""
    doc = result.document
    lines = [f"Will create: {result.summary()}"]
    for kind in ("auth", "tokens", "calls", "workflows"):
        for item in doc.get(kind, []):
            lines.append(f"  {ResourceKind(kind).label} {item['name']}")
    lines += [f"secret: {line}" for line in result.secrets]
    if result.secrets:
        # "set NAME in the environment" is what the command line must do; here there is a choice.
        lines.append(SECRETS_NOTE)
    lines += [f"not translated: {line}" for line in result.untranslated]
    return screen_text("\n".join(lines) + "\n\n" + result.yaml, lines=True)


def applied_text(summary: ApplySummary) -> str:
    """`3 created, 1 updated` from what the daemon's apply says it changed."""
    counts = {
        "created": summary.created,
        "updated": summary.updated,
        "unchanged": summary.unchanged,
    }
    parts = [f"{sum(map(len, names.values()))} {what}" for what, names in counts.items()]
    return ", ".join(p for p in parts if not p.startswith("0 ")) or "nothing changed"


class ImportScreen(ModalScreen[None]):
    """Pick a format and a file, see what it becomes, apply it."""

    DEFAULT_CSS = """
    ImportScreen { align: center middle; }
    ImportScreen > Vertical { width: 90%; height: 90%; border: round $accent; padding: 0 1; }
    ImportScreen #preview { height: 1fr; }
    ImportScreen Horizontal { height: auto; }
    ImportScreen #format { width: 16; }
    ImportScreen #source { width: 1fr; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "dismiss", "Close", id="import.close"),
    ]
    AUTO_FOCUS = "#source"
    """Typing goes to the path (the format is detected unless picked)."""

    def __init__(self, client: Applier | None) -> None:
        super().__init__()
        self.client = client
        self.existing: dict[str, Any] | None = None
        """The daemon's project (its export, secrets masked) as the preview found it."""
        self.result: ImportResult | None = None
        self.source: tuple[str, str, ImportOptions] | None = None
        """(format, text, options) of the preview, imported again with secrets on Apply."""

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static("Import a curl command, Postman collection, OpenAPI document or HAR")
            with Horizontal():
                choices = [("detect", "detect"), *((f, f) for f in FORMATS)]
                yield Select(choices, value="detect", allow_blank=False, id="format")
                yield TextInput(placeholder="path of the file to import", id="source")
            # Each option on a line of its own: beside the buttons they were cut off at the
            # dialog's edge (at 80 columns the second was not shown at all).
            yield Checkbox("Store the secrets found (encrypted)", value=True, id="store-secrets")
            yield Checkbox("HAR: keep recorded cookies", id="keep-cookies")
            with Horizontal():
                yield Button("Preview", id="preview-button")
                yield Button("Apply", id="apply", variant="primary", disabled=True)
            with VerticalScroll(id="preview"):
                yield Static("", id="preview-text", markup=False)

    @on(Input.Submitted, "#source")
    @on(Button.Pressed, "#preview-button")
    def show_preview(self) -> None:
        fmt = str(self.query_one("#format", Select).value)
        path = self.query_one("#source", Input).value.strip()
        self.result = self.source = None
        self.query_one("#apply", Button).disabled = True
        self.query_one("#preview-text", Static).update(screen_text(f"Reading {path}…"))
        options = ImportOptions(keep_cookies=self.query_one("#keep-cookies", Checkbox).value)
        self._load(fmt, path, options)

    @work(thread=True, exclusive=True)
    def _load(self, fmt: str, path: str, options: ImportOptions) -> None:
        # A large OpenAPI document takes seconds to validate: not on the UI's event loop.
        try:
            with Path(path).expanduser().open("rb") as stream:
                source = read_source(stream, "the file")
            found = detect_format(source) if fmt == "detect" else fmt
            if found is None:
                raise ImportFailed("not a curl command, HAR, Postman or OpenAPI: pick the format")
            result = import_text(found, source, options)
            preview = preview_text(result)
        except OSError as exc:
            self.app.call_from_thread(
                self._show, f"Cannot read {path!r}: {exc.strerror or exc}", None
            )
        except ImportFailed as exc:
            self.app.call_from_thread(self._show, f"Cannot import {path!r}: {exc}", None)
        except Exception as exc:
            # Unhandled, a worker's error ends the whole TUI and its traceback shows the file's
            # text (secrets included); the message may quote it too, so only its kind is told.
            why = f"apimd could not preview it ({type(exc).__name__}; the content is not shown)"
            self.app.call_from_thread(self._show, f"Cannot import {path!r}: {why}", None)
        else:
            loaded = (found, source, options, result)
            self.app.call_from_thread(self._show, preview, loaded)

    def _show(self, text: str, loaded: tuple[str, str, ImportOptions, ImportResult] | None) -> None:
        self.query_one("#preview-text", Static).update(screen_text(text, lines=True))
        if loaded is not None:
            fmt, source, options, self.result = loaded
            self.source = (fmt, source, options)
            if self.client is not None:
                self._find_replaced(self.client, self.result, text)
                return  # Apply waits until what it replaces is known and shown
        self.query_one("#apply", Button).disabled = self.result is None or self.client is None

    @work(exclusive=True, group="replaced")
    async def _find_replaced(self, client: Applier, result: ImportResult, text: str) -> None:
        """Say in the preview what Apply replaces (the preview said "Will create" of a call the
        project had, and Apply replaced it whole: its auth, conditions and webhooks gone)."""
        try:
            self.existing = await client.export()
        except (ApiError, DaemonUnavailable) as exc:
            self.existing = None
            text = f"Cannot tell what the import would replace: {exc}\n\n{text}"
        else:
            replaced = replaced_names(result.document, self.existing)
            if replaced:
                lines = [
                    f"Will REPLACE (the project has them; Apply overwrites each whole): "
                    f"{', '.join(replaced)}"
                ]
                kept = secret_variables(self.existing) & {
                    n.upper() for n in result.document.get("variables") or {}
                }
                lines += [f"variable {name} stays secret" for name in sorted(kept)]
                # What follows counts them too: not all of it is created.
                text = "\n".join(lines) + "\n" + text.replace("Will create: ", "In all: ", 1)
        if self.result is not result:
            return  # another file was previewed meanwhile
        self.query_one("#preview-text", Static).update(screen_text(text, lines=True))
        self.query_one("#apply", Button).disabled = self.existing is None

    @on(Button.Pressed, "#apply")
    def apply(self) -> None:
        if self.result is None or self.source is None or self.client is None:
            return
        document = self.result.document
        if self.query_one("#store-secrets", Checkbox).value:
            # The preview never shows them; the daemon stores them as secrets (encrypted, masked).
            fmt, text, options = self.source
            document = import_text(fmt, text, replace(options, secrets=True)).document
        if self.existing is not None:
            document = kept_secret(document, secret_variables(self.existing))
        self._apply(self.client, document)

    @work(exclusive=True)
    async def _apply(self, client: Applier, document: dict[str, Any]) -> None:
        try:
            summary = await client.apply(document)
        except (ApiError, DaemonUnavailable) as exc:
            why = screen_text(f"Import not applied: {exc}", lines=True)
            self.notify(why, severity="error", timeout=10, markup=False)
            return
        self.notify(screen_text(f"Imported: {applied_text(summary)}"), markup=False)
        self.dismiss(None)
