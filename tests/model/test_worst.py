"""`worst` ranks codes from a table made of `ResultCode.rank` (issue 18): the same code as ranking
each by its `rank` property."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from apimd.model.outcome import ResultCode, worst


@given(st.lists(st.sampled_from(list(ResultCode)), max_size=6))
def test_worst_is_the_code_of_the_highest_rank(codes: list[ResultCode]) -> None:
    expected = max(codes, key=lambda c: c.rank, default=ResultCode.COMPLETE)
    assert worst(codes) is expected
