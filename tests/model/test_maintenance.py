"""Maintenance windows (SPEC §11): which instants a cron or one-off window covers, and what a bad
window is told."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from apimd.model.maintenance import MaintenanceWindow, in_maintenance

SUNDAY_2AM = {"name": "w", "cron": "0 2 * * 0", "duration": "2h", "timezone": "Europe/Paris"}


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


@pytest.mark.parametrize(
    ("moment", "inside"),
    [
        ("2026-12-06T01:00:00+00:00", True),  # 02:00 in Paris, the window's first instant
        ("2026-12-06T00:59:59+00:00", False),
        ("2026-12-06T02:59:59+00:00", True),
        ("2026-12-06T03:00:00+00:00", False),  # cron match + duration is not after it
        ("2026-12-07T01:30:00+00:00", False),  # a Monday
    ],
)
def test_a_cron_window_covers_its_match_plus_duration(moment: str, inside: bool) -> None:
    window = MaintenanceWindow.model_validate(SUNDAY_2AM)
    assert window.active_at(at(moment)) is inside


def test_a_window_longer_than_its_cron_period_overlaps_itself() -> None:
    window = MaintenanceWindow(name="w", cron="*/10 * * * *", duration="25m")
    assert window.active_at(at("2026-12-06T10:09:59+00:00"))


def test_a_one_off_window_is_utc_start_to_end_and_targets_default_to_all() -> None:
    window = MaintenanceWindow.model_validate(
        {"name": "w", "start": "2026-12-06T10:00:00", "end": "2026-12-06T11:00:00"}
    )
    assert window.start == at("2026-12-06T10:00:00+00:00")
    assert in_maintenance([window], "anything", at("2026-12-06T10:30:00+00:00"))
    assert not in_maintenance([window], "anything", at("2026-12-06T11:00:00+00:00"))
    only = window.model_copy(update={"targets": ["a"]})
    assert not in_maintenance([only], "b", at("2026-12-06T10:30:00+00:00"))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"cron": "0 2 * * 0"}, "needs both `cron` and `duration`"),
        ({}, "give either `cron` and `duration`, or `start` and `end`"),
        ({"start": "2026-12-06T10:00:00Z", "end": "2026-12-06T09:00:00Z"}, "`end` must be after"),
        ({"cron": "0 2 * *", "duration": "1h"}, "5 fields"),
        ({"cron": "0 2 * * 0", "duration": "1h", "timezone": "Mars/Base"}, "unknown time zone"),
        ({"cron": "0 2 * * 0", "duration": "0s"}, "between 1s and 366d"),
    ],
)
def test_bad_windows_say_what_is_wrong(data: dict[str, str], message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        MaintenanceWindow.model_validate({"name": "w", **data})
    assert message in str(caught.value)


def test_now_is_inside_a_window_that_just_started() -> None:
    now = datetime.now(UTC)
    window = MaintenanceWindow(name="w", start=now - timedelta(seconds=1), end=now + timedelta(1))
    assert window.active_at(now)
