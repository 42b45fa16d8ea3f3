"""The TUI's status line names the agent and its cluster (SPEC §13)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from apimd.model.api import AgentInfo, StatusInfo
from apimd.tui.connection import DaemonState

NOW = datetime(2026, 12, 6, 5, 0, tzinfo=UTC)


def status(agents: list[tuple[str, str, bool]], *, me: str, leader: bool) -> StatusInfo:
    return StatusInfo(
        version="0.1.0",
        pid=1,
        started_at=NOW,
        uptime_s=0,
        counts={"calls": 2},
        scheduler="running" if leader else "stopped",
        schedules=1,
        callback_url="http://127.0.0.1:1/tokens/callback",
        callback_bound=True,
        db_path="PostgreSQL database apimd on 127.0.0.1:5432",
        socket_path="/tmp/s",
        agent=me,
        location=next(loc for name, loc, _ in agents if name == me),
        leader=leader,
        agents=[
            AgentInfo(
                agent=name, location=loc, pid=1, started_at=NOW, last_heartbeat=NOW, leader=lead
            )
            for name, loc, lead in agents
        ],
    )


CLUSTER = [("a1", "loc-a", True), ("a2", "loc-a", False), ("b1", "loc-b", False)]


def test_a_follower_names_itself_and_its_cluster_not_a_stopped_scheduler() -> None:
    line = DaemonState(
        Path("/tmp/s"), connected=True, checked=True, status=status(CLUSTER, me="b1", leader=False)
    ).summary(NOW)
    assert "agent b1 in loc-b of 3 agents in 2 locations" in line
    assert "scheduler" not in line


def test_the_leader_says_so() -> None:
    line = DaemonState(
        Path("/tmp/s"), connected=True, checked=True, status=status(CLUSTER, me="a1", leader=True)
    ).summary(NOW)
    assert "leader a1 in loc-a of 3 agents in 2 locations" in line


def test_the_cluster_part_fits_a_120_column_status_bar() -> None:
    """At 120 columns the bar leaves ~95 cells for the summary: the counts go first, so the
    agent and its cluster are never the part cut off."""
    info = status(CLUSTER, me="b1", leader=False).model_copy(
        update={"counts": {"calls": 120, "workflows": 14, "tokens": 9}}
    )
    state = DaemonState(Path("/tmp/s"), connected=True, checked=True, status=info)
    assert "9 tokens" in state.summary(NOW)
    line = state.summary(NOW, 95)
    assert len(line) <= 95, line
    assert line.endswith("agent b1 in loc-b of 3 agents in 2 locations"), line
    assert "daemon 0.1.0" in line and "tokens" not in line


def test_the_last_agent_left_still_names_its_cluster_and_the_locations_left_unserved() -> None:
    """b1 and a2 are gone: the line must not read like a lone daemon's, and a location its
    schedules name with no agent left is said (its runs are dropped)."""
    info = status([("a1", "loc-a", True)], me="a1", leader=True).model_copy(
        update={"clustered": True, "unserved_locations": ["loc-b"], "counts": {"tokens": 1}}
    )
    state = DaemonState(Path("/tmp/s"), connected=True, checked=True, status=info)
    line = state.summary(NOW)
    assert "leader a1 in loc-a of 1 agent in 1 location" in line
    assert line.startswith("⚠ no live agent in loc-b · daemon 0.1.0"), line
    assert "0 calls · 0 workflows · 1 token ·" in line
    assert state.summary(NOW, 60).startswith(
        "⚠ no live agent in loc-b"
    )  # a narrow bar cuts the rest


def test_a_lone_daemons_line_drops_whole_counts_rather_than_cut_one() -> None:
    """At 80 columns the bar cut a lone daemon's line at "· 3 workflows · 3…" (the retest): the
    counts go whole, tokens first, and a paused scheduler stays."""
    info = status([("a1", "here", True)], me="a1", leader=True).model_copy(
        update={"agents": [], "scheduler": "paused"}
    )
    info.counts.update(calls=3, workflows=3, tokens=3)
    state = DaemonState(Path("/tmp/s"), connected=True, checked=True, status=info)
    assert state.summary(NOW) == (
        "daemon 0.1.0 started 0s ago · 3 calls · 3 workflows · 3 tokens · scheduler paused"
    )
    line = state.summary(NOW, 60)
    assert line == "daemon 0.1.0 started 0s ago · 3 calls · scheduler paused", line
