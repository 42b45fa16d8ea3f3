"""The auth-setting editor: the fields of the chosen type (and oauth2 grant) shown, the others
hidden and left out of the save; secrets masked and kept unless retyped."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, get_args

from pydantic import BaseModel
from textual import on
from textual.app import ComposeResult
from textual.widget import Widget
from textual.widgets import Checkbox, Input, Select

from apimd.model.common import secret_field_names
from apimd.model.keys import AssertionAlg
from apimd.model.resources import AuthSetting, AuthType, ClientAuth, Grant
from apimd.tui.editors.base import Document, EditorScreen, dump, without_none
from apimd.tui.editors.fields import (
    Choice,
    Form,
    FormField,
    KeyValueList,
    SecretInput,
    number_or_text,
    number_text,
    split_words,
)
from apimd.tui.editors.items import WebhookTable
from apimd.tui.editors.tls import compose_tls, fill_tls, tls_document
from apimd.tui.widgets.text_input import TextInput

Shown = Callable[[str, str | None], bool]


def _types(*types: str) -> Shown:
    return lambda kind, _grant: kind in types


def _grant(*grants: str) -> Shown:
    return lambda kind, grant: kind == "oauth2" and grant in grants


def _user(kind: str, grant: str | None) -> bool:
    return kind in ("basic", "digest") or (kind == "oauth2" and grant == "password")


def _always(_kind: str, _grant: str | None) -> bool:
    return True


TOKEN_FLOWS = _types("manual", "oauth2")
# Which fields each type (and grant) uses; `type`, `description` and `tags` always show.
SHOWN: dict[str, Shown] = {
    "username": _user,
    "password": _user,
    "key_name": _types("api_key"),
    "key_value": _types("api_key"),
    "in": _types("api_key"),
    "token": _types("bearer"),
    "client_id": TOKEN_FLOWS,
    "client_secret": TOKEN_FLOWS,
    "grant": _types("oauth2"),
    "token_url": _types("oauth2"),
    "authorize_url": _grant("authorization_code"),
    "device_authorization_url": _grant("device_code"),
    "scopes": _types("oauth2"),
    "audience": _types("oauth2"),
    "extra_params": _types("oauth2"),
    "client_auth": _types("oauth2"),
    "client_key": _types("oauth2"),
    "client_key_id": _types("oauth2"),
    "client_assertion_alg": _types("oauth2"),
    "client_assertion_aud": _types("oauth2"),
    "issuer": _types("oauth2"),
    "par_url": _grant("authorization_code"),
    "par": _grant("authorization_code"),
    "dpop": _types("oauth2"),
    "pkce": _grant("authorization_code"),
    "refresh_workflow": TOKEN_FLOWS,
    "signin_workflow": _types("manual"),
    "callback": TOKEN_FLOWS,
    "refresh_on_401": TOKEN_FLOWS,
    "refresh_skew": TOKEN_FLOWS,
    "webhooks": TOKEN_FLOWS,
    "access_key_id": _types("aws_sigv4"),
    "secret_access_key": _types("aws_sigv4"),
    "session_token": _types("aws_sigv4"),
    "region": _types("aws_sigv4"),
    "service": _types("aws_sigv4"),
    "proxy": _always,
}
SECRETS = tuple(secret_field_names(AuthSetting))  # the fields the daemon masks (••••)
PKCE = (("default (on for authorization_code)", "default"), ("on", "on"), ("off", "off"))
PAR = (("default (when the server requires it)", "default"), ("on", "on"), ("off", "off"))
TEXTS = (
    "username",
    "key_name",
    "client_id",
    "token_url",
    "authorize_url",
    "device_authorization_url",
    "audience",
    "issuer",
    "par_url",
    "client_key_id",
    "client_assertion_aud",
    "access_key_id",
    "region",
    "service",
)


class AuthEditor(EditorScreen):
    """Edit (or create) an auth setting."""

    KIND = "auth"
    NOUN = "auth setting"

    def compose_form(self) -> ComposeResult:
        def field(path: str, label: str, control: Widget, note: str = "") -> FormField:
            return FormField(label, control, path=path, note=note, id=f"field-{path}")

        def text(path: str, label: str, note: str = "") -> FormField:
            return field(path, label, TextInput(compact=True, id=f"a-{path}"), note)

        with Form():
            yield from self.compose_name()
            yield field("type", "Type", Choice(get_args(AuthType), id="a-type"))
            yield field("grant", "Grant", Choice(get_args(Grant), id="a-grant"))
            yield text("username", "Username")
            yield text("key_name", "Key name", "the header, query parameter or cookie name")
            yield text("client_id", "Client ID", "exposed to calls as %%CLIENT_ID%%")
            for path, label in (
                ("password", "Password"),
                ("key_value", "Key value"),
                ("token", "Token"),
                ("client_secret", "Client secret"),
            ):
                yield field(path, label, SecretInput(id=f"a-{path}"))
            yield field(
                "client_key",
                "Client key",
                SecretInput(id="a-client_key"),
                "private key for private_key_jwt / jwt_bearer: a JWK (a PEM via apply)",
            )
            yield field("in", "Send key in", Choice(("header", "query", "cookie"), id="a-in"))
            yield text("access_key_id", "Access key ID")
            yield field(
                "secret_access_key", "Secret access key", SecretInput(id="a-secret_access_key")
            )
            yield field("session_token", "Session token", SecretInput(id="a-session_token"))
            yield text("region", "Region", "e.g. eu-west-1")
            yield text("service", "Service", "e.g. execute-api, s3")
            yield field(
                "proxy",
                "Proxy",
                SecretInput(id="a-proxy"),
                "http://, https://, socks5:// URL, or none; empty: the environment's",
            )
            yield text("issuer", "Issuer", "endpoints come from its discovery document")
            yield text("token_url", "Token URL")
            yield text("authorize_url", "Authorize URL")
            yield text("device_authorization_url", "Device auth URL")
            yield text("par_url", "PAR URL", "pushed authorization requests (RFC 9126)")
            yield text("scopes", "Scopes", "space- or comma-separated")
            yield text("audience", "Audience")
            yield field("extra_params", "Extra params", KeyValueList(id="a-extra_params"))
            yield field(
                "client_auth", "Client auth", Choice(get_args(ClientAuth), id="a-client_auth")
            )
            yield text("client_key_id", "Key ID", "the assertion's kid")
            yield field(
                "client_assertion_alg",
                "Assertion alg",
                Choice(get_args(AssertionAlg), blank="— by key type", id="a-client_assertion_alg"),
            )
            yield text("client_assertion_aud", "Assertion aud", "default: issuer, else endpoint")
            yield field("pkce", "PKCE", Choice(PKCE, id="a-pkce"))
            yield field("par", "PAR", Choice(PAR, id="a-par"))
            yield field(
                "dpop",
                "DPoP",
                Checkbox("sender-constrained tokens (RFC 9449)", compact=True, id="a-dpop"),
            )
            yield field(
                "refresh_workflow",
                "Refresh workflow",
                Choice(blank="— none", id="a-refresh_workflow"),
                "how this auth's tokens are refreshed",
            )
            yield field(
                "signin_workflow",
                "Sign-in workflow",
                Choice(blank="— none", id="a-signin_workflow"),
                "an interactive workflow with an apimd:browser step",
            )
            yield field(
                "callback",
                "Callback runs",
                Choice(blank="— none", id="a-callback"),
                "run by /tokens/callback when a sign-in has no steps left",
            )
            yield field(
                "refresh_on_401",
                "On 401",
                Checkbox("refresh the token and retry", compact=True, id="a-refresh_on_401"),
            )
            yield text("refresh_skew", "Refresh skew (s)", "refresh this long before expiry")
            yield from compose_tls("a")
            yield FormField(
                "Webhooks",
                WebhookTable(for_auth=True, id="a-webhooks"),
                path="webhooks",
                stacked=True,
                note="notify (http, slack, apprise) when a token needs sign-in or fails",
                id="field-webhooks",
            )
            yield text("description", "Description")
            yield text("tags", "Tags", "comma-separated")

    async def load_choices(self) -> None:
        names = {
            kind: sorted(str(getattr(m, "name", "")) for m in await self.client.list(kind))
            for kind in ("calls", "workflows")
        }
        for path in ("refresh_workflow", "signin_workflow"):
            self.query_one(f"#a-{path}", Choice).set_choices(names["workflows"])
        self.query_one("#a-callback", Choice).set_choices(
            [(f"call {n}", f"call:{n}") for n in names["calls"]]
            + [(f"workflow {n}", f"workflow:{n}") for n in names["workflows"]]
        )
        self.query_one("#a-webhooks", WebhookTable).choices = names

    async def fill(self, model: BaseModel | None) -> None:
        auth = model if isinstance(model, AuthSetting) else AuthSetting(name="new")
        q = self.query_one
        for path in (
            "type",
            "grant",
            "in",
            "client_auth",
            "client_assertion_alg",
            "refresh_workflow",
            "signin_workflow",
        ):
            q(f"#a-{path}", Choice).choose(getattr(auth, "in_" if path == "in" else path))
        for path in TEXTS:
            q(f"#a-{path}", Input).value = getattr(auth, path) or ""
        q("#a-par", Choice).choose({None: "default", True: "on", False: "off"}[auth.par])
        q("#a-dpop", Checkbox).value = auth.dpop
        q("#a-description", Input).value = auth.description or ""
        for path in SECRETS:
            q(f"#a-{path}", SecretInput).load(getattr(auth, path))
        q("#a-scopes", Input).value = " ".join(auth.scopes)
        q("#a-tags", Input).value = ", ".join(auth.tags)
        q("#a-extra_params", KeyValueList).load(auth.extra_params)
        q("#a-pkce", Choice).choose({None: "default", True: "on", False: "off"}[auth.pkce])
        callback = auth.callback
        if callback is not None:
            target = f"call:{callback.call}" if callback.call else f"workflow:{callback.workflow}"
            q("#a-callback", Choice).choose(target)
        q("#a-refresh_on_401", Checkbox).value = auth.refresh_on_401
        q("#a-refresh_skew", Input).value = number_text(auth.refresh_skew)
        q("#a-webhooks", WebhookTable).load(dump(w) for w in auth.webhooks)
        fill_tls(self, "a", auth.tls)
        self._show_type_fields()

    @on(Select.Changed, "#a-type, #a-grant")
    def _type_changed(self) -> None:
        self._show_type_fields()

    def _kind(self) -> tuple[str, str | None]:
        return (
            self.query_one("#a-type", Choice).chosen or "none",
            self.query_one("#a-grant", Choice).chosen,
        )

    def _show_type_fields(self) -> None:
        kind, grant = self._kind()
        for path, shown in SHOWN.items():
            self.query_one(f"#field-{path}").display = shown(kind, grant)

    def document(self) -> Document:
        q = self.query_one
        kind, grant = self._kind()
        callback = q("#a-callback", Choice).chosen
        pkce = q("#a-pkce", Choice).chosen
        par = q("#a-par", Choice).chosen
        values: dict[str, Any] = {
            "client_assertion_alg": q("#a-client_assertion_alg", Choice).chosen,
            "par": {"on": True, "off": False}.get(par or ""),
            "dpop": q("#a-dpop", Checkbox).value,
            "type": kind,
            "grant": grant,
            "in": q("#a-in", Choice).chosen,
            "client_auth": q("#a-client_auth", Choice).chosen,
            "refresh_workflow": q("#a-refresh_workflow", Choice).chosen,
            "signin_workflow": q("#a-signin_workflow", Choice).chosen,
            "scopes": split_words(q("#a-scopes", Input).value),
            "extra_params": q("#a-extra_params", KeyValueList).as_dict(),
            "pkce": {"on": True, "off": False}.get(pkce or ""),
            "callback": dict([callback.split(":", 1)]) if callback else None,
            "refresh_on_401": q("#a-refresh_on_401", Checkbox).value,
            "refresh_skew": number_or_text(q("#a-refresh_skew", Input).value),
            "webhooks": q("#a-webhooks", WebhookTable).items,
            "tls": tls_document(self, "a", dump(self.original).get("tls")),
        }
        for path in TEXTS:
            values[path] = q(f"#a-{path}", Input).value.strip() or None
        for path in SECRETS:
            values[path] = q(f"#a-{path}", SecretInput).secret
        doc: Document = {
            **dump(self.original),
            **{
                path: value
                for path, value in values.items()
                if SHOWN.get(path, _always)(kind, grant)
            },
            "name": self.target_name,
            "description": q("#a-description", Input).value.strip() or None,
            "tags": split_words(q("#a-tags", Input).value),
        }
        for path, shown in SHOWN.items():
            if not shown(kind, grant):
                doc.pop(path, None)
        return without_none(doc)
