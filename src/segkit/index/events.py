"""Which profiles have events of each type (the candidate filter for event predicates).

.. versionadded:: 0.1.0
"""

from __future__ import annotations

from collections.abc import Iterable

from pyroaring import BitMap

__all__ = ["EventIndex"]


class EventIndex:
    """Per event name, the ids of the profiles with at least one such event.

    >>> idx = EventIndex()
    >>> idx.add(3, "purchase"); idx.add(5, "page_view")
    >>> sorted(idx.having(["purchase", "signup"]))
    [3]
    """

    __slots__ = ("_ever",)

    def __init__(self) -> None:
        self._ever: dict[str, BitMap] = {}

    def add(self, pid: int, name: str) -> None:
        """Record that profile ``pid`` has an event called ``name``."""
        bm = self._ever.get(name)
        if bm is None:
            self._ever[name] = bm = BitMap()
        bm.add(pid)

    def remove_profile(self, pid: int) -> None:
        """Forget every event of profile ``pid``."""
        for bm in self._ever.values():
            bm.discard(pid)

    def having(self, names: Iterable[str]) -> BitMap:
        """Ids with at least one event of any of ``names``."""
        hits = [self._ever[n] for n in names if n in self._ever]
        return BitMap.union(*hits) if hits else BitMap()
