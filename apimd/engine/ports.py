"""The small interfaces through which the engine keeps state. `apimd.engine.memory` keeps it in
memory (a one-off `apimd run -f`: gone when the process ends); `apimd.store` on SQLite or
PostgreSQL, where a write has committed when the call returns (except a fenced firing's result
that the cluster already recorded lost, which is dropped: SPEC §13)."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import Protocol

from apimd.model.result import Result
from apimd.model.runtime import SentAlert, TokenRuntime
from apimd.model.signin import PendingSignIn


class TokenRepository(Protocol):
    """Runtime state of tokens (saved variables, expiry, refresh state)."""

    async def load_token(self, name: str) -> TokenRuntime | None: ...

    async def save_token(self, runtime: TokenRuntime) -> None: ...

    def token_lock(self, name: str) -> AbstractAsyncContextManager[object]:
        """Held around a refresh of `name`: one refresh at a time across every process that
        shares this state (SPEC §13: an advisory lock per token on PostgreSQL)."""
        ...


class VariableRepository(Protocol):
    """Environment variables written by `save_variables` webhooks."""

    async def save_variables(self, values: dict[str, str], *, secret: bool) -> None: ...


class WebhookCounterRepository(Protocol):
    """Consecutive-alert counters, one per webhook key."""

    async def load_counter(self, key: str) -> int: ...

    async def save_counter(self, key: str, count: int) -> None: ...

    async def load_alert(self, key: str) -> SentAlert | None: ...

    async def save_alert(self, key: str, alert: SentAlert | None) -> None:
        """Record the alert sent for `key` (None: the alert is over)."""

    async def increment_counter(self, key: str) -> int:
        """Add one; the new count (atomic: agents sharing the store count together)."""
        ...

    async def reset_counter(self, key: str) -> int:
        """Back to 0; the count it had (atomic)."""
        ...


class ResultRepository(Protocol):
    """Where finished results go."""

    async def add_result(self, result: Result) -> Result | None:
        """Record `result`; returns it as recorded (a daemon stamps where it ran), which is what
        events, metrics and notifications must say, or None when it was not recorded: its
        firing was recorded lost meanwhile (SPEC §13), so nothing may announce it."""
        ...

    async def get_result(self, result_id: str) -> Result | None: ...


class SignInRepository(Protocol):
    """Pending browser sign-ins: recorded encrypted, consumed once by their state."""

    async def create_signin(self, signin: PendingSignIn) -> None: ...

    async def consume_signin(self, state: str) -> PendingSignIn | None: ...

    async def pending_signins(self) -> list[PendingSignIn]: ...

    async def cancel_signin(self, signin_id: str) -> bool: ...


class StateStore(
    TokenRepository,
    VariableRepository,
    WebhookCounterRepository,
    ResultRepository,
    SignInRepository,
    Protocol,
):
    """Everything the engine persists, in one object."""

    def cluster_lock(self, key: str) -> AbstractAsyncContextManager[object]:
        """Held by one process at a time among those sharing this state (`apimd:mutex` across
        agents, SPEC §13)."""
        ...
