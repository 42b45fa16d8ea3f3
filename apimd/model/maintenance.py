"""Maintenance windows (SPEC §11): a `cron` + `duration`, or a `start` + `end`, during which runs go
on and are recorded with `maintenance: true` while notifiers stay silent."""

from __future__ import annotations

import zoneinfo
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from cronsim import CronSim, CronSimError
from pydantic import Field, field_validator, model_validator

from apimd.model.common import Name, Resource, parse_duration
from apimd.model.schedule import CronText, TimeZoneName, bounded_duration

MAX_WINDOW_S = 366 * 86400.0


class MaintenanceWindow(Resource):
    """When notifiers stay silent for `targets` (all targets when empty)."""

    cron: CronText | None = None
    duration: str | None = None
    start: datetime | None = None
    end: datetime | None = None
    timezone: TimeZoneName = "UTC"
    targets: list[Name] = Field(default_factory=list)

    @field_validator("duration", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        message = "`duration` must be between 1s and 366d"
        return bounded_duration(value, MAX_WINDOW_S, message, message)

    @field_validator("start", "end")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        if value is None or value.tzinfo is not None:
            return value
        return value.replace(tzinfo=UTC)  # SPEC §11: start and end are UTC

    @model_validator(mode="after")
    def _one_kind(self) -> MaintenanceWindow:
        recurring = self.cron is not None or self.duration is not None
        one_off = self.start is not None or self.end is not None
        if recurring == one_off:
            raise ValueError("give either `cron` and `duration`, or `start` and `end`")
        if recurring and (self.cron is None or self.duration is None):
            raise ValueError("a recurring window needs both `cron` and `duration`")
        if one_off:
            if self.start is None or self.end is None:
                raise ValueError("a one-off window needs both `start` and `end`")
            if self.end <= self.start:
                raise ValueError("`end` must be after `start`")
        return self

    def covers(self, target: str) -> bool:
        return not self.targets or target in self.targets

    def active_at(self, moment: datetime) -> bool:
        """Whether `moment` lies inside the window: for a cron window, when the latest cron match
        at or before it plus `duration` lies after it."""
        if self.start is not None and self.end is not None:
            return self.start <= moment < self.end
        if self.cron is None or self.duration is None:
            return False
        length = timedelta(seconds=parse_duration(self.duration))
        zone = zoneinfo.ZoneInfo(self.timezone)
        local = moment.astimezone(zone)
        # Cron matches fall on whole minutes and CronSim's start is exclusive: searching back
        # from the next whole minute finds the latest match at or before `moment`.
        after = local.replace(second=0, microsecond=0) + timedelta(minutes=1)
        try:
            match = next(iter(CronSim(self.cron, after, reverse=True)), None)
        except CronSimError:  # e.g. `0 0 30 2 *`: no match to be found
            return False
        return match is not None and match <= local < match + length


def in_maintenance(windows: Iterable[MaintenanceWindow], target: str, moment: datetime) -> bool:
    """Whether any window covering `target` is on at `moment`."""
    if not windows:  # most projects: no generator to start
        return False
    return any(w.covers(target) and w.active_at(moment) for w in windows)
