"""Peak memory per tool and workload, each measured in a process of its own.

``python -m benches.memory --size small|1m|10m [--tools ...] [--workloads ...] [--json]``
generates the benchmark population once, writes it to a temporary Parquet file and
runs one child process per (workload, tool): ``python -m benches.memory --tool duckdb
--workload filter --data FILE``. A child imports its libraries, takes its resident
memory as the baseline, loads the profiles (segkit: ``Engine.upsert_many`` of
100,000-record batches streamed from the file; the peers: their own Parquet readers,
with the column types of ``benches/data.py``), then runs the workload's setup and
``--runs`` repetitions. It reports, in MiB above the baseline:

* ``loaded``: resident memory once the data is loaded (what the tool keeps);
* ``load_peak``: the peak while loading;
* ``peak``: the peak while running the workload on the loaded data (on Linux the
  peak is reset after loading through ``/proc/self/clear_refs``, so a transient of
  the loader does not hide the workload's own peak; elsewhere it is the process's
  peak since the baseline, marked ``peak_includes_load``).

Every tool loads the same profiles table: the external key (peers: also ``id``),
country, plan, age, ltv, signed_up, is_customer and the tags (segkit: a list
attribute; peers: a ``tags_mask`` bitmask column, their fastest form).
The answers are not compared here (``python -m benches`` does that).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from sys import intern
from typing import Any

TOOLS = ("segkit", "polars", "duckdb", "pandas")
WORKLOADS = ("build", "filter", "overlap", "split", "incremental")
_ROOT = Path(__file__).resolve().parents[1]


# --- measuring ---------------------------------------------------------------------------------


def _rss_mib() -> float:
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return _peak_mib()


def _peak_mib() -> float:
    """The peak RSS: ``VmHWM`` (Linux: what ``clear_refs`` resets), else ``ru_maxrss``."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024 / 1024 if sys.platform == "darwin" else peak / 1024


def _reset_peak() -> bool:
    """Reset the process's peak RSS to its current RSS (Linux >= 4.0); False if unsupported."""
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")
    except OSError:
        return False
    return True


# --- the data ----------------------------------------------------------------------------------


def write_data(pop: Any, path: Path) -> None:
    """The population as one Parquet file (the columns every tool loads)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from benches import data

    cols = pop.columns
    profiles = pop.dataset.profiles
    tags = [list(p.attributes.get("tags", ())) for p in profiles]
    table = pa.table(
        {
            "id": pa.array(range(pop.size), pa.uint32()),
            "key": pa.array([p.key for p in profiles], pa.string()),
            "country": pa.array(cols["country"], pa.string()),
            "plan": pa.array(cols["plan"], pa.string()),
            "age": pa.array(cols["age"], pa.int16()),
            "ltv": pa.array(cols["ltv"], pa.float64()),
            "signed_up": pa.array(cols["signed_up"], pa.date32()),
            "is_customer": pa.array(cols["is_customer"], pa.bool_()),
            "tags": pa.array(tags, pa.list_(pa.string())),
            "tags_mask": pa.array([data.tags_mask(t) for t in tags], pa.uint32()),
        }
    )
    pq.write_table(table, path)


_PEER_COLUMNS = (
    "id", "key", "country", "plan", "age", "ltv", "signed_up", "is_customer", "tags_mask",
)  # fmt: skip


def _load_segkit(path: Path) -> Any:
    import pyarrow.parquet as pq

    import segkit as sk
    from segkit import datasets

    schema = datasets.generate(0).schema
    engine = sk.Engine(schema, clock=lambda: datasets.DEFAULT_NOW)
    columns = ["key", "country", "plan", "age", "ltv", "signed_up", "is_customer", "tags"]
    for batch in pq.ParquetFile(path).iter_batches(batch_size=100_000, columns=columns):
        records = []
        for row in batch.to_pylist():
            # share equal strings, as the generator's records do (segkit keeps the objects)
            row["country"] = intern(row["country"])
            row["plan"] = intern(row["plan"])
            row["tags"] = tuple(intern(t) for t in row["tags"])
            records.append((row.pop("key"), row))
        engine.upsert_many(records)
        del records
    return engine


def _load_polars(path: Path) -> Any:
    import polars as pl

    from segkit import datasets

    return pl.read_parquet(path, columns=list(_PEER_COLUMNS)).with_columns(
        pl.col("country").cast(pl.Enum(datasets.COUNTRIES)),
        pl.col("plan").cast(pl.Enum(datasets.PLANS)),
    )


def _load_duckdb(path: Path) -> Any:
    import duckdb

    from segkit import datasets

    con = duckdb.connect()
    countries = ", ".join(f"'{c}'" for c in datasets.COUNTRIES)
    plans = ", ".join(f"'{p}'" for p in datasets.PLANS)
    con.execute(f"CREATE TYPE country_t AS ENUM ({countries})")
    con.execute(f"CREATE TYPE plan_t AS ENUM ({plans})")
    con.execute(
        "CREATE TABLE profiles AS SELECT id, country::country_t AS country, plan::plan_t AS plan,"
        " age, ltv, signed_up, is_customer, key, tags_mask"
        f" FROM read_parquet('{path}') ORDER BY id"
    )
    return con


def _load_pandas(path: Path) -> Any:
    import pandas as pd

    from segkit import datasets

    frame = pd.read_parquet(path, columns=list(_PEER_COLUMNS))
    frame["country"] = frame["country"].astype(pd.CategoricalDtype(datasets.COUNTRIES))
    frame["plan"] = frame["plan"].astype(pd.CategoricalDtype(datasets.PLANS))
    frame["signed_up"] = pd.to_datetime(frame["signed_up"])
    return frame


def _warm_up(tool: str, path: Path) -> None:
    """Read 100 rows the tool's way, so that the reader's code is paged in before the
    baseline (code pages count in the resident set the first time they run)."""
    if tool == "polars":
        import polars as pl

        pl.read_parquet(path, n_rows=100)
    elif tool == "duckdb":
        import duckdb

        duckdb.connect().execute(f"SELECT * FROM read_parquet('{path}') LIMIT 100").fetchall()
    else:
        import pyarrow.parquet as pq

        batch = next(pq.ParquetFile(path).iter_batches(batch_size=100))
        batch.to_pylist() if tool == "segkit" else batch.to_pandas()


LOADERS: dict[str, Callable[[Path], Any]] = {
    "segkit": _load_segkit,
    "polars": _load_polars,
    "duckdb": _load_duckdb,
    "pandas": _load_pandas,
}


# --- the workloads, one tool at a time ---------------------------------------------------------


def _filter(tool: str, handle: Any, runs: int, updates: int) -> None:
    from benches import workloads

    fn: Callable[[], Any] = {
        "segkit": lambda: handle.query(workloads.FILTER_RULE),
        "polars": lambda: workloads.filter_polars(handle),
        "duckdb": lambda: workloads.filter_duckdb(handle),
        "pandas": lambda: workloads.filter_pandas(handle),
    }[tool]
    for _ in range(runs):
        fn()


def _overlap(tool: str, handle: Any, runs: int, updates: int) -> None:
    from benches import overlap

    overlap.memory_case(tool, handle, runs)


def _split(tool: str, handle: Any, runs: int, updates: int) -> None:
    from benches import split

    split.memory_case(tool, handle, runs)


def _incremental(tool: str, handle: Any, runs: int, updates: int) -> None:
    """100 dynamic segments kept current through ``updates`` redraw updates.

    segkit: single upserts, then the same number through ``upsert_many`` of 1,000;
    peers: their *changed rows* baseline (``benches/incremental.py``), batches of 1,000.
    """
    from benches import incremental, workloads

    n = len(handle) if tool in ("segkit", "pandas") else None
    if tool == "polars":
        n = handle.height
    elif tool == "duckdb":
        n = handle.execute("SELECT count(*) FROM profiles").fetchone()[0]
    assert n is not None
    first = workloads.redraw_updates(n, updates)
    second = workloads.redraw_updates(n, updates, seed=8)
    if tool == "segkit":
        for i, text in enumerate(workloads.hundred_rules()):
            handle.define(f"bench_{i}", text)
        for key, values in first:
            handle.upsert(key, values)
        for i in range(0, len(second), 1000):
            handle.upsert_many(second[i : i + 1000])
        return
    peer = incremental.PEERS[tool](handle, incremental.rules(), False)
    peer.evaluate(None)
    for batch in (first, second):
        for i in range(0, len(batch), 1000):
            prepared = incremental.prepare(batch[i : i + 1000])
            peer.apply(prepared)
            peer.evaluate(prepared)


#: workload -> what a child runs once the data is loaded (another workload adds itself here).
CASES: dict[str, Callable[[str, Any, int, int], None]] = {
    "build": lambda tool, handle, runs, updates: None,
    "filter": _filter,
    "overlap": _overlap,
    "split": _split,
    "incremental": _incremental,
}


def child(tool: str, workload: str, path: Path, runs: int, updates: int) -> dict[str, Any]:
    """Load the data into ``tool``, run ``workload``; the memory it took (MiB)."""
    import benches.workloads  # noqa: F401  (segkit and the bench helpers: in the baseline)

    _warm_up(tool, path)
    gc.collect()
    baseline = _rss_mib()
    resettable = _reset_peak()
    start = time.perf_counter()
    handle = LOADERS[tool](path)
    load_seconds = time.perf_counter() - start
    load_peak = _peak_mib() - baseline
    gc.collect()
    loaded = _rss_mib() - baseline
    resettable = _reset_peak() and resettable
    start = time.perf_counter()
    CASES[workload](tool, handle, runs, updates)
    seconds = time.perf_counter() - start
    peak = _peak_mib() - baseline
    return {
        "workload": workload,
        "tool": tool,
        "baseline_mib": round(baseline, 1),
        "loaded_mib": round(loaded, 1),
        "load_peak_mib": round(load_peak, 1),
        "peak_mib": round(peak, 1),
        "peak_includes_load": not resettable,
        "load_seconds": round(load_seconds, 2),
        "seconds": round(seconds, 2),
    }


# --- the parent --------------------------------------------------------------------------------


def run_child(tool: str, workload: str, path: Path, runs: int, updates: int) -> dict[str, Any]:
    """Run :func:`child` in a fresh interpreter; its result."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_ROOT), env.get("PYTHONPATH")]))
    # Arrow's default pool (mimalloc, jemalloc) keeps freed memory: the loaders' transient
    # Arrow buffers would then count as the tool's memory
    env.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")
    args = [sys.executable, "-m", "benches.memory", "--tool", tool, "--workload", workload]
    args += ["--data", str(path), "--runs", str(runs), "--updates", str(updates), "--json"]
    done = subprocess.run(args, capture_output=True, text=True, env=env, check=False)
    if done.returncode:
        raise RuntimeError(f"memory: {tool} {workload} failed:\n{done.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def measure(
    pop: Any,
    *,
    tools: tuple[str, ...] = TOOLS,
    workloads: tuple[str, ...] = WORKLOADS,
    runs: int = 3,
    updates: int = 20_000,
) -> list[dict[str, Any]]:
    """Every (workload, tool) in a child process, on ``pop`` written to a temporary file."""
    with tempfile.TemporaryDirectory(prefix="segkit-bench-") as tmp:
        path = Path(tmp) / "profiles.parquet"
        write_data(pop, path)
        results = []
        for workload in workloads:
            for tool in tools:
                results.append(run_child(tool, workload, path, runs, updates))
                r = results[-1]
                print(  # progress: a 10m run takes a while
                    f"memory: {workload} {tool}: loaded {r['loaded_mib']:,.0f} MiB,"
                    f" peak {r['peak_mib']:,.0f} MiB ({r['load_seconds'] + r['seconds']:.0f} s)",
                    file=sys.stderr,
                    flush=True,
                )
        return results


def render_lines(results: list[dict[str, Any]]) -> list[str]:
    """A plain-text table: workload rows, tool columns, peak MiB above the baseline."""
    tools = list(dict.fromkeys(r["tool"] for r in results))
    out = [
        "memory: MiB above the interpreter with its libraries imported, one process per cell",
        f"{'workload':<20}" + "".join(f"{t:>10}" for t in tools),
    ]
    for label, name, key in _table_rows(results):
        cells = {r["tool"]: r[key] for r in results if r["workload"] == name}
        out.append(f"{label:<20}" + "".join(f"{_cell(cells.get(t)):>10}" for t in tools))
    return out


def render_markdown(results: list[dict[str, Any]]) -> list[str]:
    tools = list(dict.fromkeys(r["tool"] for r in results))
    out = [
        "| peak memory (MiB above baseline) | " + " | ".join(tools) + " |",
        "|---|" + "---:|" * len(tools),
    ]
    for label, name, key in _table_rows(results):
        cells = {r["tool"]: r[key] for r in results if r["workload"] == name}
        out.append(f"| {label} | " + " | ".join(_cell(cells.get(t)) for t in tools) + " |")
    return out


def _table_rows(results: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    rows = []
    for name in dict.fromkeys(r["workload"] for r in results):
        if name == "build":
            rows += [
                ("build: loaded", name, "loaded_mib"),
                ("build: load peak", name, "load_peak_mib"),
            ]
        else:
            rows.append((f"{name}: peak", name, "peak_mib"))
    return rows


def _cell(value: float | None) -> str:
    return "" if value is None else f"{value:,.0f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benches.memory", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--size", choices=("small", "1m", "10m"), default="small")
    parser.add_argument("--tool", choices=TOOLS, help="one tool (default: all)")
    parser.add_argument("--workload", choices=sorted(CASES), help="one workload (default: all)")
    parser.add_argument("--data", type=Path, help="a Parquet file written by this module")
    parser.add_argument("--runs", type=int, default=3, help="repetitions of the workload (3)")
    parser.add_argument("--updates", type=int, default=20_000, help="updates of incremental")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    if args.data and args.tool and args.workload:  # a child
        result = child(args.tool, args.workload, args.data, args.runs, args.updates)
        print(json.dumps(result))
        return 0
    from benches import data

    tools = (args.tool,) if args.tool else TOOLS
    names = (args.workload,) if args.workload else WORKLOADS
    if args.data:
        results = [
            run_child(t, w, args.data, args.runs, args.updates) for w in names for t in tools
        ]
    else:
        pop = data.population(data.SIZES[args.size])
        results = measure(pop, tools=tools, workloads=names, runs=args.runs, updates=args.updates)
    if args.json:
        print(json.dumps({"size": args.size, "memory": results}, indent=2))
    else:
        print("\n".join(render_lines(results)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
