"""The benchmark data: one deterministic population, loaded into every tool.

The population comes from :func:`segkit.datasets.generate` (profiles only), so the
demo, the docs and the benchmarks share one generator. Row ``i`` of every peer's
table is the profile the Engine stores under dense id ``i``.
"""

from __future__ import annotations

import gc
import os
import time
from collections.abc import Callable
from typing import Any

import attrs

import segkit as sk
from segkit import datasets

SIZES = {"small": 20_000, "1m": 1_000_000, "10m": 10_000_000}


def rss_mib() -> float:
    """This process's resident memory in MiB (Linux /proc; 0.0 elsewhere)."""
    try:
        with open(f"/proc/{os.getpid()}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


@attrs.define
class Built:
    """A tool's loaded data, with the time and the resident memory it took."""

    tool: str
    handle: Any
    seconds: float
    mib: float


def measure_build(tool: str, build: Callable[[], Any]) -> Built:
    """Run ``build`` once, timing it and measuring the growth of resident memory."""
    gc.collect()
    before = rss_mib()
    start = time.perf_counter()
    handle = build()
    seconds = time.perf_counter() - start
    gc.collect()
    return Built(tool, handle, seconds, rss_mib() - before)


@attrs.define
class Population:
    """The generated profiles and the same values as columns."""

    dataset: datasets.Dataset
    columns: dict[str, list[Any]]

    @property
    def size(self) -> int:
        return len(self.dataset.profiles)


FILTER_COLUMNS = ("country", "plan", "age", "ltv", "signed_up", "is_customer")


def population(n: int, seed: int = 7) -> Population:
    """``n`` synthetic profiles (no events) and their columns."""
    data = datasets.generate(n, seed=seed, events_per_profile=0)
    columns: dict[str, list[Any]] = {name: [] for name in FILTER_COLUMNS}
    for profile in data.profiles:
        values = profile.attributes
        for name in FILTER_COLUMNS:
            columns[name].append(values[name])
    return Population(data, columns)


def build_segkit(pop: Population) -> sk.Engine:
    engine = sk.Engine(pop.dataset.schema, clock=lambda: pop.dataset.now)
    engine.upsert_many(pop.dataset.profiles)
    return engine


def build_polars(pop: Population) -> Any:
    import polars as pl

    cols = pop.columns
    return pl.DataFrame(
        {
            "id": pl.Series(range(pop.size), dtype=pl.UInt32),
            "country": pl.Series(cols["country"], dtype=pl.Enum(datasets.COUNTRIES)),
            "plan": pl.Series(cols["plan"], dtype=pl.Enum(datasets.PLANS)),
            "age": pl.Series(cols["age"], dtype=pl.Int16),
            "ltv": pl.Series(cols["ltv"], dtype=pl.Float64),
            "signed_up": pl.Series(cols["signed_up"], dtype=pl.Date),
            "is_customer": pl.Series(cols["is_customer"], dtype=pl.Boolean),
        }
    )


def build_duckdb(pop: Population, frame: Any) -> Any:
    import duckdb

    con = duckdb.connect()
    countries = ", ".join(f"'{c}'" for c in datasets.COUNTRIES)
    plans = ", ".join(f"'{p}'" for p in datasets.PLANS)
    con.execute(f"CREATE TYPE country_t AS ENUM ({countries})")
    con.execute(f"CREATE TYPE plan_t AS ENUM ({plans})")
    con.register("source", frame.to_arrow())
    con.execute(
        "CREATE TABLE profiles AS SELECT id, country::country_t AS country, plan::plan_t AS plan,"
        " age, ltv, signed_up, is_customer FROM source"
    )
    con.unregister("source")
    return con


def build_pandas(frame: Any) -> Any:
    import pandas as pd

    out = frame.to_pandas()
    out["country"] = out["country"].astype(pd.CategoricalDtype(datasets.COUNTRIES))
    out["plan"] = out["plan"].astype(pd.CategoricalDtype(datasets.PLANS))
    out["signed_up"] = pd.to_datetime(out["signed_up"])
    return out
