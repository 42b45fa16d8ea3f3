"""Apply and export of project documents on the store (SPEC §2 "Apply semantics"), and the
single-resource reads and writes of the REST API built on them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import BaseModel

from apimd.model.common import SECRET_MASK
from apimd.model.errors import Issue, ValidationFailed
from apimd.model.project import KINDS, Project, check_project
from apimd.model.resources import Token, TokenState, Variable, VariableSpec
from apimd.model.runtime import (
    NOT_SECRET_TOKEN_VARIABLES,
    TokenRuntime,
    apply_saved_variables,
    parse_expires_in,
)
from apimd.store.errors import ResourceInUse, ResourceNotFound
from apimd.store.masking import keep_stored_secrets, mask_secrets
from apimd.store.resources import (
    RESOURCE_KINDS,
    ResourceStore,
    StoredResource,
    definition_json,
)
from apimd.store.sql import Connection, Database
from apimd.store.targets import target_ids
from apimd.store.tokens import TokenRuntimeStore
from apimd.store.variables import VariableStore


@dataclass
class ApplyReport:
    """What an apply changed, as `kind/name` entries."""

    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    tokens_set: list[str] = field(default_factory=list)
    """Tokens whose saved variables the document set."""

    @property
    def changed(self) -> bool:
        return bool(self.created or self.updated or self.deleted or self.tokens_set)


@dataclass
class _Snapshot:
    """Everything stored, read inside one transaction."""

    variables: dict[str, Variable]
    resources: dict[str, dict[str, StoredResource]]

    def project(self) -> Project:
        return make_project(
            {n: VariableSpec(value=v.value, secret=v.secret) for n, v in self.variables.items()},
            {kind: [s.model for s in self.resources[kind].values()] for kind in RESOURCE_KINDS},
        )


def make_project(variables: dict[str, VariableSpec], resources: dict[str, list[Any]]) -> Project:
    """A `Project` of already-validated parts (no re-validation)."""
    return Project.model_construct(
        version=1,
        variables=variables,
        auth=resources.get("auth", []),
        tokens=resources.get("tokens", []),
        calls=resources.get("calls", []),
        workflows=resources.get("workflows", []),
        schedules=resources.get("schedules", []),
        maintenance=resources.get("maintenance", []),
    )


class ProjectStore:
    """The project's resources on the store: apply, export, and per-resource get/put/delete."""

    def __init__(
        self,
        db: Database,
        resources: ResourceStore,
        variables: VariableStore,
        tokens: TokenRuntimeStore,
        clock: Callable[[], datetime],
    ) -> None:
        self._db = db
        self._resources = resources
        self._variables = variables
        self._tokens = tokens
        self._clock = clock

    # --- apply ---------------------------------------------------------------------------------

    async def apply(self, project: Project, *, prune: bool = False) -> ApplyReport:
        """Upsert every resource of `project` (with `prune`, delete those it omits) in one
        transaction, or change nothing and raise `ValidationFailed` with every issue found.

        Secret fields omitted or `••••` keep their stored values; a token's runtime state is
        untouched unless the document gives its `variables`."""
        now = self._clock()
        async with self._db.transaction() as conn:
            stored = await self._snapshot(conn)
            issues: list[Issue] = []
            variables = _merge_variables(project, stored, issues)
            merged = {
                kind: _merge_resources(kind, getattr(project, kind), stored, issues)
                for kind in RESOURCE_KINDS
            }
            runtimes: dict[str, TokenRuntime] = {}
            for index, token in enumerate(project.tokens):
                if token.variables is not None:
                    runtime = _runtime_from_document(
                        token.name,
                        token.variables,
                        await self._tokens.load_in(conn, token.name),
                        now,
                        ("tokens", index, "variables"),
                        issues,
                    )
                    if runtime is not None:
                        runtimes[token.name] = runtime
            issues += _check_union(project, merged, stored, prune)
            if issues:
                raise ValidationFailed(issues)
            return await self._write(conn, variables, merged, stored, runtimes, prune)

    async def _write(
        self,
        conn: Connection,
        variables: dict[str, Variable],
        merged: dict[str, list[Any]],
        stored: _Snapshot,
        runtimes: dict[str, TokenRuntime],
        prune: bool,
    ) -> ApplyReport:
        report = ApplyReport()
        for name, variable in variables.items():
            label = f"variables/{name}"
            old = stored.variables.get(name)
            if old == variable:
                report.unchanged.append(label)
                continue
            await self._variables.put_in(conn, variable)
            (report.updated if old else report.created).append(label)
        for kind in RESOURCE_KINDS:
            for resource in merged[kind]:
                label = f"{kind}/{resource.name}"
                json = definition_json(kind, resource)
                old_doc = stored.resources[kind].get(resource.name)
                if old_doc is not None and old_doc.json == json:
                    report.unchanged.append(label)
                    continue
                await self._resources.put_in(conn, kind, resource.name, json)
                (report.updated if old_doc else report.created).append(label)
        # Every target numbered now, by this one writer: agents that all write the first
        # results of new names at once otherwise contend for the next number (issue 17).
        await target_ids(conn, [r.name for kind in ("calls", "workflows") for r in merged[kind]])
        for name, runtime in runtimes.items():
            await self._tokens.save_in(conn, runtime)
            report.tokens_set.append(name)
        if prune:
            for name in stored.variables.keys() - variables.keys():
                await self._variables.delete_in(conn, name)
                report.deleted.append(f"variables/{name}")
            for kind in RESOURCE_KINDS:
                keep = {r.name for r in merged[kind]}
                for name in stored.resources[kind].keys() - keep:
                    await self._delete_in(conn, kind, name)
                    report.deleted.append(f"{kind}/{name}")
        return report

    # --- export and reads ----------------------------------------------------------------------

    async def load_project(self) -> Project:
        """Every stored definition with its secrets, without token runtime state: what the engine
        runs."""
        async with self._db.transaction(immediate=False) as conn:
            return (await self._snapshot(conn)).project()

    async def export(self, *, secrets: bool = False) -> Project:
        """The stored project as a document; secret fields and token variables read `••••` unless
        `secrets`. Applying it back changes nothing."""
        async with self._db.transaction(immediate=False) as conn:
            project = (await self._snapshot(conn)).project()
            runtimes = {t.name: await self._tokens.load_in(conn, t.name) for t in project.tokens}
        tokens = [token_view(t, runtimes[t.name], reveal=secrets) for t in project.tokens]
        project = project.model_copy(update={"tokens": tokens})
        return project if secrets else mask_project(project)

    async def get(self, kind: str, name: str, *, reveal: bool = False) -> Any:
        """One resource as the REST API serves it (tokens with their read-only fields), secrets
        masked unless `reveal`; None when there is none."""
        if kind == "variables":
            variable = await self._variables.get(name)
            if variable is None or reveal or not variable.secret:
                return variable
            return variable.model_copy(update={"value": SECRET_MASK})
        _check_kind(kind)
        stored = await self._resources.get(kind, name)
        if stored is None:
            return None
        resource = stored.model
        if kind == "tokens":
            resource = token_view(resource, await self._tokens.load(name), reveal=reveal)
        return resource if reveal else mask_secrets(resource)

    async def list(self, kind: str, *, reveal: bool = False) -> list[Any]:
        """Every resource of `kind`, sorted by name, as `get` serves each."""
        if kind == "variables":
            variables = (await self._variables.all()).values()
            return [
                v if reveal or not v.secret else v.model_copy(update={"value": SECRET_MASK})
                for v in variables
            ]
        _check_kind(kind)
        project = await self.export(secrets=reveal)
        return sorted(getattr(project, kind), key=lambda r: r.name)

    async def put(self, kind: str, resource: BaseModel) -> ApplyReport:
        """Create or replace one resource with the rules of `apply`."""
        if kind == "variables":
            if not isinstance(resource, Variable):
                raise TypeError("a variable is a `Variable`")
            spec = VariableSpec(value=resource.value, secret=resource.secret)
            return await self.apply(make_project({resource.name: spec}, {}))
        _check_kind(kind)
        return await self.apply(make_project({}, {kind: [resource]}))

    async def delete(self, kind: str, name: str) -> None:
        """Delete one resource (a token's runtime state with it); `ResourceInUse` names the
        resources that still refer to it, `ResourceNotFound` when there is none."""
        async with self._db.transaction() as conn:
            stored = await self._snapshot(conn)
            if kind == "variables":
                if name.upper() not in stored.variables:
                    raise ResourceNotFound(kind, name)
                await self._variables.delete_in(conn, name.upper())
                return
            _check_kind(kind)
            if name not in stored.resources[kind]:
                raise ResourceNotFound(kind, name)
            before = stored.project()
            after = before.model_copy(
                update={kind: [r for r in getattr(before, kind) if r.name != name]}
            )
            known = {(i.message, i.resource) for i in check_project(before)}
            referrers = sorted(
                {
                    i.resource or i.field
                    for i in check_project(after)
                    if (i.message, i.resource) not in known
                }
            )
            if referrers:
                raise ResourceInUse(kind, name, referrers)
            await self._delete_in(conn, kind, name)

    # --- helpers -------------------------------------------------------------------------------

    async def _snapshot(self, conn: Connection) -> _Snapshot:
        return _Snapshot(await self._variables.all_in(conn), await self._resources.all_in(conn))

    async def _delete_in(self, conn: Connection, kind: str, name: str) -> None:
        await self._resources.delete_in(conn, kind, name)
        if kind == "tokens":
            await self._tokens.delete_in(conn, name)


def token_view(token: Token, runtime: TokenRuntime | None, *, reveal: bool) -> Token:
    """A token definition with its runtime fields; variables masked (but `EXPIRES_IN`) unless
    `reveal`."""
    variables: dict[str, str] | None = None
    if runtime is not None and runtime.variables:
        variables = {
            name: value if reveal or name in NOT_SECRET_TOKEN_VARIABLES else SECRET_MASK
            for name, value in runtime.variables.items()
        }
    return token.model_copy(
        update={
            "variables": variables,
            "expires_at": runtime.expires_at if runtime else None,
            "state": runtime.state if runtime else TokenState.EXPIRED,
            "last_refresh": runtime.last_refresh if runtime else None,
            "last_error": runtime.last_error if runtime else None,
        }
    )


def mask_project(project: Project) -> Project:
    """`project` with secret variables' values and every secret field `••••`."""
    variables = {
        name: spec.model_copy(update={"value": SECRET_MASK}) if spec.secret else spec
        for name, spec in project.variables.items()
    }
    update: dict[str, Any] = {"variables": variables}
    for kind in RESOURCE_KINDS:
        update[kind] = [mask_secrets(r) for r in getattr(project, kind)]
    return project.model_copy(update=update)


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"unknown resource kind {kind!r}; one of {', '.join(KINDS)}")


def _merge_variables(
    project: Project, stored: _Snapshot, issues: list[Issue]
) -> dict[str, Variable]:
    out: dict[str, Variable] = {}
    for name, spec in project.variables.items():
        value = spec.value
        if value == SECRET_MASK:
            old = stored.variables.get(name)
            if old is None:
                issues.append(
                    Issue(
                        f"the value is {SECRET_MASK} (keep the stored value) but variable {name} "
                        "is not stored; give the value",
                        loc=("variables", name, "value"),
                    )
                )
                continue
            value = old.value
        out[name] = Variable(name=name, value=value, secret=spec.secret)
    return out


def _merge_resources(
    kind: str, resources: list[Any], stored: _Snapshot, issues: list[Issue]
) -> list[Any]:
    out = []
    for index, resource in enumerate(resources):
        old = stored.resources[kind].get(resource.name)
        kept, found = keep_stored_secrets(resource, old.model if old else None, (kind, index))
        issues += found
        out.append(kept)
    return out


def _runtime_from_document(
    name: str,
    given: dict[str, str],
    stored: TokenRuntime | None,
    now: datetime,
    loc: tuple[str | int, ...],
    issues: list[Issue],
) -> TokenRuntime | None:
    """The runtime state a document's `variables` give a token, or None when they are what is
    already saved (so re-applying an export keeps the expiry)."""
    values: dict[str, str] = {}
    for key, value in given.items():
        if value != SECRET_MASK:
            values[key] = value
        elif stored is not None and key in stored.variables:
            values[key] = stored.variables[key]
        else:
            issues.append(
                Issue(
                    f"{key} is {SECRET_MASK} but token {name!r} has no saved {key} to keep; "
                    "give the value",
                    loc=(*loc, key),
                )
            )
    if "EXPIRES_IN" in values and parse_expires_in(values["EXPIRES_IN"]) is None:
        issues.append(Issue("EXPIRES_IN must be a number of seconds", loc=(*loc, "EXPIRES_IN")))
    if stored is not None and values == stored.variables:
        return None
    runtime = (stored or TokenRuntime(name=name)).model_copy(deep=True)
    # The document states the token's variables whole: they replace, and the expiry follows them.
    runtime.variables = {}
    runtime.expires_at = None
    runtime.lifetime_s = None
    apply_saved_variables(runtime, values, now)
    if not values:
        runtime.state = TokenState.EXPIRED
    return runtime


def _check_union(
    project: Project, merged: dict[str, list[Any]], stored: _Snapshot, prune: bool
) -> list[Issue]:
    """`check_project` on what the store will hold: the document's resources first (so issue
    locations are the document's), then the stored ones it leaves in place."""
    union: dict[str, list[Any]] = {}
    for kind in RESOURCE_KINDS:
        names = {r.name for r in merged[kind]}
        kept = (
            [] if prune else [s.model for n, s in stored.resources[kind].items() if n not in names]
        )
        union[kind] = merged[kind] + kept
    issues = []
    for issue in check_project(make_project({}, union)):
        loc = issue.loc
        if (
            len(loc) >= 2
            and isinstance(loc[0], str)
            and isinstance(loc[1], int)
            and loc[1] >= len(getattr(project, loc[0]))
        ):
            issue = Issue(issue.message, resource=f"stored {issue.resource}")
        issues.append(issue)
    return issues
