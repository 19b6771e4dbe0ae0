"""Which segments changed irregularly: the attention list, from stored size snapshots.

Every time the Engine saves a segment (``define``, ``redefine``, ``refresh``,
``save``, static member changes) it stores a :class:`~segkit.Snapshot`: the
segment's size and its *engagement*, the number of members with at least one
tracked event in the last :attr:`Engine.engagement_window
<segkit.Engine.engagement_window>` (7 days unless changed; ``None`` when the
schema declares no event types or the window is turned off).

:meth:`Engine.attention <segkit.Engine.attention>` reads each segment's series,
keeps the last snapshot of each UTC day (a day without one carries the previous
value forward: snapshots are written when a membership changes), and gives a
reason for each irregular movement of the size or the engagement over the last
``days`` days:

* ``"size fell to zero"``: it is 0 now and was not earlier in the window;
* ``"size doubled within 2 days"`` / ``"size halved within 2 days"``;
* ``"size +120% in 7 days"`` (and ``"size rose from zero in 7 days"``): the
  change over the window is at least ``change_pct`` percent;
* ``"z=5.2 on size"``: the robust z-score of the latest day-over-day change
  against the segment's own earlier day-over-day changes (:func:`robust_z`).

The same reasons for the engagement series start with ``"engagement"``. No
reason is given for a change of fewer than ``min_change`` members.

>>> import segkit as sk
>>> from datetime import datetime, timedelta, timezone
>>> day = timedelta(days=1)
>>> t0 = datetime(2024, 6, 1, 12, tzinfo=timezone.utc)
>>> clock = [t0]
>>> engine = sk.Engine(sk.Schema(attributes={"plan": "string"}), clock=lambda: clock[0])
>>> _ = engine.upsert_many({f"c-{i}": {"plan": "pro"} for i in range(100)})
>>> _ = engine.define("pro", 'plan = "pro"')
>>> clock[0] = t0 + 5 * day
>>> _ = engine.upsert_many({f"c-{i}": {"plan": "pro"} for i in range(100, 250)})
>>> engine.save()
['pro']
>>> [item] = engine.attention()
>>> item
AttentionItem('pro', size=250, change_7d=+150 (+150%), kind='dynamic', reasons=('size doubled within 2 days', 'size +150% in 7 days'))

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, Final

import attrs

from segkit.analysis._html import Columns, Frames, html_table, text_table, typed_columns
from segkit.index import Members
from segkit.timeutil import Duration, ensure_aware

if TYPE_CHECKING:
    from segkit.engine import Engine
    from segkit.index import Bitmap

__all__ = [
    "ENGAGEMENT_WINDOW",
    "MAD_SCALE",
    "MEAN_AD_SCALE",
    "AttentionItem",
    "AttentionReport",
    "attention",
    "coerce_engagement_window",
    "count_engaged",
    "robust_z",
]

#: The default :attr:`Engine.engagement_window <segkit.Engine.engagement_window>`.
ENGAGEMENT_WINDOW: Final = timedelta(days=7)

#: ``1.4826 * MAD`` estimates the standard deviation of normally distributed data.
MAD_SCALE: Final = 1.4826

#: ``1.2533 * mean absolute deviation`` does the same; used when the MAD is 0.
MEAN_AD_SCALE: Final = 1.2533

_INF: Final = float("inf")


# --- engagement -------------------------------------------------------------------------


def coerce_engagement_window(value: object) -> timedelta | None:
    """An engagement window as a positive :class:`~datetime.timedelta` (or ``None``: off).

    Accepts a ``timedelta`` or fixed-length duration text such as ``"7d"``,
    ``"36h"`` or ``"2w"``.

    >>> coerce_engagement_window("2w")
    datetime.timedelta(days=14)
    >>> coerce_engagement_window("1mo")
    Traceback (most recent call last):
    ...
    ValueError: engagement_window must have a fixed length (s, min, h, d or w), got '1mo'

    .. versionadded:: 0.1.0
    """
    if value is None:
        return None
    if isinstance(value, str):
        duration = Duration.parse(value)
        if duration.unit in ("mo", "y"):
            raise ValueError(
                f"engagement_window must have a fixed length (s, min, h, d or w), got {value!r}"
            )
        value = duration.to_timedelta()
    if not isinstance(value, timedelta):
        raise TypeError(
            "engagement_window must be a timedelta, duration text such as '7d', or None; "
            f"got {type(value).__name__}"
        )
    if value <= timedelta(0):
        raise ValueError(f"engagement_window must be positive, got {value!r}")
    return value


def count_engaged(engine: Engine, ids: Bitmap, now: datetime) -> float | None:
    """How many of ``ids`` have a tracked event at ``t`` with ``now - window < t <= now``.

    ``window`` is the engine's :attr:`~segkit.Engine.engagement_window`; the answer
    is ``None`` when it is ``None`` or the schema declares no event types. The
    engine's per-day activity bitmaps give the answer for the days wholly inside
    the window; only profiles active on the two days the window cuts have their
    events read (see :meth:`segkit.index.EventIndex.active`), so the count is
    exact.

    >>> import segkit as sk
    >>> from datetime import datetime, timedelta, timezone
    >>> now = datetime(2024, 6, 30, 12, tzinfo=timezone.utc)
    >>> engine = sk.Engine(sk.Schema(events={"visit": {}}), clock=lambda: now)
    >>> _ = engine.track_many([sk.Event("a", "visit", now - timedelta(days=2)),
    ...                        sk.Event("b", "visit", now - timedelta(days=7, seconds=1))])
    >>> count_engaged(engine, engine.universe, now)
    1.0

    .. versionadded:: 0.1.0
    """
    window = engine._engagement_window
    if window is None or not engine.schema.events:
        return None
    start = now - window
    events = engine._events

    def check(pid: int) -> bool:
        return any(start < event.at <= now for event in events.get(pid, ()))

    active = engine._event_index.active(start, now, check)
    return float(ids.intersection_cardinality(active))


# --- the robust z-score -----------------------------------------------------------------


def robust_z(value: float, history: Sequence[float]) -> float:
    """How unusual ``value`` is among ``history``: ``(value - median) / spread``.

    ``spread`` is ``1.4826 * MAD`` (the median absolute deviation from the
    median); when the MAD is 0 (more than half of the history is one value) it
    is ``1.2533 *`` the mean absolute deviation from the median; it is never
    less than 1 (one member), so a perfectly regular history does not turn a
    change of one member into an alarm. ``history`` must not be empty.

    >>> history = [10, 12, 9, 11, 10, 8, 12]  # median 10, MAD 1
    >>> round(robust_z(130, history), 2), round(robust_z(11, history), 2)
    (80.94, 0.67)
    >>> robust_z(50, [20, 20, 20, 20])  # no spread at all: at least 1
    30.0

    .. versionadded:: 0.1.0
    """
    if not history:
        raise ValueError("robust_z needs a non-empty history")
    median = statistics.median(history)
    deviations = [abs(h - median) for h in history]
    spread = MAD_SCALE * statistics.median(deviations)
    if spread == 0:
        spread = MEAN_AD_SCALE * statistics.fmean(deviations)
    return (value - median) / max(spread, 1.0)


# --- options ------------------------------------------------------------------------------


@attrs.frozen
class _Options:
    days: int
    within_days: int
    change_pct: float | None
    min_change: float
    z_threshold: float | None
    min_history: int
    history_days: int


def _positive_int(value: object, name: str, least: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < least:
        raise ValueError(f"{name} must be at least {least}, got {value}")
    return value


def _number(value: object, name: str, *, optional: bool, positive: bool) -> float | None:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        kind = "a number or None" if optional else "a number"
        raise TypeError(f"{name} must be {kind}, got {type(value).__name__}")
    if not math.isfinite(value) or value < 0 or (positive and value == 0):
        bound = "positive" if positive else "at least 0"
        raise ValueError(f"{name} must be {bound}, got {value!r}")
    return float(value)


def _options(
    days: object,
    within_days: object,
    change_pct: object,
    min_change: object,
    z_threshold: object,
    min_history: object,
    history_days: object,
) -> _Options:
    min_change_value = _number(min_change, "min_change", optional=False, positive=False)
    assert min_change_value is not None
    return _Options(
        days=_positive_int(days, "days"),
        within_days=_positive_int(within_days, "within_days"),
        change_pct=_number(change_pct, "change_pct", optional=True, positive=True),
        min_change=min_change_value,
        z_threshold=_number(z_threshold, "z_threshold", optional=True, positive=True),
        min_history=_positive_int(min_history, "min_history", least=2),
        history_days=_positive_int(history_days, "history_days"),
    )


# --- one series ---------------------------------------------------------------------------


def _day(at: datetime) -> int:
    return at.astimezone(timezone.utc).toordinal()


@attrs.frozen
class _Assessment:
    current: float
    change: float
    pct: float | None
    z: float | None
    reasons: tuple[str, ...]


def _assess(
    points: Sequence[tuple[datetime, float]], now: datetime, opts: _Options, what: str
) -> _Assessment | None:
    """Judge one series: ``points`` are ``(at, value)`` with ``at <= now``, in time order."""
    if not points:
        return None
    today = _day(now)
    first_day = _day(points[0][0])
    base_day = today - opts.days
    start = max(first_day, min(base_day, today - opts.history_days - 1))
    # end-of-day values for start..today (the last point of each day, carried forward)
    values: list[float] = []
    i, last = 0, points[0][1]
    for day in range(start, today + 1):
        while i < len(points) and _day(points[i][0]) <= day:
            last = points[i][1]
            i += 1
        values.append(last)

    def at(day: int) -> float:
        return values[day - start]

    if first_day <= base_day:
        base = at(base_day)
        window = [(day, at(day)) for day in range(base_day, today + 1)]
    else:  # younger than the window: measured from its first snapshot
        base = points[0][1]
        window = [(first_day, base), *((day, at(day)) for day in range(first_day, today + 1))]
    current = at(today)
    change = current - base
    pct = change / base * 100 if base > 0 else None
    least = opts.min_change
    reasons: list[str] = []
    fell = current == 0 and any(v > 0 and v >= least for _, v in window[:-1])
    if fell:
        reasons.append(f"{what} fell to zero")
    doubled = halved = False
    for n, (day_i, v_i) in enumerate(window):
        if v_i <= 0:
            continue
        for day_j, v_j in window[n + 1 :]:
            if day_j - day_i > opts.within_days:
                break
            doubled = doubled or (v_j >= 2 * v_i and v_j - v_i >= least)
            halved = halved or (v_j <= v_i / 2 and v_i - v_j >= least)
    within = f"within {opts.within_days} day{'s' if opts.within_days > 1 else ''}"
    if doubled:
        reasons.append(f"{what} doubled {within}")
    if halved and not fell:
        reasons.append(f"{what} halved {within}")
    if opts.change_pct is not None and abs(change) >= least and not fell:
        if pct is not None and abs(pct) >= opts.change_pct:
            reasons.append(f"{what} {pct:+.0f}% in {opts.days} days")
        elif pct is None and change > 0:
            reasons.append(f"{what} rose from zero in {opts.days} days")
    z = None
    if today > first_day:
        latest = at(today) - at(today - 1)
        history = [
            at(day) - at(day - 1)
            for day in range(max(first_day + 1, today - opts.history_days), today)
        ]
        if len(history) >= opts.min_history:
            z = robust_z(latest, history)
            if (
                opts.z_threshold is not None
                and abs(z) >= opts.z_threshold
                and abs(latest - statistics.median(history)) >= least
            ):
                reasons.append(f"z={z:.1f} on {what}")
    return _Assessment(current, change, pct, z, tuple(reasons))


# --- the report ---------------------------------------------------------------------------


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


@attrs.frozen(repr=False)
class AttentionItem:
    """One segment on the attention list: how it moved, what it is, why it is listed.

    Attributes:
        name: the segment.
        size: its size at the last snapshot up to ``now``.
        change_7d: the size change over the last ``days`` days (measured from the
            segment's first snapshot if it is younger).
        change_7d_pct: that change in percent of the earlier size (``None`` when
            the earlier size is 0).
        z: the robust z-score of the latest day-over-day size change against the
            earlier ones (``None`` with too short a history; see :func:`robust_z`).
        engagement, engagement_change_7d, engagement_z: the same for the
            engagement figure (``None`` when the snapshots hold none).
        kind: ``"static"`` or ``"dynamic"``.
        object_type, updated_at, updated_by: the segment's stored metadata.
        reasons: why it is listed, most serious first (empty when it is not
            flagged and the list was asked for every segment).
        members: the segment's current members, as :class:`~segkit.Members`.

    >>> import segkit as sk
    >>> from datetime import datetime, timedelta, timezone
    >>> t0 = datetime(2024, 6, 1, tzinfo=timezone.utc)
    >>> clock = [t0]
    >>> engine = sk.Engine(sk.Schema(attributes={}), clock=lambda: clock[0])
    >>> _ = engine.upsert_many({f"c-{i}": {} for i in range(40)})
    >>> _ = engine.define_static("imported", [f"c-{i}" for i in range(40)], updated_by="ana")
    >>> clock[0] = t0 + timedelta(days=3)
    >>> _ = engine.remove_members("imported", [f"c-{i}" for i in range(40)], updated_by="bob")
    >>> [item] = engine.attention()
    >>> item
    AttentionItem('imported', size=0, change_7d=-40 (-100%), kind='static', reasons=('size fell to zero',))
    >>> item.updated_by, item.to_dict()["updated_at"]
    ('bob', '2024-06-04T00:00:00+00:00')

    .. versionadded:: 0.1.0
    """

    name: str
    size: int
    change_7d: int
    change_7d_pct: float | None
    z: float | None
    engagement: float | None
    engagement_change_7d: float | None
    engagement_z: float | None
    kind: str
    object_type: str
    updated_at: datetime | None
    updated_by: str | None
    reasons: tuple[str, ...]
    members: Members = attrs.field(eq=False)

    @property
    def flagged(self) -> bool:
        """Whether any reason lists this segment."""
        return bool(self.reasons)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe copy (the members are left out: see :attr:`members`)."""
        return {
            "name": self.name,
            "size": self.size,
            "change_7d": self.change_7d,
            "change_7d_pct": self.change_7d_pct,
            "z": self.z,
            "engagement": self.engagement,
            "engagement_change_7d": self.engagement_change_7d,
            "engagement_z": self.engagement_z,
            "kind": self.kind,
            "object_type": self.object_type,
            "updated_at": _iso(self.updated_at),
            "updated_by": self.updated_by,
            "reasons": list(self.reasons),
        }

    def __repr__(self) -> str:
        pct = "" if self.change_7d_pct is None else f" ({self.change_7d_pct:+.0f}%)"
        return (
            f"AttentionItem({self.name!r}, size={self.size}, change_7d={self.change_7d:+d}{pct}, "
            f"kind={self.kind!r}, reasons={self.reasons!r})"
        )


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _change(item: AttentionItem) -> str:
    pct = "" if item.change_7d_pct is None else f" ({item.change_7d_pct:+.0f}%)"
    return f"{item.change_7d:+,d}{pct}"


def _when(moment: datetime | None) -> str:
    return "-" if moment is None else moment.strftime("%Y-%m-%d %H:%M")


_COLUMNS: Final = (
    ("segment", "l"),
    ("size", "r"),
    ("change", "r"),
    ("kind", "l"),
    ("updated", "l"),
    ("by", "l"),
    ("reasons", "l"),
)


class AttentionReport(tuple[AttentionItem, ...], Frames):
    """The attention list of :meth:`Engine.attention <segkit.Engine.attention>`: a
    tuple of :class:`AttentionItem`, most irregular first, with a table.

    Indexing, ``len``, iteration and equality work as for the tuple of items;
    ``repr`` shows :meth:`table` (``change`` is the change over the last ``days``
    days, ``updated`` the time of the last update, in UTC); in a notebook it is an
    HTML table; :meth:`to_pandas` / :meth:`to_polars` give one row per item.

    >>> import segkit as sk
    >>> from datetime import datetime, timedelta, timezone
    >>> t0 = datetime(2024, 6, 1, tzinfo=timezone.utc)
    >>> clock = [t0]
    >>> engine = sk.Engine(sk.Schema(attributes={}), clock=lambda: clock[0])
    >>> _ = engine.upsert_many({f"c-{i}": {} for i in range(40)})
    >>> _ = engine.define_static("imported", [f"c-{i}" for i in range(40)], updated_by="ana")
    >>> clock[0] = t0 + timedelta(days=3)
    >>> _ = engine.remove_members("imported", [f"c-{i}" for i in range(40)], updated_by="bob")
    >>> report = engine.attention()
    >>> report
    AttentionReport: 1 segment, 1 flagged
      segment   size       change  kind    updated           by   reasons
      imported     0  -40 (-100%)  static  2024-06-04 00:00  bob  size fell to zero
    >>> len(report), report[0].name, report == (report[0],)
    (1, 'imported', True)

    .. versionadded:: 0.1.0
    """

    __slots__ = ()

    def _summary(self) -> str:
        flagged = sum(1 for item in self if item.reasons)
        return f"AttentionReport: {_plural(len(self), 'segment')}, {flagged} flagged"

    def _cells(self) -> list[list[str]]:
        return [
            [
                item.name,
                f"{item.size:,}",
                _change(item),
                item.kind,
                _when(item.updated_at),
                item.updated_by or "-",
                "; ".join(item.reasons) or "-",
            ]
            for item in self
        ]

    def table(self) -> str:
        """The list as plain text (what ``repr`` shows), one line per segment.

        >>> import segkit as sk
        >>> print(sk.Engine(sk.Schema(attributes={})).attention().table())
        AttentionReport: 0 segments, 0 flagged
        """
        return text_table([self._summary()], _COLUMNS, self._cells())

    def __repr__(self) -> str:
        return self.table()

    def _repr_html_(self) -> str:
        return html_table([self._summary()], _COLUMNS, self._cells())

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict: ``{"items": [item.to_dict(), ...]}``.

        >>> import segkit as sk
        >>> sk.Engine(sk.Schema(attributes={})).attention().to_dict()
        {'items': []}
        """
        return {"items": [item.to_dict() for item in self]}

    def _columns(self) -> Columns:
        return typed_columns(
            [
                ("name", "str", [i.name for i in self]),
                ("size", "int", [i.size for i in self]),
                ("change_7d", "int", [i.change_7d for i in self]),
                ("change_7d_pct", "float", [i.change_7d_pct for i in self]),
                ("z", "float", [i.z for i in self]),
                ("engagement", "float", [i.engagement for i in self]),
                ("engagement_change_7d", "float", [i.engagement_change_7d for i in self]),
                ("engagement_z", "float", [i.engagement_z for i in self]),
                ("kind", "str", [i.kind for i in self]),
                ("object_type", "str", [i.object_type for i in self]),
                ("updated_at", "datetime", [i.updated_at for i in self]),
                ("updated_by", "str", [i.updated_by for i in self]),
                ("reasons", "list[str]", [list(i.reasons) for i in self]),
            ]
        )


def _rank(item: AttentionItem) -> tuple[int, float, int, str]:
    """The sort key: most reasons, then largest % change (from zero: infinite), then size."""
    pct = item.change_7d_pct
    moved = abs(pct) if pct is not None else (_INF if item.change_7d else 0.0)
    return (-len(item.reasons), -moved, -abs(item.change_7d), item.name)


def attention(
    engine: Engine,
    now: datetime | None = None,
    *,
    days: int = 7,
    within_days: int = 2,
    change_pct: float | None = 50.0,
    min_change: float = 10,
    z_threshold: float | None = 3.5,
    min_history: int = 7,
    history_days: int = 90,
    flagged_only: bool = True,
) -> AttentionReport:
    """The segments of ``engine`` whose size or engagement changed irregularly.

    This is :meth:`Engine.attention <segkit.Engine.attention>`, which documents
    the options.

    >>> import segkit as sk
    >>> attention(sk.Engine(sk.Schema(attributes={})), days=0)
    Traceback (most recent call last):
    ...
    ValueError: days must be at least 1, got 0

    .. versionadded:: 0.1.0
    """
    opts = _options(
        days, within_days, change_pct, min_change, z_threshold, min_history, history_days
    )
    if not isinstance(flagged_only, bool):
        raise TypeError(f"flagged_only must be a bool, got {type(flagged_only).__name__}")
    when = engine.now() if now is None else ensure_aware(now, engine.schema.tz, "now")
    when = when.astimezone(timezone.utc)
    storage = engine._storage
    items: list[AttentionItem] = []
    for name in sorted(engine._segments):
        snaps = [s.value for s in storage.list_snapshots(name) if s.value.at <= when]
        snaps.sort(key=lambda s: s.at)
        size = _assess([(s.at, float(s.size)) for s in snaps], when, opts, "size")
        if size is None:
            continue
        engaged = [(s.at, s.engagement) for s in snaps if s.engagement is not None]
        engagement = _assess(engaged, when, opts, "engagement")
        reasons = size.reasons + (() if engagement is None else engagement.reasons)
        if flagged_only and not reasons:
            continue
        seg = engine._segments[name]
        record = seg.record
        items.append(
            AttentionItem(
                name=name,
                size=int(size.current),
                change_7d=int(size.change),
                change_7d_pct=size.pct,
                z=size.z,
                engagement=None if engagement is None else engagement.current,
                engagement_change_7d=None if engagement is None else engagement.change,
                engagement_z=None if engagement is None else engagement.z,
                kind="dynamic" if seg.dynamic else "static",
                object_type="contact" if record is None else record.object_type,
                updated_at=None if record is None else record.updated_at,
                updated_by=None if record is None else record.updated_by,
                reasons=reasons,
                members=engine._members(seg.ids),
            )
        )
    items.sort(key=_rank)
    return AttentionReport(items)
