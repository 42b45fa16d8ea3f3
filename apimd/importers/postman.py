"""`apimd import postman`: Collection v2.1/v2.0 (with an environment file) → calls, folders →
workflows, variables, auth and the common test idioms (SPEC §12)."""

from __future__ import annotations

import json
import re
from typing import Any

from apimd.importers.builder import (
    SYSTEM_VARIABLES,
    ImportFailed,
    ProjectBuilder,
    is_secret_name,
)
from apimd.importers.postman_auth import translate_auth
from apimd.importers.postman_tests import translate_tests
from apimd.importers.requests import RequestParts, add_request

_VAR = re.compile(r"\{\{\s*([^{}]+?)\s*\}\}")
_DYNAMIC = {
    "$guid": "UUID",
    "$randomUUID": "UUID",
    "$timestamp": "UNIXTIME",
    "$isoTimestamp": "DATETIME",
    "$randomInt": "RANDINT",
}


class _Collection:
    def __init__(self, builder: ProjectBuilder) -> None:
        self.builder = builder
        self.rename: dict[str, str] = {}

    def template(self, text: Any, where: str) -> str:
        """Postman's `{{var}}` as apimd's `{{VAR}}`; dynamic variables mapped where apimd has
        one."""

        def swap(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("$"):
                if name in _DYNAMIC:
                    return "{{" + _DYNAMIC[name] + "}}"
                self.builder.skip(where, f"dynamic variable {{{{{name}}}}} has no apimd equivalent")
                return match.group(0)
            return "{{" + self.variable(name) + "}}"

        return _VAR.sub(swap, "" if text is None else str(text))

    def variable(self, name: str) -> str:
        """apimd's name for Postman variable `name`: distinct Postman names (`base-url` and
        `base_url`, `Token` and `token`) stay distinct variables, and none takes the name of
        an engine variable (`RUN_ID`, `ACCESS_TOKEN`…: those would win)."""
        if name not in self.rename:
            apimd_name = self.builder.variable_name(name)
            taken = set(self.rename.values()) | SYSTEM_VARIABLES  # the engine's own
            candidate, n = apimd_name, 2
            while candidate in taken:
                candidate, n = f"{apimd_name}_{n}", n + 1
            self.rename[name] = candidate
        return self.rename[name]

    def define(self, entries: Any, source: str, overridden: set[str] | None = None) -> None:
        """Define the variables of `entries`, but those `overridden` (by the environment)."""
        for key, entry in _enabled(entries):
            name = self.variable(key)
            if key in (overridden or set()):
                continue
            value = self.template(entry.get("value", ""), f"{source} variable {key}")
            secret = entry.get("type") == "secret" or is_secret_name(key)
            if secret and value and not _VAR.fullmatch(value):
                b = self.builder
                spec = {"value": value, "secret": True} if b.reveal_secrets else None
                if spec is None:
                    spec = {"env": name, "secret": True}
                    b.secrets.append(
                        f"{source} variable {key} → secret variable {name}: set {name} in the environment"
                    )
                self.builder.variables[name] = spec
            else:
                if not secret:
                    value = self.builder.hide_userinfo(
                        value, f"{name}_password", f"{source} variable {key}"
                    )
                self.builder.variables[name] = {"value": value, "secret": True} if secret else value


def _enabled(entries: Any) -> list[tuple[str, dict[str, Any]]]:
    """(key, entry) of each enabled variable entry."""
    out = []
    for entry in entries if isinstance(entries, list) else []:
        if (
            isinstance(entry, dict)
            and not entry.get("disabled")
            and entry.get("enabled") is not False
        ):
            key = str(entry.get("key") or entry.get("id") or "")
            if key:
                out.append((key, entry))
    return out


def import_postman(text: str, builder: ProjectBuilder, *, environment: str | None = None) -> None:
    """Translate the collection in `text` (and the environment file's text, if given)."""
    data = _json(text, "collection")
    info = data.get("info") if isinstance(data, dict) else None
    schema = str(info.get("schema", "")) if isinstance(info, dict) else ""
    if not isinstance(info, dict) or not re.search(r"v2\.[01]\.\d", schema):
        raise ImportFailed(
            "not a Postman collection v2.0/v2.1 (info.schema names the version; "
            "export the collection again as v2.1)"
        )
    collection = _Collection(builder)
    values = None
    if environment is not None:
        env = _json(environment, "environment")
        if not isinstance(env, dict) or not isinstance(env.get("values"), list):
            raise ImportFailed("the environment file has no `values` list")
        values = env["values"]
    # The environment's value of a variable wins: the collection's is not defined (nor listed).
    overridden = {key for key, _ in _enabled(values)}
    collection.define(data.get("variable"), "collection", overridden)
    if values is not None:
        collection.define(values, "environment")
    loose: list[str] = []
    items = _listed(builder, data.get("item"), "collection", "`item`")
    _items(collection, items, data.get("auth"), loose, str(info.get("name", "")))
    _events(collection, data.get("event"), "collection")
    if loose:
        builder.add_workflow(str(info.get("name") or "collection"), loose)


def _listed(builder: ProjectBuilder, value: Any, where: str, what: str) -> list[Any]:
    """`value` when it is a list; nothing (listed, unless it is absent) when it is not."""
    if isinstance(value, list):
        return value
    if value is not None:
        builder.skip(where, f"{what} is not a list: ignored")
    return []


def _json(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise ImportFailed(f"the {what} is not JSON: {exc}") from None


def _items(
    collection: _Collection, items: list[Any], auth: Any, into: list[str], path: str
) -> None:
    for item in items:
        if not isinstance(item, dict):
            continue
        name = str(item.get("name") or "request")
        if isinstance(item.get("item"), list):
            steps: list[str] = []
            folder_auth = _own_auth(item.get("auth")) or auth
            _items(collection, item["item"], folder_auth, steps, f"{path}/{name}")
            _events(collection, item.get("event"), f"folder {name!r}")
            collection.builder.add_workflow(name, steps)
        elif item.get("request") is not None:
            into.append(_request(collection, item, auth, f"{path}/{name}"))


def _own_auth(auth: Any) -> Any:
    """An item's own auth; `inherit` (or none) means its parent's."""
    if isinstance(auth, dict) and auth.get("type") not in (None, "inherit"):
        return auth
    return None


def _events(collection: _Collection, events: Any, where: str) -> None:
    for event in _event_list(collection.builder, events, where):
        lines = _script_lines(collection.builder, event, where)
        if any(line.strip() for line in lines):
            collection.builder.skip(where, f"{event.get('listen', 'event')} script not translated")


def _event_list(builder: ProjectBuilder, events: Any, where: str) -> list[dict[str, Any]]:
    """The event objects of `events`; anything else in it is listed and left out."""
    out = []
    for index, event in enumerate(_listed(builder, events, where, "`event`")):
        if isinstance(event, dict):
            out.append(event)
        else:
            builder.skip(where, f"event {index + 1} is not an object: ignored")
    return out


def _script_lines(builder: ProjectBuilder, event: dict[str, Any], where: str) -> list[str]:
    script = event.get("script")
    exec_ = script.get("exec") if isinstance(script, dict) else None
    if isinstance(exec_, str):
        return exec_.splitlines()
    return [str(line) for line in _listed(builder, exec_, where, "a script's `exec`")]


def _request(collection: _Collection, item: dict[str, Any], auth: Any, where: str) -> str:
    builder = collection.builder
    request = item["request"]
    if isinstance(request, str):
        request = {"url": request, "method": "GET"}
    if not isinstance(request, dict):
        raise ImportFailed(f"{where}: `request` is neither an object nor a URL")
    url = request.get("url")
    raw_url = url.get("raw") if isinstance(url, dict) else url
    if not raw_url:
        raise ImportFailed(f"{where}: the request has no URL")
    url_text = collection.template(raw_url, where)
    if isinstance(url, dict):
        for variable in _listed(builder, url.get("variable"), where, "the URL's `variable`"):
            if isinstance(variable, dict) and variable.get("key"):
                value = collection.template(variable.get("value", ""), where)
                url_text = re.sub(
                    rf"/:{re.escape(str(variable['key']))}(?=[/?#]|$)", "/" + value, url_text
                )
    if "://" not in url_text and not url_text.startswith("{{"):
        url_text = f"https://{url_text}"
    parts = RequestParts(where=where, method=str(request.get("method") or "GET"), url=url_text)
    for header in _listed(builder, request.get("header"), where, "`header`"):
        if isinstance(header, dict) and not header.get("disabled"):
            parts.headers.append(
                (str(header.get("key", "")), collection.template(header.get("value"), where))
            )
    _body(collection, request.get("body"), parts, where)
    translated = translate_auth(collection, _own_auth(request.get("auth")) or auth, where)
    parts.auth, parts.token = translated
    saved: list[str] = []
    events = item.get("event") or item.get("events")
    for event in _event_list(builder, events, where):
        lines = _script_lines(builder, event, where)
        if event.get("listen") == "test":
            tests = translate_tests(lines, collection.rename)
            for condition in tests.conditions:
                if "save_as" in condition:
                    condition["save_as"] = builder.variable_name(condition["save_as"])
                if isinstance(condition.get("value"), str):
                    condition["value"] = collection.template(condition["value"], where)
            parts.conditions.extend(tests.conditions)
            saved += tests.saves_environment
            for line in tests.untranslated:
                builder.skip(where, f"test line not translated: {line}")
        elif any(line.strip() for line in lines):
            builder.skip(where, f"{event.get('listen')} script not translated")
    if saved:
        parts.extra["webhooks"] = [{"type": "save_variables", "names": sorted(set(saved))}]
    return add_request(builder, str(item.get("name") or "request"), parts)


def _body(collection: _Collection, body: Any, parts: RequestParts, where: str) -> None:
    if not isinstance(body, dict) or body.get("disabled"):
        return
    mode = body.get("mode")
    if mode == "raw":
        text = collection.template(body.get("raw"), where)
        if not text:
            return
        options = body.get("options")
        raw_options = options.get("raw") if isinstance(options, dict) else None
        language = raw_options.get("language") if isinstance(raw_options, dict) else None
        content_type = parts.header("content-type") or (
            "application/json" if language == "json" else None
        )
        parts.set_body_text(text, content_type)
    elif mode in ("urlencoded", "formdata"):
        fields: dict[str, str] = {}
        for field in _listed(collection.builder, body.get(mode), where, f"body `{mode}`"):
            if not isinstance(field, dict) or field.get("disabled"):
                continue
            if field.get("type") == "file":
                collection.builder.skip(where, f"file field {field.get('key')!r} not translated")
                continue
            fields[collection.template(field.get("key"), where)] = collection.template(
                field.get("value"), where
            )
        if not fields:
            return
        if mode == "urlencoded":
            parts.form = fields
        else:
            parts.multipart = fields
    elif mode == "graphql":
        graphql = body.get("graphql")
        if not isinstance(graphql, dict):
            collection.builder.skip(where, "body `graphql` is not an object: not translated")
            return
        payload: dict[str, Any] = {"query": collection.template(graphql.get("query"), where)}
        variables = graphql.get("variables")
        if variables:
            try:
                payload["variables"] = json.loads(collection.template(variables, where))
            except ValueError:
                collection.builder.skip(where, "GraphQL variables are not JSON: not translated")
        parts.json_body = payload
    elif mode:
        collection.builder.skip(where, f"body mode {mode!r} not translated")
