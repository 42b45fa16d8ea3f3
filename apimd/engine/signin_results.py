"""What a sign-in gives back (SPEC §5): that it started and how to continue, or how it ended."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from apimd.model.events import SignInEnded
from apimd.model.resources import AuthSetting
from apimd.model.result import Result
from apimd.model.runtime import TokenRuntime


class SignInError(Exception):
    """A sign-in could not start or finish; `refused` means the state matched nothing (HTTP 400)."""

    def __init__(self, message: str, *, refused: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.refused = refused


@dataclass
class SignInStarted:
    """What a person needs to continue: the URL to open (or the device code to enter)."""

    id: str
    url: str
    token: str | None
    expires_at: datetime
    result: Result | None = None
    user_code: str | None = None
    verification_uri: str | None = None


@dataclass
class SignInDone:
    """How a sign-in ended, in words for the callback page and the TUI."""

    ok: bool
    message: str
    token: str | None = None
    expires_at: datetime | None = None
    result: Result | None = None
    refreshes: bool = False  # the saved token can be refreshed without a person

    def event(self, signin_id: str, token: str | None) -> SignInEnded:
        """The `signin.done` event announcing this end of sign-in `signin_id` for `token`."""
        return SignInEnded(
            id=signin_id,
            token=token,
            ok=self.ok,
            message=self.message,
            expires_at=self.expires_at,
            result_id=self.result.id if self.result else None,
        )


def refreshes_by_itself(auth: AuthSetting | None, runtime: TokenRuntime) -> bool:
    """Whether apimd can renew this token when it expires without a person (SPEC §5): the auth
    has a refresh workflow, or is oauth2 holding a refresh token or using a grant that needs
    nobody."""
    if auth is None:
        return False
    if auth.refresh_workflow:
        return True
    return auth.type == "oauth2" and (
        bool(runtime.variables.get("REFRESH_TOKEN"))
        or auth.grant in ("client_credentials", "password")
    )
