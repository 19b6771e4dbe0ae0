"""Funnel results: per-entity outcomes in columns, and the reports aggregated from them.

:class:`FunnelOutcomes` holds one row per entity (per entry with
``attempts="every"``): its level, the steps it reached and moved through, and the
time of each of its steps, all in compact arrays. :meth:`FunnelOutcomes.report`
aggregates any subset of entities (a segment) into a :class:`FunnelReport`, so a
comparison of many segments evaluates the funnel once.

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import array
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import timedelta
from fractions import Fraction
from typing import TYPE_CHECKING, Any, Final

import attrs

from segkit.analysis._funnel_default import Outcome
from segkit.analysis._html import Columns, Frames, format_duration, html_table, typed_columns
from segkit.index import Bitmap, Members

if TYPE_CHECKING:
    from segkit.records import IdMap

__all__ = [
    "FunnelOutcomes",
    "FunnelReport",
    "HistogramBin",
    "StepReport",
    "TimeStats",
    "Transition",
]

_SECOND: Final = 1_000_000
_AUTO_MAX_BINS: Final = 60
_CUSTOM_MAX_BINS: Final = 90


def _td(us: int) -> timedelta:
    return timedelta(microseconds=us)


def _round_div(num: int, den: int) -> int:
    """``num / den`` rounded to the nearest integer, halves to even."""
    return round(Fraction(num, den))


def _quantile(ordered: Sequence[int], q: Fraction) -> int:
    """Linear interpolation between the closest ranks (numpy's default), in µs."""
    pos = (len(ordered) - 1) * q
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    value = ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)
    return round(value)


@attrs.frozen
class HistogramBin:
    """One bar of a time histogram: samples with ``start <= t < end`` (``count`` of them).

    >>> HistogramBin(timedelta(seconds=60), timedelta(seconds=210), 1)
    HistogramBin(start=datetime.timedelta(seconds=60), end=datetime.timedelta(seconds=210), count=1)

    .. versionadded:: 0.1.0
    """

    start: timedelta
    end: timedelta
    count: int


@attrs.frozen
class TimeStats:
    """Summary of durations (time from the previous step, or to complete the funnel).

    ``mean``, ``median`` and ``p90`` (linear interpolation between ranks, like
    numpy's default), ``min`` and ``max`` are :class:`~datetime.timedelta` values
    rounded to the microsecond, or ``None`` without samples. ``histogram`` uses
    PostHog's time-to-convert binning (see :meth:`bins`).

    >>> stats = TimeStats.of([60_000_000, 360_000_000])
    >>> stats.count, stats.mean, stats.median
    (2, datetime.timedelta(seconds=210), datetime.timedelta(seconds=210))
    >>> [(b.start.total_seconds(), b.count) for b in stats.histogram]
    [(60.0, 1), (210.0, 0), (360.0, 1)]

    .. versionadded:: 0.1.0
    """

    count: int
    mean: timedelta | None
    median: timedelta | None
    p90: timedelta | None
    min: timedelta | None
    max: timedelta | None
    histogram: tuple[HistogramBin, ...]
    _samples: tuple[int, ...] = attrs.field(repr=False, eq=False, alias="_samples")

    @classmethod
    def of(cls, samples_us: Iterable[int]) -> TimeStats:
        """Statistics of durations given in microseconds.

        >>> TimeStats.of([]).mean is None
        True
        """
        ordered = tuple(sorted(samples_us))
        n = len(ordered)
        if not n:
            return cls(0, None, None, None, None, None, (), _samples=())
        count, lo, width = _bin_layout(n, ordered[0], ordered[-1], None)
        counts = [0] * (count + 1)
        for t in ordered:
            counts[(t - lo) // width] += 1
        return _stats_from_sorted(
            ordered,
            sum(ordered),
            _quantile(ordered, Fraction(1, 2)),
            _quantile(ordered, Fraction(9, 10)),
            (lo, width, counts),
        )

    def bins(self, count: int | None = None) -> tuple[HistogramBin, ...]:
        """The histogram with PostHog's time-to-convert binning.

        ``count`` bins (clamped to 1 to 90), or by default ``clamp(ceil(cbrt(n)), 1, 60)``.
        The range runs from the minimum sample rounded down to a whole second to the
        maximum rounded up; the width is ``ceil(range / count)`` seconds (60 s for a
        single sample or an empty range). A sample ``t`` falls in bin ``floor((t - start) / width)``, so
        the maximum can open one more bin: ``count + 1`` bins are returned, the empty
        ones with a count of 0.

        >>> stats = TimeStats.of([10_000_000, 20_000_000, 70_000_000])
        >>> [(b.start.total_seconds(), b.end.total_seconds(), b.count) for b in stats.bins(3)]
        [(10.0, 30.0, 2), (30.0, 50.0, 0), (50.0, 70.0, 0), (70.0, 90.0, 1)]
        """
        return _bins(self._samples, count)


def _ceil_cbrt(n: int) -> int:
    """The smallest integer ``c`` with ``c ** 3 >= n`` (exact, unlike ``ceil(n ** (1/3))``)."""
    c: int = max(1, round(n ** (1 / 3)))
    while c**3 < n:
        c += 1
    while c > 1 and (c - 1) ** 3 >= n:
        c -= 1
    return c


def _bin_layout(n: int, first: int, last: int, count: int | None) -> tuple[int, int, int]:
    """``(bins, start, width)`` in µs of the histogram of ``n`` samples from first to last."""
    if count is None:
        count = min(_AUTO_MAX_BINS, max(1, _ceil_cbrt(n)))
    else:
        count = min(_CUSTOM_MAX_BINS, max(1, count))
    lo = (first // _SECOND) * _SECOND
    hi = -((-last) // _SECOND) * _SECOND
    width_s = -((lo - hi) // (_SECOND * count))  # ceil((hi - lo) / count) in seconds
    if width_s <= 0 or n == 1:
        width_s = 60
    return count, lo, width_s * _SECOND


def _histogram(lo: int, width: int, counts: Sequence[int]) -> tuple[HistogramBin, ...]:
    return tuple(
        HistogramBin(_td(lo + i * width), _td(lo + (i + 1) * width), c)
        for i, c in enumerate(counts)
    )


def _bins(ordered: Sequence[int], count: int | None) -> tuple[HistogramBin, ...]:
    n = len(ordered)
    if not n:
        return ()
    count, lo, width = _bin_layout(n, ordered[0], ordered[-1], count)
    counts = [0] * (count + 1)
    for t in ordered:
        counts[(t - lo) // width] += 1
    return _histogram(lo, width, counts)


def _stats_from_sorted(
    ordered: tuple[int, ...],
    total: int,
    median: int,
    p90: int,
    bins: tuple[int, int, Sequence[int]],
) -> TimeStats:
    """A :class:`TimeStats` from sorted samples and what was computed from them."""
    n = len(ordered)
    return TimeStats(
        n,
        _td(_round_div(total, n)),
        _td(median),
        _td(p90),
        _td(ordered[0]),
        _td(ordered[-1]),
        _histogram(*bins),
        _samples=ordered,
    )


@attrs.frozen
class StepReport:
    """One step of a :class:`FunnelReport`.

    ``count`` entities reached the step; ``dropped`` of them did not reach the next
    one. ``conversion_from_previous`` is ``count`` over the previous step's count and
    ``conversion_from_start`` is ``count`` over step 0's (both 1.0 for step 0, and 0.0
    when the denominator is 0). ``time_from_previous`` summarises the time from the
    previous step (``None`` for step 0).

    >>> import segkit as sk

    >>> from segkit.analysis.funnel import Funnel
    >>> events = [sk.Event("a", "visit", "2024-01-01T00:00:00Z"),
    ...           sk.Event("a", "buy", "2024-01-01T00:05:00Z")]
    >>> step = Funnel(["visit", "buy"], window="1d").run(events).steps[1]
    >>> step.name, step.count, step.conversion_from_previous, step.time_from_previous.median
    ('buy', 1, 1.0, datetime.timedelta(seconds=300))

    .. versionadded:: 0.1.0
    """

    index: int
    name: str
    count: int
    dropped: int
    conversion_from_previous: float
    conversion_from_start: float
    time_from_previous: TimeStats | None


@attrs.frozen
class Transition:
    """Entities that moved from step ``from_step`` to ``to_step`` (HubSpot's "moved to").

    ``rate`` is ``count`` over the count of ``from_step``; ``mean_time`` is the mean
    time between the two steps.

    >>> Transition(0, 1, 3, 0.75, timedelta(hours=2)).rate
    0.75

    .. versionadded:: 0.1.0
    """

    from_step: int
    to_step: int
    count: int
    rate: float
    mean_time: timedelta | None


def _ratio(num: int, den: int) -> float:
    return num / den if den else 0.0


def _seconds(value: timedelta | None) -> float | None:
    return None if value is None else value.total_seconds()


def step_reports(
    names: Sequence[str],
    counts: Sequence[int],
    both: Sequence[int],
    moves: Sequence[int],
    stats: Sequence[TimeStats | None],
) -> tuple[tuple[StepReport, ...], tuple[Transition, ...]]:
    """The step rows and transitions of a report, from per-step figures.

    ``counts[k]`` entities reached step ``k``, ``both[k]`` reached steps ``k`` and
    ``k + 1`` (0 for the last step), ``moves[k]`` moved from ``k - 1`` to ``k``, and
    ``stats[k]`` are their times (``None`` for step 0). Both funnel engines use it.
    """
    n = len(counts)
    steps = tuple(
        StepReport(
            k,
            names[k],
            counts[k],
            counts[k] - both[k] if k + 1 < n else 0,
            (1.0 if counts[k] else 0.0) if k == 0 else _ratio(counts[k], counts[k - 1]),
            (1.0 if counts[k] else 0.0) if k == 0 else _ratio(counts[k], counts[0]),
            stats[k],
        )
        for k in range(n)
    )
    transitions = tuple(
        Transition(
            k - 1,
            k,
            moves[k],
            _ratio(moves[k], counts[k - 1]),
            None if stats[k] is None else stats[k].mean,  # type: ignore[union-attr]
        )
        for k in range(1, n)
    )
    return steps, transitions


def _stats_dict(stats: TimeStats) -> dict[str, Any]:
    return {
        "count": stats.count,
        "mean_seconds": _seconds(stats.mean),
        "median_seconds": _seconds(stats.median),
        "p90_seconds": _seconds(stats.p90),
        "min_seconds": _seconds(stats.min),
        "max_seconds": _seconds(stats.max),
        "histogram": [[b.start.total_seconds(), b.count] for b in stats.histogram],
    }


def _show_td(value: timedelta | None) -> str:
    return format_duration(value)


@attrs.frozen(repr=False)
class FunnelReport(Frames):
    """How many entities reached each step, how fast, and who they are.

    ``entered`` entities (entries, with ``attempts="every"``) started the funnel;
    ``excluded`` were removed by ``drop_entirely`` exclusions and count nowhere.
    ``total_conversion`` is the share of entrants that reached the last step (stages
    may be skipped with ``order="any"``); ``cumulative_conversion`` the share that
    passed every step in order; ``time_to_complete`` the time from step 0 to the last
    step of the latter. :meth:`members` and :meth:`dropped` return
    :class:`~segkit.Members`. :meth:`to_pandas` and :meth:`to_polars` give one row
    per step (times as exact durations); :meth:`table`, ``repr`` and a notebook's
    HTML view show times rounded to whole seconds.

    >>> import segkit as sk

    >>> from segkit.analysis.funnel import Funnel
    >>> events = [sk.Event("a", "visit", "2024-01-01T00:00:00Z"),
    ...           sk.Event("a", "buy", "2024-01-01T00:05:00Z"),
    ...           sk.Event("b", "visit", "2024-01-01T00:00:00Z")]
    >>> report = Funnel(["visit", "buy"], window="1d").run(events)
    >>> report.entered, report.total_conversion, report.members(1).keys(), report.dropped(0).keys()
    (2, 0.5, ['a'], ['b'])
    >>> report
    FunnelReport: 2 entered, total conversion 50.0%, cumulative 50.0%
      # step   count  from prev  from start  median time  mean time
      0 visit      2     100.0%      100.0%            -          -
      1 buy        1      50.0%       50.0%      0:05:00    0:05:00

    .. versionadded:: 0.1.0
    """

    steps: tuple[StepReport, ...]
    entered: int
    excluded: int
    total_conversion: float
    cumulative_conversion: float
    time_to_complete: TimeStats
    transitions: tuple[Transition, ...]
    _outcomes: FunnelOutcomes = attrs.field(eq=False, alias="_outcomes")
    _rows: tuple[int, ...] = attrs.field(eq=False, alias="_rows")
    _population: frozenset[int] | None = attrs.field(eq=False, alias="_population")

    def _check_step(self, i: int) -> None:
        if isinstance(i, bool) or not isinstance(i, int):
            raise TypeError(f"a step index must be an int, got {type(i).__name__}")
        if not 0 <= i < len(self.steps):
            raise IndexError(
                f"step {i} is out of range: this funnel has steps 0 to {len(self.steps) - 1}"
            )

    def _ids(self, bit: int | None, excluded: bool = False) -> set[int]:
        out = self._outcomes
        slot_ids = out.slot_ids
        if excluded:
            return {slot_ids[out.row_slot[r]] for r in self._rows if out.row_excluded[r]}
        assert bit is not None
        reached = out.row_reached
        return {slot_ids[out.row_slot[r]] for r in self._rows if (reached[r] >> bit) & 1}

    def members(self, i: int) -> Members:
        """The entities that reached step ``i`` (0-based).

        >>> import segkit as sk

        >>> from segkit.analysis.funnel import Funnel
        >>> report = Funnel(["visit"]).run([sk.Event("a", "visit", "2024-01-01T00:00:00Z")])
        >>> report.members(0)
        Members(1: 'a')
        """
        self._check_step(i)
        return Members(Bitmap(self._ids(i)), self._outcomes.idmap)

    def dropped(self, i: int) -> Members:
        """The entities that reached step ``i`` but not step ``i + 1`` (none after the last).

        >>> import segkit as sk

        >>> from segkit.analysis.funnel import Funnel
        >>> report = Funnel(["visit", "buy"]).run([sk.Event("a", "visit", "2024-01-01T00:00:00Z")])
        >>> report.dropped(0).keys(), report.dropped(1).keys()
        (['a'], [])
        """
        self._check_step(i)
        here = self._ids(i)
        if i + 1 < len(self.steps):
            here -= self._ids(i + 1)
        else:
            here = set()
        return Members(Bitmap(here), self._outcomes.idmap)

    def excluded_members(self) -> Members:
        """The entities removed by ``drop_entirely`` exclusions.

        >>> import segkit as sk

        >>> from segkit.analysis.funnel import Funnel
        >>> Funnel(["visit"]).run([]).excluded_members()
        Members(0)
        """
        return Members(Bitmap(self._ids(None, excluded=True)), self._outcomes.idmap)

    def levels(self) -> dict[str, int]:
        """Each entity's level: the number of steps it reached (0: it never entered).

        For ordered and strict funnels that is the furthest step reached, like
        ClickHouse's ``windowFunnel``; for ``order="any"`` the number of stages
        reached. The keys are the entities that had at least one event the funnel
        reads (and every entity asked for with ``entities=``), in order of appearance.

        >>> import segkit as sk

        >>> from segkit.analysis.funnel import Funnel
        >>> events = [sk.Event("a", "visit", "2024-01-01T00:00:00Z"),
        ...           sk.Event("b", "buy", "2024-01-01T00:00:00Z")]
        >>> Funnel(["visit", "buy"]).run(events).levels()
        {'a': 1, 'b': 0}
        """
        out = self._outcomes
        best: dict[int, int] = {}
        for r in self._rows:
            slot = out.row_slot[r]
            level = out.row_level[r]
            if level > best.get(slot, -1):
                best[slot] = level
        result: dict[str, int] = {}
        population = self._population
        for slot, key in enumerate(out.slot_keys):
            if population is None or out.slot_ids[slot] in population:
                result[key] = best.get(slot, 0)
        idmap = out.idmap
        for pid in out.extra_ids:
            if population is None or pid in population:
                result[idmap.key_of(pid)] = 0
        return result

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict (times in seconds).

        >>> import segkit as sk

        >>> from segkit.analysis.funnel import Funnel
        >>> d = Funnel(["visit"]).run([sk.Event("a", "visit", "2024-01-01T00:00:00Z")]).to_dict()
        >>> d["entered"], d["steps"][0]["count"], sorted(d)
        (1, 1, ['cumulative_conversion', 'entered', 'excluded', 'steps', 'time_to_complete', 'total_conversion', 'transitions'])
        """
        return {
            "entered": self.entered,
            "excluded": self.excluded,
            "total_conversion": self.total_conversion,
            "cumulative_conversion": self.cumulative_conversion,
            "time_to_complete": _stats_dict(self.time_to_complete),
            "steps": [
                {
                    "index": s.index,
                    "name": s.name,
                    "count": s.count,
                    "dropped": s.dropped,
                    "conversion_from_previous": s.conversion_from_previous,
                    "conversion_from_start": s.conversion_from_start,
                    "time_from_previous": (
                        None if s.time_from_previous is None else _stats_dict(s.time_from_previous)
                    ),
                }
                for s in self.steps
            ],
            "transitions": [
                {
                    "from_step": t.from_step,
                    "to_step": t.to_step,
                    "count": t.count,
                    "rate": t.rate,
                    "mean_time_seconds": _seconds(t.mean_time),
                }
                for t in self.transitions
            ],
        }

    def table(self) -> str:
        """The report as a plain-text table (what ``repr`` shows).

        >>> from segkit.analysis.funnel import Funnel
        >>> print(Funnel(["visit"]).run([]).table())
        FunnelReport: 0 entered, total conversion 0.0%, cumulative 0.0%
          # step   count  from prev  from start  median time  mean time
          0 visit      0       0.0%        0.0%            -          -
        """
        header = self._header()
        width = max([4, *(len(s.name) for s in self.steps)])
        index_width = len(str(len(self.steps) - 1))
        lines = [
            header,
            f"  {'#':>{index_width}} {'step':<{width}}  count  from prev  from start"
            "  median time  mean time",
        ]
        for s in self.steps:
            stats = s.time_from_previous
            median = _show_td(None if stats is None else stats.median)
            mean = _show_td(None if stats is None else stats.mean)
            lines.append(
                f"  {s.index:>{index_width}} {s.name:<{width}}  {s.count:>5}"
                f"  {s.conversion_from_previous:>9.1%}  {s.conversion_from_start:>10.1%}"
                f"  {median:>11}  {mean:>9}"
            )
        return "\n".join(lines)

    def __repr__(self) -> str:
        return self.table()

    def _header(self) -> str:
        header = (
            f"FunnelReport: {self.entered} entered, total conversion"
            f" {self.total_conversion:.1%}, cumulative {self.cumulative_conversion:.1%}"
        )
        if self.excluded:
            header += f", {self.excluded} excluded"
        return header

    def _repr_html_(self) -> str:
        """The notebook view: :meth:`table` as an HTML table."""
        rows = []
        for s in self.steps:
            stats = s.time_from_previous
            rows.append(
                [
                    str(s.index),
                    s.name,
                    str(s.count),
                    f"{s.conversion_from_previous:.1%}",
                    f"{s.conversion_from_start:.1%}",
                    format_duration(None if stats is None else stats.median),
                    format_duration(None if stats is None else stats.mean),
                ]
            )
        columns = [("#", "r"), ("step", "l"), ("count", "r"), ("from prev", "r")]
        columns += [("from start", "r"), ("median time", "r"), ("mean time", "r")]
        return html_table([self._header()], columns, rows)

    def _columns(self) -> Columns:
        """One row per step: counts, conversions and the time from the previous step.

        The times are exact durations (missing for step 0 and without samples);
        ``time_count`` is the number of samples behind them.
        """
        steps = self.steps
        stats = [s.time_from_previous for s in steps]

        def times(field: str) -> list[Any]:
            return [None if t is None else getattr(t, field) for t in stats]

        return typed_columns(
            [
                ("step", "int", [s.index for s in steps]),
                ("name", "str", [s.name for s in steps]),
                ("count", "int", [s.count for s in steps]),
                ("dropped", "int", [s.dropped for s in steps]),
                ("conversion_from_previous", "float", [s.conversion_from_previous for s in steps]),
                ("conversion_from_start", "float", [s.conversion_from_start for s in steps]),
                ("time_count", "int", times("count")),
                ("mean_time", "duration", times("mean")),
                ("median_time", "duration", times("median")),
                ("p90_time", "duration", times("p90")),
                ("min_time", "duration", times("min")),
                ("max_time", "duration", times("max")),
            ]
        )


class FunnelOutcomes:
    """Per-entity funnel results in columns; aggregate any subset with :meth:`report`.

    Made by :meth:`segkit.Funnel.evaluate`. ``idmap`` maps entity keys to the ids
    used by :class:`~segkit.Members` (an Engine's, or a fresh one).

    >>> import segkit as sk

    >>> from segkit.analysis.funnel import Funnel
    >>> events = [sk.Event("a", "visit", "2024-01-01T00:00:00Z"),
    ...           sk.Event("b", "visit", "2024-01-01T00:00:00Z"),
    ...           sk.Event("b", "buy", "2024-01-01T00:01:00Z")]
    >>> outcomes = Funnel(["visit", "buy"]).evaluate(events)
    >>> outcomes.report_for(["b"]).steps[1].count, outcomes.report().steps[1].count
    (1, 1)

    .. versionadded:: 0.1.0
    """

    __slots__ = (
        "extra_ids",
        "idmap",
        "names",
        "positive_times",
        "row_excluded",
        "row_level",
        "row_moved",
        "row_reached",
        "row_slot",
        "row_times",
        "slot_ids",
        "slot_keys",
    )

    def __init__(
        self,
        names: Sequence[str],
        idmap: IdMap,
        slot_keys: list[str],
        slot_ids: Sequence[int],
        extra_ids: list[int],
        *,
        positive_times: bool = False,
    ) -> None:
        n = len(names)
        self.names = tuple(names)
        self.idmap = idmap
        self.slot_keys = slot_keys
        self.slot_ids = slot_ids
        self.extra_ids = extra_ids
        self.positive_times = positive_times
        self.row_slot = array.array("I")
        self.row_level = array.array("B")
        self.row_reached = array.array("Q")
        self.row_moved = array.array("Q")
        self.row_excluded = array.array("B")
        self.row_times = [array.array("q") for _ in range(n)]

    def _add(self, slot: int, outcome: Outcome) -> None:
        """Append one outcome row for entity ``slot`` (used by :class:`~segkit.Funnel`)."""
        level, reached, moved, times, excluded = outcome
        self.row_slot.append(slot)
        self.row_level.append(level)
        self.row_reached.append(reached)
        self.row_moved.append(moved)
        self.row_excluded.append(1 if excluded else 0)
        for col, t in zip(self.row_times, times, strict=True):
            col.append(t)

    def _extend(self, slots: Sequence[int], outcomes: Sequence[Outcome]) -> None:
        """Append the rows ``outcomes`` of entities ``slots`` (one slot per row), in bulk."""
        if not outcomes:
            return
        levels, reached, moved, times, excluded = zip(*outcomes, strict=True)
        self.row_slot.extend(slots)
        self.row_level.extend(levels)
        self.row_reached.extend(reached)
        self.row_moved.extend(moved)
        self.row_excluded.extend(map(int, excluded))
        for col, values in zip(self.row_times, zip(*times, strict=True), strict=True):
            col.extend(values)

    def __len__(self) -> int:
        return len(self.row_slot)

    def report(self, ids: Iterable[int] | None = None) -> FunnelReport:
        """Aggregate the entities whose ids are in ``ids`` (all of them when ``None``).

        ``ids`` are ids of :attr:`idmap` (a set, or a segment's bitmap).

        >>> from segkit.analysis.funnel import Funnel
        >>> outcomes = Funnel(["a"]).evaluate_columns(["x", "y"], ["a", "a"], [0, 0])
        >>> outcomes.report().entered, outcomes.report({outcomes.idmap.id_of("y")}).entered
        (2, 1)
        """
        from segkit.analysis._funnel_options import numpy_enabled

        if numpy_enabled(len(self.row_slot)):
            from segkit.analysis._funnel_numpy import aggregate

            return aggregate(self, ids)
        if ids is None:
            rows: tuple[int, ...] = tuple(range(len(self.row_slot)))
            population = None
        else:
            slot_ids = self.slot_ids
            population = frozenset(ids)
            rows = tuple(r for r, slot in enumerate(self.row_slot) if slot_ids[slot] in population)
        return self._aggregate(rows, population)

    def report_for(self, keys: Iterable[str]) -> FunnelReport:
        """Aggregate the entities with these external keys (unknown keys are ignored).

        >>> from segkit.analysis.funnel import Funnel
        >>> outcomes = Funnel(["a"]).evaluate_columns(["x", "y"], ["a", "a"], [0, 0])
        >>> outcomes.report_for(["y", "nobody"]).members(0).keys()
        ['y']
        """
        get = self.idmap.get
        return self.report({pid for pid in (get(k) for k in keys) if pid is not None})

    def _samples(self, rows: Sequence[int], bit: int, a: int, b: int) -> list[int]:
        moved = self.row_moved
        ta, tb = self.row_times[a], self.row_times[b]
        out = [tb[r] - ta[r] for r in rows if (moved[r] >> bit) & 1]
        if self.positive_times:
            out = [d for d in out if d > 0]
        return out

    def _aggregate(self, rows: tuple[int, ...], population: frozenset[int] | None) -> FunnelReport:
        n = len(self.names)
        reached_counts: Counter[int] = Counter(self.row_reached[r] for r in rows)
        moved_counts: Counter[int] = Counter(self.row_moved[r] for r in rows)
        counts = [0] * n
        moves = [0] * n
        for mask, c in reached_counts.items():
            for k in range(n):
                if (mask >> k) & 1:
                    counts[k] += c
        for mask, c in moved_counts.items():
            for k in range(1, n):
                if (mask >> k) & 1:
                    moves[k] += c
        entered = sum(c for mask, c in reached_counts.items() if mask)
        excluded = sum(1 for r in rows if self.row_excluded[r])
        full = (1 << n) - 1
        complete = full & ~1
        cumulative_rows = [
            r
            for r in rows
            if self.row_reached[r] == full and (self.row_moved[r] & complete) == complete
        ]
        last_count = counts[-1]
        stats: list[TimeStats | None] = [None]
        for k in range(1, n):
            stats.append(TimeStats.of(self._samples(rows, k, k - 1, k)))
        both = [0 if k + 1 == n else self._reach_both(rows, k) for k in range(n)]
        steps, transitions = step_reports(self.names, counts, both, moves, stats)
        completion = [self.row_times[n - 1][r] - self.row_times[0][r] for r in cumulative_rows]
        if self.positive_times:
            completion = [d for d in completion if d > 0]
        return FunnelReport(
            steps,
            entered,
            excluded,
            _ratio(last_count, entered),
            _ratio(len(cumulative_rows), entered),
            TimeStats.of(completion),
            transitions,
            _outcomes=self,
            _rows=rows,
            _population=population,
        )

    def _reach_both(self, rows: Sequence[int], k: int) -> int:
        """Rows that reached step ``k`` and step ``k + 1``."""
        both = 3 << k
        reached = self.row_reached
        return sum(1 for r in rows if reached[r] & both == both)
