"""Schedules (SPEC §2): when targets run, and the cron and time-zone checks maintenance windows
share."""

from __future__ import annotations

import zoneinfo
from datetime import datetime
from typing import Annotated, Any, Literal

from cronsim import CronSim, CronSimError
from pydantic import AfterValidator, Field, field_validator, model_validator

from apimd.model.common import LocationName, Name, Resource, parse_duration

MAX_EVERY_S = 366 * 86400.0


def cron_expression(value: str) -> str:
    """`value` when it is a 5-field cron expression CronSim accepts (schedules, maintenance)."""
    if len(value.split()) != 5:
        raise ValueError("`cron` needs 5 fields: minute hour day month weekday")
    try:
        CronSim(value, datetime(2000, 1, 1))
    except CronSimError as exc:
        raise ValueError(f"invalid cron expression: {exc}") from None
    return value


def time_zone(value: str) -> str:
    """`value` when it names an IANA time zone."""
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(f"unknown time zone {value!r}") from None
    return value


CronText = Annotated[str, AfterValidator(cron_expression)]
TimeZoneName = Annotated[str, AfterValidator(time_zone)]


def bounded_duration(value: Any, longest_s: float, too_short: str, too_long: str) -> Any:
    """A duration field as written (a bare number becomes `90s`), from 1 s to `longest_s`."""
    if value is None:
        return None
    seconds = parse_duration(value)
    if seconds < 1:
        raise ValueError(too_short)
    if seconds > longest_s:
        raise ValueError(too_long)
    return value if isinstance(value, str) else f"{value:g}s"


# --- schedules ---------------------------------------------------------------------------------


class Schedule(Resource):
    """When targets run: `every` interval or `cron` expression."""

    every: str | None = None
    cron: CronText | None = None
    timezone: TimeZoneName = "UTC"
    targets: list[Name] = Field(min_length=1)
    enabled: bool = True
    jitter: float = Field(default=0, ge=0, le=3600)
    locations: list[LocationName] | Literal["all"] | None = Field(
        default=None, description="`all` or a list of location names"
    )
    """Where it runs (SPEC §13): omitted, once per due instant somewhere; a list, once in each of
    those locations; `all`, in every location with a live agent."""

    @field_validator("every", mode="before")
    @classmethod
    def _every(cls, value: Any) -> Any:
        return bounded_duration(
            value,
            MAX_EVERY_S,
            "`every` must be at least 1s",
            "`every` must be at most 366d (use `cron` for rarer runs)",
        )

    @model_validator(mode="after")
    def _one_trigger(self) -> Schedule:
        if (self.every is None) == (self.cron is None):
            raise ValueError("give exactly one of `every` or `cron`")
        return self

    @property
    def every_seconds(self) -> float | None:
        return None if self.every is None else parse_duration(self.every)
