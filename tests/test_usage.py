"""Engine.usage: recording, removing and querying where segments are used."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import segkit as sk
from segkit.analysis.usage import OBJECTIVES, ObjectiveUsage, UsageLog
from segkit.storage import UsageRecord, record_usage

T0 = datetime(2024, 6, 30, tzinfo=timezone.utc)
OBJECTIVES_TEXT = "personalization, communication, automation, analytics, segmentation"


class Clock:
    """A settable clock."""

    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def make_engine(clock: Clock | None = None) -> sk.Engine:
    """An engine with four profiles and the segments pro, free, pro_big (uses pro)."""
    engine = sk.Engine(sk.Schema(attributes={"plan": "string", "age": "int"}), clock=clock)
    engine.upsert_many(
        {
            "a": {"plan": "pro", "age": 30},
            "b": {"plan": "pro", "age": 50},
            "c": {"plan": "free", "age": 40},
            "d": {"plan": "free", "age": 20},
        }
    )
    engine.define("pro", 'plan = "pro"')
    engine.define("free", 'plan = "free"')
    engine.define("pro_big", 'in segment "pro" and age > 40')
    return engine


# --- record -------------------------------------------------------------------------------


def test_record_stores_the_use_at_the_engine_clock() -> None:
    """record() writes one UsageRecord to the storage, timestamped by the engine clock."""
    engine = make_engine(Clock())
    got = engine.usage.record("free", tool="email", objective="communication", ref="nl-7")
    assert got == UsageRecord("free", "email", "communication", "nl-7", at=T0)
    assert [v.value for v in engine.storage.list_usage()] == [got]


def test_record_replaces_the_same_segment_tool_and_ref() -> None:
    """Recording the same (segment, tool, ref) again replaces the objective and the time."""
    clock = Clock()
    engine = make_engine(clock)
    engine.usage.record("free", tool="crm", objective="analytics", ref="r")
    clock.now = T0 + timedelta(days=1)
    engine.usage.record("free", tool="crm", objective="automation", ref="r")
    assert engine.usage.where_used("free") == [
        UsageRecord("free", "crm", "automation", "r", at=T0 + timedelta(days=1))
    ]


def test_ref_defaults_to_empty() -> None:
    """The ref is optional."""
    engine = make_engine()
    assert engine.usage.record("free", tool="ads", objective="communication").ref == ""


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        (
            {"segment": "fre"},
            sk.SegmentError,
            "unknown segment 'fre' (did you mean 'free'?)",
        ),
        ({"segment": "zzz"}, sk.SegmentError, "unknown segment 'zzz'"),
        (
            {"objective": "automaton"},
            ValueError,
            f"unknown objective 'automaton' (did you mean 'automation'?): expected one of {OBJECTIVES_TEXT}",
        ),
        (
            {"objective": "billing"},
            ValueError,
            f"unknown objective 'billing': expected one of {OBJECTIVES_TEXT}",
        ),
        ({"objective": ""}, ValueError, "objective must not be empty"),
        ({"objective": 3}, TypeError, "objective must be a string, got int"),
        ({"tool": ""}, ValueError, "tool must not be empty"),
        ({"tool": None}, TypeError, "tool must be a string, got NoneType"),
        (
            {"tool": "segkit"},
            ValueError,
            "tool 'segkit' is reserved for segkit's own uses (rule references, splits, lookalike seeds)",
        ),
        ({"ref": 12}, TypeError, "ref must be a string, got int"),
    ],
)
def test_record_refuses_bad_input_and_writes_nothing(
    kwargs: dict[str, object], error: type[Exception], message: str
) -> None:
    """Each bad argument raises a precise error, and the storage holds no usage after it."""
    engine = make_engine()
    args: dict[str, object] = {
        "segment": "free",
        "tool": "crm",
        "objective": "analytics",
        "ref": "r",
    }
    args.update(kwargs)
    segment = args.pop("segment")
    with pytest.raises(error) as info:
        engine.usage.record(segment, **args)  # type: ignore[arg-type]
    assert str(info.value) == message
    assert engine.storage.list_usage() == []


# --- remove -------------------------------------------------------------------------------


def test_remove_deletes_the_record_and_returns_it() -> None:
    """remove() deletes exactly the named record and returns it."""
    engine = make_engine(Clock())
    kept = engine.usage.record("free", tool="crm", objective="analytics", ref="r1")
    gone = engine.usage.record("free", tool="crm", objective="automation", ref="r2")
    assert engine.usage.remove("free", tool="crm", ref="r2") == gone
    assert engine.usage.where_used("free") == [kept]


def test_remove_refuses_what_is_not_recorded() -> None:
    """Removing an unknown use raises KeyError naming it; nothing changes."""
    engine = make_engine()
    engine.usage.record("free", tool="crm", objective="analytics", ref="r1")
    with pytest.raises(KeyError) as info:
        engine.usage.remove("free", tool="crm", ref="r9")
    assert info.value.args[0] == "usage of 'free' by 'crm' ref 'r9' is not recorded"
    with pytest.raises(sk.SegmentError, match=r"^unknown segment 'fre' \(did you mean 'free'\?\)$"):
        engine.usage.remove("fre", tool="crm", ref="r1")
    assert len(engine.storage.list_usage()) == 1


def test_remove_refuses_a_rule_reference() -> None:
    """A rule reference cannot be removed: it goes with the referring rule."""
    engine = make_engine()
    with pytest.raises(ValueError, match="comes from the rule of segment") as info:
        engine.usage.remove("pro", tool="segkit", ref="segment:pro_big")
    assert str(info.value) == (
        "usage of 'pro' by 'segkit' ref 'segment:pro_big' comes from the rule of segment "
        "'pro_big': redefine or drop 'pro_big' to remove it"
    )
    assert [u.ref for u in engine.usage.where_used("pro")] == ["segment:pro_big"]


# --- rule references ------------------------------------------------------------------------


def test_rule_references_are_uses_under_segmentation() -> None:
    """A segment referred to by a rule is used by segkit for segmentation, since the
    referring segment's last change."""
    clock = Clock()
    engine = make_engine(clock)
    assert engine.usage.where_used("pro") == [
        UsageRecord("pro", "segkit", "segmentation", "segment:pro_big", at=T0)
    ]
    assert engine.usage.where_used("pro_big") == []
    assert engine.storage.list_usage() == []  # derived, never stored


def test_rule_references_follow_redefine_and_drop() -> None:
    """Redefining or dropping the referring segment changes the derived uses at once."""
    clock = Clock()
    engine = make_engine(clock)
    clock.now = T0 + timedelta(hours=5)
    engine.redefine("pro_big", 'in segment "free" and age > 30')
    assert engine.usage.where_used("pro") == []
    assert engine.usage.where_used("free") == [
        UsageRecord("free", "segkit", "segmentation", "segment:pro_big", at=clock.now)
    ]
    assert engine.usage.unused() == ["pro", "pro_big"]
    engine.drop("pro_big")
    assert engine.usage.unused() == ["free", "pro"]


def test_a_dropped_segment_takes_its_records_along() -> None:
    """drop() deletes the stored usage of the dropped segment."""
    engine = make_engine()
    engine.usage.record("free", tool="crm", objective="analytics", ref="r")
    engine.usage.record("pro", tool="crm", objective="analytics", ref="r")
    engine.drop("free")
    assert [v.value.segment for v in engine.storage.list_usage()] == ["pro"]
    with pytest.raises(sk.SegmentError):
        engine.usage.where_used("free")


# --- segkit's stored uses (splits, lookalikes) ----------------------------------------------


def test_split_and_lookalike_records_count_while_their_segment_exists() -> None:
    """A stored split or lookalike use counts while its static segment exists, then is stale."""
    engine = make_engine()
    engine.define_static("pro_control", ["a"])
    for ref in ("split:pro_control", "lookalike:pro_like"):
        record_usage(engine.storage, UsageRecord("pro", "segkit", "segmentation", ref, at=T0))
    assert [u.ref for u in engine.usage.where_used("pro")] == [
        "segment:pro_big",
        "split:pro_control",
    ]
    engine.define_static("pro_like", ["c"])
    assert [u.ref for u in engine.usage.where_used("pro")] == [
        "lookalike:pro_like",
        "segment:pro_big",
        "split:pro_control",
    ]
    engine.drop("pro_control")
    engine.redefine("pro_big", "age > 40")
    assert [u.ref for u in engine.usage.where_used("pro")] == ["lookalike:pro_like"]
    engine.drop("pro_like")
    assert "pro" in engine.usage.unused()


def test_a_stored_rule_reference_is_ignored() -> None:
    """Rule references come from the dependency graph only; a stored one is not believed."""
    engine = make_engine()
    record_usage(engine.storage, UsageRecord("free", "segkit", "segmentation", "segment:pro_big"))
    assert engine.usage.where_used("free") == []


# --- by_objective and unused ------------------------------------------------------------------


def test_by_objective_lists_every_objective_with_its_segments_and_reach() -> None:
    """Every objective is a key in order; each lists its segments, count and members' union."""
    engine = make_engine()
    engine.usage.record("free", tool="email", objective="communication", ref="n1")
    engine.usage.record("pro_big", tool="sms", objective="communication", ref="n2")
    engine.usage.record("free", tool="email", objective="communication", ref="n3")
    report = engine.usage.by_objective()
    assert list(report) == list(OBJECTIVES)
    assert report["communication"] == ObjectiveUsage(
        "communication", ("free", "pro_big"), engine.members("free")
    )
    assert report["communication"].count == 2
    assert sorted(report["communication"].members.keys()) == ["b", "c", "d"]
    assert report["segmentation"].segments == ("pro",)
    assert report["automation"].count == 0
    assert len(report["automation"].members) == 0
    assert repr(report["communication"]) == (
        "ObjectiveUsage('communication', count=2, segments=('free', 'pro_big'))"
    )
    assert report["communication"].to_dict() == {
        "objective": "communication",
        "count": 2,
        "segments": ["free", "pro_big"],
    }


def test_other_objectives_in_storage_follow_the_five() -> None:
    """An objective written to the storage by other means is listed after the five, sorted."""
    engine = make_engine()
    record_usage(engine.storage, UsageRecord("free", "billing", "invoicing", "x"))
    record_usage(engine.storage, UsageRecord("pro", "billing", "dunning", "x"))
    assert list(engine.usage.by_objective())[5:] == ["dunning", "invoicing"]


def test_unused_lists_segments_without_any_use() -> None:
    """unused() is every segment with neither a record nor a rule reference, sorted."""
    engine = make_engine()
    assert engine.usage.unused() == ["free", "pro_big"]
    engine.usage.record("pro_big", tool="ads", objective="personalization", ref="p")
    assert engine.usage.unused() == ["free"]


def test_uses_recorded_by_another_engine_are_seen() -> None:
    """Records live in the storage: an engine restored from it sees them."""
    storage = sk.InMemoryStorage()
    first = sk.Engine(sk.Schema(attributes={}), storage=storage)
    first.define_static("vip", [])
    first.usage.record("vip", tool="crm", objective="analytics", ref="r")
    second = sk.Engine.from_storage(sk.Schema(attributes={}), storage)
    assert [u.tool for u in second.usage.where_used("vip")] == ["crm"]


def test_usage_log_repr() -> None:
    """The log's repr counts segments, used segments and uses."""
    engine = make_engine()
    engine.usage.record("free", tool="ads", objective="personalization", ref="p")
    assert isinstance(engine.usage, UsageLog)
    assert repr(engine.usage) == "UsageLog(segments=3, used=2, records=2)"


# --- property: against a plain-Python model ---------------------------------------------------

NAMES = ("s0", "s1", "s2", "s3")
operations = st.lists(
    st.tuples(
        st.sampled_from(("record", "remove")),
        st.sampled_from(NAMES),
        st.sampled_from(("crm", "email")),
        st.sampled_from(OBJECTIVES[:4]),
        st.sampled_from(("", "r1", "r2")),
    ),
    max_size=25,
)


@settings(max_examples=60)
@given(
    ops=operations,
    refs=st.lists(st.tuples(st.sampled_from(NAMES), st.sampled_from(NAMES)), max_size=4),
)
def test_usage_matches_a_dict_model(
    ops: list[tuple[str, str, str, str, str]], refs: list[tuple[str, str]]
) -> None:
    """Any sequence of record/remove calls, plus rule references between segments, gives
    the answers of a dict keyed by (segment, tool, ref)."""
    engine = sk.Engine(sk.Schema(attributes={}))
    users: dict[str, set[str]] = {name: set() for name in NAMES}
    for name in NAMES:
        # s_i may refer to s_j with j < i only: the reference graph stays acyclic
        deps = sorted({b for a, b in refs if a == name and b < name})
        if deps:
            engine.define(name, " or ".join(f'in segment "{d}"' for d in deps))
            for dep in deps:
                users[dep].add(name)
        else:
            engine.define_static(name, [])
    model: dict[tuple[str, str, str], str] = {}
    for op, segment, tool, objective, ref in ops:
        if op == "record":
            engine.usage.record(segment, tool=tool, objective=objective, ref=ref)
            model[(segment, tool, ref)] = objective
        elif (segment, tool, ref) in model:
            engine.usage.remove(segment, tool=tool, ref=ref)
            del model[(segment, tool, ref)]
        else:
            with pytest.raises(KeyError):
                engine.usage.remove(segment, tool=tool, ref=ref)
    expected_uses: dict[str, list[tuple[str, str, str]]] = {name: [] for name in NAMES}
    for (segment, tool, ref), objective in model.items():
        expected_uses[segment].append((tool, ref, objective))
    for name, found in users.items():
        expected_uses[name] += [("segkit", f"segment:{u}", "segmentation") for u in found]
    for name in NAMES:
        got = [(u.tool, u.ref, u.objective) for u in engine.usage.where_used(name)]
        assert got == sorted(expected_uses[name])
    assert engine.usage.unused() == [n for n in NAMES if not expected_uses[n]]
    report = engine.usage.by_objective()
    for objective in OBJECTIVES:
        want = sorted({n for n in NAMES for _, _, o in expected_uses[n] if o == objective})
        assert report[objective].segments == tuple(want)
