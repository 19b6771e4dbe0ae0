"""Drivers: which attribute values inside a segment separate a metric most.

:meth:`segkit.Engine.drivers` splits one segment's members by each value of each
attribute and compares a metric between the members *with* the value (the group)
and the other members of the segment (the rest). Large, consistent differences
are the analyst's cue that the segment mixes populations and should be split.

Groups, per attribute type:

* ``bool`` and ``string``: one group per value (``role = "engineer"``);
* ``list[...]``: one group per element (``tags has any ["vip"]``); a member
  belongs to the group of each element it holds;
* ``int``, ``float``, ``date``, ``datetime``: one group per value when the segment
  holds at most ``bins`` distinct values, otherwise ``bins`` quantile bins (see
  :func:`quantile_edges`): ``age < 31``, ``age >= 31 and age < 45``, ``age >= 45``;
* every attribute: the members without a value (``role is not known``).

Each group's label is rule text, so ``engine.define("x", 'in segment "s" and ' + row.group)``
makes it a segment; ``row.members`` are its members.

Effects, per metric (``count``, ``sum`` and ``median`` are not averages per member
and are refused):

* ``mean``: the difference of the means, Cohen's d (the difference over the pooled
  standard deviation), Welch's t-test;
* ``nps``: the difference in NPS points; NPS is the mean of a per-answer score of
  +100 (promoter), 0 (passive) or -100 (detractor), so Cohen's d and Welch's t-test
  on that score;
* ``rate``, ``conversion``, ``churn``, ``csat``: the difference of the shares,
  Cohen's h (``2 asin sqrt(p1) - 2 asin sqrt(p2)``), a two-proportion z-test.

Rows are ranked by the absolute standardized effect, then the absolute difference
(a group above the rest before one below it, then attribute and group order);
groups with fewer than ``min_count`` members with a value, or whose rest has fewer,
are left out. The p-values are not adjusted for the many groups compared: read
them as a filter for noise, not as proof.

>>> import segkit as sk
>>> from segkit.analysis import metrics
>>> engine = sk.Engine(sk.Schema(attributes={"role": "string", "nps": "int"}))
>>> _ = engine.upsert_many({f"c{i}": {"role": "dev" if i % 2 else "ops", "nps": 10 if i % 2 else 3}
...                         for i in range(8)})
>>> _ = engine.define("users", "nps is known")
>>> top = engine.drivers("users", metrics.nps("nps"), min_count=2)[0]
>>> top.group, top.value, top.rest_value, top.difference
('role = "dev"', 100.0, -100.0, 200.0)

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import bisect
import math
import operator
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final, Literal

import attrs

from segkit._suggest import suggest
from segkit.analysis import _stats
from segkit.analysis._html import Columns, Frames, html_table, typed_columns
from segkit.analysis.metrics import (
    Metric,
    MetricValue,
    _Prepared,
    _segment_ids,
)
from segkit.dsl.builder import attr
from segkit.dsl.rule import Rule
from segkit.errors import UnknownAttributeError
from segkit.index import Bitmap, Members
from segkit.timeutil import ensure_aware

if TYPE_CHECKING:
    from segkit.engine import Engine
    from segkit.index import AttributeIndex
    from segkit.schema import FieldType

__all__ = ["Driver", "Drivers", "drivers", "quantile_edges"]

#: The metric kinds drivers can rank by: averages of a per-member score.
SUPPORTED: Final = ("mean", "nps", "rate", "conversion", "churn", "csat")
#: Default smallest group (and rest), in members with a value.
MIN_COUNT: Final = 30
#: Default number of quantile bins of a number or date attribute.
BINS: Final = 4
#: Rows shown by ``repr``.
SHOWN: Final = 10

EffectSize = Literal["cohen_d", "cohen_h"]


@attrs.frozen
class Driver:
    """One group inside a segment, compared with the rest of the segment.

    ``group`` is the group as rule text (``rule`` parsed); ``size`` its members,
    ``n`` those with a value of the metric and ``value`` the metric among them;
    ``rest_n`` and ``rest_value`` the same for the other members of the segment.
    ``difference`` is ``value - rest_value``, ``effect`` the standardized effect
    (Cohen's d or h, see :class:`Drivers`), ``p_value`` the two-sided p-value of the
    difference. ``members`` are the group's members.

    >>> import segkit as sk
    >>> from segkit.analysis import metrics
    >>> engine = sk.Engine(sk.Schema(attributes={"vip": "bool", "ltv": "float"}))
    >>> _ = engine.upsert_many({f"c{i}": {"vip": i < 3, "ltv": 100.0 + i if i < 3 else 10.0 + i}
    ...                         for i in range(6)})
    >>> _ = engine.define("all", "ltv is known")
    >>> row = engine.drivers("all", metrics.mean("ltv"), min_count=2)[0]
    >>> row.group, row.n, row.value, row.rest_value, row.difference
    ('vip = true', 3, 101.0, 14.0, 87.0)
    >>> row.members
    Members(3: 'c0', 'c1', 'c2')

    .. versionadded:: 0.1.0
    """

    attribute: str
    group: str
    size: int
    n: int
    value: float
    rest_n: int
    rest_value: float
    difference: float
    effect: float
    p_value: float
    rule: Rule = attrs.field(repr=False, eq=False)
    members: Members = attrs.field(repr=False, eq=False)

    def to_dict(self) -> dict[str, Any]:
        """A plain dict of the numbers (``effect`` may be infinite when both groups are constant).

        >>> import segkit as sk
        >>> from segkit.analysis import metrics
        >>> engine = sk.Engine(sk.Schema(attributes={"vip": "bool", "ok": "bool"}))
        >>> _ = engine.upsert_many({f"c{i}": {"vip": i < 4, "ok": i < 2} for i in range(8)})
        >>> _ = engine.define("all", "ok is known")
        >>> d = engine.drivers("all", metrics.rate("ok"), min_count=2)[0].to_dict()
        >>> d["group"], d["value"], d["rest_value"], d["n"], d["rest_n"]
        ('vip = true', 0.5, 0.0, 4, 4)
        """
        return {
            "attribute": self.attribute,
            "group": self.group,
            "size": self.size,
            "n": self.n,
            "value": self.value,
            "rest_n": self.rest_n,
            "rest_value": self.rest_value,
            "difference": self.difference,
            "effect": self.effect,
            "p_value": self.p_value,
        }


@attrs.frozen
class Drivers(Frames):
    """The groups inside one segment that separate a metric most, strongest first.

    ``rows`` are :class:`Driver` values ranked by ``|effect|``; ``effect_size`` says
    which standardized effect they carry: ``"cohen_d"`` (means and NPS) or
    ``"cohen_h"`` (rates, conversion, churn, CSAT). ``overall`` is the metric over the
    whole segment; ``attributes`` the attributes examined; ``excluded`` how many
    groups were left out for having fewer than ``min_count`` members with a value (or
    a rest that small). ``drivers[i]`` is row ``i``; ``repr`` shows the top rows
    (a notebook, in HTML); :meth:`to_pandas` and :meth:`to_polars` give one row per
    driver.

    >>> import segkit as sk
    >>> from segkit.analysis import metrics
    >>> engine = sk.Engine(sk.Schema(attributes={"plan": "string", "churned": "bool"}))
    >>> _ = engine.upsert_many({f"c{i}": {"plan": ["free", "pro"][i % 2], "churned": i % 4 == 0}
    ...                         for i in range(40)})
    >>> _ = engine.define("all", "plan is known")
    >>> engine.drivers("all", metrics.churn("churned"), min_count=10)
    Drivers of churn(churned) in segment 'all': 40 members, 25.0% [14.2%, 40.2%] n=40
    effect size: Cohen's h; 2 groups, 0 left out (fewer than 10)
      #  group          n  value  rest n  rest   difference  effect  p-value
      1  plan = "free"  20  50.0%      20   0.0%      +50.0%   +1.571  <0.001
      2  plan = "pro"   20   0.0%      20  50.0%      -50.0%   -1.571  <0.001

    .. versionadded:: 0.1.0
    """

    segment: str
    metric: Metric
    effect_size: EffectSize
    overall: MetricValue
    size: int
    rows: tuple[Driver, ...]
    attributes: tuple[str, ...]
    min_count: int
    bins: int
    excluded: int

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self) -> Iterator[Driver]:
        return iter(self.rows)

    def __getitem__(self, i: int) -> Driver:
        return self.rows[i]

    def to_dict(self) -> dict[str, Any]:
        """A plain dict: the segment, the metric, the options and the rows.

        >>> import segkit as sk
        >>> from segkit.analysis import metrics
        >>> engine = sk.Engine(sk.Schema(attributes={"x": "int"}))
        >>> _ = engine.define("none", "x > 1")
        >>> sorted(engine.drivers("none", metrics.mean("x")).to_dict())
        ['attributes', 'bins', 'effect_size', 'excluded', 'metric', 'min_count', 'overall', 'rows', 'segment', 'size']
        """
        return {
            "segment": self.segment,
            "metric": self.metric.to_dict(),
            "effect_size": self.effect_size,
            "overall": self.overall.to_dict(),
            "size": self.size,
            "attributes": list(self.attributes),
            "min_count": self.min_count,
            "bins": self.bins,
            "excluded": self.excluded,
            "rows": [row.to_dict() for row in self.rows],
        }

    def table(self, limit: int | None = SHOWN) -> str:
        """The top ``limit`` rows (all with ``None``) as a plain-text table.

        >>> import segkit as sk
        >>> from segkit.analysis import metrics
        >>> engine = sk.Engine(sk.Schema(attributes={"x": "int"}))
        >>> _ = engine.define("none", "x > 1")
        >>> print(engine.drivers("none", metrics.mean("x")).table())
        Drivers of mean(x) in segment 'none': 0 members, - n=0
        effect size: Cohen's d; 0 groups, 0 left out (fewer than 30)
        """
        head, header, cells, more = self._display(limit)
        lines = list(head)
        if not cells:
            return "\n".join(lines)
        widths = [max(len(c[i]) for c in [header, *cells]) for i in range(len(header))]
        left = {1}
        for line in [header, *cells]:
            parts = [
                cell.ljust(w) if i in left else cell.rjust(w)
                for i, (cell, w) in enumerate(zip(line, widths, strict=True))
            ]
            lines.append(("  " + "  ".join(parts)).rstrip())
        if more:
            lines.append(f"  ... {more} more")
        return "\n".join(lines)

    def _display(self, limit: int | None) -> tuple[list[str], list[str], list[list[str]], int]:
        """The head lines, the header, the first ``limit`` rows' cells and how many more."""
        from segkit.analysis.metrics import _show

        metric = self.metric
        if metric.is_proportion:
            fmt: Callable[[float], str] = "{:.1%}".format
            signed: Callable[[float], str] = "{:+.1%}".format
        else:
            fmt = "{:.4g}".format if metric.kind == "mean" else "{:.1f}".format
            signed = "{:+.4g}".format if metric.kind == "mean" else "{:+.1f}".format
        kind = "Cohen's d" if self.effect_size == "cohen_d" else "Cohen's h"
        head = [
            f"Drivers of {metric.label} in segment {self.segment!r}: {self.size:,} members, "
            f"{_show(self.overall, metric)}",
            f"effect size: {kind}; {len(self.rows)} group{'s' if len(self.rows) != 1 else ''},"
            f" {self.excluded} left out (fewer than {self.min_count})",
        ]
        shown = self.rows if limit is None else self.rows[:limit]
        header = ["#", "group", "n", "value", "rest n", "rest", "difference", "effect", "p-value"]
        cells = [
            [
                str(i),
                row.group,
                f"{row.n:,}",
                fmt(row.value),
                f"{row.rest_n:,}",
                fmt(row.rest_value),
                signed(row.difference),
                f"{row.effect:+.3f}",
                "<0.001" if row.p_value < 0.001 else f"{row.p_value:.3f}",
            ]
            for i, row in enumerate(shown, 1)
        ]
        return head, header, cells, len(self.rows) - len(shown)

    def __repr__(self) -> str:
        return self.table()

    def _repr_html_(self) -> str:
        """The notebook view: :meth:`table` as an HTML table (the top 10 rows)."""
        head, header, cells, more = self._display(SHOWN)
        columns = [(title, "l" if i == 1 else "r") for i, title in enumerate(header)]
        return html_table(head, columns, cells, [f"... {more} more"] if more else [])

    def _columns(self) -> Columns:
        """One row per driver, strongest first: the fields of :meth:`Driver.to_dict`."""
        rows = self.rows
        return typed_columns(
            [
                ("attribute", "str", [r.attribute for r in rows]),
                ("group", "str", [r.group for r in rows]),
                ("size", "int", [r.size for r in rows]),
                ("n", "int", [r.n for r in rows]),
                ("value", "float", [r.value for r in rows]),
                ("rest_n", "int", [r.rest_n for r in rows]),
                ("rest_value", "float", [r.rest_value for r in rows]),
                ("difference", "float", [r.difference for r in rows]),
                ("effect", "float", [r.effect for r in rows]),
                ("p_value", "float", [r.p_value for r in rows]),
            ]
        )


def quantile_edges(ordered: Sequence[Any], bins: int) -> list[Any]:
    """The cut points of ``bins`` quantile bins of sorted values, without repeats.

    The edges are the values at sorted positions ``floor(k * n / bins)`` for
    ``k = 1 .. bins - 1``; bin 0 holds the values below the first edge, bin ``k`` the
    values from edge ``k`` up to (not including) edge ``k + 1``, the last bin the
    values from the last edge up. Repeated values never straddle an edge, so ties can
    leave fewer bins (a single bin, labelled ``x is known``, when every cut point is
    the minimum).

    >>> quantile_edges([1, 2, 3, 4, 5, 6, 7, 8], 4)
    [3, 5, 7]
    >>> quantile_edges([1, 1, 1, 1, 1, 1, 2, 3], 4)
    [2]
    """
    from segkit.analysis.lookalike import quantile_edges as edges

    return list(edges(ordered, bins))


class _Acc:
    """Count, sum and sum of squares of (shifted) scores: exact for ints, fsum for floats."""

    __slots__ = ("n", "s1", "s2")

    def __init__(self, ys: Sequence[float], exact: bool) -> None:
        self.n = len(ys)
        if exact:
            self.s1: float = sum(ys)
            self.s2: float = sum(map(operator.mul, ys, ys))
        else:
            self.s1 = math.fsum(ys)
            self.s2 = math.fsum(map(operator.mul, ys, ys))


_MISSING: Final = object()


def _check_int(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


def _attributes(engine: Engine, metric: Metric, attributes: Iterable[str] | None) -> list[str]:
    schema = engine.schema
    if attributes is None:
        return [name for name in schema.attributes if name != metric.attribute]
    if isinstance(attributes, str):
        raise TypeError("attributes must be a list of attribute names, not a single string")
    out = list(dict.fromkeys(attributes))
    for name in out:
        if not isinstance(name, str):
            raise TypeError(f"attribute names are strings, got {name!r}")
        if schema.attribute_type(name) is None:
            raise UnknownAttributeError(
                f"drivers(): unknown attribute {name!r}",
                suggestion=suggest(name, schema.attributes),
            )
    return out


def drivers(
    engine: Engine,
    segment: str,
    metric: Metric,
    *,
    attributes: Iterable[str] | None = None,
    min_count: int = MIN_COUNT,
    bins: int = BINS,
    now: datetime | None = None,
    confidence: float = 0.95,
) -> Drivers:
    """Rank the attribute values inside ``segment`` by how much they separate ``metric``.

    What :meth:`segkit.Engine.drivers` does; the module docstring defines the
    groups and the effects. ``attributes`` (default: every attribute but the
    metric's own) are the attributes examined; ``min_count`` (default 30, at least 2)
    the smallest group, and rest, kept; ``bins`` (default 4, at least 2) the number of
    quantile bins of number and date attributes; ``now`` evaluates a time-relative
    segment and a rule-based metric at that time (default: the stored membership and
    the engine's clock); ``confidence`` is for the ``overall`` value's interval.

    >>> import segkit as sk
    >>> from segkit.analysis import metrics
    >>> engine = sk.Engine(sk.Schema(attributes={"x": "int"}))
    >>> _ = engine.define("all", "x is known")
    >>> drivers(engine, "all", metrics.count())
    Traceback (most recent call last):
    ...
    ValueError: drivers() ranks groups by a per-member average (mean, nps, rate, conversion, churn or csat), not by count
    """
    if not isinstance(metric, Metric):
        raise TypeError(
            f"metric must be a metric such as segkit.metrics.nps('nps'), got {metric!r}"
        )
    if metric.kind not in SUPPORTED:
        raise ValueError(
            "drivers() ranks groups by a per-member average "
            f"(mean, nps, rate, conversion, churn or csat), not by {metric.label}"
        )
    min_count = _check_int("min_count", min_count, 2)
    bins = _check_int("bins", bins, 2)
    level = _stats.check_confidence(confidence)
    when = engine.now() if now is None else ensure_aware(now, engine.schema.tz, "now")
    ids = _segment_ids(engine, segment, None if now is None else when)
    prepared = _Prepared(engine, metric, when)
    names = _attributes(engine, metric, attributes)
    key_of = engine._ids.key_of
    overall = prepared.measure(ids, level, key_of)

    # every member with a score, and the scores, shifted by their mean (floats only)
    score = prepared.scorer(key_of)
    pids: list[int] = []
    scores: list[float] = []
    for pid in prepared.counted(ids):
        s = score(pid)
        if s is not None:
            pids.append(pid)
            scores.append(s)
    exact = all(type(s) is int for s in scores)
    shift = 0.0 if exact or not scores else math.fsum(scores) / len(scores)
    ys = scores if exact else [s - shift for s in scores]
    total = _Acc(ys, exact)

    proportion = metric.is_proportion
    candidates: list[tuple[tuple[Any, ...], Driver]] = []
    excluded = 0
    for order, name in enumerate(names):
        index = engine._attr_index[name]
        ftype = engine.schema.attributes[name]
        groups, describe = _groups(index, ftype, ids, pids, ys, exact, bins)
        for position, (key, acc) in enumerate(groups.items()):
            rest_n = total.n - acc.n
            if acc.n < min_count or rest_n < min_count:
                excluded += 1
                continue
            stats = _compare(acc, total, shift, proportion)
            rule, members = describe(name, key)
            group_ids = ids & members
            candidates.append(
                (
                    (-abs(stats[3]), -abs(stats[2]), -stats[2], order, position),
                    Driver(
                        name,
                        str(rule),
                        len(group_ids),
                        acc.n,
                        stats[0],
                        rest_n,
                        stats[1],
                        stats[2],
                        stats[3],
                        stats[4],
                        rule,
                        engine._members(group_ids),
                    ),
                )
            )
    candidates.sort(key=lambda item: item[0])
    return Drivers(
        segment,
        metric,
        "cohen_h" if proportion else "cohen_d",
        overall,
        len(ids),
        tuple(row for _, row in candidates),
        tuple(names),
        min_count,
        bins,
        excluded,
    )


_Describe = Callable[[str, Any], tuple[Rule, Bitmap]]


def _groups(
    index: AttributeIndex,
    ftype: FieldType,
    ids: Bitmap,
    pids: Sequence[int],
    ys: Sequence[float],
    exact: bool,
    bins: int,
) -> tuple[dict[Any, _Acc], _Describe]:
    """The accumulated scores of each group of one attribute, and how to name a group.

    Groups are ordered: values (sorted when they compare), then the missing group.
    """
    get = index.get
    buckets: dict[Any, list[float]] = {}
    missing: list[float] = []
    edges: list[Any] | None = None
    if ftype.is_numeric or ftype.is_temporal:
        # number and date attributes with more than `bins` distinct values are binned
        present = sorted(get(pid) for pid in ids & index.known)
        if len(set(present)) > bins:
            edges = quantile_edges(present, bins)
    values = list(map(get, pids))
    if edges is not None:
        cut = edges
        values = [None if v is None else bisect.bisect_right(cut, v) for v in values]
    if index.is_list:
        for v, y in zip(values, ys, strict=True):
            if v is None:
                missing.append(y)
                continue
            for element in set(v):
                bucket = buckets.get(element)
                if bucket is None:
                    buckets[element] = bucket = []
                bucket.append(y)
    else:
        for v, y in zip(values, ys, strict=True):
            bucket = buckets.get(v)
            if bucket is None:
                buckets[v] = bucket = []
            bucket.append(y)
        missing = buckets.pop(None, [])
    try:
        keys = sorted(buckets)
    except TypeError:  # pragma: no cover - values of one attribute share a type
        keys = list(buckets)
    ordered = {key: _Acc(buckets[key], exact) for key in keys}
    if missing:
        ordered[_MISSING] = _Acc(missing, exact)

    def describe(name: str, key: Any) -> tuple[Rule, Bitmap]:
        ref = attr(name)
        if key is _MISSING:
            return ref.is_not_known(), ids - index.known
        if edges is not None:
            low = edges[key - 1] if key > 0 else None
            high = edges[key] if key < len(edges) else None
            bits = index.range(low, high, high_inclusive=False)
            if low is None and high is None:  # ties left a single bin
                return ref.is_known(), index.known
            if low is None:
                return ref < high, bits
            if high is None:
                return ref >= low, bits
            return (ref >= low) & (ref < high), bits
        if index.is_list:
            return ref.has_any([key]), index.equal(key)
        return ref == key, index.equal(key)

    return ordered, describe


def _compare(
    group: _Acc, total: _Acc, shift: float, proportion: bool
) -> tuple[float, float, float, float, float]:
    """(value, rest value, difference, standardized effect, p-value) of a group vs. the rest."""
    n1, n2 = group.n, total.n - group.n
    s1_1, s1_2 = group.s1, total.s1 - group.s1
    s2_1, s2_2 = group.s2, total.s2 - group.s2
    mean1, mean2 = s1_1 / n1 + shift, s1_2 / n2 + shift
    difference = mean1 - mean2
    if proportion:
        effect = 2 * math.asin(math.sqrt(min(1.0, mean1))) - 2 * math.asin(
            math.sqrt(min(1.0, mean2))
        )
        pooled = total.s1 / total.n
        se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
        p_value = (
            (1.0 if difference == 0 else 0.0)
            if se == 0
            else _stats.normal_two_sided(difference / se)
        )
        return mean1, mean2, difference, effect, p_value
    ss1 = max(0.0, s2_1 - s1_1 * s1_1 / n1)  # sums of squared deviations
    ss2 = max(0.0, s2_2 - s1_2 * s1_2 / n2)
    pooled_sd = math.sqrt((ss1 + ss2) / (n1 + n2 - 2))
    if pooled_sd == 0:
        effect = 0.0 if difference == 0 else math.copysign(math.inf, difference)
    else:
        effect = difference / pooled_sd
    v1, v2 = ss1 / (n1 - 1) / n1, ss2 / (n2 - 1) / n2  # squared standard errors
    se2 = v1 + v2
    if se2 == 0:
        p_value = 1.0 if difference == 0 else 0.0
    else:
        df = se2 * se2 / (v1 * v1 / (n1 - 1) + v2 * v2 / (n2 - 1))
        p_value = _stats.student_t_two_sided(difference / math.sqrt(se2), df)
    return mean1, mean2, difference, effect, p_value
