"""The SQL back-end: DuckDB runs ``to_sql`` with the Engine's answers; golden text per
dialect; parameters instead of interpolated values; exact error messages."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterable, Mapping
from datetime import date, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import segkit as sk
from reference import reference_eval
from segkit.compile.sql import DIALECTS, SqlQuery, to_sql, to_sql_ddl
from segkit.dsl import ast
from segkit.dsl.parser import compile_regex
from strategies import (
    NOW,
    SEGMENT_NAMES,
    TEST_ATTRIBUTES,
    TEST_EVENTS,
    TEST_TZ,
    datetimes,
    event_lists,
    exprs,
    profiles,
)

duckdb = pytest.importorskip("duckdb")

SCHEMA = sk.Schema(attributes=TEST_ATTRIBUTES, events=TEST_EVENTS, timezone=TEST_TZ)
UTC = timezone.utc


# --- loading data into DuckDB --------------------------------------------------------------------


class Tables:
    """An in-process DuckDB database with the tables of ``to_sql_ddl(schema)``."""

    def __init__(self, schema: sk.Schema, **names: Any) -> None:
        self.con = duckdb.connect()
        self.names = {"profiles": "profiles", "events": "events", "memberships": "memberships"}
        self.names.update(names)
        self.con.execute(to_sql_ddl(schema, **names))
        self.attributes = list(schema.attributes)
        self.props: list[str] = []
        for etype in schema.events.values():
            self.props += [p for p in etype.properties if p not in self.props]

    def table(self, kind: str) -> str:
        name = self.names[kind]
        parts = name if isinstance(name, tuple) else (name,)
        return ".".join('"' + part.replace('"', '""') + '"' for part in parts)

    def load(
        self,
        attributes: Mapping[str, Mapping[str, Any]],
        events: Iterable[sk.Event] = (),
        memberships: Mapping[str, Iterable[str]] | None = None,
    ) -> None:
        self.con.execute(
            "; ".join(f"DELETE FROM {self.table(k)}" for k in ("profiles", "events", "memberships"))
        )
        rows = [
            [key, *(_cell(values.get(a)) for a in self.attributes)]
            for key, values in attributes.items()
        ]
        self._insert("profiles", rows)
        rows = [
            [e.key, e.name, e.at, *(_cell(e.properties.get(p)) for p in self.props)] for e in events
        ]
        self._insert("events", rows)
        rows = [[seg, key] for seg, keys in (memberships or {}).items() for key in keys]
        self._insert("memberships", rows)

    def _insert(self, kind: str, rows: list[list[Any]]) -> None:
        if rows:
            row = "(" + ", ".join("?" * len(rows[0])) + ")"
            values = ", ".join([row] * len(rows))
            flat = [cell for r in rows for cell in r]
            self.con.execute(f"INSERT INTO {self.table(kind)} VALUES {values}", flat)

    def run(self, query: SqlQuery) -> set[str]:
        return {key for (key,) in self.con.execute(query.text, query.params).fetchall()}


def _cell(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


# --- the differential property ---------------------------------------------------------------------


@st.composite
def populations(draw: st.DrawFn) -> tuple[dict[str, dict[str, Any]], dict[str, list[sk.Event]]]:
    records = draw(st.lists(profiles(), min_size=1, max_size=12, unique_by=lambda r: r[0]))
    attrs = dict(records)
    return attrs, {key: draw(event_lists(key)) for key in attrs}


def _folds_case(expr: ast.Expr) -> bool:
    return any(isinstance(n, ast.StringOp) and n.case_insensitive for n in ast.iter_nodes(expr))


def _fold_safe(value: Any) -> Any:
    """Strings with a character whose lower() is not its casefold() ('ß') spelled with its
    casefold: the one documented difference of the SQL i-operators."""
    if isinstance(value, str):
        return "".join(c.casefold() if c.lower() != c.casefold() else c for c in value)
    if isinstance(value, tuple):
        return tuple(_fold_safe(v) for v in value)
    return value


_TABLES: dict[str, Tables] = {}


def _tables() -> Tables:
    if "test" not in _TABLES:
        _TABLES["test"] = Tables(SCHEMA)
    return _TABLES["test"]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rules=st.lists(st.one_of(exprs(), exprs(max_depth=1)), min_size=1, max_size=5),
    population=populations(),
    picks=st.lists(st.frozensets(st.integers(0, 11)), min_size=3, max_size=3),
    later=datetimes(),
)
def test_duckdb_equals_engine_and_reference_model(
    rules: list[ast.Expr],
    population: tuple[dict[str, dict[str, Any]], dict[str, list[sk.Event]]],
    picks: list[frozenset[int]],
    later: datetime,
) -> None:
    """For random rules and a random population, the DuckDB rows of ``to_sql`` are exactly
    the Engine's members and the reference model's, at NOW and at another ``now``."""
    attrs, events = population
    if any(_folds_case(expr) for expr in rules):
        attrs = {k: {n: _fold_safe(v) for n, v in a.items()} for k, a in attrs.items()}
        events = {
            k: [sk.Event(e.key, e.name, e.at, _fold_safe_props(e.properties)) for e in evs]
            for k, evs in events.items()
        }
    keys = sorted(attrs)
    engine = sk.Engine(SCHEMA, clock=lambda: NOW)
    engine.upsert_many(attrs.items())
    engine.track_many(e for key in keys for e in events[key])
    static: dict[str, set[str]] = {}
    for name, pick in zip(SEGMENT_NAMES, picks, strict=True):
        static[name] = {keys[i] for i in pick if i < len(keys)}
        engine.define_static(name, sorted(static[name]))
    tables = _tables()
    tables.load(
        {key: engine.get(key) or {} for key in keys},
        [e for key in keys for e in engine.events(key)],
        static,
    )
    for expr in rules:
        rule = sk.Rule(expr)
        query = to_sql(rule, SCHEMA, now=NOW)
        got = tables.run(query)
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
        assert got == set(engine.query(rule).keys()), str(rule)
        assert got == model, str(rule)
        at_later = tables.run(query.with_now(later))
        assert at_later == set(engine.query(rule, now=later).keys()), (str(rule), later)


def _fold_safe_props(props: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _fold_safe(v) for k, v in props.items()}


# --- regexes ------------------------------------------------------------------------------------

_RX_ATOMS = st.sampled_from(
    ["a", "b", "A", "\n", ".", ".", "[a-c]", "[^a]", r"\d", r"\w", r"\s", r"\S", r"\W",
     r"\D", r"[\s]", r"[\W]", "ß", "é", r"\.", "{", r"[\n-]", r"\x41", r"\n", "[]a]"]
)  # fmt: skip


@st.composite
def _patterns(draw: st.DrawFn, depth: int = 2) -> str:
    """Python regexes of the portable subset: atoms, groups, alternatives, quantifiers,
    and anchors at the start or the end of a branch (where they can match)."""
    items = [draw(st.sampled_from(["", "", "^", r"\A"]))]
    for _ in range(draw(st.integers(1, 3))):
        if depth and draw(st.integers(0, 4)) == 0:
            branches = [draw(_patterns(depth - 1)) for _ in range(draw(st.integers(1, 3)))]
            atom = "(" + "|".join(branches) + ")"
        else:
            atom = draw(_RX_ATOMS)
        if draw(st.integers(0, 2)) == 0:
            atom += draw(
                st.sampled_from(["*", "+", "?", "{2}", "{1,2}", "{,2}", "{2,}", "*?", "{,}"])
            )
        items.append(atom)
    items.append(draw(st.sampled_from(["", "$", "$", r"\Z"])))
    return "".join(items)


@settings(max_examples=300, deadline=None)
@given(
    pattern=_patterns(),
    flags=st.sampled_from(["", "i", "m", "s", "ims", "ms"]),
    texts=st.lists(st.text(alphabet="abAxé\n ß1.B_{", max_size=6), min_size=1, max_size=6),
)
def test_translated_regexes_match_like_python(pattern: str, flags: str, texts: list[str]) -> None:
    """A translated regex finds a match in DuckDB (RE2) exactly when ``re.search`` does."""
    try:
        python = compile_regex(pattern, flags)
    except ValueError:
        assume(False)
        raise
    schema = sk.Schema(attributes={"s": "string"})
    try:
        query = to_sql(sk.Rule(ast.Matches("s", pattern, flags)), schema)
    except sk.RuleError:
        assume(False)
        raise
    if "regex" not in _TABLES:
        _TABLES["regex"] = Tables(schema)
    tables = _TABLES["regex"]
    texts = [*texts, *(text + "\n" for text in texts)]
    tables.load({f"k{i}": {"s": text} for i, text in enumerate(texts)})
    expected = {f"k{i}" for i, text in enumerate(texts) if python.search(text)}
    assert tables.run(query) == expected, query.params


def test_every_ascii_character_is_a_literal_in_and_out_of_classes() -> None:
    """Each of the first 384 code points (and a few others), escaped in a pattern, matches
    itself and nothing else in DuckDB, alone, in a class and in a negated class."""
    schema = sk.Schema(attributes={"s": "string"})
    tables = Tables(schema)
    chars = [chr(c) for c in (*range(384), 0x2028, 0x3000, 0xFEFF, 0x1F600)]
    tables.load({f"k{i}": {"s": c} for i, c in enumerate(chars)})
    for i, c in enumerate(chars):
        for pattern, expected in (
            (re.escape(c), {f"k{i}"}),
            ("^[" + re.escape(c) + "]$", {f"k{i}"}),
            ("^[^" + re.escape(c) + "]$", {f"k{j}" for j in range(len(chars)) if j != i}),
        ):
            rule = sk.Rule(ast.Matches("s", pattern, "s"))
            assert tables.run(to_sql(rule, schema)) == expected, repr(pattern)


def test_regex_translations_per_dialect() -> None:
    """Flags, '.', anchors and classes are rewritten for each regex engine."""
    schema = sk.Schema(attributes={"s": "string"})

    def pattern(text: str, dialect: str) -> Any:
        return to_sql(text, schema, dialect).params["p1"]  # type: ignore[arg-type]

    assert pattern(r"s matches /^a.c$/", "duckdb") == r"^a.c(?:\n?$)"
    assert pattern(r"s matches /^a.c$/", "postgres") == r"^a[^\n]c(?:\n?$)"
    assert pattern(r"s matches /^a.c$/", "spark") == r"(?d)^a.c$"
    assert pattern(r"s matches /^a.c$/ims", "duckdb") == r"(?ims)^a.c$"
    assert pattern(r"s matches /^a.c$/ims", "postgres") == r"(?iw)^a.c$"
    assert pattern(r"s matches /^a.c$/ims", "spark") == r"(?diums)(?:^|(?<=\n))a.c$"
    assert pattern(r"s matches /\d+\s?[\w-]{2,}\Z/", "duckdb") == (
        r"\p{Nd}+[\t-\r\x{1C}- \x{85}\x{A0}\x{1680}\x{2000}-\x{200A}\x{2028}-\x{2029}"
        r"\x{202F}\x{205F}\x{3000}]?[\p{L}\p{N}_\-]{2,}\z"
    )
    assert pattern(r"s matches /[^\W]a{,3}?(?P<x>b|c)\u00e9/", "spark") == (
        r"(?d)[\p{L}\p{N}_]a{0,3}(?:b|c)é"
    )
    assert pattern(r"s matches /\S\t\x0b/", "postgres") == (
        r"[^\t-\r\u001C- \u0085\u00A0\u1680\u2000-\u200A\u2028-\u2029\u202F\u205F\u3000]\t\u000B"
    )


# --- a fixed population and hand-written rules ----------------------------------------------------

FIXED = sk.Schema(
    attributes={
        "country": "string",
        "email": "string",
        "age": "int",
        "ltv": "float",
        "is_customer": "bool",
        "signed_up": "date",
        "last_seen": "datetime",
        "tags": "list[string]",
        "scores": "list[int]",
    },
    events={
        "page_view": {"url": "string"},
        "purchase": {"amount": "float", "sku": "string"},
        "cart_abandoned": {},
        "signup": {},
    },
    timezone="Europe/Paris",
)
FIXED_NOW = datetime(2024, 6, 30, 12, 0, tzinfo=UTC)  # 14:00 in Paris

FIXED_PROFILES: dict[str, dict[str, Any]] = {
    "a": {
        "country": "FR",
        "email": "ann@example.com",
        "age": 31,
        "ltv": 120.5,
        "is_customer": True,
        "signed_up": date(2024, 6, 25),
        "last_seen": datetime(2024, 6, 30, 11, 0, tzinfo=UTC),
        "tags": ["vip", "beta"],
        "scores": [1, 2],
    },
    "b": {
        "country": "DE",
        "email": "BOB@EXAMPLE.COM",
        "age": 17,
        "ltv": 10.0,
        "is_customer": False,
        "signed_up": date(2023, 1, 10),
        "last_seen": datetime(2024, 1, 1, tzinfo=UTC),
        "tags": [],
        "scores": [3],
    },
    "c": {
        "country": "fr",
        "ltv": 99.5,
        "signed_up": date(2024, 6, 1),
        "last_seen": datetime(2024, 6, 29, 22, 30, tzinfo=UTC),  # 30 June, 00:30 in Paris
        "tags": ["churned"],
    },
    "d": {},
    "e": {
        "country": "BE",
        "email": "eve@corp.io",
        "age": 44,
        "ltv": 500.0,
        "is_customer": True,
        "signed_up": date(2022, 6, 30),
        "tags": ["beta", "staff"],
        "scores": [],
    },
    "f": {"country": "DE", "age": 50},
}


def _ev(key: str, name: str, at: str, **props: Any) -> sk.Event:
    return sk.Event(key, name, at, props)


FIXED_EVENTS = [
    _ev("a", "page_view", "2024-06-29T08:00:00Z", url="/pricing"),
    _ev("a", "purchase", "2024-06-01T10:00:00Z", amount=30.0, sku="PRO-1"),
    _ev("a", "purchase", "2024-06-10T10:00:00Z", amount=90.0, sku="BASIC"),
    _ev("a", "purchase", "2024-06-11T10:00:00Z"),
    *(_ev("a", "cart_abandoned", f"2024-06-{d}T10:00:00Z") for d in (10, 20, 25)),
    _ev("b", "page_view", "2024-05-01T08:00:00Z", url="/blog"),
    _ev("b", "purchase", "2024-06-30T09:00:00Z", amount=49.0),
    _ev("b", "signup", "2023-01-10T09:00:00Z"),
    _ev("c", "page_view", "2024-06-28T10:00:00Z", url="/pricing"),
    _ev("c", "purchase", "2024-06-29T09:00:00Z", amount=49.0),
    _ev("c", "cart_abandoned", "2024-06-29T10:00:00Z"),
    _ev("d", "purchase", "2024-06-25T10:00:00Z", amount=10.0),
    _ev("d", "purchase", "2024-06-25T10:00:00Z", amount=10.0),  # an identical second event
    _ev("e", "purchase", "2024-01-05T10:00:00Z", amount=5.0),
    _ev("e", "purchase", "2024-06-25T10:00:00Z", amount=10.0),
    _ev("e", "page_view", "2024-06-30T22:30:00Z", url="/pricing"),  # after now
]
FIXED_MEMBERSHIPS = {"vip": ["a", "e"]}

#: (rule, expected keys): every construct of the rule language, with its edge cases.
FIXED_RULES: list[tuple[str, set[str]]] = [
    ('country = "FR"', {"a"}),
    ('country != "FR"', {"b", "c", "e", "f"}),
    ('not country = "FR"', {"b", "c", "d", "e", "f"}),
    ('country in ["FR", "BE"]', {"a", "e"}),
    ('country not in ["FR", "BE"]', {"b", "c", "f"}),
    ('not (country in ["FR", "BE"])', {"b", "c", "d", "f"}),
    ("age between 29 and 44", {"a", "e"}),
    ("age not between 29 and 44", {"b", "f"}),
    ("age > 17.5", {"a", "e", "f"}),
    ("ltv >= 99.5", {"a", "c", "e"}),
    ("is_customer = true", {"a", "e"}),
    ("is_customer != true", {"b"}),
    ('country < "a"', {"a", "b", "e", "f"}),
    ('country between "BE" and "DE"', {"b", "e", "f"}),
    ('email contains "@example."', {"a"}),
    ('email iends_with "@EXAMPLE.com"', {"a", "b"}),
    ('email not icontains "example"', {"e"}),
    ('email istarts_with "bob"', {"b"}),
    ('not email starts_with "ann"', {"b", "c", "d", "e", "f"}),
    (r"email matches /@(example|corp)\.(com|io)$/i", {"a", "b", "e"}),
    ("email not matches /^[a-z]+@/", {"b"}),
    ("email is not known", {"c", "d", "f"}),
    ("tags is known", {"a", "b", "c", "e"}),
    ('tags has any ["vip", "staff"]', {"a", "e"}),
    ('tags has all ["beta", "vip"]', {"a"}),
    ('tags has none ["vip"]', {"b", "c", "e"}),
    ('not tags has none ["vip"]', {"a", "d", "f"}),
    ("scores has any [3, 4]", {"b"}),
    ("signed_up in last 7d", {"a"}),
    ("signed_up more than 1y ago", {"b", "e"}),
    ("signed_up before @2024-01-01", {"b", "e"}),
    ("signed_up not in last 1mo", {"b", "e"}),
    ("last_seen = @2024-06-30", {"a", "c"}),
    ("last_seen != @2024-06-30", {"b"}),
    ("last_seen < @2024-06-30", {"b"}),
    ("last_seen <= @2024-06-29", {"b"}),
    ("last_seen in [@2024-01-01, @2024-06-30]", {"a", "b", "c"}),
    ("last_seen between @2024-06-01 and @2024-06-29", set()),
    ("last_seen in last 2h", {"a"}),
    ("last_seen not in last 30d", {"b"}),
    ("last_seen more than 1d ago", {"b"}),
    ("last_seen after @2024-06-29T23:00:00Z", {"a"}),
    ("last_seen after @2024-06-29", {"a", "c"}),
    ('in segment "vip"', {"a", "e"}),
    ('not in segment "vip"', {"b", "c", "d", "f"}),
    ('bucket("exp-7") in 0..4999', {"d", "e"}),
    ('bucket("exp-7") in 5000..7910', {"b", "c", "f"}),
    ('did page_view where url = "/pricing"', {"a", "c", "e"}),
    ('did page_view where url = "/pricing" in last 7d', {"a", "c"}),
    ("did cart_abandoned >= 3 times in last 30d", {"a"}),
    ("did cart_abandoned < 2 times in last 30d", {"b", "c", "d", "e", "f"}),
    ("did purchase between @2024-06-01 and @2024-06-10", {"a"}),
    ("not did purchase in last 30d", {"f"}),
    ('did page_view where url = "/pricing" then purchase within 2d', {"c"}),
    ("did purchase then purchase within 1h", {"d"}),
    ("did purchase then purchase within 1d", {"a", "d"}),
    ("did purchase where amount > 20 then purchase where amount > 20 within 10d", {"a"}),
    ("did signup then page_view then purchase within 2y", {"b"}),
    ("did purchase for the first time in last 30d", {"a", "b", "c", "d"}),
    ("did purchase where amount < 20 for the first time in last 30d", {"d"}),
    ("sum(purchase.amount in last 90d) >= 120", {"a"}),
    ("sum(purchase.amount) = 0", {"f"}),
    ("avg(purchase.amount) = 60", {"a"}),
    ("avg(purchase.amount) != 60", {"b", "c", "d", "e"}),
    ("not avg(purchase.amount) = 60", {"b", "c", "d", "e", "f"}),
    ("count(purchase) = 3", {"a"}),
    ('max(purchase.amount where sku starts_with "PRO") < 50', {"a"}),
    ("min(purchase.amount) <= 5", {"e"}),
    ('count(page_view where url = "/pricing" in last 7d) >= 1', {"a", "c"}),
    ('country = "FR" and age >= 18 or in segment "vip"', {"a", "e"}),
    ('(country = "DE" or country = "BE") and not did purchase in last 90d', {"f"}),
]


@pytest.fixture(scope="module")
def fixed() -> tuple[Tables, sk.Engine]:
    engine = sk.Engine(FIXED, clock=lambda: FIXED_NOW)
    engine.upsert_many(FIXED_PROFILES.items())
    engine.track_many(FIXED_EVENTS)
    for name, keys in FIXED_MEMBERSHIPS.items():
        engine.define_static(name, keys)
    tables = Tables(FIXED)
    tables.load(
        {key: engine.get(key) or {} for key in FIXED_PROFILES},
        [e for key in FIXED_PROFILES for e in engine.events(key)],
        FIXED_MEMBERSHIPS,
    )
    return tables, engine


def test_the_fixed_rules_cover_every_construct() -> None:
    """The hand-written rules use every node type of the rule language."""
    used = {type(n) for text, _ in FIXED_RULES for n in ast.iter_nodes(sk.parse(text).expr)}
    every = set(ast.Expr.__args__)  # type: ignore[attr-defined]
    assert every - used == set()
    assert len(FIXED_RULES) >= 30


@pytest.mark.parametrize(("text", "expected"), FIXED_RULES, ids=[t for t, _ in FIXED_RULES])
def test_fixed_rule(fixed: tuple[Tables, sk.Engine], text: str, expected: set[str]) -> None:
    """DuckDB returns exactly the expected keys, which are the Engine's members too."""
    tables, engine = fixed
    assert set(engine.query(text).keys()) == expected
    assert tables.run(to_sql(text, FIXED, now=FIXED_NOW)) == expected


def test_calendar_within_across_a_repeated_hour() -> None:
    """`within 1d` from 26 October 02:30 Paris ends at 27 October 02:30, the *first* of
    the two (00:30 UTC), as in Python; the engine's own rule would pick the second."""
    schema = sk.Schema(events={"a": {}, "b": {}}, timezone="Europe/Paris")
    t1 = datetime(2024, 10, 26, 0, 30, tzinfo=UTC)  # 02:30 in Paris (UTC+2)
    events = [
        _ev("early", "a", t1.isoformat()),
        _ev("early", "b", "2024-10-27T00:30:00Z"),  # 02:30 summer time: on the deadline
        _ev("late", "a", t1.isoformat()),
        _ev("late", "b", "2024-10-27T01:00:00Z"),  # 02:00 winter time: after it
        _ev("gap", "a", "2024-03-30T01:30:00Z"),  # 02:30: tomorrow's 02:30 does not exist
        _ev("gap", "b", "2024-03-31T01:30:00Z"),  # 03:30 summer time = 02:30 read as UTC+1
        _ev("gap_late", "a", "2024-03-30T01:30:00Z"),
        _ev("gap_late", "b", "2024-03-31T01:30:01Z"),
    ]
    keys = ["early", "late", "gap", "gap_late"]
    engine = sk.Engine(schema, clock=lambda: FIXED_NOW)
    engine.upsert_many((k, {}) for k in keys)
    engine.track_many(events)
    tables = Tables(schema)
    tables.load({k: {} for k in keys}, events)
    rule = "did a then b within 1d"
    assert set(engine.query(rule).keys()) == {"early", "gap"}
    assert tables.run(to_sql(rule, schema)) == {"early", "gap"}


@pytest.mark.parametrize(
    ("zone", "rule", "expected"),
    [
        ("UTC", "did a then b within 1mo", {"k"}),
        ("UTC", "did a then b within 28d", set()),
        ("+05:30", "did a then b within 1mo", {"k"}),
        ("+05:30", "did a then b within 28d", set()),
    ],
)
def test_calendar_within_in_fixed_offset_zones(zone: str, rule: str, expected: set[str]) -> None:
    """Months are calendar months on the zone's wall clock: 31 Jan + 1mo is 29 Feb."""
    tz = UTC if zone == "UTC" else timezone(timedelta(hours=5, minutes=30))
    schema = sk.Schema(events={"a": {}, "b": {}}, timezone=tz)
    start = datetime(2024, 1, 31, 10, 0, tzinfo=tz)
    events = [
        sk.Event("k", "a", start, {}),
        sk.Event("k", "b", datetime(2024, 2, 29, 10, 0, tzinfo=tz), {}),
    ]
    engine = sk.Engine(schema, clock=lambda: FIXED_NOW)
    engine.upsert("k", {})
    engine.track_many(events)
    tables = Tables(schema)
    tables.load({"k": {}}, events)
    assert set(engine.query(rule).keys()) == expected
    assert tables.run(to_sql(rule, schema)) == expected


# --- golden SQL -----------------------------------------------------------------------------------

FILTER_RULE = (
    'country in ["DE", "FR", "GB"] and plan = "pro" and age between 25 and 40'
    " and ltv > 100 and signed_up after @2024-01-01"
)
GOLDEN_SCHEMA = sk.Schema(
    attributes={
        "country": "string",
        "plan": "string",
        "age": "int",
        "ltv": "float",
        "signed_up": "date",
        "email": "string",
        "tags": "list[string]",
    },
    events={"page_view": {"url": "string"}, "purchase": {"amount": "float"}},
    timezone="Europe/Paris",
)

GOLDEN: dict[tuple[str, str], str] = {
    ("duckdb", FILTER_RULE): """\
SELECT p."key"
FROM "profiles" AS p
WHERE p."country" IN ($p1, $p2, $p3) AND p."plan" = $p4 AND p."age" BETWEEN $p5 AND $p6 AND p."ltv" > $p7 AND p."signed_up" > $p8""",
    ("postgres", FILTER_RULE): """\
SELECT p."key"
FROM "profiles" AS p
WHERE p."country" IN (CAST(%(p1)s AS text), CAST(%(p2)s AS text), CAST(%(p3)s AS text)) AND p."plan" = CAST(%(p4)s AS text) AND p."age" BETWEEN CAST(%(p5)s AS bigint) AND CAST(%(p6)s AS bigint) AND p."ltv" > CAST(%(p7)s AS bigint) AND p."signed_up" > CAST(%(p8)s AS date)""",
    ("spark", FILTER_RULE): """\
SELECT p.`key`
FROM `profiles` AS p
WHERE p.`country` IN (:p1, :p2, :p3) AND p.`plan` = :p4 AND p.`age` BETWEEN :p5 AND :p6 AND p.`ltv` > :p7 AND p.`signed_up` > :p8""",
    ("duckdb", 'not (email icontains "x" or tags has none ["vip"])'): """\
SELECT p."key"
FROM "profiles" AS p
WHERE NOT (COALESCE(contains(lower(p."email"), lower($p1)), FALSE) OR COALESCE(NOT (list_has_any(p."tags", [$p2])), FALSE))""",
    ("postgres", 'not (email icontains "x" or tags has none ["vip"])'): """\
SELECT p."key"
FROM "profiles" AS p
WHERE NOT (COALESCE(strpos(lower(p."email"), lower(CAST(%(p1)s AS text))) > 0, FALSE) OR COALESCE(NOT (p."tags" && ARRAY[CAST(%(p2)s AS text)]), FALSE))""",
    ("spark", 'not (email icontains "x" or tags has none ["vip"])'): """\
SELECT p.`key`
FROM `profiles` AS p
WHERE NOT (COALESCE(contains(lower(p.`email`), lower(:p1)), FALSE) OR COALESCE(NOT (arrays_overlap(p.`tags`, array(:p2))), FALSE))""",
    ("duckdb", 'did page_view >= 3 times in last 30d and not in segment "vip"'): """\
SELECT p."key"
FROM "profiles" AS p
LEFT JOIN (SELECT e."key", count(*) AS n FROM "events" AS e WHERE e."name" = $p1 AND e."at" > $now_minus_30d AND e."at" <= $now GROUP BY e."key") AS q1 ON q1."key" = p."key"
LEFT JOIN (SELECT m."key" FROM "memberships" AS m WHERE m."segment" = $p3 GROUP BY m."key") AS q2 ON q2."key" = p."key"
WHERE COALESCE(q1.n, 0) >= $p2 AND q2."key" IS NULL""",
    ("spark", 'did page_view >= 3 times in last 30d and not in segment "vip"'): """\
SELECT p.`key`
FROM `profiles` AS p
LEFT JOIN (SELECT e.`key`, count(*) AS n FROM `events` AS e WHERE e.`name` = :p1 AND e.`at` > :now_minus_30d AND e.`at` <= :now GROUP BY e.`key`) AS q1 ON q1.`key` = p.`key`
LEFT JOIN (SELECT m.`key` FROM `memberships` AS m WHERE m.`segment` = :p3 GROUP BY m.`key`) AS q2 ON q2.`key` = p.`key`
WHERE COALESCE(q1.n, 0) >= :p2 AND q2.`key` IS NULL""",
    ("duckdb", 'bucket("exp-7") in 0..4999'): """\
SELECT p."key"
FROM "profiles" AS p
WHERE mod(CAST('0x' || substr(md5($p1 || p."key"), 1, 8) AS UBIGINT), 10000) BETWEEN $p2 AND $p3""",
    ("postgres", 'bucket("exp-7") in 0..4999'): """\
SELECT p."key"
FROM "profiles" AS p
WHERE mod(('x' || lpad(substr(md5(CAST(%(p1)s AS text) || p."key"), 1, 8), 16, '0'))::bit(64)::bigint, 10000) BETWEEN CAST(%(p2)s AS bigint) AND CAST(%(p3)s AS bigint)""",
    ("spark", 'bucket("exp-7") in 0..4999'): """\
SELECT p.`key`
FROM `profiles` AS p
WHERE pmod(CAST(conv(substr(md5(:p1 || p.`key`), 1, 8), 16, 10) AS BIGINT), 10000) BETWEEN :p2 AND :p3""",
    ("duckdb", "avg(purchase.amount where amount > 1 in last 1mo) >= 20"): """\
SELECT p."key"
FROM "profiles" AS p
LEFT JOIN (SELECT e."key", avg(e."amount") AS v FROM "events" AS e WHERE e."name" = $p1 AND e."at" > $now_minus_1mo AND e."at" <= $now AND e."amount" > $p2 GROUP BY e."key") AS q1 ON q1."key" = p."key"
WHERE q1.v >= $p3""",
    ("postgres", "did purchase then purchase within 1d"): """\
SELECT p."key"
FROM "profiles" AS p
LEFT JOIN (SELECT s1."key" FROM (SELECT e."key", e."at", row_number() OVER (PARTITION BY e."key", e."at" ORDER BY e."at") AS dup FROM "events" AS e WHERE e."name" = CAST(%(p1)s AS text)) AS s1 JOIN (SELECT e."key", e."at", row_number() OVER (PARTITION BY e."key", e."at" ORDER BY e."at") AS dup FROM "events" AS e WHERE e."name" = CAST(%(p1)s AS text)) AS s2 ON s2."key" = s1."key" AND s2."at" >= s1."at" AND (s1."at" <> s2."at" OR s1.dup <> s2.dup) WHERE s2."at" <= CASE WHEN timezone(CAST(%(p3)s AS text), timezone('UTC', ((timezone(CAST(%(p3)s AS text), s1."at") + INTERVAL '1' DAY * CAST(%(p2)s AS bigint)) - (timezone(CAST(%(p3)s AS text), (timezone(CAST(%(p3)s AS text), (timezone(CAST(%(p3)s AS text), s1."at") + INTERVAL '1' DAY * CAST(%(p2)s AS bigint))) - INTERVAL '3' HOUR)) - timezone('UTC', (timezone(CAST(%(p3)s AS text), (timezone(CAST(%(p3)s AS text), s1."at") + INTERVAL '1' DAY * CAST(%(p2)s AS bigint))) - INTERVAL '3' HOUR)))))) = (timezone(CAST(%(p3)s AS text), s1."at") + INTERVAL '1' DAY * CAST(%(p2)s AS bigint)) THEN timezone('UTC', ((timezone(CAST(%(p3)s AS text), s1."at") + INTERVAL '1' DAY * CAST(%(p2)s AS bigint)) - (timezone(CAST(%(p3)s AS text), (timezone(CAST(%(p3)s AS text), (timezone(CAST(%(p3)s AS text), s1."at") + INTERVAL '1' DAY * CAST(%(p2)s AS bigint))) - INTERVAL '3' HOUR)) - timezone('UTC', (timezone(CAST(%(p3)s AS text), (timezone(CAST(%(p3)s AS text), s1."at") + INTERVAL '1' DAY * CAST(%(p2)s AS bigint))) - INTERVAL '3' HOUR))))) ELSE timezone(CAST(%(p3)s AS text), (timezone(CAST(%(p3)s AS text), s1."at") + INTERVAL '1' DAY * CAST(%(p2)s AS bigint))) END GROUP BY s1."key") AS q1 ON q1."key" = p."key"
WHERE q1."key" IS NOT NULL""",
    ("spark", "did purchase then purchase within 1d"): """\
SELECT p.`key`
FROM `profiles` AS p
LEFT JOIN (SELECT s1.`key` FROM (SELECT e.`key`, e.`at`, row_number() OVER (PARTITION BY e.`key`, e.`at` ORDER BY e.`at`) AS dup FROM `events` AS e WHERE e.`name` = :p1) AS s1 JOIN (SELECT e.`key`, e.`at`, row_number() OVER (PARTITION BY e.`key`, e.`at` ORDER BY e.`at`) AS dup FROM `events` AS e WHERE e.`name` = :p1) AS s2 ON s2.`key` = s1.`key` AND s2.`at` >= s1.`at` AND (s1.`at` <> s2.`at` OR s1.dup <> s2.dup) WHERE s2.`at` <= to_utc_timestamp((from_utc_timestamp(s1.`at`, :p3) + INTERVAL '1' DAY * :p2), :p3) GROUP BY s1.`key`) AS q1 ON q1.`key` = p.`key`
WHERE q1.`key` IS NOT NULL""",
}


@pytest.mark.parametrize(("dialect", "text"), list(GOLDEN), ids=[f"{d}:{t}" for d, t in GOLDEN])
def test_golden_sql(dialect: str, text: str) -> None:
    """The exact SQL text for a few rules per dialect (Spark and PostgreSQL are checked by
    text only: they cannot run here)."""
    query = to_sql(text, GOLDEN_SCHEMA, dialect, now=FIXED_NOW)  # type: ignore[arg-type]
    assert query.text == GOLDEN[dialect, text]


def test_golden_parameters() -> None:
    """Parameters are the literals in first-appearance order, then the time bounds; a
    date literal against a datetime becomes the instant its local day starts."""
    query = to_sql(FILTER_RULE, GOLDEN_SCHEMA, now=FIXED_NOW)
    assert query.params == {
        "p1": "DE",
        "p2": "FR",
        "p3": "GB",
        "p4": "pro",
        "p5": 25,
        "p6": 40,
        "p7": 100,
        "p8": date(2024, 1, 1),
    }
    schema = sk.Schema(attributes={"seen": "datetime", "day": "date"}, timezone="Europe/Paris")
    query = to_sql("seen = @2024-03-31 and day in last 1mo", schema, now=FIXED_NOW)
    assert query.text.endswith(
        'WHERE (p."seen" >= $p1 AND p."seen" < $p2) AND (p."day" > $day_of_now_minus_1mo'
        ' AND p."day" <= $today)'
    )
    assert query.params == {
        "p1": datetime(2024, 3, 30, 23, 0, tzinfo=UTC),  # midnight in Paris, UTC+1
        "p2": datetime(2024, 3, 31, 22, 0, tzinfo=UTC),  # the next midnight, UTC+2
        "day_of_now_minus_1mo": date(2024, 5, 30),
        "today": date(2024, 6, 30),
    }


def test_sql_module_imports_no_database_driver() -> None:
    """``segkit.compile.sql`` produces text: importing it loads neither duckdb nor psycopg."""
    code = (
        "import sys, segkit.compile.sql; "
        "print(sorted(m for m in ('duckdb', 'psycopg', 'psycopg2', 'pyspark') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# --- injection ----------------------------------------------------------------------------------

NASTY = [
    "O'Brien",
    'say "hi"',
    "back\\slash",
    "x' OR '1'='1",
    "a; DROP TABLE profiles; --",
    "--",
    "%s %(p1)s $1 :p1 ?",
]


@pytest.mark.parametrize("dialect", DIALECTS)
def test_values_never_reach_the_text(dialect: str) -> None:
    """Quotes, backslashes, comments and semicolons in literals, regexes, salts, event and
    segment names are parameters: none of them appears in the SQL text."""
    schema = sk.Schema(
        attributes={"name": "string"}, events={"it's; --": {"v": "string"}}, timezone="UTC"
    )
    for value in NASTY:
        literal = value.replace("\\", "\\\\").replace('"', '\\"')
        rule = (
            f'name = "{literal}" or name contains "{literal}" or in segment "{literal}"'
            f' or bucket("{literal}") in 0..9 or did `it\'s; --` where v = "{literal}"'
        )
        query = to_sql(rule, schema, dialect)  # type: ignore[arg-type]
        assert value not in query.text
        assert value in query.params.values()
        assert "it's; --" in query.params.values()


def test_nasty_values_match_exactly_in_duckdb() -> None:
    """Each nasty value matches itself, and only itself, when run in DuckDB."""
    schema = sk.Schema(attributes={"name": "string"}, events={"e": {"v": "string"}})
    tables = Tables(schema)
    tables.load(
        {f"k{i}": {"name": v} for i, v in enumerate(NASTY)},
        [sk.Event(f"k{i}", "e", FIXED_NOW, {"v": v}) for i, v in enumerate(NASTY)],
    )
    for i, value in enumerate(NASTY):
        literal = value.replace("\\", "\\\\").replace('"', '\\"')
        assert tables.run(to_sql(f'name = "{literal}"', schema)) == {f"k{i}"}
        assert tables.run(to_sql(f'did e where v = "{literal}"', schema)) == {f"k{i}"}
    assert len(tables.con.execute("SELECT * FROM profiles").fetchall()) == len(NASTY)


WEIRD = 'we"ird; -- `name` %(x)s'


def test_identifiers_are_quoted() -> None:
    """Attribute, property and table names with quotes, backquotes, %, ; and -- are quoted
    for each dialect (doubling the quote character; PostgreSQL also doubles %)."""
    schema = sk.Schema(attributes={WEIRD: "int"}, events={"e": {WEIRD: "int"}})
    rule = sk.Rule(ast.And((ast.Compare(WEIRD, ">", 1), ast.Did("e", ast.Compare(WEIRD, "=", 2)))))
    duck = to_sql(rule, schema, profiles=("my schema", 'pro"files')).text
    assert 'p."we""ird; -- `name` %(x)s" > $p1' in duck
    assert 'FROM "my schema"."pro""files" AS p' in duck
    spark = to_sql(rule, schema, "spark").text
    assert 'p.`we"ird; -- ``name`` %(x)s` > :p1' in spark
    pg = to_sql(rule, schema, "postgres").text
    assert 'p."we""ird; -- `name` %%(x)s" > CAST(%(p1)s AS bigint)' in pg


def test_weird_identifiers_run_in_duckdb() -> None:
    """The quoted names of ``to_sql_ddl`` and ``to_sql`` agree in a real database."""
    schema = sk.Schema(attributes={WEIRD: "int"}, events={"e": {WEIRD: "int"}})
    tables = Tables(schema, profiles='pro"files; --', events="ev`ents", memberships="m%s")
    tables.load(
        {"a": {WEIRD: 5}, "b": {WEIRD: 0}},
        [sk.Event("a", "e", FIXED_NOW, {WEIRD: 2}), sk.Event("b", "e", FIXED_NOW, {WEIRD: 3})],
        {"s": ["b"]},
    )
    rule = sk.Rule(
        ast.Or(
            (
                ast.And((ast.Compare(WEIRD, ">", 1), ast.Did("e", ast.Compare(WEIRD, "=", 2)))),
                ast.InSegment("s"),
            )
        )
    )
    query = to_sql(rule, schema, profiles='pro"files; --', events="ev`ents", memberships="m%s")
    assert tables.run(query) == {"a", "b"}


# --- the query value -----------------------------------------------------------------------------


def test_sql_query_value() -> None:
    """A SqlQuery is a frozen value: str() is the text, with_now() recomputes only the time
    parameters, to_dict() and repr() show everything."""
    schema = sk.Schema(attributes={"seen": "datetime", "age": "int"}, timezone="Europe/Paris")
    query = to_sql("age > 3 and seen in last 1d", schema)
    assert query.needs_now
    assert query.now is None
    assert str(query) == query.text
    with pytest.raises(ValueError, match=r"^this rule is relative to the current time"):
        _ = query.params
    assert query.to_dict() == {"dialect": "duckdb", "text": query.text, "params": None, "now": None}
    assert repr(query) == f"SqlQuery(dialect='duckdb', text={query.text!r}, params=None)"
    bound = query.with_now(datetime(2024, 3, 31, 14, 0))  # naive: read in Paris
    assert bound.now == datetime(2024, 3, 31, 12, 0, tzinfo=UTC)
    assert bound.params == {
        "p1": 3,
        "now_minus_1d": datetime(2024, 3, 30, 13, 0, tzinfo=UTC),  # 23 hours: DST
        "now": datetime(2024, 3, 31, 12, 0, tzinfo=UTC),
    }
    assert bound.text == query.text
    assert bound == to_sql("age > 3 and seen in last 1d", schema, now=bound.now)
    assert bound != query
    with pytest.raises(AttributeError):
        bound.text = "x"  # type: ignore[misc]
    assert not to_sql("age > 3", schema).needs_now


def test_ddl_per_dialect() -> None:
    """``to_sql_ddl`` writes one column per attribute and per property name."""
    schema = sk.Schema(
        attributes={"c": "string", "n": "int", "x": "float", "b": "bool", "d": "date",
                    "t": "datetime", "ls": "list[string]", "li": "list[int]"},
        events={"e1": {"p": "string"}, "e2": {"p": "string", "q": "int"}},
    )  # fmt: skip
    assert to_sql_ddl(schema) == (
        'CREATE TABLE "profiles" ("key" VARCHAR NOT NULL, "c" VARCHAR, "n" BIGINT, "x" DOUBLE,'
        ' "b" BOOLEAN, "d" DATE, "t" TIMESTAMPTZ, "ls" VARCHAR[], "li" BIGINT[]);\n'
        'CREATE TABLE "events" ("key" VARCHAR NOT NULL, "name" VARCHAR NOT NULL,'
        ' "at" TIMESTAMPTZ NOT NULL, "p" VARCHAR, "q" BIGINT);\n'
        'CREATE TABLE "memberships" ("segment" VARCHAR NOT NULL, "key" VARCHAR NOT NULL);'
    )
    assert to_sql_ddl(schema, "spark", events=("db", "ev")) == (
        "CREATE TABLE `profiles` (`key` STRING, `c` STRING, `n` BIGINT, `x` DOUBLE,"
        " `b` BOOLEAN, `d` DATE, `t` TIMESTAMP, `ls` ARRAY<STRING>, `li` ARRAY<BIGINT>);\n"
        "CREATE TABLE `db`.`ev` (`key` STRING, `name` STRING, `at` TIMESTAMP, `p` STRING,"
        " `q` BIGINT);\n"
        "CREATE TABLE `memberships` (`segment` STRING, `key` STRING);"
    )


# --- errors -------------------------------------------------------------------------------------

STRING_SCHEMA = sk.Schema(attributes={"s": "string"})


@pytest.mark.parametrize(
    ("dialect", "rule", "message"),
    [
        ("duckdb", r"s matches /(a)\1/", "the regex uses a backreference ('\\1')"),
        ("duckdb", "s matches /(?P<x>a)(?P=x)/", "the regex uses a backreference ('(?P=name)')"),
        ("spark", "s matches /a(?=b)/", "the regex uses a lookahead ('(?=...)')"),
        ("duckdb", "s matches /(?<!a)b/", "the regex uses a lookbehind ('(?<!...)')"),
        ("postgres", r"s matches /\bx/", "the regex uses a word boundary ('\\b')"),
        ("duckdb", r"s matches /a\B/", "the regex uses a non-boundary ('\\B')"),
        ("duckdb", "s matches /(?>ab)/", "the regex uses an atomic group ('(?>...)')"),
        (
            "duckdb",
            "s matches /a*+/",
            "the regex uses a possessive quantifier ('*+', '++', '?+' or '}+')",
        ),
        (
            "duckdb",
            "s matches /(?i)a/",
            "the regex uses inline flags ('(?...)'); write them after the closing slash",
        ),
        ("duckdb", "s matches /(?#c)a/", "the regex uses a comment group ('(?#...)')"),
        (
            "duckdb",
            "s matches /(a)?(?(1)b|c)/",
            "the regex uses a conditional group ('(?(...)...)')",
        ),
        (
            "duckdb",
            r"s matches /a$\n/",
            "the regex uses '$' followed by more pattern without the m flag (Python's '$'"
            " also matches before a final newline); end the pattern with '$'",
        ),
        (
            "postgres",
            "s matches /(a$)*/",
            "the regex uses '$' followed by more pattern without the m flag (Python's '$'"
            " also matches before a final newline); end the pattern with '$'",
        ),
        (
            "postgres",
            r"s matches /\d/",
            "the regex uses '\\d' (PostgreSQL's classes follow the database locale, not"
            " Unicode); write a class such as [0-9]",
        ),
        (
            "postgres",
            r"s matches /[\w.]/",
            "the regex uses '\\w' (PostgreSQL's classes follow the database locale, not"
            " Unicode); write a class such as [0-9]",
        ),
        (
            "duckdb",
            r"s matches /[\Wa]/",
            "the regex uses '\\W' or '\\S' inside a character class with other members",
        ),
        (
            "duckdb",
            "s matches /a{1001}/",
            "the regex uses a repetition count above 1000 (RE2's limit)",
        ),
        (
            "postgres",
            "s matches /a{2,256}/",
            "the regex uses a repetition count above 255 (PostgreSQL's limit)",
        ),
        (
            "duckdb",
            's icontains "straße"',
            "'icontains' compares lower() forms in SQL, which differ from Python's casefold()"
            " for 'ß'; use a literal without it",
        ),
        (
            "spark",
            's not iends_with "İ"',
            "'iends_with' compares lower() forms in SQL, which differ from Python's casefold()"
            " for 'İ'; use a literal without it",
        ),
    ],
)
def test_untranslatable_constructs(dialect: str, rule: str, message: str) -> None:
    """What a dialect cannot express is a RuleError naming it, pointing at the condition."""
    with pytest.raises(sk.RuleError) as info:
        to_sql(rule, STRING_SCHEMA, dialect)  # type: ignore[arg-type]
    assert info.value.message == f"cannot translate to {dialect} SQL: {message}"
    assert (info.value.line, info.value.column) == (1, 1)
    assert type(info.value) is sk.RuleError


def test_the_same_regexes_translate_where_the_engine_can() -> None:
    """Spark's Java regexes keep '$' anywhere and \\d; DuckDB allows 1000 repetitions."""
    assert to_sql(r"s matches /a$\n/", STRING_SCHEMA, "spark").params == {"p1": "(?d)a$\\n"}
    assert to_sql(r"s matches /\d/", STRING_SCHEMA, "spark").params == {"p1": "(?d)\\p{Nd}"}
    assert to_sql("s matches /a{1000}/", STRING_SCHEMA).params == {"p1": "a{1000}"}
    assert to_sql('s icontains "STRASSE"', STRING_SCHEMA).params == {"p1": "STRASSE"}


def test_other_errors() -> None:
    """Bad arguments and schemas that do not fit the table layout have exact messages."""
    with pytest.raises(
        ValueError,
        match=re.escape("unknown SQL dialect 'mysql' (expected 'duckdb', 'spark' or 'postgres')"),
    ):
        to_sql("s = 'a'", STRING_SCHEMA, "mysql")  # type: ignore[arg-type]
    with pytest.raises(
        ValueError, match=re.escape("the profiles table name must be a non-empty string, got ''")
    ):
        to_sql("s = 'a'", STRING_SCHEMA, profiles="")
    with pytest.raises(
        ValueError,
        match=re.escape(
            "the events table name 'a\\x00' contains a NUL character, which SQL cannot quote"
        ),
    ):
        to_sql("s = 'a'", STRING_SCHEMA, events="a\x00")
    with pytest.raises(sk.UnknownAttributeError, match="unknown attribute 'x'"):
        to_sql("x = 1", STRING_SCHEMA)
    with pytest.raises(
        ValueError,
        match=re.escape(
            "naive now 2024-01-01T00:00:00: give it a time zone, or declare Schema(timezone=...)"
        ),
    ):
        to_sql("s = 'a'", STRING_SCHEMA, now=datetime(2024, 1, 1))
    keyed = sk.Schema(attributes={"key": "string"})
    with pytest.raises(sk.SchemaError) as schema_error:
        to_sql('key = "a"', keyed)
    assert schema_error.value.message == (
        "attribute 'key' has the name of the profiles table's key column; the SQL back-end"
        " cannot read it"
    )
    with pytest.raises(
        sk.SchemaError, match=r"^attribute 'key' has the name of the profiles table's key column$"
    ):
        to_sql_ddl(keyed)
    clash = sk.Schema(events={"a": {"v": "int"}, "b": {"v": "string"}, "c": {"at": "int"}})
    with pytest.raises(sk.SchemaError) as schema_error:
        to_sql("did a where v = 1", clash)
    assert schema_error.value.message == (
        "property 'v' is int in event 'a' but string in event 'b'; the events table has one"
        " column per property name"
    )
    assert to_sql("did b", clash).params == {"p1": "b"}  # nothing reads v: no conflict
    with pytest.raises(sk.SchemaError) as schema_error:
        to_sql("did c where at > 1", clash)
    assert schema_error.value.message == (
        "property 'at' of event 'c' has the name of the events table's 'at' column;"
        " the SQL back-end cannot read it"
    )
    with pytest.raises(
        sk.SchemaError, match=re.escape("property 'v' is int in event 'a' but string in event 'b'")
    ):
        to_sql_ddl(clash)


def test_calendar_within_needs_a_named_zone() -> None:
    """A zone without an IANA name cannot be named in SQL; a fixed offset needs none."""
    from dateutil import tz as dateutil_tz

    odd = dateutil_tz.tzstr("EST5EDT")
    schema = sk.Schema(events={"a": {}}, timezone=odd)
    with pytest.raises(sk.RuleError) as info:
        to_sql("did a then a within 1d", schema)
    assert info.value.message == (
        "cannot translate to duckdb SQL: 'within 1d' needs the schema's time zone by name;"
        " declare Schema(timezone=...) with an IANA name such as 'Europe/Paris'"
    )
    assert to_sql("did a then a within 24h", schema).params == {"p1": "a", "p2": 86400}


def test_local_dates_in_a_zone_that_moves_the_clock_back_over_midnight() -> None:
    """A date literal cannot become one range of instants when the clock goes back across
    its midnight: a clear error instead of wrong members."""
    from datetime import tzinfo

    class BackAtMidnight(tzinfo):
        """UTC+1, then UTC-1 from 2024-06-01 00:30 local (back to 2024-05-31 22:30)."""

        switch = datetime(2024, 5, 31, 23, 30)  # in UTC

        def utcoffset(self, dt: datetime | None) -> timedelta:
            if dt is None:
                return timedelta(hours=1)
            naive = dt.replace(tzinfo=None)
            later = naive >= datetime(2024, 6, 1, 0, 30) or (
                naive >= datetime(2024, 5, 31, 22, 30) and dt.fold == 1
            )
            return timedelta(hours=-1) if later else timedelta(hours=1)

        def fromutc(self, dt: datetime) -> datetime:
            naive = dt.replace(tzinfo=None)
            offset = timedelta(hours=1) if naive < self.switch else timedelta(hours=-1)
            return (naive + offset).replace(tzinfo=self, fold=int(naive >= self.switch))

        def dst(self, dt: datetime | None) -> timedelta:
            return timedelta(0)

        def tzname(self, dt: datetime | None) -> str:
            return "X"

    schema = sk.Schema(attributes={"t": "datetime"}, timezone=BackAtMidnight())
    with pytest.raises(sk.RuleError) as info:
        to_sql("t = @2024-06-01", schema)
    assert info.value.message == (
        "cannot translate to duckdb SQL: the time zone moves the clock back across"
        " midnight on 2024-06-01, so a local date is not one range of instants"
    )
    assert to_sql("t = @2024-06-02", schema).params == {
        "p1": datetime(2024, 6, 2, 1, 0, tzinfo=UTC),
        "p2": datetime(2024, 6, 3, 1, 0, tzinfo=UTC),
    }
