"""The change index is sound: a rule it leaves out keeps its verdict; a rule it
declares false is false."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

import segkit as sk
from segkit.compile.changes import ChangeIndex
from segkit.compile.predicate import _Compiler, _Ctx
from segkit.dsl import ast
from strategies import NOW, TEST_ATTRIBUTES, TEST_EVENTS, TEST_TZ, event_lists, exprs, profiles

SCHEMA = sk.Schema(attributes=TEST_ATTRIBUTES, events=TEST_EVENTS, timezone=TEST_TZ)


@settings(max_examples=400, deadline=None)
@given(
    rules=st.lists(exprs(max_depth=3), min_size=1, max_size=4),
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
