"""`apimd import openapi`: OpenAPI 3.0/3.1 → `BASE_URL`, one call per operation (parameters from
examples, the first 2xx status as condition) and security schemes as auth settings (SPEC §12).

Reading goes through `jsonschema-path`, which resolves local `$ref`s lazily as the importer walks
down, so recursive schemas never loop; `openapi-spec-validator` supplies the warnings."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

from jsonschema_path import SchemaPath
from openapi_spec_validator.shortcuts import get_validator_cls
from referencing.exceptions import Unresolvable
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from apimd.importers.builder import ImportFailed, ProjectBuilder, is_valid_url, shown_url
from apimd.importers.openapi_security import SecuritySchemes, is_mapping, unresolved
from apimd.importers.requests import RequestParts, add_request

METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
MAX_WARNINGS = 20
MAX_NODES = 2_000_000
"""Values a document may hold once read: far above any published API description."""
_NO_EXAMPLE = object()


def import_openapi(text: str, builder: ProjectBuilder) -> None:
    """Translate the OpenAPI document in `text`."""
    spec = _parse(text)
    version = str(spec.get("openapi", ""))
    if not re.match(r"3\.[01]\.", version):
        found = (spec.get("swagger") and f"Swagger {spec['swagger']}") or version or "no version"
        raise ImportFailed(f"not an OpenAPI 3.0/3.1 document ({found}): convert it to 3.x first")
    external = list(_external_refs(spec))
    if external:
        for ref in external[:MAX_WARNINGS]:
            builder.skip("$ref", f"{ref!r} points outside this document: not resolved")
    else:
        _validation_warnings(spec, builder)
    root = SchemaPath.from_dict(spec, handlers=NO_RETRIEVAL, resolved_cache_maxsize=4096)
    base_url = "http://localhost"
    with unresolved(builder, "servers"):
        base_url = _base_url(root, builder)
    schemes = SecuritySchemes(root, builder, base_url)
    global_security = None
    with unresolved(builder, "security"):
        global_security = _read(root / "security") if "security" in spec else None
    paths = root / "paths"
    declared = spec.get("paths") or {}
    if not isinstance(declared, dict):
        builder.skip("paths", "not a mapping: no operation translated")
        declared = {}
    for path in [str(p) for p in declared]:
        with unresolved(builder, f"path {path}"):
            for method, operation in _methods(paths / path):
                _operation(builder, schemes, path, method, operation, global_security)
    for key in ("webhooks", "callbacks"):
        if spec.get(key):
            builder.skip(key, "requests the API sends are not translated")


class _RefuseRetrieval(dict[str, Any]):
    """Resolver handlers for every URI scheme, each refusing: a `$ref` to a URL or a file is
    never fetched or read (jsonschema-path falls back to urllib for a scheme it has no handler
    for), only listed."""

    def __contains__(self, scheme: object) -> bool:
        return True

    def __missing__(self, scheme: str) -> Any:
        return _refuse


def _refuse(uri: str) -> Any:
    raise Unresolvable(ref=uri)


NO_RETRIEVAL = _RefuseRetrieval()


def _parse(text: str) -> dict[str, Any]:
    try:
        data: Any = (
            json.loads(text) if text.lstrip().startswith("{") else YAML(typ="safe").load(text)
        )
    except ValueError as exc:
        raise ImportFailed(f"not YAML or JSON: {exc}") from None
    except YAMLError as exc:
        raise ImportFailed(f"not YAML or JSON: {_yaml_problem(exc)}") from None
    if not isinstance(data, dict):
        raise ImportFailed("not an OpenAPI document (expected a mapping at the top)")
    document: dict[str, Any] = _string_keys(data, [MAX_NODES])
    return document


def _yaml_problem(exc: YAMLError) -> str:
    """`line L, column C: problem` (ruamel's own text names an internal string and tells how
    to suppress checks in code)."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None)
    if mark is None or not problem:
        return str(exc).split("\n", 1)[0]
    return f"line {mark.line + 1}, column {mark.column + 1}: {problem}"


def _string_keys(data: Any, budget: list[int]) -> Any:
    """YAML reads `200:` as a number; OpenAPI's keys are strings (response codes included).
    Copies at most `budget[0]` values: YAML aliases can make a small file a huge document."""
    budget[0] -= 1
    if budget[0] < 0:
        raise ImportFailed(
            f"too large: more than {MAX_NODES:,} values once YAML aliases are expanded"
        )
    if isinstance(data, dict):
        return {str(k): _string_keys(v, budget) for k, v in data.items()}
    if isinstance(data, list):
        return [_string_keys(v, budget) for v in data]
    return data


def _external_refs(data: Any) -> Iterator[str]:
    stack = [data]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and not ref.startswith("#"):
                yield ref
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)


def _validation_warnings(spec: dict[str, Any], builder: ProjectBuilder) -> None:
    try:
        validator = get_validator_cls(spec)(SchemaPath.from_dict(spec, handlers=NO_RETRIEVAL))
        errors = list(validator.iter_errors())
    except Exception as exc:  # the validator is a third party: its failure is only a warning
        # Its message may quote the document: only its kind is shown.
        why = type(exc).__name__
        builder.skip("validation", f"the document could not be validated ({why})")
        return
    for error in errors[:MAX_WARNINGS]:
        where = "/".join(str(p) for p in getattr(error, "absolute_path", ())) or "document"
        builder.skip(f"validation {where}", str(getattr(error, "message", error)))
    if len(errors) > MAX_WARNINGS:
        builder.skip("validation", f"{len(errors) - MAX_WARNINGS} more problems")


def _read(path: SchemaPath) -> Any:
    with path.open() as value:
        return value


def _base_url(root: SchemaPath, builder: ProjectBuilder) -> str:
    servers = _read(root / "servers") if (root / "servers").exists() else None
    url = "http://localhost"
    if isinstance(servers, list) and servers:
        server = servers[0]
        if isinstance(server, dict) and isinstance(server.get("url"), str):
            url = _server_url(server, builder)
        else:
            builder.skip("servers[0]", "has no `url`: BASE_URL is http://localhost, change it")
        if url.startswith("/"):
            builder.skip("servers[0]", f"relative URL {url!r}: BASE_URL starts at http://localhost")
            url = "http://localhost" + url
        elif not is_valid_url(url):
            shown = shown_url(url)
            builder.skip("servers[0]", f"URL {shown} is not valid: BASE_URL is http://localhost")
            url = "http://localhost"
    elif servers is not None and not isinstance(servers, list):
        builder.skip("servers", "not a list: BASE_URL is http://localhost, change it")
    else:
        builder.skip("servers", "none given: BASE_URL is http://localhost, change it")
    builder.variables["BASE_URL"] = url.rstrip("/")
    return url


def _server_url(server: dict[str, Any], builder: ProjectBuilder) -> str:
    """The server's URL with each of its variables' default put in."""
    url = str(server["url"])
    variables = server.get("variables")
    if variables is not None and not isinstance(variables, dict):
        builder.skip("servers[0]", "`variables` is not a mapping: ignored")
        return url
    for name, variable in (variables or {}).items():
        default = variable.get("default") if isinstance(variable, dict) else None
        if default is None:
            builder.skip(f"servers[0] variable {name}", "has no default: left in BASE_URL")
        else:
            url = url.replace("{" + str(name) + "}", str(default))
    return url


def _methods(item: SchemaPath) -> list[tuple[str, SchemaPath]]:
    return [(method, item / method) for method in METHODS if (item / method).exists()]


def _operation(
    builder: ProjectBuilder,
    schemes: SecuritySchemes,
    path: str,
    method: str,
    operation: SchemaPath,
    global_security: Any,
) -> None:
    op_id = _read(operation / "operationId") if (operation / "operationId").exists() else None
    label = str(op_id or f"{method}-{path}")
    where = f"operation {label}"
    parts = RequestParts(where=where, method=method.upper(), url="")
    url_path, query = path, []
    for param in _parameters(operation, builder, where):
        name, place = str(_read(param / "name")), str(_read(param / "in"))
        required = bool(_read(param / "required")) if (param / "required").exists() else False
        value = _example(param)
        if value is _NO_EXAMPLE:
            if not required and place != "path":
                continue
            var = builder.fresh_variable(f"{label}_{name}")
            builder.variables[var] = ""
            builder.skip(where, f"{place} parameter {name!r} has no example: fill in {var}")
            value = "{{" + var + "}}"
        text = _scalar(value)
        if place == "path":
            url_path = url_path.replace("{" + name + "}", quote(text, safe="{}"))
        elif place == "query":
            query.append(f"{quote(name)}={quote(text, safe='{}')}")
        elif place == "header":
            parts.headers.append((name, text))
        else:
            builder.skip(where, f"{place} parameter {name!r} is not translated")
    parts.url = "{{BASE_URL}}" + url_path + ("?" + "&".join(query) if query else "")
    _request_body(builder, operation, parts, where)
    _status(operation, parts)
    security = (
        _read(operation / "security") if (operation / "security").exists() else global_security
    )
    auth, token = schemes.for_requirements(security, where)
    parts.auth, parts.token = auth, token
    add_request(builder, label, parts)


def _parameters(operation: SchemaPath, builder: ProjectBuilder, where: str) -> Iterator[SchemaPath]:
    # Path-level parameters apply too, unless the operation overrides the same name and place.
    seen: set[tuple[str, str]] = set()
    for owner, whose in ((operation, "the operation's"), (operation.parent, "the path's")):
        params = owner / "parameters" if owner is not None else None
        if params is None or not params.exists():
            continue
        listed = _read(params)
        if not isinstance(listed, list):
            builder.skip(where, f"{whose} `parameters` is not a list: ignored")
            continue
        for index in range(len(listed)):
            param = params / index
            declared = _read(param)
            if not (
                isinstance(declared, dict)
                and isinstance(declared.get("name"), str)
                and isinstance(declared.get("in"), str)
            ):
                builder.skip(where, f"{whose} parameter {index + 1} has no name or `in`: ignored")
                continue
            key = (declared["name"], declared["in"])
            if key not in seen:
                seen.add(key)
                yield param


def _example(node: SchemaPath) -> Any:
    """The first example a parameter, media type or schema gives (no schema walking)."""
    if (node / "example").exists():
        return _read(node / "example")
    examples = node / "examples"
    if is_mapping(examples):
        for _name, example in examples.items():
            if (example / "value").exists():
                return _read(example / "value")
    schema = node / "schema"
    if schema.exists():
        for key in ("example", "default"):
            if (schema / key).exists():
                return _read(schema / key)
        for key in ("examples", "enum"):
            listed = _read(schema / key) if (schema / key).exists() else None
            if isinstance(listed, list) and listed:
                return listed[0]
    return _NO_EXAMPLE


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(_scalar(v) for v in value)
    return str(value)


def _request_body(
    builder: ProjectBuilder, operation: SchemaPath, parts: RequestParts, where: str
) -> None:
    body = operation / "requestBody"
    if not body.exists() or not is_mapping(body / "content"):
        return
    for media_type, media in (body / "content").items():
        example = _example(media)
        if example is _NO_EXAMPLE:
            continue
        parts.headers.append(("Content-Type", str(media_type)))
        if str(media_type).endswith("json"):
            parts.json_body = example
        elif media_type == "application/x-www-form-urlencoded" and isinstance(example, dict):
            parts.form = {str(k): _scalar(v) for k, v in example.items()}
        else:
            parts.body_text = example if isinstance(example, str) else json.dumps(example)
        return
    builder.skip(where, "request body has no example: the call is sent without one")


def _status(operation: SchemaPath, parts: RequestParts) -> None:
    responses = operation / "responses"
    if not is_mapping(responses):
        return
    codes = sorted(str(code) for code in responses.keys())  # noqa: SIM118 (a SchemaPath, not a dict)
    exact = [c for c in codes if c.isdigit() and c.startswith("2")]
    if exact:
        parts.conditions.append({"source": "status", "op": "eq", "value": int(exact[0])})
    elif "2XX" in (c.upper() for c in codes):
        parts.conditions.append({"source": "status", "op": "matches", "value": r"^2\d\d$"})
