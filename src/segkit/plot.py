"""Charts of segkit's reports, drawn with matplotlib (extra ``plot``).

Each function takes a report and returns a :class:`matplotlib.figure.Figure`
built without pyplot, so nothing global changes and nothing is shown: display it
in a notebook (a Figure renders itself), or ``fig.savefig("chart.png")``.

* :func:`upset`: the overlap of any number of segments as an UpSet chart (region
  sizes as bars over a dot matrix of which segments each region is in, and the
  segments' sizes beside it);
* :func:`venn`: the overlap of 2 or 3 segments as a Venn diagram with the count of
  every region;
* :func:`funnel`: step counts with conversion from the start and the median time
  from the previous step;
* :func:`history`: a segment's size over time from its stored snapshots, with the
  points of the window that :meth:`segkit.Engine.attention` flagged;
* :func:`split_balance`: each group's size against the size its weight expects,
  with the sample-ratio-mismatch p-value.

>>> import segkit as sk
>>> from segkit import plot
>>> engine = sk.Engine(sk.Schema(attributes={"n": "int"}))
>>> _ = engine.upsert_many({k: {"n": i} for i, k in enumerate("abcdef")})
>>> _ = engine.define("low", "n < 3"), engine.define("even", "n in [0, 2, 4]")
>>> fig = plot.upset(engine.overlap(["low", "even"]))
>>> [int(bar.get_height()) for bar in fig.axes[0].patches]
[2, 1, 1]

.. versionadded:: 0.1.0
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from segkit.analysis.funnel import FunnelReport
    from segkit.analysis.overlap import OverlapReport

__all__ = ["funnel", "history", "split_balance", "upset", "venn"]

_BAR = "#4C72B0"
_MUTED = "#C8CCD4"
_FLAG = "#D1495B"


def _figure(width: float, height: float) -> Figure:
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError("segkit.plot needs matplotlib: pip install 'segkit[plot]'") from None
    return Figure(figsize=(width, height), layout="constrained")


def _short(seconds: float) -> str:
    """A duration as a short label: 45s, 12min, 3.5h, 2.1d."""
    if seconds < 60:
        return f"{seconds:.0f}s"
    if seconds < 3600:
        return f"{seconds / 60:.0f}min"
    if seconds < 86400:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"


def upset(report: OverlapReport, *, max_regions: int = 30, title: str | None = None) -> Figure:
    """An UpSet chart of an overlap: one bar per exclusive region, in the report's order.

    Under each bar, filled dots mark the segments the region is in; on the left,
    the segments' sizes. At most ``max_regions`` regions are drawn (the first ones
    of ``report.regions``: reorder with ``report.sorted(...)`` first).

    >>> import segkit as sk
    >>> engine = sk.Engine(sk.Schema(attributes={"n": "int"}))
    >>> _ = engine.upsert_many({k: {"n": i} for i, k in enumerate("abcdef")})
    >>> _ = engine.define("low", "n < 3"), engine.define("even", "n in [0, 2, 4]")
    >>> fig = upset(engine.overlap(["low", "even"]))
    >>> [t.get_text() for t in fig.axes[1].get_yticklabels()]
    ['low', 'even']
    """
    if report.pairwise_only:
        raise ValueError("an UpSet chart needs the regions: call overlap() without pairwise=True")
    if max_regions < 1:
        raise ValueError(f"max_regions must be at least 1, got {max_regions}")
    regions = report.regions[:max_regions]
    names = report.names
    n = len(names)
    fig = _figure(max(6.0, 0.35 * len(regions) + 3), 2.5 + 0.35 * n)
    grid = fig.add_gridspec(2, 2, width_ratios=(1, 4), height_ratios=(3, max(1, n * 0.4)))
    bars = fig.add_subplot(grid[0, 1])
    matrix = fig.add_subplot(grid[1, 1], sharex=bars)
    totals = fig.add_subplot(grid[1, 0], sharey=matrix)
    xs = list(range(len(regions)))
    drawn = bars.bar(xs, [r.count for r in regions], color=_BAR)
    bars.bar_label(drawn, labels=[f"{r.count:,}" for r in regions], fontsize=8)
    bars.set_ylabel("profiles in exactly these")
    bars.tick_params(axis="x", bottom=False, labelbottom=False)
    for side in ("top", "right"):
        bars.spines[side].set_visible(False)
    position = {name: i for i, name in enumerate(names)}
    for x, region in zip(xs, regions, strict=True):
        inside = [position[s] for s in region.segments]
        matrix.scatter([x] * n, range(n), s=40, color=_MUTED, zorder=1)
        matrix.scatter([x] * len(inside), inside, s=40, color="black", zorder=2)
        if len(inside) > 1:
            matrix.plot([x, x], [min(inside), max(inside)], color="black", lw=2, zorder=2)
    matrix.set_yticks(range(n), list(names))
    matrix.set_ylim(n - 0.5, -0.5)
    matrix.tick_params(axis="x", bottom=False, labelbottom=False)
    for side in ("top", "right", "bottom", "left"):
        matrix.spines[side].set_visible(False)
    totals.barh(range(n), [report.totals[name] for name in names], color=_MUTED)
    totals.invert_xaxis()
    totals.set_xlabel("segment size")
    totals.tick_params(axis="y", left=False, labelleft=False)
    for side in ("top", "left"):
        totals.spines[side].set_visible(False)
    if title:
        fig.suptitle(title)
    return fig


# centres of the regions' labels, by the segments (positions) a region is in
_VENN_CIRCLES: dict[int, list[tuple[float, float]]] = {
    2: [(-0.5, 0.0), (0.5, 0.0)],
    3: [(-0.5, 0.35), (0.5, 0.35), (0.0, -0.5)],
}
_VENN_LABELS: dict[int, dict[tuple[int, ...], tuple[float, float]]] = {
    2: {(0,): (-0.95, 0.0), (1,): (0.95, 0.0), (0, 1): (0.0, 0.0)},
    3: {
        (0,): (-0.95, 0.65),
        (1,): (0.95, 0.65),
        (2,): (0.0, -1.0),
        (0, 1): (0.0, 0.65),
        (0, 2): (-0.6, -0.3),
        (1, 2): (0.6, -0.3),
        (0, 1, 2): (0.0, 0.05),
    },
}


def venn(report: OverlapReport, *, title: str | None = None) -> Figure:
    """A Venn diagram of 2 or 3 segments with the count of every exclusive region.

    Circles are not drawn to scale; the numbers are the counts (empty regions show 0).

    >>> import segkit as sk
    >>> engine = sk.Engine(sk.Schema(attributes={"n": "int"}))
    >>> _ = engine.upsert_many({k: {"n": i} for i, k in enumerate("abcdef")})
    >>> _ = engine.define("low", "n < 3"), engine.define("even", "n in [0, 2, 4]")
    >>> fig = venn(engine.overlap(["low", "even"]))
    >>> sorted(t.get_text() for t in fig.axes[0].texts)
    ['1', '1', '2', 'even (3)', 'low (3)']
    """
    n = len(report.names)
    if n not in (2, 3):
        raise ValueError(f"a Venn diagram shows 2 or 3 segments, not {n}: use upset() instead")
    if report.pairwise_only:
        raise ValueError("a Venn diagram needs the regions: call overlap() without pairwise=True")
    from matplotlib.patches import Circle

    fig = _figure(5.0, 4.5)
    ax = fig.add_subplot()
    colors = ("#4C72B0", "#DD8452", "#55A868")
    for i, (x, y) in enumerate(_VENN_CIRCLES[n]):
        ax.add_patch(Circle((x, y), 1.0, alpha=0.3, color=colors[i], lw=0))
        name = report.names[i]
        dx = -0.6 if x < 0 else 0.6 if x > 0 else 0.0
        dy = 1.15 if y >= 0 else -1.2
        ax.text(x + dx, y + dy, f"{name} ({report.totals[name]:,})", ha="center")
    position = {name: i for i, name in enumerate(report.names)}
    counts = {tuple(position[s] for s in r.segments): r.count for r in report.regions}
    for inside, (x, y) in _VENN_LABELS[n].items():
        ax.text(x, y, f"{counts.get(inside, 0):,}", ha="center", va="center", fontsize=11)
    ax.set_xlim(-2.0, 2.0)
    ax.set_ylim(-2.0, 1.9)
    ax.set_aspect("equal")
    ax.axis("off")
    if title:
        fig.suptitle(title)
    return fig


def funnel(report: FunnelReport, *, title: str | None = None) -> Figure:
    """A funnel chart: a bar per step with its count and conversion from the start,
    and the median time from the previous step between the bars.

    >>> import segkit as sk
    >>> from datetime import datetime, timedelta, timezone
    >>> t0 = datetime(2024, 6, 1, tzinfo=timezone.utc)
    >>> events = [sk.Event("a", "visit", t0), sk.Event("a", "buy", t0 + timedelta(hours=2)),
    ...           sk.Event("b", "visit", t0)]
    >>> report = sk.Funnel(["visit", "buy"], window=timedelta(days=7)).run(events)
    >>> fig = funnel(report)
    >>> [t.get_text() for t in fig.axes[0].texts]
    ['2 (100%)', '1 (50%)', 'median 2.0h']
    """
    steps = report.steps
    fig = _figure(max(5.0, 1.3 * len(steps) + 1), 4.0)
    ax = fig.add_subplot()
    xs = list(range(len(steps)))
    counts = [s.count for s in steps]
    ax.bar(xs, counts, color=_BAR)
    top = max(counts, default=0) or 1
    for x, step in zip(xs, steps, strict=True):
        label = f"{step.count:,} ({step.conversion_from_start:.0%})"
        ax.text(x, step.count + top * 0.02, label, ha="center", va="bottom", fontsize=9)
    for x, step in zip(xs[1:], steps[1:], strict=True):
        stats = step.time_from_previous
        if stats is not None and stats.median is not None:
            text = f"median {_short(stats.median.total_seconds())}"
            ax.text(x - 0.5, top * 0.55, text, ha="center", fontsize=8, color="dimgray")
    ax.set_xticks(xs, [s.name for s in steps])
    ax.set_ylabel("entities")
    ax.set_ylim(0, top * 1.15)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    if title:
        fig.suptitle(title)
    return fig


def history(engine: Any, name: str, *, attention: Sequence[Any] = (), days: int = 7) -> Figure:
    """A segment's size over time, one point per day (the day's last stored snapshot).

    When ``attention`` (the result of :meth:`segkit.Engine.attention`) flags the
    segment, the points of its last ``days`` days are drawn in red and the reasons
    are the title.

    >>> import segkit as sk
    >>> from datetime import datetime, timedelta, timezone
    >>> storage = sk.InMemoryStorage()
    >>> t0 = datetime(2024, 6, 1, tzinfo=timezone.utc)
    >>> for day, size in enumerate([10, 11, 12]):
    ...     _ = storage.put_snapshot(sk.Snapshot("vip", t0 + timedelta(days=day), size),
    ...                              expected_version=None)
    >>> engine = sk.Engine(sk.Schema(attributes={}), storage=storage)
    >>> fig = history(engine, "vip")
    >>> [int(y) for y in fig.axes[0].lines[0].get_ydata()]
    [10, 11, 12]
    """
    by_day: dict[Any, Any] = {}
    for item in engine.storage.list_snapshots(name):
        snap = item.value
        day = snap.at.date()
        if day not in by_day or snap.at >= by_day[day].at:
            by_day[day] = snap
    points = [by_day[day] for day in sorted(by_day)]
    if not points:
        raise ValueError(f"segment {name!r} has no stored snapshots")
    fig = _figure(7.0, 3.2)
    ax = fig.add_subplot()
    xs = [snap.at for snap in points]
    ax.plot(xs, [snap.size for snap in points], color=_BAR, marker="o", ms=3)
    flagged = [item for item in attention if getattr(item, "name", None) == name]
    if flagged:
        from datetime import timedelta

        since = xs[-1] - timedelta(days=days)
        recent = [snap for snap in points if snap.at > since]
        ax.scatter([s.at for s in recent], [s.size for s in recent], color=_FLAG, zorder=3)
        reasons = "; ".join(str(r) for item in flagged for r in getattr(item, "reasons", ()))
        ax.set_title(f"{name}: {reasons}", color=_FLAG, fontsize=10)
    else:
        ax.set_title(name, fontsize=10)
    ax.set_ylabel("members")
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    fig.autofmt_xdate()
    return fig


def split_balance(split: Any, *, title: str | None = None) -> Figure:
    """Each group's size beside the size its weight expects, with the SRM p-value.

    ``split`` is the result of :meth:`segkit.Engine.split`.

    >>> import segkit as sk
    >>> engine = sk.Engine(sk.Schema(attributes={"n": "int"}))
    >>> _ = engine.upsert_many({f"k{i}": {"n": i} for i in range(100)})
    >>> _ = engine.define("all", "n >= 0")
    >>> fig = split_balance(engine.split("all", {"a": 50, "b": 50}, salt="s"))
    >>> [t.get_text() for t in fig.axes[0].get_xticklabels()]
    ['a', 'b']
    """
    groups = list(split.counts)
    fig = _figure(max(5.0, 0.9 * len(groups) + 2), 3.5)
    ax = fig.add_subplot()
    xs = list(range(len(groups)))
    width = 0.4
    ax.bar(
        [x - width / 2 for x in xs],
        [split.counts[g] for g in groups],
        width,
        color=_BAR,
        label="actual",
    )
    ax.bar(
        [x + width / 2 for x in xs],
        [split.expected[g] for g in groups],
        width,
        color=_MUTED,
        label="expected",
    )
    ax.set_xticks(xs, groups)
    ax.set_ylabel("members")
    ax.legend(frameon=False)
    srm = split.srm
    verdict = "balanced" if srm.ok else "sample-ratio mismatch"
    ax.set_title(title or f"{verdict} (p = {srm.p_value:.3g})", fontsize=10)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    return fig
