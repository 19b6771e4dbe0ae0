"""Segment KPIs side by side: metrics, their confidence intervals, and :func:`compare`.

A metric says what to measure over a segment's members; :meth:`segkit.Engine.compare`
measures each metric for each segment and returns a :class:`Comparison`: one row
per segment, each metric a :class:`MetricValue` with a confidence interval and
``n``, the number of members that had a value (members with a missing value are
skipped).

=============================  ==================================================  ======================================
constructor                    value                                               interval
=============================  ==================================================  ======================================
``count()``                    the number of members                               exact (``low == high == value``)
``mean(attr)``                 the mean of a number attribute (CLV, ...)          Student t
``median(attr)``               the median (the mean of the two middle values)      order statistics, distribution-free
``sum(attr)``                  the total (referrals, revenue)                      ``n`` times the mean's interval
``rate(x)``                    share of true among members with a value (bool),   Wilson score
                               or share of members for whom rule ``x`` holds
``conversion(rule)``           ``rate`` by another name                            Wilson score
``churn(x)``                   ``rate`` by another name                            Wilson score
``nps(attr)``                  % promoters (9-10) minus % detractors (0-6)         normal, multinomial variance
``csat(attr, satisfied=...)``  share of responses within ``satisfied``             Wilson score
=============================  ==================================================  ======================================

Rates, churn and CSAT are fractions from 0 to 1; NPS runs from -100 to 100.
``docs/analysis.md`` explains every choice.

>>> import segkit as sk
>>> from segkit.analysis import metrics
>>> engine = sk.Engine(sk.Schema(attributes={"plan": "string", "ltv": "float"}))
>>> _ = engine.upsert_many({"a": {"plan": "pro", "ltv": 120.0}, "b": {"plan": "pro", "ltv": 80.0},
...                         "c": {"plan": "free", "ltv": 10.0}})
>>> _ = engine.define("pro", 'plan = "pro"')
>>> table = engine.compare(["pro"], [metrics.count(), metrics.mean("ltv")])
>>> table["pro", "mean(ltv)"].value, table["pro", "count"].value
(100.0, 2)

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import builtins
import math
import re
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final, Literal, overload

import attrs

from segkit._suggest import suggest
from segkit.analysis import _stats
from segkit.analysis._html import Columns, Frames, html_table, typed_columns
from segkit.dsl.check import check as _check_rule
from segkit.dsl.rule import Rule, RuleLike, as_rule
from segkit.errors import RuleSyntaxError, RuleTypeError, SchemaError, UnknownAttributeError
from segkit.index import Bitmap, Members
from segkit.schema import FieldType
from segkit.timeutil import ensure_aware

if TYPE_CHECKING:
    from segkit.engine import Engine
    from segkit.index import AttributeIndex
    from segkit.schema import Schema

__all__ = [
    "Comparison",
    "ComparisonRow",
    "Metric",
    "MetricValue",
    "churn",
    "compare",
    "conversion",
    "count",
    "csat",
    "mean",
    "median",
    "nps",
    "rate",
    "sum",
]

MetricKind = Literal["count", "mean", "median", "sum", "rate", "conversion", "churn", "nps", "csat"]
#: Kinds whose value is a share of members (0 to 1), with a Wilson interval.
PROPORTIONS: Final = frozenset({"rate", "conversion", "churn", "csat"})
#: Kinds computed from a number attribute.
NUMERIC: Final = frozenset({"mean", "median", "sum"})
#: NPS promoters score at least this much, detractors at most ``DETRACTOR``.
PROMOTER: Final = 9
DETRACTOR: Final = 6

_IDENTIFIER: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_INVALID_CHOICES: Final = ("raise", "skip")


# --- metrics ------------------------------------------------------------------------------


@attrs.frozen(repr=False)
class Metric:
    """What to measure over a segment's members; made by :func:`mean`, :func:`nps`, ...

    ``kind`` is the constructor's name; ``attribute`` the attribute read (``None``
    for :func:`count` and rule-based rates); ``rule`` the rule of a rule-based rate;
    ``label`` names the metric in a :class:`Comparison` (``"mean(ltv)"`` unless
    given). ``satisfied`` is CSAT's set of satisfied scores; ``invalid`` says what
    NPS does with scores that are not whole numbers from 0 to 10.

    >>> from segkit.analysis import metrics
    >>> metrics.mean("ltv")
    Metric('mean(ltv)')
    >>> m = metrics.rate("did purchase in last 30d")
    >>> m.kind, m.attribute, str(m.rule)
    ('rate', None, 'did purchase in last 30d')

    .. versionadded:: 0.1.0
    """

    kind: MetricKind
    attribute: str | None
    label: str
    rule: Rule | None = None
    satisfied: tuple[Any, ...] = ()
    invalid: Literal["raise", "skip"] = "raise"

    def __repr__(self) -> str:
        return f"Metric({self.label!r})"

    @property
    def is_proportion(self) -> bool:
        """True for rates, conversions, churn and CSAT: a share of members, from 0 to 1.

        >>> from segkit.analysis import metrics
        >>> metrics.csat("csat").is_proportion, metrics.nps("nps").is_proportion
        (True, False)
        """
        return self.kind in PROPORTIONS

    def check(self, schema: Schema) -> None:
        """Raise if this metric cannot be measured with ``schema``; return ``None`` if it can.

        An unknown attribute raises :class:`~segkit.UnknownAttributeError` (with a
        suggestion); an attribute of the wrong type, or CSAT ``satisfied`` values of
        the wrong type, raise :class:`~segkit.RuleTypeError`; a rule is type-checked
        like every rule.

        >>> import segkit as sk
        >>> from segkit.analysis import metrics
        >>> schema = sk.Schema(attributes={"ltv": "float", "country": "string"})
        >>> metrics.mean("ltv").check(schema)
        >>> metrics.mean("country").check(schema)
        Traceback (most recent call last):
        ...
        segkit.errors.RuleTypeError: mean(country): needs a number (int or float) attribute, but 'country' is a string attribute
        >>> metrics.sum("ltvv").check(schema)
        Traceback (most recent call last):
        ...
        segkit.errors.UnknownAttributeError: sum(ltvv): unknown attribute 'ltvv'
          hint: did you mean 'ltv'?
        """
        if self.rule is not None:
            _check_rule(self.rule, schema)
            return
        name = self.attribute
        if name is None:  # count()
            return
        ftype = schema.attribute_type(name)
        if ftype is None:
            raise UnknownAttributeError(
                f"{self.label}: unknown attribute {name!r}",
                suggestion=suggest(name, schema.attributes),
            )
        kind = self.kind
        if kind in NUMERIC:
            if not ftype.is_numeric:
                hint = (
                    f" (use rate({name!r}) for the share of true values)"
                    if ftype.value == "bool"
                    else ""
                )
                raise self._type_error("a number (int or float) attribute", name, ftype, hint)
        elif kind == "nps":
            if not ftype.is_numeric:
                raise self._type_error("an int or float attribute of 0-10 scores", name, ftype)
        elif kind == "csat":
            if ftype not in (FieldType.INT, FieldType.FLOAT, FieldType.STRING):
                raise self._type_error("an int, float or string attribute", name, ftype)
            for value in self.satisfied:
                if not _fits(value, ftype):
                    raise RuleTypeError(
                        f"{self.label}: satisfied values must be "
                        f"{'numbers' if ftype.is_numeric else 'strings'} for {ftype} "
                        f"attribute {name!r}, got {value!r} ({type(value).__name__})"
                    )
        elif ftype is not FieldType.BOOL:  # rate, conversion, churn
            raise self._type_error("a bool attribute or a rule", name, ftype)

    def _type_error(self, needs: str, name: str, ftype: FieldType, hint: str = "") -> RuleTypeError:
        return RuleTypeError(
            f"{self.label}: needs {needs}, but {name!r} is {_article(ftype)} {ftype} attribute{hint}"
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict: kind, label, and the attribute or rule (and CSAT/NPS options).

        >>> from segkit.analysis import metrics
        >>> metrics.csat("csat").to_dict()
        {'kind': 'csat', 'label': 'csat(csat)', 'attribute': 'csat', 'rule': None, 'satisfied': [4, 5]}
        """
        out: dict[str, Any] = {
            "kind": self.kind,
            "label": self.label,
            "attribute": self.attribute,
            "rule": None if self.rule is None else str(self.rule),
        }
        if self.kind == "csat":
            out["satisfied"] = list(self.satisfied)
        if self.kind == "nps":
            out["invalid"] = self.invalid
        return out


def _article(ftype: FieldType) -> str:
    return "an" if ftype.value[0] in "aeiou" else "a"


def _fits(value: object, ftype: FieldType) -> bool:
    if ftype is FieldType.STRING:
        return isinstance(value, str)
    if ftype is FieldType.INT:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _name(function: str, attribute: object) -> str:
    if not isinstance(attribute, str) or not attribute:
        raise TypeError(f"{function}() needs an attribute name, got {attribute!r}")
    return attribute


def _label(label: object, default: str) -> str:
    if label is None:
        return default
    if not isinstance(label, str) or not label:
        raise TypeError(f"label must be a non-empty string, got {label!r}")
    return label


def count(*, label: str | None = None) -> Metric:
    """The number of members; exact, so its interval is the value itself.

    >>> from segkit.analysis import metrics
    >>> metrics.count(), metrics.count(label="members")
    (Metric('count'), Metric('members'))

    .. versionadded:: 0.1.0
    """
    return Metric("count", None, _label(label, "count"))


def mean(attribute: str, *, label: str | None = None) -> Metric:
    """The mean of a number attribute (e.g. CLV), with a Student t interval.

    ``value ± t(n - 1) · s / sqrt(n)`` with the sample standard deviation ``s``; no
    interval (``low`` and ``high`` are ``None``) for a single value.

    >>> from segkit.analysis import metrics
    >>> metrics.mean("ltv").label
    'mean(ltv)'

    .. versionadded:: 0.1.0
    """
    name = _name("mean", attribute)
    return Metric("mean", name, _label(label, f"mean({name})"))


def median(attribute: str, *, label: str | None = None) -> Metric:
    """The median of a number attribute, with a distribution-free interval.

    The median is the middle value, or the mean of the two middle values (as
    :func:`statistics.median`). The interval is ``[x_(j), x_(n+1-j)]`` between two
    order statistics, ``j`` the largest rank whose binomial tail
    ``P(Binomial(n, 1/2) <= j - 1)`` is at most ``(1 - confidence) / 2``; with fewer
    than 6 values at 95% no such rank exists and ``low``/``high`` are ``None``.

    >>> from segkit.analysis import metrics
    >>> metrics.median("ltv")
    Metric('median(ltv)')

    .. versionadded:: 0.1.0
    """
    name = _name("median", attribute)
    return Metric("median", name, _label(label, f"median({name})"))


def sum(attribute: str, *, label: str | None = None) -> Metric:
    """The total of a number attribute over the members with a value (referrals, revenue).

    The interval is ``n`` times the mean's Student t interval: the uncertainty of
    the total if the members were a sample of that size from a larger population.

    >>> from segkit.analysis import metrics
    >>> metrics.sum("referrals").label
    'sum(referrals)'

    .. versionadded:: 0.1.0
    """
    name = _name("sum", attribute)
    return Metric("sum", name, _label(label, f"sum({name})"))


def _rate(kind: MetricKind, x: object, label: str | None) -> Metric:
    if isinstance(x, str) and _IDENTIFIER.fullmatch(x):
        return Metric(kind, x, _label(label, f"{kind}({x})"))
    if isinstance(x, str) and not x.strip():
        raise TypeError(f"{kind}() needs a bool attribute name or a rule, got {x!r}")
    try:
        rule = as_rule(x)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(
            f"{kind}() needs a bool attribute name or a rule, got {type(x).__name__}"
        ) from None
    except RuleSyntaxError:
        if isinstance(x, str) and not any(ch.isspace() for ch in x):
            # not a rule, and one word: an attribute name the rule language cannot spell
            return Metric(kind, x, _label(label, f"{kind}({x})"))
        raise
    return Metric(kind, None, _label(label, f"{kind}({rule})"), rule)


def rate(x: RuleLike, *, label: str | None = None) -> Metric:
    """A share of members, with a Wilson score interval.

    ``x`` is either the name of a bool attribute (the share of ``true`` among the
    members with a value) or a rule (the share of all members for whom the rule
    holds, evaluated by the engine at the comparison's ``now``; a member missing a
    value the rule reads counts as "does not hold").

    >>> from segkit.analysis import metrics
    >>> metrics.rate("is_customer").attribute
    'is_customer'
    >>> metrics.rate("did purchase in last 30d").label
    'rate(did purchase in last 30d)'

    .. versionadded:: 0.1.0
    """
    return _rate("rate", x, label)


def conversion(rule: RuleLike, *, label: str | None = None) -> Metric:
    """A conversion rate: :func:`rate` labelled ``conversion(...)``.

    >>> from segkit.analysis import metrics
    >>> metrics.conversion("did purchase in last 30d")
    Metric('conversion(did purchase in last 30d)')

    .. versionadded:: 0.1.0
    """
    return _rate("conversion", rule, label)


def churn(x: RuleLike, *, label: str | None = None) -> Metric:
    """A churn rate: :func:`rate` labelled ``churn(...)`` (a bool attribute or a rule).

    >>> from segkit.analysis import metrics
    >>> metrics.churn("churned"), metrics.churn("not did login in last 90d")
    (Metric('churn(churned)'), Metric('churn(not did login in last 90d)'))

    .. versionadded:: 0.1.0
    """
    return _rate("churn", x, label)


def nps(
    attribute: str, *, invalid: Literal["raise", "skip"] = "raise", label: str | None = None
) -> Metric:
    """The Net Promoter Score of 0-10 answers: % promoters (9-10) minus % detractors (0-6).

    The score runs from -100 to 100. Its interval is the normal approximation with
    the multinomial variance of the promoter and detractor shares,
    ``100 · z · sqrt((p + d - (p - d)²) / n)``, clamped to -100..100.

    A value that is not a whole number from 0 to 10 (``7.5``, ``11``, ``-1``) is not
    an NPS answer: by default it raises :class:`~segkit.SchemaError` naming the
    member; ``invalid="skip"`` leaves such values out like missing ones.

    >>> from segkit.analysis import metrics
    >>> metrics.nps("nps_score"), metrics.nps("nps_score", invalid="skip").invalid
    (Metric('nps(nps_score)'), 'skip')

    .. versionadded:: 0.1.0
    """
    name = _name("nps", attribute)
    if invalid not in _INVALID_CHOICES:
        raise ValueError(f"invalid must be 'raise' or 'skip', got {invalid!r}")
    return Metric("nps", name, _label(label, f"nps({name})"), invalid=invalid)


def csat(attribute: str, *, satisfied: Iterable[Any] = (4, 5), label: str | None = None) -> Metric:
    """Customer satisfaction: the share of answers within ``satisfied`` (default 4 and 5).

    The attribute holds the answers (int, float or string); the value is a share
    from 0 to 1 of the members with an answer, with a Wilson score interval.

    >>> from segkit.analysis import metrics
    >>> metrics.csat("csat"), metrics.csat("csat", satisfied=[5])
    (Metric('csat(csat)'), Metric('csat(csat, satisfied=[5])'))

    .. versionadded:: 0.1.0
    """
    name = _name("csat", attribute)
    if isinstance(satisfied, (str, bytes)) or not isinstance(satisfied, Iterable):
        raise TypeError(f"satisfied must be a list of values, got {satisfied!r}")
    values = tuple(dict.fromkeys(satisfied))
    if not values:
        raise ValueError("satisfied must name at least one value")
    for value in values:
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise TypeError(f"satisfied values must be numbers or strings, got {value!r}")
    default = f"csat({name})" if values == (4, 5) else f"csat({name}, satisfied={list(values)})"
    return Metric("csat", name, _label(label, default), satisfied=values)


# --- results ------------------------------------------------------------------------------


@attrs.frozen
class MetricValue:
    """One metric measured over one segment.

    ``value`` is ``None`` when no member had a value (``n == 0``); ``low`` and
    ``high`` bound the confidence interval, and are ``None`` when it cannot be
    computed (a mean of one value, a median of too few).

    >>> v = MetricValue(0.25, 0.1, 0.5, 20)
    >>> str(v), v.to_dict()
    ('0.25 [0.1, 0.5] n=20', {'value': 0.25, 'low': 0.1, 'high': 0.5, 'n': 20})

    .. versionadded:: 0.1.0
    """

    value: float | None
    low: float | None
    high: float | None
    n: int

    def __str__(self) -> str:
        return _show(self, None)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict.

        >>> MetricValue(None, None, None, 0).to_dict()
        {'value': None, 'low': None, 'high': None, 'n': 0}
        """
        return {"value": self.value, "low": self.low, "high": self.high, "n": self.n}


def _number(x: float) -> str:
    if isinstance(x, int):
        return f"{x:,}"
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    return f"{x:.4g}"


def _show(v: MetricValue, metric: Metric | None) -> str:
    if v.value is None:
        return f"- n={v.n}"
    kind = None if metric is None else metric.kind
    fmt: Callable[[float], str]
    if metric is not None and metric.is_proportion:
        fmt = "{:.1%}".format
    elif kind == "nps":
        fmt = "{:.1f}".format
    else:
        fmt = _number
    if kind == "count":
        return fmt(v.value)
    interval = "" if v.low is None or v.high is None else f" [{fmt(v.low)}, {fmt(v.high)}]"
    return f"{fmt(v.value)}{interval} n={v.n}"


@attrs.frozen
class ComparisonRow:
    """One segment's metrics in a :class:`Comparison`.

    ``values`` maps each metric's label to its :class:`MetricValue`, in the order the
    metrics were given; ``row[label]`` or ``row[metric]`` reads one. ``members`` are
    the segment's members as compared.

    >>> import segkit as sk
    >>> from segkit.analysis import metrics
    >>> engine = sk.Engine(sk.Schema(attributes={"x": "int"}))
    >>> _ = engine.upsert_many({"a": {"x": 1}, "b": {"x": 3}})
    >>> _ = engine.define("all", "x is known")
    >>> row = engine.compare(["all"], [metrics.mean("x")])["all"]
    >>> row.size, row["mean(x)"].value, row.members
    (2, 2.0, Members(2: 'a', 'b'))

    .. versionadded:: 0.1.0
    """

    segment: str
    size: int
    values: Mapping[str, MetricValue]
    members: Members = attrs.field(repr=False, eq=False)

    def __getitem__(self, metric: str | Metric) -> MetricValue:
        label = metric.label if isinstance(metric, Metric) else metric
        try:
            return self.values[label]
        except KeyError:
            hint = suggest(label, self.values) if isinstance(label, str) else None
            extra = f" (did you mean {hint!r}?)" if hint else ""
            raise KeyError(f"no metric {label!r} in this comparison{extra}") from None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict: segment, size, and each metric's value by label.

        >>> import segkit as sk
        >>> from segkit.analysis import metrics
        >>> engine = sk.Engine(sk.Schema(attributes={"x": "int"}))
        >>> _ = engine.upsert("a", {"x": 2})
        >>> _ = engine.define("twos", "x = 2")
        >>> engine.compare(["twos"], [metrics.sum("x")])["twos"].to_dict()
        {'segment': 'twos', 'size': 1, 'values': {'sum(x)': {'value': 2, 'low': None, 'high': None, 'n': 1}}}
        """
        return {
            "segment": self.segment,
            "size": self.size,
            "values": {label: v.to_dict() for label, v in self.values.items()},
        }


@attrs.frozen
class Comparison(Frames):
    """Metrics per segment, from :meth:`segkit.Engine.compare`: one row per segment.

    ``comparison["a"]`` is segment ``a``'s :class:`ComparisonRow`;
    ``comparison["a", "mean(ltv)"]`` (or ``comparison["a", metric]``) one
    :class:`MetricValue`. ``now`` is the time rules were evaluated at; ``repr``
    shows the table (a notebook, in HTML); :meth:`to_pandas` and :meth:`to_polars`
    give one row per segment, with the value, ``low``, ``high`` and ``n`` of each
    metric.

    >>> import segkit as sk
    >>> from segkit.analysis import metrics
    >>> engine = sk.Engine(sk.Schema(attributes={"plan": "string", "nps": "int"}))
    >>> _ = engine.upsert_many({f"c{i}": {"plan": "pro", "nps": [10, 9, 8, 3][i % 4]} for i in range(20)})
    >>> _ = engine.upsert_many({f"d{i}": {"plan": "free", "nps": i % 11} for i in range(20)})
    >>> _ = engine.define("pro", 'plan = "pro"')
    >>> _ = engine.define("free", 'plan = "free"')
    >>> table = engine.compare(["pro", "free"], [metrics.count(), metrics.nps("nps")])
    >>> table
    Comparison of 2 segments (95% confidence)
      segment  members  count  nps(nps)
      pro           20  20     25.0 [-11.3, 61.3] n=20
      free          20  20     -60.0 [-89.1, -30.9] n=20
    >>> table["free", "nps(nps)"].value
    -60.0

    .. versionadded:: 0.1.0
    """

    segments: tuple[str, ...]
    metrics: tuple[Metric, ...]
    rows: tuple[ComparisonRow, ...]
    confidence: float
    now: datetime

    @property
    def labels(self) -> list[str]:
        """The metrics' labels, in order.

        >>> import segkit as sk
        >>> from segkit.analysis import metrics
        >>> engine = sk.Engine(sk.Schema(attributes={"x": "int"}))
        >>> _ = engine.define("big", "x > 3")
        >>> engine.compare(["big"], [metrics.count(), metrics.mean("x")]).labels
        ['count', 'mean(x)']
        """
        return [m.label for m in self.metrics]

    @overload
    def __getitem__(self, key: str) -> ComparisonRow: ...

    @overload
    def __getitem__(self, key: tuple[str, str | Metric]) -> MetricValue: ...

    def __getitem__(self, key: str | tuple[str, str | Metric]) -> ComparisonRow | MetricValue:
        if isinstance(key, tuple):
            segment, metric = key
            return self._row(segment)[metric]
        return self._row(key)

    def _row(self, segment: str) -> ComparisonRow:
        for row in self.rows:
            if row.segment == segment:
                return row
        hint = suggest(segment, self.segments) if isinstance(segment, str) else None
        extra = f" (did you mean {hint!r}?)" if hint else ""
        raise KeyError(f"no segment {segment!r} in this comparison{extra}")

    def __iter__(self) -> Iterator[ComparisonRow]:
        return iter(self.rows)

    def __len__(self) -> int:
        return len(self.rows)

    def members(self, segment: str) -> Members:
        """The members of ``segment`` as compared.

        >>> import segkit as sk
        >>> from segkit.analysis import metrics
        >>> engine = sk.Engine(sk.Schema(attributes={"x": "int"}))
        >>> _ = engine.upsert("a", {"x": 1})
        >>> _ = engine.define("ones", "x = 1")
        >>> engine.compare(["ones"], [metrics.count()]).members("ones")
        Members(1: 'a')
        """
        return self._row(segment).members

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict: the metrics, the confidence, ``now`` (ISO 8601) and the rows.

        >>> import segkit as sk
        >>> from segkit.analysis import metrics
        >>> engine = sk.Engine(sk.Schema(attributes={"x": "int"}))
        >>> _ = engine.define("none", "x > 3")
        >>> d = engine.compare(["none"], [metrics.mean("x")]).to_dict()
        >>> d["rows"]
        [{'segment': 'none', 'size': 0, 'values': {'mean(x)': {'value': None, 'low': None, 'high': None, 'n': 0}}}]
        """
        return {
            "confidence": self.confidence,
            "now": self.now.isoformat(),
            "metrics": [m.to_dict() for m in self.metrics],
            "rows": [row.to_dict() for row in self.rows],
        }

    def _display(self) -> tuple[str, list[str], list[list[str]]]:
        """The title, the header and the cells of :meth:`table`."""
        header = ["segment", "members", *self.labels]
        cells = [
            [row.segment, f"{row.size:,}", *(_show(row.values[m.label], m) for m in self.metrics)]
            for row in self.rows
        ]
        title = (
            f"Comparison of {len(self.rows)} segment{'s' if len(self.rows) != 1 else ''}"
            f" ({_percent(self.confidence)} confidence)"
        )
        return title, header, cells

    def table(self) -> str:
        """The comparison as a plain-text table (what ``repr`` shows): one line per segment.

        Each cell is the value, the interval in brackets (when there is one) and ``n``;
        rates are shown as percentages, a missing value as ``-``.

        >>> import segkit as sk
        >>> from segkit.analysis import metrics
        >>> engine = sk.Engine(sk.Schema(attributes={"ok": "bool"}))
        >>> _ = engine.upsert_many({"a": {"ok": True}, "b": {"ok": False}})
        >>> _ = engine.define("known", "ok is known")
        >>> print(engine.compare(["known"], [metrics.rate("ok")]).table())
        Comparison of 1 segment (95% confidence)
          segment  members  rate(ok)
          known          2  50.0% [9.5%, 90.5%] n=2
        """
        title, header, lines = self._display()
        widths = [max(len(cells[i]) for cells in [header, *lines]) for i in range(len(header))]

        def render(cells: Sequence[str]) -> str:
            parts = [
                cell.rjust(width) if i == 1 else cell.ljust(width)
                for i, (cell, width) in enumerate(zip(cells, widths, strict=True))
            ]
            return ("  " + "  ".join(parts)).rstrip()

        return "\n".join([title, render(header), *(render(cells) for cells in lines)])

    def __repr__(self) -> str:
        return self.table()

    def _repr_html_(self) -> str:
        """The notebook view: :meth:`table` as an HTML table."""
        title, header, cells = self._display()
        columns = [(name, "r" if i == 1 else "l") for i, name in enumerate(header)]
        return html_table([title], columns, cells)

    def _columns(self) -> Columns:
        """One row per segment: its size, then per metric its value, ``low``, ``high`` and ``n``.

        A metric labelled ``mean(ltv)`` gives the columns ``mean(ltv)``,
        ``mean(ltv)_low``, ``mean(ltv)_high`` and ``mean(ltv)_n``; a missing value
        or bound is missing (NaN in pandas, null in polars).
        """
        rows = self.rows
        items: list[tuple[str, str, list[Any]]] = [
            ("segment", "str", [row.segment for row in rows]),
            ("size", "int", [row.size for row in rows]),
        ]
        for label in self.labels:
            values = [row.values[label] for row in rows]
            items += [
                (label, "float", [v.value for v in values]),
                (f"{label}_low", "float", [v.low for v in values]),
                (f"{label}_high", "float", [v.high for v in values]),
                (f"{label}_n", "int", [v.n for v in values]),
            ]
        return typed_columns(items)


def _percent(confidence: float) -> str:
    return f"{confidence * 100:.10g}%"


# --- measuring ----------------------------------------------------------------------------


class _Prepared:
    """A metric checked against an engine, with what it reads."""

    __slots__ = ("hits", "index", "metric", "satisfied")

    def __init__(self, engine: Engine, metric: Metric, when: datetime) -> None:
        metric.check(engine.schema)
        self.metric = metric
        self.index: AttributeIndex | None = (
            None if metric.attribute is None else engine._attr_index[metric.attribute]
        )
        # a rule-based rate: the members for whom the rule holds (also validates references)
        self.hits: Bitmap | None = (
            None if metric.rule is None else Bitmap(engine.query(metric.rule, when).ids)
        )
        self.satisfied = frozenset(metric.satisfied)

    def counted(self, ids: Bitmap) -> Bitmap:
        """The members among ``ids`` that have a value (before NPS validity)."""
        return ids if self.index is None else ids & self.index.known

    def scorer(self, key_of: Callable[[int], str]) -> Callable[[int], float | None]:
        """A function from a member id to its per-member score, ``None`` when missing.

        Means read the value; rates score 1 or 0; CSAT 1 or 0; NPS +100, 0 or -100 (so
        the mean score is the NPS). ``key_of`` names a member in NPS errors.
        """
        metric, index, hits = self.metric, self.index, self.hits
        if hits is not None:
            return lambda pid: 1 if pid in hits else 0
        assert index is not None
        get = index.get
        kind = metric.kind
        if kind == "mean":
            return get
        if kind == "csat":
            satisfied = self.satisfied

            def csat_score(pid: int) -> float | None:
                v = get(pid)
                return None if v is None else (1 if v in satisfied else 0)

            return csat_score
        if kind == "nps":
            check = self._nps_check(key_of)

            def nps_score(pid: int) -> float | None:
                v = get(pid)
                if v is None or not check(pid, v):
                    return None
                return 100 if v >= PROMOTER else (-100 if v <= DETRACTOR else 0)

            return nps_score

        def bool_score(pid: int) -> float | None:
            v = get(pid)
            return None if v is None else (1 if v else 0)

        return bool_score

    def _nps_check(self, key_of: Callable[[int], str]) -> Callable[[int, Any], bool]:
        metric = self.metric
        skip = metric.invalid == "skip"

        def valid(pid: int, v: Any) -> bool:
            if 0 <= v <= 10 and v == int(v):
                return True
            if skip:
                return False
            key = key_of(pid)
            raise SchemaError(
                f"{metric.label}: member {key!r} has {v!r}, but an NPS answer is a whole "
                "number from 0 to 10 (pass invalid='skip' to leave such values out)",
                key=key,
                field=metric.attribute,
                value=v,
                expected="a whole number from 0 to 10",
            )

        return valid

    def measure(self, ids: Bitmap, confidence: float, key_of: Callable[[int], str]) -> MetricValue:
        """This metric over the members ``ids``."""
        metric, index = self.metric, self.index
        kind = metric.kind
        if kind == "count":
            size = len(ids)
            return MetricValue(size, size, size, size)
        if self.hits is not None:
            return _proportion(ids.intersection_cardinality(self.hits), len(ids), confidence)
        assert index is not None
        if kind in ("rate", "conversion", "churn"):
            n = ids.intersection_cardinality(index.known)
            return _proportion(ids.intersection_cardinality(index.equal(True)), n, confidence)
        if kind == "csat":
            n = ids.intersection_cardinality(index.known)
            hits = builtins.sum(
                ids.intersection_cardinality(index.equal(v)) for v in self.satisfied
            )
            return _proportion(hits, n, confidence)
        get = index.get
        counted = ids & index.known
        values = [get(pid) for pid in counted]
        if kind == "nps":
            return _nps(values, counted, self._nps_check(key_of), confidence)
        if kind == "median":
            return _median(values, confidence)
        return _mean_or_sum(values, kind == "sum", confidence)


def _proportion(successes: int, n: int, confidence: float) -> MetricValue:
    if n == 0:
        return MetricValue(None, None, None, 0)
    low, high = _stats.wilson_interval(successes, n, confidence)
    return MetricValue(successes / n, low, high, n)


def _total(values: Sequence[Any]) -> float:
    """The exact sum of ints; the correctly rounded sum of floats."""
    if all(type(v) is int for v in values):
        return int(builtins.sum(values))
    return math.fsum(values)


def _mean_or_sum(values: Sequence[float], as_sum: bool, confidence: float) -> MetricValue:
    n = len(values)
    if n == 0:
        return MetricValue(None, None, None, 0)
    total = _total(values)
    m = total / n
    stdev = math.sqrt(math.fsum((x - m) ** 2 for x in values) / (n - 1)) if n > 1 else 0.0
    interval = _stats.mean_interval(m, stdev, n, confidence)
    if as_sum:
        if interval is None:
            return MetricValue(total, None, None, n)
        return MetricValue(total, n * interval[0], n * interval[1], n)
    if interval is None:
        return MetricValue(m, None, None, n)
    return MetricValue(m, interval[0], interval[1], n)


def _median(values: list[Any], confidence: float) -> MetricValue:
    n = len(values)
    if n == 0:
        return MetricValue(None, None, None, 0)
    values.sort()
    mid = n // 2
    value = values[mid] if n % 2 else (values[mid - 1] + values[mid]) / 2
    interval = _stats.median_interval(values, confidence)
    if interval is None:
        return MetricValue(value, None, None, n)
    return MetricValue(value, interval[0], interval[1], n)


def _nps(
    values: Sequence[Any],
    ids: Iterable[int],
    valid: Callable[[int, Any], bool],
    confidence: float,
) -> MetricValue:
    promoters = detractors = n = 0
    for pid, v in zip(ids, values, strict=True):
        if not valid(pid, v):
            continue
        n += 1
        if v >= PROMOTER:
            promoters += 1
        elif v <= DETRACTOR:
            detractors += 1
    if n == 0:
        return MetricValue(None, None, None, 0)
    low, high = _stats.nps_interval(promoters, detractors, n, confidence)
    return MetricValue(100 * (promoters - detractors) / n, low, high, n)


# --- compare ------------------------------------------------------------------------------


def _segment_ids(engine: Engine, name: str, when: datetime | None) -> Bitmap:
    """Segment ``name``'s members; with ``when``, a time-relative rule evaluated at ``when``.

    >>> import segkit as sk
    >>> engine = sk.Engine(sk.Schema(attributes={"x": "int"}))
    >>> _ = engine.upsert("a", {"x": 1})
    >>> _ = engine.define("ones", "x = 1")
    >>> list(_segment_ids(engine, "ones", None))
    [0]
    """
    seg = engine._segment(name)
    rule = seg.rule
    if when is not None and seg.plan is not None and rule is not None and rule.is_time_relative:
        return seg.plan.execute(engine, when)
    return seg.ids


def _check_names(names: object) -> list[str]:
    """``names`` as a non-empty list of distinct strings, or a precise error.

    >>> _check_names(("a", "b"))
    ['a', 'b']
    >>> _check_names("a")
    Traceback (most recent call last):
    ...
    TypeError: names must be a list of segment names, not a single string (wrap it in a list)
    """
    if isinstance(names, str):
        raise TypeError(
            "names must be a list of segment names, not a single string (wrap it in a list)"
        )
    if not isinstance(names, Iterable):
        raise TypeError(f"names must be a list of segment names, got {type(names).__name__}")
    out = list(names)
    if not out:
        raise ValueError("compare needs at least one segment name")
    seen: set[str] = set()
    for name in out:
        if not isinstance(name, str):
            raise TypeError(f"segment names are strings, got {name!r}")
        if name in seen:
            raise ValueError(f"segment {name!r} is named twice")
        seen.add(name)
    return out


def _check_metrics(metrics: object) -> list[Metric]:
    """``metrics`` as a non-empty list of :class:`Metric` with distinct labels.

    >>> _check_metrics([mean("ltv"), mean("ltv")])
    Traceback (most recent call last):
    ...
    ValueError: two metrics are labelled 'mean(ltv)': pass label= to tell them apart
    """
    if isinstance(metrics, Metric):
        return [metrics]
    if isinstance(metrics, str) or not isinstance(metrics, Collection):
        raise TypeError(
            "metrics must be a list of metrics such as [segkit.metrics.mean('ltv')], "
            f"got {metrics!r}"
        )
    out = list(metrics)
    if not out:
        raise ValueError("compare needs at least one metric")
    labels: set[str] = set()
    for i, metric in enumerate(out):
        if not isinstance(metric, Metric):
            raise TypeError(
                f"metrics[{i}] must be a metric such as segkit.metrics.mean('ltv'), got {metric!r}"
            )
        if metric.label in labels:
            raise ValueError(
                f"two metrics are labelled {metric.label!r}: pass label= to tell them apart"
            )
        labels.add(metric.label)
    return out


def compare(
    engine: Engine,
    names: Sequence[str],
    metrics: Sequence[Metric],
    *,
    now: datetime | None = None,
    confidence: float = 0.95,
) -> Comparison:
    """Measure each metric over each segment (what :meth:`segkit.Engine.compare` does).

    Everything is checked before anything is measured: the names (a non-empty list
    of distinct defined segments), the metrics (a non-empty list with distinct
    labels, each valid for the schema), ``confidence`` and ``now``. Members come from
    the segments' stored memberships; with ``now``, a time-relative segment is
    evaluated at ``now`` for this comparison (nothing is stored). Rule-based rates are
    evaluated at ``now`` (default: the engine's clock). The work is one pass over each
    segment's members per metric; counts and rates only intersect bitmaps.

    >>> import segkit as sk
    >>> from segkit.analysis import metrics
    >>> engine = sk.Engine(sk.Schema(attributes={"x": "int"}))
    >>> _ = engine.define("big", "x > 3")
    >>> compare(engine, ["big"], [metrics.count()])["big", "count"]
    MetricValue(value=0, low=0, high=0, n=0)
    """
    chosen = _check_names(names)
    measured = _check_metrics(metrics)
    level = _stats.check_confidence(confidence)
    when = engine.now() if now is None else ensure_aware(now, engine.schema.tz, "now")
    members = {name: _segment_ids(engine, name, None if now is None else when) for name in chosen}
    prepared = [_Prepared(engine, metric, when) for metric in measured]
    key_of = engine._ids.key_of
    rows = []
    for name in chosen:
        ids = members[name]
        values = {p.metric.label: p.measure(ids, level, key_of) for p in prepared}
        rows.append(ComparisonRow(name, len(ids), values, engine._members(ids.copy())))
    return Comparison(tuple(chosen), tuple(measured), tuple(rows), level, when)
