"""The OAuth 2.0 device authorization grant (RFC 8628) for an `oauth2` auth with
`grant: device_code`: ask for a user code, then poll the token endpoint until the person approves."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from apimd.engine.http import HttpExecutor
from apimd.engine.oauth2 import OAuthError, endpoint_request, token_request
from apimd.engine.template import Scope
from apimd.model.resources import AuthSetting

DEVICE_CODE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
DEFAULT_INTERVAL_S = 5  # RFC 8628 §3.2, when the server names none
MIN_INTERVAL_S = 1  # whatever the server says, never hammer it
SLOW_DOWN_STEP_S = 5  # RFC 8628 §3.5

Sleep = Callable[[float], Awaitable[object]]
Clock = Callable[[], float]


@dataclass(frozen=True)
class DeviceAuthorization:
    """The device authorization response (RFC 8628 §3.2): what the person enters where, and how
    the client polls."""

    device_code: str
    user_code: str
    verification_uri: str
    verification_uri_complete: str | None
    expires_in: int
    interval: int


async def start_device_authorization(
    http: HttpExecutor, auth: AuthSetting, scope: Scope
) -> DeviceAuthorization:
    """Ask the auth's `device_authorization_url` for a device code and a user code; raise
    `OAuthError` when it refuses or answers something unusable."""
    payload = await endpoint_request(
        http, auth, "device_authorization_url", {}, scope, required="device_code"
    )
    # Some servers (Google's, for one) say verification_url.
    verification_uri = payload.get("verification_uri") or payload.get("verification_url")
    user_code = payload.get("user_code")
    if not isinstance(user_code, str) or not isinstance(verification_uri, str):
        raise OAuthError(
            "invalid_response",
            "the device authorization answer lacks user_code or verification_uri",
        )
    complete = payload.get("verification_uri_complete")
    interval = payload.get("interval")
    return DeviceAuthorization(
        device_code=payload["device_code"],
        user_code=user_code,
        verification_uri=verification_uri,
        verification_uri_complete=complete if isinstance(complete, str) else None,
        expires_in=_seconds(payload.get("expires_in"), "expires_in"),
        interval=max(
            MIN_INTERVAL_S,
            DEFAULT_INTERVAL_S if interval is None else _seconds(interval, "interval"),
        ),
    )


async def poll_device_token(
    http: HttpExecutor,
    auth: AuthSetting,
    device: DeviceAuthorization,
    scope: Scope,
    *,
    sleep: Sleep = asyncio.sleep,
    clock: Clock = time.monotonic,
    dpop_key: str | None = None,
) -> dict[str, Any]:
    """Poll the token endpoint (RFC 8628 §3.4–3.5) until it answers tokens, and return them.

    Waits `interval` before every poll; `authorization_pending` polls again, `slow_down` adds 5 s
    to the interval for good, an unreachable server doubles it. Raises `OAuthError` on any other
    error (`access_denied`, `expired_token`, …) and `expired_token` once `expires_in` has passed.
    """
    deadline = clock() + device.expires_in
    interval = float(device.interval)
    params = {"grant_type": DEVICE_CODE_GRANT, "device_code": device.device_code}
    while True:
        await sleep(interval)
        if clock() >= deadline:
            raise OAuthError(
                "expired_token",
                f"nobody approved the sign-in within {device.expires_in} s; start it again",
            )
        try:
            return await token_request(http, auth, params, scope, dpop_key=dpop_key)
        except OAuthError as exc:
            if exc.error == "authorization_pending":
                continue
            if exc.error == "slow_down":
                interval += SLOW_DOWN_STEP_S
                continue
            if exc.error == "unreachable":
                # RFC 8628 §3.5: back off on connection failures rather than give up at once.
                interval *= 2
                continue
            raise


def _seconds(value: object, name: str) -> int:
    """A whole number of seconds from the answer; servers send numbers, a few send strings."""
    if isinstance(value, int | float | str) and not isinstance(value, bool):
        try:
            seconds = float(value)
        except ValueError:
            pass
        else:
            if math.isfinite(seconds) and seconds >= 0:
                return int(seconds)
    raise OAuthError(
        "invalid_response", f"the device authorization answer's {name} is not a number of seconds"
    )
