"""Run the benchmarks: ``python -m benches [--size small|1m|10m] [--runs N] [--json]``.

Every workload first checks that segkit and each peer (polars, DuckDB, pandas)
return the same answer on the same data, then prints the median time of ``--runs``
runs after a warm-up and the ratio of segkit's time to each peer's.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from importlib.metadata import version
from typing import Any

from benches import data, funnel, incremental, memory, overlap, split, sql, workloads


def environment() -> dict[str, Any]:
    libs = {}
    for lib in ("segkit", "pyroaring", "polars", "duckdb", "pandas", "pyarrow", "numpy"):
        try:
            libs[lib] = version(lib)
        except Exception:  # not installed
            libs[lib] = None
    mem = 0.0
    try:
        with open("/proc/meminfo") as info:
            mem = int(info.readline().split()[1]) / 1024 / 1024
    except OSError:
        pass
    return {
        "python": platform.python_version(),
        "machine": f"{os.cpu_count()} cores, {mem:.0f} GiB RAM, {platform.machine()}",
        "libraries": libs,
    }


WORKLOADS = ("filter", "overlap", "split", "funnel", "incremental", "sql")
#: What runs without --only ("sql", segkit against its own SQL on DuckDB, only when named).
DEFAULT_WORKLOADS = WORKLOADS[:-1]


def run(
    size: str,
    runs: int,
    updates: int,
    *,
    measure_memory: bool = False,
    only: tuple[str, ...] = DEFAULT_WORKLOADS,
) -> dict[str, Any]:
    """Build every tool, run the workloads in ``only`` (all but sql by default) and report."""
    unknown = sorted(set(only) - set(WORKLOADS))
    if unknown:
        raise ValueError(f"unknown workload {unknown[0]!r}; choose from {', '.join(WORKLOADS)}")
    n = data.SIZES[size]
    started = time.perf_counter()
    pop = data.population(n)
    generated = time.perf_counter() - started
    built = [data.measure_build("segkit", lambda: data.build_segkit(pop))]
    engine = built[0].handle
    # the sorted columns are built by the first range query: part of the index build
    built.append(
        data.measure_build("segkit (range columns)", lambda: engine.query(workloads.FILTER_RULE))
    )
    built.append(data.measure_build("polars", lambda: data.build_polars(pop)))
    frame = built[-1].handle
    built.append(data.measure_build("duckdb", lambda: data.build_duckdb(pop, frame)))
    built.append(data.measure_build("pandas", lambda: data.build_pandas(frame)))
    tools = {
        "segkit": engine,
        "polars": frame,
        "duckdb": built[-2].handle,
        "pandas": built[-1].handle,
    }
    rows = workloads.filter_workload(tools, runs) if "filter" in only else []
    tools = data.with_profile_columns(tools, pop)  # + key, tags_mask: split, incremental
    if "overlap" in only:
        rows += overlap.overlap_workload(tools, runs)
    if "split" in only:
        rows += split.split_workload(tools, runs)
    if "funnel" in only:
        rows += funnel.funnel_workload(size, runs)  # its own event log; see benches/funnel.py
    if "sql" in only:  # before incremental, which changes the profiles
        rows += sql.sql_workload(tools, size, runs)
    if "incremental" in only:
        rows += workloads.incremental_workload(engine, updates, incremental.baselines_for(tools))
    report: dict[str, Any] = {
        "size": size,
        "profiles": n,
        "runs": runs,
        "generate_seconds": round(generated, 1),
        "environment": environment(),
        "build": [
            {"tool": b.tool, "seconds": round(b.seconds, 3), "rss_mib": round(b.mib, 1)}
            for b in built
        ],
        "results": [
            {
                "workload": r.workload,
                "tool": r.tool,
                "ms": round(r.ms, 4),
                "detail": r.detail,
                "versus": r.versus,
            }
            for r in rows
        ],
    }
    if measure_memory:  # one child process per (workload, tool); free this one's tools first
        del tools, engine, frame
        built.clear()
        report["memory"] = memory.measure(pop, runs=min(runs, 3), updates=updates)
    return report


def ratio(row: dict[str, Any], results: list[dict[str, Any]]) -> str:
    """segkit's time over this row's time, against the row's ``versus`` segkit row."""
    versus = row.get("versus") or (
        "segkit (Engine.query)"
        if row["workload"] == "filter" and not row["tool"].startswith("segkit")
        else ""
    )
    ours = next(
        (x["ms"] for x in results if x["workload"] == row["workload"] and x["tool"] == versus),
        None,
    )
    if not (ours and row["ms"]):
        return ""
    value = ours / row["ms"]
    return f"{value:.2f}" if value >= 0.1 else f"{value:.2g}"


def render(report: dict[str, Any]) -> str:
    env = report["environment"]
    libs = ", ".join(f"{k} {v}" for k, v in env["libraries"].items() if v)
    out = [
        f"# {report['profiles']:,} profiles ({report['size']}); median of {report['runs']} runs"
        f" after a warm-up; python {env['python']}; {env['machine']}",
        f"# {libs}",
        "",
        f"{'build':<34} {'seconds':>9} {'RSS MiB':>9}",
    ]
    for b in report["build"]:
        out.append(f"{b['tool']:<34} {b['seconds']:>9.2f} {b['rss_mib']:>9.1f}")
    out += ["", f"{'workload':<12} {'tool':<34} {'ms':>10} {'segkit/peer':>12}  detail"]
    results = report["results"]
    for r in results:
        out.append(
            f"{r['workload']:<12} {r['tool']:<34} {r['ms']:>10.3f}"
            f" {ratio(r, results):>12}  {r['detail']}"
        )
    if report.get("memory"):
        out += ["", *memory.render_lines(report["memory"])]
    return "\n".join(out)


def render_markdown(report: dict[str, Any]) -> str:
    """The report as the Markdown tables quoted in docs/performance.md."""
    env = report["environment"]
    libs = ", ".join(f"{k} {v}" for k, v in env["libraries"].items() if v)
    results = report["results"]
    out = [
        f"`{report['command']}` — {report['profiles']:,} profiles; median of {report['runs']}"
        f" runs after a warm-up; python {env['python']}; {env['machine']}; {libs}.",
        "",
        "| build | seconds | RSS growth (MiB) |",
        "|---|---:|---:|",
    ]
    out += [f"| {b['tool']} | {b['seconds']:.2f} | {b['rss_mib']:.0f} |" for b in report["build"]]
    out += ["", "| workload | tool | ms | segkit / peer | detail |", "|---|---|---:|---:|---|"]
    for r in results:
        out.append(
            f"| {r['workload']} | {r['tool']} | {r['ms']:.3f} | {ratio(r, results)}"
            f" | {r['detail']} |"
        )
    if report.get("memory"):
        out += ["", *memory.render_markdown(report["memory"])]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benches", description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(data.SIZES), default="small")
    parser.add_argument("--runs", type=int, default=7, help="timed runs per workload (default 7)")
    parser.add_argument("--updates", type=int, default=20_000, help="upserts per incremental case")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument(
        "--markdown", action="store_true", help="print Markdown tables (for docs/performance.md)"
    )
    parser.add_argument(
        "--memory",
        action="store_true",
        help="also measure each tool's peak memory per workload, one process each (slow)",
    )
    parser.add_argument(
        "--only",
        metavar="W[,W...]",
        help=f"run only these workloads (of {', '.join(WORKLOADS)}); the build always runs",
    )
    args = parser.parse_args(argv)
    only = tuple(w.strip() for w in args.only.split(",")) if args.only else DEFAULT_WORKLOADS
    unknown = sorted(set(only) - set(WORKLOADS))
    if unknown:
        parser.error(f"unknown workload {unknown[0]!r}; choose from {', '.join(WORKLOADS)}")
    report = run(args.size, args.runs, args.updates, measure_memory=args.memory, only=only)
    command = f"python -m benches --size {args.size} --runs {args.runs} --updates {args.updates}"
    command += f" --only {','.join(only)}" if args.only else ""
    command += " --memory" if args.memory else ""
    report["command"] = command
    if args.json:
        print(json.dumps(report, indent=2))
    elif args.markdown:
        print(render_markdown(report))
    else:
        print(f"# command: {command}")
        print(render(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
