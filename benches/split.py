"""The split workload: a ~40% segment split into 10 equal groups with a salt.

A profile's group comes from ``segkit.hashing.bucket(salt, key)``, the first 8 hex
digits of ``md5(salt + ":" + key)`` modulo 10,000, and the bucket ranges of the
cumulative weights (10 equal weights: group ``bucket // 1000``). segkit answers with
``Engine.split``: the first call with a salt is *cold* (it hashes every key), a
second call with the same salt is *warm* (the engine keeps the buckets per salt).
DuckDB computes the same md5 in SQL; polars and pandas have no md5, so they run
``hashlib`` over the member keys in a Python loop (the fastest form they allow).
Every tool's group members must equal segkit's before anything is timed.
"""

from __future__ import annotations

import hashlib
import statistics
import time
from typing import Any

import segkit as sk
from benches.workloads import Row, median_ms

SEGMENT = "split_audience"
RULE = "age < 38"  # ~41% of the benchmark profiles: ~4.1M at --size 10m
SQL_RULE = "age < 38"
SALT = "exp"
GROUPS = 10
WEIGHTS = {f"g{i}": 1 for i in range(GROUPS)}
_WIDTH = 10_000 // GROUPS  # buckets per group (equal weights)

Groups = list[Any]  # per group, the sorted member ids (numpy uint32 arrays)


def _md5_bucket_groups(keys: list[str], salt: str) -> Any:
    """Per key, its group: md5 in a Python loop (what polars and pandas users do)."""
    import numpy as np

    prefix = f"{salt}:"
    md5 = hashlib.md5
    buckets = np.fromiter(
        (
            int.from_bytes(md5((prefix + k).encode(), usedforsecurity=False).digest()[:4], "big")
            for k in keys
        ),
        dtype=np.uint32,
        count=len(keys),
    )
    return (buckets % 10_000) // _WIDTH


def _by_group(ids: Any, groups: Any) -> Groups:
    """Sorted ids per group, from parallel arrays."""
    import numpy as np

    ids = np.asarray(ids, dtype=np.uint32)
    groups = np.asarray(groups)
    order = np.argsort(groups, kind="stable")
    bounds = np.searchsorted(groups[order], np.arange(GROUPS + 1))
    return [np.sort(ids[order[bounds[g] : bounds[g + 1]]]) for g in range(GROUPS)]


# --- segkit ------------------------------------------------------------------------------------


def segkit_setup(engine: sk.Engine) -> str:
    engine.define(SEGMENT, RULE)
    return SEGMENT


def segkit_teardown(engine: sk.Engine) -> None:
    if SEGMENT in engine.segments:
        engine.drop(SEGMENT)


def segkit_split(engine: sk.Engine, salt: str = SALT) -> Any:
    """``Engine.split`` into 10 equal groups; the per-group counts (forces the result)."""
    result = engine.split(SEGMENT, WEIGHTS, salt=salt)
    return [len(result[g]) for g in WEIGHTS]


def segkit_groups(engine: sk.Engine, salt: str = SALT) -> Groups:
    import numpy as np

    result = engine.split(SEGMENT, WEIGHTS, salt=salt)
    return [np.fromiter(result[g].ids, dtype=np.uint32) for g in WEIGHTS]


# --- peers -------------------------------------------------------------------------------------


def duckdb_split(con: Any, salt: str = SALT) -> Groups:
    """``md5`` in SQL: the first 8 hex digits cast to an integer, modulo 10,000."""
    q = (
        f"SELECT id, ((('0x' || md5('{salt}:' || key)[1:8])::UBIGINT % 10000) // {_WIDTH})"
        f"::UTINYINT AS g FROM profiles WHERE {SQL_RULE}"
    )
    out = con.execute(q).fetchnumpy()
    return _by_group(out["id"], out["g"])


def polars_split(frame: Any, salt: str = SALT) -> Groups:
    import polars as pl

    members = frame.filter(pl.col("age") < 38)
    groups = _md5_bucket_groups(members["key"].to_list(), salt)
    return _by_group(members["id"].to_numpy(), groups)


def pandas_split(frame: Any, salt: str = SALT) -> Groups:
    members = frame.loc[frame["age"] < 38, ["id", "key"]]
    groups = _md5_bucket_groups(members["key"].tolist(), salt)
    return _by_group(members["id"].to_numpy(), groups)


# --- the workload ------------------------------------------------------------------------------

COLD = "segkit (Engine.split, cold)"
WARM = "segkit (Engine.split, warm)"


def check(name: str, got: Groups, expected: Groups) -> None:
    """Raise unless every group has exactly segkit's members."""
    import numpy as np

    counts = [len(g) for g in got]
    want = [len(g) for g in expected]
    if counts != want:
        raise AssertionError(f"split: {name} group counts {counts}, segkit {want}")
    for i, (g, e) in enumerate(zip(got, expected, strict=True)):
        if not np.array_equal(g, e):
            raise AssertionError(f"split: {name} group g{i} has other members than segkit's")


def split_workload(tools: dict[str, Any], runs: int) -> list[Row]:
    """Split a ~40% segment into 10 groups: segkit cold and warm; DuckDB, polars, pandas."""
    engine: sk.Engine = tools["segkit"]
    try:
        start = time.perf_counter()
        segkit_setup(engine)
        setup_ms = (time.perf_counter() - start) * 1e3
        start = time.perf_counter()
        expected = segkit_groups(engine)  # the first call: cold, checked
        first_ms = (time.perf_counter() - start) * 1e3
        peers = {
            "duckdb (md5 in SQL)": lambda: duckdb_split(tools["duckdb"]),
            "polars (hashlib loop)": lambda: polars_split(tools["polars"]),
            "pandas (hashlib loop)": lambda: pandas_split(tools["pandas"]),
        }
        for name, fn in peers.items():
            check(name, fn(), expected)
        members = sum(len(g) for g in expected)
        detail = f"{members:,} members in 10 groups of {min(map(len, expected)):,}-{max(map(len, expected)):,}"
        cold = []
        for i in range(runs):  # a fresh salt per call: every call hashes every key
            start = time.perf_counter()
            segkit_split(engine, f"{SALT}-cold-{i}")
            cold.append((time.perf_counter() - start) * 1e3)
        rows = [
            Row("split", COLD, statistics.median(cold), f"{detail}; first call {first_ms:.1f} ms"),
            Row("split", WARM, median_ms(lambda: segkit_split(engine), runs), detail),
        ]
        rows += [
            Row("split", n, median_ms(fn, runs), detail, versus=COLD) for n, fn in peers.items()
        ]
    finally:
        segkit_teardown(engine)
    rows.append(Row("setup", "split: segkit Engine.define", setup_ms, "once"))
    return rows


def memory_case(tool: str, handle: Any, runs: int) -> None:
    """What the memory bench runs for one tool: the split (segkit: cold, then warm)."""
    if tool == "segkit":
        segkit_setup(handle)
        for _ in range(runs):  # one cold call, then warm ones (one salt's buckets kept)
            segkit_split(handle)
        return
    fn = {"duckdb": duckdb_split, "polars": polars_split, "pandas": pandas_split}[tool]
    for _ in range(runs):
        fn(handle)
