"""Results written for people: one screen a tired SRE can read at a glance."""

from __future__ import annotations

import json
import os
import re
import sys
from typing import IO, Any

from apimd.model.api import ApplySummary
from apimd.model.common import escaped_controls
from apimd.model.outcome import Outcome
from apimd.model.result import Result

_COLOURS = {
    Outcome.PASS: "32",
    Outcome.SLOW: "36",
    Outcome.WARNING: "33",
    Outcome.FAIL: "31",
    Outcome.SKIPPED: "35",
}
_PHASES = ("dns", "connect", "send", "wait", "receive")


_OUR_COLOUR = re.compile(r"(\x1b\[[0-9;]*m)")


def terminal_safe(text: str) -> str:
    """`text` with every control character but newline and tab escaped (`\\x1b`), colour codes
    (SGR, as `_outcome` writes them) kept: what a server said (an error description, a body)
    cannot set the terminal's title, clear it, or write a line over another with `\\r`."""
    if "\x1b" not in text:
        return escaped_controls(text, lines=True)
    parts = _OUR_COLOUR.split(text)
    parts[::2] = [escaped_controls(part, lines=True) for part in parts[::2]]
    return "".join(parts)


class TerminalSafe:
    """A terminal's text stream that writes everything through `terminal_safe`."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        return self._stream.write(terminal_safe(text))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def guard_terminal() -> None:
    """Make stdout and stderr `TerminalSafe` where they are terminals (not the TUI's: it draws
    its own escapes)."""
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if stream is not None and stream.isatty() and not isinstance(stream, TerminalSafe):
            setattr(sys, name, TerminalSafe(stream))


def use_colour(stream: IO[str]) -> bool:
    return stream.isatty() and "NO_COLOR" not in os.environ and os.environ.get("TERM") != "dumb"


def _outcome(outcome: Outcome, colour: bool) -> str:
    word = f"{outcome.value:<7}"
    return f"\x1b[1;{_COLOURS[outcome]}m{word}\x1b[0m" if colour else word


def _value(value: Any) -> str:
    if isinstance(value, str):
        return value if len(value) <= 80 else value[:77] + "…"
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 80 else text[:77] + "…"


def format_result(result: Result, *, colour: bool = False, indent: str = "") -> str:
    """A multi-line summary: outcome, status, timings, conditions with actual values, error."""
    status = f"HTTP {result.http_status}" if result.http_status is not None else ""
    head = f"{indent}{_outcome(result.outcome, colour)} {result.result.value:<19} {result.kind} {result.name}"
    if status:
        head += f"  {status}"
    head += f"  {result.timings_ms.total:.0f} ms"
    lines = [head]
    pad = indent + "  "
    if result.request is not None:
        lines.append(f"{pad}{result.request.method} {result.request.url}")
    t = result.timings_ms
    if result.kind == "call" and t.total:
        phases = "  ".join(f"{p} {getattr(t, p):.1f}" for p in _PHASES)
        line = f"{pad}timings ms  {phases}  total {t.total:.1f}"
        if t.auth_wait:
            line += f"  (waited {t.auth_wait:.1f} for the token)"
        lines.append(line)
    for cond in result.conditions:
        mark = "✓" if cond.passed else ("!" if cond.on_fail == "warning" else "✗")
        what = " ".join(str(p) for p in (cond.source, cond.path, cond.op) if p)
        if cond.op and cond.op not in ("exists", "not_exists"):
            what += f" {_value(cond.expected)}"
        actual = _value(cond.actual) if cond.found else "not found"
        extra = f" → {cond.save_as}" if cond.save_as else ""
        note = f"  {cond.message}" if cond.message else ""
        lines.append(f"{pad}{mark} {what}{extra}  (actual: {actual}){note}")
    if result.retried_after_401:
        lines.append(f"{pad}retried after a 401 with a refreshed token")
    if result.error and result.kind == "call":
        lines.append(f"{pad}error: {result.error}")
    for step in result.steps:
        lines.append(format_result(step, colour=colour, indent=pad))
    if result.kind == "workflow" and result.error:
        lines.append(f"{pad}{result.error}")
    return "\n".join(lines)


def print_result(result: Result, *, as_json: bool, stream: IO[str] | None = None) -> None:
    # sys.stdout read now, not when this module was imported: `guard_terminal` replaces it.
    stream = stream or sys.stdout
    if as_json:
        stream.write(result.model_dump_json(indent=2) + "\n")
    else:
        # Escaped piped too: this is text for a person (`--json` is exact), and `apimd run … |
        # less -R` or a CI log passed a server's escapes on (a helper's retest).
        stream.write(terminal_safe(format_result(result, colour=use_colour(stream))) + "\n")


def format_apply(path: str, summary: ApplySummary) -> str:
    """What an apply really changed: a count line, then one line per kind of change naming
    `kind/name`s; a token's saved state given by the file counts as a change."""
    groups = [
        ("created", summary.created),
        ("replaced", summary.updated),
        ("deleted", summary.deleted),
    ]
    lines = []
    counts = []
    for label, group in groups:
        count = sum(len(items) for items in group.values())
        if count:
            counts.append(f"{count} {label}")
        for kind, items in group.items():  # one line per kind, so a long apply stays readable
            if items:
                lines.append(f"  {label:<10} {', '.join(f'{kind}/{name}' for name in items)}")
    if summary.token_state_set:
        count = len(summary.token_state_set)
        counts.append(f"token state set for {count}")
        tokens = ", ".join(f"tokens/{name}" for name in summary.token_state_set)
        lines.append(f"  {'state set':<10} {tokens} (saved variables from the file)")
    unchanged = sum(len(v) for v in summary.unchanged.values())
    if unchanged:
        counts.append(f"{unchanged} unchanged")
    if not lines:
        return f"applied {path}: nothing changed" + (
            f" ({unchanged} unchanged)" if unchanged else ""
        )
    return "\n".join([f"applied {path}: {', '.join(counts)}", *lines])
