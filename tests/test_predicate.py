"""The compiled predicate agrees with the reference model, and handles time and inputs right."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

import segkit as sk
from reference import reference_eval
from segkit.dsl import ast
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

SCHEMA = sk.Schema(attributes=TEST_ATTRIBUTES, events=TEST_EVENTS, timezone=TEST_TZ)
PARIS = ZoneInfo("Europe/Paris")
UTC = timezone.utc


@st.composite
def cases(draw: st.DrawFn) -> tuple[ast.Expr, str, dict[str, Any], list[sk.Event], frozenset[str]]:
    expr = draw(exprs())
    key, attrs = draw(profiles())
    return expr, key, attrs, draw(event_lists(key)), draw(segment_memberships())


@given(cases())
def test_predicate_agrees_with_reference_model(
    case: tuple[ast.Expr, str, dict[str, Any], list[sk.Event], frozenset[str]],
) -> None:
    """For random well-typed rules and profiles, the compiled predicate equals the reference."""
    expr, key, attrs, events, member_of = case
    rule = sk.Rule(expr)
    pred = sk.compile_predicate(rule, SCHEMA, segments=lambda name, _key: name in member_of)
    expected = reference_eval(
        expr, attrs, events, NOW, tz=TEST_TZ, key=key, segments=lambda name: name in member_of
    )
    assert pred(attrs, events, NOW, key=key) is expected, str(rule)
    # the same answer when the events arrive in another order, or as a generator
    assert pred(attrs, list(reversed(events)), NOW, key=key) is expected
    assert pred(sk.Profile(key, attrs), iter(events), NOW) is expected


@given(cases())
def test_not_is_the_full_complement(
    case: tuple[ast.Expr, str, dict[str, Any], list[sk.Event], frozenset[str]],
) -> None:
    """``not R`` holds exactly where ``R`` does not, missing values included."""
    expr, key, attrs, events, member_of = case
    segments = lambda name, _key: name in member_of  # noqa: E731
    pred = sk.compile_predicate(sk.Rule(expr), SCHEMA, segments=segments)
    negated = sk.compile_predicate(~sk.Rule(expr), SCHEMA, segments=segments)
    assert negated(attrs, events, NOW, key=key) is not pred(attrs, events, NOW, key=key)


def ev(name: str, at: datetime, **props: Any) -> sk.Event:
    return sk.Event("c-1", name, at, props)


SHOP = sk.Schema(
    attributes={"age": "int", "seen": "datetime", "joined": "date", "email": "string"},
    events={"buy": {"amount": "float"}, "view": {}},
    timezone="Europe/Paris",
)


def test_in_last_days_is_calendar_days_across_dst() -> None:
    """``in last 1d`` across the spring-forward night spans 23 real hours, on the wall clock."""
    now = datetime(2024, 3, 31, 12, 0, tzinfo=PARIS)
    pred = sk.compile_predicate("did view in last 1d", SHOP)
    assert pred({}, [ev("view", datetime(2024, 3, 30, 12, 30, tzinfo=PARIS))], now)
    assert not pred({}, [ev("view", datetime(2024, 3, 30, 11, 30, tzinfo=PARIS))], now)
    # 23 h 30 min before now, read in UTC: still inside
    assert pred({}, [ev("view", (now - timedelta(hours=23, minutes=30)).astimezone(UTC))], now)
    # 23 h 30 min of real time back is inside; 24 real hours back is a day and an hour ago
    assert not pred({}, [ev("view", (now - timedelta(hours=24)).astimezone(UTC))], now)


def test_in_last_hours_is_exact_elapsed_time_across_dst() -> None:
    """``in last 24h`` is 24 real hours even across a daylight-saving change."""
    now = datetime(2024, 3, 31, 12, 0, tzinfo=PARIS)
    pred = sk.compile_predicate("seen in last 24h", SHOP)
    now_utc = now.astimezone(UTC)  # aware + timedelta is wall-clock arithmetic in Python
    assert pred({"seen": now_utc - timedelta(hours=23, minutes=59)}, [], now)
    assert not pred({"seen": now_utc - timedelta(hours=24)}, [], now)


def test_exact_windows_do_not_depend_on_the_zone_of_now() -> None:
    """``in last 23h`` is the same window whether ``now`` is given in Paris time or UTC
    (regression: ``Duration.before`` once did wall-clock arithmetic on a Paris ``now``)."""
    now = datetime(2024, 3, 31, 12, 0, tzinfo=PARIS)  # 10:00 UTC, the day clocks went forward
    inside = [ev("view", datetime(2024, 3, 30, 12, 59, 59, tzinfo=PARIS))]  # 11:59:59 UTC
    pred = sk.compile_predicate("did view in last 23h", SHOP)
    assert pred({}, inside, now)
    assert pred({}, inside, now.astimezone(UTC))
    assert reference_eval(
        sk.parse("did view in last 23h").expr, {}, inside, now, tz=PARIS, key="c-1"
    )
    outside = [ev("view", datetime(2024, 3, 30, 11, 59, 59, tzinfo=PARIS))]  # 10:59:59 UTC
    assert not pred({}, outside, now)


def test_fall_back_fold_compares_by_instant() -> None:
    """Inside the autumn fold, 02:30 (first) and 02:30 (second) are an hour apart."""
    first = datetime(2024, 10, 27, 2, 30, tzinfo=PARIS, fold=0)
    second = datetime(2024, 10, 27, 2, 30, tzinfo=PARIS, fold=1)
    pred = sk.compile_predicate("seen in last 30min", SHOP)
    now = second.astimezone(UTC) + timedelta(minutes=10)
    assert pred({"seen": second}, [], now)
    assert not pred({"seen": first}, [], now)


def test_months_use_calendar_arithmetic() -> None:
    """``in last 1mo`` from 31 March starts on 29 February (leap year), exclusive."""
    now = datetime(2024, 3, 31, 12, 0, tzinfo=PARIS)
    pred = sk.compile_predicate("seen in last 1mo", SHOP)
    assert pred({"seen": datetime(2024, 2, 29, 12, 0, 1, tzinfo=PARIS)}, [], now)
    assert not pred({"seen": datetime(2024, 2, 29, 12, 0, tzinfo=PARIS)}, [], now)


def test_date_attributes_compare_local_dates() -> None:
    """A date attribute in a relative window compares calendar dates in the schema's zone."""
    now = datetime(2024, 1, 10, 0, 30, tzinfo=PARIS)  # still 9 January in UTC
    assert sk.compile_predicate("joined in last 1d", SHOP)({"joined": date(2024, 1, 10)}, [], now)
    assert not sk.compile_predicate("joined in last 1d", SHOP)(
        {"joined": date(2024, 1, 9)}, [], now
    )
    assert sk.compile_predicate("joined more than 1d ago", SHOP)(
        {"joined": date(2024, 1, 9)}, [], now
    )


def test_datetime_attribute_against_date_literal_uses_local_date() -> None:
    """``seen after @2024-01-09`` on a datetime compares the local (Paris) calendar date."""
    late = datetime(2024, 1, 9, 23, 30, tzinfo=UTC)  # 10 January, 00:30 in Paris
    assert sk.compile_predicate("seen after @2024-01-09", SHOP)({"seen": late})
    assert sk.compile_predicate("seen = @2024-01-10", SHOP)({"seen": late})


def test_naive_now_is_read_in_the_schema_zone() -> None:
    """A naive ``now`` is localised in the schema's time zone."""
    pred = sk.compile_predicate("seen in last 1h", SHOP)
    seen = datetime(2024, 6, 1, 11, 30, tzinfo=PARIS)
    assert pred({"seen": seen}, [], datetime(2024, 6, 1, 12, 0))


def test_naive_now_without_zone_is_rejected() -> None:
    """Without a schema zone a naive ``now`` raises a clear error."""
    schema = sk.Schema(attributes={"seen": "datetime"})
    pred = sk.compile_predicate("seen in last 1h", schema)
    with pytest.raises(ValueError, match=r"^naive now 2024-06-01T12:00:00: give it a time zone"):
        pred({"seen": datetime(2024, 6, 1, 11, 30, tzinfo=UTC)}, [], datetime(2024, 6, 1, 12))


def test_time_relative_rule_needs_now() -> None:
    """Calling a time-relative rule without ``now`` says so instead of guessing the clock."""
    pred = sk.compile_predicate("did buy in last 7d", SHOP)
    with pytest.raises(ValueError, match="this rule is relative to the current time: pass now="):
        pred({}, [ev("buy", datetime(2024, 1, 1, tzinfo=UTC))])
    # a rule that is not time-relative needs no now
    assert sk.compile_predicate("did buy", SHOP)({}, [ev("buy", datetime(2024, 1, 1, tzinfo=UTC))])
    # without an event of that name the window is never read, so no now is needed
    assert not pred({}, [])
    assert sk.compile_predicate("did buy < 2 times in last 7d", SHOP)({}, [])


def test_filter_shares_window_starts_between_profiles() -> None:
    """``filter`` computes ``now - 1mo`` once; every profile still gets its own answer."""
    pred = sk.compile_predicate("did buy >= 2 times in last 1mo and not did buy in last 1d", SHOP)
    now = datetime(2024, 3, 31, 12, tzinfo=UTC)
    at = [datetime(2024, 3, d, 12, tzinfo=UTC) for d in (1, 2, 15, 31)]
    people = [
        sk.Profile("a", {}),  # buys on the 2nd (1mo before the 31st is Feb 29: inside) and 15th
        sk.Profile("b", {}),  # buys on the 1st and 15th and today
        sk.Profile("c", {}),  # one buy only
    ]
    events = {
        "a": [ev("buy", at[1]), ev("buy", at[2])],
        "b": [ev("buy", at[0]), ev("buy", at[2]), ev("buy", at[3])],
        "c": [ev("buy", at[2])],
    }
    assert pred.filter(people, lambda key: events[key], now) == ["a"]
    assert [p.key for p in people if pred(p, events[p.key], now)] == ["a"]


def test_segment_reference_needs_a_resolver_and_a_key() -> None:
    """``in segment`` needs ``segments=`` at compile time and the profile key at call time."""
    with pytest.raises(ValueError, match="the rule refers to segment 'vip': pass segments="):
        sk.compile_predicate('in segment "vip"', SHOP)
    pred = sk.compile_predicate('in segment "vip"', SHOP, segments=lambda name, key: key == "c-1")
    assert pred(sk.Profile("c-1", {}))
    assert not pred({}, key="c-2")
    with pytest.raises(ValueError, match="'in segment' needs the profile's key"):
        pred({})


def test_bucket_agrees_with_the_hash_function() -> None:
    """``bucket(salt) in a..b`` selects exactly the keys whose bucket lies in the range."""
    pred = sk.compile_predicate('bucket("exp") in 0..4999', SHOP)
    keys = [f"u-{i}" for i in range(2_000)]
    chosen = [k for k in keys if pred({}, key=k)]
    assert chosen == [k for k in keys if sk.hashing.bucket("exp", k) < 5_000]
    assert 900 < len(chosen) < 1_100


def test_wrongly_typed_values_raise_schema_error() -> None:
    """A raw value of the wrong type raises SchemaError instead of a bare TypeError."""
    pred = sk.compile_predicate("age > 3", SHOP)
    with pytest.raises(sk.SchemaError, match=r"validate records with Schema\.validate_profile"):
        pred({"age": "31"}, key="c-9")


def test_sequence_with_equal_timestamps_uses_distinct_events() -> None:
    """Ties need a real search: one event never plays two steps, but equal times chain."""
    at = datetime(2024, 1, 1, tzinfo=UTC)
    schema = sk.Schema(events={"a": {"p": "int"}, "b": {}})
    rule = "did a then a where p = 1 within 1h"
    pred = sk.compile_predicate(rule, schema)
    # step 1 may take either event; only the p=1 one can play step 2
    assert pred({}, [sk.Event("k", "a", at, {"p": 1}), sk.Event("k", "a", at, {"p": 2})])
    assert not pred({}, [sk.Event("k", "a", at, {"p": 1})])
    assert not pred(
        {}, [sk.Event("k", "a", at + timedelta(hours=2), {"p": 1}), sk.Event("k", "a", at)]
    )


def test_predicate_filter_and_repr() -> None:
    """``filter`` returns matching keys in input order; repr shows the rule."""
    pred = sk.compile_predicate("age >= 18 and email is known", SHOP)
    people = [sk.Profile("a", {"age": 20}), sk.Profile("b", {"age": 30, "email": "x"})]
    assert pred.filter(people) == ["b"]
    assert repr(pred) == "<Predicate 'age >= 18 and email is known'>"


def test_compile_checks_types_first() -> None:
    """compile_predicate type-checks the rule against the schema."""
    with pytest.raises(sk.UnknownEventError, match="unknown event 'by'"):
        sk.compile_predicate("did by", SHOP)
