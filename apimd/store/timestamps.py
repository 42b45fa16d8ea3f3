"""Datetimes as stored: integer microseconds since the Unix epoch, UTC."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
HOUR_US = 3600 * 1_000_000


def to_us(moment: datetime) -> int:
    """Microseconds since the epoch; a naive datetime is taken as UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    delta = moment - _EPOCH  # its parts, not `// timedelta(microseconds=1)`: a third of the time
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_us(micros: int) -> datetime:
    """The aware UTC datetime of `to_us`."""
    return _EPOCH + timedelta(microseconds=micros)


def hour_floor_us(micros: int) -> int:
    """The start of the UTC hour holding `micros`."""
    return micros - micros % HOUR_US


def utc_now() -> datetime:
    return datetime.now(UTC)
