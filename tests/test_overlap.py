"""Engine.overlap: exclusive regions, totals, pairwise counts and matrices, drill-down."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from unittest.mock import patch

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import segkit as sk
from segkit.analysis import overlap as overlap_module
from segkit.analysis.overlap import OverlapReport, Region, overlap

# --- helpers --------------------------------------------------------------------------------


def _engine(memberships: Mapping[str, set[str]], population: list[str]) -> sk.Engine:
    """An engine whose static segments hold exactly ``memberships``."""
    engine = sk.Engine(sk.Schema(attributes={"n": "int"}))
    engine.upsert_many({key: {"n": i} for i, key in enumerate(population)})
    for name, keys in memberships.items():
        engine.define_static(name, sorted(keys))
    return engine


def _reference_regions(memberships: Mapping[str, set[str]]) -> dict[frozenset[str], set[str]]:
    """Plain sets: each key of the union, grouped by the exact set of segments holding it."""
    regions: dict[frozenset[str], set[str]] = {}
    for key in set().union(*memberships.values()):
        inside = frozenset(name for name, keys in memberships.items() if key in keys)
        regions.setdefault(inside, set()).add(key)
    return regions


@st.composite
def _memberships(draw: st.DrawFn, max_segments: int = 6) -> tuple[dict[str, set[str]], list[str]]:
    population = [f"p{i}" for i in range(draw(st.integers(0, 30)))]
    n = draw(st.integers(1, max_segments))
    names = [f"s{i}" for i in range(n)]
    memberships = {
        name: set(draw(st.lists(st.sampled_from(population), unique=True)) if population else [])
        for name in names
    }
    return memberships, population


# --- against plain Python sets --------------------------------------------------------------


@pytest.mark.parametrize("mobius_max", [0, 8], ids=["refinement", "mobius"])
@settings(max_examples=60)
@given(data=_memberships())
def test_regions_totals_and_pairs_match_python_sets(
    mobius_max: int, data: tuple[dict[str, set[str]], list[str]]
) -> None:
    """Regions, members, totals, pairwise counts, Jaccard and containment equal set arithmetic."""
    memberships, population = data
    engine = _engine(memberships, population)
    names = list(memberships)
    with patch.object(overlap_module, "MOBIUS_MAX", mobius_max):
        report = engine.overlap(names)
    expected = _reference_regions(memberships)
    assert {frozenset(r.segments): r.count for r in report.regions} == {
        k: len(v) for k, v in expected.items()
    }
    for region in report.regions:
        assert set(region.members) == expected[frozenset(region.segments)]
        assert list(region.segments) == [n for n in names if n in region.segments]
    assert dict(report.totals) == {n: len(memberships[n]) for n in names}
    assert report.union == len(set().union(*memberships.values()))
    for a in names:
        for b in names:
            both = memberships[a] & memberships[b]
            either = memberships[a] | memberships[b]
            assert report.pairwise[a][b] == len(both)
            assert report.jaccard()[a][b] == (len(both) / len(either) if either else 1.0)
            size = len(memberships[a])
            assert report.containment()[a][b] == (len(both) / size if size else 1.0)


@pytest.mark.parametrize("mobius_max", [0, 8], ids=["refinement", "mobius"])
@settings(max_examples=40)
@given(data=_memberships(max_segments=5))
def test_empty_true_lists_every_region(
    mobius_max: int, data: tuple[dict[str, set[str]], list[str]]
) -> None:
    """``empty=True`` gives all 2**N - 1 regions, with zero counts and empty members."""
    memberships, population = data
    engine = _engine(memberships, population)
    with patch.object(overlap_module, "MOBIUS_MAX", mobius_max):
        report = engine.overlap(memberships, empty=True)
    n = len(memberships)
    expected = _reference_regions(memberships)
    assert len(report.regions) == 2**n - 1
    assert len({r.segments for r in report.regions}) == 2**n - 1
    for region in report.regions:
        keys = expected.get(frozenset(region.segments), set())
        assert region.count == len(keys)
        assert set(region.members) == keys


@settings(max_examples=40)
@given(data=_memberships(max_segments=10))
def test_many_segments_use_refinement_and_agree(
    data: tuple[dict[str, set[str]], list[str]],
) -> None:
    """Up to 10 segments (past the Möbius limit): regions still equal the set reference."""
    memberships, population = data
    report = _engine(memberships, population).overlap(memberships)
    expected = _reference_regions(memberships)
    assert {frozenset(r.segments): set(r.members) for r in report.regions} == expected


@settings(max_examples=60)
@given(
    data=_memberships(max_segments=5),
    picks=st.lists(st.tuples(st.integers(0, 4), st.sampled_from("ine")), max_size=5),
    exclusive=st.booleans(),
)
def test_region_drill_down_matches_sets(
    data: tuple[dict[str, set[str]], list[str]],
    picks: list[tuple[int, str]],
    exclusive: bool,
) -> None:
    """``region(*names)`` is exclusive; with ``not_`` it is in-all, in-none, rest free."""
    memberships, population = data
    names = list(memberships)
    inside = [n for i, n in enumerate(names) if (i, "i") in picks] or names[:1]
    outside = [n for i, n in enumerate(names) if (i, "e") in picks and n not in inside]
    report = _engine(memberships, population).overlap(names)
    union = set().union(*memberships.values())
    keep = set.intersection(*(memberships[n] for n in inside))
    if exclusive:
        others = [memberships[n] for n in names if n not in inside]
        expected = keep - set().union(*others)
        assert set(report.region(*inside)) == expected
    else:
        expected = keep - set().union(*(memberships[n] for n in outside))
        assert set(report.region(*inside, not_=outside)) == expected
        assert expected <= union


# --- order, output ----------------------------------------------------------------------------


def _abc() -> sk.Engine:
    """Three segments over ten profiles with every kind of region."""
    return _engine(
        {
            "a": {"p0", "p1", "p2", "p3", "p4", "p5"},
            "b": {"p3", "p4", "p5", "p6"},
            "c": {"p5", "p6", "p7"},
        },
        [f"p{i}" for i in range(10)],
    )


def test_regions_are_sorted_like_an_upset_plot() -> None:
    """Default: count descending, then fewer segments, then positions of the names."""
    report = _abc().overlap(["a", "b", "c"])
    assert [(r.segments, r.count) for r in report.regions] == [
        (("a",), 3),
        (("a", "b"), 2),
        (("c",), 1),
        (("b", "c"), 1),
        (("a", "b", "c"), 1),
    ]


def test_sorted_orders() -> None:
    """``sorted`` by degree or names, and reversed; the original report is unchanged."""
    report = _abc().overlap(["a", "b", "c"])
    by_degree = report.sorted("degree")
    assert [r.segments for r in by_degree.regions] == [
        ("a",),
        ("c",),
        ("a", "b"),
        ("b", "c"),
        ("a", "b", "c"),
    ]
    assert [r.segments for r in report.sorted("names").regions] == [
        ("a",),
        ("a", "b"),
        ("a", "b", "c"),
        ("b", "c"),
        ("c",),
    ]
    assert report.sorted("count", reverse=True).regions == report.regions[::-1]
    assert report.sorted() == report
    with pytest.raises(
        ValueError,
        match=r"^cannot sort regions by 'size': choose one of 'count', 'degree', 'names'$",
    ):
        report.sorted("size")  # type: ignore[arg-type]


def test_repr_and_to_dict() -> None:
    """The repr is a short table; ``to_dict`` is JSON-safe and complete."""
    report = _abc().overlap(["a", "b", "c"])
    assert repr(report) == (
        "OverlapReport: 3 segments (a: 6, b: 4, c: 3), 8 profiles in any\n"
        "  count  region\n"
        "      3  a\n"
        "      2  a & b\n"
        "      1  c\n"
        "      1  b & c\n"
        "      1  a & b & c"
    )
    data = report.to_dict()
    assert json.loads(json.dumps(data)) == data
    assert data["regions"][1] == {"segments": ["a", "b"], "count": 2}
    assert data["pairwise"]["a"] == {"a": 6, "b": 3, "c": 1}
    assert data["jaccard"]["b"]["c"] == 2 / 5
    assert data["containment"]["c"]["a"] == 1 / 3
    assert data["union"] == 8
    assert data["pairwise_only"] is False
    assert report.table(rows=2).splitlines()[-1] == "  ... 3 more"


def test_region_values() -> None:
    """A region is a frozen value: segments, count, degree, members and ``to_dict``."""
    region = _abc().overlap(["a", "b", "c"]).regions[1]
    assert region == Region(("a", "b"), 2, _mask=0, _source=None)  # type: ignore[arg-type]
    assert repr(region) == "Region(segments=('a', 'b'), count=2)"
    assert region.degree == 2
    assert region.members.keys() == ["p3", "p4"]
    assert region.to_dict() == {"segments": ["a", "b"], "count": 2}
    with pytest.raises(AttributeError):
        region.count = 3  # type: ignore[misc]


def test_the_report_is_a_snapshot() -> None:
    """Later membership changes do not change a report's regions or members."""
    engine = _abc()
    report = engine.overlap(["a", "c"])
    before = report.region("a", "c").keys()
    engine.add_members("c", ["p0", "p1"])
    assert report.region("a", "c").keys() == before == ["p5"]
    assert engine.overlap(["a", "c"]).region("a", "c").keys() == ["p0", "p1", "p5"]
    with pytest.raises(TypeError):
        report.totals["a"] = 1  # type: ignore[index]


def test_single_segment_and_empty_segments() -> None:
    """One segment gives one region; empty segments give none (or zeros with empty=True)."""
    engine = _engine({"a": {"p0"}, "e": set(), "f": set()}, ["p0", "p1"])
    assert [(r.segments, r.count) for r in engine.overlap(["a"]).regions] == [(("a",), 1)]
    report = engine.overlap(["e", "f"])
    assert report.regions == ()
    assert report.union == 0
    assert report.jaccard() == {"e": {"e": 1.0, "f": 1.0}, "f": {"e": 1.0, "f": 1.0}}
    assert report.containment()["e"] == {"e": 1.0, "f": 1.0}
    assert [r.count for r in engine.overlap(["e", "f"], empty=True).regions] == [0, 0, 0]
    assert engine.overlap(["e", "f"], empty=True).region("e", "f").keys() == []


def test_pairwise_mode_over_many_segments() -> None:
    """More than 20 segments work with ``pairwise=True``: counts only, no regions."""
    population = [f"p{i}" for i in range(30)]
    memberships = {f"s{i:02}": {f"p{j}" for j in range(i, i + 5)} for i in range(25)}
    engine = _engine(memberships, population + [f"p{i}" for i in range(30, 35)])
    report = engine.overlap(memberships, pairwise=True)
    assert report.pairwise_only
    assert report.regions == ()
    assert report.pairwise["s00"]["s03"] == 2
    assert report.pairwise["s03"]["s00"] == 2
    assert report.pairwise["s07"]["s07"] == 5
    assert report.union == 29
    assert report.region("s00", "s01", not_=["s04"]).keys() == ["p1", "p2", "p3"]
    assert report.region("s00", "s01").keys() == ["p1"]
    lines = repr(report).splitlines()
    assert lines[0] == (
        "OverlapReport: 25 segments (s00: 5, s01: 5, s02: 5, s03: 5, s04: 5, s05: 5, s06: 5,"
        " s07: 5, s08: 5, s09: 5, ...), pairwise only"
    )
    assert lines[1:3] == ["  count  pair", "      4  s00 & s01"]
    assert lines[-1] == "  ... 280 more"


def test_overlap_of_any_members() -> None:
    """The module function takes named Members of one engine (query results too)."""
    engine = _abc()
    report = overlap({"low": engine.query("n < 3"), "a": engine.members("a")})
    assert isinstance(report, OverlapReport)
    assert report.region("low", "a").keys() == ["p0", "p1", "p2"]
    other = _abc()
    with pytest.raises(
        ValueError, match=r"^segment 'b': cannot overlap Members of different engines$"
    ):
        overlap([("a", engine.members("a")), ("b", other.members("b"))])
    with pytest.raises(TypeError, match=r"^segment 'a': expected Members, got set$"):
        overlap({"a": {"p0"}})  # type: ignore[arg-type]


# --- errors ---------------------------------------------------------------------------------


def test_bad_names_raise_precise_errors() -> None:
    """Unknown, repeated, missing or wrongly typed names raise with an exact message."""
    engine = _abc()
    with pytest.raises(sk.SegmentError, match=r"^unknown segment 'bb' \(did you mean 'b'\?\)$"):
        engine.overlap(["a", "bb"])
    with pytest.raises(ValueError, match=r"^overlap names segment 'a' more than once$"):
        engine.overlap(["a", "b", "a"])
    with pytest.raises(ValueError, match=r"^overlap needs at least one segment name$"):
        engine.overlap([])
    with pytest.raises(
        TypeError,
        match=r"^names must be an iterable of segment names, not the string 'abc' "
        r"\(did you mean \['abc'\]\?\)$",
    ):
        engine.overlap("abc")
    with pytest.raises(TypeError, match=r"^a segment name must be a string, got 3$"):
        engine.overlap(["a", 3])  # type: ignore[list-item]
    with pytest.raises(
        ValueError, match=r"^empty=True lists regions, which pairwise=True does not compute$"
    ):
        engine.overlap(["a"], empty=True, pairwise=True)


def test_more_than_20_segments_suggest_pairwise() -> None:
    """N > 20 without pairwise=True is refused before anything is computed."""
    engine = _abc()
    names = [f"x{i}" for i in range(21)]  # not even defined: the size is checked first
    with pytest.raises(ValueError, match="pass pairwise=True") as info:
        engine.overlap(names)
    assert str(info.value) == (
        "an overlap of 21 segments has up to 2**21 - 1 = 2,097,151 regions; regions are "
        "computed for at most 20 segments: pass pairwise=True for the pairwise counts, "
        "Jaccard and containment only"
    )


def test_twenty_segments_are_allowed() -> None:
    """Exactly 20 segments still get their regions (refinement: only non-empty ones)."""
    memberships = {f"s{i}": {f"p{i}", "p99"} for i in range(20)}
    engine = _engine(memberships, [*(f"p{i}" for i in range(20)), "p99"])
    report = engine.overlap(memberships)
    assert [r.segments for r in report.regions[:2]] == [("s0",), ("s1",)]
    assert report.regions[-1].segments == tuple(memberships)
    assert {r.count for r in report.regions} == {1}
    assert len(report.regions) == 21


def test_region_errors() -> None:
    """``region`` checks its names against the report's segments."""
    report = _abc().overlap(["a", "b", "c"])
    with pytest.raises(ValueError, match=r"^region\(\) needs at least one segment name$"):
        report.region()
    with pytest.raises(
        ValueError,
        match=r"^segment 'd' is not in this overlap \(its segments: 'a', 'b', 'c'\)$",
    ):
        report.region("a", "d")
    with pytest.raises(ValueError, match=r"^segment 'a' is named more than once$"):
        report.region("a", "a")
    with pytest.raises(ValueError, match=r"^segment 'b' is both required and excluded$"):
        report.region("a", "b", not_=["b"])
    with pytest.raises(
        TypeError, match=r"^not_ must be an iterable of segment names, not the string 'c'$"
    ):
        report.region("a", not_="c")


def test_counts_do_not_depend_on_name_order() -> None:
    """The same segments in another order give the same regions (names reordered)."""
    engine = _abc()
    one = engine.overlap(["a", "b", "c"])
    other = engine.overlap(["c", "a", "b"])
    assert Counter({frozenset(r.segments): r.count for r in one.regions}) == Counter(
        {frozenset(r.segments): r.count for r in other.regions}
    )
    assert other.regions[-1].segments == ("c", "a", "b")
