"""Loading project files: YAML 1.2 (ruamel.yaml) or JSON, `{env: NAME}` values, every error at once
with file, resource, field and line."""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping, Set
from datetime import date, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from ruamel.yaml.comments import CommentedMap, CommentedSeq, TaggedScalar
from ruamel.yaml.scalarbool import ScalarBoolean

from apimd.model.common import SECRET_MASK, escaped_controls
from apimd.model.errors import Issue, ValidationFailed
from apimd.model.kinds import ResourceKind
from apimd.model.parsing import parse_text
from apimd.model.project import Project, check_project
from apimd.model.validation import kind_of, validation_issues

_Loc = tuple[Any, ...]
"""A location as found: mapping keys as written (any hashable), list indexes, pydantic's `[key]`."""

_ENV_UNSET = "unset"
"""Stands in for a missing env var so validation goes on; issues at its location are dropped."""
_MIN_SCRUBBED = 4
"""Env values shorter than this are not searched for in messages (SPEC §3 does the same)."""
_SURROGATE = re.compile("[\ud800-\udfff]")


def load_project_file(
    path: str | Path,
    environ: Mapping[str, str] | None = None,
    *,
    cross_check: bool = True,
    known: Mapping[str, Set[str]] | None = None,
) -> Project:
    """Read, parse, resolve `{env: NAME}`, validate (models + `check_project`) and return the
    project; on any problem raise `ValidationFailed` holding every issue found. `cross_check=False`
    skips `check_project`, for a file applied on top of what a daemon already holds, unless
    `known` gives the names it holds (kind → names): then a file with shape errors gets its
    unknown references reported in the same pass."""
    filename = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        message = f"not UTF-8 text (invalid byte at offset {exc.start})"
        raise ValidationFailed([Issue(message, file=filename)]) from None
    except OSError as exc:
        message = f"cannot read the file: {exc.strerror or exc}"
        raise ValidationFailed([Issue(message, file=filename)]) from None
    return load_project_text(
        text, filename=filename, environ=environ, cross_check=cross_check, known=known
    )


def load_project_text(
    text: str,
    *,
    filename: str = "<project>",
    environ: Mapping[str, str] | None = None,
    cross_check: bool = True,
    known: Mapping[str, Set[str]] | None = None,
) -> Project:
    """As `load_project_file`, from text (YAML or JSON)."""
    parsed, data, tree, issues = parse_text(text.removeprefix("\ufeff"), filename)
    if not parsed:
        raise ValidationFailed(_finish(issues, filename=filename, tree=None))
    return _validate(
        data,
        filename=filename,
        lines=tree,
        environ=environ,
        issues=issues,
        cross_check=cross_check,
        known=known,
    )


def validate_project_data(
    data: Any,
    *,
    filename: str | None = None,
    lines: Any = None,
    environ: Mapping[str, str] | None = None,
    cross_check: bool = True,
) -> Project:
    """Validate already-parsed data (e.g. a REST body); `lines` maps locations to line numbers.
    `cross_check=False` skips `check_project`, for partial documents whose references are
    checked against what is stored."""
    return _validate(
        data, filename=filename, lines=lines, environ=environ, issues=[], cross_check=cross_check
    )


# --- validation --------------------------------------------------------------------------------


def _validate(
    data: Any,
    *,
    filename: str | None,
    lines: Any,
    environ: Mapping[str, str] | None,
    issues: list[Issue],
    cross_check: bool = True,
    known: Mapping[str, Set[str]] | None = None,
) -> Project:
    resolver = _EnvResolver(os.environ if environ is None else environ)
    project: Project | None = None
    try:
        project, found = _check(data, resolver, cross_check=cross_check, known=known)
    except RecursionError:
        found = [Issue("the document is nested too deeply")]
    all_issues = [*issues, *found]
    if all_issues or project is None:
        tree = lines if lines is not None else data
        raise ValidationFailed(
            _finish(all_issues, filename=filename, tree=tree, scrub=resolver.values)
        )
    return project


def _check(
    data: Any,
    resolver: _EnvResolver,
    *,
    cross_check: bool,
    known: Mapping[str, Set[str]] | None = None,
) -> tuple[Project | None, list[Issue]]:
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        message = (
            "a project must be a mapping of sections (version, variables, auth, tokens, calls,"
            f" workflows, schedules), not {kind_of(data)}"
        )
        return None, [Issue(message)]
    resolved = resolver.resolve(data)
    issues = list(resolver.issues)
    try:
        project = Project.model_validate(resolved)
    except ValidationError as exc:
        found = validation_issues(exc, Project, hide_input=resolver.sourced.__contains__)
        issues += [issue for issue in found if not resolver.failed_at(issue.loc)]
        if cross_check or known is not None:
            # SPEC §7: every problem at once, so a file's unknown references come with its
            # shape errors rather than in a second round after those are fixed.
            issues += [
                i for i in _partial_references(resolved, known) if not resolver.failed_at(i.loc)
            ]
        return None, issues
    if cross_check:
        issues += [i for i in check_project(project) if not resolver.failed_at(i.loc)]
    return project, issues


def _partial_references(
    resolved: Mapping[Any, Any], known: Mapping[str, Set[str]] | None
) -> list[Issue]:
    """`check_project` on the resources that are valid on their own, against every name the
    document (and `known`) gives, valid or not; locations point into the whole document."""
    if not isinstance(resolved, Mapping):
        return []
    valid: dict[str, list[Any]] = {}
    where: dict[str, list[int]] = {}
    names: dict[str, set[str]] = {kind: set(given) for kind, given in (known or {}).items()}
    for kind in ResourceKind:
        model = kind.model
        items = resolved.get(kind)
        if kind == "variables" or not isinstance(items, list):
            continue
        valid[kind], where[kind] = [], []
        for index, item in enumerate(items):
            name = item.get("name") if isinstance(item, Mapping) else None
            if isinstance(name, str):
                names.setdefault(kind, set()).add(name)
            try:
                valid[kind].append(model.model_validate(item))
            except ValidationError:
                continue
            where[kind].append(index)
    issues = []
    partial = Project.model_construct(
        auth=valid.get("auth", []),
        tokens=valid.get("tokens", []),
        calls=valid.get("calls", []),
        workflows=valid.get("workflows", []),
        schedules=valid.get("schedules", []),
    )
    for issue in check_project(partial, names):
        loc = issue.loc
        if len(loc) >= 2 and isinstance(loc[0], str) and type(loc[1]) is int:
            loc = (loc[0], where[loc[0]][loc[1]], *loc[2:])
        issues.append(dataclasses.replace(issue, loc=loc))
    return issues


class _EnvResolver:
    """Replaces `{env: NAME}` mappings by the environment's values and turns ruamel's scalar
    types into plain Python ones; remembers what it substituted and what failed."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self.environ = environ
        self.issues: list[Issue] = []
        self.failed: list[_Loc] = []
        self.sourced: set[_Loc] = set()
        self.values: set[str] = set()
        self._memo: dict[tuple[int, bool], Any] = {}

    def failed_at(self, loc: _Loc) -> bool:
        return any(loc[: len(bad)] == bad for bad in self.failed)

    def resolve(self, value: Any, loc: _Loc = (), raw: bool = False) -> Any:
        if isinstance(value, Mapping):
            if not raw and set(value) == {"env"}:
                return self._lookup(value["env"], loc)
            if (
                not raw
                and len(loc) == 2
                and loc[0] == "variables"
                and set(value) == {"env", "secret"}
            ):
                return {"value": self._lookup(value["env"], loc), "secret": value["secret"]}
            return self._container(value, loc, raw)
        if isinstance(value, list | tuple | Set):
            return self._container(value, loc, raw)
        return _plain(value)

    def _container(self, value: Any, loc: _Loc, raw: bool) -> Any:
        # YAML aliases share one object: convert it once, so a "billion laughs" stays small.
        memo_key = (id(value), raw)
        if memo_key in self._memo:
            return self._memo[memo_key]
        if isinstance(value, Mapping):
            out: dict[Any, Any] = {}
            self._memo[memo_key] = out
            for key, item in value.items():
                # A call's `json` body is payload, sent as written: `{"env": "prod"}` is data.
                body = len(loc) == 2 and loc[0] == "calls" and key == "json"
                out[_plain(key)] = self.resolve(item, (*loc, key), raw or body)
            return out
        items: list[Any] = []
        self._memo[memo_key] = items
        items.extend(self.resolve(item, (*loc, i), raw) for i, item in enumerate(value))
        return items

    def _lookup(self, name: Any, loc: _Loc) -> str:
        if not isinstance(name, str) or not name:
            message = "`env` must give the name of an environment variable"
        elif "\0" in name or "=" in name or not name.isprintable() or not _encodable(name):
            message = f"`env` gives {name!r}, which is not a possible environment variable name"
        elif (value := self.environ.get(name)) is None:
            message = f"environment variable {name} is not set"
        else:
            self.sourced.add(loc)
            if len(value) >= _MIN_SCRUBBED:
                self.values.add(value)
            return value
        self.issues.append(Issue(message, loc=loc))
        self.failed.append(loc)
        return _ENV_UNSET


def _encodable(text: str) -> bool:
    """Whether `text` can be an environment variable name of this process (lone surrogates
    cannot)."""
    try:
        os.fsencode(text)
    except UnicodeError:
        return False
    return True


def _plain(value: Any) -> Any:
    """ruamel's scalar subclasses and YAML timestamps as plain JSON-like values."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, ScalarBoolean):
        return bool(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        text = str(value)
        if _SURROGATE.search(text):
            # ruamel reads JSON's "\ud83d\ude00" as two halves; join them like json does.
            text = text.encode("utf-16", "surrogatepass").decode("utf-16", "surrogatepass")
        return text
    if isinstance(value, TaggedScalar):
        return _plain(value.value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


# --- the finished issues -----------------------------------------------------------------------


def _finish(
    issues: list[Issue], *, filename: str | None, tree: Any, scrub: Set[str] = frozenset()
) -> list[Issue]:
    """Issues with file, line, readable field and resource filled in, secrets masked, sorted by
    line, each once."""
    finished: list[Issue] = []
    for issue in issues:
        loc, line = _locate(tree, issue.loc)
        message = issue.message
        for value in sorted(scrub, key=len, reverse=True):
            message = message.replace(value, SECRET_MASK)
        finished.append(
            dataclasses.replace(
                issue,
                message=message,
                loc=loc,
                file=issue.file or filename,
                line=issue.line or line,
                resource=issue.resource or _resource(tree, issue.loc),
            )
        )
    unique = list(dict.fromkeys(finished))
    return sorted(unique, key=lambda i: (i.line is None, i.line or 0))


def _locate(tree: Any, loc: _Loc) -> tuple[tuple[str | int, ...], int | None]:
    """`loc` as it reads in the document (pydantic's `[key]` dropped, mapping keys as text) and
    the 1-based line of its deepest part found in `tree`."""
    shown: list[str | int] = []
    line = _root_line(tree) if not loc else None
    node = tree
    for part in loc:
        if part == "[key]":
            continue
        if isinstance(node, Mapping):
            # A key's control characters escaped: the path is printed (a header's name).
            shown.append(escaped_controls(part if isinstance(part, str) else str(part)))
            line = _line(node, "key", part) or line
            node = node.get(part) if _has_key(node, part) else None
        elif isinstance(node, list) and type(part) is int and 0 <= part < len(node):
            shown.append(part)
            line = _line(node, "item", part) or line
            node = node[part]
        else:
            shown.append(part if type(part) is int else escaped_controls(str(part)))
            node = None
    return tuple(shown), line


def _has_key(node: Mapping[Any, Any], key: Any) -> bool:
    try:
        return key in node
    except TypeError:  # unhashable
        return False


def _line(node: Any, kind: str, part: Any) -> int | None:
    if not isinstance(node, CommentedMap | CommentedSeq):
        return None
    try:
        position = node.lc.key(part) if kind == "key" else node.lc.item(part)
        return int(position[0]) + 1
    except (KeyError, IndexError, TypeError, AttributeError):  # merged (`<<`) keys have no lc
        return None


def _root_line(tree: Any) -> int | None:
    if isinstance(tree, CommentedMap | CommentedSeq):
        return int(tree.lc.line) + 1
    return None


def _resource(tree: Any, loc: _Loc) -> str | None:
    """`call 'list-orders'` for a location inside that call, when the call has a name."""
    if len(loc) < 2 or type(loc[1]) is not int or not isinstance(tree, Mapping):
        return None
    kind = ResourceKind.named(loc[0])
    items = tree.get(loc[0]) if kind else None
    if kind is None or not isinstance(items, list) or not 0 <= loc[1] < len(items):
        return None
    item = items[loc[1]]
    name = item.get("name") if isinstance(item, Mapping) else None
    if isinstance(name, str | int) and not isinstance(name, bool) and str(name):
        return kind.describe(str(name))
    return None
