"""The dashboard's board: a summary from the daemon, then events folded in — order, filter,
uptime, sparkline points, token states and next runs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from apimd.model import Outcome, ResultCode, TokenState
from apimd.model.api import Summary, TargetSummary, dashboard_rank
from apimd.model.events import RunFinished, RunStarted, ScheduleFired, TokenStateChanged
from apimd.tui.monitors import HISTORY, Board

NOW = datetime(2026, 3, 14, 12, 0, tzinfo=UTC)


def target(name: str, outcome: Outcome | None = None, **fields: Any) -> TargetSummary:
    codes = {
        Outcome.PASS: ResultCode.COMPLETE,
        Outcome.FAIL: ResultCode.HTTP_SERVER_ERROR,
        Outcome.SKIPPED: ResultCode.NEEDS_SIGN_IN,
        Outcome.WARNING: ResultCode.CONTENT_WARNING,
    }
    if outcome is not None:
        fields.setdefault("result", codes[outcome])
        fields.setdefault("last_run", NOW - timedelta(seconds=5))
    return TargetSummary(name=name, kind=fields.pop("kind", "call"), outcome=outcome, **fields)


def summary(*targets: TargetSummary, at: datetime = NOW) -> Summary:
    return Summary(generated_at=at, window_s=86400, targets=list(targets))


def board() -> Board:
    b = Board()
    b.load_summary(
        summary(
            target("alpha", Outcome.PASS, recent_ms=[10, 12], counts={Outcome.PASS: 2}),
            target("broken", Outcome.FAIL, counts={Outcome.FAIL: 1, Outcome.PASS: 3}),
            target("signin", Outcome.SKIPPED, token="tok", token_state=TokenState.NEEDS_SIGN_IN),
            target("warn", Outcome.WARNING),
            target("zeta", Outcome.PASS, recent_ms=[30], counts={Outcome.PASS: 1}),
            target("never"),
            target("flow", kind="workflow", token_state=TokenState.NEEDS_SIGN_IN),
            target("uses-tok", Outcome.PASS, token="tok", token_state=TokenState.NEEDS_SIGN_IN),
        )
    )
    return b


def started(name: str) -> RunStarted:
    return RunStarted(run_id="r0", kind="call", name=name, trigger="manual")


def fired(schedule: str, at: datetime, *targets: str) -> ScheduleFired:
    return ScheduleFired(
        at=at, schedule=schedule, targets=targets, scheduled_at=at, lateness_ms=0.0
    )


def finished(
    name: str, outcome: str, result_id: str, *, at: datetime, ms: float = 3.5
) -> RunFinished:
    return RunFinished(
        at=at,
        run_id=result_id,
        result_id=result_id,
        kind="call",
        name=name,
        trigger="manual",
        outcome=Outcome(outcome),
        result=ResultCode.CONNECTION_ERROR if outcome == "FAIL" else ResultCode.COMPLETE,
        total_ms=ms,
    )


def test_failing_first_then_skipped_and_sign_in_then_warnings_then_the_rest_by_name() -> None:
    assert board().ordered() == [
        "broken",
        "flow",
        "signin",
        "uses-tok",
        "warn",
        "alpha",
        "never",
        "zeta",
    ]
    assert dashboard_rank(None, TokenState.NEEDS_SIGN_IN) == 1
    assert dashboard_rank(Outcome.SLOW) == 3


def test_filter_words_match_name_outcome_kind_and_token_state() -> None:
    b = board()
    assert b.ordered("fail") == ["broken"]
    assert b.ordered("workflow") == ["flow"]
    assert set(b.ordered("needs_sign")) == {"flow", "signin", "uses-tok"}
    assert b.ordered("ALPHA pass") == ["alpha"]
    assert b.ordered("nothing-like-this") == []


def test_a_finished_run_updates_outcome_latency_uptime_and_rank() -> None:
    b = board()
    later = NOW + timedelta(seconds=1)
    assert b.apply(started("zeta")) == {"zeta"}
    assert b.monitors["zeta"].running == 1
    assert b.apply(finished("zeta", "FAIL", "r1", at=later)) == {"zeta"}
    zeta = b.monitors["zeta"]
    assert (zeta.outcome, zeta.result, zeta.running) == (
        Outcome.FAIL,
        ResultCode.CONNECTION_ERROR,
        0,
    )
    assert zeta.latency_values == [30, 3.5]
    assert zeta.uptime == 0.5
    assert b.ordered()[:2] == ["broken", "zeta"]
    b.apply(finished("zeta", "FAIL", "r1", at=later))  # the same result again is no new point
    assert zeta.latency_values == [30, 3.5]


def test_runs_the_summary_already_counted_are_not_counted_twice() -> None:
    b = board()
    # Finished before the daemon made the summary, delivered after it: in the summary already.
    b.apply(finished("alpha", "FAIL", "old", at=NOW - timedelta(seconds=1)))
    alpha = b.monitors["alpha"]
    assert alpha.uptime == 1.0 and alpha.latency_values == [10, 12]
    b.apply(finished("alpha", "SKIPPED", "s", at=NOW + timedelta(seconds=1)))
    assert alpha.uptime == 1.0  # SKIPPED does not count


def test_sparklines_keep_the_last_points() -> None:
    b = Board()
    b.load_summary(summary(target("a", Outcome.PASS, recent_ms=[float(i) for i in range(20)])))
    b.apply(finished("a", "PASS", "new", at=NOW + timedelta(seconds=1), ms=99.0))
    values = b.monitors["a"].latency_values
    assert len(values) == HISTORY and values[0] == 1.0 and values[-1] == 99.0


def test_a_new_summary_updates_in_place_and_says_what_changed() -> None:
    b = board()
    b.apply(started("alpha"))
    changes = b.load_summary(
        summary(
            target("alpha", Outcome.PASS, recent_ms=[10, 12], counts={Outcome.PASS: 2}),
            target("broken", Outcome.PASS, counts={Outcome.FAIL: 1, Outcome.PASS: 4}),
            target("fresh"),
            at=NOW + timedelta(minutes=1),
        )
    )
    assert changes.added == ["fresh"]
    assert set(changes.removed) == {"signin", "warn", "zeta", "never", "flow", "uses-tok"}
    # alpha's run is still going (only events know); broken passed since.
    assert changes.changed == ["broken"]
    assert b.monitors["alpha"].running == 1
    b.load_summary(summary(target("alpha")), reset_running=True)
    assert b.monitors["alpha"].running == 0


def test_token_events_change_the_monitors_that_use_the_token() -> None:
    b = board()
    changed = b.apply(TokenStateChanged(at=NOW, token="tok", state=TokenState.VALID))
    assert changed == {"signin", "uses-tok"}
    assert b.token_state("uses-tok") is TokenState.VALID
    assert b.rank("uses-tok") == 3
    assert b.token_state("alpha") is None


def test_next_run_is_the_daemons_then_moves_on_with_each_fire() -> None:
    due = NOW + timedelta(seconds=20)
    b = Board()
    b.load_summary(summary(target("a", next_run=due), target("b")))
    assert b.next_run("a", NOW).text(NOW) == "in 20s"
    assert b.next_run("b", NOW).text(NOW) == "—"

    # Another schedule of `a` fires early: the next run stands.
    b.apply(fired("other", NOW, "a"))
    assert b.next_run("a", NOW).text(NOW) == "in 20s"
    # The fire that was due: the period is learnt from the two fires seen (20 s).
    b.apply(fired("s", due, "a"))
    assert b.next_run("a", due).text(due) == "in 20s"
    assert not b.overdue(["a", "b"], due)


def test_a_next_run_that_passed_unexplained_reads_due_and_is_overdue() -> None:
    due = NOW + timedelta(seconds=20)
    b = Board()
    b.load_summary(summary(target("a", next_run=due)))
    b.apply(fired("s", due, "a"))
    later = due + timedelta(seconds=5)
    assert b.next_run("a", later).text(later) == "due"  # no period known yet
    assert b.overdue(["a"], later)
    assert not b.overdue(["a"], due + timedelta(seconds=1))  # a moment of grace


def test_a_firing_skipped_beside_a_run_still_going_keeps_the_row_on_its_last_outcome() -> None:
    """SPEC §4: the skip is in the results list; the row keeps the last finished outcome and
    still shows the run going, and does not move among the rows that need attention."""
    b = board()
    going = RunStarted(run_id="long", kind="call", name="zeta", trigger="schedule")
    assert b.apply(going) == {"zeta"}
    skip = finished("zeta", "PASS", "skip-1", at=NOW + timedelta(seconds=20), ms=0).model_copy(
        update={"outcome": Outcome.SKIPPED, "result": ResultCode.CANCELLED, "trigger": "schedule"}
    )
    assert b.apply(skip) == set()
    zeta = b.monitors["zeta"]
    assert (zeta.outcome, zeta.running, zeta.uptime) == (Outcome.PASS, 1, 1.0)
    assert b.ordered().index("zeta") == len(b.ordered()) - 1  # with the passing rows
    # The long run ends: its own outcome, and no longer running.
    done = finished("zeta", "FAIL", "long", at=NOW + timedelta(seconds=75)).model_copy(
        update={"trigger": "schedule"}
    )
    assert b.apply(done) == {"zeta"}
    assert (zeta.outcome, zeta.running) == (Outcome.FAIL, 0)
    # A skipped firing with no run going (e.g. the daemon stopping) is the row's outcome.
    stopped = skip.model_copy(update={"run_id": "s2", "result_id": "s2"})
    stopped = stopped.model_copy(update={"at": NOW + timedelta(seconds=90)})
    assert b.apply(stopped) == {"zeta"} and zeta.outcome is Outcome.SKIPPED
