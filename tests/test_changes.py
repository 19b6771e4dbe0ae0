"""The change index is sound: a rule it leaves out keeps its verdict; a rule it
declares false is false; a verdict it decides equals a fresh evaluation."""

from __future__ import annotations

from typing import Any
from unittest import mock

from hypothesis import given, settings
from hypothesis import strategies as st

import segkit as sk
from segkit.compile import changes as changes_module
from segkit.compile.changes import MEMO, ChangeIndex, _Field
from segkit.compile.predicate import _Compiler, _Ctx
from segkit.dsl import ast
from segkit.dsl.printer import to_text
from strategies import (
    NOW,
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
    """Rules that are conjunctions of attribute leaves (the change index decides them
    with its gates unless a leaf is relative to the current time), a nested ``and``
    included now and then."""
    leaves = field_predicates(TEST_ATTRIBUTES)
    flat = st.lists(leaves, min_size=1, max_size=4).map(
        lambda xs: xs[0] if len(xs) == 1 else ast.And(tuple(xs))
    )
    nested = st.tuples(flat, leaves).map(lambda pair: ast.And(pair))
    return st.one_of(flat, flat, nested)


def validated(record: tuple[str, dict[str, Any]]) -> dict[str, Any]:
    """The record's attributes as stored: validated, without the unset ones."""
    return {k: v for k, v in SCHEMA.validate_profile("c-1", record[1]).items() if v is not None}


def values_of(field: str) -> st.SearchStrategy[Any]:
    """Stored values of attribute ``field``, now and then none."""
    known = profiles().map(lambda r: validated(r).get(field)).filter(lambda v: v is not None)
    return st.one_of(known, known, known, st.none())


@settings(max_examples=400, deadline=None)
@given(
    rules=st.lists(st.one_of(exprs(max_depth=3), conjunctions()), min_size=1, max_size=4),
    before=profiles(),
    after=profiles(),
    events=event_lists("c-1"),
    member_of=st.frozensets(st.sampled_from(["vip", "churn_risk", "beta"])),
)
def test_change_index_is_sound(
    rules: list[ast.Expr],
    before: tuple[str, dict[str, Any]],
    after: tuple[str, dict[str, Any]],
    events: list[sk.Event],
    member_of: frozenset[str],
) -> None:
    """For any rules and any change of a profile's attributes (one field at a time,
    as the Engine applies them), every rule outside the result keeps its verdict, and
    every rule the result marks False is false after the change."""
    resolve = lambda name, key: name in member_of  # noqa: E731
    compiler = _Compiler(SCHEMA, resolve)
    index = ChangeIndex(list(enumerate(rules)), compiler)
    fns = [compiler.compile(expr) for expr in rules]
    old = SCHEMA.validate_profile("c-1", {k: v for k, v in before[1].items() if v is not None})
    new = dict(old)
    ctx = _Ctx([SCHEMA.validate_event(e) for e in events], NOW, "c-1")
    for name, value in SCHEMA.validate_profile("c-1", after[1]).items():
        previous = new.get(name)
        if value is None:
            new.pop(name, None)
        else:
            new[name] = value
        verdicts = index.affected(name, previous, value, ctx)
        current = dict(new)
        state_before = {**current}
        if previous is None:
            state_before.pop(name, None)
        else:
            state_before[name] = previous
        for number, fn in enumerate(fns):
            was, now = fn(state_before, ctx), fn(current, ctx)
            if number not in verdicts:
                assert was == now, (str(sk.Rule(rules[number])), name, previous, value)
            elif verdicts[number] is False:
                assert now is False, (str(sk.Rule(rules[number])), name, previous, value)


def test_shared_leaves_are_evaluated_once_per_change() -> None:
    """Equal leaves of different rules are one entry; unrelated fields find nothing."""
    schema = sk.Schema(attributes={"age": "int", "plan": "string"})
    rules = [
        ("a", sk.parse("age >= 18 and plan = 'pro'").expr),
        ("b", sk.parse("age >= 18 or plan = 'free'").expr),
        ("c", sk.parse("not (age between 20 and 29)").expr),
    ]
    index = ChangeIndex(rules, _Compiler(schema, None))
    ctx = _Ctx((), NOW, "k")
    assert index.fields == {"age", "plan"}
    assert index.affected("age", 10, 17, ctx) == {}
    # 17 -> 18: `age >= 18` flips to true in a (conjunct) and b (inside an or)
    assert index.affected("age", 17, 18, ctx) == {"a": True, "b": True}
    # 30 -> 25: only c's leaf flips; its leaf sits under `not`, so c is evaluated
    assert index.affected("age", 30, 25, ctx) == {"c": True}
    # 18 -> 17: a's conjunct is now false (decided); b's leaf is inside an `or`
    assert index.affected("age", 18, 17, ctx) == {"a": False, "b": True}
    assert index.affected("plan", "pro", None, ctx) == {"a": False}  # b: `= "free"` stays false
    assert index.affected("email", "x", "y", ctx) == {}


def test_equality_and_list_leaves_flip_on_the_values_they_name() -> None:
    """``=``/``!=``/``in``/``not in`` flip when the old or the new value is one they
    name; list leaves when a named element enters or leaves the list."""
    schema = sk.Schema(attributes={"country": "string", "tags": "list[string]"})
    rules = [
        ("fr", sk.parse('country = "FR"').expr),
        ("not_de", sk.parse('country != "DE"').expr),
        ("benelux", sk.parse('country in ["BE", "NL", "LU"]').expr),
        ("outside", sk.parse('country not in ["US"]').expr),
        ("vip", sk.parse('tags has any ["vip"]').expr),
        ("no_beta", sk.parse('tags has none ["beta"]').expr),
    ]
    index = ChangeIndex(rules, _Compiler(schema, None))
    ctx = _Ctx((), NOW, "k")
    assert index.affected("country", "FR", "ES", ctx) == {"fr": False}
    assert index.affected("country", "ES", "FR", ctx) == {"fr": True}
    assert index.affected("country", "DE", "NL", ctx) == {"not_de": True, "benelux": True}
    assert index.affected("country", "BE", "US", ctx) == {"benelux": False, "outside": False}
    assert index.affected("country", "ES", "IT", ctx) == {}
    assert index.affected("tags", ("a", "vip"), ("a",), ctx) == {"vip": False}
    assert index.affected("tags", ("a",), ("a", "beta", "c"), ctx) == {"no_beta": False}
    assert index.affected("tags", ("a",), ("b", "c"), ctx) == {}


@settings(max_examples=300, deadline=None)
@given(
    rules=st.lists(st.one_of(conjunctions(), conjunctions(), exprs(max_depth=2)), max_size=6),
    steps=st.lists(profiles(), min_size=2, max_size=5),
    events=event_lists("c-1"),
    memo=st.sampled_from([1, 2, MEMO]),
)
def test_update_decides_like_a_fresh_evaluation(
    rules: list[ast.Expr],
    steps: list[tuple[str, dict[str, Any]]],
    events: list[sk.Event],
    memo: int,
) -> None:
    """Across a sequence of updates of one profile (several attributes at once, as
    the Engine applies them), ``update`` leaves out only rules that keep their verdict,
    decides others (``True``/``False``) exactly as a fresh evaluation does, and never
    asks to evaluate a conjunction of attribute leaves that are not time-relative;
    ``verdicts`` gives every such conjunction's verdict for the new values. Its
    answers do not depend on what its memos (tiny ones forget at once) remember, nor,
    when it does not read the context, on being given one."""
    with mock.patch.object(changes_module, "MEMO", memo):
        _check_update_decides_like_a_fresh_evaluation(rules, steps, events)


def _check_update_decides_like_a_fresh_evaluation(
    rules: list[ast.Expr], steps: list[tuple[str, dict[str, Any]]], events: list[sk.Event]
) -> None:
    resolve = lambda name, key: False  # noqa: E731
    compiler = _Compiler(SCHEMA, resolve)
    index = ChangeIndex(list(enumerate(rules)), compiler)
    fns = [compiler.compile(expr) for expr in rules]
    ctx = _Ctx([SCHEMA.validate_event(e) for e in events], NOW, "c-1")
    current = validated(steps[0])
    for step in steps[1:]:
        new = validated(step)
        changes = [
            (name, current.get(name), new.get(name))
            for name in sorted({*current, *new})
            if current.get(name) != new.get(name)
            or type(current.get(name)) is not type(new.get(name))
        ]
        verdicts = index.update(changes, new, ctx)
        assert index.update(changes, new, ctx) == verdicts  # again, from the memos
        if not index.reads_context:
            assert index.update(changes, new, None) == verdicts
        decided = index.verdicts(new)
        assert sorted(decided) == [n for n, expr in enumerate(rules) if _gated_conjunction(expr)]
        for number, fn in enumerate(fns):
            assert decided.get(number, fn(new, ctx)) == fn(new, ctx), str(sk.Rule(rules[number]))
            was, now = fn(current, ctx), fn(new, ctx)
            text = str(sk.Rule(rules[number]))
            if number not in verdicts:
                assert was == now, (text, changes)
            elif verdicts[number] is not None:
                assert verdicts[number] == now, (text, changes)
            elif _gated_conjunction(rules[number]):
                raise AssertionError(f"a conjunction was left to evaluate: {text}")
        current = new
    conjunctions = index._conjunctions
    for mask, named in index._decoded.items():  # each remembered mask names its bits
        assert named == tuple(c for bit, c in enumerate(conjunctions) if mask >> bit & 1)
    for names, gates in index._unchanged_memo.items():  # and each set of changed names
        readers = [c for c in conjunctions if any(n in _read_by(rules[c]) for n in names)]
        others = {n for c in readers for n in _read_by(rules[c])} - set(names)
        assert [gate.name for gate in gates] == sorted(others)


def _read_by(expr: ast.Expr) -> set[str]:
    """The attributes a conjunction of attribute leaves reads."""
    return {node.field for node in _flatten(expr)}


def _gated_conjunction(expr: ast.Expr) -> bool:
    nodes = list(expr.items) if isinstance(expr, ast.And) else [expr]
    while any(isinstance(node, ast.And) for node in nodes):
        nodes = [n for node in nodes for n in (node.items if isinstance(node, ast.And) else [node])]
    return all(
        isinstance(node, ast.FIELD_NODES) and not isinstance(node, (ast.InLast, ast.MoreThanAgo))
        for node in nodes
    )


@settings(max_examples=300, deadline=None)
@given(data=st.data(), field=st.sampled_from(sorted(TEST_ATTRIBUTES)))
def test_flips_are_exactly_the_leaves_whose_truth_changes(data: st.DataObject, field: str) -> None:
    """For leaves on one attribute and a change of its value, ``flips`` finds every leaf
    whose truth changed, with its new truth, and no other (including the flips it
    decides without evaluating: equality literals and thresholds)."""
    compiler = _Compiler(SCHEMA, None)
    nodes = data.draw(
        st.lists(field_predicates({field: TEST_ATTRIBUTES[field]}), min_size=1, max_size=8)
    )
    fld: _Field[int] = _Field(field)
    leaves = [fld.add_leaf(node, compiler) for node in nodes]
    ctx = _Ctx((), NOW, "c-1")
    for _ in range(3):
        old, new = data.draw(values_of(field)), data.draw(values_of(field))
        found = {id(leaf): now_true for leaf, now_true in fld.flips(old, new, ctx)}
        for node, leaf in zip(nodes, leaves, strict=True):
            was, now = leaf.fn({field: old}, ctx), leaf.fn({field: new}, ctx)
            if was == now:
                assert id(leaf) not in found, (to_text(node), old, new)
            else:
                assert found.get(id(leaf)) == now, (to_text(node), old, new)


@settings(max_examples=300, deadline=None)
@given(rules=st.lists(conjunctions(), min_size=1, max_size=6), data=st.data())
def test_gates_answer_like_their_leaves(rules: list[ast.Expr], data: st.DataObject) -> None:
    """A gate's bit for a conjunction is set exactly when every leaf the conjunction
    has on that attribute holds for the value (and always for the conjunctions not
    reading it), including answers remembered from earlier values."""
    compiler = _Compiler(SCHEMA, None)
    index: ChangeIndex[int] = ChangeIndex(list(enumerate(rules)), compiler)
    gated = [number for number, expr in enumerate(rules) if _gated_conjunction(expr)]
    assert index._conjunctions == gated
    ctx = _Ctx((), NOW, "c-1")
    for _ in range(4):
        for name, gate in index._gates.items():
            value = data.draw(values_of(name))
            passes = gate.passes(value)
            for bit, number in enumerate(gated):
                expr = rules[number]
                mine = [n for n in _flatten(expr) if n.field == name]
                expected = all(compiler.compile(n)({name: value}, ctx) for n in mine)
                assert bool(passes >> bit & 1) == expected, (str(sk.Rule(expr)), name, value)


def _flatten(expr: ast.Expr) -> list[Any]:
    if isinstance(expr, ast.And):
        return [n for item in expr.items for n in _flatten(item)]
    return [expr]


def test_conjunctions_are_decided_by_gates() -> None:
    """A change decides every conjunction of attribute leaves at once: only those
    whose verdict moved are reported, with the verdict; the other attributes they
    read are consulted only when a verdict may have become true."""
    schema = sk.Schema(attributes={"age": "int", "plan": "string", "tags": "list[string]"})
    rules = [
        ("adults", sk.parse("age >= 18").expr),
        ("pro_adults", sk.parse('plan = "pro" and age >= 18').expr),
        ("young_vip", sk.parse('age < 30 and tags has any ["vip"]').expr),
        ("any_pro", sk.parse('plan = "pro" or tags has any ["pro"]').expr),  # not a conjunction
    ]
    index = ChangeIndex(rules, _Compiler(schema, None))
    ctx = _Ctx((), NOW, "k")
    profile = {"age": 20, "plan": "free", "tags": ("vip",)}
    assert index.update([("age", 17, 20)], profile, ctx) == {"adults": True}
    profile = {"age": 20, "plan": "pro", "tags": ("vip",)}
    assert index.update([("plan", "free", "pro")], profile, ctx) == {
        "pro_adults": True,
        "any_pro": None,
    }
    profile = {"age": 35, "plan": "pro", "tags": ("vip",)}
    assert index.update([("age", 20, 35)], profile, ctx) == {"young_vip": False}
    profile = {"age": 12, "plan": "pro", "tags": ()}
    assert index.update([("age", 35, 12), ("tags", ("vip",), ())], profile, ctx) == {
        "adults": False,
        "pro_adults": False,
    }
    assert index.fields == {"age", "plan", "tags"}
    assert index.reads_context  # any_pro's leaves are evaluated with the context


def test_an_index_of_conjunctions_needs_no_context() -> None:
    """When every rule is a conjunction of attribute leaves, ``update`` reads no
    context (the Engine then builds none), and gives the same answers without one,
    for one change or several in any order."""
    schema = sk.Schema(attributes={"age": "int", "plan": "string", "country": "string"})
    rules = [
        ("adults", sk.parse("age >= 18").expr),
        ("pro_adults", sk.parse('plan = "pro" and age >= 18').expr),
        ("fr_pro", sk.parse('country = "FR" and plan = "pro"').expr),
    ]
    index = ChangeIndex(rules, _Compiler(schema, None))
    assert not index.reads_context
    profile = {"age": 20, "plan": "pro", "country": "FR"}
    assert index.update([("age", 17, 20)], profile, None) == {"adults": True, "pro_adults": True}
    profile = {"age": 20, "plan": "free", "country": "DE"}
    for changes in (
        [("plan", "pro", "free"), ("country", "FR", "DE")],
        [("country", "FR", "DE"), ("plan", "pro", "free")],
    ):
        assert index.update(changes, profile, None) == {"pro_adults": False, "fr_pro": False}
    profile = {"age": 20, "plan": "pro", "country": "FR"}
    assert index.update([("country", "DE", "FR"), ("plan", "free", "pro")], profile, None) == {
        "pro_adults": True,
        "fr_pro": True,
    }
    profile = {"age": 12, "plan": "pro", "country": "FR"}
    assert index.update([("plan", "free", "pro"), ("age", 20, 12)], profile, None) == {
        "adults": False,
        "fr_pro": True,
    }
    profile = {"age": 12, "plan": "pro", "country": "DE"}  # fr_pro's rise: vetoed by country
    assert index.update([("plan", "free", "pro"), ("age", 20, 12)], profile, None) == {
        "adults": False
    }


def test_gates_remember_answers_per_interval_and_forget_beyond_memo() -> None:
    """A gate over range and equality leaves remembers one answer per interval between
    their literals; a gate that cannot (here: ``contains``) remembers by value, and
    forgets everything once it holds MEMO values."""
    schema = sk.Schema(attributes={"age": "int", "email": "string"})
    compiler = _Compiler(schema, None)
    index = ChangeIndex(
        [
            ("a", sk.parse("age between 18 and 30 and email contains '@'").expr),
            ("b", sk.parse("age != 25").expr),
        ],
        compiler,
    )
    age, email = index._gates["age"], index._gates["email"]
    assert age.points == [18, 25, 30]
    assert [age.passes(v) for v in (17, 18, 19, 25, 30, 31)] == [0b10, 0b11, 0b11, 0b01, 0b11, 0b10]
    assert age.passes(None) == 0b00
    assert age.passes(20) == 0b11
    assert sorted(age.by_interval) == [0, 1, 2, 3, 5, 6]
    assert email.points is None
    for number in range(MEMO + 5):
        assert email.passes(f"{number}@x") == 0b11
    assert len(email.by_value) == 5
    assert email.passes("nobody") == 0b10
    floats = sk.Schema(attributes={"score": "float"})
    rules = [("c", sk.parse("score <= 1").expr)]
    score = ChangeIndex(rules, _Compiler(floats, None))._gates["score"]
    assert score.passes(float("nan")) == 0  # NaN is in no interval: evaluated, not kept
    assert not score.by_value
    assert not score.by_interval
    assert score.passes(0.5) == 1
