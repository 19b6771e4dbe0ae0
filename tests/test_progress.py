"""Tests for segkit.progress and the ``progress=`` keyword of the long operations."""

from __future__ import annotations

import sys
import types
from datetime import datetime, timedelta, timezone
from typing import Any, ClassVar

import pytest

import segkit as sk
from segkit.analysis._funnel_options import use_backend
from segkit.progress import MAX_CALLS, Reporter, start, total_of, tqdm_callback

NOW = datetime(2024, 6, 30, 12, tzinfo=timezone.utc)
Calls = list[tuple[int, "int | None"]]


def recorder() -> tuple[Calls, Any]:
    """A list and a callback appending each (done, total) call to it."""
    calls: Calls = []
    return calls, lambda done, total: calls.append((done, total))


def run(items: Any, total: int | None) -> Calls:
    """The calls a reporter makes while ``items`` are iterated, then finished."""
    calls, callback = recorder()
    reporter = start(callback, total)
    for _ in reporter.iterate(items):
        pass
    reporter.finish()
    return calls


# --- the reporter ---------------------------------------------------------------------------


def test_known_total_reports_every_hundredth_and_once_at_the_end() -> None:
    """With a total of 1,000: calls at 10, 20, ..., 990, then the final (1000, 1000)."""
    calls = run(range(1000), 1000)
    assert calls == [(i, 1000) for i in range(10, 1000, 10)] + [(1000, 1000)]
    assert len(calls) == MAX_CALLS


def test_small_total_reports_each_item() -> None:
    """A total under 100 reports every item, the last one only as the final call."""
    assert run("abc", 3) == [(1, 3), (2, 3), (3, 3)]


def test_large_total_stays_within_the_budget() -> None:
    """A million items give at most 100 calls, the last one (total, total)."""
    calls = run(range(1_000_003), 1_000_003)
    assert len(calls) == 100
    assert calls[0] == (10_001, 1_000_003)
    assert calls[-2:] == [(990_099, 1_000_003), (1_000_003, 1_000_003)]


def test_unknown_total_doubles_its_interval() -> None:
    """Without a total: every 1,000 items, doubling after every 10 calls; final (n, n)."""
    calls = run(iter(range(35_500)), None)
    first = [(1000 * i, None) for i in range(1, 11)]
    second = [(10_000 + 2000 * i, None) for i in range(1, 11)]
    third = [(32_000, None)]
    assert calls == [*first, *second, *third, (35_500, 35_500)]


def test_empty_input_gets_the_final_call_only() -> None:
    """Nothing to do still ends with one call, (0, 0)."""
    assert run([], 0) == [(0, 0)]
    assert run(iter([]), None) == [(0, 0)]


def test_advance_by_many() -> None:
    """advance(n) reports once per interval crossed, at the count reached."""
    calls, callback = recorder()
    reporter = Reporter(callback, 200)
    reporter.advance(5)
    reporter.advance(1)
    reporter.advance(150)
    reporter.advance(44)
    reporter.finish()
    assert calls == [(5, 200), (6, 200), (156, 200), (200, 200)]


def test_off_costs_nothing() -> None:
    """None and False give the input back unchanged and never call anything."""
    items = [1, 2, 3]
    for progress in (None, False):
        reporter = start(progress, 3)
        assert reporter.iterate(items) is items
        reporter.advance(3)
        reporter.finish()


def test_bad_progress_is_a_type_error() -> None:
    """Anything else than a callable, True, False or None raises TypeError."""
    with pytest.raises(TypeError) as info:
        start(1, 3)
    assert str(info.value) == (
        "progress must be a callable (done, total), True, False or None; got 1 (int)"
    )


def test_total_of() -> None:
    """total_of is the length of sized inputs and None for iterators."""
    assert total_of({"a": 1}) == 1
    assert total_of(x for x in "ab") is None


# --- tqdm ----------------------------------------------------------------------------------


class FakeBar:
    """Records what tqdm is asked to do."""

    bars: ClassVar[list[FakeBar]] = []

    def __init__(self, *, total: int | None, desc: str | None, **options: Any) -> None:
        self.total = total
        self.desc = desc
        self.options = options
        self.n = 0
        self.log: list[Any] = []
        FakeBar.bars.append(self)

    def update(self, n: int) -> None:
        self.n += n
        self.log.append(("update", n, self.total))

    def close(self) -> None:
        self.log.append(("close", self.n, self.total))


@pytest.fixture
def fake_tqdm(monkeypatch: pytest.MonkeyPatch) -> list[FakeBar]:
    """A fake ``tqdm`` module whose bars record their calls."""
    FakeBar.bars = []
    module = types.ModuleType("tqdm")
    module.tqdm = FakeBar  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "tqdm", module)
    return FakeBar.bars


def test_progress_true_drives_a_tqdm_bar(fake_tqdm: list[FakeBar]) -> None:
    """progress=True opens one bar with the operation's label, updates it, closes it."""
    engine = sk.Engine(sk.Schema(attributes={"age": "int"}))
    engine.upsert_many([(f"c-{i}", {"age": i}) for i in range(3)], progress=True)
    [bar] = fake_tqdm
    assert (bar.desc, bar.options) == ("upsert_many", {})
    assert bar.log == [("update", 1, 3), ("update", 1, 3), ("update", 1, 3), ("close", 3, 3)]


def test_tqdm_bar_of_an_unknown_total_gets_it_at_the_end(fake_tqdm: list[FakeBar]) -> None:
    """A generator's bar has no total until the final call sets it."""
    engine = sk.Engine(sk.Schema(attributes={"age": "int"}))
    engine.upsert_many(((f"c-{i}", {"age": i}) for i in range(1500)), progress=True)
    [bar] = fake_tqdm
    assert bar.log == [("update", 1000, None), ("update", 500, 1500), ("close", 1500, 1500)]


def test_tqdm_callback_passes_options(fake_tqdm: list[FakeBar]) -> None:
    """tqdm_callback's keyword options go to tqdm."""
    callback = tqdm_callback("load", leave=False)
    callback(2, 4)
    assert fake_tqdm[0].options == {"leave": False}
    assert fake_tqdm[0].desc == "load"


def test_progress_true_without_tqdm_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without tqdm, progress=True raises ImportError naming the extra; nothing changes."""
    monkeypatch.setitem(sys.modules, "tqdm", None)
    engine = sk.Engine(sk.Schema(attributes={"age": "int"}))
    with pytest.raises(ImportError) as info:
        engine.upsert_many({"a": {"age": 1}}, progress=True)
    assert str(info.value) == "progress=True needs tqdm: pip install 'segkit[progress]'"
    assert len(engine) == 0


# --- the engine ----------------------------------------------------------------------------


def people(n: int) -> list[tuple[str, dict[str, Any]]]:
    """``n`` records c-0, c-1, ... with an age."""
    return [(f"c-{i}", {"age": 20 + i}) for i in range(n)]


@pytest.mark.parametrize("bulk", [False, True])
def test_upsert_many_reports_each_record(bulk: bool) -> None:
    """upsert_many reports the records checked, then once when applied (both paths)."""
    engine = sk.Engine(sk.Schema(attributes={"age": "int"}))
    engine.define("older", "age >= 22")
    if bulk:
        engine._bulk = 2  # the bulk path from two records on
    calls, callback = recorder()
    change = engine.upsert_many(people(4), progress=callback)
    assert calls == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert change.entered == {"older": ["c-2", "c-3"]}


def test_upsert_many_of_a_mapping_and_of_a_generator() -> None:
    """A mapping has a total; a generator has none until the final call."""
    engine = sk.Engine(sk.Schema(attributes={"age": "int"}))
    calls, callback = recorder()
    engine.upsert_many(dict(people(2)), progress=callback)
    assert calls == [(1, 2), (2, 2)]
    calls.clear()
    engine.upsert_many((r for r in people(3)), progress=callback)
    assert calls == [(3, 3)]


def test_a_bad_record_changes_nothing_and_gets_no_final_call() -> None:
    """A failing batch raises before anything changes; the callback never sees the end."""
    engine = sk.Engine(sk.Schema(attributes={"age": "int"}))
    calls, callback = recorder()
    records = [*people(3), ("bad", {"age": "old"}), *people(5)[3:]]
    with pytest.raises(sk.SchemaError):
        engine.upsert_many(records, progress=callback)
    assert calls == [(1, 6), (2, 6), (3, 6)]
    assert len(engine) == 0


def events(n: int) -> list[sk.Event]:
    """``n`` visits of c-0, c-1, ..., one hour apart, the last one an hour before NOW."""
    return [sk.Event(f"c-{i}", "visit", NOW - timedelta(hours=n - i)) for i in range(n)]


def test_track_many_reports_each_event() -> None:
    """track_many reports the events checked, then once when indexed."""
    engine = sk.Engine(sk.Schema(events={"visit": {}}), clock=lambda: NOW)
    engine.define("visitors", "did visit in last 2h")
    calls, callback = recorder()
    change = engine.track_many(events(3), progress=callback)
    assert calls == [(1, 3), (2, 3), (3, 3)]
    assert change.entered == {"visitors": ["c-2"]}


def test_a_bad_event_changes_nothing() -> None:
    """An unknown event type fails the whole batch; nothing is indexed."""
    engine = sk.Engine(sk.Schema(events={"visit": {}}), clock=lambda: NOW)
    calls, callback = recorder()
    batch = [*events(2), sk.Event("c-9", "vist", NOW)]
    with pytest.raises(sk.SchemaError):
        engine.track_many(batch, progress=callback)
    assert calls == [(1, 3), (2, 3)]
    assert (len(engine), engine.events("c-0")) == (0, [])


def test_refresh_reports_each_segment() -> None:
    """refresh counts the time-relative segments and the segments using them."""
    engine = sk.Engine(
        sk.Schema(attributes={"age": "int"}, events={"visit": {}}), clock=lambda: NOW
    )
    engine.track_many(events(3))
    engine.define("recent", "did visit in last 2h")
    engine.define("week", "did visit in last 7d")
    engine.define("recent_adults", 'in segment "recent" and age >= 18')
    engine.define("adults", "age >= 18")
    calls, callback = recorder()
    change = engine.refresh(now=NOW + timedelta(hours=1), progress=callback)
    assert calls == [(1, 3), (2, 3), (3, 3)]
    assert change.exited == {"recent": ["c-2"]}


def test_frames_pass_progress_on() -> None:
    """upsert_frame and track_frame report their rows."""
    pd = pytest.importorskip("pandas")
    engine = sk.Engine(sk.Schema(attributes={"age": "int"}, events={"visit": {}}, timezone="UTC"))
    calls, callback = recorder()
    engine.upsert_frame(pd.DataFrame({"key": ["a", "b"], "age": [1, 2]}), progress=callback)
    assert calls == [(1, 2), (2, 2)]
    calls.clear()
    frame = pd.DataFrame({"key": ["a"], "at": pd.to_datetime(["2024-06-01"])})
    engine.track_frame(frame, event="visit", progress=callback)
    assert calls == [(1, 1)]


# --- funnels -------------------------------------------------------------------------------


def journey_events(n: int) -> list[sk.Event]:
    """Entity e-i visits, and every other one buys a minute later."""
    out = []
    for i in range(n):
        out.append(sk.Event(f"e-{i}", "visit", NOW))
        if i % 2 == 0:
            out.append(sk.Event(f"e-{i}", "buy", NOW + timedelta(minutes=1)))
    return out


def test_funnel_run_reports_each_entity() -> None:
    """Funnel.run counts entity groups: every 2nd of 200, then (200, 200)."""
    calls, callback = recorder()
    with use_backend("python"):
        report = sk.Funnel(["visit", "buy"]).run(journey_events(200), progress=callback)
    assert calls == [(i, 200) for i in range(2, 200, 2)] + [(200, 200)]
    assert report.steps[1].count == 100


def test_vectorised_funnel_reports_at_the_end() -> None:
    """The numpy engine reports once, when done, with the number of entities."""
    pytest.importorskip("numpy")
    calls, callback = recorder()
    with use_backend("numpy"):
        report = sk.Funnel(["visit", "buy"]).run(journey_events(10), progress=callback)
    assert calls == [(10, 10)]
    assert report.steps[1].count == 5


def test_define_counts_the_profiles_checked_one_by_one() -> None:
    """define reports the profiles an event condition is checked on, total unknown."""
    engine = sk.Engine(
        sk.Schema(attributes={"age": "int"}, events={"visit": {}}), clock=lambda: NOW
    )
    engine.upsert_many({f"c-{i}": {"age": 20 + i} for i in range(5)})
    engine.track_many(events(3))  # c-0, c-1, c-2 visited
    calls, callback = recorder()
    members = engine.define("recent", "did visit in last 2h", progress=callback)
    assert members.keys() == ["c-2"]  # c-1 visited exactly 2h ago: the window excludes it
    assert calls == [(3, 3)]  # the three visitors; the others are decided as a group
    calls.clear()
    engine.define("older", "age >= 22", progress=callback)  # bitmaps only: nothing checked
    assert calls == [(0, 0)]
    calls.clear()
    with pytest.raises(sk.SegmentError):
        engine.define("older", "age >= 30", progress=callback)
    assert calls == []


def test_engine_funnel_passes_progress_on() -> None:
    """Engine.funnel reports the entities its funnel evaluates."""
    engine = sk.Engine(sk.Schema(events={"visit": {}, "buy": {}}), clock=lambda: NOW)
    engine.track_many(journey_events(4))
    calls, callback = recorder()
    with use_backend("python"):
        reports = engine.funnel(sk.Funnel(["visit", "buy"]), progress=callback)
    assert calls == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert reports["all"].steps[1].count == 2


def test_redefine_counts_like_define() -> None:
    engine = sk.Engine(sk.Schema(events={"visit": {}}), clock=lambda: NOW)
    engine.track_many(events(3))
    engine.define("recent", "did visit in last 2h")
    calls, callback = recorder()
    change = engine.redefine("recent", "did visit in last 3h", progress=callback)
    assert change.entered == {"recent": ["c-1"]}
    assert calls == [(3, 3)]
