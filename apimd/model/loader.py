"""Loading project files: YAML 1.2 (ruamel.yaml) or JSON, `{env: NAME}` values, every error at once
with file, resource, field and line."""

from __future__ import annotations

import dataclasses
import difflib
import json
import os
import re
import types
from collections.abc import Mapping, Set
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq, TaggedScalar
from ruamel.yaml.error import MarkedYAMLError
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from ruamel.yaml.reader import ReaderError
from ruamel.yaml.scalarbool import ScalarBoolean

from apimd.model.common import NAME_PATTERN, SECRET_MASK, secret_field_names
from apimd.model.errors import Issue, ValidationFailed
from apimd.model.project import Project, check_project
from apimd.model.resources import HTTP_METHOD

RawLoc = tuple[Any, ...]
"""A location as found: mapping keys as written (any hashable), list indexes, pydantic's `[key]`."""

_RESOURCE_KINDS = {
    "auth": "auth",
    "tokens": "token",
    "calls": "call",
    "workflows": "workflow",
    "schedules": "schedule",
}
_MERGE_TAG = "tag:yaml.org,2002:merge"
_ENV_UNSET = "unset"
"""Stands in for a missing env var so validation goes on; issues at its location are dropped."""
_MIN_SCRUBBED = 4
"""Env values shorter than this are not searched for in messages (SPEC §3 does the same)."""
_MAX_SHOWN = 40
_SURROGATE = re.compile("[\ud800-\udfff]")


def load_project_file(path: str | Path, environ: Mapping[str, str] | None = None) -> Project:
    """Read, parse, resolve `{env: NAME}`, validate (models + `check_project`) and return the
    project; on any problem raise `ValidationFailed` holding every issue found."""
    filename = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        message = f"not UTF-8 text (invalid byte at offset {exc.start})"
        raise ValidationFailed([Issue(message, file=filename)]) from None
    except OSError as exc:
        message = f"cannot read the file: {exc.strerror or exc}"
        raise ValidationFailed([Issue(message, file=filename)]) from None
    return load_project_text(text, filename=filename, environ=environ)


def load_project_text(
    text: str, *, filename: str = "<project>", environ: Mapping[str, str] | None = None
) -> Project:
    """As `load_project_file`, from text (YAML or JSON)."""
    parsed, data, tree, issues = _parse(text.removeprefix("\ufeff"), filename)
    if not parsed:
        raise ValidationFailed(_finish(issues, filename=filename, tree=None))
    return _validate(data, filename=filename, lines=tree, environ=environ, issues=issues)


def validate_project_data(
    data: Any,
    *,
    filename: str | None = None,
    lines: Any = None,
    environ: Mapping[str, str] | None = None,
) -> Project:
    """Validate already-parsed data (e.g. a REST body); `lines` maps locations to line numbers."""
    return _validate(data, filename=filename, lines=lines, environ=environ, issues=[])


# --- parsing -----------------------------------------------------------------------------------


def _parse(text: str, filename: str) -> tuple[bool, Any, Any, list[Issue]]:
    """(parsed?, data, ruamel tree for line numbers or None, issues found so far)."""
    try:
        # Compose first: the node tree shows every duplicate key with its line, where loading
        # stops at the first one.
        root = YAML(typ="rt").compose(text)
        loader = YAML(typ="rt")
        loader.allow_duplicate_keys = True
        tree = loader.load(text)
    except Exception as exc:  # ruamel raises assorted types: ValueError for `!!int x`, …
        if _looks_like_json(text, filename):
            fallback = _load_json(text)
            if isinstance(fallback, tuple):
                return True, fallback[0], None, fallback[1]
            if filename.lower().endswith(".json"):
                return False, None, None, [fallback]
        return False, None, None, [_syntax_issue(exc, text)]
    return True, tree, tree, list(_duplicate_keys(root))


def _looks_like_json(text: str, filename: str) -> bool:
    return filename.lower().endswith(".json") or text.lstrip().startswith(("{", "["))


def _load_json(text: str) -> tuple[Any, list[Issue]] | Issue:
    """JSON that ruamel refuses (keys over 1024 chars, …): the data, without line numbers."""
    duplicates: list[str] = []

    def first_wins(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in pairs:
            if key in out:
                duplicates.append(key)
            else:
                out[key] = value
        return out

    try:
        data = json.loads(text, object_pairs_hook=first_wins)
    except json.JSONDecodeError as exc:
        return Issue(f"invalid JSON: {exc.msg} (column {exc.colno})", line=exc.lineno)
    except (ValueError, RecursionError):
        return Issue("invalid JSON: nested too deeply")
    return data, [Issue(f"duplicate key `{key}`") for key in duplicates]


def _syntax_issue(exc: Exception, text: str) -> Issue:
    if isinstance(exc, MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        problem = ", ".join(str(part) for part in (exc.context, exc.problem) if part)
        problem = problem or "syntax error"
        if mark is not None:
            return Issue(f"invalid YAML: {problem} (column {mark.column + 1})", line=mark.line + 1)
        return Issue(f"invalid YAML: {problem}")
    if isinstance(exc, ReaderError) and isinstance(exc.position, int):
        line = text.count("\n", 0, exc.position) + 1
        char = exc.character if isinstance(exc.character, int) else ord(str(exc.character)[:1])
        return Issue(f"invalid YAML: character #x{char:04x} is not allowed", line=line)
    if isinstance(exc, RecursionError):
        return Issue("invalid YAML: nested too deeply")
    # Never str(exc): constructor errors quote the offending value, which may be a secret.
    return Issue("invalid YAML: a value does not fit its explicit tag (like `!!int abc`)")


def _duplicate_keys(root: Node | None) -> list[Issue]:
    """Every mapping key that appears twice in its mapping, with its line and path."""
    issues: list[Issue] = []
    seen: set[int] = set()  # aliases share nodes: visit each once
    pending: list[tuple[Node | None, RawLoc]] = [(root, ())]
    while pending:
        node, loc = pending.pop()
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, MappingNode):
            first_line: dict[tuple[str, str], int] = {}
            for key_node, value_node in node.value:
                key = key_node.value if isinstance(key_node, ScalarNode) else None
                if isinstance(key, str) and str(key_node.tag) != _MERGE_TAG:
                    line = key_node.start_mark.line + 1
                    identity = (str(key_node.tag), key)
                    if identity in first_line:
                        message = f"duplicate key `{key}` (first at line {first_line[identity]})"
                        issues.append(Issue(message, loc=(*loc, key), line=line))
                    else:
                        first_line[identity] = line
                pending.append((value_node, (*loc, key)))
        elif isinstance(node, SequenceNode):
            pending.extend((item, (*loc, i)) for i, item in enumerate(node.value))
    return issues


# --- validation --------------------------------------------------------------------------------


def _validate(
    data: Any,
    *,
    filename: str | None,
    lines: Any,
    environ: Mapping[str, str] | None,
    issues: list[Issue],
) -> Project:
    resolver = _EnvResolver(os.environ if environ is None else environ)
    project: Project | None = None
    try:
        project, found = _check(data, resolver)
    except RecursionError:
        found = [Issue("the document is nested too deeply")]
    all_issues = [*issues, *found]
    if all_issues or project is None:
        tree = lines if lines is not None else data
        raise ValidationFailed(
            _finish(all_issues, filename=filename, tree=tree, scrub=resolver.values)
        )
    return project


def _check(data: Any, resolver: _EnvResolver) -> tuple[Project | None, list[Issue]]:
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        message = (
            "a project must be a mapping of sections (version, variables, auth, tokens, calls,"
            f" workflows, schedules), not {_kind_of(data)}"
        )
        return None, [Issue(message)]
    resolved = resolver.resolve(data)
    issues = list(resolver.issues)
    try:
        project = Project.model_validate(resolved)
    except ValidationError as exc:
        issues += [
            _pydantic_issue(error, resolver)
            for error in exc.errors(include_url=False)
            if not resolver.failed_at(error["loc"])
        ]
        return None, issues
    issues += [issue for issue in check_project(project) if not resolver.failed_at(issue.loc)]
    return project, issues


class _EnvResolver:
    """Replaces `{env: NAME}` mappings by the environment's values and turns ruamel's scalar
    types into plain Python ones; remembers what it substituted and what failed."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self.environ = environ
        self.issues: list[Issue] = []
        self.failed: list[RawLoc] = []
        self.sourced: set[RawLoc] = set()
        self.values: set[str] = set()
        self._memo: dict[tuple[int, bool], Any] = {}

    def failed_at(self, loc: RawLoc) -> bool:
        return any(loc[: len(bad)] == bad for bad in self.failed)

    def resolve(self, value: Any, loc: RawLoc = (), raw: bool = False) -> Any:
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

    def _container(self, value: Any, loc: RawLoc, raw: bool) -> Any:
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

    def _lookup(self, name: Any, loc: RawLoc) -> str:
        if not isinstance(name, str) or not name:
            message = "`env` must give the name of an environment variable"
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


# --- pydantic errors as issues -----------------------------------------------------------------


def _pydantic_issue(error: ErrorDetails, resolver: _EnvResolver) -> Issue:
    loc = error["loc"]
    show = (
        loc not in resolver.sourced
        and "variables" not in loc  # project, token and workflow variables: often secrets
        and not _is_secret_field(Project, loc)
    )
    return Issue(_message(error, Project, show_input=show), loc=loc)


def _message(error: ErrorDetails, root: type[BaseModel], *, show_input: bool) -> str:
    """A pydantic error in the words a project file's author uses."""
    kind, loc, ctx = error["type"], error["loc"], error.get("ctx") or {}
    last = str(loc[-1]) if loc else ""
    got = f" (got {_shown(error.get('input'), show_input)})"
    if kind == "extra_forbidden":
        message = f"unknown field `{last}`"
        model = _model_at(root, loc[:-1])
        known = [info.alias or name for name, info in model.model_fields.items()] if model else []
        close = difflib.get_close_matches(last, known, n=1, cutoff=0.6)
        return message + (f"; did you mean `{close[0]}`?" if close else "")
    if kind == "missing":
        return f"missing required field `{last}`"
    if kind in ("literal_error", "enum"):
        return f"must be {ctx.get('expected', 'one of the allowed values')}{got}"
    if kind in _BOUNDS:
        return f"{_BOUNDS[kind][1]} {_number(ctx.get(_BOUNDS[kind][0]))}"
    if kind in ("too_short", "too_long"):
        count = int(ctx.get("min_length" if kind == "too_short" else "max_length", 0))
        least = "at least" if kind == "too_short" else "at most"
        return f"needs {least} {count} item{'s' if count != 1 else ''}"
    if kind in ("string_too_short", "string_too_long"):
        count = int(ctx.get("min_length" if kind == "string_too_short" else "max_length", 0))
        least = "at least" if kind == "string_too_short" else "at most"
        return f"must be {least} {count} character{'s' if count != 1 else ''}"
    if kind == "string_pattern_mismatch":
        return _PATTERNS.get(str(ctx.get("pattern")), f"must match {ctx.get('pattern')}") + got
    if kind in ("value_error", "assertion_error") and "error" in ctx:
        return str(ctx["error"])
    if kind == "string_type" and isinstance(error.get("input"), int | float):
        # `01234` is the number 1234 in YAML: only quotes keep such a value as written.
        return f"must be a string (got {_kind_of(error.get('input'))}; quote it)"
    if kind in _MUST_BE:
        return _MUST_BE[kind] + got
    text = error["msg"]
    return text[:1].lower() + text[1:]


_MUST_BE = {
    "string_type": "must be a string",
    "string_unicode": "must be a string",
    "int_type": "must be a whole number",
    "int_parsing": "must be a whole number",
    "int_from_float": "must be a whole number",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "finite_number": "must be a finite number",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "dict_type": "must be a mapping (key: value)",
    "model_type": "must be a mapping (key: value)",
    "model_attributes_type": "must be a mapping (key: value)",
    "list_type": "must be a list",
    "datetime_type": "must be a date and time like 2024-05-01T12:00:00Z",
    "datetime_parsing": "must be a date and time like 2024-05-01T12:00:00Z",
    "datetime_from_date_parsing": "must be a date and time like 2024-05-01T12:00:00Z",
}
_BOUNDS = {
    "greater_than": ("gt", "must be more than"),
    "greater_than_equal": ("ge", "must be at least"),
    "less_than": ("lt", "must be less than"),
    "less_than_equal": ("le", "must be at most"),
}
_PATTERNS = {
    NAME_PATTERN: "must be a name: 1–100 characters of letters, digits and `_ . : -`,"
    " starting with a letter or digit",
    HTTP_METHOD: "must be an HTTP method such as GET or POST",
}


def _number(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _kind_of(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list | tuple | Set):
        return "a list"
    return "a value of another type"


def _shown(value: Any, allowed: bool) -> str:
    """The input quoted when it is short and may be shown, else only what kind of value it is."""
    if allowed and isinstance(value, str | int | float) and not isinstance(value, bool):
        text = repr(value)
        if len(text) <= _MAX_SHOWN:
            return text
    return _kind_of(value)


def _unwrap(annotation: Any) -> Any:
    """`Annotated[X, …]` and `X | None` → X."""
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
        elif origin in (Union, types.UnionType):
            args = [a for a in get_args(annotation) if a is not type(None)]
            if len(args) != 1:
                return annotation
            annotation = args[0]
        else:
            return annotation


def _field(model: type[BaseModel], key: Any) -> FieldInfo | None:
    for name, info in model.model_fields.items():
        if key in (name, info.alias):
            return info
    return None


def _model_at(root: type[BaseModel], loc: RawLoc) -> type[BaseModel] | None:
    """The model class that validates the value at `loc`, if that value is a model."""
    annotation: Any = root
    for part in loc:
        annotation = _unwrap(annotation)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            info = _field(annotation, part)
            if info is None:
                return None
            annotation = info.annotation
        elif get_origin(annotation) in (list, dict):
            annotation = get_args(annotation)[-1]
        else:
            return None
    annotation = _unwrap(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def _is_secret_field(root: type[BaseModel], loc: RawLoc) -> bool:
    model = _model_at(root, loc[:-1]) if loc else None
    return model is not None and loc[-1] in secret_field_names(model)


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


def _locate(tree: Any, loc: RawLoc) -> tuple[tuple[str | int, ...], int | None]:
    """`loc` as it reads in the document (pydantic's `[key]` dropped, mapping keys as text) and
    the 1-based line of its deepest part found in `tree`."""
    shown: list[str | int] = []
    line = _root_line(tree) if not loc else None
    node = tree
    for part in loc:
        if part == "[key]":
            continue
        if isinstance(node, Mapping):
            shown.append(part if isinstance(part, str) else str(part))
            line = _line(node, "key", part) or line
            node = node.get(part) if _has_key(node, part) else None
        elif isinstance(node, list) and type(part) is int and 0 <= part < len(node):
            shown.append(part)
            line = _line(node, "item", part) or line
            node = node[part]
        else:
            shown.append(part if type(part) in (str, int) else str(part))
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


def _resource(tree: Any, loc: RawLoc) -> str | None:
    """`call 'list-orders'` for a location inside the second call, when that call has a name."""
    if len(loc) < 2 or type(loc[1]) is not int or not isinstance(tree, Mapping):
        return None
    kind = _RESOURCE_KINDS.get(loc[0]) if isinstance(loc[0], str) else None
    items = tree.get(loc[0]) if kind else None
    if kind is None or not isinstance(items, list) or not 0 <= loc[1] < len(items):
        return None
    item = items[loc[1]]
    name = item.get("name") if isinstance(item, Mapping) else None
    if isinstance(name, str | int) and not isinstance(name, bool) and str(name):
        return f"{kind} {str(name)!r}"
    return None
