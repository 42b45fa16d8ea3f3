"""Project text to data: YAML 1.2 (ruamel.yaml) with line numbers, or JSON that ruamel refuses;
syntax errors and duplicate keys as `Issue`s with their lines."""

from __future__ import annotations

import json
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from ruamel.yaml.reader import ReaderError
from ruamel.yaml.tokens import ScalarToken

from apimd.model.errors import Issue

_Loc = tuple[Any, ...]
_MERGE_TAG = "tag:yaml.org,2002:merge"


MAX_NESTING = 200
"""Deeper flow collections are refused before parsing: ruamel.yaml recurses through them and
would take seconds to reach Python's recursion limit."""


MAX_EXPANDED = 2_000_000
"""Values a document may hold once its aliases are expanded (a project of 10,000 calls holds
~300,000): anchors and aliases nested nine deep (`&a9 [*a8, *a8, …]`) made hundreds of millions,
which validating walked for minutes."""


TEXT_PER_VALUE = 32
"""Characters of a scalar that count as one more value: a 100 KB string aliased 66,000 times
(well under MAX_EXPANDED values) took minutes to validate; so bounded, at most 64 MB of text."""


def _expanded_size(root: Node) -> tuple[int, int] | None:
    """(line, what) of the first node found expanding past `MAX_EXPANDED` values through its
    aliases, or holding itself (a recursive alias); None when the document is within bounds.
    Each node is counted once (aliases share their node), so this is linear in the text.
    `busy` holds the nodes on the path being walked: a child among them is a recursive alias."""
    sizes: dict[int, int] = {}
    busy: set[int] = set()
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if key in sizes:
            continue
        if isinstance(node, MappingNode):
            children = [part for pair in node.value for part in pair]
        elif isinstance(node, SequenceNode):
            children = list(node.value)
        else:
            value = node.value if isinstance(node, ScalarNode) else ""
            sizes[key] = 1 + len(value) // TEXT_PER_VALUE
            continue
        if children_done:
            busy.discard(key)
            size = 1 + sum(sizes[id(child)] for child in children)
            if size > MAX_EXPANDED:
                return node.start_mark.line + 1, 0
            sizes[key] = size
            continue
        busy.add(key)
        stack.append((node, True))
        for child in children:
            if id(child) in busy:
                return child.start_mark.line + 1, 1
            if id(child) not in sizes:
                stack.append((child, False))
    return None


def _flow_depth(text: str) -> tuple[int, int]:
    """The deepest nesting of `[`/`{` outside quotes, and the line where it is reached."""
    depth = deepest = 0
    line = where = 1
    quote = ""
    for char in text:
        if char == "\n":
            line += 1
        if quote:
            if char == quote:
                quote = ""
        elif char in "\"'":
            quote = char
        elif char in "[{":
            depth += 1
            if depth > deepest:
                deepest, where = depth, line
        elif char in "]}":
            depth = max(0, depth - 1)
    return deepest, where


def parse_text(text: str, filename: str) -> tuple[bool, Any, Any, list[Issue]]:
    """(parsed?, data, ruamel tree for line numbers or None, issues found so far)."""
    deepest, line = _flow_depth(text)
    if deepest > MAX_NESTING:
        message = f"invalid YAML: nested too deeply (more than {MAX_NESTING} levels)"
        return False, None, None, [Issue(message, file=filename, line=line)]
    try:
        # Compose first: the node tree shows every duplicate key with its line, where loading
        # stops at the first one.
        root = YAML(typ="rt").compose(text)
        bomb = _expanded_size(root) if root is not None else None
        if bomb is not None:
            line, recursive = bomb
            message = (
                "invalid YAML: an alias refers to the collection holding it"
                if recursive
                else f"invalid YAML: its aliases expand to more than {MAX_EXPANDED:,} values"
                f" (each {TEXT_PER_VALUE} characters of text counting as one)"
            )
            return False, None, None, [Issue(message, file=filename, line=line)]
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
    return True, tree, tree, _duplicate_keys(root)


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
        if str(exc.context or "").startswith("while scanning a quoted scalar") and exc.context_mark:
            # The scanner stops where it gives up (often the end of the file); the person needs
            # the line where the quote that never closes was opened.
            mark = exc.context_mark
            found = f"{exc.problem} at line {exc.problem_mark.line + 1}" if exc.problem_mark else ""
            problem = "a quoted value starting here is not closed" + (
                f" ({found})" if found else ""
            )
            return Issue(f"invalid YAML: {problem} (column {mark.column + 1})", line=mark.line + 1)
        problem = ", ".join(str(part) for part in (exc.context, exc.problem) if part)
        problem = problem or "syntax error"
        if mark is not None:
            opened = _runaway_quote(text, mark.line)
            if opened is not None:
                problem = (
                    f"a quoted value starting at line {opened + 1} runs on to line"
                    f" {mark.line + 1}, where the parser fails ({problem}): is a quote missing?"
                )
                return Issue(f"invalid YAML: {problem}", line=opened + 1)
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


def _runaway_quote(text: str, error_line: int) -> int | None:
    """The 0-based line of a quoted value that spans lines and ends where the parser fails: a
    quote left open swallows the lines up to the next quote, and the error shows there."""
    last = None
    try:
        for token in YAML(typ="rt").scan(text):
            if isinstance(token, ScalarToken) and token.style in ("'", '"'):
                last = token
    except Exception:  # the error itself: the tokens before it are what we want
        pass
    if last is None:
        return None
    start, end = last.start_mark.line, last.end_mark.line
    return start if start < end and end == error_line else None


def _duplicate_keys(root: Node | None) -> list[Issue]:
    """Every mapping key that appears twice in its mapping, with its line and path."""
    issues: list[Issue] = []
    seen: set[int] = set()  # aliases share nodes: visit each once
    pending: list[tuple[Node | None, _Loc]] = [(root, ())]
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
