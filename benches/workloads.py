"""The workloads: each checks that every tool agrees, then times it.

A workload returns rows ``(workload, tool, median_ms, detail)``; the runner prints
them with the ratio of segkit's time to each peer's.
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable
from datetime import date
from typing import Any

import attrs

import segkit as sk
from segkit import datasets

FILTER_RULE = (
    'country in ["DE", "FR", "GB"] and plan = "pro" and age between 25 and 40'
    " and ltv > 100 and signed_up after @2024-01-01"
)
FILTER_SQL = (
    "SELECT id FROM profiles WHERE country IN ('DE', 'FR', 'GB') AND plan = 'pro'"
    " AND age BETWEEN 25 AND 40 AND ltv > 100 AND signed_up > DATE '2024-01-01'"
)


@attrs.frozen
class Row:
    workload: str
    tool: str
    ms: float  # median milliseconds per run (or per batch)
    detail: str = ""
    versus: str = ""  # the segkit row (same workload) this one's ratio is taken against


def median_ms(fn: Callable[[], Any], runs: int) -> float:
    """Median wall time of ``runs`` calls of ``fn`` after one warm-up call, in ms."""
    fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


# --- filter: the 5-clause rule ---------------------------------------------------------------


def filter_polars(frame: Any) -> Any:
    import polars as pl

    return frame.filter(
        pl.col("country").is_in(["DE", "FR", "GB"])
        & (pl.col("plan") == "pro")
        & pl.col("age").is_between(25, 40)
        & (pl.col("ltv") > 100)
        & (pl.col("signed_up") > date(2024, 1, 1))
    )["id"]


def filter_pandas(frame: Any) -> Any:
    import pandas as pd

    mask = (
        frame["country"].isin(["DE", "FR", "GB"])
        & (frame["plan"] == "pro")
        & frame["age"].between(25, 40)
        & (frame["ltv"] > 100)
        & (frame["signed_up"] > pd.Timestamp(2024, 1, 1))
    )
    return frame["id"].to_numpy()[mask.to_numpy()]


def filter_duckdb(con: Any) -> Any:
    return con.execute(FILTER_SQL).fetchnumpy()["id"]


def filter_workload(tools: dict[str, Any], runs: int) -> list[Row]:
    """The 5-clause attribute rule, ids returned; every tool must find the same ids."""
    engine: sk.Engine = tools["segkit"]
    expected = sorted(engine.query(FILTER_RULE).ids)
    peers: dict[str, Callable[[], Any]] = {
        "polars (Enum)": lambda: filter_polars(tools["polars"]),
        "duckdb (ENUM)": lambda: filter_duckdb(tools["duckdb"]),
        "pandas (category)": lambda: filter_pandas(tools["pandas"]),
    }
    for name, run in peers.items():
        got = sorted(int(i) for i in run())
        if got != expected:
            raise AssertionError(f"filter: {name} found {len(got)} ids, segkit {len(expected)}")
    detail = f"{len(expected):,} matches"
    rows = [
        Row(
            "filter",
            "segkit (Engine.query)",
            median_ms(lambda: engine.query(FILTER_RULE), runs),
            detail,
        ),
    ]
    plan = sk.compile_plan(FILTER_RULE, engine.schema)
    now = engine.now()
    rows.append(
        Row(
            "filter",
            "segkit (compiled plan)",
            median_ms(lambda: plan.execute(engine, now), runs),
            detail,
        )
    )
    rows.extend(Row("filter", name, median_ms(run, runs), detail) for name, run in peers.items())
    return rows


# --- incremental: upserts with 100 dynamic segments -------------------------------------------


def hundred_rules() -> list[str]:
    """100 different attribute rules of five shapes over the benchmark schema."""
    c, p, t = datasets.COUNTRIES, datasets.PLANS, datasets.TAGS
    rules = []
    for i in range(100):
        shape = i % 5
        if shape == 0:
            rules.append(f'country = "{c[i % 50]}" and age >= {18 + i % 40}')
        elif shape == 1:
            rules.append(f'plan = "{p[i % 4]}" and ltv > {i * 10}')
        elif shape == 2:
            rules.append(
                f'tags has any ["{t[i % 20]}", "{t[(i // 5) % 20]}"]'
                f" and is_customer = true and age < {40 + i // 5}"
            )
        elif shape == 3:
            rules.append(
                f"age between {18 + i % 30} and {40 + i % 30}"
                f' and country in ["{c[i % 7]}", "{c[i % 11]}"]'
            )
        else:
            month, day = 1 + i % 12, 1 + i // 12
            rules.append(f'signed_up after @2022-{month:02d}-{day:02d} and plan != "free"')
    return rules


def redraw_updates(n_profiles: int, count: int, seed: int = 5) -> list[tuple[str, dict[str, Any]]]:
    """Updates that redraw one or two attributes at random (the hard case)."""
    rng = random.Random(seed)
    width = max(6, len(str(n_profiles)))
    out: list[tuple[str, dict[str, Any]]] = []
    for _ in range(count):
        key = f"c-{rng.randrange(1, n_profiles + 1):0{width}d}"
        kind = rng.random()
        if kind < 0.4:
            out.append((key, {"age": rng.randint(18, 80)}))
        elif kind < 0.7:
            out.append(
                (
                    key,
                    {"ltv": round(rng.lognormvariate(4, 1), 2), "plan": rng.choice(datasets.PLANS)},
                )
            )
        else:
            out.append(
                (
                    key,
                    {
                        "country": rng.choice(datasets.COUNTRIES),
                        "tags": rng.sample(datasets.TAGS, 2),
                    },
                )
            )
    return out


def drift_updates(
    engine: sk.Engine, n_profiles: int, count: int, seed: int = 6
) -> list[tuple[str, dict[str, Any]]]:
    """Updates as an application sends them: spend grows a little, a birthday passes."""
    rng = random.Random(seed)
    width = max(6, len(str(n_profiles)))
    out: list[tuple[str, dict[str, Any]]] = []
    for _ in range(count):
        key = f"c-{rng.randrange(1, n_profiles + 1):0{width}d}"
        current = engine.get(key) or {}
        if rng.random() < 0.8:
            out.append((key, {"ltv": round(current.get("ltv", 0.0) + rng.uniform(1, 60), 2)}))
        else:
            out.append((key, {"age": min(80, current.get("age", 30) + 1)}))
    return out


def incremental_workload(
    engine: sk.Engine,
    updates: int,
    baselines: Callable[[sk.Engine, list[Any], list[Any]], list[Row]] | None = None,
) -> list[Row]:
    """Upserts per second with 100 dynamic segments; then a full rebuild must agree.

    ``baselines(engine, applied, timed)``, if given, times the peers on the updates
    of the last (``upsert_many``) phase, starting from the state after ``applied``
    (see ``benches/incremental.py``).
    """
    for i, text in enumerate(hundred_rules()):
        engine.define(f"bench_{i}", text)
    n = len(engine)
    rows = []
    applied: list[Any] = []
    for label, batch in (
        ("redraw", redraw_updates(n, updates)),
        ("drift", drift_updates(engine, n, updates)),
    ):
        start = time.perf_counter()
        for key, values in batch:
            engine.upsert(key, values)
        seconds = time.perf_counter() - start
        applied += batch
        rows.append(
            Row(
                "incremental",
                f"segkit upsert ({label})",
                seconds / len(batch) * 1e3,
                f"{len(batch) / seconds:,.0f} upserts/s",
            )
        )
    batch = redraw_updates(n, updates, seed=8)
    start = time.perf_counter()
    for i in range(0, len(batch), 1000):
        engine.upsert_many(batch[i : i + 1000])
    seconds = time.perf_counter() - start
    rows.append(
        Row(
            "incremental",
            "segkit upsert_many x1000 (redraw)",
            seconds / len(batch) * 1e3,
            f"{len(batch) / seconds:,.0f} upserts/s",
        )
    )
    if baselines is not None:
        rows += baselines(engine, applied, batch)
    for i in range(100):  # incremental memberships == a fresh evaluation
        name = f"bench_{i}"
        fresh = engine.query(engine.segment(name).rule or "")
        if engine.members(name).ids != fresh.ids:
            raise AssertionError(f"incremental: {name} differs from a full evaluation")
        engine.drop(name)
    return rows
