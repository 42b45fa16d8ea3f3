"""Plain-text tables for terminal output (relative times: `apimd.model.durations`)."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Sequence
from typing import IO

from apimd.model.common import escaped_controls

MIN_LAST_COLUMN = 12
"""The last column (an error, usually) keeps at least this many characters on a narrow terminal."""


def fit_width(stream: IO[str] = sys.stdout) -> int | None:
    """The terminal's width when `stream` is one; None (lines are never cut) when it is piped or
    redirected, so scripts and `grep` see every error whole."""
    try:
        if not stream.isatty():
            return None
    except ValueError:  # a closed stream
        return None
    return shutil.get_terminal_size().columns


def column_widths(
    headers: Sequence[str], rows: Sequence[Sequence[str]], floor: Sequence[int] = ()
) -> list[int]:
    """The width of each column: its widest cell, at least `floor[i]`."""
    widths = [max(len(h), floor[i] if i < len(floor) else 0) for i, h in enumerate(headers)]
    for row in rows:
        widths = [max(w, len(_cell(c))) for w, c in zip(widths, row, strict=True)]
    return widths


def table(
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    header: bool = True,
    widths: Sequence[int] | None = None,
    width: int | None = None,
) -> str:
    """Columns padded to `widths` (default: their widest cell); the last column is not padded,
    and is cut with `…` to fit `width` characters per line when given."""
    widths = list(widths) if widths is not None else column_widths(headers, rows)
    lines = [list(headers)] if header else []
    lines += [[_cell(c) for c in row] for row in rows]
    room = None
    if width is not None:
        room = max(MIN_LAST_COLUMN, width - sum(w + 2 for w in widths[:-1]))
    out = []
    for row in lines:
        last = row[-1]
        if room is not None and len(last) > room:
            last = last[: room - 1] + "…"
        cells = [c.ljust(w) for c, w in zip(row[:-1], widths[:-1], strict=True)] + [last]
        out.append("  ".join(cells).rstrip())
    return "\n".join(out)


def _cell(text: str) -> str:
    """One line: an error with newlines would break the table's rows; its control characters
    escaped, piped or not — a table is read by a person (`--json` is for programs), and
    `apimd results | head` passed a server's escapes to the terminal (a helper's retest)."""
    return escaped_controls(" ".join(text.split()) if "\n" in text or "\r" in text else text)
