"""A Python builder for rules: the same AST as the text, without string assembly.

>>> import segkit as sk
>>> rule = sk.attr("age").between(29, 44) & sk.did("cart_abandoned").times(">=", 3).in_last("30d")
>>> str(rule)
'age between 29 and 44 and did cart_abandoned >= 3 times in last 30d'
>>> rule == sk.parse(str(rule))
True

Comparison operators on :func:`attr` build rules (``sk.attr("age") >= 18``); so do
``==`` and ``!=``, which is why an :class:`AttrRef` is not hashable. Combine with
``&`` (and), ``|`` (or) and ``~`` (not).

.. versionadded:: 0.1.0
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, timedelta
from typing import Any

import attrs

from segkit.dsl import ast
from segkit.dsl.parser import parse_expr
from segkit.dsl.rule import Rule, RuleLike, as_rule
from segkit.hashing import BUCKETS
from segkit.timeutil import Duration

__all__ = [
    "AggregateBuilder",
    "AttrRef",
    "DidBuilder",
    "attr",
    "avg_of",
    "bucket",
    "count_of",
    "did",
    "in_segment",
    "max_of",
    "min_of",
    "sum_of",
]

DurationLike = Duration | str | timedelta
TimeLike = date | datetime


def _check_value(value: Any) -> ast.Value:
    if isinstance(value, (str, int, float, date)):
        if (isinstance(value, float) and value != value) or value in (float("inf"), float("-inf")):
            raise ValueError(f"rule values must be finite numbers, got {value!r}")
        return value
    raise TypeError(
        f"rule values are str, int, float, bool, date or datetime; got {type(value).__name__}"
    )


def _values(values: Iterable[Any]) -> tuple[ast.Value, ...]:
    if isinstance(values, (str, bytes)):
        raise TypeError("expected a list of values, got a single string (wrap it in a list)")
    return tuple(_check_value(v) for v in values)


def _where(where: RuleLike | None) -> ast.Expr | None:
    """A ``where`` clause: text is parsed as conditions on the event's properties."""
    if where is None:
        return None
    if isinstance(where, str):
        return parse_expr(where)
    return as_rule(where).expr


def _window(
    in_last: DurationLike | None, between: tuple[TimeLike, TimeLike] | None
) -> ast.Window | None:
    if in_last is not None and between is not None:
        raise ValueError("give either in_last or between, not both")
    if in_last is not None:
        return ast.LastWindow(Duration.coerce(in_last))
    if between is not None:
        start, end = between
        return ast.BetweenWindow(start, end)
    return None


class AttrRef:
    """A reference to an attribute (or, inside ``where``, an event property).

    >>> import segkit as sk
    >>> str(sk.attr("country").is_in(["FR", "DE"]) | (sk.attr("age") < 18))
    'country in ["FR", "DE"] or age < 18'
    >>> str(sk.attr("email").icontains("@example.com"))
    'email icontains "@example.com"'

    .. versionadded:: 0.1.0
    """

    __slots__ = ("name",)
    __hash__ = None  # type: ignore[assignment]

    def __init__(self, name: str) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError("an attribute name must be a non-empty string")
        self.name = name

    def __repr__(self) -> str:
        return f"attr({self.name!r})"

    def _cmp(self, op: str, value: Any) -> Rule:
        return Rule(ast.Compare(self.name, op, _check_value(value)))

    def __eq__(self, value: Any) -> Rule:  # type: ignore[override]
        return self._cmp("=", value)

    def __ne__(self, value: Any) -> Rule:  # type: ignore[override]
        return self._cmp("!=", value)

    def __lt__(self, value: Any) -> Rule:
        return self._cmp("<", value)

    def __le__(self, value: Any) -> Rule:
        return self._cmp("<=", value)

    def __gt__(self, value: Any) -> Rule:
        return self._cmp(">", value)

    def __ge__(self, value: Any) -> Rule:
        return self._cmp(">=", value)

    def eq(self, value: Any) -> Rule:
        """``name = value`` (same as ``==``)."""
        return self._cmp("=", value)

    def ne(self, value: Any) -> Rule:
        """``name != value``: known and different."""
        return self._cmp("!=", value)

    def is_in(self, values: Iterable[Any]) -> Rule:
        """``name in [values]``."""
        return Rule(ast.InList(self.name, _values(values)))

    def not_in(self, values: Iterable[Any]) -> Rule:
        """``name not in [values]``: known and none of them."""
        return Rule(ast.InList(self.name, _values(values), negated=True))

    def between(self, low: Any, high: Any) -> Rule:
        """``name between low and high`` (both ends included)."""
        return Rule(ast.Between(self.name, _check_value(low), _check_value(high)))

    def not_between(self, low: Any, high: Any) -> Rule:
        """``name not between low and high``: known and outside."""
        return Rule(ast.Between(self.name, _check_value(low), _check_value(high), negated=True))

    def _string(self, op: str, text: str, *, negated: bool = False, ci: bool = False) -> Rule:
        if not isinstance(text, str):
            raise TypeError(f"{op} takes a string, got {type(text).__name__}")
        return Rule(ast.StringOp(self.name, op, text, negated, ci))

    def contains(self, text: str) -> Rule:
        """``name contains "text"`` (case-sensitive)."""
        return self._string("contains", text)

    def icontains(self, text: str) -> Rule:
        """``name icontains "text"`` (case-insensitive, :meth:`str.casefold`)."""
        return self._string("contains", text, ci=True)

    def not_contains(self, text: str) -> Rule:
        """``name not contains "text"``: known and not containing it."""
        return self._string("contains", text, negated=True)

    def starts_with(self, text: str) -> Rule:
        """``name starts_with "text"``."""
        return self._string("starts_with", text)

    def istarts_with(self, text: str) -> Rule:
        """``name istarts_with "text"``."""
        return self._string("starts_with", text, ci=True)

    def ends_with(self, text: str) -> Rule:
        """``name ends_with "text"``."""
        return self._string("ends_with", text)

    def iends_with(self, text: str) -> Rule:
        """``name iends_with "text"``."""
        return self._string("ends_with", text, ci=True)

    def matches(self, pattern: str, flags: str = "") -> Rule:
        """``name matches /pattern/flags`` (validated like rule text).

        >>> import segkit as sk
        >>> str(sk.attr("email").matches("@(gmail|yahoo)\\\\.com$", "i"))
        'email matches /@(gmail|yahoo)\\\\.com$/i'
        """
        node = ast.Matches(self.name, pattern, "".join(f for f in ast.REGEX_FLAGS if f in flags))
        if set(flags) - set(ast.REGEX_FLAGS):
            raise ValueError(f"unknown regex flags {flags!r} (expected i, m or s)")
        from segkit.dsl.serde import _Loader

        _Loader().validate(node)
        return Rule(node)

    def is_known(self) -> Rule:
        """``name is known``."""
        return Rule(ast.IsKnown(self.name))

    def is_not_known(self) -> Rule:
        """``name is not known``."""
        return Rule(ast.IsKnown(self.name, negated=True))

    def has_any(self, values: Iterable[Any]) -> Rule:
        """``name has any [values]`` (list attributes)."""
        return Rule(ast.HasList(self.name, "any", _values(values)))

    def has_all(self, values: Iterable[Any]) -> Rule:
        """``name has all [values]``."""
        return Rule(ast.HasList(self.name, "all", _values(values)))

    def has_none(self, values: Iterable[Any]) -> Rule:
        """``name has none [values]`` (known, and none of them)."""
        return Rule(ast.HasList(self.name, "none", _values(values)))

    def in_last(self, duration: DurationLike) -> Rule:
        """``name in last D``.

        >>> import segkit as sk
        >>> str(sk.attr("last_seen").in_last("7d"))
        'last_seen in last 7d'
        """
        return Rule(ast.InLast(self.name, Duration.coerce(duration)))

    def not_in_last(self, duration: DurationLike) -> Rule:
        """``name not in last D``: known and outside the window."""
        return Rule(ast.InLast(self.name, Duration.coerce(duration), negated=True))

    def more_than_ago(self, duration: DurationLike) -> Rule:
        """``name more than D ago``."""
        return Rule(ast.MoreThanAgo(self.name, Duration.coerce(duration)))

    def before(self, when: TimeLike) -> Rule:
        """``name before @date``."""
        return Rule(ast.TimeCompare(self.name, "before", _time(when)))

    def after(self, when: TimeLike) -> Rule:
        """``name after @date``."""
        return Rule(ast.TimeCompare(self.name, "after", _time(when)))


def _time(value: Any) -> date | datetime:
    if not isinstance(value, date):
        raise TypeError(f"expected a date or datetime, got {type(value).__name__}")
    return value


def attr(name: str) -> AttrRef:
    """Refer to an attribute by name.

    >>> import segkit as sk
    >>> str(sk.attr("age") >= 18)
    'age >= 18'

    .. versionadded:: 0.1.0
    """
    return AttrRef(name)


@attrs.frozen(eq=False)
class DidBuilder:
    """``did EVENT …``, built step by step; every method returns a new builder.

    >>> import segkit as sk
    >>> str(sk.did("purchase").where("amount > 10").times(">=", 2).in_last("90d"))
    'did purchase where amount > 10 >= 2 times in last 90d'
    >>> str(sk.did("signup").then("purchase").within("7d"))
    'did signup then purchase within 7d'
    >>> str(sk.did("purchase").first_time().in_last("30d"))
    'did purchase for the first time in last 30d'

    .. versionadded:: 0.1.0
    """

    steps: tuple[ast.SeqStep, ...]
    count_op: str | None = None
    count: int | None = None
    window: ast.Window | None = None
    within_: Duration | None = None
    first: bool = False

    def where(self, condition: RuleLike) -> DidBuilder:
        """Filter the last named event by its properties (text or ``sk.attr`` rules)."""
        *head, last = self.steps
        if last.where is not None:
            raise ValueError(f"event {last.event!r} already has a where clause")
        return attrs.evolve(self, steps=(*head, ast.SeqStep(last.event, _where(condition))))

    def times(self, op: str, n: int) -> DidBuilder:
        """Count matching events: ``op n times`` (e.g. ``times(">=", 3)``)."""
        op = "=" if op == "==" else op
        if op not in ast.COMPARE_OPS:
            raise ValueError(
                f"unknown operator {op!r} (expected one of {', '.join(ast.COMPARE_OPS)})"
            )
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f"a count must be a whole number >= 0, got {n!r}")
        return attrs.evolve(self, count_op=op, count=n)

    def in_last(self, duration: DurationLike) -> DidBuilder:
        """Only events in the last ``duration`` before ``now``."""
        return attrs.evolve(self, window=_window(duration, None))

    def between(self, start: TimeLike, end: TimeLike) -> DidBuilder:
        """Only events between two dates or datetimes (both included)."""
        return attrs.evolve(self, window=_window(None, (start, end)))

    def then(self, event: str) -> DidBuilder:
        """Add a sequence step: ``did A then B … within D``."""
        return attrs.evolve(self, steps=(*self.steps, ast.SeqStep(event)))

    def within(self, duration: DurationLike) -> DidBuilder:
        """The time limit of a sequence, from its first event to its last."""
        return attrs.evolve(self, within_=Duration.coerce(duration))

    def first_time(self) -> DidBuilder:
        """``did X for the first time`` (needs a window)."""
        return attrs.evolve(self, first=True)

    def to_rule(self) -> Rule:
        """The finished :class:`~segkit.Rule`; raises :class:`ValueError` if incomplete."""
        if len(self.steps) > 1:
            if self.within_ is None:
                raise ValueError("a sequence needs .within(duration)")
            if self.count_op is not None or self.first:
                raise ValueError("a sequence takes no count and no first_time()")
            return Rule(ast.Sequence(self.steps, self.within_, self.window))
        if self.within_ is not None:
            raise ValueError(".within() applies to sequences: add .then(event) first")
        step = self.steps[0]
        if self.first:
            if self.window is None:
                raise ValueError("first_time() needs a window: .in_last(...) or .between(...)")
            if self.count_op is not None:
                raise ValueError("first_time() takes no count")
            return Rule(ast.FirstTime(step.event, step.where, self.window))
        return Rule(ast.Did(step.event, step.where, self.count_op, self.count, self.window))

    def __str__(self) -> str:
        return str(self.to_rule())

    def __repr__(self) -> str:
        return f"did-builder({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (Rule, DidBuilder)):
            return self.to_rule() == other.to_rule()
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.to_rule())

    def __and__(self, other: RuleLike) -> Rule:
        return self.to_rule() & other

    def __rand__(self, other: RuleLike) -> Rule:
        return as_rule(other) & self.to_rule()

    def __or__(self, other: RuleLike) -> Rule:
        return self.to_rule() | other

    def __ror__(self, other: RuleLike) -> Rule:
        return as_rule(other) | self.to_rule()

    def __invert__(self) -> Rule:
        return ~self.to_rule()


def did(event: str) -> DidBuilder:
    """Start a behavioural condition: ``did EVENT``.

    >>> import segkit as sk
    >>> str(sk.did("page_view").where(sk.attr("url").starts_with("/pricing")))
    'did page_view where url starts_with "/pricing"'

    .. versionadded:: 0.1.0
    """
    if not isinstance(event, str) or not event:
        raise ValueError("an event name must be a non-empty string")
    return DidBuilder((ast.SeqStep(event),))


@attrs.frozen(eq=False)
class AggregateBuilder:
    """``func(EVENT.prop [where …] [window])``; compare it to finish a rule.

    >>> import segkit as sk
    >>> str(sk.sum_of("purchase", "amount").in_last("30d") > 100)
    'sum(purchase.amount in last 30d) > 100'

    .. versionadded:: 0.1.0
    """

    func: str
    event: str
    prop: str | None
    where_: ast.Expr | None = None
    window: ast.Window | None = None

    def where(self, condition: RuleLike) -> AggregateBuilder:
        """Only events whose properties satisfy ``condition``."""
        return attrs.evolve(self, where_=_where(condition))

    def in_last(self, duration: DurationLike) -> AggregateBuilder:
        """Only events in the last ``duration``."""
        return attrs.evolve(self, window=_window(duration, None))

    def between(self, start: TimeLike, end: TimeLike) -> AggregateBuilder:
        """Only events between two dates or datetimes (both included)."""
        return attrs.evolve(self, window=_window(None, (start, end)))

    def _cmp(self, op: str, value: Any) -> Rule:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"an aggregate compares with a number, got {value!r}")
        _check_value(value)
        return Rule(
            ast.Aggregate(self.func, self.event, self.prop, self.where_, self.window, op, value)
        )

    def __eq__(self, value: Any) -> Rule:  # type: ignore[override]
        return self._cmp("=", value)

    def __ne__(self, value: Any) -> Rule:  # type: ignore[override]
        return self._cmp("!=", value)

    def __lt__(self, value: Any) -> Rule:
        return self._cmp("<", value)

    def __le__(self, value: Any) -> Rule:
        return self._cmp("<=", value)

    def __gt__(self, value: Any) -> Rule:
        return self._cmp(">", value)

    def __ge__(self, value: Any) -> Rule:
        return self._cmp(">=", value)

    __hash__ = None  # type: ignore[assignment]


def sum_of(event: str, prop: str) -> AggregateBuilder:
    """``sum(event.prop …)`` — 0 when there are no events.

    >>> import segkit as sk
    >>> str(sk.sum_of("purchase", "amount").in_last("30d") > 100)
    'sum(purchase.amount in last 30d) > 100'

    .. versionadded:: 0.1.0
    """
    return AggregateBuilder("sum", event, prop)


def avg_of(event: str, prop: str) -> AggregateBuilder:
    """``avg(event.prop …)`` — unknown (never matches) when there are no events.

    >>> import segkit as sk
    >>> str(sk.avg_of("purchase", "amount") >= 20)
    'avg(purchase.amount) >= 20'

    .. versionadded:: 0.1.0
    """
    return AggregateBuilder("avg", event, prop)


def min_of(event: str, prop: str) -> AggregateBuilder:
    """``min(event.prop …)``.

    >>> import segkit as sk
    >>> str(sk.min_of("purchase", "amount") < 5)
    'min(purchase.amount) < 5'

    .. versionadded:: 0.1.0
    """
    return AggregateBuilder("min", event, prop)


def max_of(event: str, prop: str) -> AggregateBuilder:
    """``max(event.prop …)``.

    >>> import segkit as sk
    >>> str(sk.max_of("purchase", "amount").where('sku = "A"') > 50)
    'max(purchase.amount where sku = "A") > 50'

    .. versionadded:: 0.1.0
    """
    return AggregateBuilder("max", event, prop)


def count_of(event: str) -> AggregateBuilder:
    """``count(event …)``.

    >>> import segkit as sk
    >>> str(sk.count_of("purchase").where("amount >= 50") >= 2)
    'count(purchase where amount >= 50) >= 2'

    .. versionadded:: 0.1.0
    """
    return AggregateBuilder("count", event, None)


def in_segment(name: str) -> Rule:
    """``in segment "name"``.

    >>> import segkit as sk
    >>> str(~sk.in_segment("churned"))
    'not in segment "churned"'

    .. versionadded:: 0.1.0
    """
    if not isinstance(name, str) or not name:
        raise ValueError("a segment name must be a non-empty string")
    return Rule(ast.InSegment(name))


class _BucketRef:
    __slots__ = ("salt",)

    def __init__(self, salt: str) -> None:
        self.salt = salt

    def between(self, low: int, high: int) -> Rule:
        """``bucket("salt") in low..high`` (0 <= low <= high <= 9999)."""
        if not (isinstance(low, int) and isinstance(high, int) and 0 <= low <= high < BUCKETS):
            raise ValueError(f"bucket range must satisfy 0 <= low <= high <= {BUCKETS - 1}")
        return Rule(ast.Bucket(self.salt, low, high))


def bucket(salt: str) -> _BucketRef:
    """The profile's deterministic hash bucket under ``salt``; finish with ``.between(lo, hi)``.

    >>> import segkit as sk
    >>> str(sk.bucket("exp-7").between(0, 4999))
    'bucket("exp-7") in 0..4999'

    .. versionadded:: 0.1.0
    """
    if not isinstance(salt, str):
        raise TypeError("a bucket salt must be a string")
    return _BucketRef(salt)
