"""Engine.attention on constructed snapshot histories, and the engagement figure of snapshots."""

from __future__ import annotations

import random
import statistics
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import segkit as sk
from segkit.analysis.attention import (
    ENGAGEMENT_WINDOW,
    AttentionItem,
    coerce_engagement_window,
    count_engaged,
    robust_z,
)
from segkit.storage import Snapshot

T0 = datetime(2024, 3, 1, tzinfo=timezone.utc)
DAY = timedelta(days=1)


class Clock:
    """A settable clock."""

    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def with_history(
    sizes: Sequence[int | None],
    engagement: Sequence[float | None] | None = None,
    *,
    name: str = "s",
    engine: sk.Engine | None = None,
    hour: int = 12,
) -> tuple[sk.Engine, datetime]:
    """An engine whose static segment ``name`` has one stored snapshot per day: ``sizes[i]``
    at noon of day ``i`` (no snapshot for ``None``); ``now`` is noon of the last day."""
    if engine is None:
        engine = sk.Engine(sk.Schema(attributes={}), clock=Clock())
    engine.define_static(name, [])
    storage = engine.storage
    for old in storage.list_snapshots(name):  # the snapshot written by define_static
        storage.delete_snapshot(name, old.value.at, expected_version=old.version)
    for i, size in enumerate(sizes):
        if size is not None:
            eng = None if engagement is None else engagement[i]
            at = T0 + i * DAY + timedelta(hours=hour)
            storage.put_snapshot(Snapshot(name, at, size, eng), expected_version=None)
    return engine, T0 + (len(sizes) - 1) * DAY + timedelta(hours=hour)


def one(engine: sk.Engine, now: datetime, **options: object) -> AttentionItem:
    """The attention row of the only segment, flagged or not."""
    [item] = engine.attention(now, flagged_only=False, **options)  # type: ignore[arg-type]
    return item


# --- the four acceptance histories ------------------------------------------------------------


def test_steady_growth_is_not_flagged() -> None:
    """A segment growing by the same amount every day for two months is not listed."""
    sizes = [1000 + 20 * d for d in range(60)]
    engine, now = with_history(sizes)
    assert engine.attention(now) == ()
    item = one(engine, now)
    assert (item.size, item.change_7d, item.z, item.reasons) == (2180, 140, 0.0, ())
    assert item.change_7d_pct == pytest.approx(140 / 2040 * 100)


def test_doubling_within_two_days_is_flagged() -> None:
    """A segment that doubles over two days, after a steady month, is listed with reasons."""
    sizes = [1000 + (d % 3) for d in range(30)] + [1500, 2010]
    engine, now = with_history(sizes)
    [item] = engine.attention(now)
    assert item.reasons[:2] == ("size doubled within 2 days", "size +101% in 7 days")
    assert item.reasons[2].startswith("z=")
    assert item.reasons[2].endswith(" on size")
    assert item.change_7d == 1010


def test_drop_to_zero_is_flagged() -> None:
    """A segment that empties is listed, 'fell to zero' first (no redundant 'halved')."""
    sizes = [800 + 5 * (d % 4) for d in range(20)] + [0]
    engine, now = with_history(sizes)
    [item] = engine.attention(now)
    assert item.reasons[0] == "size fell to zero"
    assert len(item.reasons) == 2
    assert item.reasons[1].startswith("z=-")
    assert (item.size, item.change_7d, item.change_7d_pct) == (0, -805, -100.0)


@pytest.mark.parametrize("seed", range(12))
def test_noisy_but_normal_is_not_flagged(seed: int) -> None:
    """Daily noise of up to ±40 members around 5,000 is normal for that segment."""
    rng = random.Random(seed)
    sizes = [5000 + rng.randint(-40, 40) for _ in range(60)]
    engine, now = with_history(sizes)
    assert engine.attention(now) == ()


# --- each rule ----------------------------------------------------------------------------------


def test_halving_within_two_days() -> None:
    """A fall to at most half within two days is a reason."""
    sizes = [1000] * 10 + [700, 480]
    engine, now = with_history(sizes)
    assert engine.attention(now)[0].reasons[:2] == (
        "size halved within 2 days",
        "size -52% in 7 days",
    )


def test_doubling_over_three_days_is_not_within_two() -> None:
    """Doubling spread over three days is no 'doubled within 2 days' (but a 7-day change)."""
    sizes = [1000] * 10 + [1300, 1600, 2000]
    engine, now = with_history(sizes, engine=None)
    assert one(engine, now, z_threshold=None).reasons == ("size +100% in 7 days",)
    assert one(engine, now, within_days=3, z_threshold=None).reasons == (
        "size doubled within 3 days",
        "size +100% in 7 days",
    )


def test_change_over_the_window_uses_the_days_option() -> None:
    """The window is `days` long: the change, its percentage and the reason follow it."""
    sizes = [1000] * 10 + [1100 + 60 * d for d in range(5)]  # 1100 ... 1340
    engine, now = with_history(sizes)
    item = one(engine, now, z_threshold=None)
    assert (item.change_7d, item.reasons) == (340, ())
    item = one(engine, now, z_threshold=None, change_pct=30)
    assert item.reasons == ("size +34% in 7 days",)
    item = one(engine, now, z_threshold=None, days=2)
    assert (item.change_7d, item.reasons) == (120, ())


def test_small_changes_give_no_reason() -> None:
    """A tiny segment doubling, halving or emptying is below min_change (10 by default)."""
    sizes = [4, 4, 4, 8, 3, 0]
    engine, now = with_history(sizes)
    assert engine.attention(now) == ()
    assert one(engine, now, min_change=1).reasons == (
        "size fell to zero",
        "size doubled within 2 days",
    )


def test_rise_from_zero() -> None:
    """A segment that was empty a week ago and is not now rose from zero (no percentage)."""
    sizes = [0] * 10 + [50]
    engine, now = with_history(sizes)
    item = one(engine, now, z_threshold=None)
    assert (item.change_7d, item.change_7d_pct) == (50, None)
    assert item.reasons == ("size rose from zero in 7 days",)


def test_a_young_segment_is_measured_from_its_first_snapshot() -> None:
    """Younger than the window: the change counts from the first snapshot."""
    sizes = [None] * 10 + [300, 310, 320]
    engine, now = with_history(sizes)
    item = one(engine, now)
    assert (item.change_7d, item.z, item.reasons) == (20, None, ())


def test_the_last_snapshot_of_each_day_counts() -> None:
    """A morning spike undone by the evening is not a change of that day."""
    engine, now = with_history([1000] * 15)
    for hours, size in ((13, 5000), (14, 1000)):
        engine.storage.put_snapshot(
            Snapshot("s", now + timedelta(hours=hours) - DAY, size), expected_version=None
        )
    assert engine.attention(now) == ()


def test_days_without_a_snapshot_carry_the_last_value() -> None:
    """Snapshots are written on change: a gap means no change."""
    sizes: list[int | None] = [1000, None, None, None, None, None, None, None, None, 1000]
    engine, now = with_history(sizes)
    item = one(engine, now)
    assert (item.change_7d, item.reasons) == (0, ())


def test_snapshots_after_now_are_ignored() -> None:
    """Attention at a past `now` reads the history up to then."""
    sizes = [1000] * 20 + [0]
    engine, now = with_history(sizes)
    assert engine.attention(now - DAY) == ()
    assert engine.attention(now)[0].reasons[0] == "size fell to zero"


def test_segments_without_snapshots_up_to_now_are_left_out() -> None:
    """A segment with no snapshot before now has no row, even with flagged_only=False."""
    engine, _ = with_history([100, 100])
    assert engine.attention(T0 - DAY, flagged_only=False) == ()


def test_engagement_is_judged_like_the_size() -> None:
    """The engagement series gets its own reasons and fields."""
    sizes = [1000] * 20
    engagement: list[float | None] = [400.0] * 19 + [0.0]
    engine, now = with_history(sizes, engagement)
    [item] = engine.attention(now)
    assert item.reasons[0] == "engagement fell to zero"
    assert (item.engagement, item.engagement_change_7d) == (0.0, -400.0)
    assert item.engagement_z is not None
    assert item.engagement_z < -3.5
    assert item.z == 0.0


def test_order_is_most_irregular_first() -> None:
    """More reasons first, then the larger 7-day percentage, then the name."""
    engine = sk.Engine(sk.Schema(attributes={}), clock=Clock())
    with_history([1000] * 10 + [1000, 0], name="emptied", engine=engine)
    with_history([1000] * 10 + [1000, 1600], name="up60", engine=engine)
    with_history([1000] * 10 + [1000, 2500], name="up150", engine=engine)
    _, now = with_history([0] * 10 + [0, 100], name="from_zero", engine=engine)
    got = [(item.name, len(item.reasons)) for item in engine.attention(now, z_threshold=None)]
    assert got == [("up150", 2), ("from_zero", 1), ("emptied", 1), ("up60", 1)]


def test_rows_carry_the_segment_metadata_and_members() -> None:
    """Each row has kind, object type, last update and author, and the members."""
    clock = Clock(T0 + 30 * DAY)
    engine = sk.Engine(sk.Schema(attributes={"plan": "string"}), clock=clock)
    engine.upsert_many({f"c-{i}": {"plan": "pro"} for i in range(30)})
    engine.define("pro", 'plan = "pro"', object_type="company", updated_by="ana")
    clock.now += DAY
    engine.upsert_many({f"c-{i}": {"plan": "free"} for i in range(30)})
    engine.save()
    [item] = engine.attention()
    assert (item.kind, item.object_type, item.updated_by) == ("dynamic", "company", "ana")
    assert item.updated_at == T0 + 30 * DAY
    assert len(item.members) == 0
    assert item.members == engine.members("pro")
    assert item.to_dict() == {
        "name": "pro",
        "size": 0,
        "change_7d": -30,
        "change_7d_pct": -100.0,
        "z": None,
        "engagement": None,
        "engagement_change_7d": None,
        "engagement_z": None,
        "kind": "dynamic",
        "object_type": "company",
        "updated_at": "2024-03-31T00:00:00+00:00",
        "updated_by": "ana",
        "reasons": ["size fell to zero"],
    }
    assert repr(item) == (
        "AttentionItem('pro', size=0, change_7d=-30 (-100%), kind='dynamic', "
        "reasons=('size fell to zero',))"
    )
    assert item.flagged


# --- property: against a plain-Python reference -----------------------------------------------


def reference(sizes: Sequence[int], *, days: int = 7, least: float = 10) -> dict[str, object]:
    """The attention row of a daily series (one snapshot per day), computed plainly."""
    today = len(sizes) - 1
    window = sizes[max(0, today - days) :]
    base, current = window[0], sizes[-1]
    fell = current == 0 and any(v > 0 and v >= least for v in window[:-1])
    doubled = halved = False
    for i, a in enumerate(window):
        for j in range(i + 1, min(i + 3, len(window))):
            b = window[j]
            if a > 0 and b >= 2 * a and b - a >= least:
                doubled = True
            if a > 0 and b <= a / 2 and a - b >= least:
                halved = True
    reasons = []
    if fell:
        reasons.append("size fell to zero")
    if doubled:
        reasons.append("size doubled within 2 days")
    if halved and not fell:
        reasons.append("size halved within 2 days")
    change = current - base
    pct = change / base * 100 if base else None
    if abs(change) >= least and not fell:
        if pct is not None and abs(pct) >= 50:
            reasons.append(f"size {pct:+.0f}% in {days} days")
        elif pct is None and change > 0:
            reasons.append(f"size rose from zero in {days} days")
    changes = [b - a for a, b in pairwise(sizes)]
    z = None
    if len(changes) >= 8:
        latest, history = changes[-1], changes[:-1][-90:]
        median = statistics.median(history)
        mad = statistics.median(abs(h - median) for h in history)
        spread = 1.4826 * mad or 1.2533 * statistics.mean(abs(h - median) for h in history)
        z = (latest - median) / max(spread, 1.0)
        if abs(z) >= 3.5 and abs(latest - median) >= least:
            reasons.append(f"z={z:.1f} on size")
    return {"change": change, "pct": pct, "z": z, "reasons": tuple(reasons)}


series = st.one_of(
    st.lists(st.integers(0, 3000), min_size=1, max_size=40),
    st.builds(
        lambda start, steps: [max(0, start + sum(steps[:i])) for i in range(len(steps) + 1)],
        st.integers(0, 2000),
        st.lists(st.integers(-60, 60), max_size=40),
    ),
)


@settings(max_examples=150)
@given(sizes=series)
def test_attention_matches_a_plain_reference(sizes: list[int]) -> None:
    """Change, percentage, robust z and reasons equal a plain-Python computation."""
    engine, now = with_history(sizes)
    item = one(engine, now)
    want = reference(sizes)
    assert item.change_7d == want["change"]
    if want["pct"] is None:
        assert item.change_7d_pct is None
    else:
        assert item.change_7d_pct == pytest.approx(want["pct"])
    if want["z"] is None:
        assert item.z is None
    else:
        assert item.z == pytest.approx(want["z"])
    assert item.reasons == want["reasons"]


def test_robust_z_against_a_hand_computation() -> None:
    """robust_z is (x - median) / (1.4826 MAD), with the mean-deviation fallback and a floor."""
    history = [3, 7, 7, 2, 9, 7, 4]
    # median 7; deviations 4 0 0 5 2 0 3 -> MAD 2
    assert robust_z(19, history) == pytest.approx(12 / (1.4826 * 2))
    # MAD 0 (most values equal): the mean absolute deviation (24 / 6 = 4) steps in
    assert robust_z(5, [1, 1, 1, 1, 1, 25]) == pytest.approx(4 / (1.2533 * 4))
    assert robust_z(2, [1, 1, 1]) == 1.0
    with pytest.raises(ValueError, match=r"^robust_z needs a non-empty history$"):
        robust_z(1, [])


# --- options ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"days": 0}, ValueError, "days must be at least 1, got 0"),
        ({"days": 7.0}, TypeError, "days must be an int, got float"),
        ({"within_days": True}, TypeError, "within_days must be an int, got bool"),
        ({"change_pct": 0}, ValueError, "change_pct must be positive, got 0"),
        ({"change_pct": "50"}, TypeError, "change_pct must be a number or None, got str"),
        ({"min_change": -1}, ValueError, "min_change must be at least 0, got -1"),
        ({"min_change": None}, TypeError, "min_change must be a number, got NoneType"),
        ({"z_threshold": float("nan")}, ValueError, "z_threshold must be positive, got nan"),
        ({"min_history": 1}, ValueError, "min_history must be at least 2, got 1"),
        ({"history_days": 0}, ValueError, "history_days must be at least 1, got 0"),
        ({"flagged_only": 1}, TypeError, "flagged_only must be a bool, got int"),
    ],
)
def test_bad_options_raise_precise_errors(
    options: dict[str, object], error: type[Exception], message: str
) -> None:
    """Each bad option names itself and what it expects."""
    engine, now = with_history([1, 2])
    with pytest.raises(error) as info:
        engine.attention(now, **options)  # type: ignore[arg-type]
    assert str(info.value) == message


def test_a_naive_now_needs_a_schema_time_zone() -> None:
    """A naive `now` is refused unless the schema declares a time zone."""
    engine, _ = with_history([1, 2])
    with pytest.raises(ValueError, match=r"^naive now 2024-03-02T00:00:00: give it a time zone"):
        engine.attention(datetime(2024, 3, 2))
    zoned = sk.Engine(sk.Schema(attributes={}, timezone="UTC"), clock=Clock())
    with_history([1000] * 10 + [0], engine=zoned)
    assert zoned.attention(datetime(2024, 3, 11, 12))[0].reasons[0] == "size fell to zero"


# --- engagement ---------------------------------------------------------------------------------

EVENT_SCHEMA = sk.Schema(attributes={"plan": "string"}, events={"visit": {}, "buy": {}})


def test_snapshots_store_the_engaged_member_count() -> None:
    """Each save stores how many members had an event in the 7 days up to the snapshot."""
    now = datetime(2024, 6, 30, 15, tzinfo=timezone.utc)
    clock = Clock(now)
    engine = sk.Engine(EVENT_SCHEMA, clock=clock)
    engine.upsert_many({k: {"plan": "pro"} for k in "abcd"})
    engine.track_many(
        [
            sk.Event("a", "visit", now - timedelta(days=1)),
            sk.Event("b", "buy", now - timedelta(days=7)),  # exactly 7 days: out
            sk.Event("c", "visit", now - timedelta(days=7) + timedelta(seconds=1)),
            sk.Event("d", "visit", now + timedelta(seconds=1)),  # after the snapshot: out
        ]
    )
    engine.define("pro", 'plan = "pro"')
    assert engine.storage.list_snapshots("pro")[-1].value.engagement == 2.0
    clock.now = now + timedelta(days=6, hours=23)
    engine.upsert("a", {"plan": "free"})
    engine.save()
    # a left; c's visit is now older than 7 days; d's is in the window
    assert engine.storage.list_snapshots("pro")[-1].value.engagement == 1.0


def test_engagement_window_is_configurable() -> None:
    """engagement_window changes the window of later snapshots; None stores no engagement."""
    now = datetime(2024, 6, 30, tzinfo=timezone.utc)
    engine = sk.Engine(EVENT_SCHEMA, clock=Clock(now))
    assert engine.engagement_window == ENGAGEMENT_WINDOW == timedelta(days=7)
    engine.track(sk.Event("a", "visit", now - timedelta(days=10)))
    engine.engagement_window = timedelta(days=14)
    engine.define_static("fortnight", ["a"])
    engine.engagement_window = "7d"
    engine.define_static("week", ["a"])
    engine.engagement_window = None
    engine.define_static("off", ["a"])
    got = {n: engine.storage.list_snapshots(n)[-1].value.engagement for n in engine.segments}
    assert got == {"fortnight": 1.0, "week": 0.0, "off": None}


def test_no_event_types_means_no_engagement() -> None:
    """A schema without event types stores no engagement figure."""
    engine = sk.Engine(sk.Schema(attributes={}))
    engine.define_static("s", [])
    assert engine.storage.list_snapshots("s")[0].value.engagement is None


@pytest.mark.parametrize(
    ("value", "error", "message"),
    [
        (timedelta(0), ValueError, "engagement_window must be positive, got datetime.timedelta(0)"),
        ("0d", ValueError, "engagement_window must be positive, got datetime.timedelta(0)"),
        (
            "1mo",
            ValueError,
            "engagement_window must have a fixed length (s, min, h, d or w), got '1mo'",
        ),
        (
            "5m",
            ValueError,
            "ambiguous duration unit 'm': write 'min' for minutes or 'mo' for months",
        ),
        (
            7,
            TypeError,
            "engagement_window must be a timedelta, duration text such as '7d', or None; got int",
        ),
    ],
)
def test_bad_engagement_windows_are_refused(
    value: object, error: type[Exception], message: str
) -> None:
    """A bad window raises and the old one stays."""
    engine = sk.Engine(EVENT_SCHEMA)
    with pytest.raises(error) as info:
        engine.engagement_window = value  # type: ignore[assignment]
    assert str(info.value) == message
    assert engine.engagement_window == timedelta(days=7)
    assert coerce_engagement_window("36h") == timedelta(hours=36)


def test_delete_and_merge_keep_the_activity_bitmaps_right() -> None:
    """A deleted profile stops counting; a merged one's events count for its new key."""
    now = datetime(2024, 6, 30, 12, tzinfo=timezone.utc)
    engine = sk.Engine(EVENT_SCHEMA, clock=Clock(now))
    engine.upsert_many({"known": {}, "gone": {}})
    engine.track_many(
        [
            sk.Event("anon", "visit", now - timedelta(days=3)),
            sk.Event("gone", "visit", now - timedelta(days=3)),
        ]
    )
    assert count_engaged(engine, engine.universe, now) == 2.0
    gone = engine._ids.id_of("gone")
    engine.delete("gone")
    assert count_engaged(engine, engine.universe, now) == 1.0
    assert gone not in engine._event_index.active_on((now - 3 * DAY).date())
    engine.merge("anon", into="known")
    assert count_engaged(engine, engine.universe, now) == 1.0
    assert engine.key_of(next(iter(engine._event_index.active_on((now - 3 * DAY).date())))) == (
        "known"
    )


@settings(max_examples=80)
@given(
    offsets=st.lists(
        st.tuples(st.integers(0, 11), st.integers(-12 * 86400, 3 * 86400)), max_size=40
    ),
    members=st.sets(st.integers(0, 11)),
    window_hours=st.integers(1, 240),
    now_seconds=st.integers(0, 86400 - 1),
    deleted=st.sets(st.integers(0, 11), max_size=3),
)
def test_engagement_equals_a_brute_force_count(
    offsets: list[tuple[int, int]],
    members: set[int],
    window_hours: int,
    now_seconds: int,
    deleted: set[int],
) -> None:
    """The stored engagement is the number of members with an event in (now - window, now]."""
    now = datetime(2024, 6, 30, tzinfo=timezone.utc) + timedelta(seconds=now_seconds)
    engine = sk.Engine(EVENT_SCHEMA, clock=Clock(now))
    engine.upsert_many({f"p{i}": {} for i in range(12)})
    events = [sk.Event(f"p{i}", "visit", now + timedelta(seconds=s)) for i, s in offsets]
    engine.track_many(events)
    for i in sorted(deleted):
        engine.delete(f"p{i}")
    engine.engagement_window = timedelta(hours=window_hours)
    keys = [f"p{i}" for i in sorted(members - deleted)]
    engine.define_static("s", keys)
    start = now - timedelta(hours=window_hours)
    expected = {e.key for e in events if start < e.at <= now and e.key in keys}
    assert engine.storage.list_snapshots("s")[-1].value.engagement == float(len(expected))
