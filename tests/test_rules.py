"""Parser, printer, builder and dict form of the rule language."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given

import segkit as sk
from segkit.dsl import ast
from segkit.timeutil import Duration
from strategies import exprs

IDENTITY = Path(__file__).parent / "fixtures" / "identity.rules"
IDENTITY_LINES = [
    line
    for line in IDENTITY.read_text(encoding="utf-8").splitlines()
    if line.strip() and not line.startswith("#")
]


@pytest.mark.parametrize("line", IDENTITY_LINES)
def test_identity_fixture_prints_back(line: str) -> None:
    """Each canonical rule in the identity fixture prints back to exactly itself."""
    rule = sk.parse(line)
    assert str(rule) == line
    assert sk.parse(str(rule)) == rule
    assert sk.Rule.from_dict(json.loads(json.dumps(rule.to_dict()))) == rule


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("age==18", "age = 18"),
        ("  age   >=18   # adults only", "age >= 18"),
        ("country = 'FR'", 'country = "FR"'),
        ("(age = 1)", "age = 1"),
        ("((a = 1) and (b = 2))", "a = 1 and b = 2"),
        ("did x 3 times".replace("3 times", "= 3 time"), "did x = 3 times"),
        ("a matches /x/si", "a matches /x/is"),
        ("a = 1\nand\tb = 2", "a = 1 and b = 2"),
        ("x = @2024-01-01T10:00:00+00:00", "x = @2024-01-01T10:00:00Z"),
        ("x = 10.50", "x = 10.5"),
    ],
)
def test_non_canonical_spellings_normalise(text: str, canonical: str) -> None:
    """Alternative spellings parse to the same AST as their canonical form."""
    assert str(sk.parse(text)) == canonical


def test_precedence_table_not_and_or() -> None:
    """``not`` binds tighter than ``and``, which binds tighter than ``or``."""
    expr = sk.parse("not a = 1 and b = 2 or c = 3").expr
    assert isinstance(expr, ast.Or)
    first = expr.items[0]
    assert isinstance(first, ast.And)
    assert isinstance(first.items[0], ast.Not)


def test_runs_of_one_operator_are_flattened() -> None:
    """``a and b and c`` is one And node with three items."""
    expr = sk.parse("a = 1 and b = 2 and c = 3").expr
    assert isinstance(expr, ast.And)
    assert len(expr.items) == 3


def test_spans_locate_nodes_in_the_source() -> None:
    """Every node's span slices out its own source text."""
    text = 'country = "FR" and did purchase where amount > 10 in last 30d'
    expr = sk.parse(text).expr
    assert isinstance(expr, ast.And)
    assert [text[n.span.start : n.span.end] for n in expr.items] == [
        'country = "FR"',
        "did purchase where amount > 10 in last 30d",
    ]
    did = expr.items[1]
    assert isinstance(did, ast.Did)
    assert did.where is not None
    assert did.window is not None
    assert text[did.where.span.start : did.where.span.end] == "amount > 10"
    assert text[did.window.span.start : did.window.span.end] == "in last 30d"


def test_where_binds_a_single_predicate() -> None:
    """``did X where a and b`` puts ``b`` outside the event filter."""
    expr = sk.parse("did buy where amount > 1 and country = 'FR'").expr
    assert isinstance(expr, ast.And)
    assert isinstance(expr.items[0], ast.Did)
    assert expr.items[0].where == ast.Compare("amount", ">", 1)


def test_literal_types_are_distinguished() -> None:
    """``1``, ``1.0`` and ``true`` are different literals, so the rules differ."""
    assert sk.parse("a = 1") != sk.parse("a = 1.0")
    assert sk.parse("a = 1") != sk.parse("a = true")
    assert sk.parse("a = 1") == sk.parse("a = 1")


def test_rule_reports_what_it_reads() -> None:
    """attributes/events/segments/is_time_relative describe a rule's inputs."""
    rule = sk.parse(
        'age > 3 and (did buy where price > 2 or count(view in last 7d) > 1) and in segment "vip"'
    )
    assert rule.attributes == {"age"}
    assert rule.events == {"buy", "view"}
    assert rule.segments == {"vip"}
    assert rule.is_time_relative
    assert not sk.parse("did buy").is_time_relative
    assert sk.parse("signed_up more than 3d ago").is_time_relative
    assert sk.parse('bucket("s") in 0..9').uses_bucket


def test_builder_matches_parser_for_every_construct() -> None:
    """Each builder call produces the same AST as the equivalent text."""
    t0 = datetime(2024, 1, 1, tzinfo=timezone.utc)
    cases: list[tuple[sk.Rule, str]] = [
        (sk.attr("age") == 3, "age = 3"),
        (sk.attr("age") != 3, "age != 3"),
        (sk.attr("age") < 3, "age < 3"),
        (sk.attr("age") <= 3, "age <= 3"),
        (sk.attr("age") > 3, "age > 3"),
        (sk.attr("age") >= 3, "age >= 3"),
        (sk.attr("c").is_in(["a", "b"]), 'c in ["a", "b"]'),
        (sk.attr("c").not_in(["a"]), 'c not in ["a"]'),
        (sk.attr("age").between(1, 2), "age between 1 and 2"),
        (sk.attr("age").not_between(1, 2), "age not between 1 and 2"),
        (sk.attr("e").contains("x"), 'e contains "x"'),
        (sk.attr("e").icontains("x"), 'e icontains "x"'),
        (sk.attr("e").not_contains("x"), 'e not contains "x"'),
        (sk.attr("e").starts_with("x"), 'e starts_with "x"'),
        (sk.attr("e").istarts_with("x"), 'e istarts_with "x"'),
        (sk.attr("e").ends_with("x"), 'e ends_with "x"'),
        (sk.attr("e").iends_with("x"), 'e iends_with "x"'),
        (sk.attr("e").matches("^a", "si"), "e matches /^a/is"),
        (sk.attr("e").is_known(), "e is known"),
        (sk.attr("e").is_not_known(), "e is not known"),
        (sk.attr("t").has_any(["a"]), 't has any ["a"]'),
        (sk.attr("t").has_all(["a"]), 't has all ["a"]'),
        (sk.attr("t").has_none(["a"]), 't has none ["a"]'),
        (sk.attr("d").in_last("30d"), "d in last 30d"),
        (sk.attr("d").in_last(timedelta(hours=2)), "d in last 2h"),
        (sk.attr("d").not_in_last("30d"), "d not in last 30d"),
        (sk.attr("d").more_than_ago("1y"), "d more than 1y ago"),
        (sk.attr("d").before(date(2024, 1, 31)), "d before @2024-01-31"),
        (sk.attr("d").after(t0), "d after @2024-01-01T00:00:00Z"),
        (sk.in_segment("vip"), 'in segment "vip"'),
        (~sk.in_segment("vip"), 'not in segment "vip"'),
        (sk.bucket("s").between(0, 99), 'bucket("s") in 0..99'),
        (sk.did("x").to_rule(), "did x"),
        (
            sk.did("x").where("a > 1").times("<", 3).in_last("7d").to_rule(),
            "did x where a > 1 < 3 times in last 7d",
        ),
        (
            sk.did("x").between(date(2024, 1, 1), date(2024, 2, 1)).to_rule(),
            "did x between @2024-01-01 and @2024-02-01",
        ),
        (
            sk.did("a").then("b").where(sk.attr("p") == 1).within("1d").in_last("30d").to_rule(),
            "did a then b where p = 1 within 1d in last 30d",
        ),
        (sk.did("x").first_time().in_last("30d").to_rule(), "did x for the first time in last 30d"),
        (sk.sum_of("x", "a") > 1, "sum(x.a) > 1"),
        (sk.avg_of("x", "a").in_last("7d") >= 1.5, "avg(x.a in last 7d) >= 1.5"),
        (sk.min_of("x", "a").where("b = 1") < 0, "min(x.a where b = 1) < 0"),
        (sk.max_of("x", "a") == 2, "max(x.a) = 2"),
        (sk.count_of("x") != 2, "count(x) != 2"),
        (
            (sk.attr("a") == 1) & (sk.attr("b") == 2) | ~(sk.attr("c") == 3),
            "a = 1 and b = 2 or not c = 3",
        ),
        (sk.did("x") & (sk.attr("a") == 1), "did x and a = 1"),
        ((sk.attr("a") == 1) | sk.did("x"), "a = 1 or did x"),
        (~sk.did("x"), "not did x"),
    ]
    for built, text in cases:
        assert built == sk.parse(text), text
        assert str(built) == text


@pytest.mark.parametrize(
    ("make", "error", "message"),
    [
        (
            lambda: sk.did("x").within("1d").to_rule(),
            ValueError,
            ".within() applies to sequences: add .then(event) first",
        ),
        (lambda: sk.did("a").then("b").to_rule(), ValueError, "a sequence needs .within(duration)"),
        (
            lambda: sk.did("x").first_time().to_rule(),
            ValueError,
            "first_time() needs a window: .in_last(...) or .between(...)",
        ),
        (
            lambda: sk.did("x").times("~", 1),
            ValueError,
            "unknown operator '~' (expected one of =, !=, <, <=, >, >=)",
        ),
        (
            lambda: sk.did("x").times(">=", -1),
            ValueError,
            "a count must be a whole number >= 0, got -1",
        ),
        (
            lambda: sk.attr("a").is_in("FR"),
            TypeError,
            "expected a list of values, got a single string (wrap it in a list)",
        ),
        (
            lambda: sk.attr("a") == [1],
            TypeError,
            "rule values are str, int, float, bool, date or datetime; got list",
        ),
        (
            lambda: sk.attr("a") == float("nan"),
            ValueError,
            "rule values must be finite numbers, got nan",
        ),
        (
            lambda: sk.attr("a").matches("("),
            sk.RuleSyntaxError,
            "invalid rule dict: invalid regex: missing ), unterminated subpattern at position 0",
        ),
        (
            lambda: sk.bucket("s").between(5, 1),
            ValueError,
            "bucket range must satisfy 0 <= low <= high <= 9999",
        ),
        (
            lambda: sk.attr("d").in_last("5m"),
            ValueError,
            "ambiguous duration unit 'm': write 'min' for minutes or 'mo' for months",
        ),
        (
            lambda: sk.sum_of("x", "a") > "3",
            TypeError,
            "an aggregate compares with a number, got '3'",
        ),
    ],
)
def test_builder_rejects_bad_input(make: object, error: type[Exception], message: str) -> None:
    """The builder refuses incomplete or malformed rules with a clear message."""
    with pytest.raises(error) as info:
        make()  # type: ignore[operator]
    assert str(info.value) == message


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            {"segkit_rule": 2, "expr": {}},
            "invalid rule dict: format version 2 is newer than this segkit understands (1); upgrade segkit",
        ),
        ({"expr": {}}, "invalid rule dict: expected 'segkit_rule': 1, got None"),
        (
            {"segkit_rule": 1, "expr": {"type": "nope"}},
            "invalid rule dict at expr: unknown node type 'nope'",
        ),
        (
            {
                "segkit_rule": 1,
                "expr": {"type": "compare", "field": "a", "op": "=", "value": 1, "x": 2},
            },
            "invalid rule dict at expr: unknown keys ['x'] for 'compare'",
        ),
        (
            {"segkit_rule": 1, "expr": {"type": "compare", "field": "a", "op": "=~", "value": 1}},
            "invalid rule dict at expr: unknown operator '=~'",
        ),
        (
            {"segkit_rule": 1, "expr": {"type": "compare", "field": "a", "op": "="}},
            "invalid rule dict at expr: missing 'value' for 'compare'",
        ),
        (
            {"segkit_rule": 1, "expr": {"type": "compare", "field": None, "op": "=", "value": 1}},
            "invalid rule dict at expr.field: unsupported value None",
        ),
        (
            {
                "segkit_rule": 1,
                "expr": {"type": "compare", "field": "a", "op": "=", "value": float("inf")},
            },
            "invalid rule dict at expr.value: numbers must be finite, got inf",
        ),
        (
            {
                "segkit_rule": 1,
                "expr": {
                    "type": "compare",
                    "field": "a",
                    "op": "=",
                    "value": {"date": "2024-02-30"},
                },
            },
            "invalid rule dict at expr.value: invalid date '2024-02-30'",
        ),
        (
            {
                "segkit_rule": 1,
                "expr": {"type": "and", "items": [{"type": "is_known", "field": "a"}]},
            },
            "invalid rule dict at expr: 'and'/'or' need at least two items",
        ),
        (
            {
                "segkit_rule": 1,
                "expr": {"type": "not", "operand": {"type": "last_window", "duration": "3d"}},
            },
            "invalid rule dict at expr.operand: unexpected LastWindow value LastWindow(duration=Duration(amount=3, unit='d'))",
        ),
        (
            {"segkit_rule": 1, "expr": {"type": "in_last", "field": "a", "duration": "3m"}},
            "invalid rule dict at expr.duration: ambiguous duration unit 'm': write 'min' for minutes or 'mo' for months",
        ),
        (
            {
                "segkit_rule": 1,
                "expr": {"type": "matches", "field": "a", "pattern": "(", "flags": ""},
            },
            "invalid rule dict at expr: invalid regex: missing ), unterminated subpattern at position 0",
        ),
        (
            {"segkit_rule": 1, "expr": {"type": "bucket", "salt": "s", "low": 3, "high": 10000}},
            "invalid rule dict at expr: bucket range must satisfy 0 <= low <= high <= 9999",
        ),
        (
            {
                "segkit_rule": 1,
                "expr": {
                    "type": "aggregate",
                    "func": "sum",
                    "event": "e",
                    "prop": None,
                    "where": None,
                    "window": None,
                    "op": ">",
                    "value": 1,
                },
            },
            "invalid rule dict at expr: only count() takes no property",
        ),
    ],
)
def test_from_dict_rejects_malformed_input(data: dict[str, object], message: str) -> None:
    """A malformed dict raises RuleSyntaxError naming where it is wrong."""
    with pytest.raises(sk.RuleSyntaxError) as info:
        sk.Rule.from_dict(data)
    assert str(info.value) == message


def test_deep_builder_trees_are_bounded() -> None:
    """A tree built in Python deeper than the nesting limit is refused too."""
    expr: ast.Expr = ast.IsKnown("a")
    for _ in range(200):
        expr = ast.Not(expr)
    with pytest.raises(sk.RuleSyntaxError, match="rule nests deeper than 64 levels"):
        sk.Rule(expr)


def test_deep_dict_is_bounded() -> None:
    """A dict nested deeper than the limit is refused without RecursionError."""
    node: dict[str, object] = {"type": "is_known", "field": "a"}
    for _ in range(5_000):
        node = {"type": "not", "operand": node}
    with pytest.raises(sk.RuleSyntaxError, match="nests deeper than 64 levels"):
        sk.Rule.from_dict({"segkit_rule": 1, "expr": node})


def test_duration_parsing_and_coercion() -> None:
    """Durations parse from text and whole-second timedeltas, and print back."""
    assert Duration.parse("3mo") == Duration(3, "mo")
    assert str(Duration.coerce(timedelta(minutes=90))) == "90min"
    assert str(Duration.coerce(timedelta(seconds=61))) == "61s"
    with pytest.raises(ValueError, match="whole, non-negative number of seconds"):
        Duration.coerce(timedelta(milliseconds=5))


@given(exprs())
def test_random_asts_print_and_reparse_to_themselves(expr: ast.Expr) -> None:
    """For any AST, parse(str(rule)) == rule (the printer is canonical and complete)."""
    rule = sk.Rule(expr)
    text = str(rule)
    again = sk.parse(text)
    assert again == rule, text
    assert str(again) == text


@given(exprs())
def test_random_asts_round_trip_through_json(expr: ast.Expr) -> None:
    """For any AST, from_dict(json(to_dict(rule))) == rule."""
    rule = sk.Rule(expr)
    data = json.loads(json.dumps(rule.to_dict()))
    assert sk.Rule.from_dict(data) == rule
    assert data["text"] == str(rule)
