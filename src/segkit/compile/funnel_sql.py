"""Compile a :class:`~segkit.Funnel` into SQL, and build its report from the result.

:func:`funnel_to_sql` (also :meth:`segkit.Funnel.to_sql`) writes one ``SELECT`` that
computes segkit's default funnel semantics in the database, over the ``events``
table of :func:`~segkit.compile.sql.to_sql_ddl` (``key``, ``name``, ``at``, one
column per property). It returns one row per entity that entered the funnel:

``key``, ``level`` (steps reached, at least 1), ``t0`` … ``t{n-1}``
    the time of each step of the entity's chosen attempt, in microseconds since the
    Unix epoch (``NULL`` from step ``level`` on).

:func:`report_from_rows` turns those rows into the same
:class:`~segkit.analysis.funnel.FunnelReport` that :meth:`~segkit.Funnel.run`
returns for the same events: counts, conversions, time statistics and histograms,
members. Every field is exact (times are whole microseconds; nothing is aggregated in
the database). :meth:`~segkit.analysis.funnel.FunnelReport.levels` lists only the
entities that entered, in the order of the rows.

The semantics (``docs/funnels.md``): every step-0 event opens an attempt; step ``k``
is the entity's earliest step-``k`` event at or after step ``k - 1`` (equal times
chain; later only, with ``ties="strictly_later"``) and within ``window`` of step 0
(end included); the entity keeps its attempt with the most steps, then the one that
reached its last step earliest, then the one that started latest. As in
:func:`~segkit.compile.sql.to_sql`, values (event names, ``where`` literals, the
window, the time zone) are bound parameters and identifiers are quoted.

Supported: ``order="ordered"``; ``attempts`` ``"best"`` or ``"first"``; ``ties``
``"any_order"`` or ``"strictly_later"``; any window (a calendar one needs a time
zone by name or a fixed offset); steps with distinct event names, with or without a
``where`` (which needs a schema). Anything else raises :class:`ValueError` naming it.

>>> import segkit as sk
>>> funnel = sk.Funnel(["visit", "buy"], window="7d")
>>> print(funnel_to_sql(funnel).text)
WITH c0 AS (SELECT x."key", epoch_us(x.at0) AS t0, epoch_us(x.at0) + $p2 AS dl FROM (SELECT DISTINCT e."key", e."at" AS at0 FROM "events" AS e WHERE e."name" = $p1) AS x),
e1 AS (SELECT e."key", epoch_us(e."at") AS t FROM "events" AS e WHERE e."name" = $p3),
c1 AS (SELECT c.*, s.t AS t1 FROM c0 AS c ASOF LEFT JOIN e1 AS s ON c."key" = s."key" AND s.t >= c.t0),
lv AS (SELECT c."key", c.t0, CASE WHEN c.t1 <= c.dl THEN c.t1 END AS t1 FROM c1 AS c),
ranked AS (SELECT lv.*, 1 + (CASE WHEN lv.t1 IS NULL THEN 0 ELSE 1 END) AS level FROM lv)
SELECT r."key", r.level, r.t0, r.t1
FROM (SELECT ranked.*, row_number() OVER (PARTITION BY ranked."key" ORDER BY ranked.level DESC, COALESCE(ranked.t1, ranked.t0) ASC, ranked.t0 DESC) AS rn FROM ranked) AS r
WHERE r.rn = 1
>>> funnel_to_sql(funnel).params
{'p1': 'visit', 'p2': 604800000000, 'p3': 'buy'}

.. versionadded:: 0.1.0
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import timezone, tzinfo
from typing import TYPE_CHECKING, Any

from segkit.compile.sql import (
    NAME,
    SqlQuery,
    TableName,
    _check_name,
    _Compiler,
    _Dialect,
    _dialect,
    _Scope,
    _table,
)
from segkit.dsl import ast
from segkit.dsl.check import iter_type_errors
from segkit.dsl.rule import Rule
from segkit.timeutil import Duration

if TYPE_CHECKING:
    from segkit.analysis._funnel_report import FunnelOutcomes, FunnelReport
    from segkit.analysis.funnel import Funnel
    from segkit.compile.sql import Dialect
    from segkit.records import IdMap
    from segkit.schema import Schema

__all__ = ["funnel_to_sql", "outcomes_from_rows", "report_from_rows"]


def _unsupported(what: str) -> ValueError:
    return ValueError(f"Funnel.to_sql supports segkit's default ordered funnel only: {what}")


def _check_supported(funnel: Funnel, schema: Schema | None) -> None:
    if funnel.preset_name is not None:
        raise _unsupported(f"the {funnel.preset_name!r} preset is not supported")
    if funnel.order != "ordered":
        raise _unsupported(f"order={funnel.order!r} is not supported")
    if funnel.attempts not in ("best", "first"):
        raise _unsupported(f"attempts={funnel.attempts!r} is not supported")
    if funnel.ties not in ("any_order", "strictly_later"):
        raise _unsupported(f"ties={funnel.ties!r} is not supported (SQL rows have no order)")
    if funnel.reuse_events:
        raise _unsupported("reuse_events=True is not supported")
    if funnel.exclusions:
        raise _unsupported("exclusions are not supported")
    seen: set[str] = set()
    for k, step in enumerate(funnel.steps):
        if step.event is None:
            raise _unsupported(
                f"step {k} is the attribute stage {step.profile_attribute!r}; SQL funnels read"
                " events only"
            )
        if step.event in seen:
            raise _unsupported(
                f"event {step.event!r} is used by two steps; each step needs its own event name"
            )
        seen.add(step.event)
        if step.where is not None and schema is None:
            raise ValueError(
                f"step {k} ({step.label!r}) has a where filter: pass schema= to to_sql() or"
                " Funnel(schema=...) so that its properties have column types"
            )


def _zone_name(tz: tzinfo) -> str | None:
    if tz is timezone.utc:
        return "UTC"
    key = getattr(tz, "key", None)
    return key if isinstance(key, str) else None


def funnel_to_sql(
    funnel: Funnel,
    dialect: Dialect = "duckdb",
    *,
    events: TableName = "events",
    schema: Schema | None = None,
) -> SqlQuery:
    """Compile ``funnel`` into one ``SELECT`` returning each entrant's level and step times.

    The rows are ``(key, level, t0, …, t{n-1})``: times in microseconds since the
    Unix epoch, ``NULL`` for the steps not reached. :func:`report_from_rows` makes
    the :class:`~segkit.analysis.funnel.FunnelReport`. ``schema`` (default: the
    funnel's) types the properties that step ``where`` filters read; ``events``
    names the table (one identifier or a tuple of parts). DuckDB gets one ``ASOF
    JOIN`` per step; Spark and PostgreSQL a range join and ``min()``.

    Options the SQL does not compute raise :class:`ValueError` naming them:

    >>> import segkit as sk
    >>> funnel_to_sql(sk.Funnel(["a", "b"], order="strict"))
    Traceback (most recent call last):
    ...
    ValueError: Funnel.to_sql supports segkit's default ordered funnel only: order='strict' is not supported
    >>> print(funnel_to_sql(sk.Funnel(["a"]), "spark", events=("lake", "events")).text)
    WITH c0 AS (SELECT x.`key`, unix_micros(x.at0) AS t0 FROM (SELECT DISTINCT e.`key`, e.`at` AS at0 FROM `lake`.`events` AS e WHERE e.`name` = :p1) AS x),
    lv AS (SELECT c.`key`, c.t0 FROM c0 AS c),
    ranked AS (SELECT lv.*, 1 AS level FROM lv)
    SELECT r.`key`, r.level, r.t0
    FROM (SELECT ranked.*, row_number() OVER (PARTITION BY ranked.`key` ORDER BY ranked.level DESC, COALESCE(ranked.t0) ASC, ranked.t0 DESC) AS rn FROM ranked) AS r
    WHERE r.rn = 1

    .. versionadded:: 0.1.0
    """
    return _compile(funnel, _dialect(dialect), events, funnel.schema if schema is None else schema)


def _compile(funnel: Funnel, d: _Dialect, events: TableName, schema: Schema | None) -> SqlQuery:
    from segkit.analysis._funnel_options import fixed_length_us
    from segkit.schema import Schema as _Schema

    _check_supported(funnel, schema)
    table = _table(d, events, "events")
    tz: tzinfo = funnel.timezone or timezone.utc
    compiler = _Compiler(schema if schema is not None else _Schema(), d, "")
    compiler.events_table = table
    k, name, at = compiler.k, d.ident(NAME), d.ident("at")
    n = len(funnel.steps)
    asof = d.asof_join
    window = funnel.window

    def conditions(index: int) -> str:
        step = funnel.steps[index]
        assert step.event is not None
        conds = [f"e.{name} = {compiler.param(step.event)}"]
        if step.where is not None:
            assert schema is not None
            conds.append(_where_sql(compiler, schema, step.event, step.where))
        return " AND ".join(conds)

    # step 0: the attempts' starts (one per distinct time: equal starts give equal chains)
    start = (
        f"SELECT e.{k}, min(e.{at}) AS at0 FROM {table} AS e WHERE {conditions(0)} GROUP BY e.{k}"
        if funnel.attempts == "first"
        else f"SELECT DISTINCT e.{k}, e.{at} AS at0 FROM {table} AS e WHERE {conditions(0)}"
    )
    columns = [f"x.{k}", f"{d.epoch_us('x.at0')} AS t0"]
    if window is not None:
        exact = fixed_length_us(window, tz)
        if exact is not None:
            columns.append(f"{d.epoch_us('x.at0')} + {compiler.param(exact)} AS dl")
        else:
            assert isinstance(window, Duration)
            zone = _zone_name(tz)
            if zone is None and not isinstance(tz, timezone):
                raise ValueError(
                    f"the calendar window {str(window)!r} needs the funnel's time zone by"
                    " name; pass timezone= (or a schema timezone) with an IANA name such as"
                    " 'Europe/Paris'"
                )
            deadline = compiler.after("x.at0", window, ast.Node(), tz=tz, tz_name=zone)
            columns.append(f"{d.epoch_us(deadline)} AS dl")
    ctes = [f"c0 AS (SELECT {', '.join(columns)} FROM ({start}) AS x)"]
    op = ">" if funnel.ties == "strictly_later" else ">="
    for j in range(1, n):
        ctes.append(
            f"e{j} AS (SELECT e.{k}, {d.epoch_us(f'e.{at}')} AS t FROM {table} AS e"
            f" WHERE {conditions(j)})"
        )
        if asof:
            ctes.append(
                f"c{j} AS (SELECT c.*, s.t AS t{j} FROM c{j - 1} AS c ASOF LEFT JOIN e{j} AS s"
                f" ON c.{k} = s.{k} AND s.t {op} c.t{j - 1})"
            )
            continue
        kept = [f"c.{k}", "c.t0"] + (["c.dl"] if window is not None else [])
        kept += [f"c.t{i}" for i in range(1, j)]
        on = [f"s.{k} = c.{k}", f"s.t {op} c.t{j - 1}"]
        if window is not None:
            on.append("s.t <= c.dl")
        ctes.append(
            f"c{j} AS (SELECT {', '.join(kept)}, min(s.t) AS t{j} FROM c{j - 1} AS c"
            f" LEFT JOIN e{j} AS s ON {' AND '.join(on)} GROUP BY {', '.join(kept)})"
        )
    times = ["c.t0"]
    for j in range(1, n):
        if asof and window is not None:
            times.append(f"CASE WHEN c.t{j} <= c.dl THEN c.t{j} END AS t{j}")
        else:
            times.append(f"c.t{j}")
    ctes.append(f"lv AS (SELECT c.{k}, {', '.join(times)} FROM c{n - 1} AS c)")
    level = " + ".join(
        ["1"] + [f"(CASE WHEN lv.t{j} IS NULL THEN 0 ELSE 1 END)" for j in range(1, n)]
    )
    ctes.append(f"ranked AS (SELECT lv.*, {level} AS level FROM lv)")
    last = ", ".join(f"ranked.t{j}" for j in reversed(range(n)))
    order = f"ranked.level DESC, COALESCE({last}) ASC, ranked.t0 DESC"
    lines = [
        "WITH " + ",\n".join(ctes),
        f"SELECT r.{k}, r.level, " + ", ".join(f"r.t{j}" for j in range(n)),
        f"FROM (SELECT ranked.*, {d.row_number([f'ranked.{k}'], order)} AS rn FROM ranked) AS r",
        "WHERE r.rn = 1",
    ]
    text = d.finish("\n".join(lines))
    return SqlQuery(text, d.name, None, slots=tuple(compiler.slots.items()), tz=tz)


def _where_sql(compiler: _Compiler, schema: Schema, event: str, where: Rule) -> str:
    """SQL for a step's ``where`` over the properties of ``event`` (alias ``e``)."""
    checked = Rule(ast.Did(event, where.expr, span=where.expr.span), where.source)
    for error in iter_type_errors(checked, schema):
        raise error
    for node in ast.iter_nodes(where.expr):
        field = getattr(node, "field", None)
        if isinstance(field, str):
            _check_name(field, "a column name")
    compiler.source = where.source
    return compiler.expr(where.expr, _Scope("e", event), False)


def outcomes_from_rows(
    funnel: Funnel, rows: Iterable[Sequence[Any]], *, idmap: IdMap | None = None
) -> FunnelOutcomes:
    """The per-entity outcomes held in the rows of :func:`funnel_to_sql`'s query.

    Like :meth:`segkit.Funnel.evaluate`: aggregate all of them with ``.report()`` or
    a segment with ``.report_for(keys)``. ``idmap`` (an Engine's) numbers the
    entities so that the reports' members combine with the Engine's; every key must
    be in it. Rows that do not fit the funnel raise :class:`ValueError`.

    >>> import segkit as sk
    >>> funnel = sk.Funnel(["visit", "buy"])
    >>> outcomes = outcomes_from_rows(funnel, [("a", 2, 0, 60_000_000), ("b", 1, 0, None)])
    >>> outcomes.report_for(["a"]).steps[1].count, outcomes.report().steps[1].count
    (1, 1)
    >>> outcomes_from_rows(funnel, [("a", 2, 0, None)])
    Traceback (most recent call last):
    ...
    ValueError: row 0 ('a'): level 2 but the time of step 1 is missing

    .. versionadded:: 0.1.0
    """
    from segkit.analysis._funnel_default import MISSING, Outcome
    from segkit.analysis._funnel_report import FunnelOutcomes
    from segkit.records import IdMap as _IdMap

    n = len(funnel.steps)
    own = idmap is None
    ids = _IdMap() if idmap is None else idmap
    keys: list[str] = []
    slot_ids: list[int] = []
    seen: set[str] = set()
    outcomes: list[Outcome] = []
    for r, row in enumerate(rows):
        if len(row) != n + 2:
            raise ValueError(
                f"row {r} has {len(row)} columns; this funnel's rows have {n + 2}"
                f" (key, level and {n} step times)"
            )
        key, level, *times = row
        if not isinstance(key, str) or not key:
            raise ValueError(f"row {r}: the key must be a non-empty string, got {key!r}")
        if key in seen:
            raise ValueError(f"row {r} ({key!r}): the entity has two rows")
        seen.add(key)
        if isinstance(level, bool) or not isinstance(level, int) or not 1 <= level <= n:
            raise ValueError(
                f"row {r} ({key!r}): level must be an int from 1 to {n}, got {level!r}"
            )
        padded: list[int] = []
        for j, t in enumerate(times):
            if j < level:
                if t is None:
                    raise ValueError(
                        f"row {r} ({key!r}): level {level} but the time of step {j} is missing"
                    )
                t = int(t)
                if padded and t < padded[-1]:
                    raise ValueError(f"row {r} ({key!r}): step {j} is earlier than step {j - 1}")
                padded.append(t)
            elif t is not None:
                raise ValueError(f"row {r} ({key!r}): level {level} but step {j} has a time")
        reached = (1 << level) - 1
        outcomes.append(
            (level, reached, reached & ~1, tuple(padded) + (MISSING,) * (n - level), False)
        )
        keys.append(key)
        slot_ids.append(ids.assign(key) if own else ids.id_of(key))
    result = FunnelOutcomes(funnel.step_names, ids, keys, slot_ids, [])
    result._extend(range(len(keys)), outcomes)
    return result


def report_from_rows(
    funnel: Funnel, rows: Iterable[Sequence[Any]], *, idmap: IdMap | None = None
) -> FunnelReport:
    """The :class:`~segkit.analysis.funnel.FunnelReport` of :func:`funnel_to_sql`'s rows.

    Equal to ``funnel.run(events)`` over the same events, field by field.

    >>> import segkit as sk
    >>> funnel = sk.Funnel(["visit", "buy"])
    >>> report = report_from_rows(funnel, [("a", 2, 0, 300_000_000), ("b", 1, 0, None)])
    >>> report.total_conversion, report.steps[1].time_from_previous.median, report.members(1).keys()
    (0.5, datetime.timedelta(seconds=300), ['a'])

    .. versionadded:: 0.1.0
    """
    return outcomes_from_rows(funnel, rows, idmap=idmap).report()
