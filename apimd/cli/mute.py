"""`apimd mute TARGET DURATION`: a one-off maintenance window from now (SPEC §11)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from apimd.cli import UsageError
from apimd.client import ApiError, Client
from apimd.model.common import parse_duration
from apimd.settings import Settings

MAX_MUTE_S = 366 * 86400.0


async def mute_command(settings: Settings, target: str, duration: str) -> int:
    try:
        seconds = parse_duration(duration)
    except ValueError as exc:
        raise UsageError(f"DURATION: {exc}") from None
    if not 1 <= seconds <= MAX_MUTE_S:
        raise UsageError("DURATION must be between 1s and 366d")
    start = datetime.now(UTC).replace(microsecond=0)
    end = start + timedelta(seconds=seconds)
    name = f"mute-{target}-{start:%Y%m%dT%H%M%SZ}"[:100]
    window = {
        "name": name,
        "description": f"apimd mute {target} {duration}",
        "start": start.isoformat(),
        "end": end.isoformat(),
        "targets": [target],
    }
    async with Client(settings.socket_path) as client:
        try:
            await client.put("maintenance", name, window)
        except ApiError as exc:
            if exc.status < 500 and "unknown call or workflow" in str(exc):
                raise UsageError(f"the daemon has no call or workflow named {target!r}") from None
            raise
    print(f"muted {target} until {end:%Y-%m-%d %H:%M:%S} UTC (maintenance window {name})")
    return 0
