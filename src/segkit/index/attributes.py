"""Per-attribute indexes over dense profile ids.

Every attribute keeps a ``known`` bitmap and each profile's value.

* While a scalar attribute has few distinct values (at most
  :data:`LOW_CARDINALITY`) it keeps one bitmap per value, maintained on every
  write: equality is one lookup, a range or any other test is the union of the
  bitmaps of the values that pass it (the test runs once per distinct value).
* Every scalar attribute also answers ranges (spanning more than
  :data:`FEW_VALUES` distinct values, when per-value bitmaps exist) from a :class:`SortedColumn`: the
  values in order with their ids, and a tree of bitmaps over runs of sorted
  positions (leaves of :data:`LEAF` positions, :data:`FANOUT` children per node),
  so a range is the union of the difference of two *prefix unions* (ids of the
  first k coarse nodes) plus at most ``FANOUT - 1`` nodes per lower level and
  side, plus the few ids at its two ends. The column is built lazily by the first range
  query and not rewritten on each write: writes since the build are kept in a
  *dirty* set that queries check one by one, and the column is rebuilt once the
  dirty set outgrows ``max(4096, n / 16)`` ids.
* List attributes keep one bitmap per element.

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import array
import bisect
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Final

from pyroaring import BitMap

__all__ = ["FANOUT", "LEAF", "LOW_CARDINALITY", "AttributeIndex", "SortedColumn"]

#: A scalar attribute keeps per-value bitmaps while it has at most this many distinct values.
LOW_CARDINALITY: Final = 1024
#: A range over a low-cardinality attribute that spans more values than this is answered
#: from the sorted column rather than by uniting per-value bitmaps.
FEW_VALUES: Final = 4
#: Sorted positions per leaf of a :class:`SortedColumn`'s bitmap tree.
LEAF: Final = 512
#: Children per node of a :class:`SortedColumn`'s bitmap tree.
FANOUT: Final = 8
#: At most this many prefix unions per :class:`SortedColumn` (memory: up to n/8 bytes each).
PREFIXES: Final = 64
#: A column is rebuilt once more than ``max(DIRTY_MIN, n // DIRTY_DIVISOR)`` ids changed.
DIRTY_MIN: Final = 4096
DIRTY_DIVISOR: Final = 16


class SortedColumn:
    """The values of one attribute in sorted order, with a bitmap tree over positions.

    ``ids_between(low, high)`` returns the ids whose value lies in the interval.

    >>> col = SortedColumn({10: 3.5, 11: 1.0, 12: 2.0, 13: 9.0})
    >>> col.values, list(col.ids)
    ([1.0, 2.0, 3.5, 9.0], [11, 12, 10, 13])
    >>> sorted(col.ids_between(2.0, None, low_inclusive=False))
    [10, 13]
    """

    __slots__ = ("_coarse", "_prefixes", "fanout", "ids", "leaf", "levels", "values")

    def __init__(
        self,
        value_of: Mapping[int, Any],
        *,
        leaf: int = LEAF,
        fanout: int = FANOUT,
        prefixes: int = PREFIXES,
    ) -> None:
        if leaf < 1 or fanout < 2 or prefixes < fanout:
            raise ValueError(
                f"need leaf >= 1, fanout >= 2 and prefixes >= fanout, "
                f"got {leaf}, {fanout} and {prefixes}"
            )
        self.leaf, self.fanout = leaf, fanout
        getter = value_of.__getitem__
        if isinstance(value_of, _ValueView):  # skip the known-check on each lookup
            getter = value_of._values.__getitem__
        order = sorted(value_of, key=getter)
        self.values: list[Any] = [getter(pid) for pid in order]
        self.ids = array.array("I", order)
        # levels[0][k] = ids at sorted positions [k*leaf, (k+1)*leaf); levels[j+1][k] =
        # union of levels[j][k*fanout : (k+1)*fanout]
        leaves = [BitMap(sorted(order[i : i + leaf])) for i in range(0, len(order), leaf)]
        self.levels: list[list[BitMap]] = [leaves]
        while len(self.levels[-1]) > fanout:
            below = self.levels[-1]
            self.levels.append(
                [BitMap.union(*below[i : i + fanout]) for i in range(0, len(below), fanout)]
            )
        # the finest level with at most `prefixes` nodes gets prefix unions:
        # _prefixes[j] = ids at sorted positions [0, j * coarse size), j >= 1
        depth = next(d for d, nodes in enumerate(self.levels) if len(nodes) <= prefixes)
        self._coarse = leaf * fanout**depth
        self._prefixes: list[BitMap] = [BitMap()]
        acc = BitMap()
        for node in self.levels[depth]:
            acc |= node
            self._prefixes.append(acc.copy())
        for bm in self._prefixes:
            bm.run_optimize()

    def positions(
        self, low: Any, high: Any, low_inclusive: bool = True, high_inclusive: bool = True
    ) -> tuple[int, int]:
        """The half-open run of sorted positions whose values lie in the interval."""
        values = self.values
        if low is None:
            start = 0
        elif low_inclusive:
            start = bisect.bisect_left(values, low)
        else:
            start = bisect.bisect_right(values, low)
        if high is None:
            end = len(values)
        elif high_inclusive:
            end = bisect.bisect_right(values, high)
        else:
            end = bisect.bisect_left(values, high)
        return start, max(start, end)

    def ids_between(
        self, low: Any, high: Any, *, low_inclusive: bool = True, high_inclusive: bool = True
    ) -> BitMap:
        """Ids whose value lies between ``low`` and ``high`` (``None`` = unbounded)."""
        return self.ids_at(*self.positions(low, high, low_inclusive, high_inclusive))

    def ids_at(self, start: int, end: int) -> BitMap:
        """Ids at sorted positions ``[start, end)``.

        The whole coarse nodes inside are one difference of two prefix unions; the
        rest comes from the tree, at most ``fanout - 1`` nodes per level and side.
        """
        coarse, count = self._coarse, len(self._prefixes) - 1
        first = -(-start // coarse)
        stop = count if end == len(self.ids) else end // coarse
        if first >= stop:
            parts = self._tree_parts(start, end)
            return BitMap.union(*parts) if parts else BitMap()
        prefixes = self._prefixes
        out = prefixes[stop] - prefixes[first] if first else prefixes[stop].copy()
        for part in self._tree_parts(start, min(end, first * coarse)):
            out |= part
        for part in self._tree_parts(min(end, stop * coarse), end):
            out |= part
        return out

    def _tree_parts(self, start: int, end: int) -> list[BitMap]:
        """Bitmaps whose union is the ids at sorted positions ``[start, end)``."""
        if end <= start:
            return []
        leaf, fanout = self.leaf, self.fanout
        first, stop = -(-start // leaf), end // leaf  # the whole leaves inside
        if first >= stop:
            return [BitMap(sorted(self.ids[start:end]))]
        edges = self.ids[start : first * leaf] + self.ids[stop * leaf : end]
        parts = [BitMap(sorted(edges))]
        levels = self.levels
        top = len(levels) - 1
        for depth, nodes in enumerate(levels):
            if depth == top:
                parts.extend(nodes[first:stop])
                break
            aligned_first = min(stop, -(-first // fanout) * fanout)
            aligned_stop = max(aligned_first, stop // fanout * fanout)
            parts.extend(nodes[first:aligned_first])
            parts.extend(nodes[aligned_stop:stop])
            first, stop = aligned_first // fanout, aligned_stop // fanout
            if first >= stop:
                break
        return parts


class AttributeIndex:
    """The index of one attribute.

    The keyword options size the structures (the defaults suit millions of
    profiles; tests use tiny ones to reach every code path with few profiles).
    Bitmaps returned by the query methods may be the index's own: treat them as
    read-only.

    >>> idx = AttributeIndex(is_list=False)
    >>> for i, age in enumerate([31, 17, 45, 31]):
    ...     idx.set(i, age)
    >>> sorted(idx.equal(31)), sorted(idx.range(18, 40))
    ([0, 3], [0, 3])
    >>> sorted(idx.range(None, 31, high_inclusive=False))
    [1]
    """

    __slots__ = (
        "_by_value",
        "_column",
        "_column_options",
        "_dirty",
        "_dirty_min",
        "_low_cardinality",
        "_values",
        "is_list",
        "known",
    )

    def __init__(
        self,
        *,
        is_list: bool,
        low_cardinality: int = LOW_CARDINALITY,
        leaf: int = LEAF,
        fanout: int = FANOUT,
        prefixes: int = PREFIXES,
        dirty_min: int = DIRTY_MIN,
    ) -> None:
        self.is_list = is_list
        self._low_cardinality = low_cardinality
        self._column_options = (leaf, fanout, prefixes)
        self._dirty_min = dirty_min
        self.known = BitMap()
        self._values: list[Any] = []  # by profile id; None = unknown
        # scalar: value -> ids while low-cardinality (None once it grew too large);
        # list: element -> ids (always kept)
        self._by_value: dict[Any, BitMap] | None = {}
        self._column: SortedColumn | None = None
        self._dirty = BitMap()  # ids written since the column was built

    # --- writes -----------------------------------------------------------------------------

    def get(self, pid: int) -> Any:
        """Profile ``pid``'s value, or ``None``."""
        values = self._values
        return values[pid] if pid < len(values) else None

    @property
    def value_of(self) -> Mapping[int, Any]:
        """A read-only mapping of profile id to value (the known values only)."""
        return _ValueView(self._values, self.known)

    def set(self, pid: int, value: Any) -> None:
        """Store ``value`` for profile ``pid`` (``None`` unsets)."""
        self.swap(pid, value)

    def swap(self, pid: int, value: Any) -> Any:
        """Store ``value`` for profile ``pid`` (``None`` unsets); return the value it
        had (``None`` when it had none): one call where ``get`` then ``set`` take two.

        >>> idx = AttributeIndex(is_list=False)
        >>> idx.swap(7, 31), idx.swap(7, 32), idx.swap(7, None), idx.get(7)
        (None, 31, 32, None)

        .. versionadded:: 0.1.0
        """
        values = self._values
        old = values[pid] if pid < len(values) else None
        if old is not None:
            if old == value and type(old) is type(value):
                return old
            if value is None:
                self._drop(pid, old)
            elif self.is_list:
                self._replace_list(pid, old, value)
            else:  # a scalar changes: ``known`` stays (inlined: the hot path of upserts)
                values[pid] = value
                if self._column is not None:
                    self._dirty.add(pid)
                by_value = self._by_value
                if by_value is not None:
                    bm = by_value.get(old)
                    if bm is not None:
                        bm.discard(pid)
                        if not bm:
                            del by_value[old]
                    bm = by_value.get(value)
                    if bm is None:
                        if len(by_value) >= self._low_cardinality:
                            self._by_value = None
                            return old
                        by_value[value] = bm = BitMap()
                    bm.add(pid)
            return old
        if value is None:
            return None
        if pid >= len(values):
            values.extend([None] * max(pid + 1 - len(values), len(values) // 4))
        values[pid] = value
        self.known.add(pid)
        if self._column is not None:
            self._dirty.add(pid)
        by_value = self._by_value
        if self.is_list:
            assert by_value is not None
            for element in set(value):
                bm = by_value.get(element)
                if bm is None:
                    by_value[element] = bm = BitMap()
                bm.add(pid)
        elif by_value is not None:
            bm = by_value.get(value)
            if bm is None:
                if len(by_value) >= self._low_cardinality:
                    self._by_value = None
                    return None
                by_value[value] = bm = BitMap()
            bm.add(pid)
        return None

    def unset(self, pid: int) -> None:
        """Forget profile ``pid``'s value."""
        old = self.get(pid)
        if old is not None:
            self._drop(pid, old)

    def _replace_list(self, pid: int, old: Any, value: Any) -> None:
        """A list value changes from ``old`` to ``value`` (both known): only the
        elements that enter or leave it touch their bitmaps; ``known`` stays."""
        self._values[pid] = value
        if self._column is not None:
            self._dirty.add(pid)
        by_value = self._by_value
        assert by_value is not None
        was, now = set(old), set(value)
        for element in was - now:
            bm = by_value.get(element)
            if bm is not None:
                bm.discard(pid)
                if not bm:
                    del by_value[element]
        for element in now - was:
            bm = by_value.get(element)
            if bm is None:
                by_value[element] = bm = BitMap()
            bm.add(pid)

    def _drop(self, pid: int, old: Any) -> None:
        self._values[pid] = None
        self.known.discard(pid)
        if self._column is not None:
            self._dirty.add(pid)
        by_value = self._by_value
        if by_value is None:
            return
        for element in set(old) if self.is_list else (old,):
            bm = by_value.get(element)
            if bm is not None:
                bm.discard(pid)
                if not bm:
                    del by_value[element]

    # --- reads ------------------------------------------------------------------------------

    @property
    def low_cardinality(self) -> bool:
        """Whether per-value bitmaps are kept (scalar attributes with few values)."""
        return self._by_value is not None and not self.is_list

    def column(self) -> SortedColumn:
        """The sorted column, (re)built if missing or too far behind the writes."""
        column = self._column
        if column is None or len(self._dirty) > max(
            self._dirty_min, len(self.known) // DIRTY_DIVISOR
        ):
            leaf, fanout, prefixes = self._column_options
            self._column = column = SortedColumn(
                self.value_of, leaf=leaf, fanout=fanout, prefixes=prefixes
            )
            self._dirty = BitMap()
        return column

    def equal(self, value: Any) -> BitMap:
        """Ids whose value equals ``value`` (for lists: that contain the element)."""
        by_value = self._by_value
        if by_value is not None:
            bm = by_value.get(value)
            return BitMap() if bm is None else bm
        return self.range(value, value)

    def range(
        self,
        low: Any,
        high: Any,
        *,
        low_inclusive: bool = True,
        high_inclusive: bool = True,
    ) -> BitMap:
        """Ids whose value lies between ``low`` and ``high`` (``None`` = unbounded)."""
        test = _interval_test(low, high, low_inclusive, high_inclusive)
        by_value = self._by_value
        if by_value is not None and not self.is_list:
            hits = [bm for value, bm in by_value.items() if test(value)]
            if len(hits) <= FEW_VALUES:
                return BitMap.union(*hits) if hits else BitMap()
            # many small bitmaps: the column's prefix unions are cheaper to combine
        hit = self.column().ids_between(
            low, high, low_inclusive=low_inclusive, high_inclusive=high_inclusive
        )
        dirty = self._dirty
        if dirty:
            get = self.get
            hit -= dirty
            hit |= BitMap(pid for pid in dirty if (v := get(pid)) is not None and test(v))
        return hit

    def where(self, test: Callable[[Any], bool]) -> BitMap:
        """Ids whose value passes ``test``; run once per distinct value where possible."""
        by_value = self._by_value
        if by_value is not None and not self.is_list:
            hits = [bm for value, bm in by_value.items() if test(value)]
            if len(hits) == 1:
                return hits[0]
            return BitMap.union(*hits) if hits else BitMap()
        values = self._values
        return BitMap(pid for pid in self.known if test(values[pid]))

    def elements(self, values: Iterable[Any]) -> list[BitMap]:
        """For a list attribute: the bitmap of each element (empty when never seen)."""
        by_value = self._by_value
        assert by_value is not None
        return [by_value.get(v) or BitMap() for v in values]


def _interval_test(
    low: Any, high: Any, low_inclusive: bool, high_inclusive: bool
) -> Callable[[Any], bool]:
    def test(v: Any) -> bool:
        if low is not None and (v < low if low_inclusive else v <= low):
            return False
        return high is None or (v <= high if high_inclusive else v < high)

    return test


class _ValueView(Mapping[int, Any]):
    """Profile id -> value over an index's id-indexed list (known ids only)."""

    __slots__ = ("_known", "_values")

    def __init__(self, values: list[Any], known: BitMap) -> None:
        self._values = values
        self._known = known

    def __getitem__(self, pid: int) -> Any:
        if pid not in self._known:
            raise KeyError(pid)
        return self._values[pid]

    def __iter__(self) -> Iterator[int]:
        return iter(self._known)

    def __len__(self) -> int:
        return len(self._known)
