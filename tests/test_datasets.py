"""Tests for segkit.datasets: determinism, validity and the shape of the synthetic data."""

from __future__ import annotations

import itertools
from collections import Counter, defaultdict
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from segkit.datasets import COUNTRIES, PLANS, TAGS, Dataset, generate
from segkit.records import Event
from segkit.schema import FieldType

UTC = timezone.utc
NOW = datetime(2024, 6, 30, 12, tzinfo=UTC)


@pytest.fixture(scope="module")
def ds() -> Dataset:
    """The default dataset (500 profiles), generated once for the module."""
    return generate()


def by_profile(events: tuple[Event, ...]) -> dict[str, list[Event]]:
    """Events grouped by profile key, in stream order."""
    groups: dict[str, list[Event]] = defaultdict(list)
    for event in events:
        groups[event.key].append(event)
    return groups


def test_same_arguments_give_the_same_dataset() -> None:
    """generate is deterministic: two calls with the same arguments are equal."""
    assert generate(80, seed=3) == generate(80, seed=3)


def test_different_seeds_differ() -> None:
    """A different seed gives different profiles and events."""
    a, b = generate(80, seed=3), generate(80, seed=4)
    assert a.profiles != b.profiles
    assert a.events != b.events


def test_default_shape(ds: Dataset) -> None:
    """The default dataset has 500 profiles keyed c-000001…, the default now and UTC schema."""
    assert len(ds.profiles) == 500
    assert [p.key for p in ds.profiles[:2]] == ["c-000001", "c-000002"]
    assert ds.profiles[-1].key == "c-000500"
    assert ds.now == NOW
    assert ds.now.tzinfo is UTC
    assert ds.schema.timezone_name == "UTC"
    assert repr(ds) == f"Dataset(<500 profiles>, <{len(ds.events)} events>, now={NOW.isoformat()})"


def test_schema_declaration(ds: Dataset) -> None:
    """The schema declares the documented attributes and event types."""
    assert ds.schema.to_dict() == {
        "attributes": {
            "country": "string",
            "plan": "string",
            "age": "int",
            "ltv": "float",
            "signed_up": "date",
            "is_customer": "bool",
            "tags": "list[string]",
            "email": "string",
            "nps": "int",
            "lifecycle_stage": "string",
        },
        "events": {
            "page_view": {"url": "string"},
            "signup": {},
            "add_to_cart": {"sku": "string", "price": "float"},
            "cart_abandoned": {},
            "checkout_started": {},
            "purchase": {"amount": "float", "sku": "string"},
            "email_open": {"campaign": "string"},
        },
        "timezone": "UTC",
    }


def test_everything_validates_unchanged(ds: Dataset) -> None:
    """Every generated profile and event passes the schema unchanged."""
    for profile in ds.profiles:
        assert ds.schema.validate_profile(profile.key, profile.attributes) == profile.attributes
    for event in ds.events:
        assert ds.schema.validate_event(event) == event


def test_attribute_values(ds: Dataset) -> None:
    """Attribute values stay in their documented ranges."""
    five_years_ago = NOW.date() - timedelta(days=5 * 365)
    for profile in ds.profiles:
        a = profile.attributes
        assert a["country"] in COUNTRIES
        assert a["plan"] in PLANS
        assert 18 <= a["age"] <= 80
        assert a["ltv"] == round(a["ltv"], 2) > 0
        assert five_years_ago <= a["signed_up"] <= NOW.date()
        assert isinstance(a["is_customer"], bool)
        assert len(a["tags"]) <= 3
        assert len(set(a["tags"])) == len(a["tags"])
        assert set(a["tags"]) <= set(TAGS)
        assert "email" not in a or a["email"].endswith((".com", ".org", ".net"))
        assert "nps" not in a or a["nps"] in range(11)
    assert len(COUNTRIES) == len(set(COUNTRIES)) == 50
    assert len(TAGS) == len(set(TAGS)) == 20


def test_distributions(ds: Dataset) -> None:
    """Countries are skewed, plans decrease, customers follow the plan, ~90% have an email."""
    countries = Counter(p.attributes["country"] for p in ds.profiles)
    assert countries.most_common(1)[0][0] == "US"
    assert sum(n for _, n in countries.most_common(5)) > 0.5 * len(ds.profiles)
    plans = Counter(p.attributes["plan"] for p in ds.profiles)
    assert plans["free"] > plans["starter"] > plans["pro"] > plans["enterprise"] > 0
    paying = [p.attributes["is_customer"] for p in ds.profiles if p.attributes["plan"] != "free"]
    free = [p.attributes["is_customer"] for p in ds.profiles if p.attributes["plan"] == "free"]
    assert sum(paying) / len(paying) > 0.6 > 0.2 > sum(free) / len(free)
    with_email = sum("email" in p.attributes for p in ds.profiles) / len(ds.profiles)
    assert 0.85 <= with_email <= 0.95
    answered = [p.attributes for p in ds.profiles if "nps" in p.attributes]
    assert 0.2 <= len(answered) / len(ds.profiles) <= 0.4
    customers = [a["nps"] for a in answered if a["is_customer"]]
    others = [a["nps"] for a in answered if not a["is_customer"]]
    assert sum(customers) / len(customers) > sum(others) / len(others)
    assert len({len(p.attributes["tags"]) for p in ds.profiles}) == 4


def test_events_are_sorted_aware_and_not_after_now(ds: Dataset) -> None:
    """Events are sorted by time, in UTC, and none is after now."""
    times = [e.at for e in ds.events]
    assert times == sorted(times)
    assert all(t.tzinfo is UTC for t in times)
    assert max(times) <= NOW


def test_profile_timelines(ds: Dataset) -> None:
    """A profile's events strictly increase, follow its signup, and mostly lie in the last 90d."""
    starts = {
        p.key: datetime.combine(p.attributes["signed_up"], datetime.min.time(), UTC)
        for p in ds.profiles
    }
    for key, events in by_profile(ds.events).items():
        times = [e.at for e in events]
        assert all(a < b for a, b in itertools.pairwise(times))
        assert times[0] >= starts[key]
    recent = sum(e.at > NOW - timedelta(days=90) for e in ds.events)
    assert recent / len(ds.events) > 0.7


def test_funnel_shape(ds: Dataset) -> None:
    """Fewer distinct profiles reach each funnel step: view > cart > checkout > purchase."""
    reached = {
        name: len({e.key for e in ds.events if e.name == name})
        for name in ("page_view", "add_to_cart", "checkout_started", "purchase")
    }
    assert (
        len(ds.profiles)
        > reached["page_view"]
        > reached["add_to_cart"]
        > reached["checkout_started"]
        > reached["purchase"]
        > 0
    )
    assert reached["page_view"] > 0.8 * len(ds.profiles)


def test_funnel_order_within_profiles(ds: Dataset) -> None:
    """Every purchase follows a checkout, every checkout follows an add to cart."""
    for events in by_profile(ds.events).values():
        seen: set[str] = set()
        for event in events:
            if event.name == "purchase":
                assert "checkout_started" in seen
            if event.name in ("checkout_started", "cart_abandoned"):
                assert "add_to_cart" in seen
            seen.add(event.name)


def test_every_event_type_occurs(ds: Dataset) -> None:
    """Each declared event type occurs, with its declared properties."""
    names = Counter(e.name for e in ds.events)
    assert set(names) == set(ds.schema.events)
    for event in ds.events:
        declared = ds.schema.events[event.name].properties
        assert set(event.properties) == set(declared)


def test_purchase_amount_matches_cart(ds: Dataset) -> None:
    """A purchase's amount is positive and its sku was added to the cart before."""
    for events in by_profile(ds.events).values():
        carted: set[str] = set()
        for event in events:
            if event.name == "add_to_cart":
                carted.add(event.properties["sku"])
            if event.name == "purchase":
                assert event.properties["amount"] > 0
                assert event.properties["sku"] in carted


def test_events_per_profile_scales_volume() -> None:
    """events_per_profile is roughly the mean number of events; 0 gives none."""
    small = generate(300, events_per_profile=2.0)
    large = generate(300, events_per_profile=16.0)
    assert 1.0 < len(small.events) / 300 < 4.0
    assert 10.0 < len(large.events) / 300 < 24.0
    assert generate(30, events_per_profile=0).events == ()


def test_custom_now() -> None:
    """A custom now moves the data; a non-UTC now is converted to UTC."""
    now = datetime(2030, 1, 1, 12, tzinfo=timezone(timedelta(hours=2)))
    ds = generate(50, now=now)
    assert (ds.now, ds.now.tzinfo) == (now, UTC)
    assert max(e.at for e in ds.events) <= now
    assert min(p.attributes["signed_up"] for p in ds.profiles).year >= 2025


def test_empty_population() -> None:
    """Zero profiles give an empty dataset with the schema."""
    ds = generate(0)
    assert (ds.profiles, ds.events) == ((), ())
    assert ds.schema.attribute_type("age") is FieldType.INT


def test_iter_records(ds: Dataset) -> None:
    """iter_records yields (key, attributes) pairs in profile order."""
    records = list(ds.iter_records())
    assert records[0] == ("c-000001", dict(ds.profiles[0].attributes))
    assert len(records) == len(ds.profiles)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_profiles": -1}, "n_profiles must be a non-negative int, got -1"),
        ({"n_profiles": 2.0}, "n_profiles must be a non-negative int, got 2.0"),
        ({"events_per_profile": -1.0}, "events_per_profile must not be negative, got -1.0"),
        (
            {"events_per_profile": float("nan")},
            "events_per_profile must be a finite number, got nan",
        ),
        (
            {"now": datetime(2024, 1, 1)},
            "now must be an aware datetime, got naive 2024-01-01T00:00:00",
        ),
    ],
)
def test_generate_rejects_bad_arguments(kwargs: dict[str, Any], message: str) -> None:
    """Bad arguments raise ValueError with a clear message."""
    with pytest.raises(ValueError) as info:  # noqa: PT011 (the message is checked exactly)
        generate(**kwargs)
    assert str(info.value) == message
