"""Sanity tests of the reference model (``tests/reference.py``) on hand-computed cases.

The reference model is the oracle for the compiled predicate, so it gets its own
exact-answer tests; and the strategies that feed it get a coverage smoke test.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime, timedelta, timezone
from typing import Any

from hypothesis import Phase, given, settings
from hypothesis import strategies as st

from reference import reference_eval
from segkit.dsl import ast
from segkit.dsl.ast import (
    Aggregate,
    And,
    Between,
    BetweenWindow,
    Bucket,
    Compare,
    Did,
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
    iter_nodes,
)
from segkit.records import Event
from segkit.timeutil import Duration
from strategies import (
    NOW,
    TEST_ATTRIBUTES,
    TEST_EVENTS,
    TEST_TZ,
    event_lists,
    exprs,
    profiles,
    segment_memberships,
)

UTC = timezone.utc
D = Duration.parse


def paris(*args: int) -> datetime:
    return datetime(*args, tzinfo=TEST_TZ)


def ev(name: str, at: datetime, **props: Any) -> Event:
    return Event("c-1", name, at, props)


def check(expr: Any, attrs: Mapping[str, Any] | None = None, events: Any = (), **kw: Any) -> bool:
    return reference_eval(expr, attrs or {}, events, NOW, tz=TEST_TZ, key="c-1", **kw)


# --- attribute predicates ----------------------------------------------------------------------


def test_compare_on_missing_is_false_for_every_op() -> None:
    """A comparison on an absent or None attribute is false, whatever the operator."""
    for op in ast.COMPARE_OPS:
        assert check(Compare("age", op, 30), {}) is False
        assert check(Compare("age", op, 30), {"age": None}) is False


def test_not_equal_on_missing_is_false() -> None:
    """`!=` means known and different: false on missing, true on another known value."""
    assert check(Compare("country", "!=", "FR"), {"country": None}) is False
    assert check(Compare("country", "!=", "FR"), {"country": "DE"}) is True


def test_not_includes_missing() -> None:
    """`not (…)` is the full complement, so it holds when the attribute is missing."""
    assert check(Not(Compare("country", "=", "FR")), {}) is True


def test_negated_in_list_on_missing_is_false() -> None:
    """`not in [...]` needs a known value that is none of the listed ones."""
    expr = InList("country", ("FR", "DE"), negated=True)
    assert check(expr, {}) is False
    assert check(expr, {"country": "ES"}) is True
    assert check(expr, {"country": "FR"}) is False


def test_strings_are_case_sensitive_and_numbers_numeric() -> None:
    """`=` on strings is case-sensitive; an int value compares numerically with a float literal."""
    assert check(Compare("country", "=", "FR"), {"country": "fr"}) is False
    assert check(Compare("ltv", ">=", 3.0), {"ltv": 3}) is True


def test_case_insensitive_string_ops_use_casefold() -> None:
    """`icontains "SS"` matches "Straße" (casefold gives "strasse"; lower() would not)."""
    assert check(
        StringOp("country", "contains", "SS", case_insensitive=True), {"country": "Straße"}
    )
    assert not check(StringOp("country", "contains", "SS"), {"country": "Straße"})


def test_negated_string_op_on_missing_is_false() -> None:
    """`not starts_with` is false on a missing value, true on a known non-matching one."""
    expr = StringOp("email", "starts_with", "a", negated=True)
    assert check(expr, {}) is False
    assert check(expr, {"email": "b@x"}) is True


def test_matches_multiline_flag() -> None:
    """`/^a/m` finds "a" at the start of the second line; `/^a/` does not."""
    assert check(Matches("email", "^a", "m"), {"email": "x\nab"}) is True
    assert check(Matches("email", "^a", ""), {"email": "x\nab"}) is False


def test_is_known_counts_empty_list_and_negation_finds_none() -> None:
    """An empty list is known; `is not known` holds for a None value."""
    assert check(IsKnown("tags"), {"tags": ()}) is True
    assert check(IsKnown("tags", negated=True), {"tags": None}) is True


def test_has_none_needs_a_known_list() -> None:
    """`has none [...]` is false on a missing list and true on a list without those values."""
    assert check(HasList("tags", "none", ("b",)), {}) is False
    assert check(HasList("tags", "none", ("b",)), {"tags": ("a",)}) is True
    assert check(HasList("tags", "all", ("a", "b")), {"tags": ("a",)}) is False


def test_datetime_attribute_against_date_literal_uses_local_date() -> None:
    """2024-03-30 23:30 UTC is 2024-03-31 00:30 in Paris, so it equals @2024-03-31."""
    attrs = {"last_seen": datetime(2024, 3, 30, 23, 30, tzinfo=UTC)}
    assert check(Compare("last_seen", "=", date(2024, 3, 31)), attrs) is True
    assert check(Between("last_seen", date(2024, 3, 1), date(2024, 3, 30)), attrs) is False


def test_time_compare_date_attribute_against_datetime_literal() -> None:
    """A date attribute is compared (strictly) with the local date of a datetime literal."""
    literal = datetime(2024, 3, 30, 23, 30, tzinfo=UTC)  # 2024-03-31 in Paris
    assert check(TimeCompare("signed_up", "before", literal), {"signed_up": date(2024, 3, 30)})
    assert not check(TimeCompare("signed_up", "before", literal), {"signed_up": date(2024, 3, 31)})


def test_in_last_1d_across_paris_dst_change() -> None:
    """`in last 1d` at 2024-03-31 12:00 Paris starts at 03-30 12:00 (23 real hours)."""
    assert check(InLast("last_seen", D("1d")), {"last_seen": paris(2024, 3, 30, 12, 30)})
    assert not check(InLast("last_seen", D("1d")), {"last_seen": paris(2024, 3, 30, 11, 30)})
    window = Did("page_view", window=LastWindow(D("1d")))
    assert check(window, events=[ev("page_view", paris(2024, 3, 30, 12, 30))]) is True
    assert check(window, events=[ev("page_view", paris(2024, 3, 30, 11, 30))]) is False


def test_in_last_1mo_uses_calendar_months() -> None:
    """`in last 1mo` from 2024-03-31 starts on 2024-02-29 (clamped), not 30 days earlier."""
    assert check(InLast("last_seen", D("1mo")), {"last_seen": paris(2024, 2, 29, 13, 0)})
    assert not check(InLast("last_seen", D("1mo")), {"last_seen": paris(2024, 2, 29, 11, 0)})
    assert check(InLast("signed_up", D("1mo")), {"signed_up": date(2024, 3, 1)}) is True
    assert check(InLast("signed_up", D("1mo")), {"signed_up": date(2024, 2, 29)}) is False


def test_more_than_ago_on_a_date() -> None:
    """`more than 30d ago` on a date holds up to and including 2024-03-01."""
    assert check(MoreThanAgo("signed_up", D("30d")), {"signed_up": date(2024, 3, 1)}) is True
    assert check(MoreThanAgo("signed_up", D("30d")), {"signed_up": date(2024, 3, 2)}) is False


def test_in_segment_and_bucket() -> None:
    """`in segment` asks the callable; bucket("exp-7") of "c-1" is 1058."""
    assert check(InSegment("vip"), segments={"vip"}.__contains__) is True
    assert check(InSegment("vip", negated=True), segments={"vip"}.__contains__) is False
    assert check(Bucket("exp-7", 1058, 1058)) is True
    assert check(Bucket("exp-7", 0, 1057)) is False


# --- behavioural predicates --------------------------------------------------------------------


def test_did_fewer_than_three_times_without_events() -> None:
    """`did X < 3 times in last 30d` holds for a profile that never did X; `did X` does not."""
    assert check(Did("purchase", None, "<", 3, LastWindow(D("30d"))), events=[]) is True
    assert check(Did("purchase"), events=[]) is False


def test_did_where_reads_event_properties() -> None:
    """`where` sees the event's properties; an event missing the property does not match."""
    expr = Did("purchase", Compare("amount", ">", 10.0))
    assert check(expr, events=[ev("purchase", paris(2024, 3, 1, 9, 0))]) is False
    assert check(expr, events=[ev("purchase", paris(2024, 3, 1, 9, 0), amount=12.5)]) is True


def test_no_window_includes_future_events() -> None:
    """Without a window every event counts, even one after `now`."""
    assert check(Did("signup"), events=[ev("signup", paris(2024, 4, 2, 9, 0))]) is True


def test_between_window_date_bounds_cover_local_days() -> None:
    """A date-bounded window compares the event's local (Paris) date, both ends included."""
    window = BetweenWindow(date(2024, 3, 31), date(2024, 3, 31))
    inside = ev("signup", datetime(2024, 3, 30, 23, 30, tzinfo=UTC))  # 00:30 Paris on the 31st
    outside = ev("signup", datetime(2024, 3, 30, 22, 30, tzinfo=UTC))  # 23:30 Paris on the 30th
    assert check(Did("signup", window=window), events=[inside]) is True
    assert check(Did("signup", window=window), events=[outside]) is False


def test_avg_over_no_events_is_false_for_every_op() -> None:
    """avg/min/max of no events are unknown: every comparison is false, even `!=`."""
    events = [ev("purchase", paris(2024, 3, 1, 9, 0))]  # no amount: skipped
    for func in ("avg", "min", "max"):
        for op in ast.COMPARE_OPS:
            assert (
                check(Aggregate(func, "purchase", "amount", None, None, op, 0.0), {}, []) is False
            )
            assert (
                check(Aggregate(func, "purchase", "amount", None, None, op, 0.0), {}, events)
                is False
            )


def test_sum_and_count_over_no_events_are_zero() -> None:
    """sum and count of no events are 0."""
    assert check(Aggregate("sum", "purchase", "amount", None, None, "=", 0)) is True
    assert check(Aggregate("count", "purchase", None, None, None, "=", 0)) is True
    assert check(Aggregate("sum", "purchase", "amount", None, None, ">", 0)) is False


def test_avg_skips_events_missing_the_property() -> None:
    """avg(purchase.amount) over 10, missing, 20 is 15."""
    events = [
        ev("purchase", paris(2024, 3, 1), amount=10.0),
        ev("purchase", paris(2024, 3, 2), amount=None),
        ev("purchase", paris(2024, 3, 3), amount=20.0),
    ]
    assert check(Aggregate("avg", "purchase", "amount", None, None, "=", 15.0), {}, events)


def test_sequence_allows_equal_times_but_not_one_event_twice() -> None:
    """A then B at the same instant holds; one page_view cannot be both steps."""
    at = paris(2024, 3, 20, 10, 0)
    a_then_b = Sequence((SeqStep("page_view"), SeqStep("purchase")), D("1h"))
    assert check(a_then_b, events=[ev("purchase", at), ev("page_view", at)]) is True
    twice = Sequence((SeqStep("page_view"), SeqStep("page_view")), D("1h"))
    assert check(twice, events=[ev("page_view", at)]) is False
    assert check(twice, events=[ev("page_view", at), ev("page_view", at)]) is True


def test_sequence_needs_order_and_within() -> None:
    """B before A, or B later than A + within, does not make `A then B`."""
    expr = Sequence((SeqStep("page_view"), SeqStep("purchase")), D("1d"))
    a, b = paris(2024, 3, 20, 10, 0), paris(2024, 3, 21, 10, 0)
    assert check(expr, events=[ev("page_view", a), ev("purchase", b)]) is True
    assert check(expr, events=[ev("page_view", b), ev("purchase", a)]) is False
    late = b + timedelta(seconds=1)
    assert check(expr, events=[ev("page_view", a), ev("purchase", late)]) is False


def test_first_time_looks_at_all_events() -> None:
    """The first purchase ever must lie in the window; an older one outside it spoils it."""
    expr = FirstTime("purchase", None, LastWindow(D("30d")))
    recent = ev("purchase", paris(2024, 3, 29, 10, 0), amount=200.0)
    old = ev("purchase", paris(2024, 2, 1, 10, 0), amount=5.0)
    assert check(expr, events=[recent]) is True
    assert check(expr, events=[recent, old]) is False
    big = FirstTime("purchase", Compare("amount", ">", 100.0), LastWindow(D("30d")))
    assert check(big, events=[recent, old]) is True


# --- strategies ---------------------------------------------------------------------------------

EXPR_TYPES = frozenset(t.__name__ for t in ast.Expr.__args__)  # type: ignore[attr-defined]


def test_strategies_cover_every_node_type() -> None:
    """300 draws of exprs() contain each of the 19 Expr node types."""
    seen: set[str] = set()

    @settings(max_examples=300, phases=[Phase.generate], database=None, deadline=None)
    @given(exprs())
    def collect(expr: Any) -> None:
        seen.update(type(n).__name__ for n in iter_nodes(expr))

    collect()
    assert len(EXPR_TYPES) == 19
    assert sorted(EXPR_TYPES - seen) == []


def _value_ok(type_name: str, value: Any) -> bool:
    """Whether a rule literal has the type of the field it is compared with."""
    if type_name == "datetime":
        return isinstance(value, date)  # a datetime, or a date (compared with the local date)
    if type_name == "date":
        return type(value) is date
    return type(value) is {"string": str, "int": int, "float": float, "bool": bool}[type_name]


def _assert_well_typed(expr: Any, fields: Mapping[str, str], *, in_where: bool = False) -> None:
    """Walk ``expr``: every field exists in ``fields`` and is used with literals of its type."""
    if isinstance(expr, (And, Or)):
        assert 2 <= len(expr.items) <= 3
        for item in expr.items:
            _assert_well_typed(item, fields, in_where=in_where)
    elif isinstance(expr, Not):
        _assert_well_typed(expr.operand, fields, in_where=in_where)
    elif isinstance(expr, ast.FIELD_NODES):
        type_name = fields[expr.field]
        is_list = type_name.startswith("list[")
        assert isinstance(expr, (IsKnown, HasList)) or not is_list, expr
        if isinstance(expr, HasList):
            assert is_list
            assert all(_value_ok(type_name[5:-1], v) for v in expr.values), expr
        if isinstance(expr, (Compare, TimeCompare)):
            assert _value_ok(type_name, expr.value), expr
        if isinstance(expr, InList):
            assert all(_value_ok(type_name, v) for v in expr.values), expr
        if isinstance(expr, Between):
            assert _value_ok(type_name, expr.low), expr
            assert _value_ok(type_name, expr.high), expr
        if isinstance(expr, (StringOp, Matches)):
            assert type_name == "string", expr
        if isinstance(expr, (InLast, MoreThanAgo, TimeCompare)):
            assert type_name in ("date", "datetime"), expr
    else:
        assert not in_where, f"{expr!r} inside a where clause"
        if isinstance(expr, Sequence):
            assert 2 <= len(expr.steps) <= 3
            wheres = [(step.event, step.where) for step in expr.steps]
        elif isinstance(expr, (Did, FirstTime, Aggregate)):
            wheres = [(expr.event, expr.where)]
        else:
            assert isinstance(expr, (InSegment, Bucket)), expr
            wheres = []
        for event, where in wheres:
            if where is not None:
                _assert_well_typed(where, TEST_EVENTS[event], in_where=True)
        if isinstance(expr, Aggregate):
            assert (expr.prop is None) == (expr.func == "count")
            if expr.prop is not None:
                assert TEST_EVENTS[expr.event][expr.prop] in ("int", "float")
        if isinstance(expr, Bucket):
            assert 0 <= expr.low <= expr.high <= 9999


@settings(deadline=None)
@given(st.data(), exprs(), profiles(), segment_memberships())
def test_generated_rules_are_well_typed_and_evaluate(
    data: st.DataObject, expr: Any, profile: Any, member_of: frozenset[str]
) -> None:
    """Generated rules are well typed; the model gives a bool, `not` is its complement."""
    _assert_well_typed(expr, TEST_ATTRIBUTES)
    key, attrs = profile
    events = data.draw(event_lists(key))

    def run(e: Any) -> bool:
        return reference_eval(
            e, attrs, events, NOW, tz=TEST_TZ, key=key, segments=member_of.__contains__
        )

    result = run(expr)
    assert isinstance(result, bool)
    assert run(Not(expr)) is (not result)
    assert run(And((expr, expr))) is result
