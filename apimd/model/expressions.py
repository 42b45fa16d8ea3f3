"""Template expressions (SPEC §10): `{{ NAME }}`, `{{ NAME | f }}`, `{{ f(args) | g }}`.

Parsed, never spliced: a quoted argument is itself a template whose `%%X%%` are substituted when it
is evaluated, so a value can never inject syntax. The parser lives in the model so that loading a
project can reject an unknown function or a wrong argument count, naming the place; the engine
evaluates (`apimd.engine.functions`). Anything inside `{{ }}` that is not an expression (Handlebars,
`{{$guid}}`) is left as written.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

__all__ = [
    "BRACE_INNER",
    "FUNCTION_ARITY",
    "REQUEST_VARIABLES",
    "Call",
    "Expression",
    "ExpressionError",
    "Quoted",
    "Var",
    "check_template",
    "parse_expression",
    "template_expressions",
]

FUNCTION_ARITY: dict[str, int] = {
    **dict.fromkeys(("hmac_sha256", "hmac_sha512", "hmac_sha1"), 2),
    **dict.fromkeys(
        (
            "sha256",
            "sha512",
            "sha1",
            "md5",
            "base64",
            "base64url",
            "hex",
            "base64_decode",
            "hex_decode",
            "hex_to_base64",
            "urlencode",
            "upper",
            "lower",
            "trim",
            "now",
        ),
        1,
    ),
    "unixtime_ms": 0,
    "uuid": 0,
    "jwt": 3,
}
"""Every template function and how many arguments it takes."""

REQUEST_VARIABLES = frozenset(
    {
        "REQUEST_METHOD",
        "REQUEST_URL",
        "REQUEST_HOST",
        "REQUEST_PATH",
        "REQUEST_QUERY",
        "REQUEST_QUERY_CANONICAL",
        "REQUEST_BODY",
        "REQUEST_BODY_SHA256",
        "REQUEST_CONTENT_TYPE",
    }
)
"""Variables describing the request being sent: usable in token headers only."""


class ExpressionError(ValueError):
    """An expression names an unknown function or passes the wrong number of arguments."""


@dataclass(frozen=True)
class Var:
    name: str  # upper-case


@dataclass(frozen=True)
class Quoted:
    template: str  # the unescaped text, itself a template


@dataclass(frozen=True)
class Call:
    function: str
    args: tuple[Var | Quoted | Call, ...]


@dataclass(frozen=True)
class Expression:
    """`head | pipe | pipe`: each pipe is a one-argument function applied in turn."""

    head: Var | Call
    pipes: tuple[str, ...] = ()

    def names(self) -> Iterator[str]:
        """Variable names used directly (not those inside quoted templates)."""
        yield from (leaf.name for leaf in _leaves(self.head) if isinstance(leaf, Var))

    def quoted(self) -> Iterator[str]:
        """The templates of every quoted argument."""
        yield from (leaf.template for leaf in _leaves(self.head) if isinstance(leaf, Quoted))


def _leaves(node: Var | Quoted | Call) -> Iterator[Var | Quoted]:
    if isinstance(node, Call):
        for arg in node.args:
            yield from _leaves(arg)
    else:
        yield node


BRACE_INNER = r"""(?:"(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*'|[^{}"']|\}(?!\}))*"""
"""What may stand between `{{` and `}}`: a `}}` inside a quoted string does not end it."""
_BRACES = re.compile(rf"\{{\{{(?P<inner>{BRACE_INNER})\}}\}}", re.DOTALL)
_LEX = re.compile(
    r"""[ \t]*(?:(?P<name>[A-Za-z_][A-Za-z0-9_]*)|(?P<str>"(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*')"""
    r"""|(?P<punct>[(),|]))""",
    re.DOTALL,
)
_ESCAPES = {"n": "\n", "t": "\t", "\\": "\\", '"': '"', "'": "'"}


class _NotExpression(Exception):
    """The text inside `{{ }}` is not an expression: it stays as written."""


def _tokens(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip(" \t") == "":
            break
        match = _LEX.match(text, pos)
        if match is None or match.end() == pos:
            raise _NotExpression
        kind = match.lastgroup
        assert kind is not None
        out.append((kind, match[kind]))
        pos = match.end()
    return out


def _unquote(literal: str) -> str:
    body = literal[1:-1]
    return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m[1], "\\" + m[1]), body, flags=re.DOTALL)


class _Parser:
    def __init__(self, tokens: list[tuple[str, str]]) -> None:
        self.tokens = tokens
        self.pos = 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self, kind: str, value: str | None = None) -> str:
        token = self.peek()
        if token is None or token[0] != kind or (value is not None and token[1] != value):
            raise _NotExpression
        self.pos += 1
        return token[1]

    def expression(self) -> Expression:
        head = self.operand(top=True)
        if isinstance(head, Quoted):
            raise _NotExpression
        pipes: list[str] = []
        while self.peek() == ("punct", "|"):
            self.pos += 1
            pipes.append(self.take("name"))
        if self.peek() is not None:
            raise _NotExpression
        return Expression(head, tuple(pipes))

    def operand(self, top: bool = False) -> Var | Quoted | Call:
        token = self.peek()
        if token is None:
            raise _NotExpression
        if token[0] == "str":
            self.pos += 1
            return Quoted(_unquote(token[1]))
        name = self.take("name")
        if self.peek() != ("punct", "("):
            return Var(name.upper())
        self.pos += 1
        args: list[Var | Quoted | Call] = []
        if self.peek() != ("punct", ")"):
            args.append(self.operand())
            while self.peek() == ("punct", ","):
                self.pos += 1
                args.append(self.operand())
        self.take("punct", ")")
        return Call(name, tuple(args))


def parse_expression(inner: str) -> Expression | None:
    """The expression inside one `{{ }}`, or None when the text is not an expression.
    Function names and arities are not checked here (see `check_expression`)."""
    try:
        return _Parser(_tokens(inner)).expression()
    except _NotExpression:
        return None


def template_expressions(text: str) -> Iterator[tuple[str, Expression]]:
    """Each `{{ … }}` span of `text` that is an expression (span text, parsed expression)."""
    if "{{" not in text:
        return
    for match in _BRACES.finditer(text):
        expression = parse_expression(match["inner"])
        if expression is not None:
            yield match[0], expression


def _check_call(node: Var | Quoted | Call) -> None:
    if not isinstance(node, Call):
        return
    arity = FUNCTION_ARITY.get(node.function)
    if arity is None:
        raise ExpressionError(
            f"unknown function `{node.function}`; known: " + ", ".join(sorted(FUNCTION_ARITY))
        )
    if len(node.args) != arity:
        raise ExpressionError(
            f"function `{node.function}` takes {arity} argument{'s' if arity != 1 else ''},"
            f" not {len(node.args)}"
        )
    for arg in node.args:
        _check_call(arg)


def check_template(text: str, *, request_variables: bool = False) -> None:
    """Raise `ExpressionError` for an unknown function, a wrong argument count, or (unless
    `request_variables`) a `REQUEST_*` variable, anywhere in `text` and its quoted arguments."""
    if not request_variables:
        used = sorted(_request_variables(text))
        if used:
            raise ExpressionError(
                f"`{used[0]}` describes the request being sent: use it in a token's headers only"
            )
    for _, expression in template_expressions(text):
        _check_call(expression.head)
        for pipe in expression.pipes:
            if FUNCTION_ARITY.get(pipe) is None:
                raise ExpressionError(
                    f"unknown function `{pipe}`; known: " + ", ".join(sorted(FUNCTION_ARITY))
                )
            if FUNCTION_ARITY[pipe] != 1:
                raise ExpressionError(f"`| {pipe}` needs a one-argument function")
        for quoted in expression.quoted():
            check_template(quoted, request_variables=request_variables)


_PLAIN_REFERENCE = re.compile(
    r"%%(REQUEST_[A-Za-z_]+)%%|(?<![A-Za-z0-9])__(REQUEST_[A-Za-z_]+?)__(?![A-Za-z0-9])", re.I
)


def _request_variables(text: str) -> set[str]:
    found = {
        (m[1] or m[2]).upper()
        for m in _PLAIN_REFERENCE.finditer(text)
        if (m[1] or m[2]).upper() in REQUEST_VARIABLES
    }
    for _, expression in template_expressions(text):
        found |= {n for n in expression.names() if n in REQUEST_VARIABLES}
        for quoted in expression.quoted():
            found |= _request_variables(quoted)
    return found
