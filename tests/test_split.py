"""Engine.split: bucket ranges, holdouts, strata, stability, the SRM check, saving."""

from __future__ import annotations

import itertools
import json
import math
import random
from collections.abc import Mapping, Sequence
from fractions import Fraction
from unittest.mock import patch

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import segkit as sk
from segkit.analysis import split as split_module
from segkit.analysis._chisq import chi2_sf, gamma_q
from segkit.analysis.split import BucketCache, SampleRatioCheck, Split, bucket_function
from segkit.hashing import bucket

# --- plain reference computations (independent of segkit.analysis.split) --------------------


def _ref_boundaries(weights: Sequence[int], scale: int, offset: int = 5_000) -> list[int]:
    """``floor(scale * C_k / W + offset / 10000)`` for integer weights, in integer arithmetic."""
    total = sum(weights)
    out, running = [0], 0
    for w in weights:
        running += w
        out.append((10_000 * scale * running + offset * total) // (10_000 * total))
    return out


def _ref_group(key: str, salt: str, groups: Mapping[str, int], holdout_buckets: int) -> str:
    """The group of ``key``: holdout first (by its own salt), then by bucket range."""
    if holdout_buckets and bucket(salt + ":holdout", key) < holdout_buckets:
        return "holdout"
    b = bucket(salt, key)
    cuts = _ref_boundaries(list(groups.values()), 10_000)
    for name, lo, hi in zip(groups, cuts, cuts[1:], strict=False):
        if lo <= b < hi:
            return name
    raise AssertionError("every bucket belongs to a group")


def _ref_stratified(
    keys: Mapping[str, object], salt: str, groups: Mapping[str, int]
) -> dict[str, set[str]]:
    """Each stratum ranked by (bucket, key) and cut at the rounded cumulative weights."""
    strata: dict[object, list[str]] = {}
    for key, value in keys.items():
        strata.setdefault(value, []).append(key)
    out: dict[str, set[str]] = {g: set() for g in groups}
    for value, members in strata.items():
        ranked = sorted(members, key=lambda k: (bucket(salt, k), k))
        offset = bucket(salt, f"stratum:{value!r}")
        cuts = _ref_boundaries(list(groups.values()), len(ranked), offset)
        for name, lo, hi in zip(groups, cuts, cuts[1:], strict=False):
            out[name].update(ranked[lo:hi])
    return out


def _ref_chi_square(observed: Sequence[int], expected: Sequence[float]) -> float:
    return sum((o - e) ** 2 / e for o, e in zip(observed, expected, strict=True) if e > 0)


# --- fixtures -------------------------------------------------------------------------------

SCHEMA = sk.Schema(attributes={"n": "int", "country": "string", "tags": "list[string]"})


def _engine(profiles: Mapping[str, Mapping[str, object]]) -> sk.Engine:
    engine = sk.Engine(SCHEMA)
    engine.upsert_many(profiles)
    return engine


def _everyone(keys: Sequence[str], **extra: Mapping[str, object]) -> sk.Engine:
    engine = _engine({k: dict(extra.get(k, {})) for k in keys})
    engine.define_static("all", list(keys))
    return engine


_keys = st.lists(st.text(min_size=1, max_size=6), min_size=0, max_size=40, unique=True)
_groups = st.dictionaries(
    st.sampled_from(["control", "a", "b", "c", "d", "e"]),
    st.integers(0, 100),
    min_size=1,
).filter(lambda g: sum(g.values()) > 0)


# --- unstratified ---------------------------------------------------------------------------


@settings(max_examples=50)
@given(
    keys=_keys,
    groups=_groups,
    holdout=st.sampled_from([None, 5, 12.5, 50]),
    salt=st.text(min_size=1, max_size=5),
)
def test_every_key_lands_in_the_reference_group(
    keys: list[str], groups: dict[str, int], holdout: float | None, salt: str
) -> None:
    """Each key's group is the reference computed from ``bucket()`` and the weights."""
    engine = _everyone(keys)
    split = engine.split("all", groups, salt=salt, holdout=holdout)
    held = 0 if holdout is None else round(holdout * 100)
    expected: dict[str, set[str]] = {g: set() for g in split}
    for key in keys:
        expected[_ref_group(key, salt, groups, held)].add(key)
    assert {g: set(m) for g, m in split.items()} == expected
    assert dict(split.counts) == {g: len(v) for g, v in expected.items()}
    assert list(split) == [*groups, *(["holdout"] if holdout else [])]
    assert math.isclose(sum(split.expected.values()), len(keys), abs_tol=1e-9)


@settings(max_examples=30)
@given(keys=_keys, groups=_groups, holdout=st.sampled_from([None, 5]))
def test_rule_text_selects_the_same_group(
    keys: list[str], groups: dict[str, int], holdout: float | None
) -> None:
    """``engine.query(split.rule(g)) & engine.members(name)`` is group ``g``."""
    engine = _everyone(keys)
    engine.upsert_many({"outsider": {}})  # not in the segment: the rule alone selects it too
    split = engine.split("all", groups, salt="exp-7", holdout=holdout)
    segment = engine.members("all")
    for group, members in split.items():
        if split.buckets[group] is None:
            with pytest.raises(ValueError, match="has weight 0: it owns no bucket"):
                split.rule(group)
            assert len(members) == 0
            continue
        assert engine.query(split.rule(group)) & segment == members
        assert sk.parse(split.rule(group))  # canonical text parses back


def test_bucket_ranges_and_rounding() -> None:
    """Ranges follow the cumulative weights, rounded half up; floats read as decimals."""
    engine = _everyone(["k"])
    ranges = engine.split("all", {"control": 10, "a": 45, "b": 45}, salt="s").buckets
    assert dict(ranges) == {"control": (0, 999), "a": (1000, 5499), "b": (5500, 9999)}
    ranges = engine.split("all", {"a": 33.3, "b": 66.7}, salt="s").buckets
    assert dict(ranges) == {"a": (0, 3329), "b": (3330, 9999)}
    ranges = engine.split("all", {"a": 1, "b": 1, "c": 1}, salt="s").buckets
    assert dict(ranges) == {"a": (0, 3332), "b": (3333, 6666), "c": (6667, 9999)}
    ranges = engine.split("all", {"a": 1, "off": 0, "b": 3}, salt="s").buckets
    assert dict(ranges) == {"a": (0, 2499), "off": None, "b": (2500, 9999)}
    ranges = engine.split("all", {"a": 0.005, "b": 99.995}, salt="s").buckets
    assert dict(ranges) == {"a": (0, 0), "b": (1, 9999)}  # 0.5 bucket rounds up
    split = engine.split("all", {"a": 1}, salt="s", holdout=0.01)
    assert split.buckets["holdout"] == (0, 0)
    assert split.rule("a") == 'bucket("s") in 0..9999 and not bucket("s:holdout") in 0..0'


def test_split_agrees_with_bucket_rules_in_segments() -> None:
    """A dynamic segment ``bucket("s") in LO..HI`` holds the same keys as the split group."""
    keys = [f"user-{i}" for i in range(500)]
    engine = _everyone(keys)
    split = engine.split("all", {"control": 20, "test": 80}, salt="exp-9")
    engine.define("test_rule", 'bucket("exp-9") in 2000..9999')
    assert engine.members("test_rule") == split["test"]
    assert split.rule("test") == 'bucket("exp-9") in 2000..9999'


@settings(max_examples=100)
@given(salt=st.text(max_size=8), key=st.text(min_size=1, max_size=12))
def test_bucket_function_equals_hashing_bucket(salt: str, key: str) -> None:
    """The cache's faster hash gives exactly ``segkit.hashing.bucket``."""
    assert bucket_function(salt)(key) == bucket(salt, key)


def _keys_in_bucket(salt: str, wanted: int, count: int) -> list[str]:
    """The first ``count`` keys ``"k<i>"`` whose bucket under ``salt`` is ``wanted``."""
    found: list[str] = []
    i = 0
    while len(found) < count:
        if bucket(salt, f"k{i}") == wanted:
            found.append(f"k{i}")
        i += 1
    return found


def test_keys_on_the_range_boundaries() -> None:
    """Buckets 999/1000 and holdout buckets 499/500 fall on the right side of each edge."""
    edges = {b: _keys_in_bucket("edge", b, 1)[0] for b in (999, 1000, 9999, 0)}
    held = {b: _keys_in_bucket("edge:holdout", b, 1)[0] for b in (499, 500)}
    engine = _everyone([*edges.values(), *held.values()])
    split = engine.split("all", {"control": 10, "test": 90}, salt="edge", holdout=5)
    assert held[499] in split["holdout"]
    assert held[500] not in split["holdout"]
    for b, key in edges.items():
        if key not in split["holdout"]:
            assert key in split["control" if b < 1000 else "test"]


@pytest.mark.parametrize("sort_max", [0, 2048], ids=["bucket-cuts", "sorted"])
def test_ties_in_a_bucket_are_broken_by_key(sort_max: int) -> None:
    """Members sharing a bucket are ranked by key, not by dense id."""
    keys = _keys_in_bucket("tie", 4242, 6)
    engine = _everyone(sorted(keys, reverse=True))  # ids in the opposite order of keys
    with patch.object(split_module, "_SORT_MAX", sort_max):
        split = engine.split("all", {"a": 1, "b": 1}, salt="tie", by="country")
    assert sorted(split["a"]) == sorted(keys)[:3]


# --- stability ------------------------------------------------------------------------------


def _groups_by_key(split: Split) -> dict[str, str]:
    return {key: group for group, members in split.items() for key in members}


def test_groups_are_stable_when_the_segment_grows_and_shrinks() -> None:
    """Growing or shrinking a segment never moves a remaining member to another group."""
    engine = _engine({f"c-{i}": {"n": i} for i in range(3000)})
    engine.define("low", "n < 1000")
    weights = {"control": 10, "a": 45, "b": 45}
    before = _groups_by_key(engine.split("low", weights, salt="exp-7", holdout=5))
    engine.redefine("low", "n < 2500")  # grows
    grown = _groups_by_key(engine.split("low", weights, salt="exp-7", holdout=5))
    assert len(grown) == 2500
    assert all(grown[key] == group for key, group in before.items())
    engine.redefine("low", "n < 400")  # shrinks
    engine.delete("c-3")
    shrunk = _groups_by_key(engine.split("low", weights, salt="exp-7", holdout=5))
    assert len(shrunk) == 399
    assert all(before[key] == group for key, group in shrunk.items())


def test_groups_do_not_depend_on_insertion_order_or_ids() -> None:
    """The same profiles loaded in another order (other dense ids) get the same groups."""
    keys = [f"c-{i}" for i in range(2000)]
    profiles = {k: {"n": i, "country": ["FR", "DE", "IT"][i % 3]} for i, k in enumerate(keys)}
    first = _engine(profiles)
    shuffled = list(profiles.items())
    random.Random(7).shuffle(shuffled)
    second = sk.Engine(SCHEMA)
    second.upsert_many([("noise-a", {}), *shuffled[:500], ("noise-b", {}), *shuffled[500:]])
    for engine in (first, second):
        engine.define("adults", "n >= 300")
    assert first.members("adults").ids != second.members("adults").ids  # other dense ids
    for options in ({}, {"holdout": 10}, {"by": "country"}):
        one = first.split("adults", {"a": 30, "b": 70}, salt="exp-3", **options)
        two = second.split("adults", {"a": 30, "b": 70}, salt="exp-3", **options)
        assert {g: sorted(m) for g, m in one.items()} == {g: sorted(m) for g, m in two.items()}


# --- stratified -----------------------------------------------------------------------------


@pytest.mark.parametrize("sort_max", [0, 2048], ids=["bucket-cuts", "sorted"])
@settings(max_examples=40)
@given(
    countries=st.lists(st.sampled_from(["FR", "DE", "IT", None]), max_size=60),
    groups=_groups,
)
def test_stratified_groups_match_the_reference(
    sort_max: int, countries: list[str | None], groups: dict[str, int]
) -> None:
    """Each stratum is ranked by (bucket, key) and cut at the rounded cumulative weights."""
    keys = {f"k{i}": country for i, country in enumerate(countries)}
    engine = _everyone(list(keys), **{k: {"country": c} for k, c in keys.items()})
    with patch.object(split_module, "_SORT_MAX", sort_max):
        split = engine.split("all", groups, salt="strat", by="country")
    assert {g: set(m) for g, m in split.items()} == _ref_stratified(keys, "strat", groups)
    for value, counts in split.strata.items():
        n = sum(1 for c in keys.values() if c == value)
        for name in groups:
            share = Fraction(groups[name], sum(groups.values()))
            assert abs(counts[name] - n * share) < 1


@pytest.mark.parametrize("sort_max", [0, 2048], ids=["bucket-cuts", "sorted"])
def test_large_strata_keep_their_proportions(sort_max: int) -> None:
    """Thousands of members per stratum: exact reference groups, proportions within one."""
    countries = ["FR"] * 6000 + ["DE"] * 2501 + [None] * 777
    keys = {f"u{i}": c for i, c in enumerate(countries)}
    engine = _everyone(list(keys), **{k: {"country": c} for k, c in keys.items()})
    groups = {"control": 10, "a": 30, "b": 25, "c": 35}
    with patch.object(split_module, "_SORT_MAX", sort_max):
        split = engine.split("all", groups, salt="big", by="country")
    assert {g: set(m) for g, m in split.items()} == _ref_stratified(keys, "big", groups)
    assert {v: dict(c) for v, c in split.strata.items()} == {
        "DE": {"control": 250, "a": 751, "b": 625, "c": 875},
        "FR": {"control": 600, "a": 1800, "b": 1500, "c": 2100},
        None: {"control": 78, "a": 233, "b": 194, "c": 272},
    }
    assert split.srm.ok
    assert split.buckets == {"control": None, "a": None, "b": None, "c": None}
    with pytest.raises(
        ValueError,
        match=r"^a split stratified by 'country' has no bucket rule: each stratum's groups "
        r"come from ranking its members$",
    ):
        split.rule("a")


def test_small_strata_round_without_bias() -> None:
    """2,000 one-member strata: each stratum's own offset spreads the odd members."""
    keys = [f"k{i}" for i in range(2000)]
    engine = _everyone(keys, **{k: {"n": i} for i, k in enumerate(keys)})
    split = engine.split("all", {"x": 10, "y": 45, "z": 45}, salt="s", by="n")
    assert len(split.strata) == 2000
    assert dict(split.counts) == {"x": 182, "y": 869, "z": 949}
    assert split.srm.ok
    for i, key in enumerate(keys):  # a lone member goes where its offset falls
        offset = bucket("s", f"stratum:{i!r}")
        expected = "x" if offset >= 9000 else "y" if offset >= 4500 else "z"
        assert key in split[expected]


def test_stratified_with_holdout() -> None:
    """The holdout is carved out by its salt first; the strata split what is left."""
    keys = {f"u{i}": ["FR", "DE"][i % 2] for i in range(400)}
    engine = _everyone(list(keys), **{k: {"country": c} for k, c in keys.items()})
    split = engine.split("all", {"a": 1, "b": 1}, salt="h", by="country", holdout=10)
    held = {k for k in keys if bucket("h:holdout", k) < 1000}
    assert set(split["holdout"]) == held
    rest = {k: c for k, c in keys.items() if k not in held}
    assert {g: set(split[g]) for g in ("a", "b")} == _ref_stratified(rest, "h", {"a": 1, "b": 1})


# --- the SRM check --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("statistic", "df", "p"),
    [
        (3.841, 1, 0.05),
        (6.635, 1, 0.01),
        (10.828, 1, 0.001),
        (5.991, 2, 0.05),
        (7.815, 3, 0.05),
        (9.488, 4, 0.05),
        (13.277, 4, 0.01),
        (16.919, 9, 0.05),
        (21.666, 9, 0.01),
        (124.342, 100, 0.05),
        (0.455, 1, 0.5),
        (9.342, 10, 0.5),
    ],
)
def test_chi_square_p_values_match_the_table(statistic: float, df: int, p: float) -> None:
    """Critical values from a chi-square table (3 decimals) give their p-value."""
    assert chi2_sf(statistic, df) == pytest.approx(p, rel=2e-3)


@settings(max_examples=200)
@given(x=st.floats(0, 200), k=st.integers(1, 30))
def test_chi_square_matches_closed_forms(x: float, k: int) -> None:
    """df = 1 is erfc(sqrt(x/2)); even df = 2k is a finite Poisson sum."""
    assert chi2_sf(x, 1) == pytest.approx(math.erfc(math.sqrt(x / 2)), rel=1e-9, abs=1e-300)
    half = x / 2
    poisson = math.exp(-half) * sum(half**i / math.factorial(i) for i in range(k))
    assert chi2_sf(x, 2 * k) == pytest.approx(poisson, rel=1e-9, abs=1e-300)


def test_chi_square_edges_and_errors() -> None:
    """x = 0 gives 1, infinity 0; bad arguments raise precise errors."""
    assert chi2_sf(0.0, 5) == 1.0
    assert gamma_q(2.0, math.inf) == 0.0
    assert 0.0 <= chi2_sf(1e6, 3) < 1e-300
    with pytest.raises(ValueError, match=r"^degrees of freedom must be an int >= 1, got 0$"):
        chi2_sf(1.0, 0)
    with pytest.raises(ValueError, match=r"^degrees of freedom must be an int >= 1, got True$"):
        chi2_sf(1.0, True)
    with pytest.raises(ValueError, match=r"^a chi-square statistic must be >= 0, got -1.0$"):
        chi2_sf(-1.0, 1)
    with pytest.raises(ValueError, match=r"^gamma_q needs a finite a > 0, got 0.0$"):
        gamma_q(0.0, 1.0)
    with pytest.raises(ValueError, match=r"^gamma_q needs x >= 0, got nan$"):
        gamma_q(1.0, math.nan)


@settings(max_examples=30)
@given(keys=_keys, groups=_groups, holdout=st.sampled_from([None, 20]))
def test_srm_statistic_matches_the_reference(
    keys: list[str], groups: dict[str, int], holdout: float | None
) -> None:
    """The SRM check uses the bucket shares as expected counts; p is the chi-square tail."""
    split = _everyone(keys).split("all", groups, salt="srm", holdout=holdout)
    n = len(keys)
    kept = 1 - (0 if holdout is None else holdout / 100)
    cuts = _ref_boundaries(list(groups.values()), 10_000)
    expected = [n * kept * (hi - lo) / 10_000 for lo, hi in itertools.pairwise(cuts)]
    observed = [split.counts[g] for g in groups]
    if holdout is not None:
        expected.append(n * holdout / 100)
        observed.append(split.counts["holdout"])
    assert list(split.expected.values()) == pytest.approx(expected)
    assert split.srm.statistic == pytest.approx(_ref_chi_square(observed, expected))
    cells = sum(1 for e in expected if e > 0)
    assert split.srm.df == max(cells - 1, 0)
    if split.srm.df:
        assert split.srm.p_value == pytest.approx(chi2_sf(split.srm.statistic, split.srm.df))
    else:
        assert split.srm.p_value == 1.0
    assert split.srm.ok == (split.srm.p_value >= 0.001)


def test_srm_flags_a_skewed_split() -> None:
    """Counts far from the weights fail the check; alpha is adjustable."""
    check = SampleRatioCheck.of({"a": 5300, "b": 4700}, {"a": 5000.0, "b": 5000.0})
    assert check.statistic == 36.0
    assert check.df == 1
    assert not check.ok
    assert check.p_value == pytest.approx(1.9732e-9, rel=1e-3)
    assert SampleRatioCheck.of({"a": 0, "b": 3}, {"a": 0.0, "b": 3.0}).df == 0
    assert SampleRatioCheck.of({"a": 1, "b": 3}, {"a": 0.0, "b": 4.0}).p_value == 0.0
    mild = SampleRatioCheck.of({"a": 5150, "b": 4850}, {"a": 5000.0, "b": 5000.0})
    assert (mild.ok, mild.with_alpha(0.01).ok, mild.with_alpha(0.01).alpha) == (True, False, 0.01)
    with pytest.raises(ValueError, match=r"^alpha must be a number between 0 and 1, got 1.5$"):
        mild.with_alpha(1.5)
    with pytest.raises(
        ValueError, match=r"^observed and expected counts must name the same groups$"
    ):
        SampleRatioCheck.of({"a": 1}, {"b": 1.0})
    with pytest.raises(ValueError, match=r"^group 'a': counts must not be negative$"):
        SampleRatioCheck.of({"a": -1}, {"a": 1.0})


# --- results --------------------------------------------------------------------------------


def test_split_is_a_frozen_mapping_with_repr_and_to_dict() -> None:
    """``dict(split)`` gives Members; repr is a table; to_dict is JSON-safe."""
    engine = _everyone([f"c-{i}" for i in range(200)])
    split = engine.split("all", {"a": 50, "b": 50}, salt="exp-1", holdout=10)
    assert isinstance(split, Mapping)
    assert isinstance(dict(split)["a"], sk.Members)
    assert split.groups == ("a", "b", "holdout")
    assert repr(split) == (
        "Split of 'all' (200 members) with salt 'exp-1': SRM p=0.4298, ok\n"
        "  group    weight  buckets     count  expected\n"
        "  a            50  0..4999        82      90.0\n"
        "  b            50  5000..9999     94      90.0\n"
        "  holdout     10%  0..999*        24      20.0\n"
        "  * holdout buckets are under the salt 'exp-1:holdout'"
    )
    data = split.to_dict()
    assert json.loads(json.dumps(data)) == data
    assert data["groups"][2] == {
        "name": "holdout",
        "weight": 10,
        "buckets": [0, 999],
        "count": 24,
        "expected": 20.0,
    }
    assert data["srm"]["ok"] is True
    with pytest.raises(AttributeError):
        split.salt = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        split.counts["a"] = 1  # type: ignore[index]
    with pytest.raises(
        KeyError, match=r"no group 'c' in this split \(its groups: 'a', 'b', 'holdout'\)"
    ):
        split["c"]
    with pytest.raises(KeyError, match="no group 'c'"):
        split.rule("c")
    assert split.get("c") is None


def test_stratified_to_dict_and_repr() -> None:
    """Strata values are JSON-safe (None for the missing value)."""
    engine = _everyone(["a", "b", "c"], a={"country": "FR"}, b={"country": "DE"})
    split = engine.split("all", {"x": 1, "y": 1}, salt="s", by="country")
    assert split.to_dict()["strata"] == [
        {"value": "DE", "counts": {"x": 0, "y": 1}},
        {"value": "FR", "counts": {"x": 0, "y": 1}},
        {"value": None, "counts": {"x": 1, "y": 0}},
    ]
    assert repr(split).splitlines()[0] == (
        "Split of 'all' (3 members) with salt 's', by 'country' (3 strata): SRM p=0.5637, ok"
    )
    assert repr(split).splitlines()[1:] == [
        "  group  weight  buckets  count  expected",
        "  x           1  -            1       1.5",
        "  y           1  -            2       1.5",
    ]


def test_empty_segment() -> None:
    """An empty segment splits into empty groups; the SRM check has nothing to test."""
    engine = _everyone([])
    split = engine.split("all", {"a": 1, "b": 1}, salt="s")
    assert dict(split.counts) == {"a": 0, "b": 0}
    assert split.srm == SampleRatioCheck(0.0, 0, 1.0, 0.001, True)


# --- saving ---------------------------------------------------------------------------------


def test_save_creates_static_segments_and_records_usage() -> None:
    """``save=True`` names groups ``f"{name}_{group}"``; the parent's use is recorded."""
    engine = _everyone([f"c-{i}" for i in range(50)])
    split = engine.split("all", {"control": 1, "test": 1}, salt="exp", holdout=10, save=True)
    assert split.saved == ("all_control", "all_test", "all_holdout")
    for group, static in zip(split, split.saved, strict=True):
        assert engine.members(static) == split[group]
        assert engine.segment(static).kind == "static"
    usage = sorted(engine.storage.list_usage("all"), key=lambda v: v.value.ref)
    assert [(u.value.tool, u.value.objective, u.value.ref) for u in usage] == [
        ("segkit", "segmentation", "split:all_control"),
        ("segkit", "segmentation", "split:all_holdout"),
        ("segkit", "segmentation", "split:all_test"),
    ]
    assert engine.split("all", {"x": 1}, salt="exp", save="exp7").saved == ("exp7_x",)


def test_save_is_all_or_nothing() -> None:
    """An existing name raises before anything is written; a failing save is undone."""
    engine = _everyone(["a", "b"])
    engine.define_static("all_b", [])
    with pytest.raises(
        sk.SegmentError,
        match=r"^cannot save the split: segment 'all_b' already exists \(pass another prefix "
        r"with save=\.\.\.\)$",
    ):
        engine.split("all", {"a": 1, "b": 1}, salt="s", save=True)
    assert engine.segments == ["all", "all_b"]
    assert engine.storage.list_usage("all") == []
    real = engine.define_static
    calls = []

    def failing(name: str, keys: object, **options: object) -> sk.Members:
        calls.append(name)
        if len(calls) == 2:
            raise sk.ConflictError("simulated")
        return real(name, keys, **options)  # type: ignore[arg-type]

    with patch.object(engine, "define_static", failing), pytest.raises(sk.ConflictError):
        engine.split("all", {"a": 1, "b": 1}, salt="s", save="p")
    assert calls == ["p_a", "p_b"]
    assert engine.segments == ["all", "all_b"]
    assert engine.storage.list_usage("all") == []


# --- errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("groups", "options", "error", "message"),
    [
        ({}, {}, ValueError, "a split needs at least one group"),
        ([("a", 1)], {}, TypeError, "groups must be a mapping of group name to weight, got list"),
        ({"": 1}, {}, ValueError, "a group name must be a non-empty string, got ''"),
        ({1: 1}, {}, ValueError, "a group name must be a non-empty string, got 1"),
        ({"a": "50"}, {}, ValueError, "the weight of group 'a' must be a number, got '50'"),
        ({"a": True}, {}, ValueError, "the weight of group 'a' must be a number, got True"),
        ({"a": -1, "b": 2}, {}, ValueError, "the weight of group 'a' must not be negative, got -1"),
        ({"a": math.nan}, {}, ValueError, "the weight of group 'a' must be finite, got nan"),
        (
            {"a": 0, "b": 0},
            {},
            ValueError,
            "the weights add up to 0: give at least one group a positive weight",
        ),
        (
            {"a": 0.004, "b": 99.996},
            {},
            ValueError,
            "group 'a' is too small: its weight 0.004 rounds to no bucket (one bucket is 1/10000 of the total)",
        ),
        ({"a": 1}, {"salt": 7}, TypeError, "salt must be a string, got int"),
        ({"a": 1}, {"salt": ""}, ValueError, "salt must not be empty: use one salt per experiment"),
        (
            {"a": 1},
            {"holdout": 0},
            ValueError,
            "holdout must be a percentage from 0.01 to 99.99, got 0",
        ),
        (
            {"a": 1},
            {"holdout": 100},
            ValueError,
            "holdout must be a percentage from 0.01 to 99.99, got 100",
        ),
        (
            {"a": 1},
            {"holdout": 0.001},
            ValueError,
            "holdout must be a percentage from 0.01 to 99.99, got 0.001",
        ),
        (
            {"a": 1},
            {"holdout": math.inf},
            ValueError,
            "holdout must be a percentage from 0.01 to 99.99, got inf",
        ),
        ({"a": 1}, {"holdout": "5"}, ValueError, "holdout must be a percentage, got '5'"),
        (
            {"holdout": 1},
            {"holdout": 5},
            ValueError,
            "the group name 'holdout' is taken by the holdout: rename that group",
        ),
        (
            {"a": 1},
            {"by": "contry"},
            sk.SchemaError,
            "cannot split by unknown attribute 'contry' (did you mean 'country'?)",
        ),
        (
            {"a": 1},
            {"by": "tags"},
            ValueError,
            "cannot split by 'tags': it is a list attribute, and a profile can hold several values",
        ),
        ({"a": 1}, {"by": 3}, TypeError, "by must be an attribute name, got 3"),
        (
            {"a": 1},
            {"save": ""},
            ValueError,
            "save must be True, False or a non-empty name prefix, got ''",
        ),
        (
            {"a": 1},
            {"save": 1},
            ValueError,
            "save must be True, False or a non-empty name prefix, got 1",
        ),
    ],
)
def test_bad_input_raises_and_changes_nothing(
    groups: object, options: dict[str, object], error: type[Exception], message: str
) -> None:
    """Each bad argument raises its exact message; no segment or usage record appears."""
    engine = _everyone(["a", "b"])
    arguments: dict[str, object] = {"salt": "s", **options}
    with pytest.raises(error) as info:
        engine.split("all", groups, **arguments)  # type: ignore[arg-type]
    text = str(info.value)
    assert (text[1:-1] if isinstance(info.value, KeyError) else text) == message
    assert engine.segments == ["all"]
    assert engine.storage.list_usage("all") == []


def test_unknown_segment() -> None:
    """An unknown segment name raises SegmentError with a suggestion."""
    engine = _everyone(["a"])
    with pytest.raises(sk.SegmentError, match=r"^unknown segment 'al' \(did you mean 'all'\?\)$"):
        engine.split("al", {"a": 1}, salt="s")


# --- the bucket cache -----------------------------------------------------------------------


def test_warm_split_equals_cold_split() -> None:
    """The second split with a salt (cached buckets) gives the same groups."""
    engine = _everyone([f"c-{i}" for i in range(1000)])
    cold = engine.split("all", {"a": 1, "b": 2, "c": 3}, salt="w")
    warm = engine.split("all", {"a": 1, "b": 2, "c": 3}, salt="w")
    fresh = _everyone([f"c-{i}" for i in range(1000)]).split(
        "all", {"a": 1, "b": 2, "c": 3}, salt="w"
    )
    assert dict(cold) == dict(warm)
    assert {g: m.keys() for g, m in warm.items()} == {g: m.keys() for g, m in fresh.items()}


def test_cache_never_serves_a_stale_bucket_after_a_rename() -> None:
    """``merge`` into a new key renames an id: its bucket is recomputed from the new key."""
    keys = [f"anon-{i}" for i in range(300)]
    engine = _everyone(keys)
    engine.split("all", {"a": 1, "b": 1}, salt="r")  # fills the cache
    for i in range(0, 300, 3):
        engine.merge(f"anon-{i}", into=f"user-{i}")  # same id, new key
    split = engine.split("all", {"a": 1, "b": 1}, salt="r")
    for group, members in split.items():
        for key in members:
            assert _ref_group(key, "r", {"a": 1, "b": 1}, 0) == group
    assert sum(split.counts.values()) == 300


def test_cache_after_deletes_and_new_profiles() -> None:
    """Deleted profiles drop out; new profiles are hashed on demand."""
    engine = _everyone([f"c-{i}" for i in range(200)])
    engine.split("all", {"a": 1, "b": 1}, salt="d")
    for i in range(0, 200, 2):
        engine.delete(f"c-{i}")
    engine.upsert_many({f"n-{i}": {} for i in range(100)})
    engine.add_members("all", [f"n-{i}" for i in range(100)])
    split = engine.split("all", {"a": 1, "b": 1}, salt="d")
    assert sorted(k for m in split.values() for k in m) == sorted(engine.members("all"))
    for group, members in split.items():
        assert all(_ref_group(k, "d", {"a": 1, "b": 1}, 0) == group for k in members)


def test_bucket_cache_policy() -> None:
    """An LRU of salts, emptied on a rename; an id-reusing IdMap is never cached."""
    ids = sk.IdMap()
    cache = BucketCache(size=2)
    first = cache.table("a", ids, renames=0)
    assert cache.table("a", ids, renames=0) is first
    cache.table("b", ids, renames=0)
    cache.table("c", ids, renames=0)  # evicts "a", the least recently used
    assert len(cache) == 2
    assert cache.table("a", ids, renames=0) is not first
    assert cache.table("a", sk.IdMap(), renames=0) is not cache.table("a", ids, renames=0)
    reusing = sk.IdMap(reuse_ids=True)
    table = cache.table("s", reusing, renames=0)
    assert table is not cache.table("s", reusing, renames=0)
    pid = reusing.assign("old")
    from segkit.index import Bitmap

    table.cover(Bitmap([pid]), reusing)
    reusing.delete("old")
    assert reusing.assign("new") == pid
    fresh = cache.table("s", reusing, renames=0)
    fresh.cover(Bitmap([pid]), reusing)
    assert list(fresh.between(bucket("s", "new"), bucket("s", "new"))) == [pid]


def test_ranges_of_the_cache() -> None:
    """``between`` unions whole blocks and edge buckets exactly."""
    ids = sk.IdMap()
    keys = [f"k{i}" for i in range(5000)]
    for key in keys:
        ids.assign(key)
    from segkit.index import Bitmap

    table = BucketCache().table("x", ids, renames=0)
    table.cover(Bitmap(range(5000)), ids)
    by_bucket = [bucket("x", k) for k in keys]
    for lo, hi in [(0, 9999), (0, 0), (99, 100), (150, 2349), (5000, 5099), (9999, 9999), (7, 3)]:
        expected = {i for i, b in enumerate(by_bucket) if lo <= b <= hi}
        assert set(table.between(lo, hi)) == expected, (lo, hi)


def test_weights_as_fractions_and_decimals() -> None:
    """Any real number works as a weight; the exact value decides the boundaries."""
    engine = _everyone(["k"])
    split = engine.split("all", {"a": Fraction(1, 3), "b": Fraction(2, 3)}, salt="s")  # type: ignore[dict-item]
    assert dict(split.buckets) == {"a": (0, 3332), "b": (3333, 9999)}
    assert split.to_dict()["groups"][0]["weight"] == pytest.approx(1 / 3)
