"""The common Postman test idioms as conditions: status checks, JSON value checks, and
`pm.environment.set(K, pm.response.json()…)` as extraction (`save_as`). Anything else is listed."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

_STRUCTURE = re.compile(
    r"^(\}\s*\)?\s*;?|pm\.test\(.*function\s*\(\s*\)\s*\{|pm\.test\(.*=>\s*\{|"
    r"(var|let|const)\s+\w+\s*=\s*(pm\.response\.json\(\)|JSON\.parse\(responseBody\));?|"
    r"//.*|/\*.*\*/|\*.*|)$"
)
_STATUS = [
    re.compile(r"pm\.response\.to\.have\.status\((\d{3})\)"),
    re.compile(r"pm\.expect\(pm\.response\.code\)\.to\.(?:eql|equal|be\.equal|eq)\((\d{3})\)"),
    re.compile(r"tests\[.*\]\s*=\s*\(?\s*responseCode\.code\s*===?\s*(\d{3})"),
]
_ONE_OF = re.compile(r"pm\.expect\(pm\.response\.code\)\.to\.be\.oneOf\(\[([\d,\s]+)\]\)")
_OK = re.compile(r"pm\.response\.to\.be\.(ok|success)\b")
_HEADER = re.compile(r"pm\.response\.to\.have\.header\(\s*['\"]([^'\"]+)['\"]\s*\)")
_BODY_HAS = re.compile(
    r"pm\.expect\(pm\.response\.text\(\)\)\.to\.(?:include|contain)\(\s*(['\"])(.*)\1\s*\)"
)
_TIME = re.compile(r"pm\.expect\(pm\.response\.responseTime\)\.to\.be\.(below|above)\((\d+)\)")
_JSON_ROOT = r"(?:pm\.response\.json\(\)|JSON\.parse\(responseBody\)|{vars})"
_ACCESSOR = r"((?:\.[A-Za-z_$][\w$]*|\[\d+\]|\[['\"][^'\"]+['\"]\])*)"
_SETTERS = (
    r"(?:pm\.(environment|collectionVariables|globals|variables)\.set|"
    r"postman\.set(Environment|Global)Variable)"
)
_CHAI_OPS = {
    "eql": "eq",
    "equal": "eq",
    "eq": "eq",
    "include": "contains",
    "contain": "contains",
    "above": "gt",
    "greaterThan": "gt",
    "below": "lt",
    "lessThan": "lt",
    "least": "ge",
    "most": "le",
}
_NEGATED = {"eq": "ne", "contains": "not_contains"}
_HEADER_VALUE = re.compile(
    r"pm\.expect\(\s*pm\.response\.headers\.get\(\s*['\"]([^'\"]+)['\"]\s*\)\s*\)\.to\.(.+?)\s*$"
)


@dataclass
class TestTranslation:
    """Conditions from one test script, and whether any value is saved to the environment."""

    conditions: list[dict[str, Any]] = field(default_factory=list)
    saves_environment: list[str] = field(default_factory=list)
    untranslated: list[str] = field(default_factory=list)


_STRING = re.compile(r"""(['"`])(?:\\.|(?!\1).)*\1""")


def _shown(line: str) -> str:
    """A script line as a message may show it: a string that is not a function's first
    argument (`set("password", "…")`, `var key = '…'`) may be a credential, so it is elided."""

    def elide(match: re.Match[str]) -> str:
        before = line[: match.start()].rstrip()
        quote = match.group(1)
        return match.group(0) if before.endswith("(") else f"{quote}…{quote}"

    return _STRING.sub(elide, line)


def translate_tests(lines: list[str], rename: dict[str, str]) -> TestTranslation:
    """Conditions for the script `lines`; `rename` maps Postman variable names to apimd's."""
    out = TestTranslation()
    json_vars = {"jsonData"}
    for raw in lines:
        for line in (s.strip() for s in raw.split(";")):
            declared = re.match(
                r"(?:var|let|const)\s+(\w+)\s*=\s*(?:pm\.response\.json\(\)|JSON\.parse\(responseBody\))",
                line,
            )
            if declared:
                json_vars.add(declared.group(1))
                continue
            if _STRUCTURE.match(line):
                continue
            condition = _condition(line, json_vars, rename, out)
            if condition is None:
                out.untranslated.append(_shown(line))
            elif condition:
                out.conditions.append(condition)
    return out


def _condition(
    line: str, json_vars: set[str], rename: dict[str, str], out: TestTranslation
) -> dict[str, Any] | None:
    for pattern in _STATUS:
        if match := pattern.search(line):
            return {"source": "status", "op": "eq", "value": int(match.group(1))}
    if match := _ONE_OF.search(line):
        codes = "|".join(c.strip() for c in match.group(1).split(",") if c.strip())
        return {"source": "status", "op": "matches", "value": f"^({codes})$"}
    if match := _OK.search(line):
        if match.group(1) == "ok":
            return {"source": "status", "op": "eq", "value": 200}
        return {"source": "status", "op": "matches", "value": r"^2\d\d$"}
    if match := _HEADER.search(line):
        return {"source": "header", "path": match.group(1), "op": "exists"}
    if match := _BODY_HAS.search(line):
        return {"source": "body", "op": "contains", "value": match.group(2)}
    if match := _TIME.search(line):
        op = "lt" if match.group(1) == "below" else "gt"
        return {"source": "response_time", "op": op, "value": int(match.group(2))}
    root = _JSON_ROOT.format(vars="|".join(re.escape(v) for v in sorted(json_vars)))
    setter = re.search(
        _SETTERS + r"\(\s*['\"]([^'\"]+)['\"]\s*,\s*" + root + _ACCESSOR + r"\s*\)", line
    )
    if setter:
        name = rename.get(setter.group(3), setter.group(3))
        if setter.group(1) in ("environment", "globals") or setter.group(2):
            out.saves_environment.append(name.upper())
        return {"source": "json", "path": _json_path(setter.group(4)), "save_as": name}
    if subject := re.match(r"pm\.expect\(\s*" + root + _ACCESSOR + r"\s*\)\.to\.(.+?)\s*$", line):
        return _assertion("json", _json_path(subject.group(1)), subject.group(2))
    if subject := _HEADER_VALUE.match(line):
        return _assertion("header", subject.group(1), subject.group(2))
    return None


def _assertion(source: str, path: str, chain: str) -> dict[str, Any] | None:
    """A condition from a Chai chain (`eql(1)`, `be.above(2)`, `have.property("id")`, …)."""
    if match := re.fullmatch(r"have\.property\(\s*['\"]([^'\"]+)['\"]\s*\)", chain):
        return {
            "source": source,
            "path": _json_path(path[1:] + "." + match.group(1)),
            "op": "exists",
        }
    if re.fullmatch(r"exist|not\.be\.undefined|be\.not\.undefined", chain):
        return {"source": source, "path": path, "op": "exists"}
    match = re.fullmatch(r"(not\.)?(?:be\.)?(?:at\.)?(\w+)\((.+)\)", chain)
    if match is None or match.group(2) not in _CHAI_OPS:
        return None
    try:
        value = json.loads(match.group(3).replace("'", '"'))
    except ValueError:
        return None
    if isinstance(value, dict | list):
        value = json.dumps(value)
    op = _CHAI_OPS[match.group(2)]
    if match.group(1):
        if op not in _NEGATED:
            return None
        op = _NEGATED[op]
    return {"source": source, "path": path, "op": op, "value": value}


def _json_path(accessor: str) -> str:
    """`.a.b[0]["c d"]` (JavaScript) → `$.a.b[0]['c d']` (JSONPath)."""
    path = re.sub(r"\[['\"]([^'\"]+)['\"]\]", lambda m: "['" + m.group(1) + "']", accessor)
    return "$" + path
