"""The TUI's pure helpers: formatting, sparklines, the waterfall, bodies, event parsing and key
settings (the dashboard's board: test_monitors.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

import pytest

from apimd.model import Outcome, Result, ResultCode, Timings
from apimd.model.settings_file import settings_file_path
from apimd.model.stats import Stats, StatsPoint
from apimd.settings import Settings
from apimd.tui.body import content_type_of, pretty_body
from apimd.tui.charts import hourly, latency_series, uptime_strip
from apimd.tui.formatting import (
    age,
    countdown,
    milliseconds,
    outcome_text,
    short_duration,
    uptime_text,
)
from apimd.tui.keys import load_tui_settings, valid_key, validate_keymap
from apimd.tui.sparkline import sparkline
from apimd.tui.waterfall import untimed, waterfall
from apimd.tui.widgets.result_view import no_conditions, status_line

NOW = datetime(2026, 3, 14, 12, 0, tzinfo=UTC)


# --- formatting ---------------------------------------------------------------------------


def test_ages_countdowns_and_latencies_read_naturally() -> None:
    assert age(None, NOW) == "—"
    assert age(NOW - timedelta(milliseconds=300), NOW) == "now"
    assert age(NOW - timedelta(seconds=42), NOW) == "42s"
    assert age(NOW - timedelta(minutes=3, seconds=59), NOW) == "3m"
    assert age(NOW - timedelta(days=2, hours=5), NOW) == "2d"
    assert countdown(NOW + timedelta(minutes=4, seconds=12), NOW) == "4m12s"
    assert countdown(NOW - timedelta(seconds=1), NOW) == "expired"
    assert countdown(None, NOW) == "—"
    assert short_duration(2 * 3600 + 3 * 60) == "2h03m"
    assert [milliseconds(v) for v in (0.42, 12.34, 120.4, 1234.0, 12345.0)] == [
        "0.4 ms",
        "12.3 ms",
        "120 ms",
        "1.23 s",
        "12.3 s",
    ]


def test_outcomes_and_uptime_carry_a_word_and_a_colour() -> None:
    fail = outcome_text(Outcome.FAIL)
    assert fail.plain == "✗ FAIL" and "red" in str(fail.style)
    assert outcome_text(None).plain == "· never"
    assert uptime_text(1.0).plain == "100%"
    assert uptime_text(0.9952).plain == "99.52%"
    assert str(uptime_text(0.5).style) == "red"
    assert uptime_text(None).plain == "—"


# --- sparkline and waterfall ----------------------------------------------------------------


def test_sparkline_scales_from_zero_to_the_peak_newest_on_the_right() -> None:
    assert sparkline([0, 50, 100], 5) == "  ▁▅█"
    assert sparkline([10] * 30, 4) == "████"
    assert sparkline([], 3) == "   "
    assert sparkline([0, 0], 2) == "▁▁"
    assert len(sparkline(list(range(100)), 20)) == 20


def test_waterfall_places_each_phase_after_the_previous_one() -> None:
    timings = Timings(dns=10, connect=20, send=0, wait=60, receive=10, total=100)
    bars = {b.phase: b for b in waterfall(timings, 50)}
    assert (bars["dns"].start, bars["dns"].length) == (0, 5)
    assert (bars["connect"].start, bars["connect"].length) == (5, 10)
    assert bars["send"].length == 0
    assert (bars["wait"].start, bars["wait"].length) == (15, 30)
    assert bars["receive"].start + bars["receive"].length == 50


def test_a_tiny_phase_still_gets_a_cell_and_nothing_spills_off_the_track() -> None:
    timings = Timings(dns=0.01, connect=0.01, send=0.01, wait=100, receive=0.01, total=100.04)
    for bar in waterfall(timings, 20):
        assert bar.length >= 1 and bar.start + bar.length <= 20
    assert all(b.length == 0 for b in waterfall(Timings(), 20))


def test_a_run_with_nothing_of_apimds_to_time_says_so_instead_of_a_chart() -> None:
    """A browser step's result showed a waterfall of zeros (a newcomer's run): the browser
    makes that request, and a run that sent nothing timed nothing; a sent one is charted."""

    def result(code: ResultCode, outcome: Outcome, timings: Timings) -> Result:
        moment = datetime(2026, 12, 7, tzinfo=UTC)
        return Result(
            id="r", kind="call", name="c", trigger="manual", started_at=moment,
            finished_at=moment, outcome=outcome, result=code, timings_ms=timings,
        )  # fmt: skip

    browser = result(ResultCode.BROWSER, Outcome.SKIPPED, Timings())
    assert "the browser makes this request" in (untimed(browser) or "")
    unsent = result(ResultCode.NEEDS_SIGN_IN, Outcome.SKIPPED, Timings())
    assert untimed(unsent) == "nothing was sent: nothing to time"
    sent = result(ResultCode.COMPLETE, Outcome.PASS, Timings(connect=0.2, wait=1.0, total=1.2))
    assert untimed(sent) is None


def test_a_result_without_conditions_says_why_its_conditions_tab_is_empty() -> None:
    """A never-sent result's Conditions tab was an empty table (session 12's retest)."""
    moment = datetime(2026, 12, 7, tzinfo=UTC)

    def result(kind: Literal["call", "workflow"], status: int | None) -> Result:
        return Result(
            id="r", kind=kind, name="c", trigger="manual", started_at=moment,
            finished_at=moment, outcome=Outcome.PASS, result=ResultCode.COMPLETE,
            http_status=status,
        )  # fmt: skip

    assert no_conditions(result("call", None)) == "no response: no condition was checked"
    assert no_conditions(result("call", 204)) == "this call checks no condition"
    assert "see each step's result" in no_conditions(result("workflow", None))


def test_a_scheduled_result_names_its_schedule_and_how_late_it_started() -> None:
    moment = datetime(2026, 12, 7, tzinfo=UTC)
    result = Result(
        id="r", kind="call", name="c", trigger="schedule", started_at=moment,
        finished_at=moment, outcome=Outcome.PASS, result=ResultCode.COMPLETE,
        lateness_ms=1.5, schedule="every-minute", scheduled_at=moment,
    )  # fmt: skip
    line = status_line(result, lambda: moment).plain
    assert "schedule every-minute 1.5 ms late" in line


# --- bodies ---------------------------------------------------------------------------------


def test_json_and_xml_bodies_are_pretty_printed_and_anything_else_left_alone() -> None:
    body = pretty_body('{"a":1,"b":[true,null]}', "application/json")
    assert body.lexer == "json" and body.text.startswith('{\n  "a": 1')
    xml = pretty_body('<items><item id="1">alpha</item></items>', "application/xml")
    assert xml.lexer == "xml" and xml.text.splitlines()[1] == '  <item id="1">alpha</item>'
    assert pretty_body("not json {", "application/json") == pretty_body("not json {", "")
    assert pretty_body("<broken", "text/xml").text == "<broken"
    assert pretty_body(None).text == ""
    assert (
        content_type_of({"content-type": "Application/JSON; charset=utf-8"}) == "application/json"
    )


def test_xml_with_a_dtd_is_never_parsed() -> None:
    bomb = '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><x>&a;&a;</x>'
    assert pretty_body(bomb, "application/xml").text == bomb


# --- statistics charts ---------------------------------------------------------------------------


def test_hours_without_results_are_gaps_in_the_charts() -> None:
    since = NOW - timedelta(hours=3)
    point = StatsPoint(
        start=NOW - timedelta(hours=2),
        counts={**dict.fromkeys(Outcome, 0), Outcome.PASS: 9, Outcome.FAIL: 1},
        uptime=0.9,
    )
    point.latency.p50_ms = 42.0
    stats = Stats(name="x", since=since, until=NOW, series=[point])
    hours = hourly(stats)
    assert len(hours) == 3 and hours[1].point is point
    assert latency_series(hours, "p50_ms") == [0.0, 42.0, 0.0]
    assert uptime_strip(hours, 10) == [("·", "dim"), ("▆", "yellow"), ("·", "dim")]
    assert len(uptime_strip(hours * 10, 10)) == 10  # merged into at most `width` columns


# --- key settings ---------------------------------------------------------------------------------


def test_keymap_entries_are_checked_against_known_ids_and_key_names(tmp_path: Path) -> None:
    path = tmp_path / "settings.toml"
    path.write_text(
        'APIMD_CALLBACK_PORT = 9000\n[keys]\n"dashboard.run" = "ctrl+r"\n"app.help" = "f1, ?"\n'
        '"dashboard.stats" = 5\n"bogus" = "x"\n"app.quit" = "hyperspace+q"\n'
    )
    settings = load_tui_settings(path)
    keymap, problems = validate_keymap(
        settings.keys, {"dashboard.run", "app.help", "dashboard.stats", "app.quit"}, path
    )
    assert keymap == {"dashboard.run": "ctrl+r", "app.help": "f1,?"}
    assert len(problems) == 3
    assert any("bogus" in p for p in problems)
    assert any("dashboard.stats" in p for p in problems)
    assert any("hyperspace+q" in p for p in problems)


@pytest.mark.parametrize(
    ("key", "ok"),
    [
        ("r", True),
        ("R", True),
        ("ctrl+r", True),
        ("f5", True),
        ("question_mark", True),
        ("enter", True),
        ("ctrl+", False),
        ("", False),
        ("nosuchkey", False),
        ("meta+shift+x", True),
    ],
)
def test_valid_key(key: str, ok: bool) -> None:
    assert valid_key(key) is ok


def test_an_unreadable_settings_file_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "settings.toml"
    path.write_text("[keys\n")
    settings = load_tui_settings(path)
    assert settings.keys == {} and settings.problems
    assert load_tui_settings(tmp_path / "missing.toml").problems == ()


def test_the_tui_reads_its_keys_from_the_daemons_settings_file(tmp_path: Path) -> None:
    env = {"APIMD_HOME": str(tmp_path)}
    path = settings_file_path(env)
    assert Settings.load(env).settings_file == path == tmp_path / "settings.toml"
    path.write_text('APIMD_RETENTION_DAYS = 7\n[keys]\n"dashboard.run" = "ctrl+r"\n')
    assert Settings.load(env).retention_days == 7
    assert dict(load_tui_settings(path).keys) == {"dashboard.run": "ctrl+r"}
