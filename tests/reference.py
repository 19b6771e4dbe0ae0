"""A deliberately simple reference model of segkit's rule semantics.

This module is the test oracle for the compiled predicate: it transcribes the
documented semantics of every AST node as literally as possible, one branch per
node type, with no caching, no pre-compilation and no cleverness. It is written
independently of ``segkit.compile`` on purpose; do not share code with it.

Conventions used throughout:

* a value is *missing* when its key is absent or maps to ``None``;
* datetimes are compared as instants (converted to UTC first, because Python
  compares two datetimes with the *same* tzinfo by wall clock, ignoring DST);
* a datetime compared with a date literal is reduced to its calendar date on the
  wall clock of ``tz``, and a datetime literal compared with a date value likewise;
* calendar windows come from :meth:`segkit.timeutil.Duration.before` / ``after``.
"""

from __future__ import annotations

import itertools
import operator
import re
from collections.abc import Callable, Mapping
from collections.abc import Sequence as SequenceOf
from datetime import date, datetime, timezone, tzinfo
from typing import TYPE_CHECKING, Any

from segkit.dsl.ast import (
    Aggregate,
    And,
    Between,
    BetweenWindow,
    Bucket,
    Compare,
    Did,
    Expr,
    FirstTime,
    HasList,
    InLast,
    InList,
    InSegment,
    IsKnown,
    LastWindow,
    Matches,
    MoreThanAgo,
    Not,
    Or,
    SeqStep,
    Sequence,
    StringOp,
    TimeCompare,
    Window,
)
from segkit.hashing import bucket

if TYPE_CHECKING:  # only the attributes .key .name .at .properties are used
    from segkit.records import Event

__all__ = ["reference_eval"]

_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "=": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}

_REGEX_FLAGS = {"i": re.IGNORECASE, "m": re.MULTILINE, "s": re.DOTALL}


# --- small helpers -----------------------------------------------------------------------------


def _is_missing(attrs: Mapping[str, Any], field: str) -> bool:
    return field not in attrs or attrs[field] is None


def _is_datetime(value: Any) -> bool:
    return isinstance(value, datetime)


def _is_plain_date(value: Any) -> bool:
    return isinstance(value, date) and not isinstance(value, datetime)


def _instant(moment: datetime) -> datetime:
    """The same moment in UTC, so that comparisons are between instants."""
    return moment.astimezone(timezone.utc)


def _local_date(moment: datetime, tz: tzinfo) -> date:
    return moment.astimezone(tz).date()


def _comparable(value: Any, literal: Any, tz: tzinfo) -> tuple[Any, Any]:
    """Bring ``value`` and ``literal`` to a form where Python's operators mean what the rule says."""
    if _is_datetime(value) and _is_datetime(literal):
        return _instant(value), _instant(literal)
    if _is_datetime(value) and _is_plain_date(literal):
        return _local_date(value, tz), literal
    if _is_plain_date(value) and _is_datetime(literal):
        return value, _local_date(literal, tz)
    return value, literal


def _compare(value: Any, op: str, literal: Any, tz: tzinfo) -> bool:
    """``value op literal`` for a known ``value``."""
    left, right = _comparable(value, literal, tz)
    return bool(_OPS[op](left, right))


def _in_window(at: datetime, window: Window | None, now: datetime, tz: tzinfo) -> bool:
    """Whether an event time lies in a window (no window: every event, even after ``now``)."""
    if window is None:
        return True
    if isinstance(window, LastWindow):
        start = window.duration.before(now, tz)
        return _instant(start) < _instant(at) <= _instant(now)
    if isinstance(window, BetweenWindow):
        if _is_datetime(window.start):
            after_start = _instant(window.start) <= _instant(at)
        else:
            after_start = window.start <= _local_date(at, tz)
        if _is_datetime(window.end):
            before_end = _instant(at) <= _instant(window.end)
        else:
            before_end = _local_date(at, tz) <= window.end
        return after_start and before_end
    raise TypeError(f"unknown window node {window!r}")


# --- the model ---------------------------------------------------------------------------------


def reference_eval(
    expr: Expr,
    attrs: Mapping[str, Any],
    events: SequenceOf[Event],
    now: datetime,
    *,
    tz: tzinfo,
    key: str = "",
    segments: Callable[[str], bool] | None = None,
) -> bool:
    """Evaluate ``expr`` for one profile, literally following the documented semantics.

    ``attrs`` are the profile's attributes (list values as tuples), ``events`` its
    events (anything with ``.key .name .at .properties``), ``now`` an aware datetime,
    ``tz`` the schema's time zone, ``key`` the external key (for ``bucket``) and
    ``segments`` answers ``in segment "name"``.
    """

    def ev(sub: Expr) -> bool:
        return reference_eval(sub, attrs, events, now, tz=tz, key=key, segments=segments)

    def where_holds(where: Expr | None, event: Event) -> bool:
        """A ``where`` clause reads the event's properties as if they were attributes."""
        if where is None:
            return True
        props = event.properties if event.properties is not None else {}
        return reference_eval(where, props, (), now, tz=tz, key=key, segments=segments)

    def matching_events(name: str, where: Expr | None, window: Window | None) -> list[Event]:
        return [
            e
            for e in events
            if e.name == name and where_holds(where, e) and _in_window(e.at, window, now, tz)
        ]

    # boolean structure
    if isinstance(expr, And):
        return all(ev(item) for item in expr.items)
    if isinstance(expr, Or):
        return any(ev(item) for item in expr.items)
    if isinstance(expr, Not):
        return not ev(expr.operand)

    # attribute predicates
    if isinstance(expr, Compare):
        if _is_missing(attrs, expr.field):
            return False
        return _compare(attrs[expr.field], expr.op, expr.value, tz)

    if isinstance(expr, InList):
        if _is_missing(attrs, expr.field):
            return False
        value = attrs[expr.field]
        found = any(_compare(value, "=", v, tz) for v in expr.values)
        return (not found) if expr.negated else found

    if isinstance(expr, Between):
        if _is_missing(attrs, expr.field):
            return False
        value = attrs[expr.field]
        inside = _compare(value, ">=", expr.low, tz) and _compare(value, "<=", expr.high, tz)
        return (not inside) if expr.negated else inside

    if isinstance(expr, StringOp):
        if _is_missing(attrs, expr.field):
            return False
        value = attrs[expr.field]
        literal = expr.value
        if expr.case_insensitive:
            value = value.casefold()
            literal = literal.casefold()
        if expr.op == "contains":
            holds = literal in value
        elif expr.op == "starts_with":
            holds = value.startswith(literal)
        elif expr.op == "ends_with":
            holds = value.endswith(literal)
        else:
            raise ValueError(f"unknown string operator {expr.op!r}")
        return (not holds) if expr.negated else holds

    if isinstance(expr, Matches):
        if _is_missing(attrs, expr.field):
            return False
        flags = 0
        for letter in expr.flags:
            flags |= _REGEX_FLAGS[letter]
        found = re.search(expr.pattern, attrs[expr.field], flags) is not None
        return (not found) if expr.negated else found

    if isinstance(expr, IsKnown):
        known = not _is_missing(attrs, expr.field)
        return (not known) if expr.negated else known

    if isinstance(expr, HasList):
        if _is_missing(attrs, expr.field):
            return False
        items = attrs[expr.field]
        if expr.mode == "any":
            return any(v in items for v in expr.values)
        if expr.mode == "all":
            return all(v in items for v in expr.values)
        if expr.mode == "none":
            return not any(v in items for v in expr.values)
        raise ValueError(f"unknown has-mode {expr.mode!r}")

    if isinstance(expr, InLast):
        if _is_missing(attrs, expr.field):
            return False
        value = attrs[expr.field]
        start = expr.duration.before(now, tz)
        if _is_datetime(value):
            inside = _instant(start) < _instant(value) <= _instant(now)
        else:
            inside = _local_date(start, tz) < value <= _local_date(now, tz)
        return (not inside) if expr.negated else inside

    if isinstance(expr, MoreThanAgo):
        if _is_missing(attrs, expr.field):
            return False
        value = attrs[expr.field]
        cutoff = expr.duration.before(now, tz)
        if _is_datetime(value):
            return _instant(value) <= _instant(cutoff)
        return value <= _local_date(cutoff, tz)

    if isinstance(expr, TimeCompare):
        if _is_missing(attrs, expr.field):
            return False
        op = {"before": "<", "after": ">"}[expr.op]
        return _compare(attrs[expr.field], op, expr.value, tz)

    if isinstance(expr, InSegment):
        if segments is None:
            raise ValueError(f"{expr!r} needs reference_eval(..., segments=callable)")
        member = bool(segments(expr.segment))
        return (not member) if expr.negated else member

    if isinstance(expr, Bucket):
        return expr.low <= bucket(expr.salt, key) <= expr.high

    # behavioural predicates
    if isinstance(expr, Did):
        matching = matching_events(expr.event, expr.where, expr.window)
        if expr.count_op is None:
            return len(matching) >= 1
        return _OPS[expr.count_op](len(matching), expr.count)

    if isinstance(expr, Sequence):
        return _sequence_holds(expr, events, where_holds, now, tz)

    if isinstance(expr, FirstTime):
        candidates = matching_events(expr.event, expr.where, None)
        if not candidates:
            return False
        first = min(candidates, key=lambda e: _instant(e.at))
        return _in_window(first.at, expr.window, now, tz)

    if isinstance(expr, Aggregate):
        matching = matching_events(expr.event, expr.where, expr.window)
        if expr.func == "count":
            result: int | float = len(matching)
        else:
            assert expr.prop is not None
            values = [
                e.properties[expr.prop]
                for e in matching
                if e.properties is not None and not _is_missing(e.properties, expr.prop)
            ]
            if expr.func == "sum":
                result = sum(values)
            elif not values:
                return False  # avg/min/max of nothing is unknown: every comparison is false
            elif expr.func == "avg":
                result = sum(values) / len(values)
            elif expr.func == "min":
                result = min(values)
            elif expr.func == "max":
                result = max(values)
            else:
                raise ValueError(f"unknown aggregate {expr.func!r}")
        return _OPS[expr.op](result, expr.value)

    raise TypeError(f"unknown expression node {expr!r}")


def _sequence_holds(
    expr: Sequence,
    events: SequenceOf[Event],
    where_holds: Callable[[Expr | None, Event], bool],
    now: datetime,
    tz: tzinfo,
) -> bool:
    """Brute force: try every ordered choice of distinct event positions, one per step."""
    steps: tuple[SeqStep, ...] = expr.steps
    for positions in itertools.permutations(range(len(events)), len(steps)):
        chosen = [events[i] for i in positions]
        if not all(
            e.name == step.event and where_holds(step.where, e)
            for e, step in zip(chosen, steps, strict=True)
        ):
            continue
        if not all(_in_window(e.at, expr.window, now, tz) for e in chosen):
            continue
        times = [_instant(e.at) for e in chosen]
        if any(times[i] > times[i + 1] for i in range(len(times) - 1)):
            continue
        deadline = _instant(expr.within.after(chosen[0].at, tz))
        if times[-1] <= deadline:
            return True
    return False
