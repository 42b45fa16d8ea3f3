"""In-memory state for standalone runs and tests."""

from __future__ import annotations

import contextlib
import hmac
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime

from apimd.model.resources import Variable
from apimd.model.result import Result
from apimd.model.runtime import SentAlert, TokenRuntime
from apimd.model.signin import PendingSignIn


class MemoryStateStore:
    """Implements `apimd.engine.ports.StateStore` in process memory."""

    def __init__(self) -> None:
        self.tokens: dict[str, TokenRuntime] = {}
        self.variables: dict[str, tuple[str, bool]] = {}
        self.counters: dict[str, int] = {}
        self.alerts: dict[str, SentAlert] = {}
        self.results: list[Result] = []
        self.signins: dict[str, tuple[PendingSignIn, bool]] = {}

    async def load_token(self, name: str) -> TokenRuntime | None:
        runtime = self.tokens.get(name)
        return runtime.model_copy(deep=True) if runtime else None

    async def save_token(self, runtime: TokenRuntime) -> None:
        self.tokens[runtime.name] = runtime.model_copy(deep=True)

    def cluster_lock(self, key: str) -> AbstractAsyncContextManager[object]:
        return contextlib.nullcontext()

    def token_lock(self, name: str) -> AbstractAsyncContextManager[object]:
        return contextlib.nullcontext()  # one process: the token manager's single flight suffices

    async def save_variables(self, values: dict[str, str], *, secret: bool) -> None:
        for name, value in values.items():
            self.variables[name.upper()] = (value, secret)

    async def load_counter(self, key: str) -> int:
        return self.counters.get(key, 0)

    async def save_counter(self, key: str, count: int) -> None:
        self.counters[key] = count

    async def load_alert(self, key: str) -> SentAlert | None:
        alert = self.alerts.get(key)
        return alert.model_copy(deep=True) if alert else None

    async def save_alert(self, key: str, alert: SentAlert | None) -> None:
        if alert is None:
            self.alerts.pop(key, None)
        else:
            self.alerts[key] = alert.model_copy(deep=True)

    async def increment_counter(self, key: str) -> int:
        self.counters[key] = self.counters.get(key, 0) + 1
        return self.counters[key]

    async def reset_counter(self, key: str) -> int:
        return self.counters.pop(key, 0)

    async def add_result(self, result: Result) -> Result | None:
        self.results.append(result)
        return result

    # Reads beyond `StateStore`, shared with `apimd.store.SqliteStore` (one contract suite).

    async def load_variable(self, name: str) -> Variable | None:
        saved = self.variables.get(name.upper())
        return None if saved is None else Variable(name=name, value=saved[0], secret=saved[1])

    async def get_result(self, result_id: str) -> Result | None:
        found = next((r for r in self.results if r.id == result_id), None)
        return found.model_copy(deep=True) if found else None

    async def create_signin(self, signin: PendingSignIn) -> None:
        self.signins[signin.id] = (signin.model_copy(deep=True), False)

    async def consume_signin(self, state: str) -> PendingSignIn | None:
        now = datetime.now(UTC)
        for key, (signin, used) in self.signins.items():
            if (
                not used
                and signin.expires_at > now
                and hmac.compare_digest(signin.state.encode(), state.encode())
            ):
                self.signins[key] = (signin, True)
                return signin.model_copy(deep=True)
        return None

    async def pending_signins(self) -> list[PendingSignIn]:
        now = datetime.now(UTC)
        return [s for s, used in self.signins.values() if not used and s.expires_at > now]

    async def cancel_signin(self, signin_id: str) -> bool:
        return self.signins.pop(signin_id, None) is not None
