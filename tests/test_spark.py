"""segkit.spark: rules, funnels, overlaps and splits evaluated on Spark (local[2]) give
exactly the Engine's answers; shards' bitmaps merge exactly; exact error messages.

Marked ``spark``: ``pytest -m "not spark"`` skips them locally. Without pyspark or Java
they are skipped, except under ``CI``, where that is an error.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator, Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

import segkit as sk
import segkit.spark as sks
from segkit.compile.sql import to_sql_ddl
from segkit.datasets import generate
from segkit.index import Bitmap
from test_sql import (
    FIXED,
    FIXED_EVENTS,
    FIXED_MEMBERSHIPS,
    FIXED_NOW,
    FIXED_PROFILES,
    FIXED_RULES,
)

pytestmark = [
    pytest.mark.spark,
    pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas:FutureWarning"),
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
]

if os.environ.get("CI"):
    import pyspark  # noqa: F401  # CI installs the extra: a missing pyspark is an error
else:
    pytest.importorskip("pyspark")


def _java_home() -> str | None:
    """JAVA_HOME, or the installation of the ``java`` on PATH."""
    if os.environ.get("JAVA_HOME"):
        return os.environ["JAVA_HOME"]
    java = shutil.which("java")
    return None if java is None else str(Path(java).resolve().parent.parent)


@pytest.fixture(scope="session")
def spark() -> Iterator[Any]:
    """One small local Spark session for the module (UTC, 2 cores, UI off, 1 GB)."""
    home = _java_home()
    if home is None:
        if os.environ.get("CI"):
            pytest.fail("Spark tests need Java: no JAVA_HOME and no java on PATH")
        pytest.skip("Spark tests need Java (no JAVA_HOME and no java on PATH)")
    os.environ["JAVA_HOME"] = home
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    from pyspark.sql import SparkSession

    session = (
        SparkSession.builder.master("local[2]")
        .appName("segkit-tests")
        .config("spark.driver.memory", "1g")
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.default.parallelism", "4")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


# --- loading data ---------------------------------------------------------------------------------


def _ddl_columns(schema: sk.Schema, table: str) -> str:
    start = f"CREATE TABLE `{table}` ("
    line = next(s for s in to_sql_ddl(schema, "spark").splitlines() if s.startswith(start))
    return line[len(start) : line.rindex(")")]


def _cell(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


class Frames:
    """The tables of ``to_sql_ddl(schema)`` as Spark DataFrames."""

    def __init__(
        self,
        spark: Any,
        schema: sk.Schema,
        profiles: Mapping[str, Mapping[str, Any]],
        events: Sequence[sk.Event],
        memberships: Mapping[str, Sequence[str]],
    ) -> None:
        attributes = list(schema.attributes)
        props: list[str] = []
        for etype in schema.events.values():
            props += [p for p in etype.properties if p not in props]
        self.profiles = (
            spark.createDataFrame(
                [
                    [key, *(_cell(values.get(a)) for a in attributes)]
                    for key, values in profiles.items()
                ],
                _ddl_columns(schema, "profiles"),
            )
            .coalesce(1)
            .cache()
        )
        self.events = (
            spark.createDataFrame(
                [[e.key, e.name, e.at, *(e.properties.get(p) for p in props)] for e in events],
                _ddl_columns(schema, "events"),
            )
            .coalesce(1)
            .cache()
        )
        self.memberships = (
            spark.createDataFrame(
                [[seg, key] for seg, keys in memberships.items() for key in keys],
                "segment STRING, key STRING",
            )
            .coalesce(1)
            .cache()
        )


@pytest.fixture(scope="module")
def fixed(spark: Any) -> Frames:
    engine = sk.Engine(FIXED, clock=lambda: FIXED_NOW)
    engine.upsert_many(FIXED_PROFILES.items())
    return Frames(
        spark,
        FIXED,
        {key: engine.get(key) or {} for key in FIXED_PROFILES},
        FIXED_EVENTS,
        FIXED_MEMBERSHIPS,
    )


# --- the fixed rules of test_sql: every construct ---------------------------------------------


#: The SQL route runs one query per rule, about a second each on a loaded two-core
#: machine: it takes every third fixed rule (all constructs are still there); the
#: Python route, one pass over the profiles, takes them all.
def _sql_subset() -> list[tuple[str, set[str]]]:
    """Every third fixed rule, plus the first rule of each construct still missing."""
    from segkit.dsl import ast

    def kinds(text: str) -> set[type]:
        return {type(n) for n in ast.iter_nodes(sk.parse(text).expr)}

    chosen = FIXED_RULES[::3]
    used = set().union(*(kinds(text) for text, _ in chosen))
    for text, expected in FIXED_RULES:
        if kinds(text) - used:
            chosen.append((text, expected))
            used |= kinds(text)
    return chosen


SQL_FIXED_RULES = _sql_subset()


@pytest.mark.parametrize(
    ("route", "rules"), [("sql", SQL_FIXED_RULES), ("python", FIXED_RULES)], ids=["sql", "python"]
)
def test_fixed_rules_give_the_expected_keys(
    fixed: Frames, spark: Any, route: str, rules: list[tuple[str, set[str]]]
) -> None:
    """The hand-written rules of test_sql (every construct, with edge cases), evaluated in
    one Spark job per route, give exactly the expected keys (the Engine's)."""
    assert len(rules) >= 25
    found = sks.evaluate(
        spark,
        {f"r{i}": text for i, (text, _) in enumerate(rules)},
        FIXED,
        profiles=fixed.profiles,
        events=fixed.events,
        memberships=fixed.memberships,
        now=FIXED_NOW,
        route=route,  # type: ignore[arg-type]
    )
    got = {text: set(found.members(f"r{i}").keys()) for i, (text, _) in enumerate(rules)}
    assert got == dict(rules)


def test_the_sql_subset_covers_every_construct() -> None:
    """Every node type of the rule language is in the subset the SQL route runs."""
    from segkit.dsl import ast

    used = {type(n) for text, _ in SQL_FIXED_RULES for n in ast.iter_nodes(sk.parse(text).expr)}
    assert set(ast.Expr.__args__) - used == set()  # type: ignore[attr-defined]


# --- a generated population -----------------------------------------------------------------------

DATA = generate(500, seed=11)
SEED = [p.key for p in DATA.profiles[::7]]

#: Rules over the generated schema: attributes, lists, missing values, time, events,
#: sequences, aggregates, first times, segments and buckets.
GENERATED_RULES: list[str] = [
    'country = "US"',
    'country in ["FR", "DE", "GB"]',
    'not country in ["US"]',
    'plan != "free"',
    "age between 25 and 40",
    "age is not known",
    "ltv > 500",
    "ltv <= 10.5",
    "is_customer = true",
    "not is_customer = true",
    'tags has any ["vip", "beta_tester"]',
    'tags has none ["newsletter"]',
    "tags is known",
    'email iends_with "@EXAMPLE.com"',
    "email matches /^user1[0-9]*@/",
    'email not contains "org"',
    "nps >= 9",
    "nps is not known",
    'lifecycle_stage in ["mql", "sql"]',
    "signed_up in last 90d",
    "signed_up before @2023-01-01",
    "signed_up more than 1y ago",
    "did purchase",
    "did purchase in last 30d",
    'did page_view where url = "/pricing" >= 2 times in last 60d',
    "did cart_abandoned < 1 times in last 30d",
    "did add_to_cart then purchase within 1d",
    'did page_view where url starts_with "/blog" then signup within 7d',
    "did purchase for the first time in last 90d",
    "sum(purchase.amount in last 180d) >= 100",
    "avg(add_to_cart.price) > 50",
    'max(purchase.amount where sku = "SKU-1010") >= 99',
    "count(email_open in last 30d) >= 2",
    'bucket("exp-1") in 0..2999',
    'in segment "seed" or plan = "pro"',
    '(country = "US" and age >= 30) or not did page_view in last 7d',
]
NAMES = [f"g{i}" for i in range(len(GENERATED_RULES))]


@pytest.fixture(scope="module")
def engine() -> sk.Engine:
    engine = sk.Engine(DATA.schema, clock=lambda: DATA.now)
    engine.upsert_many(DATA.iter_records())
    engine.track_many(DATA.events)
    engine.define_static("seed", SEED)
    for name, rule in zip(NAMES, GENERATED_RULES, strict=True):
        engine.define(name, rule)
    return engine


@pytest.fixture(scope="module")
def generated(spark: Any) -> Frames:
    return Frames(
        spark,
        DATA.schema,
        {p.key: p.attributes for p in DATA.profiles},
        DATA.events,
        {"seed": SEED},
    )


@pytest.fixture(scope="module")
def ids(generated: Frames) -> Any:
    return sks.dense_ids(generated.profiles)


@pytest.fixture(scope="module")
def by_sql(spark: Any, generated: Frames, ids: Any) -> sks.SparkMemberships:
    return sks.evaluate(
        spark,
        dict(zip(NAMES, GENERATED_RULES, strict=True)),
        DATA.schema,
        profiles=generated.profiles,
        events=generated.events,
        memberships=generated.memberships,
        now=DATA.now,
        ids=ids,
    )


def test_generated_rules_on_spark_equal_the_engine(
    spark: Any, generated: Frames, ids: Any, engine: sk.Engine, by_sql: sks.SparkMemberships
) -> None:
    """36 rules over 500 generated profiles: the SQL route, and the Python route in small
    shards (64 ids: 8 shards), give exactly the Engine's members; the bitmaps of many
    shards merge into the single-shard bitmaps."""
    assert len(GENERATED_RULES) >= 30
    expected = {name: set(engine.members(name).keys()) for name in NAMES}
    assert sum(1 for keys in expected.values() if 0 < len(keys) < 500) >= 30  # not trivial
    assert {name: set(by_sql.members(name).keys()) for name in NAMES} == expected
    sharded = sks.evaluate(
        spark,
        dict(zip(NAMES, GENERATED_RULES, strict=True)),
        DATA.schema,
        profiles=generated.profiles,
        events=generated.events,
        memberships=generated.memberships,
        now=DATA.now,
        route="python",
        ids=ids,
        shard_size=64,
        partitions=3,
    )
    assert {name: set(sharded.members(name).keys()) for name in NAMES} == expected
    assert dict(sharded) == dict(by_sql)  # same ids: the bitmaps themselves are equal
    assert by_sql.shard_size == sks.DEFAULT_SHARD_SIZE
    assert sharded.shard_size == 64


def test_dense_ids_are_key_ranks(by_sql: sks.SparkMemberships) -> None:
    """Default ids are 0..n-1 in key order, and the bitmaps hold those ids."""
    idmap = by_sql.idmap()
    keys = sorted(p.key for p in DATA.profiles)
    assert list(idmap.keys()) == keys
    assert [idmap.id_of(k) for k in keys] == list(range(500))
    assert by_sql["g0"] == Bitmap(sorted(idmap.id_of(k) for k in by_sql.members("g0")))


def test_overlap_from_spark_bitmaps_equals_the_engine(
    by_sql: sks.SparkMemberships, engine: sk.Engine
) -> None:
    """An overlap of four segments from Spark's bitmaps: the Engine's report, region
    members included."""
    names = ["g0", "g3", "g8", "g22"]
    mine, theirs = by_sql.overlap(names), engine.overlap(names)
    assert mine.to_dict() == theirs.to_dict()
    for region in theirs.regions:
        assert mine.region(*region.segments).keys() == sorted(region.members.keys())


def test_split_from_spark_bitmaps_equals_the_engine(
    by_sql: sks.SparkMemberships, engine: sk.Engine
) -> None:
    """A split with a holdout of a Spark segment: the Engine's groups and SRM check."""
    mine = by_sql.split("g22", {"control": 30, "test": 70}, salt="exp-9", holdout=10)
    theirs = engine.split("g22", {"control": 30, "test": 70}, salt="exp-9", holdout=10)
    assert mine.to_dict() == theirs.to_dict()
    assert {g: set(m.keys()) for g, m in mine.items()} == {
        g: set(m.keys()) for g, m in theirs.items()
    }


def test_write_back_round_trips(
    spark: Any, by_sql: sks.SparkMemberships, generated: Frames, engine: sk.Engine
) -> None:
    """write_back gives one (segment, id, key) row per member, in small shards too, and
    serves as the memberships table of the next evaluation."""
    chosen = sks.SparkMemberships(
        {"a": by_sql["g0"], "b": by_sql["g3"]}, ids=by_sql.ids, shard_size=50
    )
    rows = chosen.write_back(spark).collect()
    idmap = by_sql.idmap()
    assert sorted((r.segment, r.id, r.key) for r in rows) == sorted(
        [("a", i, idmap.key_of(i)) for i in by_sql["g0"]]
        + [("b", i, idmap.key_of(i)) for i in by_sql["g3"]]
    )
    assert chosen.write_back(spark, keys=False).columns == ["segment", "id"]
    again = sks.evaluate(
        spark,
        {"both": 'in segment "a" and in segment "b"'},
        DATA.schema,
        profiles=generated.profiles,
        memberships=chosen.write_back(spark),
        ids=by_sql.ids,
        route="python",
    )
    assert again["both"] == by_sql["g0"] & by_sql["g3"]


def test_members_of_one_rule(spark: Any, generated: Frames, engine: sk.Engine) -> None:
    """members() returns segkit.Members of one rule, by either route."""
    for route in ("sql", "python"):
        found = sks.members(
            spark,
            'plan = "pro" and did purchase in last 90d',
            DATA.schema,
            profiles=generated.profiles,
            events=generated.events,
            now=DATA.now,
            route=route,  # type: ignore[arg-type]
        )
        assert isinstance(found, sk.Members)
        assert found.keys() == engine.query('plan = "pro" and did purchase in last 90d').keys()


def test_a_user_id_column_with_gaps(spark: Any) -> None:
    """ids from an integer column (with gaps) are the bitmaps' ids; keys map back."""
    profiles = spark.createDataFrame(
        [("a", 5, 30), ("b", 9, 12), ("c", 70000, 40)], "key STRING, uid BIGINT, age BIGINT"
    )
    schema = sk.Schema(attributes={"age": "int"})
    ids = sks.dense_ids(profiles, id_column="uid")
    found = sks.evaluate(
        spark, {"adults": "age >= 18"}, schema, profiles=profiles, ids=ids, route="python"
    )
    assert found["adults"] == Bitmap([5, 70000])
    assert found.members("adults").keys() == ["a", "c"]
    assert len(found.idmap()) == 3


# --- funnels ------------------------------------------------------------------------------------

FUNNELS = [
    sk.Funnel(["page_view", "add_to_cart", "checkout_started", "purchase"], window="14d"),
    sk.Funnel(
        [
            sk.Step("page_view", where='url = "/pricing"'),
            sk.Step("add_to_cart", where="price >= 20"),
            "purchase",
        ],
        window=timedelta(days=30),
    ),
    sk.Funnel(
        ["add_to_cart", "checkout_started", "purchase"],
        window="7d",
        exclusions=[sk.Exclusion("cart_abandoned", between=(0, 2))],
    ),
]


@pytest.mark.parametrize("funnel", FUNNELS, ids=["ordered", "where", "exclusion"])
def test_funnels_on_spark_equal_funnel_run(
    spark: Any, generated: Frames, funnel: sk.Funnel
) -> None:
    """A funnel run on Spark (events partitioned by key, outcomes merged on the driver)
    gives the report of Funnel.run: counts, conversions, exact time statistics, levels
    and the members of every step."""
    expected = funnel.run(DATA.events)
    got = sks.funnel(spark, funnel, events=generated.events, partitions=3)
    assert expected.entered > 20
    assert expected.steps[-1].count > 0
    assert got.to_dict() == expected.to_dict()
    assert got.levels() == expected.levels()
    for i in range(len(funnel.steps)):
        assert got.members(i).keys() == sorted(expected.members(i).keys())


def test_funnel_outcomes_report_a_segment(
    spark: Any, generated: Frames, by_sql: sks.SparkMemberships
) -> None:
    """funnel_outcomes aggregates any subset of entities, like Funnel.compare."""
    outcomes = sks.funnel_outcomes(spark, FUNNELS[0], events=generated.events)
    keys = by_sql.members("g3").keys()
    expected = FUNNELS[0].compare(DATA.events, {"seg": keys})["seg"]
    assert outcomes.report_for(keys).to_dict() == expected.to_dict()


# --- errors ---------------------------------------------------------------------------------------


def _message(error: type[BaseException], call: Any, *args: Any, **kwargs: Any) -> str:
    """The message of the ``error`` that ``call(*args, **kwargs)`` raises."""
    with pytest.raises(error) as info:
        call(*args, **kwargs)
    return str(info.value) if error is not KeyError else str(info.value.args[0])


def test_errors(spark: Any, generated: Frames) -> None:
    """Bad input raises before any Spark job, with exact messages."""
    schema, profiles, events = DATA.schema, generated.profiles, generated.events
    run = sks.evaluate
    assert (
        _message(ValueError, run, spark, {"a": "age > 3"}, schema, profiles=profiles, route="x")
        == "route must be 'sql' or 'python', got 'x'"
    )
    assert (
        _message(
            ValueError, run, spark, {"r": "did purchase in last 7d"}, schema, profiles=profiles
        )
        == "segment 'r' is relative to the current time: pass now= (a datetime)"
    )
    assert (
        _message(ValueError, run, spark, {}, schema, profiles=profiles)
        == "segments must name at least one segment"
    )
    assert (
        _message(ValueError, run, spark, {"a": "age > 3"}, schema, profiles=profiles, shard_size=0)
        == "shard_size must be a positive int, got 0"
    )
    assert (
        _message(
            ValueError,
            run,
            spark,
            {"a": "age > 3"},
            schema,
            profiles=profiles.drop("nps", "lifecycle_stage"),
        )
        == "the profiles DataFrame has no columns 'nps', 'lifecycle_stage'"
        " (see segkit.compile.sql.to_sql_ddl for the layout)"
    )
    assert (
        _message(
            ValueError, run, spark, {"a": "did signup"}, schema, profiles=profiles,
            events=events.drop("at"),
        )
        == "the events DataFrame has no column 'at' (see segkit.compile.sql.to_sql_ddl for the layout)"
    )  # fmt: skip
    assert (
        _message(TypeError, run, spark, {"a": "age > 3"}, schema, profiles=profiles, events=[])
        == "events must be a Spark DataFrame, got list"
    )
    assert _message(
        sk.RuleTypeError, run, spark, {"a": "agee > 3"}, schema, profiles=profiles, route="python"
    ).startswith("unknown attribute 'agee' (line 1, column 1)")
    assert (
        _message(TypeError, run, None, {"a": "age > 3"}, schema, profiles=profiles)
        == "spark must be a SparkSession, got NoneType"
    )


def test_sql_route_needs_a_utc_session(spark: Any, generated: Frames) -> None:
    """route='sql' refuses a session whose time zone is not UTC."""
    spark.conf.set("spark.sql.session.timeZone", "Europe/Paris")
    try:
        message = _message(
            ValueError, sks.evaluate, spark, {"a": "age > 30"}, DATA.schema,
            profiles=generated.profiles,
        )  # fmt: skip
    finally:
        spark.conf.set("spark.sql.session.timeZone", "UTC")
    assert message == (
        "route='sql' needs spark.sql.session.timeZone=UTC (this session has 'Europe/Paris'):"
        " set it when building the session, or use route='python'"
    )


def test_id_and_key_errors(spark: Any) -> None:
    """Out-of-range ids, shared ids and repeated keys are refused with their names."""
    schema = sk.Schema(attributes={"age": "int"})
    negative = spark.createDataFrame([("a", -1, 3)], "key STRING, uid BIGINT, age BIGINT")
    assert (
        _message(ValueError, sks.dense_ids, negative, id_column="uid")
        == "id column 'uid' has the id -1: ids must be integers in 0 .. 2**32 - 1"
    )
    shared = spark.createDataFrame([("a", 1, 3), ("b", 1, 4)], "key STRING, uid BIGINT, age BIGINT")
    found = sks.evaluate(
        spark, {"all": "age > 0"}, schema, profiles=shared, route="python",
        ids=sks.dense_ids(shared, id_column="uid"),
    )  # fmt: skip
    assert _message(ValueError, found.idmap) == "profiles 'a' and 'b' have the same id 1"
    twice = spark.createDataFrame([("a", 3), ("a", 4)], "key STRING, age BIGINT")
    found = sks.evaluate(spark, {"all": "age > 0"}, schema, profiles=twice, route="python")
    assert (
        _message(ValueError, found.members, "all")
        == "the profiles DataFrame has more than one row with key 'a'"
    )


def test_funnel_errors(spark: Any, generated: Frames) -> None:
    """Funnels that Spark cannot run as Funnel.run does are refused."""
    events = generated.events
    assert _message(
        ValueError, sks.funnel, spark, sk.Funnel(["a", "b"], ties="input_order"), events=events
    ) == (
        "ties='input_order' needs the events' input order, which a Spark DataFrame"
        " does not have: use 'any_order' or 'strictly_later'"
    )
    staged = sk.Funnel(["a", sk.Step.attribute("became_mql_at")])
    assert (
        _message(ValueError, sks.funnel, spark, staged, events=events)
        == "segkit.spark funnels take event steps only, not attribute stages"
    )
    assert (
        _message(TypeError, sks.funnel, spark, ["a"], events=events)
        == "funnel must be a segkit.Funnel, got list"
    )


def test_memberships_mapping_errors() -> None:
    """SparkMemberships: unknown names and missing id sources are named."""
    from segkit.records import IdMap

    found = sks.SparkMemberships({"a": Bitmap([1])}, idmap=IdMap())
    assert (
        _message(KeyError, found.__getitem__, "b")
        == "no segment 'b' in these memberships (they have: 'a')"
    )
    assert repr(found) == "SparkMemberships(a: 1)"
    assert (
        _message(TypeError, sks.SparkMemberships, {})
        == "SparkMemberships needs ids (a Spark DataFrame) or an idmap"
    )


def test_pyspark_is_imported_lazily_and_named_when_missing() -> None:
    """``import segkit.spark`` loads no pyspark; without pyspark a call names the extra."""
    import subprocess

    code = (
        "import sys; import segkit.spark as sks; print('pyspark' in sys.modules)\n"
        "sys.modules['pyspark'] = None\n"
        "class Frame:\n    sparkSession = None\n    columns = ['key']\n"
        "try:\n    sks.dense_ids(Frame())\nexcept ImportError as e:\n    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.splitlines() == [
        "False",
        "segkit.spark needs pyspark: pip install 'segkit[spark]'",
    ]
