"""Compile a checked rule into a bitmap plan executed on the index.

Every plan node takes a set of *candidate* ids and returns the subset that
matches. Attribute leaves are answered by the attribute indexes (value bitmaps,
sorted columns, element bitmaps, ``known`` bitmaps); ``and`` runs those leaves
first, intersecting smallest first, and only then evaluates the leaves no index
answers (event predicates, ``bucket``) with the compiled predicate, on the ids
still in play. Event leaves are further restricted to the profiles that have an
event of the right name, unless the leaf holds for a profile with no events at
all (``did x < 3 times``), in which case those profiles are added back without
evaluation. The result always equals filtering with the predicate.

.. versionadded:: 0.1.0
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import date, datetime, time, timedelta, timezone, tzinfo
from typing import TYPE_CHECKING, Any, Protocol

from segkit.compile.predicate import SegmentResolver, _Compiler, _Ctx
from segkit.dsl import ast
from segkit.dsl.check import check
from segkit.dsl.parser import compile_regex
from segkit.index import AttributeIndex, Bitmap, EventIndex
from segkit.progress import ProgressLike, Reporter
from segkit.progress import start as start_progress
from segkit.timeutil import Duration, ensure_aware

if TYPE_CHECKING:
    from segkit.dsl.rule import Rule, RuleLike
    from segkit.records import Event
    from segkit.schema import FieldType, Schema

__all__ = ["IndexView", "Plan", "compile_plan"]


class IndexView(Protocol):
    """What a plan reads: the Engine implements it."""

    @property
    def universe(self) -> Bitmap: ...

    @property
    def event_index(self) -> EventIndex: ...

    def attribute_index(self, name: str) -> AttributeIndex | None: ...

    def segment_ids(self, name: str) -> Bitmap: ...

    def attributes_of(self, pid: int) -> Mapping[str, Any]: ...

    def events_of(self, pid: int) -> Sequence[Event]: ...

    def key_of(self, pid: int) -> str: ...


class _Run:
    """One execution: the view, ``now`` and what reports progress (or None)."""

    __slots__ = ("now", "reporter", "view")

    def __init__(
        self, view: IndexView, now: datetime | None, reporter: Reporter | None = None
    ) -> None:
        self.view = view
        self.now = now
        self.reporter = reporter

    def now_required(self) -> datetime:
        if self.now is None:
            raise ValueError("this rule is relative to the current time: pass now=")
        return self.now


# fn(run, candidates) -> the matching subset of candidates
_Step = Callable[[_Run, Bitmap], Bitmap]
# fn(run) -> every id matching an index leaf (not yet restricted to candidates)
_Leaf = Callable[[_Run], Bitmap]


def _day_start(d: date, tz: tzinfo) -> datetime:
    return datetime.combine(d, time(0), tzinfo=tz).astimezone(timezone.utc)


class _PlanCompiler:
    def __init__(self, schema: Schema, segments: SegmentResolver | None) -> None:
        self.schema = schema
        self.tz: tzinfo = schema.tz or timezone.utc
        self.predicates = _Compiler(schema, segments)

    # --- structure -------------------------------------------------------------------------

    def step(self, node: ast.Expr) -> _Step:
        if isinstance(node, ast.And):
            return self.and_step(node)
        if isinstance(node, ast.Or):
            parts = [self.step(item) for item in node.items]

            def any_of(run: _Run, cand: Bitmap) -> Bitmap:
                out = Bitmap()
                rest = cand
                for part in parts:
                    hit = part(run, rest)
                    out |= hit
                    rest = rest - hit
                    if not rest:
                        break
                return out

            return any_of
        if isinstance(node, ast.Not):
            inner = self.step(node.operand)
            return lambda run, cand: cand - inner(run, cand)
        leaf = self.leaf(node)
        if leaf is not None:
            return lambda run, cand: leaf(run) & cand
        return self.fallback(node)

    def and_step(self, node: ast.And) -> _Step:
        leaves: list[_Leaf] = []
        others: list[_Step] = []
        for item in node.items:
            leaf = self.leaf(item)
            if leaf is not None:
                leaves.append(leaf)
            else:
                others.append(self.step(item))

        def all_of(run: _Run, cand: Bitmap) -> Bitmap:
            if leaves:
                bitmaps = sorted((leaf(run) for leaf in leaves), key=len)  # smallest first
                for bm in bitmaps:
                    cand = cand & bm
                    if not cand:
                        return cand
            for part in others:
                cand = part(run, cand)
                if not cand:
                    break
            return cand

        return all_of

    # --- predicate fallback ----------------------------------------------------------------

    def fallback(self, node: ast.Expr) -> _Step:
        fn = self.predicates.compile(node)
        names = _event_names(node)

        def evaluate(run: _Run, ids: Bitmap) -> Bitmap:
            view, now = run.view, run.now
            starts: dict[Duration, datetime] = {}  # window starts, once per run
            checked: Iterable[int] = ids if run.reporter is None else run.reporter.iterate(ids)
            return Bitmap(
                pid
                for pid in checked
                if fn(
                    view.attributes_of(pid),
                    _Ctx(view.events_of(pid), now, view.key_of(pid), starts),
                )
            )

        if not names or _reads_attributes(node):
            return evaluate

        def event_leaf(run: _Run, cand: Bitmap) -> Bitmap:
            having = run.view.event_index.having(names) & cand
            matched = evaluate(run, having)
            # a profile with no such event: one evaluation decides for all of them
            if fn({}, _Ctx((), run.now, "")):
                matched |= cand - having
            return matched

        return event_leaf

    # --- index leaves ----------------------------------------------------------------------

    def leaf(self, node: ast.Expr) -> _Leaf | None:
        """An index-answered leaf, or None when the predicate must decide."""
        if isinstance(node, ast.InSegment):
            name, negated = node.segment, node.negated
            if negated:
                return lambda run: run.view.universe - run.view.segment_ids(name)
            return lambda run: run.view.segment_ids(name)
        if not isinstance(node, ast.FIELD_NODES):
            return None
        field: str = node.field
        ftype = self.schema.attribute_type(field)
        assert ftype is not None  # checked
        answer = self.field_leaf(node, ftype)
        if answer is None:
            return None

        def run_leaf(run: _Run) -> Bitmap:
            idx = run.view.attribute_index(field)
            if idx is None:
                idx = AttributeIndex(is_list=ftype.is_list)
            return answer(run, idx)

        return run_leaf

    def field_leaf(
        self, node: Any, ftype: FieldType
    ) -> Callable[[_Run, AttributeIndex], Bitmap] | None:
        tz = self.tz
        if isinstance(node, ast.IsKnown):
            if node.negated:
                return lambda run, idx: run.view.universe - idx.known
            return lambda run, idx: idx.known.copy()
        if isinstance(node, ast.HasList):
            values, mode = node.values, node.mode

            def has_list(run: _Run, idx: AttributeIndex) -> Bitmap:
                parts = idx.elements(values)
                if mode == "any":
                    return Bitmap.union(*parts) if parts else Bitmap()
                if mode == "all":
                    out = idx.known.copy()
                    for bm in parts:
                        out &= bm
                    return out
                return idx.known - (Bitmap.union(*parts) if parts else Bitmap())

            return has_list
        if isinstance(node, ast.StringOp):
            ci, negated = node.case_insensitive, node.negated
            text = node.value.casefold() if ci else node.value
            method = {
                "contains": str.__contains__,
                "starts_with": str.startswith,
                "ends_with": str.endswith,
            }[node.op]
            return lambda run, idx: idx.where(
                lambda v: method(v.casefold() if ci else v, text) != negated
            )
        if isinstance(node, ast.Matches):
            search, negated = compile_regex(node.pattern, node.flags).search, node.negated
            return lambda run, idx: idx.where(lambda v: (search(v) is not None) != negated)
        if isinstance(node, ast.Compare):
            op, value = node.op, node.value
            if op == "!=":
                eq = self.interval(ftype, "=", value)
                return lambda run, idx: idx.known - _interval_ids(idx, eq)
            bounds = self.interval(ftype, op, value)
            return lambda run, idx: _interval_ids(idx, bounds)
        if isinstance(node, ast.InList):
            intervals = [self.interval(ftype, "=", v) for v in node.values]
            negated = node.negated

            def in_list(run: _Run, idx: AttributeIndex) -> Bitmap:
                parts = [_interval_ids(idx, b) for b in intervals]
                hit = Bitmap.union(*parts) if parts else Bitmap()
                return idx.known - hit if negated else hit

            return in_list
        if isinstance(node, ast.Between):
            low = self.interval(ftype, ">=", node.low)
            high = self.interval(ftype, "<=", node.high)
            bounds = (low[0], high[1], low[2], high[3])
            if node.negated:
                return lambda run, idx: idx.known - _interval_ids(idx, bounds)
            return lambda run, idx: _interval_ids(idx, bounds)
        if isinstance(node, ast.TimeCompare):
            bounds = self.interval(ftype, "<" if node.op == "before" else ">", node.value)
            return lambda run, idx: _interval_ids(idx, bounds)
        if isinstance(node, ast.InLast):
            duration, negated, is_date = node.duration, node.negated, ftype.value == "date"

            def in_last(run: _Run, idx: AttributeIndex) -> Bitmap:
                now = run.now_required()
                start: Any = duration.before(now, tz)
                end: Any = now
                if is_date:
                    start, end = start.astimezone(tz).date(), now.astimezone(tz).date()
                hit = idx.range(start, end, low_inclusive=False)
                return idx.known - hit if negated else hit

            return in_last
        if isinstance(node, ast.MoreThanAgo):
            duration, is_date = node.duration, ftype.value == "date"

            def ago(run: _Run, idx: AttributeIndex) -> Bitmap:
                start: Any = duration.before(run.now_required(), tz)
                if is_date:
                    start = start.astimezone(tz).date()
                return idx.range(None, start)

            return ago
        return None

    def interval(self, ftype: FieldType, op: str, value: Any) -> _Bounds:
        """``field op value`` as an interval over stored values (or an equality key)."""
        tz = self.tz
        if ftype.value == "datetime" and isinstance(value, datetime):
            value = ensure_aware(value, tz).astimezone(timezone.utc)
        elif ftype.value == "date" and isinstance(value, datetime):
            value = ensure_aware(value, tz).astimezone(tz).date()
        elif ftype.value == "datetime" and isinstance(value, date):
            # compare the stored instant's local calendar date with a date
            start, nxt = _day_start(value, tz), _day_start(value + timedelta(days=1), tz)
            return {
                "=": (start, nxt, True, False),
                "<": (None, start, True, False),
                "<=": (None, nxt, True, False),
                ">": (nxt, None, True, True),
                ">=": (start, None, True, True),
            }[op]
        if op == "=":
            return (_EQUAL, value, True, True)
        return {
            "<": (None, value, True, False),
            "<=": (None, value, True, True),
            ">": (value, None, False, True),
            ">=": (value, None, True, True),
        }[op]


#: (low, high, low_inclusive, high_inclusive); low=_EQUAL means "equal to high".
_Bounds = tuple[Any, Any, bool, bool]
_EQUAL = object()


def _interval_ids(idx: AttributeIndex, bounds: _Bounds) -> Bitmap:
    low, high, low_inclusive, high_inclusive = bounds
    if low is _EQUAL:
        return idx.equal(high)
    return idx.range(low, high, low_inclusive=low_inclusive, high_inclusive=high_inclusive)


def _event_names(node: ast.Expr) -> list[str]:
    if isinstance(node, (ast.Did, ast.FirstTime, ast.Aggregate)):
        return [node.event]
    if isinstance(node, ast.Sequence):
        return [s.event for s in node.steps]
    return []


def _reads_attributes(node: ast.Expr) -> bool:
    return isinstance(node, ast.Bucket)


class Plan:
    """A compiled bitmap plan: ``plan.execute(view, now)`` returns the matching ids.

    Usually run for you by :class:`~segkit.Engine`; see :func:`compile_plan`.

    >>> import segkit as sk
    >>> engine = sk.Engine(sk.Schema(attributes={"age": "int"}))
    >>> _ = engine.upsert_many([("a", {"age": 17}), ("b", {"age": 30})])
    >>> plan = sk.compile_plan("age >= 18", engine.schema)
    >>> sorted(plan.execute(engine))
    [1]

    .. versionadded:: 0.1.0
    """

    __slots__ = ("_step", "rule", "schema")

    def __init__(self, rule: Rule, schema: Schema, step: _Step) -> None:
        self.rule = rule
        self.schema = schema
        self._step = step

    def execute(
        self,
        view: IndexView,
        now: datetime | None = None,
        *,
        within: Bitmap | None = None,
        progress: ProgressLike = None,
    ) -> Bitmap:
        """The ids (within ``within``, default every live profile) that match at ``now``.

        ``progress`` (see :mod:`segkit.progress`) counts the profiles that the
        predicate fallback checks one by one (bitmap steps are not counted); their
        number is not known in advance, so the total is None until the final call.
        """
        if now is not None:
            now = ensure_aware(now, self.schema.tz, "now").astimezone(timezone.utc)
        candidates = view.universe if within is None else within & view.universe
        if not progress:
            return self._step(_Run(view, now), candidates)
        reporter = start_progress(progress, None, desc="profiles checked")
        assert isinstance(reporter, Reporter)  # progress is set
        ids = self._step(_Run(view, now, reporter), candidates)
        reporter.finish()
        return ids

    def execute_cardinality(self, view: IndexView, now: datetime | None = None) -> int:
        """How many profiles match (same as ``len(execute(...))``)."""
        return len(self.execute(view, now))

    def __repr__(self) -> str:
        return f"<Plan {str(self.rule)!r}>"


def compile_plan(
    rule: RuleLike, schema: Schema, *, segments: SegmentResolver | None = None
) -> Plan:
    """Type-check ``rule`` and compile it into a :class:`Plan`.

    ``segments(name, key)`` is only needed when the predicate fallback must decide
    an ``in segment`` inside an event-free context; the Engine passes its own.

    >>> import segkit as sk
    >>> schema = sk.Schema(attributes={"age": "int", "plan": "string"})
    >>> plan = sk.compile_plan('age >= 18 and plan = "pro"', schema)
    >>> plan
    <Plan 'age >= 18 and plan = "pro"'>
    >>> engine = sk.Engine(schema)
    >>> _ = engine.upsert_many({"a": {"age": 20, "plan": "pro"}, "b": {"age": 20}})
    >>> plan.execute_cardinality(engine)
    1

    .. versionadded:: 0.1.0
    """
    checked = check(rule, schema)
    return Plan(checked, schema, _PlanCompiler(schema, segments).step(checked.expr))
