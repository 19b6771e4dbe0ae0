"""Funnels and journeys: small hand-written scenarios with exact counts, members and times."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest

import segkit as sk
from segkit.analysis.funnel import (
    Exclusion,
    Funnel,
    FunnelReport,
    HistogramBin,
    Step,
    TimeStats,
    Transition,
)
from segkit.index import Bitmap

BASE = datetime(2024, 3, 1, tzinfo=timezone.utc)
PARIS = ZoneInfo("Europe/Paris")


def ev(key: str, name: str, minutes: float, **props: Any) -> sk.Event:
    """An event ``minutes`` after BASE."""
    return sk.Event(key, name, BASE + timedelta(minutes=minutes), props)


def counts(report: FunnelReport) -> list[int]:
    return [s.count for s in report.steps]


def members(report: FunnelReport, i: int) -> list[str]:
    return sorted(report.members(i).keys())


def step_minutes(report: FunnelReport, i: int) -> list[float]:
    """The samples of step i's time from the previous step, in minutes (sorted)."""
    stats = report.steps[i].time_from_previous
    assert stats is not None
    return [s / 60_000_000 for s in stats._samples]


M = timedelta(minutes=1)
ABC = ["a", "b", "c"]


# --- ordering ----------------------------------------------------------------------------------


def test_basic_ordered_funnel_counts_members_and_conversions() -> None:
    """Three steps: counts, members, drop-offs and both conversion rates."""
    events = [
        ev("u1", "a", 0), ev("u1", "b", 10), ev("u1", "c", 30),
        ev("u2", "a", 0), ev("u2", "b", 20),
        ev("u3", "a", 5),
        ev("u4", "b", 0), ev("u4", "c", 1),
    ]  # fmt: skip
    report = Funnel(ABC, window="1d").run(events)
    assert counts(report) == [3, 2, 1]
    assert [members(report, i) for i in range(3)] == [["u1", "u2", "u3"], ["u1", "u2"], ["u1"]]
    assert sorted(report.dropped(0).keys()) == ["u3"]
    assert sorted(report.dropped(1).keys()) == ["u2"]
    assert report.dropped(2).keys() == []
    assert [s.dropped for s in report.steps] == [1, 1, 0]
    assert [s.conversion_from_previous for s in report.steps] == [1.0, 2 / 3, 0.5]
    assert [s.conversion_from_start for s in report.steps] == [1.0, 2 / 3, 1 / 3]
    assert report.entered == 3
    assert report.total_conversion == report.cumulative_conversion == 1 / 3
    assert step_minutes(report, 1) == [10, 20]
    assert step_minutes(report, 2) == [20]
    assert report.time_to_complete.mean == 30 * M


def test_events_before_step_zero_do_not_count() -> None:
    """b then a then c: b happened before the attempt started, so only step 0 is reached."""
    report = Funnel(ABC).run([ev("u", "b", 0), ev("u", "a", 1), ev("u", "c", 2)])
    assert report.levels() == {"u": 1}


def test_other_events_in_between_are_ignored_in_ordered_mode() -> None:
    """Unrelated events between steps do not break an ordered funnel."""
    events = [
        ev("u", "a", 0),
        ev("u", "noise", 1),
        ev("u", "b", 2),
        ev("u", "a", 3),
        ev("u", "c", 4),
    ]
    assert Funnel(ABC).run(events).levels() == {"u": 3}


def test_a_repeated_step_needs_two_events() -> None:
    """Steps a, a: one 'a' reaches step 0 only; two reach step 1."""
    f = Funnel(["a", "a"])
    assert f.run([ev("u", "a", 0)]).levels() == {"u": 1}
    assert f.run([ev("u", "a", 0), ev("u", "a", 0)]).levels() == {"u": 2}
    assert f.run([ev("u", "a", 0), ev("u", "a", 5)]).levels() == {"u": 2}


def test_reuse_events_lets_one_event_fill_several_steps() -> None:
    """With reuse_events=True one event counts for repeated steps (ClickHouse's default)."""
    f = Funnel(["a", "a", "a"], reuse_events=True)
    report = f.run([ev("u", "a", 0)])
    assert report.levels() == {"u": 3}
    assert step_minutes(report, 1) == [0]
    assert step_minutes(report, 2) == [0]


def test_the_best_attempt_counts_and_times_come_from_it() -> None:
    """Incomplete later tries do not change the times of the attempt that got furthest."""
    events = [
        ev("u", "a", 0), ev("u", "b", 60), ev("u", "c", 120),  # complete, 1 h per step
        ev("u", "a", 1000), ev("u", "b", 1120),  # a later partial try, 2 h
    ]  # fmt: skip
    report = Funnel(ABC, window="1d").run(events)
    assert counts(report) == [1, 1, 1]
    assert step_minutes(report, 1) == [60]
    assert step_minutes(report, 2) == [60]


def test_ties_between_attempts_prefer_the_latest_start() -> None:
    """a at 0 and 10, b at 20: the attempt is the one starting at 10 (10 min to b)."""
    report = Funnel(["a", "b"]).run([ev("u", "a", 0), ev("u", "a", 10), ev("u", "b", 20)])
    assert step_minutes(report, 1) == [10]


def test_ties_between_attempts_prefer_the_earliest_completion() -> None:
    """Two attempts reach c; the one that reaches it first wins, then the latest start."""
    events = [
        ev("u", "a", 0), ev("u", "b", 5), ev("u", "a", 6), ev("u", "b", 8),
        ev("u", "c", 9), ev("u", "a", 20), ev("u", "b", 21), ev("u", "c", 22),
    ]  # fmt: skip
    report = Funnel(ABC).run(events)
    # starts 0 and 6 both end at 9; 6 is later, so its chain (6, 8, 9) is used
    assert step_minutes(report, 1) == [2]
    assert step_minutes(report, 2) == [1]


# --- windows -------------------------------------------------------------------------------------


def test_window_end_is_inclusive() -> None:
    """A step at exactly start + window converts; one microsecond later does not."""
    f = Funnel(["a", "b"], window=timedelta(hours=1))
    assert f.run([ev("u", "a", 0), ev("u", "b", 60)]).levels() == {"u": 2}
    late = sk.Event("u", "b", BASE + timedelta(hours=1, microseconds=1))
    assert f.run([ev("u", "a", 0), late]).levels() == {"u": 1}


def test_window_counts_from_the_first_step_not_the_previous_one() -> None:
    """With a 1-day window, c at 30 h is out even though b (20 h) is only 10 h earlier."""
    events = [ev("u", "a", 0), ev("u", "b", 20 * 60), ev("u", "c", 30 * 60)]
    assert Funnel(ABC, window="1d").run(events).levels() == {"u": 2}
    assert Funnel(ABC).run(events).levels() == {"u": 3}  # no window: no limit


def test_window_boundary_inclusive_in_every_order() -> None:
    """The inclusive end holds for ordered (general path), strict and any orders too."""
    events = [ev("u", "a", 0), ev("u", "b", 30), ev("u", "c", 60)]
    hour = timedelta(hours=1)
    assert Funnel(ABC, window=hour, ties="input_order").run(events).levels() == {"u": 3}
    assert Funnel(ABC, window=hour, order="strict").run(events).levels() == {"u": 3}
    assert Funnel(ABC, window=hour, order="any").run(events).levels() == {"u": 3}
    short = timedelta(minutes=59)
    assert Funnel(ABC, window=short, order="strict").run(events).levels() == {"u": 2}
    assert Funnel(ABC, window=short, order="any").run(events).levels() == {"u": 2}


def test_calendar_day_window_follows_dst_in_the_funnel_time_zone() -> None:
    """'1d' in Europe/Paris across the spring change is 23 h; timedelta(days=1) is 24 h."""
    start = datetime(2024, 3, 30, 12, 0, tzinfo=PARIS).astimezone(timezone.utc)
    # clocks go forward on the 31st: 12:00 Paris on the 31st is only 23 h later
    events = [
        sk.Event("u", "a", start),
        sk.Event("u", "b", start + timedelta(hours=23, minutes=30)),  # 12:30 wall clock
    ]
    assert Funnel(["a", "b"], window="1d", timezone="Europe/Paris").run(events).levels() == {"u": 1}
    assert Funnel(["a", "b"], window=timedelta(days=1)).run(events).levels() == {"u": 2}
    at_end = [sk.Event("u", "a", start), sk.Event("u", "b", start + timedelta(hours=23))]
    assert Funnel(["a", "b"], window="1d", timezone="Europe/Paris").run(at_end).levels() == {"u": 2}


def test_month_window_uses_the_calendar() -> None:
    """'1mo' from 31 January ends on 29 February (leap year), inclusive."""
    a = sk.Event("u", "a", datetime(2024, 1, 31, tzinfo=timezone.utc))
    on_time = sk.Event("u", "b", datetime(2024, 2, 29, tzinfo=timezone.utc))
    late = sk.Event("v", "b", datetime(2024, 3, 1, tzinfo=timezone.utc))
    a2 = sk.Event("v", "a", datetime(2024, 1, 31, tzinfo=timezone.utc))
    report = Funnel(["a", "b"], window="1mo").run([a, on_time, a2, late])
    assert report.levels() == {"u": 2, "v": 1}


# --- equal timestamps ------------------------------------------------------------------------------


def test_ties_any_order_lets_simultaneous_events_convert_in_step_order() -> None:
    """b logged before a at the same instant still converts (the default)."""
    events = [ev("u", "b", 5), ev("u", "a", 5)]
    report = Funnel(["a", "b"]).run(events)
    assert report.levels() == {"u": 2}
    assert step_minutes(report, 1) == [0]


def test_ties_input_order_keeps_the_order_events_came_in() -> None:
    """With ties='input_order' the same log does not convert; a then b does."""
    f = Funnel(["a", "b"], ties="input_order")
    assert f.run([ev("u", "b", 5), ev("u", "a", 5)]).levels() == {"u": 1}
    assert f.run([ev("u", "a", 5), ev("u", "b", 5)]).levels() == {"u": 2}


def test_ties_strictly_later_needs_a_later_timestamp() -> None:
    """ties='strictly_later' (ClickHouse strict_increase): equal times never convert."""
    f = Funnel(["a", "b"], ties="strictly_later")
    assert f.run([ev("u", "a", 5), ev("u", "b", 5)]).levels() == {"u": 1}
    assert f.run([ev("u", "a", 5), ev("u", "b", 6)]).levels() == {"u": 2}


def test_strictly_later_keeps_an_earlier_start_whose_next_step_ties_a_later_start() -> None:
    """a@0, a@2, b@2: the start at 2 cannot use b@2, so the start at 0 must be kept."""
    events = [ev("u", "a", 0), ev("u", "a", 2), ev("u", "b", 2)]
    report = Funnel(["a", "b"], ties="strictly_later").run(events)
    assert report.levels() == {"u": 2}
    assert step_minutes(report, 1) == [2]


def test_ten_steps_all_at_one_timestamp() -> None:
    """PostHog's same-timestamp case: repeated step names, all events simultaneous."""
    names = ["one", "two", "two", "four", "four", "six", "two", "four", "six", "one"]
    log = ["one", "two", "two", "four", "four", "six", "two", "four", "six", "one"]
    events = [ev("u", name, 0) for name in log]
    report = Funnel(names).run(events)
    assert report.levels() == {"u": 10}
    assert Funnel(names).run(events[:-1]).levels() == {"u": 9}


def test_simultaneous_events_are_assigned_to_steps_by_matching() -> None:
    """An event matching steps 1 and 2 and one matching only step 1: both steps are filled."""
    steps = ["a", Step("b"), Step("b", where="v >= 2")]
    events = [ev("u", "a", 0), ev("u", "b", 1, v=2), ev("u", "b", 1)]
    assert Funnel(steps).run(events).levels() == {"u": 3}


# --- strict order ---------------------------------------------------------------------------------


def test_strict_order_breaks_on_any_other_event() -> None:
    """In strict order a non-step event between steps breaks the chain."""
    f = Funnel(ABC, order="strict")
    assert f.run([ev("u", "a", 0), ev("u", "noise", 1), ev("u", "b", 2)]).levels() == {"u": 1}
    assert f.run([ev("u", "a", 0), ev("u", "b", 2), ev("u", "c", 3)]).levels() == {"u": 3}


def test_strict_order_breaks_on_a_repeated_step() -> None:
    """a b b c: the second b is an event in between, so the chain stops at b."""
    events = [ev("u", "a", 0), ev("u", "b", 1), ev("u", "b", 2), ev("u", "c", 3)]
    assert Funnel(ABC, order="strict").run(events).levels() == {"u": 2}


def test_strict_order_ignores_events_before_the_start() -> None:
    """Noise before step 0 and a later clean attempt: the clean attempt counts."""
    events = [
        ev("u", "noise", 0), ev("u", "a", 1), ev("u", "noise", 2),
        ev("u", "a", 3), ev("u", "b", 4), ev("u", "c", 5),
    ]  # fmt: skip
    assert Funnel(ABC, order="strict").run(events).levels() == {"u": 3}


def test_strict_order_ties_simultaneous_event_at_the_chain_ends_does_not_break() -> None:
    """Noise at the same instant as the last step can come after it (ties='any_order')."""
    events = [ev("u", "a", 0), ev("u", "b", 5), ev("u", "noise", 5)]
    assert Funnel(["a", "b"], order="strict").run(events).levels() == {"u": 2}
    assert Funnel(ABC, order="strict").run([*events, ev("u", "c", 6)]).levels() == {"u": 2}
    assert Funnel(["a", "b"], order="strict", ties="input_order").run(
        [ev("u", "a", 0), ev("u", "noise", 5), ev("u", "b", 5)]
    ).levels() == {"u": 1}


def test_strict_order_window() -> None:
    """Adjacent events still have to fit the window."""
    events = [ev("u", "a", 0), ev("u", "b", 10), ev("u", "c", 61)]
    assert Funnel(ABC, order="strict", window=timedelta(hours=1)).run(events).levels() == {"u": 2}


# --- any order (journeys) -------------------------------------------------------------------------


def test_any_order_counts_each_stage_reached_whatever_the_order() -> None:
    """HubSpot-style stages: skipped and out-of-order stages still count for their stage."""
    events = [
        ev("u1", "lead", 0), ev("u1", "mql", 10), ev("u1", "customer", 30),
        ev("u2", "lead", 0), ev("u2", "customer", 5),  # skipped mql
        ev("u3", "mql", 0), ev("u3", "lead", 10),  # out of order
    ]  # fmt: skip
    report = Funnel(["lead", "mql", "customer"], order="any").run(events)
    assert counts(report) == [3, 2, 2]
    assert members(report, 1) == ["u1", "u3"]
    assert report.entered == 3
    assert report.total_conversion == 2 / 3
    assert report.cumulative_conversion == 1 / 3  # only u1 went lead -> mql -> customer
    assert report.transitions == (
        Transition(0, 1, 1, 1 / 3, 10 * M),
        Transition(1, 2, 1, 0.5, 20 * M),
    )
    assert report.levels() == {"u1": 3, "u2": 2, "u3": 2}
    assert report.time_to_complete.mean == 30 * M


def test_any_order_window_runs_from_the_first_stage_event() -> None:
    """Stages reached after the window closed do not count."""
    events = [ev("u", "mql", 0), ev("u", "lead", 30), ev("u", "customer", 90)]
    report = Funnel(["lead", "mql", "customer"], order="any", window=timedelta(hours=1)).run(events)
    assert counts(report) == [1, 1, 0]


def test_attribute_stages_build_a_crm_lifecycle_journey() -> None:
    """Step.attribute stages read timestamps from profiles; unset means not reached."""
    profiles = [
        sk.Profile("c1", {"lead_at": BASE, "mql_at": BASE + 2 * M, "customer_at": BASE + 5 * M}),
        sk.Profile("c2", {"lead_at": BASE, "customer_at": BASE + 3 * M}),
        sk.Profile("c3", {"lead_at": "2024-03-01T00:10:00Z"}),
    ]
    funnel = Funnel(
        [Step.attribute("lead_at"), Step.attribute("mql_at"), Step.attribute("customer_at")],
        order="any",
    )
    report = funnel.run([], profiles=profiles)
    assert counts(report) == [3, 1, 2]
    assert report.cumulative_conversion == 1 / 3
    assert report.transitions[1] == Transition(1, 2, 1, 1.0, 3 * M)
    ordered = Funnel([Step.attribute("lead_at"), Step.attribute("customer_at")], window="1d")
    assert counts(
        ordered.run([], profiles={k: p.attributes for k, p in [("c2", profiles[1])]})
    ) == [
        1,
        1,
    ]


def test_events_and_attribute_stages_mix() -> None:
    """A signup event followed by a lifecycle date on the profile."""
    funnel = Funnel(["signup", Step.attribute("paid_at", name="paid")], window="7d")
    profiles = {"u": {"paid_at": BASE + timedelta(days=2)}, "v": {"paid_at": None}}
    report = funnel.run([ev("u", "signup", 0), ev("v", "signup", 0)], profiles=profiles)
    assert counts(report) == [2, 1]
    assert report.steps[1].name == "paid"
    assert report.steps[1].time_from_previous.mean == timedelta(days=2)  # type: ignore[union-attr]


# --- exclusions -----------------------------------------------------------------------------------


def test_exclusion_between_steps_stops_the_attempt() -> None:
    """stop_at_exclusion (default): x between a and b blocks b; the entity still counts at a."""
    funnel = Funnel(ABC, exclusions=[Exclusion("x", between=(0, 1))])
    report = funnel.run([ev("u", "a", 0), ev("u", "x", 1), ev("u", "b", 2), ev("u", "c", 3)])
    assert counts(report) == [1, 0, 0]
    assert report.excluded == 0


def test_exclusion_before_the_first_step_or_after_the_range_does_not_matter() -> None:
    """x before a, and x after b for an exclusion between a and b, change nothing."""
    funnel = Funnel(ABC, exclusions=[Exclusion("x", between=(0, 1))])
    events = [ev("u", "x", 0), ev("u", "a", 1), ev("u", "b", 2), ev("u", "x", 3), ev("u", "c", 4)]
    assert funnel.run(events).levels() == {"u": 3}


def test_exclusion_at_the_same_timestamp_as_the_steps_does_not_block() -> None:
    """Exclusions must be strictly between the two steps."""
    funnel = Funnel(["a", "b"], exclusions=[Exclusion("x")])
    events = [ev("u", "x", 0), ev("u", "a", 0), ev("u", "b", 5), ev("u", "x", 5)]
    assert funnel.run(events).levels() == {"u": 2}


def test_a_later_clean_attempt_rescues_the_entity() -> None:
    """The first attempt meets x; a later one does not."""
    funnel = Funnel(["a", "b"], exclusions=[Exclusion("x")], window="1d")
    events = [ev("u", "a", 0), ev("u", "x", 1), ev("u", "a", 2), ev("u", "b", 3)]
    report = funnel.run(events)
    assert report.levels() == {"u": 2}
    assert step_minutes(report, 1) == [1]


def test_exclusion_uses_a_later_intermediate_step_when_the_earliest_is_blocked() -> None:
    """a b x b c with x between b and c: the second b avoids x (greedy-earliest would not)."""
    funnel = Funnel(ABC, exclusions=[Exclusion("x", between=(1, 2))])
    events = [ev("u", "a", 0), ev("u", "b", 1), ev("u", "x", 2), ev("u", "b", 3), ev("u", "c", 4)]
    report = funnel.run(events)
    assert report.levels() == {"u": 3}
    assert step_minutes(report, 1) == [3]
    assert step_minutes(report, 2) == [1]


def test_drop_entirely_removes_the_entity_from_every_step() -> None:
    """PostHog-style: an x within the window after a removes the entity, step 0 included."""
    funnel = Funnel(
        ["a", "b"],
        window=timedelta(days=1),
        exclusions=[Exclusion("x")],
        on_exclusion="drop_entirely",
    )
    events = [
        ev("p1", "a", 0), ev("p1", "b", 60),
        ev("p2", "a", 0), ev("p2", "x", 30), ev("p2", "b", 60),
        ev("p3", "a", 0), ev("p3", "x", 60),  # never did b: x inside the window
        ev("p4", "a", 0), ev("p4", "x", 25 * 60),  # x after the window closed
    ]  # fmt: skip
    report = funnel.run(events)
    assert counts(report) == [2, 1]
    assert members(report, 0) == ["p1", "p4"]
    assert report.excluded == 2
    assert sorted(report.excluded_members().keys()) == ["p2", "p3"]
    assert report.levels() == {"p1": 2, "p2": 0, "p3": 0, "p4": 1}


def test_drop_entirely_and_stop_at_exclusion_on_the_same_log() -> None:
    """The two effects side by side: stop keeps the entity at step 0."""
    events = [ev("u", "a", 0), ev("u", "x", 1), ev("u", "b", 2)]
    stop = Funnel(["a", "b"], exclusions=[Exclusion("x")]).run(events)
    drop = Funnel(["a", "b"], exclusions=[Exclusion("x")], on_exclusion="drop_entirely").run(events)
    assert (counts(stop), stop.excluded) == ([1, 0], 0)
    assert (counts(drop), drop.excluded) == ([0, 0], 1)


def test_drop_entirely_window_end_is_inclusive_for_unfinished_attempts() -> None:
    """An x at exactly the window's end still taints an attempt that did not reach b."""
    funnel = Funnel(
        ["a", "b"],
        window=timedelta(hours=1),
        exclusions=[Exclusion("x")],
        on_exclusion="drop_entirely",
    )
    assert funnel.run([ev("u", "a", 0), ev("u", "x", 60)]).excluded == 1
    assert funnel.run([ev("u", "a", 0), ev("u", "x", 61)]).excluded == 0
    strict = Funnel(
        ["a", "b"],
        order="strict",
        window=timedelta(hours=1),
        exclusions=[Exclusion("x")],
        on_exclusion="drop_entirely",
    )
    assert strict.run([ev("u", "a", 0), ev("u", "x", 60)]).excluded == 1


def test_strict_exclusion_simultaneous_with_the_start_does_not_block() -> None:
    """In strict order an x at the start's timestamp sits before it and blocks nothing."""
    funnel = Funnel(["a", "b"], order="strict", exclusions=[Exclusion("x")])
    assert funnel.run([ev("u", "a", 0), ev("u", "x", 0), ev("u", "b", 1)]).levels() == {"u": 2}


def test_exclusion_where_filter() -> None:
    """Only exclusion events matching the filter count."""
    funnel = Funnel(["a", "b"], exclusions=[Exclusion("x", where='reason = "fraud"')])
    ok = funnel.run([ev("u", "a", 0), ev("u", "x", 1, reason="typo"), ev("u", "b", 2)])
    blocked = funnel.run([ev("u", "a", 0), ev("u", "x", 1, reason="fraud"), ev("u", "b", 2)])
    assert (ok.levels(), blocked.levels()) == ({"u": 2}, {"u": 1})


# --- where filters ----------------------------------------------------------------------------------


def test_step_where_filters_on_event_properties() -> None:
    """Backquoted names, 'is not known' and numeric comparisons."""
    steps = [
        Step("signup", where="plan is not known"),
        Step("$autocapture", where='`$el.tag_name` = "button"', name="clicked"),
        Step("purchase", where="amount >= 10"),
    ]
    events = [
        ev("u1", "signup", 0), ev("u1", "$autocapture", 1, **{"$el.tag_name": "button"}),
        ev("u1", "purchase", 2, amount=12.5),
        ev("u2", "signup", 0), ev("u2", "$autocapture", 1, **{"$el.tag_name": "a"}),
        ev("u3", "signup", 0, plan="pro"),
        ev("u4", "signup", 0), ev("u4", "$autocapture", 1, **{"$el.tag_name": "button"}),
        ev("u4", "purchase", 2, amount=5),
    ]  # fmt: skip
    report = Funnel(steps).run(events)
    assert counts(report) == [3, 2, 1]
    assert report.steps[1].name == "clicked"
    assert [s.name for s in report.steps] == [
        "signup where plan is not known",
        "clicked",
        "purchase where amount >= 10",
    ]


def test_where_reads_a_mistyped_value_as_missing() -> None:
    """Without a schema, amount='12' (a string) is not a number: the step does not match."""
    report = Funnel(["a", Step("buy", where="amount >= 10")]).run(
        [ev("u", "a", 0), ev("u", "buy", 1, amount="12")]
    )
    assert report.levels() == {"u": 1}


def test_where_is_checked_against_a_schema() -> None:
    """With a schema, where filters are type-checked and values used as declared."""
    schema = sk.Schema(events={"visit": {}, "buy": {"amount": "float"}}, timezone="UTC")
    funnel = Funnel(["visit", Step("buy", where="amount > 3")], schema=schema)
    report = funnel.run([ev("u", "visit", 0), ev("u", "buy", 1, amount=4.0)])
    assert report.levels() == {"u": 2}


# --- attempts and re-entry ---------------------------------------------------------------------------


def test_attempts_first_only_uses_the_first_step_zero_event() -> None:
    """Mixpanel-style uniques: the window runs from the first a, even if a later a converts."""
    events = [ev("u", "a", 0), ev("u", "a", 120), ev("u", "b", 150)]
    hour = timedelta(hours=1)
    assert Funnel(["a", "b"], window=hour).run(events).levels() == {"u": 2}
    assert Funnel(["a", "b"], window=hour, attempts="first").run(events).levels() == {"u": 1}


def test_attempts_every_counts_each_entry() -> None:
    """Re-entry: after converting or timing out the entity can enter again."""
    events = [
        ev("u", "a", 0), ev("u", "b", 10),  # entry 1 converts at 10
        ev("u", "a", 5),  # inside entry 1: absorbed
        ev("u", "a", 20),  # entry 2: times out at 80
        ev("u", "a", 90), ev("u", "b", 100),  # entry 3 converts
        ev("v", "a", 0),
    ]  # fmt: skip
    report = Funnel(["a", "b"], window=timedelta(hours=1), attempts="every").run(events)
    assert counts(report) == [4, 2]
    assert report.entered == 4
    assert members(report, 1) == ["u"]
    assert report.levels() == {"u": 2, "v": 1}
    assert step_minutes(report, 1) == [10, 10]


# --- report ---------------------------------------------------------------------------------------


def test_empty_input_gives_zeros() -> None:
    """No events: every count and rate is 0, times are empty."""
    report = Funnel(ABC, window="1d").run([])
    assert counts(report) == [0, 0, 0]
    assert (report.entered, report.total_conversion, report.cumulative_conversion) == (0, 0.0, 0.0)
    assert [s.conversion_from_previous for s in report.steps] == [0.0, 0.0, 0.0]
    assert report.steps[1].time_from_previous == TimeStats.of([])
    assert report.time_to_complete.count == 0
    assert report.levels() == {}
    assert report.members(0).keys() == []


def test_one_entity_full_report() -> None:
    """A single entity through three steps: the whole report, its dict and its table."""
    events = [ev("solo", "a", 0), ev("solo", "b", 1.5), ev("solo", "c", 4)]
    report = Funnel(ABC, window="1h").run(events)
    assert report.to_dict() == {
        "entered": 1,
        "excluded": 0,
        "total_conversion": 1.0,
        "cumulative_conversion": 1.0,
        "time_to_complete": {
            "count": 1, "mean_seconds": 240.0, "median_seconds": 240.0, "p90_seconds": 240.0,
            "min_seconds": 240.0, "max_seconds": 240.0, "histogram": [[240.0, 1], [300.0, 0]],
        },
        "steps": [
            {"index": 0, "name": "a", "count": 1, "dropped": 0, "conversion_from_previous": 1.0,
             "conversion_from_start": 1.0, "time_from_previous": None},
            {"index": 1, "name": "b", "count": 1, "dropped": 0, "conversion_from_previous": 1.0,
             "conversion_from_start": 1.0, "time_from_previous": {
                 "count": 1, "mean_seconds": 90.0, "median_seconds": 90.0, "p90_seconds": 90.0,
                 "min_seconds": 90.0, "max_seconds": 90.0, "histogram": [[90.0, 1], [150.0, 0]]}},
            {"index": 2, "name": "c", "count": 1, "dropped": 0, "conversion_from_previous": 1.0,
             "conversion_from_start": 1.0, "time_from_previous": {
                 "count": 1, "mean_seconds": 150.0, "median_seconds": 150.0, "p90_seconds": 150.0,
                 "min_seconds": 150.0, "max_seconds": 150.0, "histogram": [[150.0, 1], [210.0, 0]]}},
        ],
        "transitions": [
            {"from_step": 0, "to_step": 1, "count": 1, "rate": 1.0, "mean_time_seconds": 90.0},
            {"from_step": 1, "to_step": 2, "count": 1, "rate": 1.0, "mean_time_seconds": 150.0},
        ],
    }  # fmt: skip
    assert repr(report) == (
        "FunnelReport: 1 entered, total conversion 100.0%, cumulative 100.0%\n"
        "  # step  count  from prev  from start  median time  mean time\n"
        "  0 a         1     100.0%      100.0%            -          -\n"
        "  1 b         1     100.0%      100.0%      0:01:30    0:01:30\n"
        "  2 c         1     100.0%      100.0%      0:02:30    0:02:30"
    )


def test_time_stats_mean_median_p90_min_max() -> None:
    """Linear-interpolation percentiles, rounded to the microsecond."""
    stats = TimeStats.of([s * 1_000_000 for s in (10, 20, 30, 40, 100)])
    assert (stats.count, stats.mean, stats.median) == (
        5,
        timedelta(seconds=40),
        timedelta(seconds=30),
    )
    assert stats.p90 == timedelta(seconds=76)
    assert (stats.min, stats.max) == (timedelta(seconds=10), timedelta(seconds=100))
    even = TimeStats.of([1, 2])
    assert (even.median, even.mean) == (timedelta(microseconds=2), timedelta(microseconds=2))


def test_histogram_follows_posthog_time_to_convert_binning() -> None:
    """PostHog's example: samples at 60 s and 360 s give bins 60, 210, 360."""
    stats = TimeStats.of([60_000_000, 360_000_000])
    assert [(b.start.total_seconds(), b.count) for b in stats.histogram] == [
        (60.0, 1),
        (210.0, 0),
        (360.0, 1),
    ]
    one = TimeStats.of([5_500_000])
    assert one.histogram == (
        HistogramBin(timedelta(seconds=5), timedelta(seconds=65), 1),
        HistogramBin(timedelta(seconds=65), timedelta(seconds=125), 0),
    )
    many = TimeStats.of(list(range(0, 27_000_000, 1_000_000)))  # 27 samples: cbrt -> 3 bins
    assert [b.count for b in many.histogram] == [9, 9, 9, 0]
    assert len(many.bins(200)) == 91  # clamped to 90 bins, plus the extra one
    assert len(many.bins(0)) == 2  # clamped to 1


def test_levels_and_entities_restriction() -> None:
    """entities= limits the run; asked-for entities without events have level 0."""
    events = [ev("u1", "a", 0), ev("u1", "b", 1), ev("u2", "a", 0)]
    report = Funnel(["a", "b"]).run(events, entities=["u1", "u9"])
    assert report.levels() == {"u1": 2, "u9": 0}
    assert counts(report) == [1, 1]


def test_compare_segments_evaluates_once_and_reports_each() -> None:
    """'all' plus one report per segment; members from one run combine."""
    events = [
        ev("u1", "a", 0), ev("u1", "b", 1),
        ev("u2", "a", 0),
        ev("u3", "a", 0), ev("u3", "b", 2),
    ]  # fmt: skip
    reports = Funnel(["a", "b"]).compare(events, {"vip": ["u1", "u2"], "rest": ["u3", "nobody"]})
    assert list(reports) == ["all", "vip", "rest"]
    assert [counts(r) for r in reports.values()] == [[3, 2], [2, 1], [1, 1]]
    assert (reports["all"].members(1) - reports["vip"].members(1)).keys() == ["u3"]
    assert reports["rest"].levels() == {"u3": 2}


def test_evaluate_columns_matches_run() -> None:
    """The columnar entry point gives the same report as Event objects."""
    events = [ev("u1", "a", 0), ev("u1", "b", 1), ev("u2", "b", 0), ev("u2", "a", 3)]
    funnel = Funnel(["a", "b"], window="1h")
    columns = funnel.evaluate_columns(
        [e.key for e in events],
        [e.name for e in events],
        [
            int((e.at - datetime(1970, 1, 1, tzinfo=timezone.utc)).total_seconds() * 1e6)
            for e in events
        ],
    )
    assert columns.report().to_dict() == funnel.run(events).to_dict()


def test_members_use_a_given_idmap() -> None:
    """With an Engine's IdMap, report members are ids of that map and combine with its Members."""
    ids = sk.IdMap()
    for key in ("u0", "u1", "u2"):
        ids.assign(key)
    outcomes = Funnel(["a", "b"]).evaluate(
        [ev("u1", "a", 0), ev("u1", "b", 1), ev("u2", "a", 0)], idmap=ids
    )
    pro = sk.Members(Bitmap([0, 1]), ids)
    report = outcomes.report(pro.ids)
    assert counts(report) == [1, 1]
    assert sorted(report.members(0).ids) == [1]
    assert (report.members(0) | pro).keys() == ["u0", "u1"]
    with pytest.raises(KeyError, match="unknown profile key 'stranger'"):
        Funnel(["a"]).evaluate([ev("stranger", "a", 0)], idmap=ids)


def test_naive_timestamps_are_read_in_the_funnel_time_zone() -> None:
    """A naive timestamp is accepted with a time zone and compared by instant."""
    events = [
        sk.Event("u", "a", datetime(2024, 3, 1, 10, 0)),  # 10:00 Paris = 09:00 UTC
        sk.Event("u", "b", datetime(2024, 3, 1, 9, 30, tzinfo=timezone.utc)),
    ]
    report = Funnel(["a", "b"], timezone="Europe/Paris").run(events)
    assert report.levels() == {"u": 2}
    assert step_minutes(report, 1) == [30]


# --- errors ---------------------------------------------------------------------------------------


def test_unknown_step_event_with_a_schema_suggests_the_name() -> None:
    """A typo in a step's event name raises UnknownEventError with a hint."""
    schema = sk.Schema(events=["signup", "purchase"])
    with pytest.raises(sk.UnknownEventError) as info:
        Funnel(["signup", "purchse"], schema=schema)
    assert str(info.value) == "unknown event 'purchse'\n  hint: did you mean 'purchase'?"
    assert info.value.suggestion == "purchase"


def test_unknown_property_in_a_step_filter_with_a_schema() -> None:
    """A typo in a where property raises UnknownPropertyError pointing at it."""
    schema = sk.Schema(events={"purchase": {"amount": "float"}})
    with pytest.raises(sk.UnknownPropertyError) as info:
        Funnel([Step("purchase", where="amout > 3")], schema=schema)
    assert str(info.value) == (
        "event 'purchase' has no property 'amout' (line 1, column 1)\n"
        "  amout > 3\n"
        "  ^^^^^\n"
        "  hint: did you mean 'amount'?"
    )


def test_unknown_attribute_stage_with_a_schema() -> None:
    """Attribute stages are checked too, including their type."""
    schema = sk.Schema(attributes={"became_mql_at": "datetime", "plan": "string"})
    with pytest.raises(sk.UnknownAttributeError, match="unknown attribute 'became_mq_at'"):
        Funnel([Step.attribute("became_mq_at")], schema=schema)
    with pytest.raises(sk.RuleTypeError) as info:
        Funnel([Step.attribute("plan")], schema=schema)
    assert info.value.message == (
        "attribute 'plan' is a string and cannot be a funnel stage:"
        " a stage attribute holds a date or a datetime"
    )


@pytest.mark.parametrize(
    ("window", "message"),
    [
        (timedelta(0), "window must be positive, got datetime.timedelta(0)"),
        (
            timedelta(seconds=-5),
            "window must be positive, got datetime.timedelta(days=-1, seconds=86395)",
        ),
        ("0d", "window must be positive, got '0d'"),
        ("3m", "ambiguous duration unit 'm': write 'min' for minutes or 'mo' for months"),
    ],
)
def test_window_must_be_positive(window: Any, message: str) -> None:
    """Zero, negative and malformed windows are rejected with the reason."""
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        Funnel(["a", "b"], window=window)


def test_exclusion_range_out_of_bounds() -> None:
    """Exclusion steps must name existing steps, in order."""
    out_of_range = (
        "exclusion 'x' between steps 1 and 3 is out of range: this funnel has steps 0 to 2"
    )
    with pytest.raises(ValueError, match=f"^{re.escape(out_of_range)}$"):
        Funnel(ABC, exclusions=[Exclusion("x", between=(1, 3))])
    reversed_ = "exclusion 'x' between steps 2 and 1: the first step must come before the second"
    with pytest.raises(ValueError, match=f"^{re.escape(reversed_)}$"):
        Funnel(ABC, exclusions=[Exclusion("x", between=(2, 1))])
    with pytest.raises(ValueError, match="an exclusion needs a funnel of at least two steps"):
        Funnel(["a"], exclusions=[Exclusion("x")])


def test_naive_timestamp_without_a_time_zone() -> None:
    """A naive timestamp and no time zone: SchemaError naming the entity."""
    with pytest.raises(sk.SchemaError) as info:
        Funnel(["a"]).run([sk.Event("c-1", "a", datetime(2024, 1, 1))])
    assert str(info.value) == (
        "event of 'c-1': naive timestamp 2024-01-01T00:00:00 has no time zone; give it one,"
        " or pass timezone= (or a Schema with a time zone) to the Funnel"
    )
    assert (info.value.key, info.value.field) == ("c-1", "at")


def test_bad_options_name_the_choices() -> None:
    """Misspelled options list the choices and suggest the closest."""
    message = (
        "order must be one of 'ordered', 'strict', 'any', got 'orderd' (did you mean 'ordered'?)"
    )
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        Funnel(["a"], order="orderd")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="reuse_events cannot be used with order='strict'"):
        Funnel(["a", "b"], order="strict", reuse_events=True)
    with pytest.raises(ValueError, match="exclusions apply to ordered and strict funnels"):
        Funnel(["a", "b"], order="any", exclusions=[Exclusion("x")])
    with pytest.raises(ValueError, match="a funnel needs at least one step"):
        Funnel([])


def test_time_relative_step_filters_are_rejected() -> None:
    """A step's where cannot depend on the current time."""
    with pytest.raises(sk.RuleTypeError) as info:
        Funnel([Step("a", where="at in last 3d")])
    assert info.value.message == (
        "'in last' depends on the current time and cannot be used in an event filter"
    )


def test_non_events_and_bad_segment_names_are_rejected() -> None:
    """Only Event objects go in; 'all' is reserved in compare; step indexes are checked."""
    with pytest.raises(
        sk.SchemaError, match=r"expected a segkit.Event, got \('u', 'a'\) \(tuple\)"
    ):
        Funnel(["a"]).run([("u", "a")])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="'all' is the report of every entity"):
        Funnel(["a"]).compare([], {"all": []})
    with pytest.raises(IndexError, match="step 2 is out of range: this funnel has steps 0 to 1"):
        Funnel(["a", "b"]).run([]).members(2)


def test_funnel_repr_and_equality() -> None:
    """The repr shows the options that differ from the defaults; funnels compare by value."""
    f = Funnel(
        ["a", Step("b", where="v > 1")],
        window="7d",
        order="strict",
        exclusions=[Exclusion("x", (0, 1))],
    )
    assert repr(f) == (
        "Funnel(['a', 'b where v > 1'], window='7d', order='strict',"
        " exclusions=[Exclusion(event='x', between=(0, 1), where=None)])"
    )
    assert f == Funnel(
        ["a", Step("b", where="v > 1")],
        window="7d",
        order="strict",
        exclusions=[Exclusion("x", (0, 1))],
    )
    assert f.event_names == {"a", "b", "x"}
    assert f.entry_events == {"a"}
    assert f.reads_all_events


def test_mistyped_property_with_a_schema_is_a_schema_error() -> None:
    """With a schema, values must already have their types (Schema.validate_event coerces)."""
    schema = sk.Schema(events={"buy": {"amount": "float"}})
    funnel = Funnel([Step("buy", where="amount > 3")], schema=schema)
    with pytest.raises(sk.SchemaError) as info:
        funnel.run([ev("c-1", "buy", 0, amount="12")])
    assert info.value.message.startswith(
        "event 'buy' of 'c-1': a property does not have its schema type ("
    )
    assert info.value.message.endswith("); validate events with Schema.validate_event first")
    assert funnel.run([schema.validate_event(ev("c-1", "buy", 0, amount="12"))]).levels() == {
        "c-1": 1
    }


def test_evaluate_columns_checks_its_columns() -> None:
    """Columns must line up, and filtered steps need the properties column."""
    funnel = Funnel(["a", Step("b", where="v > 1")])
    with pytest.raises(ValueError, match="keys, names and times_us must have the same length"):
        funnel.evaluate_columns(["u"], ["a", "b"], [0, 1])
    with pytest.raises(ValueError, match=r"steps or exclusions on 'b' have a where filter"):
        funnel.evaluate_columns(["u", "u"], ["a", "b"], [0, 1])
    outcomes = funnel.evaluate_columns(["u", "u"], ["a", "b"], [0, 1], properties=[{}, {"v": 2}])
    assert outcomes.report().levels() == {"u": 2}
    with pytest.raises(TypeError, match=r"times_us must hold integers"):
        funnel.evaluate_columns(["u"], ["a"], [1.5], properties=[{}])
