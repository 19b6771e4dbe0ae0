"""engine.funnel equals Funnel.run over the same events, per segment."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import segkit as sk

T0 = datetime(2024, 6, 1, tzinfo=timezone.utc)
SCHEMA = sk.Schema(
    attributes={"plan": "string", "mql_at": "datetime"},
    events={"visit": {}, "signup": {}, "buy": {"amount": "float"}},
    timezone="UTC",
)
KEYS = [f"k{i}" for i in range(8)]


@st.composite
def logs(draw: st.DrawFn) -> list[sk.Event]:
    out = []
    for _ in range(draw(st.integers(0, 25))):
        name = draw(st.sampled_from(["visit", "signup", "buy"]))
        props = {"amount": draw(st.sampled_from([1.0, 10.0]))} if name == "buy" else {}
        at = T0 + timedelta(hours=draw(st.integers(0, 96)))
        out.append(sk.Event(draw(st.sampled_from(KEYS)), name, at, props))
    return out


FUNNELS = [
    sk.Funnel(["visit", "signup", "buy"], window=timedelta(days=2)),
    sk.Funnel(["visit", "buy"], window=timedelta(days=1), order="strict"),
    sk.Funnel(["visit", sk.Step("buy", where="amount >= 5")], order="any"),
]


@settings(max_examples=60, deadline=None)
@given(
    events=logs(),
    plans=st.lists(st.sampled_from(["pro", "free"]), min_size=8, max_size=8),
    which=st.integers(0, len(FUNNELS) - 1),
)
def test_engine_funnel_equals_run_per_segment(
    events: list[sk.Event], plans: list[str], which: int
) -> None:
    """Each segment's report equals Funnel.run restricted to the segment's members."""
    engine = sk.Engine(SCHEMA, clock=lambda: T0)
    engine.upsert_many({key: {"plan": plan} for key, plan in zip(KEYS, plans, strict=True)})
    engine.track_many(events)
    engine.define("pro", 'plan = "pro"')
    funnel = FUNNELS[which]
    reports = engine.funnel(funnel, ["pro"])
    assert set(reports) == {"all", "pro"}
    pro = set(engine.members("pro").keys())
    for name, keys in (("all", set(KEYS)), ("pro", pro)):
        expected = funnel.run([e for e in events if e.key in keys])
        got = reports[name]
        assert [s.count for s in got.steps] == [s.count for s in expected.steps], name
        for i in range(len(funnel.steps)):
            assert sorted(got.members(i).keys()) == sorted(expected.members(i).keys()), (name, i)


def test_engine_funnel_with_attribute_stage_and_errors() -> None:
    """Attribute stages read the profiles; unknown segments raise as elsewhere."""
    engine = sk.Engine(SCHEMA, clock=lambda: T0)
    engine.upsert_many({"a": {"mql_at": T0 + timedelta(hours=2)}, "b": {}})
    engine.track_many([sk.Event("a", "visit", T0), sk.Event("b", "visit", T0)])
    funnel = sk.Funnel(["visit", sk.Step.attribute("mql_at")], window=timedelta(days=1))
    report = engine.funnel(funnel)["all"]
    assert [s.count for s in report.steps] == [2, 1]
    assert report.members(1).keys() == ["a"]
    with pytest.raises(sk.SegmentError, match="unknown segment 'nope'"):
        engine.funnel(funnel, ["nope"])
    engine.define_static("all", ["a"])
    with pytest.raises(
        sk.SegmentError,
        match=r"^'all' names the report over every profile; rename that segment$",
    ):
        engine.funnel(funnel, ["all"])
