"""The overlap workload: 5 segments, all 31 exclusive regions and the 10 pairwise counts.

The five segments are rules over the benchmark population (10-40% of the profiles
each, correlated through plan, customer status and lifetime value). segkit defines
them as dynamic segments and answers with ``Engine.overlap``; every peer first
materializes the five rules as boolean membership columns (setup, not timed), then
counts the regions with a GROUP BY over the flags (or over one packed 5-bit code,
whichever is faster for that tool) and the pairwise intersections with sums of ANDs.
All tools must agree on the 31 region counts and the 10 pairwise counts before
anything is timed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from datetime import date
from itertools import combinations
from typing import Any

import segkit as sk
from benches.workloads import Row, median_ms

#: The five segments: name -> rule (share of the profiles in the benchmark data).
SEGMENTS: dict[str, str] = {
    "ov_customers": 'is_customer = true and plan != "free"',  # ~38%
    "ov_premium": 'plan in ["pro", "enterprise"]',  # ~20%
    "ov_high_value": "ltv > 100",  # ~30%
    "ov_recent": "signed_up after @2023-06-30",  # ~20%
    "ov_young": "age < 30",  # ~18%
}
NAMES = tuple(SEGMENTS)
PAIRS = tuple(combinations(range(len(NAMES)), 2))
_RECENT = date(2023, 6, 30)

#: The SQL form of each rule (DuckDB).
SQL: dict[str, str] = {
    "ov_customers": "is_customer AND plan != 'free'",
    "ov_premium": "plan IN ('pro', 'enterprise')",
    "ov_high_value": "ltv > 100",
    "ov_recent": "signed_up > DATE '2023-06-30'",
    "ov_young": "age < 30",
}

Regions = dict[int, int]  # region code (bit i = inside segment i) -> count, codes 1..31
Pairs = dict[tuple[int, int], int]  # (i, j), i < j -> |segment i & segment j|
Counts = tuple[Regions, Pairs]


def _regions(pairs: Sequence[tuple[int, int]] | Mapping[int, int]) -> Regions:
    """Region counts for codes 1..31 (missing codes count 0; code 0 is nobody's)."""
    items = pairs.items() if isinstance(pairs, Mapping) else pairs
    out = dict.fromkeys(range(1, 1 << len(NAMES)), 0)
    for code, count in items:
        if int(code):
            out[int(code)] = int(count)
    return out


# --- segkit ------------------------------------------------------------------------------------


def segkit_setup(engine: sk.Engine) -> tuple[str, ...]:
    """Define the five dynamic segments (dropped again by :func:`segkit_teardown`)."""
    for name, rule in SEGMENTS.items():
        engine.define(name, rule)
    return NAMES


def segkit_teardown(engine: sk.Engine) -> None:
    for name in set(NAMES) & set(engine.segments):
        engine.drop(name)


def segkit_counts(engine: sk.Engine, names: Sequence[str] = NAMES) -> Counts:
    """``Engine.overlap``: its regions and pairwise counts, as codes."""
    report = engine.overlap(list(names))
    bit = {name: 1 << i for i, name in enumerate(names)}
    regions = _regions([(sum(bit[s] for s in r.segments), r.count) for r in report.regions])
    pairwise = report.pairwise
    pairs = {(i, j): int(pairwise[names[i]][names[j]]) for i, j in PAIRS}
    return regions, pairs


# --- polars ------------------------------------------------------------------------------------


def polars_setup(frame: Any) -> Any:
    """The five membership flags as a polars DataFrame of Boolean columns."""
    import polars as pl

    c = pl.col
    return frame.select(
        ((c("is_customer")) & (c("plan") != "free")).alias("ov_customers"),
        c("plan").is_in(["pro", "enterprise"]).alias("ov_premium"),
        (c("ltv") > 100).alias("ov_high_value"),
        (c("signed_up") > _RECENT).alias("ov_recent"),
        (c("age") < 30).alias("ov_young"),
    )


def polars_counts(flags: Any) -> Counts:
    """Pack the flags into a 5-bit code and count it; sum the 10 pairwise ANDs."""
    import polars as pl

    code = pl.sum_horizontal(
        pl.col(name).cast(pl.UInt8) * (1 << i) for i, name in enumerate(NAMES)
    ).alias("code")
    counted = flags.group_by(code).len()
    regions = _regions(list(zip(counted["code"].to_list(), counted["len"].to_list(), strict=True)))
    sums = flags.select(
        (pl.col(NAMES[i]) & pl.col(NAMES[j])).sum().alias(f"{i}{j}") for i, j in PAIRS
    ).row(0)
    return regions, {pair: int(v) for pair, v in zip(PAIRS, sums, strict=True)}


# --- DuckDB ------------------------------------------------------------------------------------


def duckdb_setup(con: Any) -> str:
    """A table ``overlap_flags`` of the five membership flags; returns its name."""
    flags = ", ".join(f"{SQL[name]} AS {name}" for name in NAMES)
    con.execute(f"CREATE OR REPLACE TABLE overlap_flags AS SELECT {flags} FROM profiles")
    return "overlap_flags"


_DUCKDB_REGIONS = f"SELECT {', '.join(NAMES)}, count(*) FROM overlap_flags GROUP BY ALL"
_DUCKDB_PAIRS = (
    "SELECT "
    + ", ".join(f"count_if({NAMES[i]} AND {NAMES[j]})" for i, j in PAIRS)
    + " FROM overlap_flags"
)


def duckdb_counts(con: Any) -> Counts:
    """GROUP BY the five flags; one query of 10 ``count_if(a AND b)``."""
    rows = con.execute(_DUCKDB_REGIONS).fetchall()
    regions = _regions([(sum(1 << i for i in range(5) if row[i]), row[5]) for row in rows])
    sums = con.execute(_DUCKDB_PAIRS).fetchone()
    return regions, {pair: int(v) for pair, v in zip(PAIRS, sums, strict=True)}


# --- pandas and numpy --------------------------------------------------------------------------


def pandas_setup(frame: Any) -> Any:
    """The five membership flags as a pandas DataFrame of bool columns."""
    import pandas as pd

    return pd.DataFrame(
        {
            "ov_customers": frame["is_customer"] & (frame["plan"] != "free"),
            "ov_premium": frame["plan"].isin(["pro", "enterprise"]),
            "ov_high_value": frame["ltv"] > 100,
            "ov_recent": frame["signed_up"] > pd.Timestamp(_RECENT),
            "ov_young": frame["age"] < 30,
        }
    )


def pandas_counts(flags: Any) -> Counts:
    """Pack the flags into a 5-bit code and ``value_counts`` it; sum the 10 pairwise ANDs."""
    code = flags[NAMES[0]].astype("uint8")
    for i, name in enumerate(NAMES[1:], start=1):
        code = code | (flags[name].astype("uint8") * (1 << i))
    regions = _regions(code.value_counts().to_dict())
    pairs = {(i, j): int((flags[NAMES[i]] & flags[NAMES[j]]).sum()) for i, j in PAIRS}
    return regions, pairs


def numpy_setup(flags: Any) -> list[Any]:
    """The pandas flags as five numpy bool arrays."""
    return [flags[name].to_numpy() for name in NAMES]


def numpy_counts(arrays: list[Any]) -> Counts:
    """``bincount`` of the packed code; ``count_nonzero(a & b)`` per pair (a reference)."""
    import numpy as np

    code = arrays[0].astype(np.uint8)
    for i, arr in enumerate(arrays[1:], start=1):
        code |= arr.astype(np.uint8) << i
    counts = np.bincount(code, minlength=1 << len(NAMES))
    regions = _regions(dict(enumerate(counts.tolist())))
    pairs = {(i, j): int(np.count_nonzero(arrays[i] & arrays[j])) for i, j in PAIRS}
    return regions, pairs


# --- the workload ------------------------------------------------------------------------------

SEGKIT = "segkit (Engine.overlap)"


def _timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    start = time.perf_counter()
    out = fn()
    return out, (time.perf_counter() - start) * 1e3


def describe(counts: Counts, size: int) -> str:
    """The detail column: the segments' sizes and how many regions are non-empty."""
    regions, _ = counts
    totals = [sum(v for code, v in regions.items() if code >> i & 1) for i in range(len(NAMES))]
    shares = f"{min(totals) / size:.0%}-{max(totals) / size:.0%}" if size else "-"
    nonempty = sum(1 for v in regions.values() if v)
    return f"31 regions ({nonempty} non-empty) + 10 pairs; 5 segments of {shares}"


def check(name: str, got: Counts, expected: Counts) -> None:
    """Raise if ``got`` differs from segkit's counts (naming the differences)."""
    for part, g, e in (("region", got[0], expected[0]), ("pair", got[1], expected[1])):
        if g != e:
            diff = {
                k: (g.get(k), e.get(k)) for k in sorted(set(g) | set(e)) if g.get(k) != e.get(k)
            }
            raise AssertionError(
                f"overlap: {name} differs from segkit ({part}: ours, segkit's): {diff}"
            )


def overlap_workload(tools: dict[str, Any], runs: int) -> list[Row]:
    """All 31 regions and 10 pairwise counts of 5 segments; every tool must agree."""
    engine: sk.Engine = tools["segkit"]
    setup: list[Row] = []
    try:
        _, ms = _timed(lambda: segkit_setup(engine))
        setup.append(
            Row("setup", "overlap: segkit 5 x Engine.define", ms, "once, not in the timings")
        )
        pl_flags, ms = _timed(lambda: polars_setup(tools["polars"]))
        setup.append(Row("setup", "overlap: polars 5 flag columns", ms, "once, not in the timings"))
        _, ms = _timed(lambda: duckdb_setup(tools["duckdb"]))
        setup.append(
            Row("setup", "overlap: duckdb table of 5 flags", ms, "once, not in the timings")
        )
        pd_flags, ms = _timed(lambda: pandas_setup(tools["pandas"]))
        setup.append(Row("setup", "overlap: pandas 5 flag columns", ms, "once, not in the timings"))
        np_flags = numpy_setup(pd_flags)
        con = tools["duckdb"]
        cases: dict[str, Callable[[], Counts]] = {
            SEGKIT: lambda: segkit_counts(engine),
            "duckdb (GROUP BY flags)": lambda: duckdb_counts(con),
            "polars (group_by code)": lambda: polars_counts(pl_flags),
            "pandas (value_counts code)": lambda: pandas_counts(pd_flags),
            "numpy (bincount, reference)": lambda: numpy_counts(np_flags),
        }
        expected = cases[SEGKIT]()
        for name, run in cases.items():
            check(name, run(), expected)
        detail = describe(expected, len(engine))
        rows = [
            Row("overlap", name, median_ms(run, runs), detail, versus="" if i == 0 else SEGKIT)
            for i, (name, run) in enumerate(cases.items())
        ]
        con.execute("DROP TABLE overlap_flags")
    finally:
        segkit_teardown(engine)
    return rows + setup


def memory_case(tool: str, handle: Any, runs: int) -> None:
    """What the memory bench runs for one tool: the setup, then the counts ``runs`` times."""
    if tool == "segkit":
        segkit_setup(handle)
        fn: Callable[[], Counts] = lambda: segkit_counts(handle)  # noqa: E731
    elif tool == "polars":
        flags = polars_setup(handle)
        fn = lambda: polars_counts(flags)  # noqa: E731
    elif tool == "duckdb":
        duckdb_setup(handle)
        fn = lambda: duckdb_counts(handle)  # noqa: E731
    else:
        pd_flags = pandas_setup(handle)
        fn = lambda: pandas_counts(pd_flags)  # noqa: E731
    for _ in range(runs):
        fn()
