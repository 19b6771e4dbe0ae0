"""Engine.drivers: constructed data with a known driver, and random data against a reference."""

from __future__ import annotations

import math
import statistics
from datetime import date, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import segkit as sk
from segkit.analysis import _stats, metrics
from segkit.analysis.drivers import Driver, Drivers, quantile_edges

NOW = datetime(2024, 6, 30, 12, tzinfo=timezone.utc)
SCHEMA = sk.Schema(
    attributes={
        "role": "string",
        "country": "string",
        "tier": "int",
        "age": "int",
        "tags": "list[string]",
        "signed_up": "date",
        "score": "float",
        "nps": "int",
        "churned": "bool",
    },
    events={"purchase": {}},
    timezone="UTC",
)


@pytest.fixture
def survey() -> sk.Engine:
    """120 customers: engineers promote, sales detract, support is mixed; country is balanced."""
    engine = sk.Engine(SCHEMA, clock=lambda: NOW)
    by_role = {
        "engineer": [10, 9, 10, 9, 8, 10, 9, 10, 9, 7],
        "sales": [3, 5, 6, 2, 7, 4, 6, 0, 8, 5],
        "support": [9, 7, 5, 8, 10, 6, 8, 7, 9, 9],
    }
    profiles = {}
    for r, (role, answers) in enumerate(by_role.items()):
        for i in range(40):
            profiles[f"{role}-{i}"] = {
                "role": role,
                "country": "FR" if i % 2 else "DE",
                "nps": answers[(i // 2) % 10],
                "age": 20 + (i * 7 + r * 3) % 50,
            }
    engine.upsert_many(profiles)
    engine.define("customers", "nps is known")
    return engine


def test_the_true_driver_ranks_first(survey: sk.Engine) -> None:
    """Role separates NPS; country, balanced within each role, does not."""
    found = survey.drivers("customers", metrics.nps("nps"), attributes=["role", "country"])
    assert [(row.group, row.n, row.rest_n) for row in found] == [
        ('role = "sales"', 40, 80),
        ('role = "engineer"', 40, 80),
        ('role = "support"', 40, 80),
        ('country = "DE"', 60, 60),
        ('country = "FR"', 60, 60),
    ]
    sales, engineers, support = found[0], found[1], found[2]
    # sales: 0 promoters, 32 detractors of 40; the others: 48 promoters, 8 detractors of 80
    assert (sales.value, sales.rest_value, sales.difference) == (-80.0, 50.0, -130.0)
    # engineers: 32 promoters, 0 detractors; the others: 16 promoters, 40 detractors
    assert (engineers.value, engineers.rest_value, engineers.difference) == (80.0, -30.0, 110.0)
    assert (support.value, support.rest_value) == (20.0, 0.0)
    assert sales.p_value < 1e-6
    assert engineers.p_value < 1e-6
    assert support.p_value > 0.05
    assert found[3].effect == 0.0
    assert found[3].p_value == 1.0
    assert found.effect_size == "cohen_d"
    assert found.overall.value == pytest.approx(100 * (48 - 40) / 120)
    assert found[0].members.keys() == [f"sales-{i}" for i in range(40)]
    assert found[0].rule == sk.parse('role = "sales"')


def test_the_analysts_cue_in_the_table(survey: sk.Engine) -> None:
    """The table names the groups, their NPS against the rest, and the effect."""
    found = survey.drivers("customers", metrics.nps("nps"), attributes=["role"])
    assert repr(found) == (
        "Drivers of nps(nps) in segment 'customers': 120 members, 6.7 [-8.6, 21.9] n=120\n"
        "effect size: Cohen's d; 3 groups, 0 left out (fewer than 30)\n"
        "  #  group               n  value  rest n   rest  difference  effect  p-value\n"
        '  1  role = "sales"     40  -80.0      80   50.0      -130.0  -2.169   <0.001\n'
        '  2  role = "engineer"  40   80.0      80  -30.0      +110.0  +1.608   <0.001\n'
        '  3  role = "support"   40   20.0      80    0.0       +20.0  +0.234    0.204'
    )
    assert found.table(limit=1).endswith("-2.169   <0.001\n  ... 2 more")


def _scores(
    engine: sk.Engine, metric: sk.analysis.metrics.Metric, keys: set[str]
) -> dict[str, float]:
    """Each member's score, computed from the profiles in plain Python."""
    out: dict[str, float] = {}
    for key in keys:
        profile = engine.get(key) or {}
        if metric.kind == "mean":
            value = profile.get("score")
            if value is not None:
                out[key] = value
        elif metric.kind == "nps":
            value = profile.get("nps")
            if value is not None:
                out[key] = 100 if value >= 9 else -100 if value <= 6 else 0
        elif metric.attribute == "churned":
            value = profile.get("churned")
            if value is not None:
                out[key] = 1 if value else 0
        else:  # the rule 'tier >= 2'
            out[key] = 1 if (profile.get("tier") or 0) >= 2 else 0
    return out


def _reference_row(
    scores: dict[str, float], group: set[str], proportion: bool
) -> tuple[float, ...]:
    a = [scores[k] for k in sorted(group) if k in scores]
    b = [scores[k] for k in sorted(scores) if k not in group]
    ma, mb = statistics.fmean(a), statistics.fmean(b)
    if proportion:
        h = 2 * math.asin(math.sqrt(ma)) - 2 * math.asin(math.sqrt(mb))
        pooled = sum(a + b) / len(a + b)
        se = math.sqrt(pooled * (1 - pooled) * (1 / len(a) + 1 / len(b)))
        p = (1.0 if ma == mb else 0.0) if se == 0 else math.erfc(abs(ma - mb) / se / math.sqrt(2))
        return len(a), len(b), ma, mb, ma - mb, h, p
    va, vb = statistics.variance(a), statistics.variance(b)
    pooled_sd = math.sqrt(((len(a) - 1) * va + (len(b) - 1) * vb) / (len(a) + len(b) - 2))
    d = (
        (ma - mb) / pooled_sd
        if pooled_sd
        else (0.0 if ma == mb else math.copysign(math.inf, ma - mb))
    )
    se2 = va / len(a) + vb / len(b)
    if se2 == 0:
        p = 1.0 if ma == mb else 0.0
    else:
        df = se2**2 / ((va / len(a)) ** 2 / (len(a) - 1) + (vb / len(b)) ** 2 / (len(b) - 1))
        p = _stats.student_t_two_sided((ma - mb) / math.sqrt(se2), df)
    return len(a), len(b), ma, mb, ma - mb, d, p


@st.composite
def populations(draw: st.DrawFn) -> dict[str, dict[str, Any]]:
    def maybe(values: st.SearchStrategy[Any]) -> Any:
        return draw(st.one_of(st.none(), values, values, values, values))

    out = {}
    for i in range(draw(st.integers(0, 70))):
        out[f"k{i:02d}"] = {
            "role": maybe(st.sampled_from(["dev", "ops", "pm"])),
            "tier": maybe(st.integers(1, 3)),
            "age": maybe(st.integers(18, 70)),
            "tags": maybe(st.lists(st.sampled_from(["a", "b", "c"]), max_size=3)),
            "signed_up": maybe(st.dates(date(2023, 1, 1), date(2023, 1, 20))),
            "score": maybe(st.floats(-1e3, 1e3, allow_nan=False)),
            "nps": maybe(st.integers(0, 10)),
            "churned": maybe(st.booleans()),
        }
    return out


DRIVER_METRICS = [
    metrics.mean("score"),
    metrics.nps("nps"),
    metrics.churn("churned"),
    metrics.conversion("tier >= 2"),
]


@settings(max_examples=30, deadline=None)
@given(
    profiles=populations(),
    metric=st.sampled_from(DRIVER_METRICS),
    min_count=st.integers(2, 6),
    bins=st.integers(2, 5),
)
def test_drivers_match_the_reference(
    profiles: dict[str, dict[str, Any]], metric: Any, min_count: int, bins: int
) -> None:
    """Every row's group, counts, values, effect and p-value equal a plain-Python recomputation."""
    engine = sk.Engine(SCHEMA, clock=lambda: NOW)
    engine.upsert_many(profiles)
    engine.define("seg", 'role != "pm" or tier is not known')
    segment = set(engine.members("seg"))
    found = engine.drivers("seg", metric, min_count=min_count, bins=bins)
    scores = _scores(engine, metric, segment)
    proportion = metric.is_proportion
    assert found.size == len(segment)
    assert found.overall.n == len(scores)
    groups = 0
    for name in found.attributes:
        groups += len(_reference_groups(engine, name, segment, scores, bins))
    assert len(found.rows) + found.excluded == groups
    keys = [(-abs(r.effect), -abs(r.difference), -r.difference) for r in found]
    assert keys == sorted(keys)
    for row in found:
        members = set(row.members)
        assert members == set(engine.query(row.rule)) & segment  # the label is the group
        assert row.size == len(members)
        want = _reference_row(scores, members, proportion)
        got = (
            row.n,
            row.rest_n,
            row.value,
            row.rest_value,
            row.difference,
            row.effect,
            row.p_value,
        )
        assert got[:2] == want[:2]
        assert min(row.n, row.rest_n) >= min_count
        for actual, expected in zip(got[2:], want[2:], strict=True):
            assert actual == pytest.approx(expected, rel=1e-7, abs=1e-9), (row, want)


def _reference_groups(
    engine: sk.Engine, name: str, segment: set[str], scores: dict[str, float], bins: int
) -> set[Any]:
    """The non-empty groups of one attribute among the scored members."""
    values = {k: (engine.get(k) or {}).get(name) for k in segment}
    present = sorted(v for v in values.values() if v is not None)
    out: set[Any] = set()
    binned = name in ("age", "signed_up", "score", "tier", "nps") and len(set(present)) > bins
    cuts = (
        sorted({present[j * len(present) // bins] for j in range(1, bins)} - {present[0]})
        if binned
        else []
    )
    for key in scores:
        v = values[key]
        if v is None:
            out.add("missing")
        elif name == "tags":
            out.update(v)
        elif binned:
            out.add(sum(1 for c in cuts if c <= v))
        else:
            out.add(v)
    return out


def test_numbers_and_dates_are_binned_by_quantiles() -> None:
    """Many distinct numbers make quantile bins labelled as rules; few stay values."""
    engine = sk.Engine(SCHEMA, clock=lambda: NOW)
    engine.upsert_many(
        {
            f"k{i}": {
                "age": 20 + i,
                "tier": 1 + i % 2,
                "signed_up": date(2024, 1, 1) + timedelta(days=i),
                "churned": i < 10,
            }
            for i in range(40)
        }
    )
    engine.define("all", "age is known")
    found = engine.drivers("all", metrics.churn("churned"), min_count=2)
    groups = {row.group: row for row in found}
    assert set(groups) == {
        "age < 30",
        "age >= 30 and age < 40",
        "age >= 40 and age < 50",
        "age >= 50",
        "signed_up < @2024-01-11",
        "signed_up >= @2024-01-11 and signed_up < @2024-01-21",
        "signed_up >= @2024-01-21 and signed_up < @2024-01-31",
        "signed_up >= @2024-01-31",
        "tier = 1",
        "tier = 2",
    }
    assert found[0].group == "age < 30"
    assert found[0].value == 1.0
    assert found[0].rest_value == 0.0
    assert found[0].effect == pytest.approx(math.pi)  # Cohen's h from 1 to 0
    assert found.effect_size == "cohen_h"
    assert found[0].members == engine.query("age < 30")
    three = engine.drivers("all", metrics.churn("churned"), attributes=["age"], bins=3, min_count=2)
    assert [row.group for row in three] == ["age < 33", "age >= 46", "age >= 33 and age < 46"]


def test_list_elements_and_missing_values_make_groups() -> None:
    """Each list element is a group; members without a value form their own group."""
    engine = sk.Engine(SCHEMA, clock=lambda: NOW)
    engine.upsert_many(
        {
            "a": {"tags": ["vip", "beta"], "score": 10.0},
            "b": {"tags": ["vip"], "score": 12.0},
            "c": {"tags": ["beta"], "score": 1.0},
            "d": {"score": 2.0},
            "e": {"score": 3.0},
            "f": {"tags": [], "score": 2.5},
        }
    )
    engine.define("all", "score is known")
    found = engine.drivers("all", metrics.mean("score"), attributes=["tags"], min_count=2)
    rows = {row.group: row for row in found}
    assert set(rows) == {'tags has any ["vip"]', 'tags has any ["beta"]', "tags is not known"}
    vip = rows['tags has any ["vip"]']
    assert (vip.n, vip.value, vip.rest_n, vip.rest_value) == (2, 11.0, 4, 2.125)
    assert rows["tags is not known"].members.keys() == ["d", "e"]
    assert found[0] is vip


def test_rule_metrics_and_time_relative_segments_use_now() -> None:
    """A conversion rule and a time-relative segment are evaluated at ``now``."""
    engine = sk.Engine(SCHEMA, clock=lambda: NOW)
    engine.upsert_many({f"k{i}": {"role": ["dev", "ops"][i % 2]} for i in range(8)})
    engine.track_many(
        [sk.Event(f"k{i}", "purchase", NOW - timedelta(days=1 + i % 2 * 20)) for i in range(8)]
    )
    engine.define("active", "did purchase in last 60d")
    bought = metrics.conversion("did purchase in last 7d")
    found = engine.drivers("active", bought, attributes=["role"], min_count=2)
    assert [(row.group, row.value, row.rest_value) for row in found] == [
        ('role = "dev"', 1.0, 0.0),
        ('role = "ops"', 0.0, 1.0),
    ]
    later = engine.drivers(
        "active", bought, attributes=["role"], min_count=2, now=NOW + timedelta(days=45)
    )
    assert later.size == 4  # the odd ones bought 21 days before NOW: 66 days before now
    assert later.overall.value == 0.0
    assert engine.members("active").keys() == [f"k{i}" for i in range(8)]  # nothing stored


def test_small_groups_are_left_out() -> None:
    """A group or a rest below min_count is excluded and counted."""
    engine = sk.Engine(SCHEMA, clock=lambda: NOW)
    roles = ["dev"] * 5 + ["ops"] * 3 + ["pm"]
    engine.upsert_many({f"k{i}": {"role": r, "score": float(i)} for i, r in enumerate(roles)})
    engine.define("all", "score is known")
    found = engine.drivers("all", metrics.mean("score"), attributes=["role"], min_count=4)
    assert [row.group for row in found] == ['role = "dev"']  # 5 against a rest of 4
    assert found.excluded == 2
    assert found.to_dict()["rows"][0] == found[0].to_dict()
    assert found.to_dict()["excluded"] == 2
    assert found.to_dict()["min_count"] == 4


def test_drivers_rejects_bad_input_precisely(survey: sk.Engine) -> None:
    """Unsupported metrics, bad options, unknown names raise precise errors."""
    nps = metrics.nps("nps")
    cases: list[tuple[Any, type[Exception], str]] = [
        (lambda: survey.drivers("customers", metrics.count()), ValueError, "drivers() ranks groups by a per-member average (mean, nps, rate, conversion, churn or csat), not by count"),
        (lambda: survey.drivers("customers", metrics.sum("nps")), ValueError, "drivers() ranks groups by a per-member average (mean, nps, rate, conversion, churn or csat), not by sum(nps)"),
        (lambda: survey.drivers("customers", metrics.median("nps")), ValueError, "drivers() ranks groups by a per-member average (mean, nps, rate, conversion, churn or csat), not by median(nps)"),
        (lambda: survey.drivers("customers", "nps"), TypeError, "metric must be a metric such as segkit.metrics.nps('nps'), got 'nps'"),
        (lambda: survey.drivers("customers", nps, min_count=1), ValueError, "min_count must be an integer >= 2, got 1"),
        (lambda: survey.drivers("customers", nps, bins=1), ValueError, "bins must be an integer >= 2, got 1"),
        (lambda: survey.drivers("customers", nps, bins=True), ValueError, "bins must be an integer >= 2, got True"),
        (lambda: survey.drivers("customers", nps, attributes="role"), TypeError, "attributes must be a list of attribute names, not a single string"),
        (lambda: survey.drivers("customers", nps, confidence=0), ValueError, "confidence must be a number between 0 and 1 (exclusive), got 0"),
    ]  # fmt: skip
    for call, error, message in cases:
        with pytest.raises(error) as info:
            call()
        assert str(info.value) == message
    with pytest.raises(sk.UnknownAttributeError) as unknown:
        survey.drivers("customers", nps, attributes=["rol"])
    assert unknown.value.message == "drivers(): unknown attribute 'rol'"
    assert unknown.value.suggestion == "role"
    with pytest.raises(
        sk.SegmentError, match=r"^unknown segment 'customer' \(did you mean 'customers'\?\)$"
    ):
        survey.drivers("customer", nps)
    with pytest.raises(sk.RuleTypeError, match=r"^mean\(role\): needs a number"):
        survey.drivers("customers", metrics.mean("role"))


def test_quantile_edges() -> None:
    """Edges are the values at positions k*n/bins, without repeats or the minimum."""
    assert quantile_edges([1, 2, 3, 4, 5, 6, 7, 8], 4) == [3, 5, 7]
    assert quantile_edges([1, 2, 3, 4, 5, 6, 7, 8, 9], 3) == [4, 7]
    assert quantile_edges([5, 5, 5, 6], 4) == [6]
    assert quantile_edges([], 4) == []


def test_result_types_and_empty_segments() -> None:
    """An empty segment has no rows; rows are Driver values; Drivers is iterable."""
    engine = sk.Engine(SCHEMA, clock=lambda: NOW)
    engine.define("nobody", "age > 200")
    found = engine.drivers("nobody", metrics.mean("score"))
    assert isinstance(found, Drivers)
    assert len(found) == 0
    assert list(found) == []
    assert found.overall.value is None
    assert found.attributes == (
        "role",
        "country",
        "tier",
        "age",
        "tags",
        "signed_up",
        "nps",
        "churned",
    )
    assert Driver.__name__ == "Driver"
