"""Which profiles have events of each type, and which were active on each UTC day.

Two kinds of bitmap per :class:`EventIndex`:

* per event name, the profiles with at least one such event (the candidate filter
  for event predicates);
* per UTC calendar day, the profiles with at least one event (of any name) on that
  day: the *activity* bitmaps behind the engagement figure of size snapshots
  (:meth:`EventIndex.active`).

.. versionadded:: 0.1.0
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import date, datetime, timedelta, timezone

from pyroaring import BitMap

__all__ = ["EventIndex"]

_DAY = timedelta(days=1)
_UTC = timezone.utc


def _utc_day(at: datetime) -> int:
    """The proleptic Gregorian ordinal of ``at``'s UTC calendar date."""
    if at.tzinfo is not timezone.utc:
        at = at.astimezone(timezone.utc)
    return at.toordinal()


def _midnight(day: int) -> datetime:
    """The UTC instant at which the day with ordinal ``day`` starts."""
    return datetime.fromordinal(day).replace(tzinfo=timezone.utc)


class EventIndex:
    """Per event name, the ids of the profiles with at least one such event; per UTC
    day, the ids of the profiles with at least one event on that day.

    >>> from datetime import datetime, timezone
    >>> idx = EventIndex()
    >>> idx.add(3, "purchase", datetime(2024, 6, 1, 9, tzinfo=timezone.utc))
    >>> idx.add(5, "page_view")
    >>> sorted(idx.having(["purchase", "signup"]))
    [3]
    >>> sorted(idx.active_on(datetime(2024, 6, 1, tzinfo=timezone.utc).date()))
    [3]

    .. versionadded:: 0.1.0
    """

    __slots__ = ("_active", "_days", "_ever")

    def __init__(self) -> None:
        self._ever: dict[str, BitMap] = {}
        # UTC date ordinal -> ids with an event that day
        self._days: dict[int, BitMap] = {}
        # the last answer of ``active``: ((start, end), ids); dropped by every change
        self._active: tuple[tuple[datetime, datetime], BitMap] | None = None

    def add(self, pid: int, name: str, at: datetime | None = None) -> None:
        """Record that profile ``pid`` has an event called ``name`` (at instant ``at``).

        Without ``at`` the event counts for :meth:`having` only, not for the
        activity bitmaps.
        """
        bm = self._ever.get(name)
        if bm is None:
            self._ever[name] = bm = BitMap()
        bm.add(pid)
        if at is not None:
            if at.tzinfo is not _UTC:
                at = at.astimezone(_UTC)
            day = at.toordinal()
            active = self._days.get(day)
            if active is None:
                self._days[day] = active = BitMap()
            active.add(pid)
            self._active = None

    def remove_profile(self, pid: int) -> None:
        """Forget every event of profile ``pid``."""
        for bm in self._ever.values():
            bm.discard(pid)
        for bm in self._days.values():
            bm.discard(pid)
        self._active = None

    def having(self, names: Iterable[str]) -> BitMap:
        """Ids with at least one event of any of ``names``."""
        hits = [self._ever[n] for n in names if n in self._ever]
        return BitMap.union(*hits) if hits else BitMap()

    def active_on(self, day: date) -> BitMap:
        """A copy of the ids with at least one event on UTC calendar ``day`` (a ``date``).

        >>> from datetime import date
        >>> len(EventIndex().active_on(date(2024, 6, 1)))
        0

        .. versionadded:: 0.1.0
        """
        if not isinstance(day, date) or isinstance(day, datetime):
            raise TypeError(f"day must be a datetime.date, got {type(day).__name__}")
        found = self._days.get(day.toordinal())
        return BitMap() if found is None else found.copy()

    def active(self, start: datetime, end: datetime, check: Callable[[int], bool]) -> BitMap:
        """Ids with at least one event at an instant ``t`` with ``start < t <= end``.

        The UTC days that lie wholly inside the window contribute their activity
        bitmaps as they are. A profile seen only on a day the window cuts (the
        days of ``start`` and ``end``) may have had its event outside the window:
        ``check(pid)`` decides it exactly, and is called for those profiles only.
        The answer is cached until the next :meth:`add` or :meth:`remove_profile`;
        treat it as read-only.

        >>> from datetime import date, datetime, timedelta, timezone
        >>> t = datetime(2024, 6, 10, 12, tzinfo=timezone.utc)
        >>> idx = EventIndex()
        >>> idx.add(1, "visit", t - timedelta(days=3))   # a whole day inside the window
        >>> idx.add(2, "visit", t - timedelta(days=8))   # before it
        >>> idx.add(3, "visit", t - timedelta(hours=1))  # on the day of ``end``
        >>> sorted(idx.active(t - timedelta(days=7), t, check=lambda pid: pid == 3))
        [1, 3]

        .. versionadded:: 0.1.0
        """
        window = (start, end)
        cached = self._active
        if cached is not None and cached[0] == window:
            return cached[1]
        first, last = _utc_day(start), _utc_day(end)
        inside: list[BitMap] = []
        edges: list[BitMap] = []
        if last >= first:
            if last - first + 1 <= len(self._days):
                days = [(d, self._days.get(d)) for d in range(first, last + 1)]
            else:
                days = [(d, bm) for d, bm in self._days.items() if first <= d <= last]
            for day, bm in days:
                if not bm:
                    continue
                midnight = _midnight(day)
                if midnight > start and midnight + _DAY <= end:
                    inside.append(bm)
                else:
                    edges.append(bm)
        found = BitMap.union(*inside) if inside else BitMap()
        if edges:
            unsure = BitMap.union(*edges) - found
            found |= BitMap(pid for pid in unsure if check(pid))
        self._active = (window, found)
        return found
