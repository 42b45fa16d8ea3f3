"""One name for one thing (issue 11 point 6): the resource kinds and the duration formatter
each exist once and say the same everywhere."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from apimd.model.durations import ago, expiry, short_duration, until
from apimd.model.kinds import ResourceKind
from apimd.model.project import Project

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


def test_each_kind_is_a_project_field_with_the_model_the_api_serves() -> None:
    fields = Project.model_fields
    for kind in ResourceKind:
        assert kind.value in fields
        assert ResourceKind.named(kind.value) is kind
    assert ResourceKind.named("call") is None and ResourceKind.named(3) is None
    assert [ResourceKind.AUTH.singular, ResourceKind.MAINTENANCE.singular] == [
        "auth setting",
        "maintenance window",
    ]


@pytest.mark.parametrize(
    ("seconds", "two", "one"),
    [
        (0.4, "0s", "0s"),
        (42, "42s", "42s"),
        (252, "4m12s", "4m"),
        (7380, "2h03m", "2h"),
        (273600, "3d04h", "3d"),
        (-240, "4m00s", "4m"),
    ],
)
def test_one_duration_formatter_in_one_or_two_units(seconds: float, two: str, one: str) -> None:
    assert short_duration(seconds) == two
    assert short_duration(seconds, units=1) == one


def test_relative_times_read_the_same_in_the_cli_and_the_tui() -> None:
    assert ago(NOW - timedelta(seconds=0.5), NOW) == "now"
    assert ago(NOW - timedelta(minutes=3, seconds=59), NOW) == "3m ago"
    assert until(NOW + timedelta(minutes=5), NOW) == "in 5m"
    assert until(NOW - timedelta(minutes=4), NOW) == "4m ago"
    assert expiry(NOW + timedelta(seconds=5), NOW) == "expires in 5s"
