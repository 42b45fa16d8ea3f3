"""Token state: when a token is due, single-flight refresh, saving variables, backoff (SPEC §5)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from apimd.engine.events import EventSink
from apimd.engine.ports import TokenRepository
from apimd.model.events import TokenSaved, TokenStateChanged
from apimd.model.outcome import ResultCode
from apimd.model.resources import AuthSetting, TokenState
from apimd.model.runtime import TokenRuntime, apply_saved_variables, is_due, is_static

log = logging.getLogger(__name__)

BACKOFF_FIRST_S = 30.0
BACKOFF_MAX_S = 15 * 60.0
NEEDS_SIGN_IN_ERRORS = frozenset(
    {"invalid_grant", "interaction_required", "login_required", "consent_required"}
)


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class RefreshOutcome:
    """What a refresh attempt produced: variables to save, or why it failed."""

    variables: dict[str, str] = field(default_factory=dict)
    needs_sign_in: bool = False
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and not self.needs_sign_in and bool(self.variables)


class NothingToRefresh(Exception):
    """A refresh was asked of a token nothing refreshes (`model.runtime.is_static`)."""


class TokenUnavailable(Exception):
    """A call cannot get a usable token: NEEDS_SIGN_IN (skip) or AUTH_ERROR (fail)."""

    def __init__(self, code: ResultCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


RefreshFn = Callable[[str, TokenRuntime], Awaitable[RefreshOutcome]]
AuthLookup = Callable[[str], AuthSetting | None]
StateChangeFn = Callable[[str, TokenState, TokenRuntime], Awaitable[None]]


class TokenManager:
    """Keeps tokens usable: one refresh at a time per token, every waiter sharing its outcome."""

    def __init__(
        self,
        repository: TokenRepository,
        *,
        auth_of: AuthLookup,
        refresh: RefreshFn,
        events: EventSink,
        on_state_change: StateChangeFn | None = None,
        clock: Callable[[], datetime] = utcnow,
        retries_later: bool = True,
    ) -> None:
        """`retries_later`: whether this process stays up to try a failed refresh again (the
        daemon); a standalone run says no "next attempt" it will never make."""
        self._retries_later = retries_later
        self._repository = repository
        self._auth_of = auth_of
        self._refresh = refresh
        self._events = events
        self._on_state_change = on_state_change
        self._clock = clock
        self._inflight: dict[str, asyncio.Task[TokenRuntime]] = {}
        self._save_lock: dict[str, asyncio.Lock] = {}

    async def current(self, name: str) -> TokenRuntime:
        """The token's stored runtime state (an empty, expired one when never saved)."""
        return await self._repository.load_token(name) or TokenRuntime(name=name)

    async def ensure_fresh(self, name: str) -> TokenRuntime:
        """A token ready to use, refreshing it first when due; raises `TokenUnavailable`."""
        runtime, _waited = await self.fresh(name)
        return runtime

    async def fresh(self, name: str) -> tuple[TokenRuntime, float]:
        """`ensure_fresh`, and the milliseconds it waited for a refresh (its own or another's):
        0 when the token was ready (reading it is not waiting for a refresh, SPEC §4's
        `auth_wait`)."""
        runtime = await self.current(name)
        auth = self._auth_of(name)
        if is_static(auth) and not runtime.filled:
            # Nothing fills it, so no refresh's state applies (one asked by hand before
            # `NothingToRefresh` left it `needs_sign_in` for good, shown `valid`).
            return runtime, 0.0
        self._raise_if_blocked(runtime)
        if name not in self._inflight and not is_due(runtime, auth, self._clock()):
            return runtime, 0.0
        waited = time.perf_counter()
        runtime = await self._join_refresh(name, force=False, unless_newer_than=None)
        self._raise_if_blocked(runtime, after_attempt=True)
        return runtime, (time.perf_counter() - waited) * 1000

    async def refresh(
        self, name: str, *, force: bool = True, unless_newer_than: int | None = None
    ) -> TokenRuntime:
        """Refresh now (single-flight, across processes sharing the store). With
        `unless_newer_than` (a generation), skip it when the token was saved since that
        generation (someone else already refreshed it: the 401 rule compares generations)."""
        return await self._join_refresh(name, force=force, unless_newer_than=unless_newer_than)

    async def save(
        self,
        name: str,
        values: dict[str, str],
        *,
        previous: TokenState | None = None,
    ) -> TokenRuntime:
        """Store variables in the token (the `save_auth_token` webhook, sign-ins, refreshes); each
        such fill is the token's last refresh. `previous` is the state to report the change from,
        when the stored one is transient."""
        lock = self._save_lock.setdefault(name, asyncio.Lock())
        async with lock:
            runtime = await self.current(name)
            previous = previous or runtime.state
            now = self._clock()
            apply_saved_variables(runtime, values, now)
            runtime.last_refresh = now
            await self._repository.save_token(runtime)
        self._events(TokenSaved(token=name, expires_at=runtime.expires_at))
        await self._state_changed(name, previous, runtime)
        return runtime

    async def dpop_key(self, name: str, make: Callable[[], str]) -> str:
        """The token's DPoP key, made with `make` and stored the first time it is needed."""
        lock = self._save_lock.setdefault(name, asyncio.Lock())
        async with lock:
            runtime = await self.current(name)
            if runtime.dpop_key is None:
                runtime.dpop_key = make()
                await self._repository.save_token(runtime)
            return runtime.dpop_key

    async def set_state(
        self, name: str, state: TokenState, error: str | None = None
    ) -> TokenRuntime:
        """Force a state (e.g. `needs_sign_in` when a refresh reached a browser step)."""
        runtime = await self.current(name)
        previous = runtime.state
        runtime.state = state
        runtime.last_error = error
        await self._repository.save_token(runtime)
        await self._state_changed(name, previous, runtime)
        return runtime

    def _raise_if_blocked(self, runtime: TokenRuntime, *, after_attempt: bool = False) -> None:
        if runtime.state == TokenState.NEEDS_SIGN_IN:
            detail = f": {runtime.last_error}" if runtime.last_error else ""
            raise TokenUnavailable(
                ResultCode.NEEDS_SIGN_IN, f"token {runtime.name} needs a sign-in{detail}"
            )
        if runtime.state == TokenState.ERROR:
            waiting = runtime.next_attempt_at and self._clock() < runtime.next_attempt_at
            if after_attempt or waiting:
                retry = ""
                if waiting and self._retries_later:
                    retry = f"; next attempt at {_iso(runtime.next_attempt_at)}"
                elif waiting and not after_attempt:  # blocked by an earlier run's backoff (--db)
                    retry = f"; a run before {_iso(runtime.next_attempt_at)} does not retry it"
                raise TokenUnavailable(
                    ResultCode.AUTH_ERROR,
                    f"token {runtime.name} could not be refreshed: {runtime.last_error}{retry}",
                )

    async def _join_refresh(
        self, name: str, *, force: bool, unless_newer_than: int | None
    ) -> TokenRuntime:
        task = self._inflight.get(name)
        if task is None:
            task = asyncio.create_task(self._locked_refresh(name, force, unless_newer_than))
            self._inflight[name] = task
            task.add_done_callback(lambda _t: self._inflight.pop(name, None))
        return await asyncio.shield(task)

    async def _locked_refresh(
        self, name: str, force: bool, unless_newer_than: int | None
    ) -> TokenRuntime:
        # Read after the lock: a refresh another agent finished meanwhile is not repeated.
        async with self._repository.token_lock(name):
            return await self._run_refresh(name, force, unless_newer_than)

    async def _run_refresh(
        self, name: str, force: bool, unless_newer_than: int | None
    ) -> TokenRuntime:
        runtime = await self.current(name)
        auth = self._auth_of(name)
        now = self._clock()
        if unless_newer_than is not None and runtime.generation > unless_newer_than:
            return runtime
        if not force:
            if runtime.state == TokenState.NEEDS_SIGN_IN:
                return runtime
            if (
                runtime.state == TokenState.ERROR
                and runtime.next_attempt_at
                and now < runtime.next_attempt_at
            ):
                return runtime
            if runtime.state != TokenState.ERROR and not is_due(runtime, auth, now):
                return runtime
        previous = runtime.state
        runtime.state = TokenState.REFRESHING
        await self._repository.save_token(runtime)
        self._events(TokenStateChanged(token=name, state=runtime.state, previous=previous))
        try:
            outcome = await self._refresh(name, runtime.model_copy(deep=True))
        except asyncio.CancelledError:
            # Stopping mid-refresh (SIGTERM): leave the token as it was, not `refreshing`.
            await asyncio.shield(self._restore(name, previous))
            raise
        except Exception as exc:  # a refresh must never take the caller down with it
            log.exception("refresh of token %s crashed", name)
            outcome = RefreshOutcome(error=f"refresh crashed: {type(exc).__name__}")
        if outcome.ok:
            return await self.save(name, outcome.variables, previous=previous)
        runtime = await self.current(name)
        now = self._clock()
        runtime.last_refresh = now
        if outcome.needs_sign_in:
            runtime.state = TokenState.NEEDS_SIGN_IN
            runtime.last_error = outcome.error or "a person must sign in"
        else:
            runtime.state = TokenState.ERROR
            runtime.last_error = outcome.error or "the refresh saved no variables"
            runtime.backoff_s = (
                BACKOFF_FIRST_S
                if runtime.backoff_s <= 0
                else min(runtime.backoff_s * 2, BACKOFF_MAX_S)
            )
            runtime.next_attempt_at = now + timedelta(seconds=runtime.backoff_s)
        await self._repository.save_token(runtime)
        await self._state_changed(name, previous, runtime)
        return runtime

    async def _restore(self, name: str, state: TokenState) -> None:
        runtime = await self.current(name)
        if runtime.state == TokenState.REFRESHING:
            runtime.state = state
            await self._repository.save_token(runtime)

    async def recover(self, names: list[str]) -> list[str]:
        """After a crash: tokens stored as `refreshing` have no refresh running any more. They go
        back to `valid` when filled (so their expiry decides the next refresh) or `expired`.
        Returns the names recovered."""
        recovered = []
        for name in names:
            runtime = await self._repository.load_token(name)
            if runtime is None or runtime.state != TokenState.REFRESHING or name in self._inflight:
                continue
            runtime.state = TokenState.VALID if runtime.filled else TokenState.EXPIRED
            await self._repository.save_token(runtime)
            recovered.append(name)
        return recovered

    async def _state_changed(self, name: str, previous: TokenState, runtime: TokenRuntime) -> None:
        if previous == runtime.state:
            return
        self._events(
            TokenStateChanged(
                token=name, state=runtime.state, previous=previous, error=runtime.last_error
            )
        )
        if self._on_state_change is not None:
            try:
                await self._on_state_change(name, previous, runtime)
            except Exception:
                log.exception("token state webhook for %s failed", name)


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None
