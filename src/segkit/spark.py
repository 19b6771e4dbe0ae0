"""Sharded evaluation on Spark (extra ``spark``): memberships as Roaring bitmaps.

Profiles and events stay in Spark DataFrames with the table layout of
:mod:`segkit.compile.sql` (``profiles``: ``key`` and one column per attribute;
``events``: ``key``, ``name``, ``at`` and one column per property name;
``memberships``: ``segment`` and ``key``). segkit evaluates segments where the
data is and brings back only bitmaps:

* every profile gets a dense ``uint32`` id (:func:`dense_ids`: the rank of its key,
  or an integer id column of yours);
* the rows are sharded by id range, ``shard = id // shard_size``, and each Spark
  partition builds one Roaring bitmap per segment for the shards it holds; the
  bitmaps travel to the driver in the portable Roaring format
  (``serialize()`` / ``deserialize()``);
* the driver merges a segment's bitmaps with a union. Shards cover disjoint id
  ranges, so the union is exact and only concatenates containers.

:func:`evaluate` has two routes. ``route="sql"`` pushes each rule down as Spark SQL
(:func:`segkit.compile.sql.to_sql`); ``route="python"`` groups each profile's row
with its events and runs segkit's compiled predicate inside the partitions, so
every rule works, including those the SQL back-end cannot translate. Both return
a :class:`SparkMemberships`: bitmaps by segment name, with :meth:`~SparkMemberships.to_members`,
:meth:`~SparkMemberships.overlap`, :meth:`~SparkMemberships.split` and
:meth:`~SparkMemberships.write_back`. :func:`funnel` runs a :class:`~segkit.Funnel`
per partition of events (all of an entity's events in one partition) and merges the
per-entity outcomes, so the report is exactly :meth:`Funnel.run <segkit.Funnel.run>`'s.

pyspark is imported when a function is called; without it, :class:`ImportError`
names the extra to install. ``docs/scale.md`` ("Spark") has a full example.

>>> import segkit.spark
>>> segkit.spark.DEFAULT_SHARD_SIZE == 16 * 2**16
True

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final, Literal

from segkit.dsl.rule import Rule, as_rule
from segkit.index import Bitmap, FrozenBitmap, Members
from segkit.records import Event, IdMap
from segkit.schema import FieldType

if TYPE_CHECKING:
    from segkit.analysis.funnel import Funnel, FunnelOutcomes, FunnelReport
    from segkit.analysis.overlap import OverlapReport
    from segkit.analysis.split import Split
    from segkit.dsl.rule import RuleLike
    from segkit.schema import Schema

__all__ = [
    "DEFAULT_SHARD_SIZE",
    "SparkMemberships",
    "dense_ids",
    "evaluate",
    "funnel",
    "funnel_outcomes",
    "members",
]

#: Ids per shard by default: 16 Roaring containers of 2**16 ids, so that no
#: container is split between two shards.
DEFAULT_SHARD_SIZE: Final = 16 * 2**16
#: The largest id a Roaring bitmap (and an :class:`~segkit.IdMap`) holds.
_MAX_ID: Final = 2**32 - 1
_UTC: Final = timezone.utc
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=_UTC)

Route = Literal["sql", "python"]
_ROUTES: Final = ("sql", "python")


def _functions() -> Any:
    """``pyspark.sql.functions``, or ``ImportError`` naming the extra."""
    try:
        from pyspark.sql import functions
    except ImportError:
        raise ImportError("segkit.spark needs pyspark: pip install 'segkit[spark]'") from None
    return functions


def _from_us(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


# --- checks ---------------------------------------------------------------------------------------


def _check_spark(spark: object) -> None:
    if not (hasattr(spark, "sql") and hasattr(spark, "createDataFrame")):
        raise TypeError(f"spark must be a SparkSession, got {type(spark).__name__}")


def _check_frame(frame: object, what: str) -> None:
    if not (hasattr(frame, "sparkSession") and hasattr(frame, "columns")):
        raise TypeError(f"{what} must be a Spark DataFrame, got {type(frame).__name__}")


def _check_columns(frame: Any, what: str, needed: Iterable[str]) -> None:
    columns = set(frame.columns)
    missing = [c for c in needed if c not in columns]
    if missing:
        word = "column" if len(missing) == 1 else "columns"
        raise ValueError(
            f"the {what} DataFrame has no {word} {', '.join(repr(c) for c in missing)}"
            " (see segkit.compile.sql.to_sql_ddl for the layout)"
        )


def _event_properties(schema: Schema) -> list[str]:
    props: list[str] = []
    for etype in schema.events.values():
        props += [p for p in etype.properties if p not in props]
    return props


def _check_shard_size(shard_size: object) -> int:
    if isinstance(shard_size, bool) or not isinstance(shard_size, int) or shard_size < 1:
        raise ValueError(f"shard_size must be a positive int, got {shard_size!r}")
    return shard_size


def _check_partitions(partitions: object) -> int | None:
    if partitions is not None and (
        isinstance(partitions, bool) or not isinstance(partitions, int) or partitions < 1
    ):
        raise ValueError(f"partitions must be a positive int or None, got {partitions!r}")
    return partitions


def _check_segments(segments: object, schema: Schema, now: datetime | None) -> dict[str, Rule]:
    """The rules by name, each type-checked against ``schema`` (on the driver)."""
    from segkit.dsl.check import check

    if not isinstance(segments, Mapping):
        raise TypeError(
            f"segments must be a mapping of segment name to rule, got {type(segments).__name__}"
        )
    if not segments:
        raise ValueError("segments must name at least one segment")
    rules: dict[str, Rule] = {}
    for name, rule in segments.items():
        if not isinstance(name, str) or not name:
            raise ValueError(f"a segment name must be a non-empty string, got {name!r}")
        rules[name] = as_rule(rule)
        check(rules[name], schema)
        if now is None and rules[name].is_time_relative:
            raise ValueError(
                f"segment {name!r} is relative to the current time: pass now= (a datetime)"
            )
    return rules


def _check_utc(spark: Any) -> None:
    zone = spark.conf.get("spark.sql.session.timeZone")
    if zone not in ("UTC", "Etc/UTC", "+00:00", "Z"):
        raise ValueError(
            f"route='sql' needs spark.sql.session.timeZone=UTC (this session has {zone!r}):"
            " set it when building the session, or use route='python'"
        )


def _empty_table(spark: Any, schema: Schema, which: str) -> Any:
    """An empty DataFrame with the columns of ``to_sql_ddl``'s ``which`` table."""
    from segkit.compile.sql import to_sql_ddl

    start = f"CREATE TABLE `{which}` ("
    statement = next(
        line for line in to_sql_ddl(schema, "spark").splitlines() if line.startswith(start)
    )
    return spark.createDataFrame([], statement[len(start) : statement.rindex(")")])


# --- dense ids ------------------------------------------------------------------------------------


def _rank_row(pair: tuple[Any, int]) -> tuple[Any, int]:
    return pair[0][0], pair[1]


def dense_ids(profiles: Any, *, id_column: str | None = None) -> Any:
    """A cached DataFrame ``(key STRING, id BIGINT)``: each profile's dense id.

    Without ``id_column``, ids are ``0 .. n - 1`` in the order of the keys (a
    distributed sort, then ``zipWithIndex``), so the same keys always get the same
    ids. With ``id_column``, that integer column of ``profiles`` is the id, to line
    up with ids you already have; one aggregation checks that every id is in
    ``0 .. 2**32 - 1``. Keys must be unique (checked when the driver collects the
    keys). Pass the result to :func:`evaluate` as ``ids=`` to give several
    evaluations one id space; ``.unpersist()`` it when done.

    >>> dense_ids([])
    Traceback (most recent call last):
    ...
    TypeError: profiles must be a Spark DataFrame, got list

    .. versionadded:: 0.1.0
    """
    _check_frame(profiles, "profiles")
    f = _functions()
    _check_columns(profiles, "profiles", ["key"] if id_column is None else ["key", id_column])
    if id_column is None:
        ranked = profiles.select("key").orderBy("key").rdd.zipWithIndex().map(_rank_row)
        return profiles.sparkSession.createDataFrame(ranked, "key STRING, id BIGINT").cache()
    ids = profiles.select(f.col("key"), f.col(id_column).cast("bigint").alias("id"))
    low, high, nulls = ids.agg(
        f.min("id"), f.max("id"), f.sum(f.col("id").isNull().cast("bigint"))
    ).first()
    if nulls or (low is not None and (low < 0 or high > _MAX_ID)):
        bad = "null" if nulls else low if low < 0 else high
        raise ValueError(
            f"id column {id_column!r} has the id {bad}: ids must be integers in 0 .. 2**32 - 1"
        )
    return ids.cache()


_GAP: Final = "\x00segkit.spark:gap"


def _idmap_of(rows: Iterable[tuple[str, int]]) -> IdMap:
    """An :class:`IdMap` with the ``(key, id)`` pairs, sorted by id; ids not used stay free."""
    idmap = IdMap()
    last: str | None = None
    for key, id_ in rows:
        if id_ < idmap.high_water:
            raise ValueError(f"profiles {last!r} and {key!r} have the same id {id_}")
        if key in idmap:
            raise ValueError(f"the profiles DataFrame has more than one row with key {key!r}")
        while idmap.high_water < id_:  # an id no profile has: taken, then freed
            idmap.assign(_GAP)
            idmap.delete(_GAP)
        idmap.assign(key)
        last = key
    return idmap


# --- bitmaps, shard by shard ----------------------------------------------------------------------


def _shard_bitmaps(rows: Iterable[Any]) -> Iterator[tuple[str, bytes]]:
    """One partition of ``(segment, id)`` rows -> ``(segment, portable Roaring bytes)``."""
    found: dict[str, Bitmap] = {}
    for segment, id_ in rows:
        bm = found.get(segment)
        if bm is None:
            bm = found[segment] = Bitmap()
        bm.add(id_)
    for segment, bm in found.items():
        bm.run_optimize()
        yield segment, bm.serialize()


def _merge(names: Iterable[str], parts: Iterable[tuple[str, bytes]]) -> dict[str, FrozenBitmap]:
    """Each segment's bitmap: the union of its shards' bitmaps (disjoint id ranges)."""
    pieces: dict[str, list[Bitmap]] = {name: [] for name in names}
    for name, data in parts:
        pieces[name].append(Bitmap.deserialize(data))
    return {name: FrozenBitmap(Bitmap.union(Bitmap(), *bms)) for name, bms in pieces.items()}


def _by_shard(frame: Any, shard_size: int, partitions: int | None) -> Any:
    """``frame`` (with an ``id`` column) repartitioned by ``id // shard_size``: every
    shard lies in one partition."""
    f = _functions()
    shard = f.floor(f.col("id") / f.lit(shard_size))
    return frame.repartition(shard) if partitions is None else frame.repartition(partitions, shard)


# --- the two routes -------------------------------------------------------------------------------


def _sql_hits(
    spark: Any,
    rules: Mapping[str, Rule],
    schema: Schema,
    now: datetime | None,
    views: Mapping[str, str],
) -> Any:
    """``(segment, key)`` of every member: one pushed-down query per rule, unioned."""
    from segkit.compile.sql import to_sql

    f = _functions()
    frames = []
    for name, rule in rules.items():
        query = to_sql(rule, schema, "spark", now=now, **views)
        found = spark.sql(query.text, args=query.params)
        frames.append(found.select(f.lit(name).alias("segment"), f.col("key")))
    return functools.reduce(lambda a, b: a.unionAll(b), frames)


class _PythonPlan:
    """What a partition needs to run the compiled predicates (pickled to the executors)."""

    def __init__(self, schema: Schema, rules: Mapping[str, Rule], now: datetime | None) -> None:
        self.schema = schema
        self.rules = dict(rules)
        self.now = now
        self.attributes = [(name, t) for name, t in schema.attributes.items()]
        self.properties = _event_properties(schema)
        self.props_of = {
            event: [(p, self.properties.index(p)) for p in etype.properties]
            for event, etype in schema.events.items()
        }

    def __call__(self, rows: Iterable[Any]) -> Iterator[tuple[str, bytes]]:
        from segkit.compile.predicate import compile_predicate

        current: list[frozenset[str]] = [frozenset()]

        def in_segment(name: str, key: str) -> bool:
            return name in current[0]

        predicates = [
            (name, compile_predicate(rule, self.schema, segments=in_segment))
            for name, rule in self.rules.items()
        ]
        found = {name: Bitmap() for name in self.rules}
        now, props_of = self.now, self.props_of
        for key, id_, attributes, events, segments in rows:
            values: dict[str, Any] = {}
            for (name, ftype), value in zip(self.attributes, attributes, strict=True):
                if value is None:
                    continue
                if ftype is FieldType.DATETIME:
                    value = _from_us(value)
                elif ftype in (FieldType.LIST_STRING, FieldType.LIST_INT):
                    value = tuple(value)
                values[name] = value
            evs = [
                Event(
                    key,
                    e[0],
                    _from_us(e[1]),
                    {p: e[2 + i] for p, i in props_of.get(e[0], ()) if e[2 + i] is not None},
                )
                for e in events or ()
            ]
            current[0] = frozenset(segments or ())
            for name, predicate in predicates:
                if predicate(values, evs, now, key=key):
                    found[name].add(id_)
        for name, bm in found.items():
            if bm:
                bm.run_optimize()
                yield name, bm.serialize()


def _python_rows(
    schema: Schema, profiles: Any, events: Any | None, memberships: Any | None, ids: Any
) -> Any:
    """One row per profile: ``key, id, attributes (struct), events (array), segments``."""
    f = _functions()
    cells = [
        f.unix_micros(f.col(name)) if ftype is FieldType.DATETIME else f.col(name)
        for name, ftype in schema.attributes.items()
    ]
    attributes = f.struct(*cells) if cells else f.lit(None)
    rows = profiles.select(f.col("key"), attributes.alias("attributes")).join(ids, "key")
    if events is not None:
        props = _event_properties(schema)
        one = f.struct(f.col("name"), f.unix_micros(f.col("at")), *(f.col(p) for p in props))
        grouped = events.groupBy("key").agg(f.collect_list(one).alias("events"))
        rows = rows.join(grouped, "key", "left")
    else:
        rows = rows.withColumn("events", f.lit(None))
    if memberships is not None:
        grouped = memberships.groupBy("key").agg(f.collect_set("segment").alias("segments"))
        rows = rows.join(grouped, "key", "left")
    else:
        rows = rows.withColumn("segments", f.lit(None))
    return rows.select("key", "id", "attributes", "events", "segments")


def evaluate(
    spark: Any,
    segments: Mapping[str, RuleLike],
    schema: Schema,
    *,
    profiles: Any,
    events: Any | None = None,
    memberships: Any | None = None,
    now: datetime | None = None,
    route: Route = "sql",
    ids: Any | None = None,
    shard_size: int = DEFAULT_SHARD_SIZE,
    partitions: int | None = None,
) -> SparkMemberships:
    """Evaluate the rules ``segments`` (name -> rule) over Spark DataFrames.

    ``profiles``, ``events`` and ``memberships`` have the columns of
    :func:`segkit.compile.sql.to_sql_ddl` (extra columns are ignored; ``events``
    and ``memberships`` may be omitted when no rule reads them). ``in segment``
    reads ``memberships``. ``now`` is needed when a rule is time-relative.

    * ``route="sql"`` (default): each rule becomes one Spark SQL query
      (:func:`segkit.compile.sql.to_sql`), all unioned into one job; the session
      must run with ``spark.sql.session.timeZone=UTC``.
    * ``route="python"``: each profile's row is joined with its events and
      segments, and segkit's compiled predicates run inside the partitions:
      every rule works, including what SQL cannot express.

    Either way the members' ids (``ids``: a :func:`dense_ids` frame, made from
    ``profiles`` when omitted) are sharded by ``id // shard_size`` across
    ``partitions`` (default ``spark.sql.shuffle.partitions``), each partition
    returns one portable Roaring bitmap per segment, and the driver merges them.

    >>> import segkit as sk
    >>> evaluate(None, {"adults": "age >= 18"}, sk.Schema(attributes={"age": "int"}), profiles=None)
    Traceback (most recent call last):
    ...
    TypeError: spark must be a SparkSession, got NoneType

    .. versionadded:: 0.1.0
    """
    _check_spark(spark)
    _check_frame(profiles, "profiles")
    for frame, what in ((events, "events"), (memberships, "memberships"), (ids, "ids")):
        if frame is not None:
            _check_frame(frame, what)
    if route not in _ROUTES:
        raise ValueError(f"route must be 'sql' or 'python', got {route!r}")
    rules = _check_segments(segments, schema, now)
    shard_size = _check_shard_size(shard_size)
    partitions = _check_partitions(partitions)
    _check_columns(profiles, "profiles", ["key", *schema.attributes])
    if events is not None:
        _check_columns(events, "events", ["key", "name", "at", *_event_properties(schema)])
    if memberships is not None:
        _check_columns(memberships, "memberships", ["segment", "key"])
    if ids is None:
        ids = dense_ids(profiles)
    else:
        _check_columns(ids, "ids", ["key", "id"])
    if route == "sql":
        _check_utc(spark)
        tag = uuid.uuid4().hex[:12]
        views = {
            "profiles": f"segkit_{tag}_profiles",
            "events": f"segkit_{tag}_events",
            "memberships": f"segkit_{tag}_memberships",
        }
        tables = {
            "profiles": profiles,
            "events": _empty_table(spark, schema, "events") if events is None else events,
            "memberships": (
                _empty_table(spark, schema, "memberships") if memberships is None else memberships
            ),
        }
        try:
            for which, frame in tables.items():
                frame.createOrReplaceTempView(views[which])
            hits = _sql_hits(spark, rules, schema, now, views)
            pairs = hits.join(ids, "key").select("segment", "id")
            parts = _by_shard(pairs, shard_size, partitions).rdd.mapPartitions(_shard_bitmaps)
            collected = parts.collect()
        finally:
            for view in views.values():
                spark.catalog.dropTempView(view)
    else:
        rows = _python_rows(schema, profiles, events, memberships, ids)
        plan = _PythonPlan(schema, rules, None if now is None else now.astimezone(_UTC))
        collected = _by_shard(rows, shard_size, partitions).rdd.mapPartitions(plan).collect()
    return SparkMemberships(_merge(rules, collected), ids=ids, shard_size=shard_size)


def members(
    spark: Any,
    rule: RuleLike,
    schema: Schema,
    *,
    profiles: Any,
    events: Any | None = None,
    memberships: Any | None = None,
    now: datetime | None = None,
    route: Route = "sql",
) -> Members:
    """The members of one rule over Spark DataFrames, as :class:`~segkit.Members`.

    :func:`evaluate` with one segment, then :meth:`SparkMemberships.members`
    (which collects the keys to the driver). To combine several rules' members,
    evaluate them together: each call numbers the profiles afresh.

    >>> import segkit as sk
    >>> members(None, "age >= 18", sk.Schema(attributes={"age": "int"}), profiles=None)
    Traceback (most recent call last):
    ...
    TypeError: spark must be a SparkSession, got NoneType

    .. versionadded:: 0.1.0
    """
    found = evaluate(
        spark,
        {"members": rule},
        schema,
        profiles=profiles,
        events=events,
        memberships=memberships,
        now=now,
        route=route,
    )
    return found.members("members")


# --- the result -----------------------------------------------------------------------------------


def _expand(piece: tuple[str, bytes]) -> Iterator[tuple[str, int]]:
    segment, data = piece
    return ((segment, id_) for id_ in Bitmap.deserialize(data))


class SparkMemberships(Mapping[str, FrozenBitmap]):
    """Memberships computed on Spark: a read-only mapping ``segment -> FrozenBitmap``.

    Made by :func:`evaluate`. The bitmaps hold dense ids; ``ids`` is the Spark
    DataFrame ``(key, id)`` that gave them, collected to the driver as an
    :class:`~segkit.IdMap` the first time keys are needed (:meth:`idmap`). A
    bitmap's portable bytes are ``bitmaps[name].serialize()``.

    Built directly from bitmaps and an :class:`~segkit.IdMap` (no Spark involved):

    >>> from segkit.index import Bitmap
    >>> from segkit.records import IdMap
    >>> ids = IdMap()
    >>> _ = [ids.assign(k) for k in ["ann", "bob", "cid"]]
    >>> found = SparkMemberships({"pro": Bitmap([0, 1]), "new": Bitmap([1, 2])}, idmap=ids)
    >>> list(found), len(found["pro"]), found.members("new").keys()
    (['pro', 'new'], 2, ['bob', 'cid'])
    >>> [(r.segments, r.count) for r in found.overlap().regions]
    [(('pro',), 1), (('new',), 1), (('pro', 'new'), 1)]

    .. versionadded:: 0.1.0
    """

    __slots__ = ("_bitmaps", "_idmap", "ids", "shard_size")

    def __init__(
        self,
        bitmaps: Mapping[str, Bitmap | FrozenBitmap],
        *,
        ids: Any | None = None,
        idmap: IdMap | None = None,
        shard_size: int = DEFAULT_SHARD_SIZE,
    ) -> None:
        if ids is None and idmap is None:
            raise TypeError("SparkMemberships needs ids (a Spark DataFrame) or an idmap")
        self._bitmaps = MappingProxyType(
            {
                name: bm if isinstance(bm, FrozenBitmap) else FrozenBitmap(bm)
                for name, bm in bitmaps.items()
            }
        )
        self.ids: Any = ids
        self._idmap = idmap
        self.shard_size = _check_shard_size(shard_size)

    def __getitem__(self, name: str) -> FrozenBitmap:
        try:
            return self._bitmaps[name]
        except KeyError:
            shown = ", ".join(repr(n) for n in self._bitmaps)
            raise KeyError(
                f"no segment {name!r} in these memberships (they have: {shown})"
            ) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._bitmaps)

    def __len__(self) -> int:
        return len(self._bitmaps)

    def __repr__(self) -> str:
        sizes = ", ".join(f"{name}: {len(bm)}" for name, bm in self._bitmaps.items())
        return f"SparkMemberships({sizes})"

    def idmap(self) -> IdMap:
        """The ids' keys, collected from Spark once (every profile's key and id).

        >>> from segkit.records import IdMap
        >>> ids = IdMap()
        >>> SparkMemberships({}, idmap=ids).idmap() is ids
        True
        """
        if self._idmap is None:
            rows = self.ids.select("key", "id").orderBy("id").toLocalIterator()
            self._idmap = _idmap_of((row[0], row[1]) for row in rows)
        return self._idmap

    def members(self, name: str) -> Members:
        """Segment ``name`` as :class:`~segkit.Members` (keys from :meth:`idmap`).

        >>> from segkit.index import Bitmap
        >>> from segkit.records import IdMap
        >>> ids = IdMap()
        >>> _ = ids.assign("ann")
        >>> SparkMemberships({"a": Bitmap([0])}, idmap=ids).members("a")
        Members(1: 'ann')
        """
        return Members(self[name], self.idmap())

    def to_members(self) -> dict[str, Members]:
        """Every segment as :class:`~segkit.Members`, all sharing one :class:`~segkit.IdMap`.

        >>> from segkit.index import Bitmap
        >>> from segkit.records import IdMap
        >>> ids = IdMap()
        >>> _ = ids.assign("ann"), ids.assign("bob")
        >>> found = SparkMemberships({"a": Bitmap([0]), "b": Bitmap([0, 1])}, idmap=ids).to_members()
        >>> (found["b"] - found["a"]).keys()
        ['bob']
        """
        idmap = self.idmap()
        return {name: Members(bm, idmap) for name, bm in self._bitmaps.items()}

    def overlap(
        self, names: Iterable[str] | None = None, *, empty: bool = False, pairwise: bool = False
    ) -> OverlapReport:
        """How segments ``names`` (default: all, in order) overlap: the report of
        :meth:`segkit.Engine.overlap`, from these bitmaps.

        >>> from segkit.index import Bitmap
        >>> from segkit.records import IdMap
        >>> ids = IdMap()
        >>> _ = [ids.assign(k) for k in "abc"]
        >>> found = SparkMemberships({"x": Bitmap([0, 1]), "y": Bitmap([1, 2])}, idmap=ids)
        >>> found.overlap(["y", "x"]).region("x", "y").keys()
        ['b']

        .. versionadded:: 0.1.0
        """
        from segkit.analysis.overlap import check_names, overlap

        chosen = check_names(list(self._bitmaps) if names is None else names, pairwise=pairwise)
        segments = [(name, self.members(name)) for name in chosen]
        return overlap(segments, empty=empty, pairwise=pairwise)

    def split(
        self,
        name: str,
        groups: Mapping[str, float],
        *,
        salt: str,
        holdout: float | None = None,
    ) -> Split:
        """Split segment ``name`` like :meth:`segkit.Engine.split` (same buckets,
        holdout and SRM check; no ``by=`` and no ``save=``).

        >>> from segkit.index import Bitmap
        >>> from segkit.records import IdMap
        >>> ids = IdMap()
        >>> _ = [ids.assign(f"c-{i}") for i in range(300)]
        >>> found = SparkMemberships({"all": Bitmap(range(300))}, idmap=ids)
        >>> dict(found.split("all", {"control": 50, "test": 50}, salt="exp-7").counts)
        {'control': 149, 'test': 151}

        .. versionadded:: 0.1.0
        """
        from segkit.analysis.split import split_members

        return split_members(name, self.members(name), groups, salt=salt, holdout=holdout)

    def write_back(self, spark: Any, *, keys: bool = True) -> Any:
        """The memberships as a Spark DataFrame ``(segment, id[, key])``, one row per member.

        The bitmaps go to the executors shard by shard (``shard_size`` ids each) and
        are expanded there; with ``keys=True`` the rows are joined with ``ids`` for
        the key. The result is a ``memberships`` table for the next :func:`evaluate`.

        >>> from segkit.index import Bitmap
        >>> from segkit.records import IdMap
        >>> SparkMemberships({"a": Bitmap([0])}, idmap=IdMap()).write_back(None)
        Traceback (most recent call last):
        ...
        TypeError: spark must be a SparkSession, got NoneType

        .. versionadded:: 0.1.0
        """
        _check_spark(spark)
        if keys and self.ids is None:
            raise ValueError("keys=True needs the ids DataFrame: pass keys=False")
        size = self.shard_size
        pieces: list[tuple[str, bytes]] = []
        for name, bm in self._bitmaps.items():
            if not bm:
                continue
            for shard in range(bm.min() // size, bm.max() // size + 1):
                piece = bm & Bitmap(range(shard * size, min((shard + 1) * size, _MAX_ID + 1)))
                if piece:
                    pieces.append((name, piece.serialize()))
        rdd = spark.sparkContext.parallelize(pieces, max(len(pieces), 1)).flatMap(_expand)
        rows = spark.createDataFrame(rdd, "segment STRING, id BIGINT")
        return rows.join(self.ids, "id").select("segment", "id", "key") if keys else rows


# --- funnels --------------------------------------------------------------------------------------


class _FunnelTask:
    """Runs a funnel over one partition of events (pickled to the executors)."""

    def __init__(self, funnel: Funnel, properties: Sequence[str]) -> None:
        self.funnel = funnel
        self.properties = list(properties)
        self.needs_properties = any(s.where is not None for s in funnel.steps) or any(
            x.where is not None for x in funnel.exclusions
        )

    def __call__(self, rows: Iterable[Any]) -> Iterator[tuple[list[str], list[tuple[Any, ...]]]]:
        keys: list[str] = []
        names: list[str] = []
        times: list[int] = []
        props: list[dict[str, Any]] = []
        for row in rows:
            keys.append(row[0])
            names.append(row[1])
            times.append(row[2])
            if self.needs_properties:
                props.append(
                    {p: v for p, v in zip(self.properties, row[3:], strict=True) if v is not None}
                )
        if not keys:
            return
        outcomes = self.funnel.evaluate_columns(
            keys, names, times, properties=props if self.needs_properties else None
        )
        rows_out = [
            (
                outcomes.row_slot[r],
                outcomes.row_level[r],
                outcomes.row_reached[r],
                outcomes.row_moved[r],
                tuple(col[r] for col in outcomes.row_times),
                bool(outcomes.row_excluded[r]),
            )
            for r in range(len(outcomes))
        ]
        yield list(outcomes.slot_keys), rows_out


def funnel_outcomes(
    spark: Any, funnel: Funnel, *, events: Any, partitions: int | None = None
) -> FunnelOutcomes:
    """Every entity's funnel result, computed on Spark and merged on the driver.

    ``events`` has the columns ``key``, ``name``, ``at`` and the properties the
    steps' ``where`` read. The events the funnel reads (all of them for a strict
    order) are partitioned by key, so each entity's events meet in one partition,
    where :meth:`Funnel.evaluate_columns <segkit.Funnel.evaluate_columns>` runs;
    the driver merges the per-entity outcomes (not reports, so medians and
    percentiles stay exact). Entities get ids in key order. Attribute stages and
    ``ties="input_order"`` (a Spark table has no input order) are refused.

    >>> import segkit as sk
    >>> funnel_outcomes(None, sk.Funnel(["visit", "buy"]), events=None)
    Traceback (most recent call last):
    ...
    TypeError: spark must be a SparkSession, got NoneType

    .. versionadded:: 0.1.0
    """
    from segkit.analysis._funnel_report import FunnelOutcomes
    from segkit.analysis.funnel import Funnel

    _check_spark(spark)
    if not isinstance(funnel, Funnel):
        raise TypeError(f"funnel must be a segkit.Funnel, got {type(funnel).__name__}")
    _check_frame(events, "events")
    partitions = _check_partitions(partitions)
    if any(s.profile_attribute is not None for s in funnel.steps):
        raise ValueError("segkit.spark funnels take event steps only, not attribute stages")
    if funnel.ties == "input_order":
        raise ValueError(
            "ties='input_order' needs the events' input order, which a Spark DataFrame"
            " does not have: use 'any_order' or 'strictly_later'"
        )
    _check_columns(events, "events", ["key", "name", "at"])
    f = _functions()
    properties = [c for c in events.columns if c not in ("key", "name", "at")]
    frame = events
    if not funnel.reads_all_events:
        frame = frame.where(f.col("name").isin(sorted(funnel.event_names)))
    frame = frame.select(
        f.col("key"), f.col("name"), f.unix_micros(f.col("at")), *(f.col(p) for p in properties)
    )
    frame = frame.repartition("key") if partitions is None else frame.repartition(partitions, "key")
    parts = frame.rdd.mapPartitions(_FunnelTask(funnel, properties)).collect()
    keys = sorted(key for slot_keys, _ in parts for key in slot_keys)
    idmap = IdMap()
    ids = [idmap.assign(key) for key in keys]
    merged: list[tuple[int, tuple[Any, ...]]] = []
    for slot_keys, rows in parts:
        id_of = idmap.id_of
        merged += [(id_of(slot_keys[row[0]]), row[1:]) for row in rows]
    merged.sort(key=lambda item: item[0])  # stable: an entity's attempts keep their order
    outcomes = FunnelOutcomes(
        funnel.step_names,
        idmap,
        keys,
        ids,
        [],
        positive_times=funnel.preset_name == "posthog",
    )
    outcomes._extend([slot for slot, _ in merged], [row for _, row in merged])
    return outcomes


def funnel(
    spark: Any, funnel: Funnel, *, events: Any, partitions: int | None = None
) -> FunnelReport:
    """Run ``funnel`` over a Spark DataFrame of events: the report of
    :meth:`Funnel.run <segkit.Funnel.run>` (see :func:`funnel_outcomes`).

    >>> import segkit as sk
    >>> funnel(None, sk.Funnel(["visit", "buy"]), events=None)
    Traceback (most recent call last):
    ...
    TypeError: spark must be a SparkSession, got NoneType

    .. versionadded:: 0.1.0
    """
    return funnel_outcomes(spark, funnel, events=events, partitions=partitions).report()
