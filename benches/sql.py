"""The SQL workload: the same questions asked of DuckDB through segkit's SQL back-end.

Three questions, each answered by the in-memory segkit and by DuckDB running the
query segkit writes, on the same data; the answers must be equal before anything is
timed:

* **filter**: :data:`benches.workloads.FILTER_RULE` through
  :func:`segkit.compile.sql.to_sql` on the runner's DuckDB ``profiles`` table (the one
  the ``filter`` workload's hand-written SQL reads), against ``Engine.query``;
* **event rule**: :data:`EVENT_RULE` over an ``events`` table holding the log of
  ``data.funnel_log(n // 10)`` (an Engine with those events tracked answers it; the
  log is a tenth of the population so that tracking it stays within minutes);
* **funnel**: the 6-step funnel of :mod:`benches.funnel` on ``data.funnel_log(n)``:
  :meth:`segkit.Funnel.to_sql` on DuckDB (the query and its fetched rows, then
  also :func:`segkit.compile.funnel_sql.report_from_rows`) against the vectorised
  in-memory funnel (``evaluate_columns`` on numpy arrays with integer ids).

The DuckDB tables use the layout of :func:`segkit.compile.sql.to_sql_ddl` (``key``,
``name``, ``at`` as ``TIMESTAMPTZ``), loaded once and not timed. Run it with
``python -m benches --size small|1m|10m --only sql``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import segkit as sk
from benches import data, funnel, workloads
from benches.workloads import Row, median_ms
from segkit import datasets
from segkit.compile.funnel_sql import report_from_rows
from segkit.compile.sql import to_sql, to_sql_ddl
from segkit.records import IdMap

#: The event rule: a count over a relative window (half the log's 180 days).
EVENT_RULE = "did visit >= 3 times in last 90d"


def _keys(con: Any, text: str, params: dict[str, Any]) -> set[str]:
    return {key for (key,) in con.execute(text, params).fetchall()}


def load_events(con: Any, log: data.FunnelLog) -> None:
    """An ``events`` table (``to_sql_ddl`` layout) and a ``profiles`` table of the log."""
    import polars as pl

    schema = sk.Schema(events=list(data.FUNNEL_EVENTS))
    con.execute(to_sql_ddl(schema))
    keys = pl.Series("key", log.keys, dtype=pl.String)
    names = pl.Series("name", list(data.FUNNEL_EVENTS), dtype=pl.String)
    frame = pl.DataFrame(
        {
            "key": keys.gather(pl.Series(log.entity, dtype=pl.UInt32)),
            "name": names.gather(pl.Series(log.event, dtype=pl.UInt32)),
            "at": pl.Series(log.ts_us, dtype=pl.Int64).cast(pl.Datetime("us", "UTC")),
        }
    )
    con.register("source", frame.to_arrow())
    con.execute('INSERT INTO events SELECT "key", "name", "at" FROM source')
    con.unregister("source")
    con.register("source", pl.DataFrame({"key": keys}).to_arrow())
    con.execute("INSERT INTO profiles (key) SELECT key FROM source")
    con.unregister("source")


def filter_rows(engine: sk.Engine, con: Any, runs: int) -> list[Row]:
    """FILTER_RULE: ``Engine.query`` against ``to_sql`` on the DuckDB ``profiles`` table."""
    query = to_sql(workloads.FILTER_RULE, engine.schema, now=engine.now())
    params = query.params
    expected = set(engine.query(workloads.FILTER_RULE).keys())
    got = _keys(con, query.text, params)
    if got != expected:
        raise AssertionError(f"sql: to_sql found {len(got)} profiles, Engine.query {len(expected)}")
    detail = f"{len(expected):,} matches"
    ours = "segkit filter (Engine.query)"
    return [
        Row("sql", ours, median_ms(lambda: engine.query(workloads.FILTER_RULE), runs), detail),
        Row(
            "sql",
            "duckdb filter (to_sql)",
            median_ms(lambda: _keys(con, query.text, params), runs),
            detail,
            versus=ours,
        ),
    ]


def event_rows(log: data.FunnelLog, runs: int) -> list[Row]:
    """EVENT_RULE: an Engine with the log tracked against ``to_sql`` on its tables."""
    import duckdb

    schema = sk.Schema(events=list(data.FUNNEL_EVENTS))
    now = datasets.DEFAULT_NOW
    engine = sk.Engine(schema, clock=lambda: now)
    engine.track_many(log.events())
    con = duckdb.connect()
    load_events(con, log)
    query = to_sql(EVENT_RULE, schema, now=now)
    params = query.params
    expected = set(engine.query(EVENT_RULE).keys())
    got = _keys(con, query.text, params)
    if got != expected:
        raise AssertionError(
            f"sql: to_sql found {len(got)} profiles for {EVENT_RULE!r}, Engine.query"
            f" {len(expected)}"
        )
    detail = f"{len(expected):,} matches of {len(log.keys):,} over {log.size:,} events"
    ours = "segkit event rule (Engine.query)"
    return [
        Row("sql", ours, median_ms(lambda: engine.query(EVENT_RULE), runs), detail),
        Row(
            "sql",
            "duckdb event rule (to_sql)",
            median_ms(lambda: _keys(con, query.text, params), runs),
            detail,
            versus=ours,
        ),
    ]


def funnel_rows(log: data.FunnelLog, runs: int) -> list[Row]:
    """The 6-step funnel: segkit's vectorised engine against ``Funnel.to_sql`` on DuckDB."""
    import duckdb
    import numpy as np

    the_funnel = sk.Funnel(list(data.FUNNEL_STEPS), window=timedelta(days=30))
    idmap = IdMap()
    for key in log.keys:
        idmap.assign(key)
    names = np.array(data.FUNNEL_EVENTS)[log.event]

    def in_memory() -> sk.FunnelReport:
        return the_funnel.evaluate_columns(log.entity, names, log.ts_us, idmap=idmap).report()

    con = duckdb.connect()
    load_events(con, log)
    query = the_funnel.to_sql()
    params = query.params

    def rows() -> list[tuple[Any, ...]]:
        return con.execute(query.text, params).fetchall()  # type: ignore[no-any-return]

    def report() -> sk.FunnelReport:
        return report_from_rows(the_funnel, rows(), idmap=idmap)

    expected = in_memory()
    got = report()
    if got.to_dict() != expected.to_dict():
        raise AssertionError(
            "sql: the report of Funnel.to_sql's rows differs from segkit's:"
            f" counts {[s.count for s in got.steps]}, segkit {[s.count for s in expected.steps]}"
        )
    funnel.check_same("Funnel.to_sql", funnel.answer_of(got), funnel.answer_of(expected))
    detail = f"{log.size:,} events; counts " + "/".join(f"{s.count:,}" for s in expected.steps)
    ours = "segkit funnel (numpy columns, ids)"
    tools: dict[str, Callable[[], Any]] = {
        "duckdb funnel (Funnel.to_sql rows)": rows,
        "duckdb funnel (+ report_from_rows)": report,
    }
    out = [Row("sql", ours, median_ms(in_memory, runs), detail)]
    out += [
        Row("sql", name, median_ms(fn, runs), detail, versus=ours) for name, fn in tools.items()
    ]
    return out


def sql_workload(tools: dict[str, Any], size: str, runs: int) -> list[Row]:
    """The three questions; ``tools`` are the runner's (its Engine and DuckDB profiles)."""
    n = data.SIZES[size]
    out = filter_rows(tools["segkit"], tools["duckdb"], runs)
    out += event_rows(data.funnel_log(max(1, n // 10)), runs)
    out += funnel_rows(data.funnel_log(n), runs)
    return out
