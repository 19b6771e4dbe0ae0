"""Compile a checked rule into a predicate: one profile (+ its events, + ``now``) -> bool.

The rule is type-checked and turned into a tree of small closures once; calling
the predicate does no parsing and no per-node dispatch. Semantics are those of
``docs/rules.md``: a comparison on a missing value is false, negated operators
(``!=``, ``not in``, ``not contains``, …) need a known value, ``not (…)`` is the
full complement, relative windows are calendar-aware in the schema's time zone.

>>> import segkit as sk
>>> from datetime import datetime, timezone
>>> schema = sk.Schema(attributes={"age": "int", "country": "string"},
...                    events={"purchase": {"amount": "float"}}, timezone="UTC")
>>> pred = sk.compile_predicate('age >= 18 and did purchase where amount > 10 in last 30d', schema)
>>> now = datetime(2024, 6, 30, tzinfo=timezone.utc)
>>> buy = sk.Event("c-1", "purchase", datetime(2024, 6, 20, tzinfo=timezone.utc), {"amount": 25.0})
>>> pred({"age": 31}, [buy], now=now)
True
>>> pred({"age": 31}, [], now=now)
False

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import bisect
import math
import operator
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import date, datetime, timezone, tzinfo
from typing import TYPE_CHECKING, Any, Final

from segkit.dsl import ast
from segkit.dsl.check import check
from segkit.dsl.parser import compile_regex
from segkit.errors import SchemaError
from segkit.hashing import bucket
from segkit.timeutil import Duration, ensure_aware

if TYPE_CHECKING:
    from segkit.dsl.rule import Rule, RuleLike
    from segkit.records import Event
    from segkit.schema import FieldType, Schema

__all__ = ["Predicate", "SegmentResolver", "compile_event_filter", "compile_predicate"]

#: ``resolver(segment_name, profile_key) -> bool``: membership of other segments.
SegmentResolver = Callable[[str, str], bool]

_OPS: Final[dict[str, Callable[[Any, Any], bool]]] = {
    "=": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}

# A compiled node: fn(values, ctx) -> bool, where ``values`` is the profile's
# attributes (or, inside ``where``, an event's properties).
_Fn = Callable[[Mapping[str, Any], "_Ctx"], bool]
_EventTest = Callable[["Event", "_Ctx"], bool]


class _Ctx:
    """Per-call state: the profile's key, its events grouped by name, and ``now``'s windows."""

    __slots__ = ("_groups", "_starts", "events", "key", "now")

    def __init__(
        self,
        events: Sequence[Event],
        now: datetime | None,
        key: str | None,
        starts: dict[Duration, datetime] | None = None,
    ) -> None:
        self.events = events
        self.now = now
        self.key = key
        self._groups: dict[str, list[tuple[int, Event]]] | None = None
        # ``now - duration`` per duration; callers evaluating many profiles at one
        # ``now`` (and one schema, so one time zone) share this dict between them
        self._starts: dict[Duration, datetime] = {} if starts is None else starts

    def group(self, name: str) -> list[tuple[int, Event]]:
        """(position, event) pairs of the events named ``name``, in input order."""
        groups = self._groups
        if groups is None:
            self._groups = groups = {}
        else:
            found = groups.get(name)
            if found is not None:
                return found
        found = groups[name] = [(i, e) for i, e in enumerate(self.events) if e.name == name]
        return found

    def start(self, duration: Duration, tz: tzinfo) -> datetime:
        """``now - duration`` (cached for this call)."""
        cached = self._starts.get(duration)
        if cached is None:
            if self.now is None:
                raise ValueError("this rule is relative to the current time: pass now=")
            cached = duration.before(self.now, tz)
            self._starts[duration] = cached
        return cached

    def now_required(self) -> datetime:
        if self.now is None:
            raise ValueError("this rule is relative to the current time: pass now=")
        return self.now


class _Compiler:
    def __init__(self, schema: Schema, segments: SegmentResolver | None) -> None:
        self.schema = schema
        self.tz: tzinfo = schema.tz or timezone.utc
        self.segments = segments

    # --- dispatch --------------------------------------------------------------------------

    def compile(self, node: ast.Expr, event: str | None = None) -> _Fn:
        method = getattr(self, "c_" + type(node).__name__)
        fn: _Fn = method(node, event)
        return fn

    def ftype(self, field: str, event: str | None) -> FieldType:
        t = (
            self.schema.attribute_type(field)
            if event is None
            else self.schema.property_type(event, field)
        )
        assert t is not None  # the rule was checked
        return t

    # --- boolean ---------------------------------------------------------------------------

    def c_And(self, node: ast.And, event: str | None) -> _Fn:
        fns = [self.compile(item, event) for item in node.items]
        if len(fns) == 2:
            a, b = fns
            return lambda m, ctx: a(m, ctx) and b(m, ctx)

        def all_of(m: Mapping[str, Any], ctx: _Ctx) -> bool:
            for f in fns:
                if not f(m, ctx):
                    return False
            return True

        return all_of

    def c_Or(self, node: ast.Or, event: str | None) -> _Fn:
        fns = [self.compile(item, event) for item in node.items]
        if len(fns) == 2:
            a, b = fns
            return lambda m, ctx: a(m, ctx) or b(m, ctx)

        def any_of(m: Mapping[str, Any], ctx: _Ctx) -> bool:
            for f in fns:
                if f(m, ctx):
                    return True
            return False

        return any_of

    def c_Not(self, node: ast.Not, event: str | None) -> _Fn:
        f = self.compile(node.operand, event)
        return lambda m, ctx: not f(m, ctx)

    # --- value normalisation ---------------------------------------------------------------

    def literal_and_key(
        self, ftype: FieldType, literal: Any
    ) -> tuple[Any, Callable[[Any], Any] | None]:
        """The literal to compare with, and how to map a stored value before comparing.

        A datetime field compared with a date literal compares the value's local
        calendar date; a date field compared with a datetime literal compares with
        the literal's local date; a naive datetime literal is in the schema's zone.
        """
        tz = self.tz
        if ftype.value == "datetime":
            if isinstance(literal, datetime):
                return ensure_aware(literal, tz).astimezone(timezone.utc), None
            if isinstance(literal, date):
                return literal, lambda v: v.astimezone(tz).date()
        if ftype.value == "date" and isinstance(literal, datetime):
            return ensure_aware(literal, tz).astimezone(tz).date(), None
        return literal, None

    # --- field predicates ------------------------------------------------------------------

    def c_Compare(self, node: ast.Compare, event: str | None) -> _Fn:
        field = node.field
        lit, key = self.literal_and_key(self.ftype(field, event), node.value)
        op = _OPS[node.op]
        if key is None:

            def compare(m: Mapping[str, Any], ctx: _Ctx) -> bool:
                v = m.get(field)
                return v is not None and op(v, lit)
        else:

            def compare(m: Mapping[str, Any], ctx: _Ctx) -> bool:
                v = m.get(field)
                return v is not None and op(key(v), lit)

        return compare

    def c_InList(self, node: ast.InList, event: str | None) -> _Fn:
        field = node.field
        ftype = self.ftype(field, event)
        pairs = [self.literal_and_key(ftype, v) for v in node.values]
        key = next((k for _, k in pairs if k is not None), None)
        if key is not None and any(k is None for _, k in pairs):
            # mixed date and datetime literals on a datetime field: compare one by one
            tests = [(lit, k) for lit, k in pairs]
            negated_mixed = node.negated

            def mixed(m: Mapping[str, Any], ctx: _Ctx) -> bool:
                v = m.get(field)
                if v is None:
                    return False
                hit = any((k(v) if k else v) == lit for lit, k in tests)
                return hit != negated_mixed

            return mixed
        values = frozenset(lit for lit, _ in pairs)
        negated = node.negated
        if key is None:

            def in_list(m: Mapping[str, Any], ctx: _Ctx) -> bool:
                v = m.get(field)
                return v is not None and ((v in values) != negated)
        else:

            def in_list(m: Mapping[str, Any], ctx: _Ctx) -> bool:
                v = m.get(field)
                return v is not None and ((key(v) in values) != negated)

        return in_list

    def c_Between(self, node: ast.Between, event: str | None) -> _Fn:
        field = node.field
        ftype = self.ftype(field, event)
        low, key_low = self.literal_and_key(ftype, node.low)
        high, key_high = self.literal_and_key(ftype, node.high)
        negated = node.negated
        ident: Callable[[Any], Any] = _identity

        def between(m: Mapping[str, Any], ctx: _Ctx) -> bool:
            v = m.get(field)
            if v is None:
                return False
            inside = (key_low or ident)(v) >= low and (key_high or ident)(v) <= high
            return bool(inside) != negated

        return between

    def c_StringOp(self, node: ast.StringOp, event: str | None) -> _Fn:
        field = node.field
        ci = node.case_insensitive
        text = node.value.casefold() if ci else node.value
        method = {
            "contains": str.__contains__,
            "starts_with": str.startswith,
            "ends_with": str.endswith,
        }[node.op]
        negated = node.negated

        def string_op(m: Mapping[str, Any], ctx: _Ctx) -> bool:
            v = m.get(field)
            if v is None:
                return False
            return method(v.casefold() if ci else v, text) != negated

        return string_op

    def c_Matches(self, node: ast.Matches, event: str | None) -> _Fn:
        field = node.field
        search = compile_regex(node.pattern, node.flags).search
        negated = node.negated

        def matches(m: Mapping[str, Any], ctx: _Ctx) -> bool:
            v = m.get(field)
            if v is None:
                return False
            return (search(v) is not None) != negated

        return matches

    def c_IsKnown(self, node: ast.IsKnown, event: str | None) -> _Fn:
        field = node.field
        if node.negated:
            return lambda m, ctx: m.get(field) is None
        return lambda m, ctx: m.get(field) is not None

    def c_HasList(self, node: ast.HasList, event: str | None) -> _Fn:
        field = node.field
        values = frozenset(node.values)
        mode = node.mode

        def has_list(m: Mapping[str, Any], ctx: _Ctx) -> bool:
            v = m.get(field)
            if v is None:
                return False
            if mode == "any":
                return not values.isdisjoint(v)
            if mode == "all":
                return values.issubset(v)
            return values.isdisjoint(v)

        return has_list

    def c_InLast(self, node: ast.InLast, event: str | None) -> _Fn:
        field, duration, tz, negated = node.field, node.duration, self.tz, node.negated
        if self.ftype(field, event).value == "date":

            def in_last_date(m: Mapping[str, Any], ctx: _Ctx) -> bool:
                v = m.get(field)
                if v is None:
                    return False
                start = ctx.start(duration, tz).astimezone(tz).date()
                today = ctx.now_required().astimezone(tz).date()
                return bool(start < v <= today) != negated

            return in_last_date

        def in_last(m: Mapping[str, Any], ctx: _Ctx) -> bool:
            v = m.get(field)
            if v is None:
                return False
            return bool(ctx.start(duration, tz) < v <= ctx.now_required()) != negated

        return in_last

    def c_MoreThanAgo(self, node: ast.MoreThanAgo, event: str | None) -> _Fn:
        field, duration, tz = node.field, node.duration, self.tz
        if self.ftype(field, event).value == "date":

            def ago_date(m: Mapping[str, Any], ctx: _Ctx) -> bool:
                v = m.get(field)
                return v is not None and v <= ctx.start(duration, tz).astimezone(tz).date()

            return ago_date

        def ago(m: Mapping[str, Any], ctx: _Ctx) -> bool:
            v = m.get(field)
            return v is not None and v <= ctx.start(duration, tz)

        return ago

    def c_TimeCompare(self, node: ast.TimeCompare, event: str | None) -> _Fn:
        field = node.field
        lit, key = self.literal_and_key(self.ftype(field, event), node.value)
        op = operator.lt if node.op == "before" else operator.gt
        k: Callable[[Any], Any] = key or _identity

        def time_compare(m: Mapping[str, Any], ctx: _Ctx) -> bool:
            v = m.get(field)
            return v is not None and op(k(v), lit)

        return time_compare

    def c_InSegment(self, node: ast.InSegment, event: str | None) -> _Fn:
        resolver = self.segments
        if resolver is None:
            raise ValueError(
                f"the rule refers to segment {node.segment!r}: pass"
                " segments=lambda name, key: ... to compile_predicate"
            )
        name, negated = node.segment, node.negated

        def in_segment(m: Mapping[str, Any], ctx: _Ctx) -> bool:
            if ctx.key is None:
                raise ValueError("'in segment' needs the profile's key: pass a Profile or key=")
            return bool(resolver(name, ctx.key)) != negated

        return in_segment

    def c_Bucket(self, node: ast.Bucket, event: str | None) -> _Fn:
        salt, low, high = node.salt, node.low, node.high

        def in_bucket(m: Mapping[str, Any], ctx: _Ctx) -> bool:
            if ctx.key is None:
                raise ValueError("bucket() needs the profile's key: pass a Profile or key=")
            return low <= bucket(salt, ctx.key) <= high

        return in_bucket

    # --- events ----------------------------------------------------------------------------

    def window_test(self, window: ast.Window | None) -> Callable[[datetime, _Ctx], bool] | None:
        if window is None:
            return None
        tz = self.tz
        if isinstance(window, ast.LastWindow):
            duration = window.duration
            return lambda at, ctx: ctx.start(duration, tz) < at <= ctx.now_required()
        bounds = (_bound_test(window.start, True, tz), _bound_test(window.end, False, tz))
        lo, hi = bounds
        return lambda at, ctx: lo(at) and hi(at)

    def event_test(
        self, event: str, where: ast.Expr | None, window: ast.Window | None
    ) -> _EventTest:
        w = None if where is None else self.compile(where, event)
        win = self.window_test(window)
        if w is None and win is None:
            return lambda e, ctx: True
        if w is None:
            assert win is not None
            return lambda e, ctx: win(e.at, ctx)
        if win is None:
            return lambda e, ctx: w(e.properties, ctx)
        return lambda e, ctx: win(e.at, ctx) and w(e.properties, ctx)

    def c_Did(self, node: ast.Did, event: str | None) -> _Fn:
        name = node.event
        if node.where is None and isinstance(node.window, ast.LastWindow):
            return self.did_in_last(node, node.window.duration)
        test = self.event_test(name, node.where, node.window)
        if node.count_op is None:

            def did(m: Mapping[str, Any], ctx: _Ctx) -> bool:
                for _, e in ctx.group(name):
                    if test(e, ctx):
                        return True
                return False

            return did
        op = _OPS[node.count_op]
        count = node.count

        def did_times(m: Mapping[str, Any], ctx: _Ctx) -> bool:
            n = 0
            for _, e in ctx.group(name):
                if test(e, ctx):
                    n += 1
            return op(n, count)

        return did_times

    def did_in_last(self, node: ast.Did, duration: Duration) -> _Fn:
        """``did X [op N times] in last D``: the window's ends computed once per profile."""
        name, tz = node.event, self.tz
        if node.count_op is None:

            def did(m: Mapping[str, Any], ctx: _Ctx) -> bool:
                group = ctx.group(name)
                if not group:  # no such event: ``now`` is not needed
                    return False
                lo, hi = ctx.start(duration, tz), ctx.now_required()
                return any(lo < e.at <= hi for _, e in group)

            return did
        op, count = _OPS[node.count_op], node.count

        def did_times(m: Mapping[str, Any], ctx: _Ctx) -> bool:
            group = ctx.group(name)
            if not group:  # no such event: ``now`` is not needed
                return op(0, count)
            lo, hi = ctx.start(duration, tz), ctx.now_required()
            return op(sum(1 for _, e in group if lo < e.at <= hi), count)

        return did_times

    def c_Sequence(self, node: ast.Sequence, event: str | None) -> _Fn:
        steps = [
            (step.event, self.event_test(step.event, step.where, node.window))
            for step in node.steps
        ]
        within, tz = node.within, self.tz

        def sequence(m: Mapping[str, Any], ctx: _Ctx) -> bool:
            lists: list[list[tuple[datetime, int]]] = []
            for name, test in steps:
                cands = sorted((e.at, i) for i, e in ctx.group(name) if test(e, ctx))
                if not cands:
                    return False
                lists.append(cands)
            return _sequence_exists(lists, within, tz)

        return sequence

    def c_FirstTime(self, node: ast.FirstTime, event: str | None) -> _Fn:
        name = node.event
        test = self.event_test(name, node.where, None)
        win = self.window_test(node.window)
        assert win is not None

        def first_time(m: Mapping[str, Any], ctx: _Ctx) -> bool:
            first: datetime | None = None
            for _, e in ctx.group(name):
                if (first is None or e.at < first) and test(e, ctx):
                    first = e.at
            return first is not None and win(first, ctx)

        return first_time

    def c_Aggregate(self, node: ast.Aggregate, event: str | None) -> _Fn:
        name, prop, func = node.event, node.prop, node.func
        test = self.event_test(name, node.where, node.window)
        op = _OPS[node.op]
        target = node.value
        if func == "count":

            def count(m: Mapping[str, Any], ctx: _Ctx) -> bool:
                n = 0
                for _, e in ctx.group(name):
                    if test(e, ctx):
                        n += 1
                return op(n, target)

            return count
        assert prop is not None
        reduce = _REDUCERS[func]

        def aggregate(m: Mapping[str, Any], ctx: _Ctx) -> bool:
            values = []
            for _, e in ctx.group(name):
                if test(e, ctx):
                    v = e.properties.get(prop)
                    if v is not None:
                        values.append(v)
            result = reduce(values)
            return result is not None and op(result, target)

        return aggregate


def _bound_test(bound: date | datetime, is_start: bool, tz: tzinfo) -> Callable[[datetime], bool]:
    """Test one inclusive end of a ``between`` window (a date covers its whole local day)."""
    if isinstance(bound, datetime):
        b = ensure_aware(bound, tz).astimezone(timezone.utc)

        def instant_after(at: datetime) -> bool:
            return at >= b

        def instant_before(at: datetime) -> bool:
            return at <= b

        return instant_after if is_start else instant_before
    d = bound

    def day_after(at: datetime) -> bool:
        return at.astimezone(tz).date() >= d

    def day_before(at: datetime) -> bool:
        return at.astimezone(tz).date() <= d

    return day_after if is_start else day_before


def _identity(v: Any) -> Any:
    return v


def _avg(values: list[float]) -> float | None:
    return math.fsum(values) / len(values) if values else None


_REDUCERS: Final[dict[str, Callable[[list[Any]], Any]]] = {
    "sum": lambda vs: math.fsum(vs) if vs else 0,
    "avg": _avg,
    "min": lambda vs: min(vs) if vs else None,
    "max": lambda vs: max(vs) if vs else None,
}


def _sequence_exists(lists: list[list[tuple[datetime, int]]], within: Duration, tz: tzinfo) -> bool:
    """Is there a chain of distinct events, one per step, in time order within ``within``?

    Each list holds ``(time, position)`` candidates of one step, sorted. For steps
    after the first it is enough to try the unused candidates at the earliest
    feasible time (a later one never frees anything a later step could use), so
    the search branches only among events with equal timestamps.
    """
    k = len(lists)
    times = [[t for t, _ in cands] for cands in lists]
    used: set[int] = set()

    def extend(j: int, prev: datetime, deadline: datetime) -> bool:
        if j == k:
            return True
        cands, ts = lists[j], times[j]
        i = bisect.bisect_left(ts, prev)
        while i < len(cands):
            t = ts[i]
            if t > deadline:
                return False
            end = bisect.bisect_right(ts, t, lo=i)
            tried = False
            for _, pos in cands[i:end]:
                if pos in used:
                    continue
                tried = True
                used.add(pos)
                ok = extend(j + 1, t, deadline)
                used.discard(pos)
                if ok:
                    return True
            if tried:
                return False
            i = end
        return False

    for t1, pos1 in lists[0]:
        used.add(pos1)
        ok = extend(1, t1, within.after(t1, tz))
        used.discard(pos1)
        if ok:
            return True
    return False


class Predicate:
    """A compiled rule: call it with one profile, its events and ``now``.

    ``profile`` is a :class:`~segkit.records.Profile` or a mapping of attribute
    values already in the schema's Python types (see
    :meth:`~segkit.schema.Schema.validate_profile`). ``events`` are that profile's
    events (any order). ``now`` is needed only by time-relative rules; a naive
    ``now`` is read in the schema's time zone. ``key`` is needed by
    ``bucket(...)`` and ``in segment`` when ``profile`` is a plain mapping.

    >>> import segkit as sk
    >>> schema = sk.Schema(attributes={"tags": "list[string]"})
    >>> pred = sk.compile_predicate('tags has any ["vip", "beta"]', schema)
    >>> pred({"tags": ("beta",)}), pred({"tags": ()}), pred({})
    (True, False, False)
    >>> pred.rule
    Rule('tags has any ["vip", "beta"]')

    .. versionadded:: 0.1.0
    """

    __slots__ = ("_fn", "_tz", "rule", "schema")

    def __init__(self, rule: Rule, schema: Schema, fn: _Fn) -> None:
        self.rule = rule
        self.schema = schema
        self._fn = fn
        self._tz = schema.tz

    def __call__(
        self,
        profile: Mapping[str, Any] | Any,
        events: Iterable[Event] = (),
        now: datetime | None = None,
        *,
        key: str | None = None,
    ) -> bool:
        values: Mapping[str, Any]
        if type(profile) is dict or isinstance(profile, Mapping):
            values = profile
        else:
            values = profile.attributes
            if key is None:
                key = profile.key
        if now is not None and now.tzinfo is not timezone.utc:
            now = ensure_aware(now, self._tz, "now").astimezone(timezone.utc)
        return self._call(values, events, now, key, None)

    def _call(
        self,
        values: Mapping[str, Any],
        events: Iterable[Event],
        now: datetime | None,
        key: str | None,
        starts: dict[Duration, datetime] | None,
    ) -> bool:
        evs: Sequence[Event] = (
            events if isinstance(events, (list, tuple, Sequence)) else list(events)
        )
        try:
            return self._fn(values, _Ctx(evs, now, key, starts))
        except TypeError as exc:
            raise SchemaError(
                f"profile {key!r}: a value does not have its schema type ({exc});"
                " validate records with Schema.validate_profile first",
                key=key,
            ) from exc

    def __repr__(self) -> str:
        return f"<Predicate {str(self.rule)!r}>"

    def filter(
        self,
        profiles: Iterable[Any],
        events_of: Callable[[str], Iterable[Event]] | None = None,
        now: datetime | None = None,
    ) -> list[str]:
        """Keys of the :class:`~segkit.records.Profile` objects that match.

        ``events_of(key)`` supplies each profile's events (none when omitted).

        >>> import segkit as sk
        >>> schema = sk.Schema(attributes={"age": "int"})
        >>> people = [sk.Profile("a", {"age": 17}), sk.Profile("b", {"age": 40})]
        >>> sk.compile_predicate("age >= 18", schema).filter(people)
        ['b']
        """
        if now is not None and now.tzinfo is not timezone.utc:
            now = ensure_aware(now, self._tz, "now").astimezone(timezone.utc)
        starts: dict[Duration, datetime] = {}  # one ``now``: window starts computed once
        out = []
        for p in profiles:
            values: Mapping[str, Any]
            if type(p) is dict or isinstance(p, Mapping):
                values, key = p, None
            else:
                values, key = p.attributes, p.key
            evs = () if events_of is None else events_of(p.key)
            if self._call(values, evs, now, key, starts):
                out.append(p.key)
        return out


def compile_predicate(
    rule: RuleLike, schema: Schema, *, segments: SegmentResolver | None = None
) -> Predicate:
    """Type-check ``rule`` against ``schema`` and compile it into a :class:`Predicate`.

    ``segments`` resolves ``in segment "name"``: it is called as
    ``segments(name, profile_key)`` and returns membership.

    >>> import segkit as sk
    >>> schema = sk.Schema(attributes={"plan": "string"})
    >>> vip = {"c-1"}
    >>> pred = sk.compile_predicate('plan = "pro" or in segment "vip"', schema,
    ...                             segments=lambda name, key: key in vip)
    >>> pred(sk.Profile("c-1", {"plan": "free"})), pred(sk.Profile("c-2", {"plan": "free"}))
    (True, False)

    .. versionadded:: 0.1.0
    """
    checked = check(rule, schema)
    fn = _Compiler(schema, segments).compile(checked.expr)
    return Predicate(checked, schema, fn)


# --- event filters (one event's properties -> bool) ---------------------------------------------

#: Node types an event filter may contain (everything else needs a profile, a key or ``now``).
_FILTER_NODES: Final = (
    ast.And,
    ast.Or,
    ast.Not,
    ast.Compare,
    ast.InList,
    ast.Between,
    ast.StringOp,
    ast.Matches,
    ast.IsKnown,
    ast.HasList,
    ast.TimeCompare,
)

_FILTER_FORBIDDEN: Final[dict[type, str]] = {
    ast.Did: "'did'",
    ast.Sequence: "'did ... then'",
    ast.FirstTime: "'did ... for the first time'",
    ast.Aggregate: "an aggregate",
    ast.InSegment: "'in segment'",
    ast.Bucket: "'bucket'",
}
_FILTER_TIME_RELATIVE: Final[dict[type, str]] = {
    ast.InLast: "'in last'",
    ast.MoreThanAgo: "'more than ... ago'",
}
_TYPE_WORDS: Final = {"float": "number", "list[int]": "list", "list[string]": "list"}


def _literal_type(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "float"
    if isinstance(value, datetime):
        return "datetime"
    if isinstance(value, date):
        return "date"
    return "string"


def _node_type(node: ast.Node) -> str | None:
    """The property type a filter node implies (``None``: any type, e.g. ``is known``)."""
    if isinstance(node, (ast.StringOp, ast.Matches)):
        return "string"
    if isinstance(node, ast.HasList):
        return (
            "list[int]" if all(_literal_type(v) == "float" for v in node.values) else "list[string]"
        )
    if isinstance(node, ast.Compare):
        return _literal_type(node.value)
    if isinstance(node, ast.TimeCompare):
        return _literal_type(node.value)
    if isinstance(node, ast.Between):
        return _literal_type(node.low)
    if isinstance(node, ast.InList):
        kinds = {_literal_type(v) for v in node.values}
        return kinds.pop() if len(kinds) == 1 else "string"
    return None


_FITS: Final[dict[str, Callable[[Any], bool]]] = {
    "string": lambda v: isinstance(v, str),
    "bool": lambda v: isinstance(v, bool),
    "float": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "datetime": lambda v: isinstance(v, datetime) and v.utcoffset() is not None,
    "date": lambda v: isinstance(v, date) and not isinstance(v, datetime),
    "list[string]": lambda v: isinstance(v, (list, tuple, set, frozenset)),
    "list[int]": lambda v: isinstance(v, (list, tuple, set, frozenset)),
}


def compile_event_filter(
    where: RuleLike,
    event: str,
    schema: Schema | None = None,
    *,
    timezone: str | tzinfo | None = None,
) -> Callable[[Mapping[str, Any]], bool]:
    """Compile a ``where`` condition over one event's properties into ``properties -> bool``.

    ``where`` is rule text (or a :class:`~segkit.dsl.rule.Rule` or builder) in which
    bare names are the properties of an ``event`` event, as after ``did EVENT where``:
    comparisons, ``in``, ``between``, string operators, ``matches``, ``is [not]
    known`` and ``has``, combined with ``and``, ``or`` and ``not``. Conditions that need
    a profile, a key or the current time (``did``, aggregates, ``in segment``,
    ``bucket``, ``in last``, ``more than … ago``) raise :class:`~segkit.errors.RuleTypeError`.

    With a ``schema``, the event and its properties must be declared (unknown names
    raise :class:`~segkit.errors.UnknownEventError` or
    :class:`~segkit.errors.UnknownPropertyError` with a suggestion) and property
    values are expected in their schema types. Without one, each property's type is
    taken from the literal it is compared with, and a value of another type is read as
    missing. ``timezone`` reads naive datetime literals when no schema gives a zone.

    >>> from segkit.compile.predicate import compile_event_filter
    >>> is_button = compile_event_filter('`$el.tag_name` = "button" and amount >= 10', "click")
    >>> is_button({"$el.tag_name": "button", "amount": 12}), is_button({"amount": 12})
    (True, False)
    >>> is_button({"$el.tag_name": "button", "amount": "12"})   # a string is not a number
    False
    >>> compile_event_filter("did purchase", "click")
    Traceback (most recent call last):
    ...
    segkit.errors.RuleTypeError: 'did' cannot be used in an event filter: it reads one event's properties (line 1, column 1)
      did purchase
      ^^^^^^^^^^^^

    .. versionadded:: 0.1.0
    """
    from segkit._suggest import suggest
    from segkit.dsl.check import iter_type_errors
    from segkit.dsl.rule import Rule, as_rule
    from segkit.errors import RuleTypeError, UnknownEventError
    from segkit.schema import Schema as _Schema

    rule = as_rule(where)
    source = rule.source
    for node in ast.iter_nodes(rule.expr):
        if not isinstance(node, _FILTER_NODES):
            relative = _FILTER_TIME_RELATIVE.get(type(node))
            message = (
                f"{relative} depends on the current time and cannot be used in an event filter"
                if relative is not None
                else f"{_FILTER_FORBIDDEN.get(type(node), type(node).__name__)} cannot be used"
                " in an event filter: it reads one event's properties"
            )
            raise RuleTypeError(message, source, node.span if source else None)
    guards: dict[str, Callable[[Any], bool]] = {}
    if schema is None:
        types: dict[str, str] = {}
        for node in ast.iter_nodes(rule.expr):
            field = getattr(node, "field", None)
            if field is None:
                continue
            kind = _node_type(node)
            known = types.get(field)
            if kind is None:
                types.setdefault(field, "string")
                continue
            if known is not None and known != kind and field in guards:
                raise RuleTypeError(
                    f"property {field!r} is compared with a {_TYPE_WORDS.get(known, known)}"
                    f" and with a {_TYPE_WORDS.get(kind, kind)}",
                    source,
                    node.span if source else None,
                )
            types[field] = kind
            guards[field] = _FITS[kind]
        check_schema = _Schema(events={event: types}, timezone=timezone)
    else:
        if not schema.has_event(event):
            raise UnknownEventError(
                f"unknown event {event!r}", suggestion=suggest(event, schema.events)
            )
        check_schema = schema
    wrapped = Rule(ast.Did(event, rule.expr, span=rule.expr.span), source)
    for error in iter_type_errors(wrapped, check_schema):
        raise error
    fn = _Compiler(check_schema, None).compile(rule.expr, event)
    ctx = _Ctx((), None, None)
    if schema is not None:
        return lambda properties: fn(properties, ctx)
    checks = tuple(guards.items())

    def event_filter(properties: Mapping[str, Any]) -> bool:
        for name, fits in checks:
            value = properties.get(name)
            if value is not None and not fits(value):  # read mistyped values as missing
                properties = {
                    k: v for k, v in properties.items() if k not in guards or guards[k](v)
                }
                break
        return fn(properties, ctx)

    return event_filter
