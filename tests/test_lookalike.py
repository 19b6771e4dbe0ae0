"""Lookalikes: weights, scores, the chosen profiles, saving, and the errors (issue 6, item 6)."""

from __future__ import annotations

import json
import math
import random
from collections.abc import Mapping, Sequence
from datetime import date, datetime, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import segkit as sk
from segkit import datasets
from segkit.analysis.lookalike import (
    Lookalike,
    LookalikeContribution,
    LookalikeWeight,
    quantile_edges,
)
from segkit.storage import InMemoryStorage, UsageRecord

NOW = datetime(2024, 6, 30, 12, tzinfo=timezone.utc)

SCHEMA = sk.Schema(
    attributes={
        "country": "string",
        "plan": "string",
        "is_customer": "bool",
        "age": "int",
        "tags": "list[string]",
        "email": "string",
    }
)

#: Customers are French or German "pro"s; the non-customers p-1 (FR, pro) and p-2
#: (DE, pro) look like them, p-3 and p-4 (free) less, p-5 (US, free) least.
PROFILES: dict[str, dict[str, Any]] = {
    "c-1": {"country": "FR", "plan": "pro", "is_customer": True},
    "c-2": {"country": "FR", "plan": "pro", "is_customer": True},
    "c-3": {"country": "DE", "plan": "pro", "is_customer": True},
    "p-1": {"country": "FR", "plan": "pro", "is_customer": False},
    "p-2": {"country": "DE", "plan": "pro", "is_customer": False},
    "p-3": {"country": "FR", "plan": "free", "is_customer": False},
    "p-4": {"country": "DE", "plan": "free", "is_customer": False},
    "p-5": {"country": "US", "plan": "free", "is_customer": False},
}


def make_engine(
    profiles: Mapping[str, Mapping[str, Any]] = PROFILES,
    schema: sk.Schema = SCHEMA,
    storage: InMemoryStorage | None = None,
) -> sk.Engine:
    engine = sk.Engine(schema, storage=storage, clock=lambda: NOW)
    engine.upsert_many(dict(profiles))
    return engine


def customers(
    profiles: Mapping[str, Mapping[str, Any]] = PROFILES, storage: InMemoryStorage | None = None
) -> sk.Engine:
    engine = make_engine(profiles, storage=storage)
    engine.define("customers", "is_customer = true")
    return engine


def log_odds(s: int, seed_known: int, r: int, rest_known: int, k: int, a: float = 1.0) -> float:
    return math.log((s + a) / (seed_known + a * k)) - math.log((r + a) / (rest_known + a * k))


# --- known answers ------------------------------------------------------------------------------


def test_picks_the_non_customers_who_share_the_customers_country_and_plan() -> None:
    """The non-members with the customers' country and plan rank first, by the formula."""
    engine = customers()
    found = engine.lookalike("customers", size=2)
    assert list(found.scores) == ["p-1", "p-2"]
    assert found.members.keys() == ["p-1", "p-2"]
    assert found.attributes == ("country", "plan", "age", "tags", "email")
    assert found.candidates == 5
    # country: seed FR 2, DE 1 (of 3); rest FR 2, DE 2, US 1 (of 5); k = 3
    w = {
        ("country", "FR"): log_odds(2, 3, 2, 5, 3),
        ("country", "DE"): log_odds(1, 3, 2, 5, 3),
        ("country", "US"): log_odds(0, 3, 1, 5, 3),
        ("plan", "pro"): log_odds(3, 3, 2, 5, 2),
        ("plan", "free"): log_odds(0, 3, 3, 5, 2),
    }
    got = {(row.attribute, row.value): row.weight for row in found.weights}
    assert got.keys() == w.keys()
    for key, weight in w.items():
        assert got[key] == pytest.approx(weight, abs=1e-12)
    assert found.scores["p-1"] == pytest.approx(w["country", "FR"] + w["plan", "pro"])
    assert found.scores["p-2"] == pytest.approx(w["country", "DE"] + w["plan", "pro"])


def test_weights_table_holds_counts_and_is_sorted_by_weight() -> None:
    """Each row carries the seed and rest counts; rows go from the highest weight down."""
    found = customers().lookalike("customers", size=1, save=False)
    rows = [(r.attribute, r.value, r.seed_count, r.rest_count) for r in found.weights]
    assert rows == [
        ("plan", "pro", 3, 2),
        ("country", "FR", 2, 2),
        ("country", "DE", 1, 2),
        ("country", "US", 0, 1),
        ("plan", "free", 0, 3),
    ]
    weights = [r.weight for r in found.weights]
    assert weights == sorted(weights, reverse=True)


def test_equal_scores_are_broken_by_external_key() -> None:
    """Profiles with equal scores are chosen in ascending key order."""
    profiles = {f"x-{i}": {"country": "FR"} for i in (5, 3, 9, 1, 7)} | {"s": {"country": "FR"}}
    engine = make_engine(profiles)
    engine.define_static("seed", ["s"])
    found = engine.lookalike("seed", size=3, save=False)
    assert list(found.scores) == ["x-1", "x-3", "x-5"]
    assert len(set(found.scores.values())) == 1


def test_the_result_does_not_depend_on_the_loading_order() -> None:
    """Loading the same profiles in another order gives the same lookalike."""
    data = datasets.generate(300, seed=11, events_per_profile=0)
    results = []
    for shuffle_seed in (None, 1, 2):
        records = [(p.key, dict(p.attributes)) for p in data.profiles]
        if shuffle_seed is not None:
            random.Random(shuffle_seed).shuffle(records)
        engine = sk.Engine(data.schema, clock=lambda: NOW)
        engine.upsert_many(records)
        engine.define("customers", "is_customer = true")
        found = engine.lookalike("customers", size=40, save=False)
        results.append((found.scores, found.weights, found.bins))
    assert results[0] == results[1] == results[2]


def test_size_larger_than_the_candidates_returns_them_all() -> None:
    """With fewer non-members than ``size``, every non-member is chosen, best first."""
    found = customers().lookalike("customers", size=50)
    assert list(found.scores) == ["p-1", "p-2", "p-3", "p-4", "p-5"]
    assert found.candidates == 5


def test_a_seed_covering_everybody_gives_an_empty_lookalike() -> None:
    """No non-members: nothing to choose, and the saved segment is empty."""
    engine = make_engine({"a": {"plan": "pro"}, "b": {"plan": "free"}})
    engine.define_static("all", ["a", "b"])
    found = engine.lookalike("all", size=3)
    assert (len(found.members), found.candidates, dict(found.scores)) == (0, 0, {})
    assert engine.members("all_lookalike").keys() == []


def test_smoothing_enters_the_formula() -> None:
    """``smoothing`` is the pseudo-count ``a`` of the formula."""
    found = customers().lookalike("customers", size=1, save=False, smoothing=0.5)
    got = {(row.attribute, row.value): row.weight for row in found.weights}
    assert got["country", "US"] == pytest.approx(log_odds(0, 3, 1, 5, 3, a=0.5))
    assert found.smoothing == 0.5


def test_an_attribute_no_seed_member_has_weighs_nothing() -> None:
    """When no seed member has a value for an attribute, all its weights are 0."""
    profiles = {"s": {"plan": "pro"}, "a": {"country": "FR"}, "b": {"country": "DE"}}
    engine = make_engine(profiles)
    engine.define_static("seed", ["s"])
    found = engine.lookalike("seed", size=1, attributes=["country"], save=False)
    assert [(r.value, r.weight, r.seed_count, r.rest_count) for r in found.weights] == [
        ("DE", 0.0, 0, 1),
        ("FR", 0.0, 0, 1),
    ]


# --- default attributes -------------------------------------------------------------------------


def test_attributes_the_seed_rule_reads_are_left_out_by_default() -> None:
    """A lookalike of ``plan = "pro"`` does not weigh ``plan``; ``skipped`` says why."""
    engine = make_engine()
    engine.define("pros", 'plan = "pro"')
    found = engine.lookalike("pros", size=1, save=False)
    assert found.attributes == ("country", "is_customer", "age", "tags", "email")
    assert dict(found.skipped) == {"plan": "read by the rule of segment 'pros'"}


def test_attributes_read_through_referenced_segments_are_left_out_too() -> None:
    """Attributes read by the segments the seed refers to are left out as well."""
    engine = make_engine()
    engine.define("pros", 'plan = "pro"')
    engine.define("fr_pros", 'in segment "pros" and country = "FR"')
    found = engine.lookalike("fr_pros", size=1, save=False)
    assert found.attributes == ("is_customer", "age", "tags", "email")
    assert dict(found.skipped) == {
        "country": "read by the rule of segment 'fr_pros'",
        "plan": "read by the rule of segment 'pros'",
    }


def test_naming_attributes_overrides_the_default_even_for_those_the_rule_reads() -> None:
    """``attributes=[...]`` is taken as given, including an attribute the seed's rule reads."""
    engine = make_engine()
    engine.define("pros", 'plan = "pro"')
    found = engine.lookalike("pros", size=1, attributes=["plan", "country"], save=False)
    assert found.attributes == ("plan", "country")
    assert dict(found.skipped) == {}


def test_identifier_like_attributes_are_skipped_by_default() -> None:
    """A string attribute with more distinct values than ``max_values`` is left out by default."""
    profiles = {
        f"k{i}": {"email": f"u{i}@x.org", "plan": "pro" if i < 3 else "free"} for i in range(6)
    }
    engine = make_engine(profiles)
    engine.define_static("seed", ["k0", "k1"])
    found = engine.lookalike("seed", size=2, save=False, max_values=4)
    assert "email" not in found.attributes
    assert found.skipped["email"] == "more than 4 distinct values"
    assert list(found.scores) == ["k2", "k3"]


def test_identifiers_past_the_index_limit_are_skipped_unless_allowed() -> None:
    """With more distinct strings than the index keeps bitmaps for, ``max_values`` still rules."""
    profiles = {f"k{i:04}": {"email": f"u{i}@x.org", "plan": "pro"} for i in range(1100)}
    engine = make_engine(profiles)
    engine.define_static("seed", ["k0000", "k0001"])
    assert not engine.attribute_index("email").low_cardinality
    found = engine.lookalike("seed", size=1, save=False)
    assert found.skipped["email"] == "more than 1024 distinct values"
    assert "email" not in found.attributes
    found = engine.lookalike("seed", size=1, attributes=["email"], max_values=1100, save=False)
    assert len(found.weights) == 1100
    assert {r.seed_count + r.rest_count for r in found.weights} == {1}


# --- bins ---------------------------------------------------------------------------------------


def test_quantile_edges_follow_the_documented_positions() -> None:
    """Edges are the values at positions floor(j*n/bins), without the minimum or repeats."""
    assert quantile_edges(list(range(10)), 5) == (2, 4, 6, 8)
    assert quantile_edges(list(range(10)), 3) == (3, 6)
    assert quantile_edges([1, 1, 1, 1, 2], 5) == (2,)
    assert quantile_edges([3], 4) == ()


def test_numbers_are_cut_into_quantile_bins_over_the_population() -> None:
    """Ages are cut into quintiles of every profile's age; the seed's bin weighs most."""
    profiles = {f"k{i:02}": {"age": 20 + i} for i in range(20)}
    engine = make_engine(profiles)
    engine.define("old", "age >= 36")  # k16..k19
    found = engine.lookalike("old", size=2, attributes=["age"], save=False)
    assert found.bins == {"age": (24, 28, 32, 36)}
    assert [(r.value, r.bounds, r.seed_count, r.rest_count) for r in found.weights] == [
        (">= 36", (36, None), 4, 0),
        ("< 24", (None, 24), 0, 4),
        ("[24, 28)", (24, 28), 0, 4),
        ("[28, 32)", (28, 32), 0, 4),
        ("[32, 36)", (32, 36), 0, 4),
    ]
    # every candidate has weight log((0+1)/(4+5)) - log((4+1)/(16+5)): ties go by key
    assert list(found.scores) == ["k00", "k01"]


def test_many_distinct_numbers_are_binned_like_few() -> None:
    """Above the index's per-value limit the values are read one by one: same edges, same rule."""
    rng = random.Random(5)
    values = [round(rng.uniform(0, 500), 3) for _ in range(3000)]
    schema = sk.Schema(attributes={"ltv": "float"})
    engine = make_engine({f"k{i:04}": {"ltv": v} for i, v in enumerate(values)}, schema=schema)
    assert not engine.attribute_index("ltv").low_cardinality
    engine.define("big", "ltv >= 400")
    found = engine.lookalike("big", size=10, attributes=["ltv"], bins=4, save=False)
    ordered = sorted(values)
    assert found.bins["ltv"] == tuple(ordered[j * 3000 // 4] for j in (1, 2, 3))
    top = found.weights[0]
    assert (top.value, top.seed_count, top.rest_count) == (
        f">= {ordered[2250]!r}",
        sum(1 for v in values if v >= 400),
        sum(1 for v in values if ordered[2250] <= v < 400),
    )
    assert sum(r.seed_count + r.rest_count for r in found.weights) == 3000


def test_explicit_edges_and_counts_per_attribute() -> None:
    """``bins`` gives an attribute its own edges (empty bins kept) or its own count."""
    schema = sk.Schema(attributes={"age": "int", "ltv": "float", "signed_up": "date"})
    profiles = {
        f"k{i}": {"age": 18 + 5 * i, "ltv": float(i), "signed_up": date(2024, 1, 1 + i)}
        for i in range(8)
    }
    engine = make_engine(profiles, schema=schema)
    engine.define_static("seed", ["k6", "k7"])
    found = engine.lookalike(
        "seed",
        size=1,
        save=False,
        bins={"age": [30, 40, 100], "ltv": 2, "signed_up": [date(2024, 1, 5)]},
    )
    assert found.bins == {
        "age": (30, 40, 100),
        "ltv": (4.0,),
        "signed_up": (date(2024, 1, 5),),
    }
    labels = {(r.attribute, r.value): (r.seed_count, r.rest_count) for r in found.weights}
    assert labels == {
        ("age", "< 30"): (0, 3),
        ("age", "[30, 40)"): (0, 2),
        ("age", "[40, 100)"): (2, 1),
        ("age", ">= 100"): (0, 0),
        ("ltv", "< 4.0"): (0, 4),
        ("ltv", ">= 4.0"): (2, 2),
        ("signed_up", "< 2024-01-05"): (0, 4),
        ("signed_up", ">= 2024-01-05"): (2, 2),
    }
    assert list(found.scores) == ["k5"]


def test_an_attribute_with_a_single_value_gets_one_bin() -> None:
    """When every value is equal there are no edges and one bin, ``(all)``, of weight 0."""
    engine = make_engine({"a": {"age": 3}, "b": {"age": 3}})
    engine.define_static("seed", ["a"])
    found = engine.lookalike("seed", size=1, attributes=["age"], save=False)
    assert found.bins == {"age": ()}
    assert found.weights == (LookalikeWeight("age", "(all)", 0.0, 1, 1, (None, None)),)


# --- list attributes and drivers ----------------------------------------------------------------


def test_list_attributes_add_the_mean_weight_of_their_elements() -> None:
    """A list adds the mean of its distinct elements' weights; an empty list adds 0."""
    profiles = {
        "s1": {"tags": ["vip", "beta"]},
        "s2": {"tags": ["vip"]},
        "a": {"tags": ["vip", "beta", "news", "news"]},
        "b": {"tags": ["news"]},
        "c": {"tags": []},
        "d": {},
    }
    engine = make_engine(profiles)
    engine.define_static("seed", ["s1", "s2"])
    found = engine.lookalike("seed", size=4, attributes=["tags"], save=False)
    # seed_known 2, rest_known 3 (a, b, c), k = 3 (beta, news, vip)
    w = {
        "vip": log_odds(2, 2, 1, 3, 3),
        "beta": log_odds(1, 2, 1, 3, 3),
        "news": log_odds(0, 2, 2, 3, 3),
    }
    assert found.scores["a"] == pytest.approx((w["vip"] + w["beta"] + w["news"]) / 3)
    assert found.scores["b"] == pytest.approx(w["news"])
    assert found.scores["c"] == 0.0
    assert found.scores["d"] == 0.0
    assert found.scores["a"] < 0  # "news" weighs more than "vip" and "beta" together
    assert list(found.scores) == ["c", "d", "a", "b"]
    drivers = found.drivers("a")
    assert [(d.attribute, d.value) for d in drivers] == [
        ("tags", "vip"),
        ("tags", "beta"),
        ("tags", "news"),
    ]
    assert drivers[0] == LookalikeContribution("tags", "vip", w["vip"], w["vip"] / 3)
    assert sum(d.contribution for d in drivers) == pytest.approx(found.scores["a"])
    assert found.drivers("c") == ()


def test_drivers_add_up_to_the_score_and_can_be_cut() -> None:
    """A profile's contributions add up to its score; ``top`` keeps the first ones."""
    found = customers().lookalike("customers", size=5, save=False)
    for key, score in found.scores.items():
        assert sum(d.contribution for d in found.drivers(key)) == pytest.approx(score)
    assert [(d.attribute, d.value) for d in found.drivers("p-3")] == [
        ("country", "FR"),
        ("plan", "free"),
    ]
    assert len(found.drivers("p-3", top=1)) == 1
    with pytest.raises(ValueError, match=r"^top must be a non-negative int or None, got -1$"):
        found.drivers("p-3", top=-1)
    with pytest.raises(KeyError) as info:
        found.drivers("c-1")
    assert info.value.args[0] == "profile 'c-1' is not among the 5 profile(s) this lookalike chose"


# --- saving and usage ---------------------------------------------------------------------------


def test_saves_a_static_segment_and_records_the_use_of_the_seed() -> None:
    """The chosen profiles become a static segment; the seed's use is recorded."""
    engine = customers()
    found = engine.lookalike("customers", size=2, updated_by="ana")
    assert found.segment == "customers_lookalike"
    info = engine.segment("customers_lookalike")
    assert (info.kind, info.size, info.updated_by) == ("static", 2, "ana")
    assert engine.members("customers_lookalike") == found.members
    usage = [u.value for u in engine.storage.list_usage()]
    assert usage == [
        UsageRecord(
            "customers",
            tool="segkit",
            objective="segmentation",
            ref="lookalike:customers_lookalike",
            at=NOW,
        )
    ]


def test_a_name_can_be_given() -> None:
    """``name`` names the saved segment and the usage ref."""
    engine = customers()
    assert engine.lookalike("customers", size=1, name="similar").segment == "similar"
    assert engine.segments == ["customers", "similar"]
    assert [u.value.ref for u in engine.storage.list_usage("customers")] == ["lookalike:similar"]


def test_save_false_writes_nothing() -> None:
    """With ``save=False`` no segment and no usage record is written."""
    storage = InMemoryStorage()
    engine = customers(storage=storage)
    before = repr(storage)
    found = engine.lookalike("customers", size=2, save=False)
    assert found.segment is None
    assert engine.segments == ["customers"]
    assert repr(storage) == before
    assert storage.list_usage() == []


class FailingUsage(InMemoryStorage):
    """A storage whose usage writes fail."""

    def put_usage(self, record: UsageRecord, *, expected_version: int | None) -> int:
        raise OSError("disk full")


def test_a_failed_usage_write_drops_the_new_segment() -> None:
    """If recording the seed's use fails, the saved segment is dropped and the error raised."""
    storage = FailingUsage()
    engine = customers(storage=storage)
    with pytest.raises(OSError, match=r"^disk full$"):
        engine.lookalike("customers", size=2)
    assert engine.segments == ["customers"]
    assert storage.list_segments() == ["customers"]


# --- results ------------------------------------------------------------------------------------


def test_to_dict_is_json_safe_and_complete() -> None:
    """``to_dict`` holds the options, the chosen keys best first, scores and weights."""
    schema = sk.Schema(attributes={"plan": "string", "signed_up": "date"})
    engine = make_engine(
        {
            "s": {"plan": "pro", "signed_up": date(2024, 3, 1)},
            "a": {"plan": "pro", "signed_up": date(2024, 1, 1)},
            "b": {"plan": "free", "signed_up": date(2024, 2, 1)},
        },
        schema=schema,
    )
    engine.define_static("seed", ["s"])
    d = engine.lookalike("seed", size=1, bins=2).to_dict()
    assert json.loads(json.dumps(d)) == d
    assert {k: d[k] for k in ("seed", "segment", "candidates", "smoothing", "members")} == {
        "seed": "seed",
        "segment": "seed_lookalike",
        "candidates": 2,
        "smoothing": 1.0,
        "members": ["a"],
    }
    assert d["attributes"] == ["plan", "signed_up"]
    assert d["bins"] == {"signed_up": ["2024-02-01"]}
    assert d["weights"][1] == {
        "attribute": "signed_up",
        "value": ">= 2024-02-01",
        "weight": pytest.approx(math.log(2 / 3) - math.log(2 / 4)),
        "seed_count": 1,
        "rest_count": 1,
        "bounds": ["2024-02-01", None],
    }


def test_repr_is_a_short_table() -> None:
    """``repr`` shows the counts, the first ranks and the strongest weights."""
    found = customers().lookalike("customers", size=3)
    assert repr(found) == (
        "Lookalike of 'customers': 3 of 5 candidates, saved as 'customers_lookalike'\n"
        "  rank  key  score\n"
        "     1  p-1  +0.912\n"
        "     2  p-2  +0.506\n"
        "     3  p-3  -0.762\n"
        "  strongest weights: plan = 'pro' (+0.624), country = 'FR' (+0.288), "
        "country = 'DE' (-0.118), country = 'US' (-0.405), plan = 'free' (-1.050)"
    )


def test_repr_cuts_long_member_lists() -> None:
    """Only the first ten chosen profiles are shown."""
    profiles = {f"k{i:02}": {"plan": "pro"} for i in range(15)}
    engine = make_engine(profiles)
    engine.define_static("seed", ["k00"])
    text = repr(engine.lookalike("seed", size=13, save=False))
    assert text.splitlines()[0] == "Lookalike of 'seed': 13 of 14 candidates (not saved)"
    assert "  ... 3 more" in text.splitlines()
    assert isinstance(engine.lookalike("seed", size=1, save=False), Lookalike)


# --- errors (nothing changes) -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"size": 0}, ValueError, "size must be at least 1, got 0"),
        ({"size": "3"}, TypeError, "size must be an int, got '3'"),
        ({"size": True}, TypeError, "size must be an int, got True"),
        (
            {"size": 2, "smoothing": 0},
            ValueError,
            "smoothing must be a positive finite number, got 0",
        ),
        (
            {"size": 2, "smoothing": float("nan")},
            ValueError,
            "smoothing must be a positive finite number, got nan",
        ),
        ({"size": 2, "max_values": 0}, ValueError, "max_values must be a positive int, got 0"),
        ({"size": 2, "name": "customers"}, sk.SegmentError, "segment 'customers' already exists"),
        ({"size": 2, "name": ""}, sk.SegmentError, "a segment name must be a non-empty string"),
        (
            {"size": 2, "attributes": []},
            ValueError,
            "attributes is empty: name at least one attribute to compare",
        ),
        (
            {"size": 2, "attributes": "country"},
            TypeError,
            "attributes must be a list of attribute names, not the string 'country'",
        ),
        ({"size": 2, "attributes": [3]}, TypeError, "an attribute name must be a string, got 3"),
        (
            {"size": 2, "attributes": ["contry"]},
            sk.UnknownAttributeError,
            "unknown attribute 'contry'\n  hint: did you mean 'country'?",
        ),
        (
            {"size": 2, "attributes": ["email"], "max_values": 1},
            ValueError,
            "attribute 'email' has more than max_values=1 distinct values: it looks like an "
            "identifier, not a trait (raise max_values to weigh it anyway)",
        ),
        ({"size": 2, "bins": 1}, ValueError, "bins must be at least 2, got 1"),
        (
            {"size": 2, "bins": "5"},
            TypeError,
            "bins must be an int, or a mapping of attribute names to bin counts or edges; got '5'",
        ),
        (
            {"size": 2, "bins": {"plan": 3}},
            sk.RuleTypeError,
            "bins for attribute 'plan': only numbers and dates are binned, and it is a string "
            "(its values are weighed one by one)",
        ),
        (
            {"size": 2, "bins": {"aeg": 3}},
            sk.UnknownAttributeError,
            "bins names unknown attribute 'aeg'\n  hint: did you mean 'age'?",
        ),
        (
            {"size": 2, "attributes": ["plan"], "bins": {"age": 3}},
            ValueError,
            "bins for attribute 'age': it is not among the attributes compared ('plan')",
        ),
        (
            {"size": 2, "bins": {"age": 1}},
            ValueError,
            "bins for attribute 'age' must be at least 2, got 1",
        ),
        (
            {"size": 2, "bins": {"age": []}},
            ValueError,
            "bins for attribute 'age': the list of edges is empty",
        ),
        (
            {"size": 2, "bins": {"age": [30, 20]}},
            ValueError,
            "bins for attribute 'age': the edges must increase strictly, got [30, 20]",
        ),
        (
            {"size": 2, "bins": {"age": [20, "30"]}},
            TypeError,
            "bins for attribute 'age': each edge must be a finite number (the attribute is a int), "
            "got '30'",
        ),
    ],
)
def test_bad_options_raise_precise_errors_and_change_nothing(
    kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    """Each bad option raises its exact message; no segment or usage record is written."""
    storage = InMemoryStorage()
    profiles = dict(PROFILES)
    profiles["c-1"] = {**PROFILES["c-1"], "email": "a@x.org", "age": 30}
    profiles["p-1"] = {**PROFILES["p-1"], "email": "b@x.org", "age": 40}
    engine = customers(profiles, storage=storage)
    before = (engine.segments, storage.list_segments(), storage.list_usage())
    with pytest.raises(error) as info:
        engine.lookalike("customers", **kwargs)
    assert str(info.value) == message
    assert (engine.segments, storage.list_segments(), storage.list_usage()) == before


def test_unknown_seed_suggests_a_name() -> None:
    """An unknown seed raises SegmentError with a did-you-mean."""
    engine = customers()
    with pytest.raises(sk.SegmentError) as info:
        engine.lookalike("custmers", size=2)
    assert str(info.value) == "unknown segment 'custmers' (did you mean 'customers'?)"


def test_an_empty_seed_is_refused() -> None:
    """A seed with no members cannot describe anybody."""
    engine = customers()
    engine.define("nobody", 'country = "JP"')
    with pytest.raises(ValueError, match="has no members") as info:
        engine.lookalike("nobody", size=2)
    assert str(info.value) == "segment 'nobody' has no members: a lookalike needs at least one"
    assert engine.segments == ["customers", "nobody"]


def test_a_seed_that_reads_every_attribute_needs_them_named() -> None:
    """When the default leaves no attribute, the error says how to name some."""
    schema = sk.Schema(attributes={"plan": "string"})
    engine = make_engine({"a": {"plan": "pro"}, "b": {"plan": "free"}}, schema=schema)
    engine.define("pros", 'plan = "pro"')
    with pytest.raises(ValueError, match="no attribute to compare") as info:
        engine.lookalike("pros", size=1)
    assert str(info.value) == (
        "no attribute to compare profiles on: segment 'pros' reads every usable attribute "
        "of the schema; name some with attributes=[...]"
    )
    assert engine.segments == ["pros"]


# --- against a plain-Python reference -----------------------------------------------------------

REF_SCHEMA = sk.Schema(
    attributes={
        "color": "string",
        "flag": "bool",
        "tags": "list[string]",
        "score": "int",
        "ltv": "float",
    }
)
CATEGORICAL = ("color", "flag", "tags")
BINNED = ("score", "ltv")


def reference(
    profiles: Mapping[str, Mapping[str, Any]],
    seed: set[str],
    attributes: Sequence[str],
    size: int,
    a: float,
    bins: int,
) -> tuple[dict[tuple[str, Any], tuple[float, int, int]], list[str], dict[str, float]]:
    """Weights, chosen keys and scores, computed from the raw values alone."""
    rest = set(profiles) - seed
    weights: dict[tuple[str, Any], tuple[float, int, int]] = {}
    value_of: dict[str, dict[str, list[Any]]] = {key: {} for key in profiles}
    for attribute in attributes:
        holders = {k: p[attribute] for k, p in profiles.items() if p.get(attribute) is not None}
        if attribute in BINNED:
            ordered = sorted(holders.values())
            n = len(ordered)
            edges: list[Any] = []
            for j in range(1, bins if n else 1):
                e = ordered[math.floor(j * n / bins)]
                if e != ordered[0] and e not in edges:
                    edges.append(e)
            labels = list(range(len(edges) + 1)) if n else []
            held = {k: [sum(1 for e in edges if e <= v)] for k, v in holders.items()}
        else:
            held = {k: sorted(set(v)) if isinstance(v, list) else [v] for k, v in holders.items()}
            labels = sorted({x for vs in held.values() for x in vs})
        k_count = len(labels)
        seed_known = sum(1 for k in holders if k in seed)
        rest_known = sum(1 for k in holders if k in rest)
        for label in labels:
            s = sum(1 for k, vs in held.items() if k in seed and label in vs)
            r = sum(1 for k, vs in held.items() if k in rest and label in vs)
            w = 0.0
            if seed_known:
                w = math.log((s + a) / (seed_known + a * k_count)) - math.log(
                    (r + a) / (rest_known + a * k_count)
                )
            weights[(attribute, label)] = (w, s, r)
        for k, vs in held.items():
            value_of[k][attribute] = vs
    scores = {}
    for key in rest:
        total = 0.0
        for attribute in attributes:
            vs = value_of[key].get(attribute)
            if not vs:
                continue
            ws = [weights[(attribute, v)][0] for v in vs]
            total += sum(ws) / len(ws)
        scores[key] = total
    chosen = sorted(rest, key=lambda key: (-scores[key], key))[:size]
    return weights, chosen, scores


KEYS = [f"k{i:02}" for i in range(24)]

profile_values = st.fixed_dictionaries(
    {},
    optional={
        "color": st.sampled_from(["red", "green", "blue", "gold"]),
        "flag": st.booleans(),
        "tags": st.lists(st.sampled_from(["a", "b", "c", "d"]), max_size=4),
        "score": st.integers(0, 9),
        "ltv": st.sampled_from([0.5, 1.25, 3.0, 10.0, 42.5]),
    },
)


@st.composite
def populations(draw: st.DrawFn) -> tuple[dict[str, dict[str, Any]], set[str]]:
    keys = draw(st.lists(st.sampled_from(KEYS), min_size=1, max_size=18, unique=True))
    profiles = {key: draw(profile_values) for key in keys}
    seed = draw(st.sets(st.sampled_from(keys), min_size=1))
    return profiles, seed


@settings(max_examples=60)
@given(
    population=populations(),
    attributes=st.lists(st.sampled_from(CATEGORICAL + BINNED), min_size=1, unique=True),
    size=st.integers(1, 12),
    a=st.sampled_from([0.5, 1.0, 2.0]),
    bins=st.integers(2, 5),
)
def test_matches_a_plain_python_reference(
    population: tuple[dict[str, dict[str, Any]], set[str]],
    attributes: list[str],
    size: int,
    a: float,
    bins: int,
) -> None:
    """Weights, counts, chosen keys (ties by key) and scores equal the reference's."""
    profiles, seed = population
    engine = sk.Engine(REF_SCHEMA, clock=lambda: NOW)
    engine.upsert_many(profiles)
    engine.define_static("seed", sorted(seed))
    found = engine.lookalike(
        "seed", size=size, attributes=attributes, smoothing=a, bins=bins, save=False
    )
    weights, chosen, scores = reference(profiles, seed, attributes, size, a, bins)
    got: dict[tuple[str, Any], tuple[float, int, int]] = {}
    for row in found.weights:
        label: Any = row.value
        if row.bounds is not None:
            edges = found.bins[row.attribute]
            low = row.bounds[0]
            label = 0 if low is None else edges.index(low) + 1
        got[(row.attribute, label)] = (row.weight, row.seed_count, row.rest_count)
    assert got.keys() == weights.keys()
    for key, (w, s, r) in weights.items():
        assert got[key][1:] == (s, r), key
        assert math.isclose(got[key][0], w, rel_tol=1e-9, abs_tol=1e-12), key
    assert list(found.scores) == chosen
    for key in chosen:
        assert math.isclose(found.scores[key], scores[key], rel_tol=1e-9, abs_tol=1e-12)
    assert found.candidates == len(set(profiles) - seed)
