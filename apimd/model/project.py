"""The project document and the checks that span resources: names, references and cycles."""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Mapping, Sequence, Set
from itertools import pairwise
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BeforeValidator, Field, PrivateAttr

from apimd.model.common import StrictModel, VariableName, unique_variable_names
from apimd.model.errors import Issue
from apimd.model.kinds import ResourceKind
from apimd.model.maintenance import MaintenanceWindow
from apimd.model.resources import (
    AuthSetting,
    Call,
    Schedule,
    Token,
    VariableSpec,
    Webhook,
    Workflow,
)

KINDS = tuple(kind.value for kind in ResourceKind)

_Named = TypeVar("_Named", AuthSetting, Token, Call, Workflow)


class _Index:
    """Name → resource for one list, and the list (and its length) it was built from: a list
    replaced (`model_copy(update=...)`) or grown is noticed and the index rebuilt."""

    __slots__ = ("built_from", "by_name", "size")

    def __init__(self, items: list[Any]) -> None:
        self.built_from = items
        self.size = len(items)
        self.by_name: dict[str, Any] = {}
        for item in items:
            self.by_name.setdefault(item.name, item)  # the first of duplicates, as a scan finds

    def fresh(self, items: list[Any]) -> bool:
        return self.built_from is items and self.size == len(items)


class Project(StrictModel):
    """One project file: every key optional; resources refer to each other by name."""

    version: Literal[1] = 1
    variables: Annotated[
        dict[VariableName, VariableSpec], BeforeValidator(unique_variable_names)
    ] = Field(default_factory=dict)
    auth: list[AuthSetting] = Field(default_factory=list)
    tokens: list[Token] = Field(default_factory=list)
    calls: list[Call] = Field(default_factory=list)
    workflows: list[Workflow] = Field(default_factory=list)
    schedules: list[Schedule] = Field(default_factory=list)
    maintenance: list[MaintenanceWindow] = Field(default_factory=list)

    # Lookups by name are dicts built once per project (per list), not scans: the per-run path
    # looks calls, workflows and tokens up by name, and a project may hold 10,000 of them.
    _indexes: dict[str, _Index] = PrivateAttr(default_factory=dict)
    _parents: tuple[list[Workflow], int, dict[str, list[str]]] | None = PrivateAttr(default=None)

    def _lookup(self, kind: str, items: list[_Named], name: str) -> _Named | None:
        # Read from pydantic's own dict of private values: `self._indexes` goes through
        # BaseModel.__getattr__, which raises and catches an AttributeError on every read.
        private = self.__pydantic_private__
        indexes: dict[str, _Index] = private["_indexes"] if private else self._indexes
        index = indexes.get(kind)
        if index is None or not index.fresh(items):
            index = _Index(items)
            # A new dict, not an update: a shallow model_copy shares the old one.
            self._indexes = {**indexes, kind: index}
        found: _Named | None = index.by_name.get(name)
        return found

    def call(self, name: str) -> Call | None:
        return self._lookup("calls", self.calls, name)

    def workflow(self, name: str) -> Workflow | None:
        return self._lookup("workflows", self.workflows, name)

    def auth_setting(self, name: str) -> AuthSetting | None:
        return self._lookup("auth", self.auth, name)

    def token(self, name: str) -> Token | None:
        return self._lookup("tokens", self.tokens, name)

    def parents(self, call: str) -> list[str]:
        """The workflows that run `call` as a step, in project order."""
        cached = self._parents
        if cached is None or cached[0] is not self.workflows or cached[1] != len(self.workflows):
            by_step: dict[str, list[str]] = {}
            for workflow in self.workflows:
                for step in dict.fromkeys(workflow.steps):
                    by_step.setdefault(step, []).append(workflow.name)
            cached = self._parents = (self.workflows, len(self.workflows), by_step)
        return list(cached[2].get(call, ()))


def check_project(project: Project, names: Mapping[str, Set[str]] | None = None) -> list[Issue]:
    """Problems no single resource shows: duplicate names, unknown references, cycles.
    `names` (kind → names) are known too: resources a document gives that did not validate."""
    return [
        *_duplicates(project),
        *_references(project, names or {}),
        *_run_cycles(project),
        *_refresh_cycles(project),
    ]


def _label(kind: str, name: str) -> str:
    return ResourceKind(kind).describe(name)


def _duplicates(project: Project) -> Iterator[Issue]:
    seen: dict[tuple[str, str], str] = {}
    groups: list[tuple[str, list[str], str]] = [
        ("auth", [a.name for a in project.auth], "auth"),
        ("tokens", [t.name for t in project.tokens], "tokens"),
        ("calls", [c.name for c in project.calls], "targets"),
        ("workflows", [w.name for w in project.workflows], "targets"),
        ("schedules", [s.name for s in project.schedules], "schedules"),
        ("maintenance", [m.name for m in project.maintenance], "maintenance"),
    ]
    for kind, names, namespace in groups:
        for index, name in enumerate(names):
            key = (namespace, name)
            if key in seen:
                first = seen[key]
                hint = (
                    " (calls and workflows share one namespace)" if namespace == "targets" else ""
                )
                yield Issue(
                    f"duplicate name {name!r}: already used by {first}{hint}",
                    loc=(kind, index, "name"),
                    resource=_label(kind, name),
                )
            else:
                seen[key] = _label(kind, name)


def nearest(name: str, known: Set[str]) -> str:
    """`; did you mean 'x'?` for the known name closest to `name`, or nothing."""
    close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def _references(project: Project, names: Mapping[str, Set[str]]) -> Iterator[Issue]:
    auths = {a.name for a in project.auth} | set(names.get("auth", ()))
    tokens = {t.name for t in project.tokens} | set(names.get("tokens", ()))
    calls = {c.name for c in project.calls} | set(names.get("calls", ()))
    workflows = {w.name for w in project.workflows} | set(names.get("workflows", ()))

    def missing(kind: str, name: str | None, known: set[str]) -> str | None:
        if name is None or name in known:
            return None
        return f"unknown {kind} {name!r}{nearest(name, known)}"

    def webhook_refs(hook: Webhook) -> Iterator[tuple[str, str]]:
        for field, kind, known in (
            ("token", "token", tokens),
            ("call", "call", calls),
            ("workflow", "workflow", workflows),
        ):
            problem = missing(kind, getattr(hook, field), known)
            if problem:
                yield field, problem

    for i, auth in enumerate(project.auth):
        label = _label("auth", auth.name)
        for field in ("refresh_workflow", "signin_workflow"):
            problem = missing("workflow", getattr(auth, field), workflows)
            if problem:
                yield Issue(problem, loc=("auth", i, field), resource=label)
        if auth.callback:
            for field, kind, known in (
                ("call", "call", calls),
                ("workflow", "workflow", workflows),
            ):
                problem = missing(kind, getattr(auth.callback, field), known)
                if problem:
                    yield Issue(problem, loc=("auth", i, "callback", field), resource=label)
    for i, token in enumerate(project.tokens):
        problem = missing("auth", token.auth, auths)
        if problem:
            yield Issue(problem, loc=("tokens", i, "auth"), resource=_label("tokens", token.name))
    for i, call in enumerate(project.calls):
        label = _label("calls", call.name)
        for field, kind, known in (("auth", "auth", auths), ("token", "token", tokens)):
            problem = missing(kind, getattr(call, field), known)
            if problem:
                yield Issue(problem, loc=("calls", i, field), resource=label)
        for j, hook in enumerate(call.webhooks):
            for field, problem in webhook_refs(hook):
                yield Issue(problem, loc=("calls", i, "webhooks", j, field), resource=label)
    for i, workflow in enumerate(project.workflows):
        for j, step in enumerate(workflow.steps):
            if step not in calls:
                hint = (
                    " (steps are calls, not workflows)"
                    if step in workflows
                    else nearest(step, calls)
                )
                yield Issue(
                    f"unknown call {step!r}{hint}",
                    loc=("workflows", i, "steps", j),
                    resource=_label("workflows", workflow.name),
                )
    targets = calls | workflows
    yield from _unknown_targets("schedules", project.schedules, targets, hint=True)
    yield from _unknown_targets("maintenance", project.maintenance, targets, hint=False)


def _unknown_targets(
    kind: str, holders: Sequence[Schedule | MaintenanceWindow], targets: Set[str], *, hint: bool
) -> Iterator[Issue]:
    """Schedules' and maintenance windows' targets that name no call or workflow."""
    for i, holder in enumerate(holders):
        for j, target in enumerate(holder.targets):
            if target not in targets:
                yield Issue(
                    f"unknown call or workflow {target!r}{nearest(target, targets) if hint else ''}",
                    loc=(kind, i, "targets", j),
                    resource=_label(kind, holder.name),
                )


def _find_cycle(graph: dict[str, list[str]]) -> list[str] | None:
    """A cycle in `graph` as the list of its nodes (first node repeated at the end), if any."""
    done: set[str] = set()
    for start in sorted(graph):
        if start in done:
            continue
        # Iterative depth-first search: long chains must not hit the recursion limit.
        path: list[str] = [start]
        on_path: set[str] = {start}
        pending: list[Iterator[str]] = [iter(graph.get(start, []))]
        while pending:
            nxt = next(pending[-1], None)
            if nxt is None:
                pending.pop()
                node = path.pop()
                on_path.discard(node)
                done.add(node)
            elif nxt in on_path:
                return [*path[path.index(nxt) :], nxt]
            elif nxt not in done:
                path.append(nxt)
                on_path.add(nxt)
                pending.append(iter(graph.get(nxt, [])))
    return None


def _run_cycles(project: Project) -> Iterator[Issue]:
    # Nodes are "call:NAME" and "workflow:NAME": a call and a workflow that (wrongly) share a name
    # are a duplicate, reported as such, not a loop.
    graph: dict[str, list[str]] = {}
    for call in project.calls:
        graph[f"call:{call.name}"] = [
            f"call:{h.call}" if h.type == "run_call" else f"workflow:{h.workflow}"
            for h in call.webhooks
            if h.type in ("run_call", "run_workflow")
        ]
    for workflow in project.workflows:
        graph[f"workflow:{workflow.name}"] = [f"call:{step}" for step in workflow.steps]
    cycle = _find_cycle(graph)
    if not cycle:
        return
    names = [node.split(":", 1)[1] for node in cycle]
    loc, resource = _loop_webhook(project, names)
    yield Issue(
        "run_call/run_workflow webhooks form a loop: " + " → ".join(names),
        loc=loc,
        resource=resource,
    )


def _loop_webhook(project: Project, cycle: list[str]) -> tuple[tuple[str | int, ...], str | None]:
    """The location of the first webhook in `cycle`, so the issue's line leads somewhere useful."""
    edges = set(pairwise(cycle))
    for i, call in enumerate(project.calls):
        for j, hook in enumerate(call.webhooks):
            field = "call" if hook.type == "run_call" else "workflow"
            target = hook.call if hook.type == "run_call" else hook.workflow
            if hook.type in ("run_call", "run_workflow") and (call.name, target) in edges:
                return ("calls", i, "webhooks", j, field), _label("calls", call.name)
    return ("calls",), None


def _refresh_cycles(project: Project) -> Iterator[Issue]:
    """Token A's refresh runs a call on token B whose refresh runs a call on token A, …"""
    auths = {a.name: a for a in project.auth}
    graph: dict[str, list[str]] = {}
    for token in project.tokens:
        auth = auths.get(token.auth)
        workflow = (
            project.workflow(auth.refresh_workflow) if auth and auth.refresh_workflow else None
        )
        deps: list[str] = []
        for step in workflow.steps if workflow else []:
            call = project.call(step)
            # A call on the token being refreshed is how a refresh workflow uses its own token.
            if call and call.token and call.token != token.name:
                deps.append(call.token)
        graph[token.name] = deps
    cycle = _find_cycle(graph)
    if cycle:
        index = next(i for i, t in enumerate(project.tokens) if t.name == cycle[0])
        yield Issue(
            "token refreshes depend on each other in a loop: "
            + " → ".join(cycle)
            + " (each refresh workflow runs a call on the next token)",
            loc=("tokens", index, "auth"),
            resource=_label("tokens", cycle[0]),
        )
