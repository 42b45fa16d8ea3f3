"""What the demo authorization server has issued and remembers, and the switches tests flip.

The grant rules live here (codes bound to client, redirect URI and PKCE challenge; device codes
polled per RFC 8628); the handlers in `oauth` only turn HTTP into these calls and back.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from aiohttp import web

from apimd.demo.fapi import FapiState

# RFC 8628 §6.1: no vowels (so no words) and nothing easily confused, like 0/O or 1/I.
USER_CODE_ALPHABET = "BCDFGHJKLMNPQRSTVWXZ"
# RFC 7636 §4.1: 43 to 128 unreserved characters.
_VERIFIER = re.compile(r"^[A-Za-z0-9._~-]{43,128}$")
# A client that sleeps exactly `interval` may be measured a hair short (timer granularity).
_POLL_SLACK_S = 0.05
SLOW_DOWN_STEP_S = 5


class GrantError(Exception):
    """A token request the server refuses with an OAuth error (RFC 6749 §5.2, RFC 8628 §3.5)."""

    def __init__(self, error: str, description: str | None = None, status: int = 400) -> None:
        super().__init__(error)
        self.error = error
        self.description = description
        self.status = status


@dataclass
class AuthorizationCode:
    """An issued authorization code and what redeeming it must match."""

    client_id: str
    redirect_uri: str
    code_challenge: str | None
    scope: str | None
    expires_at: float
    dpop_jkt: str | None = None  # pushed with a DPoP proof: redeemable only with that key


DeviceStatus = Literal["pending", "approved", "denied"]


@dataclass
class DeviceGrant:
    """One device authorization (RFC 8628) and how its client has polled."""

    device_code: str
    user_code: str
    client_id: str
    scope: str | None
    expires_at: float
    interval: float  # grows by 5 s with every slow_down
    last_poll: float  # the issue time until the first poll
    status: DeviceStatus = "pending"
    polls: int = 0


def normalize_user_code(text: str) -> str:
    """A typed user code compared the forgiving way: case, dashes and spaces ignored."""
    return "".join(ch for ch in text.upper() if ch.isalnum())


def s256(verifier: str) -> str:
    """The PKCE S256 challenge of a verifier (RFC 7636 §4.2), computed independently of apimd's."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


@dataclass
class TokenServerState:
    """What the server issued and how it should behave or misbehave (tests flip these)."""

    client_id: str = "demo-client"
    client_secret: str = "demo-secret"
    username: str = "demo"
    password: str = "demo-password"
    lifetime_s: float = 60.0
    access_tokens: dict[str, float] = field(default_factory=dict)  # token -> expiry (clock)
    refresh_tokens: set[str] = field(default_factory=set)
    token_requests: int = 0
    grants: list[str] = field(default_factory=list)
    api_requests: int = 0
    fail_next: int = 0  # answer the next N token requests with 503
    invalid_grant: bool = False  # answer every token request with invalid_grant
    token_delay_s: float = 0.0
    # Authorization-code flow.
    fragment_response: bool = False  # answer in the redirect URI's fragment, not its query
    send_iss: bool = False  # add `iss` to the redirect (RFC 9207)
    issuer: str | None = None  # the `iss` value; None: the origin the request was sent to
    require_pkce: bool = True  # refuse authorization requests without an S256 challenge
    code_lifetime_s: float = 60.0
    codes: dict[str, AuthorizationCode] = field(default_factory=dict)
    used_codes: set[str] = field(default_factory=set)
    pkce_checked: int = 0  # code exchanges whose verifier matched the challenge
    # Device flow.
    device_interval: int = 1
    device_expires_in: int = 300
    force_slow_down: int = 0  # answer the next N device polls with slow_down
    devices: dict[str, DeviceGrant] = field(default_factory=dict)  # by device_code
    clock: Callable[[], float] = field(default=time.monotonic)
    fapi: FapiState = field(default_factory=FapiState)

    # --- tokens ---------------------------------------------------------------------------

    def issue(self, scope: str | None = None, jkt: str | None = None) -> dict[str, object]:
        """New tokens; with `jkt`, a DPoP-bound access token (token_type DPoP)."""
        access = "at-" + secrets.token_urlsafe(16)
        refresh = "rt-" + secrets.token_urlsafe(16)
        self.access_tokens[access] = self.clock() + self.lifetime_s
        if jkt:
            self.fapi.bound_tokens[access] = jkt
        self.refresh_tokens.add(refresh)
        lifetime = (
            int(self.lifetime_s) if self.lifetime_s == int(self.lifetime_s) else self.lifetime_s
        )
        payload: dict[str, object] = {
            "access_token": access,
            "token_type": "DPoP" if jkt else "Bearer",
            "expires_in": lifetime,
            "refresh_token": refresh,
        }
        if scope:
            payload["scope"] = scope
        return payload

    def valid(self, access: str) -> bool:
        expiry = self.access_tokens.get(access)
        return expiry is not None and self.clock() < expiry

    def check_user(self, username: str, password: str) -> bool:
        return hmac.compare_digest(username, self.username) and hmac.compare_digest(
            password, self.password
        )

    # --- authorization codes --------------------------------------------------------------

    def new_code(
        self,
        client_id: str,
        redirect_uri: str,
        code_challenge: str | None,
        scope: str | None,
        dpop_jkt: str | None = None,
    ) -> str:
        """A single-use code bound to the client, the redirect URI, the PKCE challenge and (when
        pushed with a DPoP proof) the DPoP key."""
        code = "ac-" + secrets.token_urlsafe(24)
        expires_at = self.clock() + self.code_lifetime_s
        self.codes[code] = AuthorizationCode(
            client_id, redirect_uri, code_challenge, scope, expires_at, dpop_jkt
        )
        return code

    def exchange_code(
        self,
        client_id: str,
        code: str,
        redirect_uri: str,
        verifier: str | None,
        jkt: str | None = None,
    ) -> dict[str, object]:
        """Tokens for a code, or `GrantError(invalid_grant)` when anything does not match."""
        # Presenting a code uses it up, even when the rest is wrong: no second guess.
        issued = self.codes.pop(code, None)
        if issued is None:
            used = code in self.used_codes
            raise GrantError("invalid_grant", "code already used" if used else "unknown code")
        self.used_codes.add(code)
        if self.clock() >= issued.expires_at:
            raise GrantError("invalid_grant", "code expired")
        if issued.client_id != client_id:
            raise GrantError("invalid_grant", "code was issued to another client")
        if issued.redirect_uri != redirect_uri:
            raise GrantError("invalid_grant", "redirect_uri differs from the authorization request")
        if issued.code_challenge is None:
            # RFC 9700 §2.1.1: a verifier without a challenge is a downgrade attempt.
            if verifier is not None:
                raise GrantError("invalid_grant", "code_verifier sent but no challenge was")
        else:
            if not verifier or not _VERIFIER.match(verifier):
                raise GrantError("invalid_grant", "code_verifier missing or malformed")
            if not hmac.compare_digest(s256(verifier), issued.code_challenge):
                raise GrantError("invalid_grant", "code_verifier does not match the challenge")
            self.pkce_checked += 1
        if issued.dpop_jkt and issued.dpop_jkt != jkt:
            raise GrantError("invalid_grant", "the code is bound to another DPoP key")
        return self.issue(issued.scope, jkt)

    def refresh(self, refresh_token: str, jkt: str | None = None) -> dict[str, object]:
        if refresh_token not in self.refresh_tokens:
            raise GrantError("invalid_grant", "unknown refresh token")
        self.refresh_tokens.discard(refresh_token)  # rotate
        return self.issue(jkt=jkt)

    # --- device flow ----------------------------------------------------------------------

    def start_device(self, client_id: str, scope: str | None) -> DeviceGrant:
        """A new pending device authorization with a fresh device code and user code."""
        letters = "".join(secrets.choice(USER_CODE_ALPHABET) for _ in range(8))
        now = self.clock()
        grant = DeviceGrant(
            device_code="dc-" + secrets.token_urlsafe(24),
            user_code=f"{letters[:4]}-{letters[4:]}",
            client_id=client_id,
            scope=scope,
            expires_at=now + self.device_expires_in,
            interval=self.device_interval,
            last_poll=now,
        )
        self.devices[grant.device_code] = grant
        return grant

    def device_by_user_code(self, user_code: str) -> DeviceGrant | None:
        """The unexpired device authorization a person typed the code of, if any."""
        wanted = normalize_user_code(user_code)
        now = self.clock()
        for grant in self.devices.values():
            if normalize_user_code(grant.user_code) == wanted and now < grant.expires_at:
                return grant
        return None

    def approve_device(self, user_code: str) -> None:
        """Approve a pending device sign-in as its person would (for tests)."""
        self._decide(user_code, "approved")

    def deny_device(self, user_code: str) -> None:
        """Deny a pending device sign-in as its person would (for tests)."""
        self._decide(user_code, "denied")

    def _decide(self, user_code: str, status: DeviceStatus) -> None:
        grant = self.device_by_user_code(user_code)
        if grant is None or grant.status != "pending":
            raise KeyError(f"no pending device sign-in with user code {user_code!r}")
        grant.status = status

    def poll_device(
        self, client_id: str, device_code: str, jkt: str | None = None
    ) -> dict[str, object]:
        """One device-code token request: tokens once approved, else the RFC 8628 §3.5 error."""
        grant = self.devices.get(device_code)
        if grant is None or grant.client_id != client_id:
            raise GrantError("invalid_grant", "unknown device code")
        now = self.clock()
        grant.polls += 1
        if now >= grant.expires_at:
            del self.devices[device_code]
            raise GrantError("expired_token", "the device code expired; start again")
        too_soon = now - grant.last_poll < grant.interval - _POLL_SLACK_S
        grant.last_poll = now
        if too_soon or self.force_slow_down > 0:
            if not too_soon:
                self.force_slow_down -= 1
            grant.interval += SLOW_DOWN_STEP_S
            raise GrantError("slow_down", f"poll at most every {grant.interval:g} s")
        if grant.status == "denied":
            del self.devices[device_code]
            raise GrantError("access_denied", "the person denied the sign-in")
        if grant.status == "pending":
            raise GrantError("authorization_pending", "waiting for the person to approve")
        del self.devices[device_code]  # single use
        return self.issue(grant.scope, jkt)


STATE_KEY = web.AppKey("token_server_state", TokenServerState)
