"""What the TUI knows about its daemon connection (no Textual here)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from apimd.model.api import StatusInfo
from apimd.tui.formatting import short_duration

RETRY_S = 2.0
"""How often the TUI tries again while no daemon answers."""


@dataclass(frozen=True)
class DaemonState:
    """`generation` counts successful connections: screens reload when it changes."""

    socket_path: Path
    connected: bool = False
    status: StatusInfo | None = None
    error: str | None = None
    generation: int = 0
    checked: bool = False
    """False until the first attempt to reach the daemon has finished."""

    def summary(self, now: datetime, width: int | None = None) -> str:
        """One line for the status bar, within `width` cells when given: the counts of tokens,
        then workflows, then calls go first, so the part saying where you are (the agent, a
        paused scheduler, what runs) stays; at 80 columns a lone daemon's was cut mid-count."""
        if not self.checked:
            return f"connecting to {self.socket_path}…"
        if not self.connected or self.status is None:
            return f"no daemon reachable at {self.socket_path} · retrying every {RETRY_S:g} s"
        status = self.status
        uptime = short_duration(max(0.0, (now - status.started_at).total_seconds()))
        counts = status.counts
        parts = [
            # The daemon's age, said as such: "up" reads like the monitors' uptime column.
            f"daemon {status.version} started {uptime} ago",
            *(_counted(counts.get(f"{kind}s", 0), kind) for kind in ("call", "workflow", "token")),
        ]
        # Agents sharing one store (SPEC §13): said also when this one is the last one left.
        clustered = status.clustered or len(status.agents) > 1
        if clustered:
            locations = len({agent.location for agent in status.agents})
            role = "leader" if status.leader else "agent"
            agents = _counted(len(status.agents), "agent")
            parts.append(
                f"{role} {status.agent} in {status.location} of {agents}"
                f" in {_counted(locations, 'location')}"
            )
        elif status.scheduler != "running":
            parts.append(f"scheduler {status.scheduler}")
        if status.running:
            parts.append(f"running {len(status.running)}")
        # First, so a narrow bar never cuts it: schedules there run nowhere (SPEC §13).
        warnings = [f"⚠ no live agent in {where}" for where in status.unserved_locations]
        for drop in (3, 2, 1):  # tokens, workflows, calls: the counts the dashboard shows too
            if width is None or len(" · ".join(warnings + parts)) <= width:
                break
            del parts[drop]
        return " · ".join(warnings + parts)


def _counted(count: int, noun: str) -> str:
    """`1 token`, `2 tokens`."""
    return f"{count} {noun}{'s' if count != 1 else ''}"
