"""What one run carries from step to step (a call alone, or a workflow with its steps), and
what one call of it carries while it is run."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from apimd.engine.cookies import RunJar
from apimd.engine.recording import CallIdentity, ResultRecorder
from apimd.engine.template import Scope, uuid4_text
from apimd.model.resources import AuthSetting, Call, Workflow
from apimd.model.result import Trigger
from apimd.model.signin import PendingSignIn


class UnknownTarget(LookupError):
    """No call or workflow has that name."""


@dataclass(frozen=True, slots=True)
class RunOrder:
    """How a run is started (by a person, a schedule, another agent): its trigger, the variables
    given for it, whether a person is there for a browser sign-in, and its id (also its
    result's; new unless given)."""

    trigger: Trigger = "manual"
    variables: Mapping[str, str] = field(default_factory=dict)
    interactive: bool = False
    run_id: str = field(default_factory=uuid4_text)

    def context(self) -> RunContext:
        """The context the run starts with (variable names are upper-case)."""
        return RunContext(
            run_id=self.run_id,
            trigger=self.trigger,
            variables={k.upper(): v for k, v in self.variables.items()},
            interactive=self.interactive,
        )


@dataclass(slots=True)
class RunContext:
    """What one run (a call alone, or a workflow with its steps) shares."""

    run_id: str
    trigger: Trigger
    variables: dict[str, str] = field(default_factory=dict)
    workflow: Workflow | None = None
    flow_token: str | None = None  # the token this run refreshes or signs in
    depth: int = 0
    interactive: bool = False
    saves_to_token: bool = False
    signin_vars: dict[str, str] = field(default_factory=dict)  # STATE, CODE_VERIFIER, …
    secret_names: set[str] = field(default_factory=set)
    """Variables extracted from a secret's place (`redact.names_secret`): masked in every result
    of the run, whatever their name."""
    remaining_steps: list[str] = field(default_factory=list)
    opened_signin: PendingSignIn | None = None
    browser_url: str | None = None  # a skipped browser step's URL, in clear, for the person
    cookie_jar: RunJar | None = None  # one per run, unless `cookies: false`

    def cookies(self) -> RunJar | None:
        """The run's jar, made on first use; None in a workflow with `cookies: false`."""
        if self.workflow is not None and not self.workflow.cookies:
            return None
        if self.cookie_jar is None:
            self.cookie_jar = RunJar()
        return self.cookie_jar

    maintenance: bool = False  # started inside a maintenance window: notifiers stay silent


@dataclass(frozen=True, slots=True)
class CallAttempt:
    """One call being run: the call and its run, whose result it is, its variables, its auth,
    and the recorder that redacts what it sends and receives."""

    call: Call
    ctx: RunContext
    identity: CallIdentity
    scope: Scope
    auth: AuthSetting | None
    recorder: ResultRecorder
