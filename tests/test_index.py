"""The attribute index against a plain dict model: every write, every kind of read.

Tiny tree and threshold sizes reach every code path (multi-level trees, the dirty
overlay, rebuilds, the switch from per-value bitmaps to the sorted column) with a
handful of profiles.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from segkit.index import AttributeIndex, SortedColumn

IDS = st.integers(0, 40)
VALUES = st.integers(-5, 30)
BOUND = st.none() | st.integers(-7, 32)


def in_interval(v: Any, low: Any, high: Any, low_inc: bool, high_inc: bool) -> bool:
    if low is not None and (v < low if low_inc else v <= low):
        return False
    return high is None or (v <= high if high_inc else v < high)


@settings(max_examples=300, deadline=None)
@given(
    values=st.dictionaries(IDS, VALUES, max_size=40),
    leaf=st.integers(1, 4),
    fanout=st.integers(2, 4),
    extra_prefixes=st.integers(0, 6),
    low=BOUND,
    high=BOUND,
    low_inc=st.booleans(),
    high_inc=st.booleans(),
)
def test_sorted_column_ranges_equal_a_scan(
    values: dict[int, int],
    leaf: int,
    fanout: int,
    extra_prefixes: int,
    low: int | None,
    high: int | None,
    low_inc: bool,
    high_inc: bool,
) -> None:
    """ids_between == the ids a linear scan finds, for any tree shape and interval."""
    column = SortedColumn(values, leaf=leaf, fanout=fanout, prefixes=fanout + extra_prefixes)
    got = column.ids_between(low, high, low_inclusive=low_inc, high_inclusive=high_inc)
    assert set(got) == {
        p for p, v in values.items() if in_interval(v, low, high, low_inc, high_inc)
    }
    assert column.values == sorted(values.values())


def test_sorted_column_tree_shape() -> None:
    """Leaves hold ``leaf`` positions; each level groups ``fanout`` nodes of the one below."""
    column = SortedColumn({i: -i for i in range(10)}, leaf=2, fanout=2, prefixes=3)
    assert [len(level) for level in column.levels] == [5, 3, 2]
    assert [sorted(bm) for bm in column.levels[0]] == [[8, 9], [6, 7], [4, 5], [2, 3], [0, 1]]
    # prefix unions over the first level with at most 3 nodes (runs of 4 positions)
    assert [sorted(bm) for bm in column._prefixes] == [
        [],
        [6, 7, 8, 9],
        [2, 3, 4, 5, 6, 7, 8, 9],
        list(range(10)),
    ]
    assert sorted(column.ids_at(1, 8)) == [2, 3, 4, 5, 6, 7, 8]
    assert sorted(column.ids_at(3, 10)) == [0, 1, 2, 3, 4, 5, 6]
    with pytest.raises(
        ValueError,
        match="need leaf >= 1, fanout >= 2 and prefixes >= fanout, got 0, 2 and 2",
    ):
        SortedColumn({}, leaf=0, fanout=2, prefixes=2)


class IndexMachine(RuleBasedStateMachine):
    """Random writes and reads on one AttributeIndex, checked against a dict."""

    @initialize(
        is_list=st.booleans(),
        low_cardinality=st.sampled_from([0, 3, 1024]),
        leaf=st.integers(1, 3),
        fanout=st.integers(2, 3),
        prefixes=st.integers(3, 5),
        dirty_min=st.integers(0, 5),
    )
    def setup(
        self,
        is_list: bool,
        low_cardinality: int,
        leaf: int,
        fanout: int,
        prefixes: int,
        dirty_min: int,
    ) -> None:
        self.is_list = is_list
        self.index = AttributeIndex(
            is_list=is_list,
            low_cardinality=low_cardinality,
            leaf=leaf,
            fanout=fanout,
            prefixes=prefixes,
            dirty_min=dirty_min,
        )
        self.model: dict[int, Any] = {}

    @rule(pid=IDS, value=VALUES, extra=st.lists(VALUES, max_size=3))
    def set_value(self, pid: int, value: int, extra: list[int]) -> None:
        stored: Any = (value, *extra) if self.is_list else value
        self.index.set(pid, stored)
        self.model[pid] = stored

    @rule(pid=IDS, value=st.none() | VALUES, extra=st.lists(VALUES, max_size=3))
    def swap(self, pid: int, value: int | None, extra: list[int]) -> None:
        """swap stores like set and returns the value the profile had (None: none)."""
        stored: Any = value if value is None or not self.is_list else (value, *extra)
        assert self.index.swap(pid, stored) == self.model.get(pid)
        if stored is None:
            self.model.pop(pid, None)
        else:
            self.model[pid] = stored

    @rule(pid=IDS)
    def unset(self, pid: int) -> None:
        self.index.unset(pid)
        self.model.pop(pid, None)

    @rule(pid=IDS)
    def set_none(self, pid: int) -> None:
        self.index.set(pid, None)
        self.model.pop(pid, None)

    @rule(value=VALUES)
    def equal(self, value: int) -> None:
        got = set(self.index.equal(value))
        if self.is_list:
            assert got == {p for p, v in self.model.items() if value in v}
        else:
            assert got == {p for p, v in self.model.items() if v == value}

    @rule(low=BOUND, high=BOUND, low_inc=st.booleans(), high_inc=st.booleans())
    def range_query(self, low: int | None, high: int | None, low_inc: bool, high_inc: bool) -> None:
        if self.is_list:
            return
        got = self.index.range(low, high, low_inclusive=low_inc, high_inclusive=high_inc)
        assert set(got) == {
            p for p, v in self.model.items() if in_interval(v, low, high, low_inc, high_inc)
        }

    @rule(modulus=st.integers(2, 4))
    def where(self, modulus: int) -> None:
        if self.is_list:
            return
        got = self.index.where(lambda v: v % modulus == 0)
        assert set(got) == {p for p, v in self.model.items() if v % modulus == 0}

    @rule(values=st.lists(VALUES, max_size=3))
    def elements(self, values: list[int]) -> None:
        if not self.is_list:
            return
        for value, bm in zip(values, self.index.elements(values), strict=True):
            assert set(bm) == {p for p, v in self.model.items() if value in v}

    @invariant()
    def known_and_values_match(self) -> None:
        if hasattr(self, "model"):
            assert set(self.index.known) == set(self.model)
            assert self.index.value_of == self.model

    @invariant()
    def per_value_bitmaps_equal_a_fresh_build(self) -> None:
        """Writes keep exactly the per-value (per-element) bitmaps a fresh index built
        from the same values has: no stale id, no empty bitmap left behind."""
        if not hasattr(self, "model") or self.index._by_value is None:
            return
        fresh = AttributeIndex(is_list=self.is_list, low_cardinality=10**6)
        for pid, value in sorted(self.model.items()):
            fresh.set(pid, value)
        assert fresh._by_value is not None
        got = {value: sorted(bm) for value, bm in self.index._by_value.items()}
        assert got == {value: sorted(bm) for value, bm in fresh._by_value.items()}


TestIndexMachine = IndexMachine.TestCase
TestIndexMachine.settings = settings(max_examples=150, stateful_step_count=30, deadline=None)


def test_reads_do_not_hand_out_bitmaps_that_writes_then_change_under_the_caller() -> None:
    """A range result computed before a write is not altered by the write."""
    idx = AttributeIndex(
        is_list=False, low_cardinality=0, leaf=1, fanout=2, prefixes=2, dirty_min=10
    )
    for pid in range(6):
        idx.set(pid, pid * 10)
    before = idx.range(10, 40)
    idx.set(2, 99)
    assert sorted(before) == [1, 2, 3, 4]
    assert sorted(idx.range(10, 40)) == [1, 3, 4]
