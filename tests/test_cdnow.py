"""The CDNOW example (docs/examples/cdnow.md) recomputed with pandas, independently of segkit.

The page runs segkit over the real CDNOW purchase log shipped in the ``lifetimes``
package (extra ``examples``). These tests compute the same figures from the raw file
with pandas alone, check them against the numbers printed on the page, and check that
segkit's segments, overlap regions, funnel and KPIs equal the pandas answers member by
member. So every figure on the page is reached by two routes.
"""

from __future__ import annotations

import importlib.util
import re
from datetime import date, datetime, timedelta, timezone
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

import segkit as sk
from segkit.analysis import metrics

pd = pytest.importorskip("pandas")
np = pytest.importorskip("numpy")

_SPEC = importlib.util.find_spec("lifetimes")
if _SPEC is None or _SPEC.submodule_search_locations is None:  # pragma: no cover
    pytest.skip("the CDNOW data needs the 'examples' extra (lifetimes)", allow_module_level=True)
DATA = Path(next(iter(_SPEC.submodule_search_locations)), "datasets", "CDNOW_master.txt")
PAGE = Path(__file__).resolve().parent.parent / "docs" / "examples" / "cdnow.md"
NOW = datetime(1998, 6, 30, tzinfo=timezone.utc)
RULES = {
    "recent": "did purchase in last 90d",
    "frequent": "did purchase >= 3 times",
    "big_spenders": "sum(purchase.amount) > 200",
    "one_time": "did purchase = 1 time",
    "champions": 'in segment "recent" and in segment "frequent" and in segment "big_spenders"',
    "at_risk": 'in segment "frequent" and not in segment "recent"',
}
#: The segment sizes printed on the page.
SIZES = {
    "recent": 3301,
    "frequent": 7583,
    "big_spenders": 3004,
    "one_time": 11908,
    "champions": 1550,
    "at_risk": 4577,
}


@pytest.fixture(scope="module")
def log() -> Any:
    """The raw log as a pandas frame: one row per purchase."""
    frame = pd.read_csv(
        DATA,
        sep=r"\s+",
        skiprows=1,
        header=None,
        names=["customer", "day", "cds", "amount"],
        dtype={"customer": str, "day": str},
    )
    frame["day"] = pd.to_datetime(frame["day"], format="%Y%m%d")
    return frame


@pytest.fixture(scope="module")
def segments(log: Any) -> dict[str, set[str]]:
    """The page's segments, computed with pandas group-bys and set algebra."""
    per = log.groupby("customer").agg(
        n=("amount", "size"), spend=("amount", "sum"), last=("day", "max")
    )
    start = pd.Timestamp("1998-04-01")  # in last 90d: strictly after 1 April 1998
    found = {
        "recent": set(per.index[per["last"] > start]),
        "frequent": set(per.index[per["n"] >= 3]),
        "big_spenders": set(per.index[per["spend"] > 200]),
        "one_time": set(per.index[per["n"] == 1]),
    }
    found["champions"] = found["recent"] & found["frequent"] & found["big_spenders"]
    found["at_risk"] = found["frequent"] - found["recent"]
    return found


@pytest.fixture(scope="module")
def engine() -> sk.Engine:
    """The page's Engine, loaded the way the page loads it."""
    events = []
    profiles: dict[str, dict[str, Any]] = {}
    with DATA.open() as lines:
        next(lines)
        for line in lines:
            customer, day, cds, dollars = line.split()
            at = datetime(int(day[:4]), int(day[4:6]), int(day[6:]), tzinfo=timezone.utc)
            events.append(
                sk.Event(customer, "purchase", at, {"cds": int(cds), "amount": float(dollars)})
            )
            row = profiles.setdefault(
                customer,
                {"first_purchase": at.date(), "last_purchase": at.date(), "purchases": 0},
            )
            row["last_purchase"] = max(row["last_purchase"], at.date())
            row["purchases"] += 1
            row["total_spend"] = row.get("total_spend", 0.0) + float(dollars)
    for row in profiles.values():
        row["total_spend"] = round(row["total_spend"], 2)
    schema = sk.Schema(
        attributes={
            "first_purchase": "date",
            "last_purchase": "date",
            "purchases": "int",
            "total_spend": "float",
        },
        events={"purchase": {"cds": "int", "amount": "float"}},
        timezone="UTC",
    )
    built = sk.Engine(schema, clock=lambda: NOW)
    built.upsert_many(profiles)
    built.track_many(events)
    for name, rule in RULES.items():
        built.define(name, rule)
    return built


def _days(log: Any) -> Any:
    """Each customer's distinct purchase days, in order, numbered 0, 1, 2, … per customer."""
    days = log[["customer", "day"]].drop_duplicates().sort_values(["customer", "day"])
    days["nth"] = days.groupby("customer").cumcount()
    return days.pivot(index="customer", columns="nth", values="day")


def test_file_is_the_cdnow_master_log(log: Any) -> None:
    """The file holds 69,659 purchases by 23,570 customers of the Q1 1997 cohort, to June 1998."""
    assert len(log) == 69_659
    assert log["customer"].nunique() == 23_570
    assert (log["day"].min().date(), log["day"].max().date()) == (
        date(1997, 1, 1),
        date(1998, 6, 30),
    )
    first = log.groupby("customer")["day"].min()
    assert first.max().date() == date(1997, 3, 25)  # everybody's first purchase is in Q1 1997
    assert round(float(log["amount"].sum()), 2) == 2_500_315.63
    assert list(log.columns) == ["customer", "day", "cds", "amount"]
    assert int(log["cds"].min()) == 1


def test_pandas_segment_sizes_are_the_pages(segments: dict[str, set[str]]) -> None:
    """pandas finds the segment sizes the page prints."""
    assert {name: len(keys) for name, keys in segments.items()} == SIZES


def test_page_prints_these_sizes() -> None:
    """The page's size table and the Members reprs carry the sizes checked here."""
    text = PAGE.read_text(encoding="utf-8")
    table = dict(re.findall(r"^(\w+) +(\d+)  (?:did|sum)", text, flags=re.MULTILINE))
    assert table == {
        name: str(SIZES[name]) for name in ("recent", "frequent", "big_spenders", "one_time")
    }
    assert f"Members({SIZES['champions']}: " in text
    assert f"Members({SIZES['at_risk']}: " in text


def test_engine_segments_equal_pandas_member_by_member(
    engine: sk.Engine, segments: dict[str, set[str]]
) -> None:
    """Every rule's members are exactly the customers pandas selects."""
    for name in RULES:
        assert set(engine.members(name).keys()) == segments[name], name


def test_overlap_regions_equal_pandas(engine: sk.Engine, segments: dict[str, set[str]]) -> None:
    """The exclusive regions of recent, frequent and big_spenders match set algebra."""
    names = ["recent", "frequent", "big_spenders"]
    report = engine.overlap(names)
    expected = {}
    everyone = set().union(*(segments[n] for n in names))
    for region in report.regions:
        inside = set.intersection(*(segments[n] for n in region.segments))
        outside = set().union(*(segments[n] for n in names if n not in region.segments))
        expected[region.segments] = len(inside - outside)
        assert set(region.members.keys()) == inside - outside
    assert {r.segments: r.count for r in report.regions} == expected
    assert expected == {
        ("frequent",): 3297,
        ("recent", "frequent", "big_spenders"): 1550,
        ("recent", "frequent"): 1456,
        ("frequent", "big_spenders"): 1280,
        ("recent",): 290,
        ("big_spenders",): 169,
        ("recent", "big_spenders"): 5,
    }
    assert report.union == len(everyone) == 8047
    # the page's containment figures
    both = len(segments["big_spenders"] & segments["frequent"])
    assert round(both / len(segments["big_spenders"]), 3) == 0.942
    both = len(segments["recent"] & segments["frequent"])
    assert round(both / len(segments["recent"]), 3) == 0.911


def test_repeat_purchase_journey_equals_pandas(
    engine: sk.Engine, log: Any, segments: dict[str, set[str]]
) -> None:
    """1st → 2nd → 3rd purchase day: counts and times between them, by pandas and by segkit."""
    days = _days(log)
    second, third = days[1].dropna(), days[2].dropna()
    gap1 = (days[1] - days[0]).dropna()
    gap2 = (days[2] - days[1]).dropna()
    whole = (days[2] - days[0]).dropna()
    assert (len(days), len(second), len(third)) == (23_570, 11_516, 7_476)
    assert (gap1.median(), gap2.median(), whole.median()) == (
        pd.Timedelta(days=57),
        pd.Timedelta(days=52),
        pd.Timedelta(days=141),
    )
    assert np.percentile(gap1.dt.days, 90) == 307
    assert gap1.max() == pd.Timedelta(days=533)

    journey = sk.Funnel(["purchase", "purchase", "purchase"], ties="strictly_later")
    reports = engine.funnel(journey, ["big_spenders", "at_risk"])
    report = reports["all"]
    assert [s.count for s in report.steps] == [23_570, 11_516, 7_476]
    step1 = report.steps[1].time_from_previous
    step2 = report.steps[2].time_from_previous
    assert step1 is not None
    assert step2 is not None
    assert report.time_to_complete is not None
    assert step1.median == gap1.median().to_pytimedelta()
    assert step2.median == gap2.median().to_pytimedelta()
    assert report.time_to_complete.median == whole.median().to_pytimedelta()
    assert step1.p90 == timedelta(days=307)
    assert step1.max == gap1.max().to_pytimedelta()
    # means rounded to the microsecond (pandas truncates, so compute them exactly here)
    for stats, gaps in ((step1, gap1), (step2, gap2)):
        exact = Fraction(int(gaps.dt.days.sum()) * 86_400_000_000, len(gaps))
        assert stats.mean == timedelta(microseconds=round(exact))
    assert step1.mean == timedelta(days=110, seconds=86039, microseconds=874957)
    assert set(report.members(2).keys()) == set(third.index)
    for name, counts in {"big_spenders": [3004, 2949, 2822], "at_risk": [4577, 4568, 4482]}.items():
        member_days = days.loc[sorted(segments[name])]
        by_pandas = [len(member_days), member_days[1].notna().sum(), member_days[2].notna().sum()]
        assert by_pandas == counts, name
        assert [s.count for s in reports[name].steps] == counts, name


def test_customer_value_equals_pandas(
    engine: sk.Engine, log: Any, segments: dict[str, set[str]]
) -> None:
    """Mean, median and total spend per segment, by pandas and by engine.compare."""
    spend = log.groupby("customer")["amount"].sum().round(2)
    names = ["champions", "big_spenders", "frequent", "at_risk", "recent", "one_time"]
    kpis = engine.compare(
        names,
        [metrics.mean("total_spend"), metrics.median("total_spend"), metrics.sum("total_spend")],
    )
    for name in names:
        values = spend.loc[sorted(segments[name])]
        for label, expected in [
            ("mean(total_spend)", values.mean()),
            ("median(total_spend)", values.median()),
            ("sum(total_spend)", values.sum()),
        ]:
            got = kpis[name, label]
            assert got.n == len(values), (name, label)
            assert got.value == pytest.approx(float(expected), rel=1e-12, abs=1e-9), (name, label)
    # the figures the page quotes
    revenue = float(log["amount"].sum())
    champions = float(spend.loc[sorted(segments["champions"])].sum())
    one_time = float(spend.loc[sorted(segments["one_time"])].sum())
    assert round(champions) == 872_519
    assert round(champions / revenue, 3) == 0.349
    assert round(one_time / revenue, 3) == 0.144
    assert round(float(spend.loc[sorted(segments["at_risk"])].median()), 1) == 124.8
    assert round(len(segments["champions"]) / 23_570, 3) == 0.066
