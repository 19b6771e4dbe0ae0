"""Per-attribute indexes over dense profile ids.

Every attribute keeps a ``known`` bitmap and each profile's value. Scalar
attributes answer ranges from a sorted ``(value, id)`` column, rebuilt lazily
after writes (bulk loads pay one sort; single upserts pay nothing until the next
full query). While a scalar attribute has few distinct values (at most
:data:`LOW_CARDINALITY`) it also keeps one bitmap per value, which answers
equality and lets any per-value test run once per distinct value. List
attributes keep one bitmap per element.

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import array
import bisect
from collections.abc import Callable, Iterable
from typing import Any, Final

from pyroaring import BitMap

__all__ = ["LOW_CARDINALITY", "AttributeIndex"]

#: A scalar attribute keeps per-value bitmaps while it has at most this many distinct values.
LOW_CARDINALITY: Final = 1024


class AttributeIndex:
    """The index of one attribute.

    >>> idx = AttributeIndex(is_list=False)
    >>> for i, age in enumerate([31, 17, 45, 31]):
    ...     idx.set(i, age)
    >>> sorted(idx.equal(31)), sorted(idx.range(18, 40))
    ([0, 3], [0, 3])
    >>> sorted(idx.range(None, 31, high_inclusive=False))
    [1]
    """

    __slots__ = ("_by_value", "_dirty", "_ids", "_values", "is_list", "known", "value_of")

    def __init__(self, *, is_list: bool) -> None:
        self.is_list = is_list
        self.known = BitMap()
        self.value_of: dict[int, Any] = {}
        # scalar: value -> ids while low-cardinality (None once it grew too large);
        # list: element -> ids (always kept)
        self._by_value: dict[Any, BitMap] | None = {}
        self._values: list[Any] = []
        self._ids = array.array("I")
        self._dirty = False

    # --- writes -----------------------------------------------------------------------------

    def set(self, pid: int, value: Any) -> None:
        """Store ``value`` for profile ``pid`` (``None`` unsets)."""
        old = self.value_of.get(pid)
        if old is not None:
            if old == value and type(old) is type(value):
                return
            self._drop(pid, old)
        if value is None:
            return
        self.value_of[pid] = value
        self.known.add(pid)
        self._dirty = True
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
                if len(by_value) >= LOW_CARDINALITY:
                    self._by_value = None
                    return
                by_value[value] = bm = BitMap()
            bm.add(pid)

    def unset(self, pid: int) -> None:
        """Forget profile ``pid``'s value."""
        old = self.value_of.get(pid)
        if old is not None:
            self._drop(pid, old)

    def _drop(self, pid: int, old: Any) -> None:
        del self.value_of[pid]
        self.known.discard(pid)
        self._dirty = True
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

    def _column(self) -> tuple[list[Any], array.array[int]]:
        if self._dirty or len(self._values) != len(self.value_of):
            pairs = sorted(self.value_of.items(), key=lambda item: item[1])
            self._values = [v for _, v in pairs]
            self._ids = array.array("I", [pid for pid, _ in pairs])
            self._dirty = False
        return self._values, self._ids

    def equal(self, value: Any) -> BitMap:
        """Ids whose value equals ``value`` (for lists: that contain the element)."""
        by_value = self._by_value
        if by_value is not None:
            bm = by_value.get(value)
            return BitMap() if bm is None else bm.copy()
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
        values, ids = self._column()
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
        if end <= start:
            return BitMap()
        return BitMap(ids[start:end])

    def where(self, test: Callable[[Any], bool]) -> BitMap:
        """Ids whose value passes ``test``; run once per distinct value where possible."""
        by_value = self._by_value
        if by_value is not None and not self.is_list:
            hits = [bm for value, bm in by_value.items() if test(value)]
            return BitMap.union(*hits) if hits else BitMap()
        return BitMap(pid for pid, value in self.value_of.items() if test(value))

    def elements(self, values: Iterable[Any]) -> list[BitMap]:
        """For a list attribute: the bitmap of each element (empty when never seen)."""
        by_value = self._by_value
        assert by_value is not None
        return [by_value.get(v, _EMPTY) for v in values]


_EMPTY: Final = BitMap()
