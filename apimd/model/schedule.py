"""Schedules (SPEC §2): when targets run, and the cron and time-zone checks maintenance windows
share."""

from __future__ import annotations

import zoneinfo
from datetime import datetime
from typing import Annotated, Any, Literal

from cronsim import CronSim, CronSimError
from pydantic import Field, field_validator, model_validator

from apimd.model.common import Name, Resource, parse_duration

MAX_EVERY_S = 366 * 86400.0
LocationName = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9._-]+$")]
"""An agent's `APIMD_LOCATION` as a schedule names it (SPEC §13)."""


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


# --- schedules ---------------------------------------------------------------------------------


class Schedule(Resource):
    """When targets run: `every` interval or `cron` expression."""

    every: str | None = None
    cron: str | None = None
    timezone: str = "UTC"
    targets: list[Name] = Field(min_length=1)
    enabled: bool = True
    jitter: float = Field(default=0, ge=0, le=3600)
    locations: list[LocationName] | Literal["all"] | None = None
    """Where it runs (SPEC §13): omitted, once per due instant somewhere; a list, once in each of
    those locations; `all`, in every location with a live agent."""

    @field_validator("every", mode="before")
    @classmethod
    def _every(cls, value: Any) -> Any:
        if value is None:
            return None
        seconds = parse_duration(value)
        if seconds < 1:
            raise ValueError("`every` must be at least 1s")
        if seconds > MAX_EVERY_S:
            raise ValueError("`every` must be at most 366d (use `cron` for rarer runs)")
        return value if isinstance(value, str) else f"{value:g}s"

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        return None if value is None else cron_expression(value)

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        return time_zone(value)

    @model_validator(mode="after")
    def _one_trigger(self) -> Schedule:
        if (self.every is None) == (self.cron is None):
            raise ValueError("give exactly one of `every` or `cron`")
        return self

    @property
    def every_seconds(self) -> float | None:
        return None if self.every is None else parse_duration(self.every)
