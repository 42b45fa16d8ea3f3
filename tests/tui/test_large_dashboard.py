"""The dashboard's table at thousands of monitors (issue 18 item 5): rows that change rank move
on their own into the place a full sort would give them, a cell update or a cursor move
re-renders only the rows it touches, a fill paints its first screenful before the rest is added,
and the summary parsed in pieces is the summary parsed whole."""

from __future__ import annotations

import json
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError
from textual.app import App, ComposeResult
from textual.coordinate import Coordinate
from textual.pilot import Pilot

from apimd.model.api import (
    Summary,
    SummaryOrder,
    TargetSummary,
    decode_in_pieces,
    parse_summary,
)
from apimd.model.outcome import Outcome, ResultCode
from apimd.tui.app import build_app
from apimd.tui.keys import TuiSettings
from apimd.tui.monitors import Board, SummaryChanges
from apimd.tui.screens.dashboard import DashboardScreen
from apimd.tui.widgets import monitor_table
from apimd.tui.widgets.monitor_table import MonitorTable
from apimd.tui.widgets.sorted_table import SortedTable
from tests.tui.conftest import wait_for
from tests.tui.fakes import SOCKET, FakeClient, frozen_clock

NOW = datetime(2026, 12, 6, 5, 0, tzinfo=UTC)


def summary_of(count: int, seed: int = 3) -> Summary:
    rng = random.Random(seed)
    targets = []
    for index in range(count):
        outcome = rng.choice([Outcome.PASS] * 8 + [Outcome.FAIL, Outcome.WARNING])
        targets.append(
            TargetSummary(
                name=f"svc-{index:04d}",
                kind="call",
                outcome=outcome,
                result=ResultCode.COMPLETE,
                last_run=NOW - timedelta(seconds=index % 50),
                recent_ms=[float(rng.randrange(5, 90)) for _ in range(20)],
                counts={outcome: 3},
                next_run=NOW + timedelta(seconds=30),
                tags=[f"team-{index % 5}"],
            )
        )
    return Summary(generated_at=NOW, window_s=86400, targets=targets)


class Host(App[None]):
    def __init__(self, table: SortedTable) -> None:
        super().__init__()
        self.table = table

    def compose(self) -> ComposeResult:
        yield self.table

    def on_mount(self) -> None:
        if not isinstance(self.table, MonitorTable):
            self.table.add_column("name", key="name", width=12)
            self.table.add_column("key", key="key", width=6)


@asynccontextmanager
async def filled(keys: dict[str, int]) -> AsyncIterator[tuple[SortedTable, Pilot[None]]]:
    """A table sorted by `keys`, running in an app, with a row per key."""
    table = SortedTable(lambda name: (keys[name], name))
    async with Host(table).run_test(size=(40, 20)) as pilot:
        for name in sorted(keys, key=lambda n: (keys[n], n)):
            table.insert_row(name, [name, str(keys[name])])
        await pilot.pause()
        yield table, pilot


@asynccontextmanager
async def monitors(count: int) -> AsyncIterator[tuple[Board, MonitorTable, Pilot[None]]]:
    """A board of `count` monitors and its (empty) monitor table, running in an app."""
    board = Board()
    board.load_summary(summary_of(count))
    table = MonitorTable(board, lambda: NOW)
    async with Host(table).run_test(size=(120, 30)) as pilot:
        yield board, table, pilot


def on_screen(table: SortedTable) -> str:
    return "".join(strip.text for strip in table.render_lines(table.region))


def locations(table: SortedTable) -> list[int]:
    return [table.get_row_index(name) for name in table.ordered_names]


async def test_rows_that_change_rank_move_alone_to_where_a_full_sort_puts_them() -> None:
    rng = random.Random(5)
    keys = {f"m{i:04d}": rng.randrange(4) for i in range(2000)}
    async with filled(keys) as (table, pilot):
        before = list(table.ordered_names)
        moved = rng.sample(sorted(keys), 60)
        for name in moved:
            keys[name] = (keys[name] + 1 + rng.randrange(3)) % 4
        assert table.move_rows(moved + ["m0001"]) == 60  # m0001 kept its key: it stays
        assert table.ordered_names == sorted(keys, key=lambda n: (keys[n], n))
        assert locations(table) == list(range(len(keys)))  # DataTable agrees on every place
        assert [r.key.value for r in table.ordered_rows] == table.ordered_names
        unmoved = set(moved)
        assert [n for n in table.ordered_names if n not in unmoved] == [
            n for n in before if n not in unmoved
        ]
        table.remove_row("m0002")
        assert locations(table) == list(range(len(keys) - 1))
        await pilot.pause()
        top = table.ordered_names[0]
        assert str(table.get_cell_at(Coordinate(0, 0))) == top
        assert top in on_screen(table)


async def test_a_cell_update_or_cursor_move_renders_only_the_rows_it_touches() -> None:
    keys = {f"m{i:04d}": 0 for i in range(3000)}
    async with filled(keys) as (table, pilot):
        table.refresh()
        await pilot.pause()
        rendered = table.rows_rendered
        table.update_cell("m0003", "key", "7")
        await pilot.pause()
        assert table.rows_rendered - rendered == 1  # DataTable alone: every visible row
        assert "m0003 " in on_screen(table)
        rendered = table.rows_rendered
        await pilot.press("down")
        await pilot.pause()
        assert table.cursor_row == 1
        assert table.rows_rendered - rendered == 2  # the row it left and the row it is on


async def test_rows_that_only_shift_are_not_rendered_again_and_point_at_their_new_place() -> None:
    keys = {f"m{i:04d}": 1 for i in range(3000)}
    async with filled(keys) as (table, pilot):
        rendered = table.rows_rendered
        keys["m2999"] = 0
        table.update_cell("m2999", "key", "0")
        assert table.move_rows(["m2999"]) == 1  # to the top: every row on screen shifts down
        await pilot.pause()
        assert table.rows_rendered - rendered <= 2  # the moved row (and the cursor's row)
        lines = table.render_lines(table.region)
        assert lines[1].text.startswith(" m2999") and lines[2].text.startswith(" m0000")
        metas = [segment.style.meta for segment in lines[3] if segment.style and segment.text]
        assert {meta.get("row") for meta in metas} == {2}  # a click there selects m0001
        assert table.get_row_at(2)[0] == "m0001"


async def test_a_large_fill_paints_its_first_rows_then_adds_the_rest_keeping_the_cursor() -> None:
    async with monitors(1500) as (board, table, pilot):
        table.fill(board.ordered(), 120)
        assert table.row_count == monitor_table.FIRST_ROWS  # the first screenful at once
        assert table.shown_names() == board.ordered()[: monitor_table.FIRST_ROWS]
        assert not table.settled
        await wait_for(pilot, lambda: not table.filling, what="the rest of the rows")
        assert table.shown_names() == board.ordered()
        assert table.settled
        target = board.ordered("team-1")[-10]  # far down the filtered rows too (of 300)
        table.restore_cursor(target)
        assert table.cursor_row > 1000
        table.fill(board.ordered("team-1"), 120)  # typing a filter while far down the table
        await wait_for(pilot, lambda: not table.filling, what="the filtered rows")
        assert table.shown_names() == board.ordered("team-1")
        assert table.current_name() == target


async def test_refilling_midway_drops_the_rows_the_first_fill_had_left() -> None:
    async with monitors(3000) as (board, table, pilot):
        table.fill(board.ordered(), 120)
        table.fill(board.ordered("team-2"), 120)
        await wait_for(pilot, lambda: not table.filling, what="the second fill")
        await pilot.pause(0.05)
        assert table.shown_names() == board.ordered("team-2")


def test_the_summary_parsed_in_pieces_is_the_summary_parsed_whole() -> None:
    summary = summary_of(1200)
    payload: dict[str, Any] = summary.model_dump(mode="json")
    assert parse_summary(payload) == Summary.model_validate(payload) == summary
    payload["targets"][900]["kind"] = "banana"
    with pytest.raises(ValidationError) as raised:
        parse_summary(payload)
    assert raised.value.errors()[0]["loc"][:3] == ("targets", 900, "kind")


def test_the_summary_text_decoded_in_pieces_is_what_json_loads_makes_of_it() -> None:
    summary = summary_of(600)
    text = summary.model_dump_json(indent=1)  # white space between every token
    assert parse_summary(text) == summary == parse_summary(summary.model_dump_json())
    document = summary.model_dump(mode="json")
    assert parse_summary(json.dumps(document)) == summary  # as the daemon writes it
    document["targets"][7]["description"] = 'a }, {"name": "b'  # the text between targets
    assert parse_summary(json.dumps(document)) == Summary.model_validate(document)
    first = {"targets": document["targets"], "window_s": 86400, "generated_at": NOW.isoformat()}
    assert parse_summary(json.dumps(first)) == Summary.model_validate(document)  # another layout
    document["targets"][450]["kind"] = "banana"
    with pytest.raises(ValidationError) as raised:
        parse_summary(json.dumps(document))
    assert raised.value.errors()[0]["loc"][:3] == ("targets", 450, "kind")
    assert decode_in_pieces(text) == json.loads(text)
    for piece in ('{"a": [ ], "b": [1, {"c": [2]}], "d": "}]"}', "[1, 2]", '"s"', "{}"):
        assert decode_in_pieces(piece) == json.loads(piece)
    for broken in (
        '{"a": [1, 2,]}',
        '{"a": 1,}',
        '{"a" 1}',
        '{"a": 1} x',
        '{"a": [1 2]}',
        "{1: 2}",
    ):
        with pytest.raises(json.JSONDecodeError):
            json.loads(broken)
        with pytest.raises(json.JSONDecodeError):
            decode_in_pieces(broken)
    with pytest.raises(json.JSONDecodeError) as malformed:
        parse_summary('{"generated_at": "2026-12-06T05:00:00Z", "targets": [{"name": "a"} {}]}')
    assert "Expecting ',' delimiter" in str(malformed.value)


def test_the_head_of_a_summary_is_the_first_rows_of_the_whole_board_in_order() -> None:
    summary = summary_of(1500)
    head = Board()
    names = head.load_head(summary, 40)
    whole = Board()
    whole.load_summary(summary)
    assert names == whole.ordered()[:40] == head.ordered()
    assert all(head.monitors[n].signature() == whole.monitors[n].signature() for n in names)
    changes = head.load_summary(summary)  # the rest, folded in afterwards
    assert sorted(changes.added) == sorted(set(whole.monitors) - set(names))
    assert changes.changed == [] and changes.removed == []
    assert head.ordered() == whole.ordered()


class LargeClient(FakeClient):
    """The fake daemon with a summary of 1,500 monitors, sent whole whatever was asked."""

    async def summary(
        self, *, window: str = "24h", order: SummaryOrder = "project", limit: int | None = None
    ) -> Summary:
        return summary_of(1500)


async def test_a_large_first_summary_paints_its_first_rows_before_the_whole_is_folded_in(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app = build_app(SOCKET, clock=frozen_clock, settings=TuiSettings(), client=LargeClient())
    seen_at_fold: list[tuple[int, int]] = []
    async with app.run_test(size=(120, 30)) as pilot:
        screen = app.screen
        assert isinstance(screen, DashboardScreen)
        fold = screen.board.load_summary

        def watched_fold(summary: Summary, *, reset_running: bool = False) -> SummaryChanges:
            seen_at_fold.append((screen.table.row_count, screen.table.rows_rendered))
            return fold(summary, reset_running=reset_running)

        monkeypatch.setattr(screen.board, "load_summary", watched_fold)
        await wait_for(pilot, lambda: screen.summaries == 1 and screen.table.settled, what="all")
        rows, rendered = seen_at_fold[0]
        assert rows == monitor_table.FIRST_ROWS and rendered > 0  # already on screen
        assert screen.table.shown_names() == screen.board.ordered()
        assert len(screen.board.ordered()) == 1500
