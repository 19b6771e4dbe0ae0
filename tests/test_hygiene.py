"""Engine.hygiene: empty, tiny, near-duplicate, unused and stale segments."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from itertools import combinations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import segkit as sk
from segkit.analysis.hygiene import HYGIENE_KINDS, HygieneIssue

T0 = datetime(2024, 6, 30, tzinfo=timezone.utc)
DAY = timedelta(days=1)


class Clock:
    """A settable clock."""

    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def population(n: int = 300, clock: Clock | None = None) -> sk.Engine:
    """An engine with profiles c-0 .. c-(n-1) whose age is their number."""
    engine = sk.Engine(sk.Schema(attributes={"age": "int"}), clock=clock or Clock())
    engine.upsert_many({f"c-{i}": {"age": i} for i in range(n)})
    return engine


def used(engine: sk.Engine, *names: str) -> None:
    """Record one use of each segment, so that it is not reported as unused."""
    for name in names:
        engine.usage.record(name, tool="crm", objective="analytics", ref="r")


def kinds_of(issues: list[HygieneIssue]) -> list[tuple[str, str]]:
    return [(issue.kind, issue.segment) for issue in issues]


def test_empty_and_tiny() -> None:
    """Size 0 is empty (not tiny); 0 < size < tiny is tiny; tiny=0 turns it off."""
    engine = population()
    engine.define("none", "age < 0")
    engine.define("five", "age < 5")
    engine.define("hundred", "age < 100")
    used(engine, "none", "five", "hundred")
    issues = engine.hygiene()
    assert kinds_of(issues) == [("empty", "none"), ("tiny", "five")]
    assert issues[1] == HygieneIssue("tiny", "five", 5, "has 5 members (fewer than 100)")
    assert issues[1].members == engine.members("five")
    assert kinds_of(engine.hygiene(tiny=101)) == [
        ("empty", "none"),
        ("tiny", "five"),
        ("tiny", "hundred"),
    ]
    assert kinds_of(engine.hygiene(tiny=0)) == [("empty", "none")]
    engine.define("one", "age = 7")
    used(engine, "one")
    assert engine.hygiene(kinds=["tiny"])[1].detail == "has 1 member (fewer than 100)"


def test_near_duplicates_are_reported_once_per_pair() -> None:
    """Jaccard >= 0.95 between two segments is one issue naming both, with the index."""
    engine = population(1000)
    engine.define("a", "age < 500")
    engine.define("b", "age <= 499")  # identical
    engine.define("c", "age < 510")  # 500/510 = 0.980
    engine.define("d", "age < 530")  # 500/530 = 0.943 with a
    used(engine, "a", "b", "c", "d")
    issues = engine.hygiene(kinds=["duplicate"])
    assert [(i.segment, i.other, round(i.jaccard or 0, 4)) for i in issues] == [
        ("a", "b", 1.0),
        ("a", "c", round(500 / 510, 4)),
        ("b", "c", round(500 / 510, 4)),
        ("c", "d", round(510 / 530, 4)),
    ]
    assert issues[1].detail == "Jaccard 0.980 with 'c' (500 members in common)"
    assert issues[1].size == 500
    assert issues[1].members == engine.members("a")
    assert engine.hygiene(kinds=["duplicate"], duplicate_jaccard=None) == ()
    assert len(engine.hygiene(kinds=["duplicate"], duplicate_jaccard=0.9)) == 6


def test_overlapping_segments_use_the_union_as_denominator() -> None:
    """Two shifted ranges: Jaccard is the common part over the union, not over the larger."""
    engine = population(1000)
    engine.define("a", "age < 500")
    engine.define("e", "age >= 5 and age < 505")  # 495 / 505 = 0.980
    engine.define("f", "age >= 25 and age < 525")  # 475 / 525 = 0.905 with a
    [issue] = engine.hygiene(kinds=["duplicate"])
    assert (issue.segment, issue.other, issue.jaccard) == ("a", "e", 495 / 505)
    assert issue.detail == "Jaccard 0.980 with 'e' (495 members in common)"


def test_empty_segments_are_not_duplicates_of_each_other() -> None:
    """Two empty segments are each empty, not a duplicate pair."""
    engine = population(10)
    engine.define_static("x", [])
    engine.define_static("y", [])
    assert kinds_of(engine.hygiene(kinds=["empty", "duplicate"])) == [
        ("empty", "x"),
        ("empty", "y"),
    ]


def test_unused_follows_usage_and_references() -> None:
    """A segment is unused until something records a use or a rule refers to it."""
    engine = population()
    engine.define("adults", "age >= 18")
    engine.define("seniors", "age >= 65")
    assert kinds_of(engine.hygiene(kinds=["unused"])) == [
        ("unused", "adults"),
        ("unused", "seniors"),
    ]
    engine.redefine("seniors", 'in segment "adults" and age >= 65')
    used(engine, "seniors")
    assert engine.hygiene(kinds=["unused"]) == ()


def test_stale_segments() -> None:
    """A segment not saved for stale_days (30) days is stale, from the last save on."""
    clock = Clock()
    engine = population(clock=clock)
    engine.define("adults", "age >= 18")
    engine.define_static("picked", ["c-1"])
    used(engine, "adults", "picked")
    clock.now = T0 + 20 * DAY
    engine.upsert("c-0", {"age": 40})
    engine.save()  # adults changed: a new snapshot
    clock.now = T0 + 30 * DAY
    issues = engine.hygiene(tiny=0)
    assert issues == (
        HygieneIssue(
            "stale", "picked", 1, "not saved for 30 days (since 2024-06-30)", last_saved=T0
        ),
    )
    assert issues[0].to_dict()["last_saved"] == "2024-06-30T00:00:00+00:00"
    assert engine.hygiene(tiny=0, now=T0 + 30 * DAY - timedelta(seconds=1)) == ()
    later = engine.hygiene(tiny=0, now=T0 + 50 * DAY)
    assert [(i.segment, i.last_saved) for i in later] == [
        ("adults", T0 + 20 * DAY),
        ("picked", T0),
    ]
    assert engine.hygiene(tiny=0, now=T0 + 50 * DAY, stale_days=None) == ()
    assert len(engine.hygiene(tiny=0, stale_days=0.5)) == 2


def test_order_is_by_kind_then_name() -> None:
    """Issues come by kind (empty, tiny, duplicate, unused, stale), then segment name."""
    clock = Clock()
    engine = population(clock=clock)
    engine.define("z_empty", "age < 0")
    engine.define("b_tiny", "age < 3")
    engine.define("a_tiny", "age < 4")
    clock.now = T0 + 40 * DAY
    issues = engine.hygiene()
    assert [i.kind for i in issues] == [
        "empty",
        "tiny",
        "tiny",
        "unused",
        "unused",
        "unused",
        "stale",
        "stale",
        "stale",
    ]
    assert [i.segment for i in issues][:3] == ["z_empty", "a_tiny", "b_tiny"]
    assert HYGIENE_KINDS == ("empty", "tiny", "duplicate", "unused", "stale")


def test_repr_and_to_dict() -> None:
    """An issue has a one-line repr and a JSON-safe dict."""
    engine = population(100)
    engine.define("a", "age < 50")
    engine.define("b", "age < 50")
    [issue] = engine.hygiene(kinds=["duplicate"])
    assert repr(issue) == (
        "HygieneIssue('duplicate', 'a', size=50, detail=\"Jaccard 1.000 with 'b' (50 members in common)\")"
    )
    assert issue.to_dict() == {
        "kind": "duplicate",
        "segment": "a",
        "size": 50,
        "detail": "Jaccard 1.000 with 'b' (50 members in common)",
        "other": "b",
        "jaccard": 1.0,
        "last_saved": None,
    }


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"tiny": -1}, ValueError, "tiny must be at least 0, got -1"),
        ({"tiny": 1.5}, TypeError, "tiny must be an int, got float"),
        ({"duplicate_jaccard": 0}, ValueError, "duplicate_jaccard must be in (0, 1], got 0"),
        ({"duplicate_jaccard": 1.5}, ValueError, "duplicate_jaccard must be in (0, 1], got 1.5"),
        (
            {"duplicate_jaccard": "high"},
            TypeError,
            "duplicate_jaccard must be a number or None, got str",
        ),
        ({"stale_days": 0}, ValueError, "stale_days must be positive, got 0"),
        ({"stale_days": True}, TypeError, "stale_days must be a number or None, got bool"),
        (
            {"kinds": ["tiny", "dupes"]},
            ValueError,
            "unknown hygiene check 'dupes': expected one of empty, tiny, duplicate, unused, stale",
        ),
        (
            {"kinds": ["emtpy"]},
            ValueError,
            "unknown hygiene check 'emtpy' (did you mean 'empty'?): expected one of empty, tiny, duplicate, unused, stale",
        ),
        (
            {"kinds": "tiny"},
            TypeError,
            "kinds must be an iterable of check names, not the string 'tiny'",
        ),
    ],
)
def test_bad_options_raise_precise_errors(
    options: dict[str, object], error: type[Exception], message: str
) -> None:
    """Each bad option names itself and what it expects."""
    engine = population(10)
    with pytest.raises(error) as info:
        engine.hygiene(**options)  # type: ignore[arg-type]
    assert str(info.value) == message


# segments that are often near one another: a shared base, each with a few changes
near_sets = st.builds(
    lambda base, changes: [base ^ change for change in changes],
    st.sets(st.integers(0, 30), max_size=25),
    st.lists(st.sets(st.integers(0, 30), max_size=4), min_size=1, max_size=7),
)


@settings(max_examples=80)
@given(
    segments=st.one_of(near_sets, st.lists(st.sets(st.integers(0, 30)), min_size=1, max_size=7)),
    threshold=st.sampled_from([0.5, 0.8, 0.9, 0.95, 1.0]),
)
def test_duplicates_match_a_set_reference(segments: list[set[int]], threshold: float) -> None:
    """The duplicate pairs and their Jaccard indexes are those of Python sets."""
    engine = sk.Engine(sk.Schema(attributes={}))
    engine.upsert_many({f"p{i}": {} for i in range(31)})
    names = [f"s{i}" for i in range(len(segments))]
    for name, keys in zip(names, segments, strict=True):
        engine.define_static(name, [f"p{i}" for i in sorted(keys)])
    expected = []
    for (a, sa), (b, sb) in combinations(zip(names, segments, strict=True), 2):
        if sa and sb:
            jaccard = len(sa & sb) / len(sa | sb)
            if jaccard >= threshold:
                expected.append((a, b, jaccard))
    got = [
        (i.segment, i.other, i.jaccard)
        for i in engine.hygiene(kinds=["duplicate"], duplicate_jaccard=threshold)
    ]
    assert got == sorted(expected)
