"""Device sign-ins (RFC 8628, SPEC §5): the code a person enters elsewhere, and the poll in the
background that saves the token once they have."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from apimd.engine.device import DeviceAuthorization, poll_device_token, start_device_authorization
from apimd.engine.errors import SetupError
from apimd.engine.oauth2 import OAuthError, token_variables
from apimd.engine.services import Services
from apimd.engine.signer import generate_key_jwk
from apimd.engine.signin_results import (
    SignInDone,
    SignInError,
    SignInStarted,
    refreshes_by_itself,
)
from apimd.engine.template import Scope
from apimd.model.events import SignInOpened
from apimd.model.resources import AuthSetting
from apimd.model.signin import PendingSignIn

log = logging.getLogger(__name__)


class DeviceSignIn:
    """Starts device sign-ins and keeps their polls until they end or the service closes."""

    def __init__(self, services: Services) -> None:
        self._services = services
        self._polls: set[asyncio.Task[None]] = set()

    async def start(self, token_name: str, auth: AuthSetting) -> SignInStarted:
        """Device sign-in for `token_name` of an oauth2 `device_code` auth: returns the code to
        show; polling goes on in the background and ends with `signin.done`."""
        if auth.type != "oauth2" or auth.grant != "device_code":
            raise SignInError(
                f"auth {auth.name} is not an oauth2 auth with grant device_code; "
                "use a browser sign-in for it"
            )
        scope = self._services.definitions.auth_scope(auth, token_name)
        try:
            device = await start_device_authorization(self._services.http, auth, scope)
        except (OAuthError, SetupError) as exc:
            raise SignInError(f"the device authorization request failed: {exc}") from None
        dpop_key = None
        if auth.dpop:
            dpop_key = await self._services.tokens.dpop_key(token_name, generate_key_jwk)
        now = self._services.now()
        pending = PendingSignIn(
            url=device.verification_uri_complete or device.verification_uri,
            token=token_name,
            auth=auth.name,
            dpop_key=dpop_key,
            data={
                "user_code": device.user_code,
                "verification_uri": device.verification_uri,
                "device": True,
            },
            created_at=now,
            expires_at=now + timedelta(seconds=device.expires_in),
        )
        await self._services.state.create_signin(pending)
        self._services.events(
            SignInOpened(
                id=pending.id,
                url=pending.url,
                token=token_name,
                user_code=device.user_code,
                verification_uri=device.verification_uri,
                expires_at=pending.expires_at,
            )
        )
        task = asyncio.create_task(self._poll(auth, token_name, device, scope, pending))
        self._polls.add(task)
        task.add_done_callback(self._polls.discard)
        return SignInStarted(
            pending.id,
            pending.url,
            token_name,
            pending.expires_at,
            user_code=device.user_code,
            verification_uri=device.verification_uri,
        )

    async def _poll(
        self,
        auth: AuthSetting,
        token_name: str,
        device: DeviceAuthorization,
        scope: Scope,
        pending: PendingSignIn,
    ) -> None:
        try:
            payload = await poll_device_token(
                self._services.http, auth, device, scope, dpop_key=pending.dpop_key
            )
        except OAuthError as exc:
            done = SignInDone(False, f"the device sign-in ended: {exc}", token_name)
        except Exception as exc:  # the poll must end with a signin.done, whatever happens
            log.exception("device sign-in for %s crashed", token_name)
            done = SignInDone(False, f"the device sign-in failed: {type(exc).__name__}", token_name)
        else:
            runtime = await self._services.tokens.save(token_name, token_variables(payload))
            done = SignInDone(
                True,
                f"token {token_name} saved",
                token_name,
                runtime.expires_at,
                refreshes=refreshes_by_itself(auth, runtime),
            )
        await self._services.state.cancel_signin(pending.id)
        self._services.events(done.event(pending.id, token_name))

    async def close(self) -> None:
        """Stop device polls still waiting for a person."""
        for task in list(self._polls):
            task.cancel()
        if self._polls:
            await asyncio.wait(list(self._polls), timeout=5)
