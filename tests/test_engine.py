"""The Engine: incremental memberships equal a full rebuild, the predicate and a set model."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    initialize,
    invariant,
    rule,
)

import segkit as sk
from reference import reference_eval
from segkit.dsl import ast
from strategies import (
    KEYS,
    NOW,
    SEGMENT_NAMES,
    TEST_ATTRIBUTES,
    TEST_EVENTS,
    TEST_TZ,
    event_lists,
    exprs,
    field_predicates,
    profiles,
)

SCHEMA = sk.Schema(attributes=TEST_ATTRIBUTES, events=TEST_EVENTS, timezone=TEST_TZ)


def conjunctions() -> st.SearchStrategy[ast.Expr]:
    """Rules that are conjunctions of attribute leaves: upserts decide them with the
    change index's gates, without evaluating them."""
    return st.lists(field_predicates(TEST_ATTRIBUTES), min_size=1, max_size=4).map(
        lambda xs: xs[0] if len(xs) == 1 else ast.And(tuple(xs))
    )


class EngineMachine(RuleBasedStateMachine):
    """Random upserts, events, deletes, merges and definitions against a plain model."""

    segments = Bundle("segments")

    def __init__(self) -> None:
        super().__init__()
        self.engine = sk.Engine(SCHEMA, clock=lambda: NOW)
        self.attrs: dict[str, dict[str, Any]] = {}
        self.events: dict[str, list[sk.Event]] = {}
        self.static: dict[str, set[str]] = {}
        self.rules: dict[str, ast.Expr] = {}
        self.uses: dict[str, set[str]] = {}  # segment -> the segments defined on top of it

    # --- the model --------------------------------------------------------------------------

    def _model_members(self, expr: ast.Expr) -> set[str]:
        return {
            key
            for key in self.attrs
            if reference_eval(
                expr,
                self.attrs[key],
                self.events.get(key, []),
                NOW,
                tz=TEST_TZ,
                key=key,
                segments=lambda name, k=key: k in self._segment_members(name),
            )
        }

    def _segment_members(self, name: str) -> set[str]:
        if name in self.static:
            return self.static[name]
        return self._model_members(self.rules[name])

    def _ensure(self, key: str) -> None:
        self.attrs.setdefault(key, {})

    def _all_members(self) -> dict[str, set[str]]:
        return {name: set(self._segment_members(name)) for name in [*self.rules, *self.static]}

    def _check_change(self, change: sk.MembershipChange, before: dict[str, set[str]]) -> None:
        """``change`` is exactly the model's net membership change since ``before``,
        segments and keys sorted."""
        after = self._all_members()
        entered = {n: sorted(after[n] - before[n]) for n in sorted(after) if after[n] - before[n]}
        exited = {n: sorted(before[n] - after[n]) for n in sorted(after) if before[n] - after[n]}
        assert change == sk.MembershipChange(entered, exited)
        assert list(change.entered) == list(entered)
        assert list(change.exited) == list(exited)

    # --- operations -------------------------------------------------------------------------

    @initialize(
        keys=st.lists(st.sampled_from(KEYS), unique=True, max_size=6),
        picks=st.lists(st.frozensets(st.integers(0, 5)), min_size=3, max_size=3),
    )
    def start(self, keys: list[str], picks: list[frozenset[int]]) -> None:
        """Create a few empty profiles and the static segments rules may refer to."""
        self.engine.upsert_many([(k, {}) for k in keys])
        for k in keys:
            self._ensure(k)
        for name, pick in zip(SEGMENT_NAMES, picks, strict=True):
            members = {keys[i] for i in pick if i < len(keys)}
            self.engine.define_static(name, sorted(members))
            self.static[name] = members

    @rule(target=segments, expr=exprs(max_depth=2), name=st.integers(0, 10**9))
    def define(self, expr: ast.Expr, name: int) -> str:
        """Define a dynamic segment from a random rule."""
        seg = f"s{name}"
        while seg in self.rules:
            seg += "x"
        self.engine.define(seg, sk.Rule(expr))
        self.rules[seg] = expr
        return seg

    @rule(target=segments, expr=conjunctions(), name=st.integers(0, 10**9))
    def define_conjunction(self, expr: ast.Expr, name: int) -> str:
        """Define a dynamic segment that is a conjunction of attribute leaves."""
        seg = f"c{name}"
        while seg in self.rules:
            seg += "x"
        self.engine.define(seg, sk.Rule(expr))
        self.rules[seg] = expr
        return seg

    @rule(seg=segments, expr=st.one_of(exprs(max_depth=2), conjunctions()))
    def redefine(self, seg: str, expr: ast.Expr) -> None:
        """Replace a segment's rule."""
        self.engine.redefine(seg, sk.Rule(expr))
        self.rules[seg] = expr
        for used in self.uses.values():  # the new rule refers to static segments only
            used.discard(seg)

    @rule(target=segments, base=segments, expr=exprs(max_depth=1), negate=st.booleans())
    def define_on_top(self, base: str, expr: ast.Expr, negate: bool) -> str:
        """Define a segment of a segment: ``[not] in segment "base" and expr``."""
        seg = f"{base}_on_top"
        while seg in self.rules:
            seg += "x"
        rule = ast.And((ast.InSegment(base, negated=negate), expr))
        self.engine.define(seg, sk.Rule(rule))
        self.rules[seg] = rule
        self.uses.setdefault(base, set()).add(seg)
        return seg

    @rule(seg=consumes(segments))
    def drop(self, seg: str) -> None:
        """Drop a segment; refused (SegmentError, nothing changes) while others use it."""
        users = sorted(self.uses.get(seg, set()))
        if users:
            with pytest.raises(sk.SegmentError, match="used by"):
                self.engine.drop(seg)
            return
        self.engine.drop(seg)
        del self.rules[seg]
        for used in self.uses.values():
            used.discard(seg)

    @rule(
        records=st.lists(profiles(), min_size=1, max_size=6),
        bulk=st.booleans(),
    )
    def upsert_batch(self, records: list[tuple[str, dict[str, Any]]], bulk: bool) -> None:
        """Upsert a batch, profile by profile or through the bulk (bitmap plan) path."""
        self.engine._bulk = 1 if bulk else 10**9
        before = self._all_members()
        change = self.engine.upsert_many(records)
        for key, values in records:
            stored = self.attrs.setdefault(key, {})
            for name, value in values.items():
                if value is None:
                    stored.pop(name, None)
                else:
                    stored[name] = value
        self._check_change(change, before)

    @rule(record=profiles())
    def upsert(self, record: tuple[str, dict[str, Any]]) -> None:
        """Merge attributes into a profile (None unsets)."""
        key, values = record
        before = self._all_members()
        change = self.engine.upsert(key, values)
        stored = self.attrs.setdefault(key, {})
        for name, value in values.items():
            if value is None:
                stored.pop(name, None)
            else:
                stored[name] = value
        self._check_change(change, before)

    @rule(data=st.data(), key=st.sampled_from(KEYS))
    def track(self, data: st.DataObject, key: str) -> None:
        """Record a batch of events for one profile."""
        batch = data.draw(event_lists(key))
        self.engine.track_many(batch)
        if batch:
            self._ensure(key)
            self.events.setdefault(key, []).extend(batch)

    @rule(key=st.sampled_from(KEYS))
    def delete(self, key: str) -> None:
        """Delete a profile (unknown keys raise KeyError and change nothing)."""
        if key not in self.attrs:
            with pytest.raises(KeyError):
                self.engine.delete(key)
            return
        self.engine.delete(key)
        del self.attrs[key]
        self.events.pop(key, None)
        for members in self.static.values():
            members.discard(key)

    @rule(anon=st.sampled_from(KEYS), into=st.sampled_from(KEYS))
    def merge(self, anon: str, into: str) -> None:
        """Merge an anonymous profile into a known one (or rename it)."""
        if anon not in self.attrs or anon == into:
            return
        self.engine.merge(anon, into=into)
        moved = [sk.Event(into, e.name, e.at, e.properties) for e in self.events.pop(anon, [])]
        old = self.attrs.pop(anon)
        target = self.attrs.setdefault(into, {})
        for name, value in old.items():
            target.setdefault(name, value)
        if moved:
            self.events.setdefault(into, []).extend(moved)
        for members in self.static.values():
            if anon in members:
                members.discard(anon)
                members.add(into)

    @rule(key=st.sampled_from(KEYS))
    def bad_batch_changes_nothing(self, key: str) -> None:
        """A batch with one bad record raises SchemaError and leaves everything as it was."""
        before = {s: self.engine.members(s).keys() for s in self.engine.segments}
        size = len(self.engine)
        with pytest.raises(sk.SchemaError):
            self.engine.upsert_many([(key, {"age": 3}), ("c-new", {"age": "not a number"})])
        with pytest.raises(sk.SchemaError):
            self.engine.track_many([sk.Event(key, "purchase", NOW, {"amount": "x"})])
        assert len(self.engine) == size
        assert {s: self.engine.members(s).keys() for s in self.engine.segments} == before
        assert ("c-new" in self.engine) is False

    # --- invariants -------------------------------------------------------------------------

    @invariant()
    def memberships_agree(self) -> None:
        """Incremental members == fresh plan == predicate filter == reference model."""
        for seg, expr in self.rules.items():
            incremental = set(self.engine.members(seg).keys())
            fresh = set(self.engine.query(sk.Rule(expr)).keys())
            model = self._model_members(expr)
            assert incremental == model, (str(sk.Rule(expr)), incremental ^ model)
            assert fresh == model, (str(sk.Rule(expr)), fresh ^ model)
        for name, members in self.static.items():
            assert set(self.engine.members(name).keys()) == members

    @invariant()
    def profiles_agree(self) -> None:
        """Stored attributes and events equal the model's."""
        assert len(self.engine) == len(self.attrs)
        for key, values in self.attrs.items():
            assert self.engine.get(key) == SCHEMA.validate_profile(key, values)
            assert sorted(self.engine.events(key), key=repr) == sorted(
                (SCHEMA.validate_event(e) for e in self.events.get(key, [])), key=repr
            )


TestEngineMachine = EngineMachine.TestCase
TestEngineMachine.settings = settings(max_examples=40, stateful_step_count=20, deadline=None)


# --- hand-written behaviour -----------------------------------------------------------------

SHOP = sk.Schema(
    attributes={"country": "string", "age": "int", "tags": "list[string]"},
    events={"purchase": {"amount": "float"}, "view": {}},
    timezone="UTC",
)
T0 = datetime(2024, 6, 30, 12, tzinfo=timezone.utc)


def make_engine() -> sk.Engine:
    engine = sk.Engine(SHOP, clock=lambda: T0)
    engine.upsert_many(
        [
            ("a", {"country": "FR", "age": 31}),
            ("b", {"country": "DE", "age": 45}),
            ("c", {"country": "FR", "age": 17, "tags": ["vip"]}),
        ]
    )
    return engine


def test_upsert_returns_membership_changes() -> None:
    """upsert reports exactly who entered and who left which segment."""
    engine = make_engine()
    engine.define("fr", 'country = "FR"')
    engine.define("adults", "age >= 18")
    change = engine.upsert("c", {"age": 18, "country": "DE"})
    assert change == sk.MembershipChange({"adults": ["c"]}, {"fr": ["c"]})
    assert engine.upsert("c", {"age": 18}) == sk.MembershipChange()
    assert not engine.upsert("c", {"age": 18})


def test_only_segments_whose_leaves_flip_are_reevaluated() -> None:
    """An update evaluates a rule only when one of its leaves on the changed attribute
    flips; a top-level conjunct flipping to false decides the rule without evaluating,
    and a rule that is a conjunction of attribute leaves is decided by its leaf bitmaps."""
    engine = make_engine()
    engine.define("fr_adults", 'country = "FR" and age >= 18')
    engine.define("fr_or_vip_adults", '(country = "FR" or tags has any ["vip"]) and age >= 18')
    calls = {"fr_adults": 0, "fr_or_vip_adults": 0}
    for name in calls:
        seg = engine._segments[name]
        original = seg.fn
        assert original is not None

        def counting(*args: Any, name: str = name, original: Any = original) -> bool:
            calls[name] += 1
            return bool(original(*args))

        seg.fn = counting
    assert not engine.upsert("a", {"age": 50})  # 31 -> 50: `age >= 18` holds for both
    assert not engine.upsert("a", {"tags": ["x"]})  # `tags has any ["vip"]` stays false
    assert calls == {"fr_adults": 0, "fr_or_vip_adults": 0}
    change = engine.upsert("c", {"age": 18})  # 17 -> 18 flips `age >= 18`
    assert calls == {"fr_adults": 0, "fr_or_vip_adults": 1}  # the conjunction: bitmaps
    assert change.entered == {"fr_adults": ["c"], "fr_or_vip_adults": ["c"]}
    change = engine.upsert("c", {"country": "DE"})  # a conjunct flips to false: decided
    assert calls == {"fr_adults": 0, "fr_or_vip_adults": 2}  # a leaf inside `or` flipped
    assert change == sk.MembershipChange({}, {"fr_adults": ["c"]})
    assert engine.members("fr_adults").keys() == ["a"]
    assert engine.members("fr_or_vip_adults").keys() == ["a", "c"]


def test_events_update_behavioural_segments() -> None:
    """track() moves a profile into a segment over its events."""
    engine = make_engine()
    engine.define("big_spenders", "sum(purchase.amount in last 30d) > 100")
    change = engine.track_many(
        [
            sk.Event("a", "purchase", T0 - timedelta(days=1), {"amount": 80.0}),
            sk.Event("a", "purchase", T0 - timedelta(days=2), {"amount": 30.0}),
        ]
    )
    assert change.entered == {"big_spenders": ["a"]}
    assert engine.members("big_spenders").keys() == ["a"]


def test_refresh_moves_time_relative_segments() -> None:
    """refresh(now) re-evaluates rules relative to the current time."""
    engine = make_engine()
    engine.track(sk.Event("a", "view", T0 - timedelta(days=5)))
    engine.define("recent", "did view in last 7d")
    assert engine.members("recent").keys() == ["a"]
    change = engine.refresh(now=T0 + timedelta(days=3))
    assert change == sk.MembershipChange({}, {"recent": ["a"]})


def test_segment_references_and_the_dependency_graph() -> None:
    """in segment works, cycles and unknown references are refused, users block drops."""
    engine = make_engine()
    engine.define("fr", 'country = "FR"')
    engine.define("fr_adults", 'in segment "fr" and age >= 18')
    assert engine.members("fr_adults").keys() == ["a"]
    change = engine.upsert("c", {"age": 20})
    assert change.entered == {"fr_adults": ["c"]}
    with pytest.raises(
        sk.SegmentError, match=r"^redefining 'fr' would create a cycle: fr -> fr_adults -> fr$"
    ):
        engine.redefine("fr", 'in segment "fr_adults"')
    with pytest.raises(sk.SegmentError, match="cannot drop 'fr': used by 'fr_adults'"):
        engine.drop("fr")
    with pytest.raises(sk.SegmentError, match="refers to unknown segment 'frr'"):
        engine.define("x", 'in segment "frr"')
    engine.redefine("fr", 'country = "DE"')
    assert engine.members("fr_adults").keys() == ["b"]


def test_bad_batches_change_nothing() -> None:
    """One bad record in a batch raises and leaves profiles and memberships unchanged."""
    engine = make_engine()
    engine.define("fr", 'country = "FR"')
    with pytest.raises(sk.SchemaError, match="profile 'z': attribute 'age' expects int"):
        engine.upsert_many([("d", {"country": "FR"}), ("z", {"age": "old"})])
    assert "d" not in engine
    assert engine.members("fr").keys() == ["a", "c"]
    with pytest.raises(sk.SchemaError):
        engine.track_many([sk.Event("d", "view", T0), sk.Event("d", "nope", T0)])
    assert "d" not in engine


def test_merge_moves_events_attributes_and_static_memberships() -> None:
    """merge() identifies an anonymous visitor: the known profile's values win."""
    engine = make_engine()
    engine.upsert("anon-1", {"country": "ES", "tags": ["beta"]})
    engine.track(sk.Event("anon-1", "purchase", T0, {"amount": 5.0}))
    engine.define_static("imported", ["anon-1"])
    engine.define("buyers", "did purchase")
    change = engine.merge("anon-1", into="a")
    assert change == sk.MembershipChange(
        {"buyers": ["a"], "imported": ["a"]}, {"buyers": ["anon-1"], "imported": ["anon-1"]}
    )
    assert engine.get("a") == {"country": "FR", "age": 31, "tags": ("beta",)}
    assert [e.key for e in engine.events("a")] == ["a"]
    assert "anon-1" not in engine


def test_explain_shows_each_clause() -> None:
    """explain() renders each clause's verdict and the values it read."""
    engine = make_engine()
    engine.define("fr_adults", 'country = "FR" and (age >= 18 or tags has any ["vip"])')
    assert str(engine.explain("fr_adults", "c")) == (
        'yes  country = "FR" and (age >= 18 or tags has any ["vip"])\n'
        "  yes  country = \"FR\"    [country = 'FR']\n"
        '  yes  age >= 18 or tags has any ["vip"]\n'
        "    no   age >= 18    [age = 17]\n"
        "    yes  tags has any [\"vip\"]    [tags = ('vip',)]"
    )


def test_unknown_names_give_clear_errors() -> None:
    """Unknown segments and profiles raise with a suggestion."""
    engine = make_engine()
    engine.define("french", 'country = "FR"')
    with pytest.raises(
        sk.SegmentError, match=r"^unknown segment 'frenh' \(did you mean 'french'\?\)$"
    ):
        engine.members("frenh")
    with pytest.raises(sk.SegmentError, match="already exists"):
        engine.define("french", "age > 1")
    with pytest.raises(KeyError, match="unknown profile 'zz'"):
        engine.delete("zz")
    with pytest.raises(sk.SegmentError, match="static segment 's': unknown profiles 'zz'"):
        engine.define_static("s", ["a", "zz"])


@st.composite
def populations(draw: st.DrawFn) -> tuple[dict[str, dict[str, Any]], dict[str, list[sk.Event]]]:
    records = draw(st.lists(profiles(), min_size=1, max_size=12, unique_by=lambda r: r[0]))
    attrs = dict(records)
    events = {key: draw(event_lists(key)) for key in attrs}
    return attrs, events


@settings(max_examples=300, deadline=None)
@given(
    expr=exprs(),
    population=populations(),
    picks=st.lists(st.frozensets(st.integers(0, 11)), min_size=3, max_size=3),
)
def test_bitmap_plan_equals_predicate_and_model(
    expr: ast.Expr,
    population: tuple[dict[str, dict[str, Any]], dict[str, list[sk.Event]]],
    picks: list[frozenset[int]],
) -> None:
    """For a random rule and population: plan members == predicate filter == reference model."""
    attrs, events = population
    keys = sorted(attrs)
    engine = sk.Engine(SCHEMA, clock=lambda: NOW)
    engine.upsert_many(attrs.items())
    engine.track_many(e for key in keys for e in events[key])
    static = {}
    for name, pick in zip(SEGMENT_NAMES, picks, strict=True):
        static[name] = {keys[i] for i in pick if i < len(keys)}
        engine.define_static(name, sorted(static[name]))
    rule = sk.Rule(expr)
    plan_members = set(engine.query(rule).keys())
    model = {
        key
        for key in keys
        if reference_eval(
            expr,
            attrs[key],
            events[key],
            NOW,
            tz=TEST_TZ,
            key=key,
            segments=lambda name, k=key: k in static[name],
        )
    }
    pred = sk.compile_predicate(rule, SCHEMA, segments=lambda name, k: k in static[name])
    by_predicate = {key for key in keys if pred(attrs[key], events[key], NOW, key=key)}
    assert plan_members == model, str(rule)
    assert by_predicate == model, str(rule)


def test_upserts_reevaluate_time_relative_rules_at_the_current_clock() -> None:
    """A change to an attribute a time-relative rule reads re-evaluates it at the
    current clock, even when the changed leaf has the same truth for old and new
    values now (the stored verdict may date from an earlier clock)."""
    t0 = datetime(2024, 6, 30, 12, tzinfo=timezone.utc)
    clock = [t0]
    schema = sk.Schema(attributes={"seen": "datetime", "age": "int"}, timezone="UTC")
    engine = sk.Engine(schema, clock=lambda: clock[0])
    engine.define("recent", "seen in last 1d")
    engine.define("lapsed", "seen more than 2d ago")
    engine.define("recent_adult", "seen in last 1d and age > 5")
    engine.upsert("a", {"seen": t0 - timedelta(hours=1), "age": 6})
    assert engine.members("recent").keys() == ["a"]
    assert engine.members("recent_adult").keys() == ["a"]
    clock[0] = t0 + timedelta(days=5)  # no refresh
    change = engine.upsert("a", {"seen": t0 - timedelta(days=10)})
    assert change == sk.MembershipChange(
        {"lapsed": ["a"]}, {"recent": ["a"], "recent_adult": ["a"]}
    )
    engine.upsert("b", {"seen": t0 + timedelta(days=5), "age": 6})
    clock[0] = t0 + timedelta(days=9)
    assert engine.upsert("b", {"age": 7}) == sk.MembershipChange({}, {"recent_adult": ["b"]})
    # segments whose inputs did not change catch up with the clock at refresh()
    assert "b" not in engine.members("lapsed")
    assert engine.refresh().entered == {"lapsed": ["b"]}
    for name in engine.segments:
        rule = engine.segment(name).rule
        assert rule is not None
        assert engine.members(name).keys() == engine.query(rule).keys(), name


def test_an_upsert_reports_its_segments_sorted_whatever_their_definition_order() -> None:
    """One upsert moving a known profile in and out of several segments (decided by
    gates and by evaluation alike) reports them sorted by name, exactly as a batch
    of one reports them."""
    for batch in (False, True):
        engine = make_engine()
        for name, text in [
            ("zz_adult", "age >= 18"),
            ("mm_fr", 'country = "FR"'),
            ("yy_de_or_old", 'country = "DE" or age > 100'),
            ("bb_minor", "age < 18"),
            ("aa_adult_de", 'country = "DE" and age >= 18'),
            ("cc_not_fr", 'not country = "FR"'),
        ]:
            engine.define(name, text)
        record = {"age": 30, "country": "DE"}
        change = engine.upsert_many([("c", record)]) if batch else engine.upsert("c", record)
        assert repr(change) == (
            "MembershipChange(entered={'aa_adult_de': ['c'], 'cc_not_fr': ['c'], "
            "'yy_de_or_old': ['c'], 'zz_adult': ['c']}, "
            "exited={'bb_minor': ['c'], 'mm_fr': ['c']})"
        )


def test_an_upsert_reads_the_clock_at_most_once_and_only_when_a_rule_needs_it() -> None:
    """The clock is read once per upsert when a time-relative rule must be evaluated,
    and not at all when every affected segment is decided without it."""
    t0 = datetime(2024, 6, 30, 12, tzinfo=timezone.utc)
    reads = []

    def clock() -> datetime:
        reads.append(1)
        return t0

    schema = sk.Schema(attributes={"seen": "datetime", "age": "int"}, timezone="UTC")
    engine = sk.Engine(schema, clock=clock)
    engine.define("adults", "age >= 18")
    engine.upsert("a", {"age": 17, "seen": t0})
    reads.clear()
    assert engine.upsert("a", {"age": 18}) == sk.MembershipChange({"adults": ["a"]}, {})
    assert reads == []
    engine.define("recent_adult", "seen in last 1d and age >= 18")
    reads.clear()
    assert engine.upsert("a", {"age": 17}) == sk.MembershipChange(
        {}, {"adults": ["a"], "recent_adult": ["a"]}
    )
    assert reads == [1]
