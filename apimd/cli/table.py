"""Plain-text tables and relative times for terminal output."""

from __future__ import annotations

from datetime import datetime


def table(headers: list[str], rows: list[list[str]], *, header: bool = True) -> str:
    """Columns padded to their widest cell; the last column is not padded."""
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
    lines = [headers] if header else []
    lines += rows
    out = []
    for row in lines:
        cells = [c.ljust(w) for c, w in zip(row[:-1], widths[:-1], strict=True)] + [row[-1]]
        out.append("  ".join(cells).rstrip())
    return "\n".join(out)


def _span(seconds: float) -> str:
    seconds = abs(int(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m"
    if seconds < 86400:
        return f"{seconds // 3600}h{(seconds % 3600) // 60:02d}m"
    return f"{seconds // 86400}d"


def ago(moment: datetime, now: datetime) -> str:
    return f"{_span((now - moment).total_seconds())} ago"


def until(moment: datetime, now: datetime) -> str:
    delta = (moment - now).total_seconds()
    return f"in {_span(delta)}" if delta >= 0 else f"{_span(delta)} ago"
