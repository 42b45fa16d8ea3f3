"""Pure text formatting for the screens: ages, countdowns, latencies, outcomes and token states;
and `screen_text`, the one way text from outside apimd reaches the screen."""

from __future__ import annotations

from datetime import datetime, timedelta

from rich.text import Text

from apimd.model.common import escaped_controls
from apimd.model.durations import short_duration as short_duration
from apimd.model.outcome import Outcome
from apimd.model.resources import TokenState

NOTHING = "—"

OUTCOME_STYLE: dict[Outcome, str] = {
    Outcome.PASS: "green",
    Outcome.SLOW: "cyan",
    Outcome.WARNING: "yellow",
    Outcome.SKIPPED: "magenta",
    Outcome.FAIL: "bold red",
}
OUTCOME_SYMBOL: dict[Outcome, str] = {
    Outcome.PASS: "✓",
    Outcome.SLOW: "◔",
    Outcome.WARNING: "▲",
    Outcome.SKIPPED: "»",
    Outcome.FAIL: "✗",
}
TOKEN_STATE_STYLE: dict[TokenState, str] = {
    TokenState.VALID: "green",
    TokenState.EXPIRED: "yellow",
    TokenState.REFRESHING: "cyan",
    TokenState.NEEDS_SIGN_IN: "bold magenta",
    TokenState.ERROR: "bold red",
}
TOKEN_STATE_WORD: dict[TokenState, str] = {
    TokenState.VALID: "valid",
    TokenState.EXPIRED: "expired",
    TokenState.REFRESHING: "refresh…",
    TokenState.NEEDS_SIGN_IN: "sign in!",
    TokenState.ERROR: "error",
}


def screen_text(text: str, *, lines: bool = False) -> str:
    """Text that came from outside apimd's own code (a response, a server's error, a project
    file, the daemon) as the screen may show it: its control characters escaped where they can
    be seen (`\\x1b`), so it cannot drive the terminal (set its title, clear it, colour it);
    newlines kept with `lines`. Still not markup: show it as `Text` (or `literal`) or in a widget
    made with `markup=False`, never as a `str` a widget reads as markup."""
    return escaped_controls(text, lines=lines)


def literal(text: str, style: str = "", *, lines: bool = False) -> Text:
    """`screen_text(text)` as a `Text`: shown as it is where a `str` would be read as markup
    (a DataTable cell, an option, a notification's body)."""
    return Text(screen_text(text, lines=lines), style=style)


def outcome_text(outcome: Outcome | None) -> Text:
    """Symbol and word, coloured: `✗ FAIL`; `· never` for a target that has not run."""
    if outcome is None:
        return Text("· never", style="dim")
    return Text(f"{OUTCOME_SYMBOL[outcome]} {outcome.value}", style=OUTCOME_STYLE[outcome])


def reason_text(outcome: Outcome | None, reason: str | None) -> Text:
    """Why a monitor is not a PASS, in its outcome's colour, cut with `…` where the column ends;
    empty for a PASS or a monitor that has not run."""
    if outcome is None or outcome is Outcome.PASS or not reason:
        return Text("")
    return Text(
        screen_text(reason), style=OUTCOME_STYLE[outcome], no_wrap=True, overflow="ellipsis"
    )


def running_for(since: datetime, now: datetime) -> str:
    """How long a run has been going: `75s` under 100 seconds, then `2m`, `1h`."""
    seconds = max(0.0, (now - since).total_seconds())
    return f"{int(seconds)}s" if seconds < 100 else short_duration(seconds, units=1)


def token_state_text(
    state: TokenState | None, *, long: bool = False, word: str | None = None
) -> Text:
    """A token state in a few letters (`long`: its full name; or `word`), coloured."""
    if state is None:
        return Text(NOTHING, style="dim")
    word = word or (state.value if long else TOKEN_STATE_WORD[state])
    return Text(word, style=TOKEN_STATE_STYLE[state])


CERT_WARN_DAYS = 14


def name_with_certificate(name: str, expires_at: datetime | None, now: datetime) -> Text:
    """A target's name, flagged when its server certificate expires within 14 days (SPEC §11)."""
    if expires_at is None or expires_at - now > timedelta(days=CERT_WARN_DAYS):
        return literal(name)
    left = (expires_at - now).total_seconds()
    flag = "cert expired" if left <= 0 else f"cert {short_duration(left)}"
    return Text.assemble(screen_text(name), " ", (f"⚠ {flag}", "bold yellow"))


def age(moment: datetime | None, now: datetime) -> str:
    """How long ago `moment` was, in one unit: `now`, `12s`, `3m`, `2h`, `5d`."""
    if moment is None:
        return NOTHING
    seconds = (now - moment).total_seconds()
    if seconds < 1:
        return "now"
    return short_duration(seconds, units=1)


def countdown(expires_at: datetime | None, now: datetime) -> str:
    """Time left until `expires_at` (`4m12s`), `expired`, or `—` when it never expires."""
    if expires_at is None:
        return NOTHING
    left = (expires_at - now).total_seconds()
    if left <= 0:
        return "expired"
    return short_duration(left)


def milliseconds(ms: float | None) -> str:
    """A latency: `0.4 ms`, `12.3 ms`, `120 ms`, `1.23 s`, `12.3 s`."""
    if ms is None:
        return NOTHING
    if ms < 100:
        return f"{ms:.1f} ms"
    if ms < 1000:
        return f"{ms:.0f} ms"
    if ms < 10000:
        return f"{ms / 1000:.2f} s"
    return f"{ms / 1000:.1f} s"


def byte_size(size: int | None) -> str:
    if size is None:
        return NOTHING
    if size < 1024:
        return f"{size} B"
    if size < 1024 * 1024:
        return f"{size / 1024:.1f} KiB"
    return f"{size / 1024 / 1024:.1f} MiB"


def uptime_text(uptime: float | None) -> Text:
    """Uptime fraction as a percentage, coloured by how bad it is: green ≥ 99.9 %, yellow ≥ 99 %."""
    if uptime is None:
        return Text(NOTHING, style="dim")
    percent = uptime * 100
    text = (
        "100%" if percent >= 99.995 else f"{percent:.2f}%" if percent >= 99 else f"{percent:.1f}%"
    )
    style = "green" if percent >= 99.9 else "yellow" if percent >= 99 else "red"
    return Text(text, style=style)


def timestamp(moment: datetime, now: datetime) -> str:
    """`20:15:31` for today (UTC), else `11-28 20:15`."""
    if moment.date() == now.date():
        return moment.strftime("%H:%M:%S")
    return moment.strftime("%m-%d %H:%M")


def truncate(text: str, width: int) -> str:
    """`text` cut to `width` cells with a trailing ellipsis when it is longer."""
    if width <= 0:
        return ""
    return text if len(text) <= width else text[: width - 1] + "…"
