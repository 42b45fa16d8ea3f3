"""Validation issues that name the file, resource, field and line."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Issue:
    """One problem in a project document or API body."""

    message: str
    loc: tuple[str | int, ...] = ()
    file: str | None = None
    line: int | None = None
    resource: str | None = None

    @property
    def field(self) -> str:
        """The location as `calls[2].conditions[0].op`."""
        out = ""
        for part in self.loc:
            if isinstance(part, int):
                out += f"[{part}]"
            else:
                out += ("." if out else "") + part
        return out

    def __str__(self) -> str:
        where = ""
        if self.file:
            where = self.file + (f":{self.line}" if self.line else "") + ": "
        elif self.line:
            where = f"line {self.line}: "
        what = self.field
        if self.resource:
            what = f"{what} ({self.resource})" if what else self.resource
        return f"{where}{what}: {self.message}" if what else f"{where}{self.message}"


@dataclass
class ValidationFailed(Exception):
    """Every issue found in one document, reported together."""

    issues: list[Issue] = field(default_factory=list)

    def __str__(self) -> str:
        count = len(self.issues)
        head = f"{count} problem{'s' if count != 1 else ''} found:"
        return "\n".join([head, *(f"  {issue}" for issue in self.issues)])
