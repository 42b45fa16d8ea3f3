"""Why a call could not be prepared: `SetupError` and its kinds. The engine's other failures
(an HTTP exchange, a token, a sign-in, an unknown target…) are defined in the module that raises
them, and do not derive from `EngineError`."""

from __future__ import annotations


class EngineError(Exception):
    """Base of the setup errors below."""


class SetupError(EngineError):
    """A call could not be prepared (unknown variable, bad URL, bad state param, …)."""

    def __init__(self, message: str, *, variable: str | None = None, where: str | None = None):
        super().__init__(message)
        self.variable = variable
        self.where = where


class UnknownVariable(SetupError):
    """`%%NAME%%` or `{{NAME}}` named a variable that no scope holds."""

    def __init__(self, variable: str, where: str):
        super().__init__(f"unknown variable {variable} in {where}", variable=variable, where=where)
