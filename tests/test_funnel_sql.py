"""Funnels in SQL: DuckDB runs ``Funnel.to_sql`` and the report built from its rows
equals ``Funnel.run``'s; golden text per dialect; exact errors for what is unsupported."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone, tzinfo
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import segkit as sk
from segkit.analysis._funnel_options import use_backend
from segkit.analysis.funnel import Exclusion, Funnel, FunnelReport, Step
from segkit.compile.funnel_sql import _compile, outcomes_from_rows, report_from_rows
from segkit.compile.sql import SqlQuery, _Dialect, to_sql_ddl
from segkit.records import IdMap

duckdb = pytest.importorskip("duckdb")

UTC = timezone.utc
SCHEMA = sk.Schema(
    events={
        "a": {"plan": "string"},
        "b": {"amount": "float"},
        "c": {},
        "d": {},
        "x": {},
    },
    timezone="Europe/Paris",
)
PROPS = ("plan", "amount")
#: Saturday before the spring daylight-saving change in Paris (31 March 2024, 02:00 -> 03:00).
T0 = datetime(2024, 3, 30, 11, 0, tzinfo=UTC)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


class _RangeJoin(_Dialect):
    """DuckDB text with the range join that Spark and PostgreSQL get instead of ASOF."""

    asof_join = False


class Database:
    """An in-process DuckDB database with the events table of ``to_sql_ddl(SCHEMA)``."""

    def __init__(self) -> None:
        self.con = duckdb.connect()
        self.con.execute(to_sql_ddl(SCHEMA))

    def load(self, events: Sequence[sk.Event]) -> None:
        self.con.execute("DELETE FROM events")
        rows = [[e.key, e.name, e.at, *(e.properties.get(p) for p in PROPS)] for e in events]
        if rows:
            self.con.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?)", rows)

    def rows(self, query: SqlQuery) -> list[tuple[Any, ...]]:
        return self.con.execute(query.text, query.params).fetchall()  # type: ignore[no-any-return]

    def report(self, funnel: Funnel, *, asof: bool = True) -> FunnelReport:
        query = funnel.to_sql() if asof else _compile(funnel, _RangeJoin(), "events", SCHEMA)
        return report_from_rows(funnel, self.rows(query))


_DB: dict[str, Database] = {}


def database() -> Database:
    if "db" not in _DB:
        _DB["db"] = Database()
    return _DB["db"]


def assert_same(got: FunnelReport, expected: FunnelReport) -> None:
    """Every field, the members of each step, and the levels of the entrants."""
    assert got.to_dict() == expected.to_dict()
    for i in range(len(expected.steps)):
        assert sorted(got.members(i).keys()) == sorted(expected.members(i).keys())
        assert sorted(got.dropped(i).keys()) == sorted(expected.dropped(i).keys())
    assert sorted(got.levels().items()) == sorted(
        (key, level) for key, level in expected.levels().items() if level
    )


def check(funnel: Funnel, events: Sequence[sk.Event]) -> FunnelReport:
    """DuckDB with ASOF joins and with range joins both give ``funnel.run(events)``."""
    db = database()
    db.load(events)
    expected = funnel.run(events)
    assert_same(db.report(funnel), expected)
    assert_same(db.report(funnel, asof=False), expected)
    return expected


# --- fixed scenarios -----------------------------------------------------------------------------


def test_equal_times_chain_unless_strictly_later() -> None:
    """Simultaneous events fill steps in step order, whatever their order in the table."""
    log = [sk.Event("u", "b", at(5)), sk.Event("u", "a", at(5)), sk.Event("v", "a", at(0))]
    levels = [
        check(Funnel(["a", "b"], ties=t, schema=SCHEMA), log).levels()
        for t in ("any_order", "strictly_later")
    ]
    assert levels == [{"u": 2, "v": 1}, {"u": 1, "v": 1}]
    db = database()
    db.load(log)
    query = Funnel(["a", "b"], schema=SCHEMA).to_sql()
    assert sorted(db.rows(query)) == [
        ("u", 2, 1711796700000000, 1711796700000000),
        ("v", 1, 1711796400000000, None),
    ]


@pytest.mark.parametrize(
    ("window", "level"),
    [
        (timedelta(hours=1), 2),
        (timedelta(minutes=59, seconds=59, microseconds=999_999), 1),
        ("1h", 2),
        ("59min", 1),
        (None, 2),
    ],
)
def test_the_window_end_is_included(window: Any, level: int) -> None:
    """A step at exactly start + window counts; a microsecond later it does not."""
    log = [sk.Event("u", "a", at(0)), sk.Event("u", "b", at(60)), sk.Event("u", "c", at(61))]
    report = check(Funnel(["a", "b", "c"], window=window, schema=SCHEMA), log)
    assert report.levels() == {"u": 3 if level == 2 and window is None else level}


def test_a_calendar_day_across_the_spring_change_lasts_23_hours() -> None:
    """``"1d"`` in Paris from Saturday noon ends on Sunday noon, 23 hours later."""
    noon = datetime(2024, 3, 30, 11, 0, tzinfo=UTC)  # 12:00 in Paris
    log = [
        sk.Event("in", "a", noon),
        sk.Event("in", "b", noon + timedelta(hours=23)),
        sk.Event("out", "a", noon),
        sk.Event("out", "b", noon + timedelta(hours=23, microseconds=1)),
    ]
    report = check(Funnel(["a", "b"], window="1d", schema=SCHEMA), log)
    assert report.levels() == {"in": 2, "out": 1}
    utc = Funnel(["a", "b"], window="1mo", timezone="UTC")
    assert check(utc, log).levels() == {"in": 2, "out": 2}


def test_a_repeated_first_step_keeps_the_latest_start() -> None:
    """Every step-0 event opens an attempt: the time to step 1 is from the later one."""
    log = [
        sk.Event("u", "a", at(0)),
        sk.Event("u", "a", at(10)),
        sk.Event("u", "a", at(10)),  # the same start twice
        sk.Event("u", "b", at(20)),
        sk.Event("u", "a", at(30)),
    ]
    report = check(Funnel(["a", "b"], schema=SCHEMA), log)
    assert report.steps[1].time_from_previous is not None
    assert report.steps[1].time_from_previous.mean == timedelta(minutes=10)
    first = check(Funnel(["a", "b"], attempts="first", schema=SCHEMA), log)
    assert first.steps[1].time_from_previous is not None
    assert first.steps[1].time_from_previous.mean == timedelta(minutes=20)


def test_the_furthest_attempt_then_the_earliest_end() -> None:
    """An attempt that gets further wins over a later start; then the earliest last step."""
    log = [
        sk.Event("u", "a", at(0)),
        sk.Event("u", "b", at(30)),
        sk.Event("u", "a", at(40)),
        sk.Event("u", "c", at(50)),
        sk.Event("u", "b", at(100)),
    ]
    report = check(Funnel(["a", "b", "c"], window=timedelta(minutes=60), schema=SCHEMA), log)
    assert report.levels() == {"u": 3}
    assert report.time_to_complete.mean == timedelta(minutes=50)
    twice = [sk.Event("u", "a", at(0)), sk.Event("u", "b", at(15))]
    twice += [sk.Event("u", "a", at(20)), sk.Event("u", "b", at(30))]
    report = check(Funnel(["a", "b"], schema=SCHEMA), twice)
    assert report.time_to_complete.mean == timedelta(minutes=15)


def test_where_filters_read_typed_property_columns() -> None:
    """A step's where compiles with the rule compiler over the event's property columns."""
    log = [
        sk.Event("u", "a", at(0), {"plan": "pro"}),
        sk.Event("u", "b", at(1), {"amount": 5.0}),
        sk.Event("u", "b", at(2), {"amount": 12.5}),
        sk.Event("v", "a", at(0)),
        sk.Event("v", "b", at(1), {"amount": 50.0}),
        sk.Event("w", "a", at(0), {"plan": "free"}),
    ]
    funnel = Funnel(
        [Step("a", where='plan is not known or plan = "pro"'), Step("b", where="amount >= 10")],
        schema=SCHEMA,
    )
    report = check(funnel, log)
    assert report.levels() == {"u": 2, "v": 2}
    assert report.steps[1].time_from_previous is not None
    assert report.steps[1].time_from_previous.median == timedelta(minutes=1.5)
    query = funnel.to_sql()
    assert query.params == {"p1": "a", "p2": "pro", "p3": "b", "p4": 10}


def test_no_events_no_rows() -> None:
    """An empty table gives no rows and the empty report."""
    report = check(Funnel(["a", "b"], schema=SCHEMA), [])
    assert report.entered == 0
    assert report.steps[0].count == 0


# --- the differential property ---------------------------------------------------------------------


@st.composite
def event_logs(draw: st.DrawFn) -> list[sk.Event]:
    """Two entities, times on a grid (ties, window edges; across the spring change in
    Paris with the hourly grid), sometimes a microsecond off the grid."""
    stride = draw(
        st.sampled_from([timedelta(minutes=1), timedelta(minutes=30), timedelta(hours=1)])
    )
    events = []
    for _ in range(draw(st.integers(0, 30))):
        key = draw(st.sampled_from("pq"))
        name = draw(st.sampled_from("aabbcdx"))
        moment = T0 + stride * draw(st.integers(0, 30))
        moment += timedelta(microseconds=draw(st.sampled_from([0, 0, 0, 1, -1])))
        props: dict[str, Any] = {}
        if name == "a" and draw(st.booleans()):
            props["plan"] = draw(st.sampled_from(["free", "pro"]))
        if name == "b" and draw(st.booleans()):
            props["amount"] = draw(st.sampled_from([0.0, 9.5, 10.0, 30.0]))
        events.append(sk.Event(key, name, moment, props))
    return events


@st.composite
def funnels(draw: st.DrawFn) -> Funnel:
    names = draw(st.permutations("abcd"))[: draw(st.sampled_from([1, 2, 2, 3, 4]))]
    steps: list[str | Step] = []
    for name in names:
        where = None
        if name == "a" and draw(st.booleans()):
            where = draw(st.sampled_from(['plan = "pro"', "plan is not known"]))
        if name == "b" and draw(st.booleans()):
            where = draw(st.sampled_from(["amount >= 10", "not (amount > 9.5)"]))
        steps.append(name if where is None else Step(name, where=where))
    window = draw(
        st.sampled_from(
            [None, timedelta(minutes=20), timedelta(hours=6, microseconds=1), "3h", "1d", "2w"]
        )
    )
    return Funnel(
        steps,
        window=window,
        ties=draw(st.sampled_from(["any_order", "strictly_later"])),
        attempts=draw(st.sampled_from(["best", "first"])),
        schema=SCHEMA,
        timezone=draw(st.sampled_from([None, "UTC", "America/New_York"])),
    )


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(funnel=funnels(), events=event_logs())
def test_duckdb_equals_funnel_run(funnel: Funnel, events: list[sk.Event]) -> None:
    """For random logs and funnels, the report from DuckDB's rows equals ``Funnel.run``:
    counts, conversions, time statistics and histograms, members and levels."""
    check(funnel, events)


def test_larger_logs_equal_the_vectorised_engine() -> None:
    """On a funnel-shaped log of 4,000 events (ties, repeats, strays), both engines' reports
    and DuckDB's are equal."""
    pytest.importorskip("numpy")
    from benches import data

    log = data.funnel_log(400)
    keys, names, times = log.key_column(), log.name_column(), log.time_column()
    funnel = Funnel(list(data.FUNNEL_STEPS), window=timedelta(days=30))
    with use_backend("python"):
        expected = funnel.evaluate_columns(keys, names, times).report()
    vectorised = funnel.evaluate_columns(keys, names, times).report()
    assert vectorised.to_dict() == expected.to_dict()
    for i in range(len(funnel.steps)):
        assert sorted(vectorised.members(i).keys()) == sorted(expected.members(i).keys())
        assert sorted(vectorised.dropped(i).keys()) == sorted(expected.dropped(i).keys())
    con = duckdb.connect()
    con.execute(to_sql_ddl(sk.Schema(events=list(data.FUNNEL_EVENTS))))
    con.execute(
        "INSERT INTO events SELECT * FROM (SELECT unnest($1) AS key, unnest($2) AS name,"
        " make_timestamptz(unnest($3)) AS at)",
        [keys, names, times],
    )
    assert expected.steps[-1].count > 0
    assert log.size > 2000
    for query in (funnel.to_sql(), _compile(funnel, _RangeJoin(), "events", None)):
        rows = con.execute(query.text, query.params).fetchall()
        assert_same(report_from_rows(funnel, rows), expected)


# --- text, parameters, identifiers -------------------------------------------------------------------

GOLDEN_SPARK = """\
WITH c0 AS (SELECT x.`key`, unix_micros(x.at0) AS t0, unix_micros(x.at0) + :p2 AS dl FROM (SELECT e.`key`, min(e.`at`) AS at0 FROM `events` AS e WHERE e.`name` = :p1 GROUP BY e.`key`) AS x),
e1 AS (SELECT e.`key`, unix_micros(e.`at`) AS t FROM `events` AS e WHERE e.`name` = :p3 AND e.`amount` > :p4),
c1 AS (SELECT c.`key`, c.t0, c.dl, min(s.t) AS t1 FROM c0 AS c LEFT JOIN e1 AS s ON s.`key` = c.`key` AND s.t > c.t0 AND s.t <= c.dl GROUP BY c.`key`, c.t0, c.dl),
lv AS (SELECT c.`key`, c.t0, c.t1 FROM c1 AS c),
ranked AS (SELECT lv.*, 1 + (CASE WHEN lv.t1 IS NULL THEN 0 ELSE 1 END) AS level FROM lv)
SELECT r.`key`, r.level, r.t0, r.t1
FROM (SELECT ranked.*, row_number() OVER (PARTITION BY ranked.`key` ORDER BY ranked.level DESC, COALESCE(ranked.t1, ranked.t0) ASC, ranked.t0 DESC) AS rn FROM ranked) AS r
WHERE r.rn = 1"""

GOLDEN_POSTGRES = """\
WITH c0 AS (SELECT x."key", CAST(extract(epoch FROM x.at0) * 1000000 AS bigint) AS t0, CAST(extract(epoch FROM CASE WHEN timezone(CAST(%(p3)s AS text), timezone('UTC', ((timezone(CAST(%(p3)s AS text), x.at0) + INTERVAL '1' MONTH * CAST(%(p2)s AS bigint)) - (timezone(CAST(%(p3)s AS text), (timezone(CAST(%(p3)s AS text), (timezone(CAST(%(p3)s AS text), x.at0) + INTERVAL '1' MONTH * CAST(%(p2)s AS bigint))) - INTERVAL '3' HOUR)) - timezone('UTC', (timezone(CAST(%(p3)s AS text), (timezone(CAST(%(p3)s AS text), x.at0) + INTERVAL '1' MONTH * CAST(%(p2)s AS bigint))) - INTERVAL '3' HOUR)))))) = (timezone(CAST(%(p3)s AS text), x.at0) + INTERVAL '1' MONTH * CAST(%(p2)s AS bigint)) THEN timezone('UTC', ((timezone(CAST(%(p3)s AS text), x.at0) + INTERVAL '1' MONTH * CAST(%(p2)s AS bigint)) - (timezone(CAST(%(p3)s AS text), (timezone(CAST(%(p3)s AS text), (timezone(CAST(%(p3)s AS text), x.at0) + INTERVAL '1' MONTH * CAST(%(p2)s AS bigint))) - INTERVAL '3' HOUR)) - timezone('UTC', (timezone(CAST(%(p3)s AS text), (timezone(CAST(%(p3)s AS text), x.at0) + INTERVAL '1' MONTH * CAST(%(p2)s AS bigint))) - INTERVAL '3' HOUR))))) ELSE timezone(CAST(%(p3)s AS text), (timezone(CAST(%(p3)s AS text), x.at0) + INTERVAL '1' MONTH * CAST(%(p2)s AS bigint))) END) * 1000000 AS bigint) AS dl FROM (SELECT DISTINCT e."key", e."at" AS at0 FROM "events" AS e WHERE e."name" = CAST(%(p1)s AS text)) AS x),
lv AS (SELECT c."key", c.t0 FROM c0 AS c),
ranked AS (SELECT lv.*, 1 AS level FROM lv)
SELECT r."key", r.level, r.t0
FROM (SELECT ranked.*, row_number() OVER (PARTITION BY ranked."key" ORDER BY ranked.level DESC, COALESCE(ranked.t0) ASC, ranked.t0 DESC) AS rn FROM ranked) AS r
WHERE r.rn = 1"""


def test_golden_spark_text() -> None:
    """Spark: backquoted identifiers, :name parameters, a range join and min()."""
    funnel = Funnel(
        ["a", Step("b", where="amount > 1")],
        window=timedelta(hours=1),
        ties="strictly_later",
        attempts="first",
        schema=SCHEMA,
    )
    query = funnel.to_sql("spark")
    assert query.text == GOLDEN_SPARK
    assert query.params == {"p1": "a", "p2": 3_600_000_000, "p3": "b", "p4": 1}
    assert query.dialect == "spark"
    assert not query.needs_now


def test_golden_postgres_text_with_a_calendar_window() -> None:
    """PostgreSQL: typed parameters; a calendar window in the funnel's named time zone."""
    query = Funnel(["a"], window="1mo", timezone="Europe/Paris").to_sql("postgres")
    assert query.text == GOLDEN_POSTGRES
    assert query.params == {"p1": "a", "p2": 1, "p3": "Europe/Paris"}


def test_values_are_parameters_and_identifiers_are_quoted() -> None:
    """Nasty event names and table names never change the statement."""
    nasty = "a'; DROP TABLE events; --"
    funnel = Funnel([nasty, 'b"`'], window=timedelta(days=1))
    table = ("my schema", 'ev"ents`')
    for dialect in ("duckdb", "spark", "postgres"):
        query = funnel.to_sql(dialect, events=table)
        assert nasty not in query.text
        assert 'b"`' not in query.text
        assert list(query.params.values())[::2] == [nasty, 'b"`']
    assert '"my schema"."ev""ents`"' in funnel.to_sql(events=table).text
    assert '`my schema`.`ev"ents```' in funnel.to_sql("spark", events=table).text
    con = duckdb.connect()
    con.execute('CREATE SCHEMA "my schema"')
    con.execute(
        'CREATE TABLE "my schema"."ev""ents`" (key VARCHAR, name VARCHAR, "at" TIMESTAMPTZ)'
    )
    con.execute(
        'INSERT INTO "my schema"."ev""ents`" VALUES (?, ?, ?), (?, ?, ?)',
        ["u", nasty, at(0), "u", 'b"`', at(1)],
    )
    query = funnel.to_sql(events=table)
    rows = con.execute(query.text, query.params).fetchall()
    assert report_from_rows(funnel, rows).levels() == {"u": 2}


def test_rows_with_an_engine_idmap() -> None:
    """With an Engine's IdMap, the report's members are the Engine's ids."""
    ids = IdMap()
    for key in ("z", "y", "u"):
        ids.assign(key)
    funnel = Funnel(["a", "b"])
    report = report_from_rows(funnel, [("u", 2, 0, 5), ("y", 1, 3, None)], idmap=ids)
    assert sorted(report.members(0).ids) == [1, 2]
    assert report.members(1).keys() == ["u"]
    with pytest.raises(KeyError, match="unknown profile key 'q'"):
        report_from_rows(funnel, [("q", 1, 0, None)], idmap=ids)
    outcomes = outcomes_from_rows(funnel, [("u", 2, 0, 5), ("y", 1, 3, None)])
    assert outcomes.report_for(["y"]).entered == 1


# --- errors -------------------------------------------------------------------------------------------

_PREFIX = "Funnel.to_sql supports segkit's default ordered funnel only: "


@pytest.mark.parametrize(
    ("funnel", "message"),
    [
        (Funnel(["a", "b"], order="strict"), "order='strict' is not supported"),
        (Funnel(["a", "b"], order="any"), "order='any' is not supported"),
        (Funnel(["a", "b"], attempts="every"), "attempts='every' is not supported"),
        (
            Funnel(["a", "b"], ties="input_order"),
            "ties='input_order' is not supported (SQL rows have no order)",
        ),
        (Funnel(["a", "b"], reuse_events=True), "reuse_events=True is not supported"),
        (
            Funnel(["a", "b"], exclusions=[Exclusion("x", (0, 1))]),
            "exclusions are not supported",
        ),
        (Funnel.preset("posthog", ["a", "b"]), "the 'posthog' preset is not supported"),
        (
            Funnel.preset("clickhouse", ["a", "b"], window="1d"),
            "the 'clickhouse' preset is not supported",
        ),
        (
            Funnel(["a", Step.attribute("customer_at")]),
            "step 1 is the attribute stage 'customer_at'; SQL funnels read events only",
        ),
        (
            Funnel(["a", "b", "a"]),
            "event 'a' is used by two steps; each step needs its own event name",
        ),
    ],
)
def test_unsupported_options(funnel: Funnel, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)) as exc:
        funnel.to_sql()
    assert str(exc.value) == _PREFIX + message


def test_other_errors() -> None:
    """A where without a schema, a type error in it, a zone without a name, a dialect."""
    with pytest.raises(ValueError, match="has a where filter") as exc:
        Funnel(["a", Step("b", where="amount > 1")]).to_sql()
    assert str(exc.value) == (
        "step 1 ('b where amount > 1') has a where filter: pass schema= to to_sql() or"
        " Funnel(schema=...) so that its properties have column types"
    )
    with pytest.raises(sk.RuleTypeError) as type_error:
        Funnel([Step("b", where='amount > "x"')]).to_sql(schema=SCHEMA)
    assert str(type_error.value) == (
        "cannot compare float property 'amount' of 'b' with a string (\"x\") (line 1, column 1)\n"
        '  amount > "x"\n'
        "  ^^^^^^^^^^^^"
    )
    with pytest.raises(sk.UnknownPropertyError) as unknown:
        Funnel([Step("b", where="amont > 1")]).to_sql(schema=SCHEMA)
    assert str(unknown.value) == (
        "event 'b' has no property 'amont' (line 1, column 1)\n"
        "  amont > 1\n"
        "  ^^^^^\n"
        "  hint: did you mean 'amount'?"
    )
    with pytest.raises(ValueError, match="needs the funnel's time zone by name") as zone:
        Funnel(["a"], window="1d", timezone=_Unnamed()).to_sql()
    assert str(zone.value) == (
        "the calendar window '1d' needs the funnel's time zone by name; pass timezone= (or a"
        " schema timezone) with an IANA name such as 'Europe/Paris'"
    )
    assert Funnel(["a"], window="1h", timezone=_Unnamed()).to_sql().params["p2"] == 3_600_000_000
    with pytest.raises(ValueError, match=re.escape("unknown SQL dialect 'mysql'")):
        Funnel(["a"]).to_sql("mysql")  # type: ignore[arg-type]


class _Unnamed(tzinfo):
    """A zone with no IANA name (one hour east of UTC)."""

    def utcoffset(self, dt: datetime | None) -> timedelta:
        return timedelta(hours=1)

    def dst(self, dt: datetime | None) -> timedelta:
        return timedelta(0)

    def tzname(self, dt: datetime | None) -> str:
        return "X"


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        (
            [("a", 1, 0)],
            "row 0 has 3 columns; this funnel's rows have 4 (key, level and 2 step times)",
        ),
        ([(1, 1, 0, None)], "row 0: the key must be a non-empty string, got 1"),
        ([("a", 1, 0, None), ("a", 1, 0, None)], "row 1 ('a'): the entity has two rows"),
        ([("a", 0, None, None)], "row 0 ('a'): level must be an int from 1 to 2, got 0"),
        ([("a", 2, 0, None)], "row 0 ('a'): level 2 but the time of step 1 is missing"),
        ([("a", 1, 0, 5)], "row 0 ('a'): level 1 but step 1 has a time"),
        ([("a", 2, 5, 0)], "row 0 ('a'): step 1 is earlier than step 0"),
    ],
)
def test_rows_that_do_not_fit(rows: list[tuple[Any, ...]], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)) as exc:
        report_from_rows(Funnel(["a", "b"]), rows)
    assert str(exc.value) == message
