"""Authorization server metadata from `issuer` (OpenID Connect Discovery, RFC 8414), cached for the
process's life and fetched again after a failure; its `issuer` must equal the configured one."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from apimd.engine.errors import SetupError
from apimd.engine.http import HttpExecutor, HttpFailure, HttpRequest
from apimd.engine.template import Scope, render
from apimd.engine.tls import TlsConfig, resolve_tls
from apimd.model.resources import AuthSetting

_WELL_KNOWN = ("openid-configuration", "oauth-authorization-server")
_ENDPOINT_KEYS = {
    "token_url": "token_endpoint",
    "authorize_url": "authorization_endpoint",
    "device_authorization_url": "device_authorization_endpoint",
    "par_url": "pushed_authorization_request_endpoint",
}
_cache: dict[str, dict[str, Any]] = {}


@dataclass(frozen=True, kw_only=True)
class Endpoints:
    """The endpoints of one auth: its own fields, else its issuer's metadata."""

    issuer: str | None
    token_url: str | None
    authorize_url: str | None
    device_authorization_url: str | None
    par_url: str | None
    require_par: bool = False


async def endpoints(http: HttpExecutor, auth: AuthSetting, scope: Scope) -> Endpoints:
    """The auth's endpoints, rendered; discovery fills the ones it lacks. Raises `SetupError`."""
    where = f"auth {auth.name}"
    own = {
        name: render(value, scope, f"{where} {name}")
        for name in _ENDPOINT_KEYS
        if (value := getattr(auth, name)) is not None
    }
    if not auth.issuer:
        return Endpoints(
            issuer=None,
            token_url=own.get("token_url"),
            authorize_url=own.get("authorize_url"),
            device_authorization_url=own.get("device_authorization_url"),
            par_url=own.get("par_url"),
        )
    issuer = render(auth.issuer, scope, f"{where} issuer")
    metadata = await discover(http, issuer, resolve_tls(None, auth.tls))
    found = {name: own.get(name) or _str(metadata.get(key)) for name, key in _ENDPOINT_KEYS.items()}
    return Endpoints(
        issuer=issuer,
        require_par=metadata.get("require_pushed_authorization_requests") is True,
        **found,
    )


async def discover(http: HttpExecutor, issuer: str, tls: TlsConfig | None = None) -> dict[str, Any]:
    """The metadata document of `issuer` (cached once fetched and checked)."""
    if issuer in _cache:
        return _cache[issuer]
    problems: list[str] = []
    for name in _WELL_KNOWN:
        url = f"{issuer.rstrip('/')}/.well-known/{name}"
        try:
            response = await http.send(
                HttpRequest(
                    "GET", url, headers=[("Accept", "application/json")], timeout=30.0, tls=tls
                )
            )
        except HttpFailure as exc:
            problems.append(f"{url}: {exc.message}")
            continue
        if response.status != 200:
            problems.append(f"{url}: HTTP {response.status}")
            continue
        try:
            metadata = json.loads(response.body)
        except ValueError:
            metadata = None
        if not isinstance(metadata, dict):
            problems.append(f"{url}: not a JSON object")
            continue
        if metadata.get("issuer") != issuer:
            raise SetupError(
                f"discovery at {url} names issuer {metadata.get('issuer')!r}, not {issuer!r}"
            )
        _cache[issuer] = metadata
        return metadata
    raise SetupError("discovery failed: " + "; ".join(problems))


def _str(value: object) -> str | None:
    return value if isinstance(value, str) else None
