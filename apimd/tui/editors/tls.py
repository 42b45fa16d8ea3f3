"""The `tls` section of an editor (SPEC §10): client certificate, key and CA bundle as file paths
(a PEM given inline in a project file is kept as it is), the key's password as a secret, and
certificate verification. A call's fields override its auth's one by one."""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.widgets import Input

from apimd.model.tls import PemFile, TlsSettings
from apimd.tui.editors.base import EditorScreen
from apimd.tui.editors.fields import Choice, FormField, SecretInput
from apimd.tui.widgets.text_input import TextInput

VERIFY = (
    ("default (the auth's, else verify)", "default"),
    ("verify", "true"),
    ("do not verify", "false"),
    ("only the CA bundle", "ca_only"),
)
PEM_FIELDS = (
    ("client_cert", "TLS client cert", "file path of the PEM certificate (mutual TLS)"),
    ("client_key", "TLS client key", "file path of its PEM private key"),
    ("ca_bundle", "TLS CA bundle", "file path of PEM CA certificates to trust"),
)
INLINE_NOTE = "an inline PEM is kept; type a file path to use a file instead"


def compose_tls(prefix: str) -> ComposeResult:
    """The section's fields; controls are `#{prefix}-tls-…`."""
    for name, label, note in PEM_FIELDS:
        yield FormField(
            label,
            TextInput(compact=True, id=f"{prefix}-tls-{name}"),
            path=f"tls.{name}",
            note=note,
            id=f"field-tls-{name}",
        )
    yield FormField(
        "TLS key password",
        SecretInput(id=f"{prefix}-tls-client_key_password"),
        path="tls.client_key_password",
        id="field-tls-client_key_password",
    )
    yield FormField(
        "TLS verify",
        Choice(VERIFY, id=f"{prefix}-tls-verify"),
        path="tls.verify",
        id="field-tls-verify",
    )


def fill_tls(screen: EditorScreen, prefix: str, tls: TlsSettings | None) -> None:
    """Show `tls`: file paths as typed, inline PEMs as a note (kept unless replaced)."""
    q = screen.query_one
    for name, _label, _note in PEM_FIELDS:
        value = getattr(tls, name, None)
        control = q(f"#{prefix}-tls-{name}", Input)
        control.value = value.file if isinstance(value, PemFile) else ""
        control.placeholder = INLINE_NOTE if isinstance(value, str) else ""
    q(f"#{prefix}-tls-client_key_password", SecretInput).load(
        tls.client_key_password if tls else None
    )
    verify = tls.verify if tls else None
    q(f"#{prefix}-tls-verify", Choice).choose("default" if verify is None else str(verify).lower())


def tls_document(screen: EditorScreen, prefix: str, stored: Any) -> dict[str, Any] | None:
    """The `tls` value to save: typed file paths over what is `stored` (its project-file form)."""
    q = screen.query_one
    tls: dict[str, Any] = dict(stored) if isinstance(stored, dict) else {}
    for name, _label, _note in PEM_FIELDS:
        path = q(f"#{prefix}-tls-{name}", Input).value.strip()
        if path:
            tls[name] = {"file": path}
    password = q(f"#{prefix}-tls-client_key_password", SecretInput).secret
    if password is None:
        tls.pop("client_key_password", None)
    else:
        tls["client_key_password"] = password
    verify = q(f"#{prefix}-tls-verify", Choice).chosen
    tls.pop("verify", None)
    if verify in ("true", "false"):
        tls["verify"] = verify == "true"
    elif verify == "ca_only":
        tls["verify"] = "ca_only"
    return tls or None
