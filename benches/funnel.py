"""The funnel workload: 6 ordered steps, a 30-day window, counts and mean step times.

Every tool computes segkit's default ordered funnel (``sk.Funnel(steps,
window=timedelta(days=30))``: ``order="ordered"``, ``ties="any_order"``,
``attempts="best"``) on the log of :func:`benches.data.funnel_log`:

* every ``visit`` event ``s`` opens an attempt; its chain takes, for each next step
  ``k``, the entity's earliest step-``k`` event at or after the chain's previous
  step (``t_k = min{t of step k : t >= t_(k-1)}``: equal times chain), and stops at
  the first step with no such event or whose event lies after ``s + 30 days`` (the
  end is included);
* an entity's result is its attempt with the most steps, then the one that reached
  its last step earliest, then the one that started latest; the entity counts at
  steps ``0 .. level - 1``;
* a step's mean time is the mean of ``t_k - t_(k-1)`` over the entities that reached
  it, each with the times of its chosen attempt.

The peers do it the way their users would: DuckDB with one ``ASOF LEFT JOIN`` per step
and ``QUALIFY row_number()`` for the best attempt; polars with ``join_asof`` (forward,
by entity) per step, the attempts still alive after each step re-sorted by their last
time; pandas with ``merge_asof`` the same way. Every tool's counts must equal
segkit's exactly and its mean times to a microsecond (relative 1e-9) before anything
is timed.

``python -m benches.funnel --size small|1m|10m [--runs N]`` runs this workload alone.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import segkit as sk
from benches import data
from benches.workloads import Row, median_ms
from segkit.records import IdMap

WINDOW = timedelta(days=30)
WINDOW_US = WINDOW // timedelta(microseconds=1)
STEPS = data.FUNNEL_STEPS

#: (counts per step, mean time from the previous step in µs: None for step 0)
Answer = tuple[list[int], list[float | None]]


# --- loading the log into each tool (not timed as part of the funnel) ----------------------------


def build_polars(log: data.FunnelLog) -> Any:
    import polars as pl

    return pl.DataFrame(
        {
            "id": pl.Series(log.entity, dtype=pl.UInt32),
            "event": pl.Series(
                [data.FUNNEL_EVENTS[i] for i in range(len(data.FUNNEL_EVENTS))], dtype=pl.String
            )
            .cast(pl.Enum(data.FUNNEL_EVENTS))
            .gather(pl.Series(log.event, dtype=pl.UInt32)),
            "ts": pl.Series(log.ts_us, dtype=pl.Int64),
        }
    )


def build_duckdb(frame: Any) -> Any:
    import duckdb

    con = duckdb.connect()
    names = ", ".join(f"'{e}'" for e in data.FUNNEL_EVENTS)
    con.execute(f"CREATE TYPE event_t AS ENUM ({names})")
    con.register("source", frame.to_arrow())
    con.execute("CREATE TABLE events AS SELECT id, event::event_t AS event, ts FROM source")
    con.unregister("source")
    return con


def build_pandas(frame: Any) -> Any:
    import pandas as pd

    out = frame.to_pandas()
    out["event"] = out["event"].astype(pd.CategoricalDtype(data.FUNNEL_EVENTS))
    return out


# --- the peers ----------------------------------------------------------------------------------


def funnel_sql(n: int = len(STEPS), window_us: int = WINDOW_US) -> str:
    """DuckDB: one ASOF LEFT JOIN per step, then the best attempt per entity."""
    parts = [f"s0 AS (SELECT id, ts AS t0 FROM events WHERE event = '{STEPS[0]}')"]
    for k in range(1, n):
        parts.append(
            f"c{k} AS (SELECT c.*, e.ts AS t{k} FROM {'s0' if k == 1 else f'c{k - 1}'} c"
            f" ASOF LEFT JOIN (SELECT id, ts FROM events WHERE event = '{STEPS[k]}') e"
            f" ON c.id = e.id AND e.ts >= c.t{k - 1})"
        )
    reached = " + ".join(f"coalesce(t{k} <= t0 + {window_us}, false)::INTEGER" for k in range(1, n))
    last = " ".join(f"WHEN {k + 1} THEN t{k}" for k in range(n))
    parts.append(f"lv AS (SELECT *, 1 + {reached} AS level FROM c{n - 1})")
    parts.append(
        f"best AS (SELECT * FROM lv QUALIFY row_number() OVER (PARTITION BY id"
        f" ORDER BY level DESC, CASE level {last} END ASC, t0 DESC) = 1)"
    )
    columns = [f"count(*) FILTER (WHERE level >= {k + 1})" for k in range(n)]
    columns += [f"avg(t{k} - t{k - 1}) FILTER (WHERE level >= {k + 1})" for k in range(1, n)]
    return f"WITH {', '.join(parts)} SELECT {', '.join(columns)} FROM best"


def funnel_duckdb(con: Any) -> Answer:
    row = con.execute(funnel_sql()).fetchone()
    n = len(STEPS)
    counts = [int(c) for c in row[:n]]
    return counts, [None, *(None if m is None else float(m) for m in row[n:])]


def funnel_polars(frame: Any) -> Answer:
    import polars as pl

    n = len(STEPS)
    steps = [frame.filter(pl.col("event") == name).select("id", "ts") for name in STEPS]
    alive = steps[0].select("id", pl.col("ts").alias("t0"), pl.col("ts").alias("t"))
    done = []
    for k in range(1, n):
        right = steps[k].rename({"ts": f"t{k}"})
        joined = alive.join_asof(
            right,
            left_on="t",
            right_on=f"t{k}",
            by="id",
            strategy="forward",
            check_sortedness=False,
        )
        ok = pl.col(f"t{k}").is_not_null() & (pl.col(f"t{k}") <= pl.col("t0") + WINDOW_US)
        done.append(joined.filter(~ok).drop(f"t{k}").with_columns(level=pl.lit(k, pl.Int8)))
        alive = joined.filter(ok).with_columns(t=pl.col(f"t{k}")).sort("t")
    done.append(alive.with_columns(level=pl.lit(n, pl.Int8)))
    best = (
        pl.concat(done, how="diagonal")
        .sort(["id", "level", "t", "t0"], descending=[False, True, False, True])
        .group_by("id", maintain_order=True)
        .first()
    )
    levels = best["level"]
    counts = [int((levels >= k + 1).sum()) for k in range(n)]
    means = best.select(
        [(pl.col(f"t{k}") - pl.col(f"t{k - 1}")).mean().alias(f"m{k}") for k in range(1, n)]
    ).row(0)
    return counts, [None, *means]


def funnel_pandas(frame: Any) -> Answer:
    import pandas as pd

    n = len(STEPS)
    steps = [frame.loc[frame["event"] == name, ["id", "ts"]] for name in STEPS]
    alive = pd.DataFrame({"id": steps[0]["id"].to_numpy(), "t0": steps[0]["ts"].to_numpy()})
    alive["t"] = alive["t0"]
    done = []
    for k in range(1, n):
        right = steps[k].rename(columns={"ts": f"t{k}"})
        joined = pd.merge_asof(
            alive, right, left_on="t", right_on=f"t{k}", by="id", direction="forward"
        )
        ok = (joined[f"t{k}"] <= joined["t0"] + WINDOW_US).to_numpy()  # NaN compares False
        dead = joined.loc[~ok].drop(columns=[f"t{k}"])
        dead["level"] = k
        done.append(dead)
        alive = joined.loc[ok].sort_values("t" if False else f"t{k}", kind="stable")
        alive = alive.assign(t=alive[f"t{k}"].astype("int64"))
    alive = alive.assign(level=n)
    done.append(alive)
    best = (
        pd.concat(done, ignore_index=True)
        .sort_values(["id", "level", "t", "t0"], ascending=[True, False, True, False])
        .drop_duplicates("id", keep="first")
    )
    levels = best["level"].to_numpy()
    counts = [int((levels >= k + 1).sum()) for k in range(n)]
    means: list[float | None] = [None]
    for k in range(1, n):
        diff = (best[f"t{k}"] - best[f"t{k - 1}"]).dropna()
        means.append(float(diff.mean()) if len(diff) else None)
    return counts, means


# --- segkit ---------------------------------------------------------------------------------------


def segkit_funnel() -> sk.Funnel:
    return sk.Funnel(list(STEPS), window=WINDOW)


def answer_of(report: Any) -> Answer:
    """Counts and mean step times (µs) of a :class:`segkit.FunnelReport`."""
    counts = [s.count for s in report.steps]
    means: list[float | None] = [None]
    for s in report.steps[1:]:
        mean = s.time_from_previous.mean
        means.append(None if mean is None else mean / timedelta(microseconds=1))
    return counts, means


def check_same(name: str, got: Answer, expected: Answer) -> None:
    """Counts exactly, mean times to a microsecond (or a relative 1e-9)."""
    if got[0] != expected[0]:
        raise AssertionError(f"funnel: {name} counts {got[0]}, segkit {expected[0]}")
    for k, (a, b) in enumerate(zip(got[1], expected[1], strict=True)):
        if (a is None) != (b is None) or (
            a is not None and b is not None and abs(a - b) > max(1.0, 1e-9 * abs(b))
        ):
            raise AssertionError(f"funnel: {name} mean time of step {k} is {a} µs, segkit {b}")


#: The segkit row the peers' ratios are taken against.
MAIN = "segkit (numpy columns, ids)"


def segkit_tools(
    log: data.FunnelLog, size: str
) -> tuple[dict[str, Callable[[], Answer]], dict[str, int]]:
    """segkit's ways of running the funnel, and the timed runs each gets (0: default)."""
    from segkit.analysis._funnel_options import use_backend

    funnel = segkit_funnel()
    idmap = IdMap()
    for key in log.keys:  # the entity with id i is log.keys[i], as in an Engine
        idmap.assign(key)
    keys, names, times = log.key_column(), log.name_column(), log.time_column()

    def pure(run: Callable[[], Any]) -> Callable[[], Answer]:
        def go() -> Answer:
            with use_backend("python"):
                return answer_of(run())

        return go

    tools: dict[str, Callable[[], Answer]] = {
        # the peers' columns: ids, event codes of a fixed category list (their Enum,
        # ENUM and category columns), µs
        MAIN: lambda: answer_of(
            funnel.evaluate_columns(
                log.entity, log.event, log.ts_us, idmap=idmap, categories=data.FUNNEL_EVENTS
            ).report()
        ),
        "segkit (lists of str and int)": lambda: answer_of(
            funnel.evaluate_columns(keys, names, times).report()
        ),
    }
    runs = dict.fromkeys(tools, 0)
    big = size != "small"
    if size != "10m":  # 100M Event objects would not fit in memory
        events = log.events()
        tools["segkit (Event objects)"] = lambda: answer_of(funnel.run(events))
        runs["segkit (Event objects)"] = 0
        tools["segkit pure Python (lists)"] = pure(
            lambda: funnel.evaluate_columns(keys, names, times).report()
        )
        tools["segkit pure Python (Event objects)"] = pure(lambda: funnel.run(events))
        runs["segkit pure Python (lists)"] = runs["segkit pure Python (Event objects)"] = (
            1 if big else 0
        )
    return tools, runs


def funnel_workload(size: str, runs: int) -> list[Row]:
    """Generate the log, load it into every tool, check they agree, then time each.

    The pure-Python rows get a single timed run (no warm-up) from the ``1m`` size on:
    they take tens of seconds each.
    """
    n = data.SIZES[size]
    log = data.funnel_log(n)
    tools, own_runs = segkit_tools(log, size)
    frame = build_polars(log)
    con = build_duckdb(frame)
    pdf = build_pandas(frame)
    peers: dict[str, Callable[[], Answer]] = {
        "duckdb (ASOF JOIN)": lambda: funnel_duckdb(con),
        "polars (join_asof)": lambda: funnel_polars(frame),
        "pandas (merge_asof)": lambda: funnel_pandas(pdf),
    }
    expected = tools[MAIN]()
    for name, fn in {**tools, **peers}.items():
        if name != MAIN:
            check_same(name, fn(), expected)
    detail = f"{log.size:,} events; counts " + "/".join(f"{c:,}" for c in expected[0])
    rows = []
    for name, fn in tools.items():
        if own_runs[name] == 1:
            start = time.perf_counter()
            fn()
            ms = (time.perf_counter() - start) * 1e3
            rows.append(Row("funnel", name, ms, detail + " (1 run)"))
        else:
            rows.append(Row("funnel", name, median_ms(fn, runs), detail))
    rows += [
        Row("funnel", name, median_ms(fn, runs), detail, versus=MAIN) for name, fn in peers.items()
    ]
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benches.funnel", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--size", choices=sorted(data.SIZES), default="small")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(argv)
    rows = funnel_workload(args.size, args.runs)
    print(f"# python -m benches.funnel --size {args.size} --runs {args.runs}; {rows[0].detail}")
    fastest = min(r.ms for r in rows if not r.tool.startswith("segkit"))
    for r in rows:
        print(f"{r.tool:<36} {r.ms:>10.1f} ms  {r.ms / fastest:6.2f} x the fastest peer")
    return 0


if __name__ == "__main__":
    sys.exit(main())
