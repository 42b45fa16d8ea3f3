"""What the engine's parts share: the project in force, and a frozen bundle of the state store,
HTTP executor, clock, event sink and tokens handed to each of them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from apimd.engine.events import EventSink
from apimd.engine.http import HttpExecutor
from apimd.engine.ports import StateStore
from apimd.engine.recording import ResultRecorder, secret_values_of_project
from apimd.engine.signer import report_weak_keys
from apimd.engine.template import Scope, render, system_variables
from apimd.engine.tokens import TokenManager
from apimd.model.project import Project
from apimd.model.resources import AuthSetting


def client_variables(auth: AuthSetting | None) -> dict[str, str]:
    """The CLIENT_ID and CLIENT_SECRET layer of an auth's scope (empty without an auth)."""
    if auth is None:
        return {}
    return {"CLIENT_ID": auth.client_id or "", "CLIENT_SECRET": auth.client_secret or ""}


class Definitions:
    """The project in force and what follows from it: its secrets, the environment (with the
    variables webhooks saved), and the callback URL the browser comes back to."""

    def __init__(self, project: Project, callback_url: str | None = None) -> None:
        self.callback_url = callback_url
        self._saved_env: dict[str, tuple[str, bool]] = {}
        self._environment: dict[str, str] | None = None  # made on first use after a change
        self.update(project)

    @property
    def project(self) -> Project:
        return self._project

    def update(self, project: Project) -> None:
        """Swap in new definitions; runs already going keep the ones they started with."""
        self._project = project
        self._environment = None
        self._base_secrets = secret_values_of_project(project)
        report_weak_keys(project.auth)

    def environment(self) -> dict[str, str]:
        """Environment variables: the project's, then those saved by webhooks (a dict of the
        caller's own; merged once per change, not per call)."""
        if self._environment is None:
            env = {name: spec.value for name, spec in self._project.variables.items()}
            env.update({name: value for name, (value, _secret) in self._saved_env.items()})
            self._environment = env
        return dict(self._environment)

    def remember_variables(self, values: dict[str, str], *, secret: bool) -> None:
        """Variables a `save_variables` webhook saved: the environment from now on."""
        self._saved_env.update({k: (v, secret) for k, v in values.items()})
        self._environment = None

    def render_env(self, text: str, where: str) -> str:
        return render(text, Scope(self.environment(), system_variables()), where)

    def auth_of_token(self, token_name: str) -> AuthSetting | None:
        token = self._project.token(token_name)
        return self._project.auth_setting(token.auth) if token else None

    def recorder(self, extra: list[str]) -> ResultRecorder:
        """A recorder that redacts the project's secrets and `extra`."""
        return ResultRecorder([*self._base_secrets, *extra])

    def auth_scope(
        self,
        auth: AuthSetting,
        token_name: str | None,
        *,
        token_variables: dict[str, str] | None = None,
        flow: dict[str, str] | None = None,
    ) -> Scope:
        """The scope of an auth's own requests (refresh, sign-in, code exchange): the token's
        variables, the client's id and secret, the environment, then system and flow variables."""
        system = system_variables(token_name=token_name, auth_name=auth.name)
        return Scope(
            token_variables or {},
            client_variables(auth),
            self.environment(),
            {**system, **(flow or {})},
        )


@dataclass(frozen=True)
class Services:
    """The state store, HTTP executor, clock, event sink (every event is
    published by calling it with a typed event), tokens and definitions that the
    call runner, the webhook dispatcher and the sign-in flows share."""

    state: StateStore
    http: HttpExecutor
    clock: Callable[[], datetime]
    events: EventSink
    tokens: TokenManager
    definitions: Definitions

    def now(self) -> datetime:
        return self.clock()
