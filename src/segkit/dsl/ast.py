"""The rule AST: frozen nodes, each with a :class:`~segkit.errors.Span`.

Every front end (rule text, the Python builder, the dict form) produces these
nodes, and every back end (printer, type checker, predicate, bitmap plan) reads
them. Spans are not part of equality, so a re-parsed rule equals the original.
Literal values compare with their type, so ``1``, ``1.0`` and ``true`` differ.

>>> from segkit.dsl.ast import Compare, And, IsKnown
>>> And((Compare("age", ">=", 18), IsKnown("email")))
And(items=(Compare(field='age', op='>=', value=18), IsKnown(field='email', negated=False)))

.. versionadded:: 0.1.0
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime
from typing import Any, Final, Literal, TypeAlias

import attrs

from segkit.errors import Span
from segkit.timeutil import Duration

__all__ = [
    "AGGREGATE_FUNCS",
    "COMPARE_OPS",
    "Aggregate",
    "And",
    "Between",
    "BetweenWindow",
    "Bucket",
    "Compare",
    "Did",
    "Expr",
    "FirstTime",
    "HasList",
    "InLast",
    "InList",
    "InSegment",
    "IsKnown",
    "LastWindow",
    "Matches",
    "MoreThanAgo",
    "NO_SPAN",
    "Node",
    "Not",
    "Or",
    "SeqStep",
    "Sequence",
    "StringOp",
    "TimeCompare",
    "Value",
    "Window",
    "iter_nodes",
]

#: A literal value in a rule.
Value: TypeAlias = str | int | float | bool | date | datetime

#: Comparison operators, in canonical spelling.
COMPARE_OPS: Final = ("=", "!=", "<", "<=", ">", ">=")
#: Aggregate functions over an event property (``count`` takes no property).
AGGREGATE_FUNCS: Final = ("sum", "avg", "min", "max", "count")
#: String operators (``i``-prefixed forms set ``case_insensitive``).
STRING_OPS: Final = ("contains", "starts_with", "ends_with")
#: Modes of ``has any|all|none [...]``.
HAS_MODES: Final = ("any", "all", "none")
#: Regex flags accepted after ``/pattern/``, in canonical order.
REGEX_FLAGS: Final = "ims"

#: The span of a node that did not come from text.
NO_SPAN: Final = Span(0, 0)


def _value_key(value: Any) -> Any:
    """Equality key that tells ``1``, ``1.0``, ``True`` and ``"1"`` apart."""
    if isinstance(value, tuple):
        return tuple(_value_key(v) for v in value)
    return (type(value).__name__, value)


@attrs.frozen
class Node:
    """Base class of all AST nodes. ``span`` locates the node in its source text."""

    span: Span = attrs.field(default=NO_SPAN, eq=False, repr=False, kw_only=True)

    def children(self) -> tuple[Node, ...]:
        """The direct child nodes, in source order."""
        return ()


# --- boolean structure -------------------------------------------------------------------------


@attrs.frozen
class And(Node):
    """All of ``items`` hold (two or more)."""

    items: tuple[Expr, ...]

    def children(self) -> tuple[Node, ...]:
        return self.items


@attrs.frozen
class Or(Node):
    """At least one of ``items`` holds (two or more)."""

    items: tuple[Expr, ...]

    def children(self) -> tuple[Node, ...]:
        return self.items


@attrs.frozen
class Not(Node):
    """The full complement of ``operand`` (includes profiles where it reads missing values)."""

    operand: Expr

    def children(self) -> tuple[Node, ...]:
        return (self.operand,)


# --- attribute (or, inside ``where``, event property) predicates -------------------------------


@attrs.frozen
class Compare(Node):
    """``field op value`` with ``op`` in :data:`COMPARE_OPS`; false when the field is missing."""

    field: str
    op: str
    value: Value = attrs.field(eq=_value_key)


@attrs.frozen
class InList(Node):
    """``field [not] in [v, ...]``; the negated form needs a known value."""

    field: str
    values: tuple[Value, ...] = attrs.field(eq=_value_key)
    negated: bool = False


@attrs.frozen
class Between(Node):
    """``field [not] between low and high`` (both ends included)."""

    field: str
    low: Value = attrs.field(eq=_value_key)
    high: Value = attrs.field(eq=_value_key)
    negated: bool = False


@attrs.frozen
class StringOp(Node):
    """``field [not] [i]contains|starts_with|ends_with "text"``."""

    field: str
    op: str
    value: str
    negated: bool = False
    case_insensitive: bool = False


@attrs.frozen
class Matches(Node):
    """``field [not] matches /pattern/flags`` (:func:`re.search` semantics)."""

    field: str
    pattern: str
    flags: str = ""
    negated: bool = False


@attrs.frozen
class IsKnown(Node):
    """``field is [not] known``."""

    field: str
    negated: bool = False


@attrs.frozen
class HasList(Node):
    """``field has any|all|none [v, ...]`` over a list attribute."""

    field: str
    mode: str
    values: tuple[Value, ...] = attrs.field(eq=_value_key)


@attrs.frozen
class InLast(Node):
    """``field [not] in last DURATION``: ``now - D < value <= now``."""

    field: str
    duration: Duration
    negated: bool = False


@attrs.frozen
class TimeCompare(Node):
    """``field before|after TIME`` (strict; a date literal compares calendar dates)."""

    field: str
    op: str
    value: date | datetime = attrs.field(eq=_value_key)


@attrs.frozen
class MoreThanAgo(Node):
    """``field more than DURATION ago``: ``value <= now - D``."""

    field: str
    duration: Duration


@attrs.frozen
class InSegment(Node):
    """``[not] in segment "name"``."""

    segment: str
    negated: bool = False


@attrs.frozen
class Bucket(Node):
    """``bucket("salt") in low..high``: the profile's hash bucket (0..9999) is in the range."""

    salt: str
    low: int
    high: int


# --- behavioural predicates --------------------------------------------------------------------


@attrs.frozen
class LastWindow(Node):
    """``in last DURATION``: ``now - D < t <= now``."""

    duration: Duration


@attrs.frozen
class BetweenWindow(Node):
    """``between T and T``: both ends included; date literals cover whole calendar days."""

    start: date | datetime = attrs.field(eq=_value_key)
    end: date | datetime = attrs.field(eq=_value_key)


#: An event time window.
Window: TypeAlias = LastWindow | BetweenWindow


@attrs.frozen
class Did(Node):
    """``did EVENT [where …] [op N times] [window]``.

    Without a count it means "at least once". With one, it compares the number of
    matching events (0 when there are none).
    """

    event: str
    where: Expr | None = None
    count_op: str | None = None
    count: int | None = None
    window: Window | None = None

    def children(self) -> tuple[Node, ...]:
        return tuple(n for n in (self.where, self.window) if n is not None)


@attrs.frozen
class SeqStep(Node):
    """One step of a :class:`Sequence`: an event name and an optional ``where``."""

    event: str
    where: Expr | None = None

    def children(self) -> tuple[Node, ...]:
        return () if self.where is None else (self.where,)


@attrs.frozen
class Sequence(Node):
    """``did A [where …] then B [where …] … within D [window]``.

    Needs events ``e1, e2, …`` matching the steps with ``t1 <= t2 <= … <= t1 + D``,
    each event playing one part only; the window applies to every event.
    """

    steps: tuple[SeqStep, ...]
    within: Duration
    window: Window | None = None

    def children(self) -> tuple[Node, ...]:
        return (*self.steps, *(() if self.window is None else (self.window,)))


@attrs.frozen
class FirstTime(Node):
    """``did EVENT [where …] for the first time WINDOW``: the first matching event ever lies in it."""

    event: str
    where: Expr | None
    window: Window

    def children(self) -> tuple[Node, ...]:
        return (*(() if self.where is None else (self.where,)), self.window)


@attrs.frozen
class Aggregate(Node):
    """``func(EVENT[.prop] [where …] [window]) op value``.

    ``sum`` and ``count`` of no events are 0; ``avg``/``min``/``max`` of no events are
    unknown, so the comparison is false. Events missing the property are skipped.
    """

    func: str
    event: str
    prop: str | None
    where: Expr | None
    window: Window | None
    op: str
    value: int | float = attrs.field(eq=_value_key)

    def children(self) -> tuple[Node, ...]:
        return tuple(n for n in (self.where, self.window) if n is not None)


#: Any boolean expression node.
Expr: TypeAlias = (
    And
    | Or
    | Not
    | Compare
    | InList
    | Between
    | StringOp
    | Matches
    | IsKnown
    | HasList
    | InLast
    | TimeCompare
    | MoreThanAgo
    | InSegment
    | Bucket
    | Did
    | Sequence
    | FirstTime
    | Aggregate
)

#: Node types that read one attribute (or, inside ``where``, one event property).
FIELD_NODES: Final = (
    Compare,
    InList,
    Between,
    StringOp,
    Matches,
    IsKnown,
    HasList,
    InLast,
    TimeCompare,
    MoreThanAgo,
)

#: Spelling of each boolean connective, for messages.
Connective = Literal["and", "or"]


def iter_nodes(node: Node) -> Iterator[Node]:
    """Yield ``node`` and all its descendants, depth first, in source order.

    >>> [type(n).__name__ for n in iter_nodes(Not(Compare("a", "=", 1)))]
    ['Not', 'Compare']
    """
    stack = [node]
    while stack:
        current = stack.pop()
        yield current
        stack.extend(reversed(current.children()))
