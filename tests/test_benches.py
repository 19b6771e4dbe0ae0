"""The benchmark runs at its small size: every tool must return the same answers.

Speed is not asserted here (benchmarks measure, tests check); what is checked is
that the harness works and that segkit, polars, DuckDB and pandas agree.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from benches import data, incremental, memory, overlap, split, workloads
from benches.__main__ import main, render, render_markdown, run


def test_small_benchmark_tools_agree() -> None:
    """Every workload's cross-check passes (they raise on any disagreement)."""
    report = run("small", runs=1, updates=300)
    tools = [(r["workload"], r["tool"]) for r in report["results"]]
    assert tools == [
        ("filter", "segkit (Engine.query)"),
        ("filter", "segkit (compiled plan)"),
        ("filter", "polars (Enum)"),
        ("filter", "duckdb (ENUM)"),
        ("filter", "pandas (category)"),
        ("overlap", "segkit (Engine.overlap)"),
        ("overlap", "duckdb (GROUP BY flags)"),
        ("overlap", "polars (group_by code)"),
        ("overlap", "pandas (value_counts code)"),
        ("overlap", "numpy (bincount, reference)"),
        ("setup", "overlap: segkit 5 x Engine.define"),
        ("setup", "overlap: polars 5 flag columns"),
        ("setup", "overlap: duckdb table of 5 flags"),
        ("setup", "overlap: pandas 5 flag columns"),
        ("split", "segkit (Engine.split, cold)"),
        ("split", "segkit (Engine.split, warm)"),
        ("split", "duckdb (md5 in SQL)"),
        ("split", "polars (hashlib loop)"),
        ("split", "pandas (hashlib loop)"),
        ("setup", "split: segkit Engine.define"),
        ("funnel", "segkit (numpy columns, ids)"),
        ("funnel", "segkit (lists of str and int)"),
        ("funnel", "segkit (Event objects)"),
        ("funnel", "segkit pure Python (lists)"),
        ("funnel", "segkit pure Python (Event objects)"),
        ("funnel", "duckdb (ASOF JOIN)"),
        ("funnel", "polars (join_asof)"),
        ("funnel", "pandas (merge_asof)"),
        ("incremental", "segkit upsert (redraw)"),
        ("incremental", "segkit upsert (drift)"),
        ("incremental", "segkit upsert_many x1000 (redraw)"),
        *[
            ("incremental", f"{peer} update {size} ({mode})")
            for peer in ("polars", "duckdb", "pandas")
            for size, mode in (
                ("x1", "changed rows"),
                ("x1000", "changed rows"),
                ("x1000", "full re-eval"),
            )
        ],
    ]
    assert report["results"][0]["detail"] == "30 matches"
    assert [b["tool"] for b in report["build"]] == [
        "segkit",
        "segkit (range columns)",
        "polars",
        "duckdb",
        "pandas",
    ]
    report["command"] = "python -m benches --size small"
    markdown = render_markdown(report)
    assert "| filter | polars (Enum) |" in markdown
    assert markdown.startswith("`python -m benches --size small` — 20,000 profiles;")
    table = render(report)
    assert "segkit/peer" in table
    assert "30 matches" in table
    assert "memory" not in report  # only with --memory
    report["memory"] = [
        {"workload": "build", "tool": "segkit", "loaded_mib": 9.6, "load_peak_mib": 12.0},
        {"workload": "split", "tool": "segkit", "peak_mib": 14.2},
    ]
    assert render(report).splitlines()[-2:] == [
        "build: load peak            12",
        "split: peak                 14",
    ]
    assert render_markdown(report).endswith("| split: peak | 14 |")


def test_hundred_rules_are_distinct_and_valid() -> None:
    """The incremental workload defines 100 different rules of five shapes."""
    rules = workloads.hundred_rules()
    assert len(set(rules)) == 100
    assert rules[0] == 'country = "US" and age >= 18'


def test_json_output(capsys: object) -> None:
    """--json prints the report with the command that produced it."""
    import json

    assert main(["--size", "small", "--runs", "1", "--updates", "50", "--json"]) == 0
    out = capsys.readouterr().out  # type: ignore[attr-defined]
    report = json.loads(out)
    assert report["command"] == "python -m benches --size small --runs 1 --updates 50"
    assert report["profiles"] == 20_000


def test_only_runs_the_named_workloads(capsys: object) -> None:
    """--only runs the build and the named workloads, and says so in the command."""
    import json

    args = ["--size", "small", "--runs", "1", "--updates", "50", "--only", "overlap", "--json"]
    assert main(args) == 0
    report = json.loads(capsys.readouterr().out)  # type: ignore[attr-defined]
    assert report["command"] == (
        "python -m benches --size small --runs 1 --updates 50 --only overlap"
    )
    assert {r["workload"] for r in report["results"]} == {"overlap", "setup"}
    assert report["build"][0]["tool"] == "segkit"


def test_only_rejects_an_unknown_workload(capsys: object) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--size", "small", "--only", "overlap,funel"])
    assert exc.value.code == 2
    err = capsys.readouterr().err  # type: ignore[attr-defined]
    assert (
        "unknown workload 'funel'; choose from filter, overlap, split, funnel, incremental, sql"
        in err
    )
    with pytest.raises(ValueError, match="unknown workload 'x'"):
        run("small", 1, 50, only=("x",))


# --- overlap, split, incremental baselines, memory ---------------------------------------------


def _tools(n: int) -> dict[str, Any]:
    pop = data.population(n)
    frame = data.build_polars(pop)
    tools = {
        "segkit": data.build_segkit(pop),
        "polars": frame,
        "duckdb": data.build_duckdb(pop, frame),
        "pandas": data.build_pandas(frame),
    }
    return data.with_profile_columns(tools, pop) | {"pop": pop}


@pytest.fixture(scope="module")
def tools() -> dict[str, Any]:
    """The four tools over 3,000 profiles (workloads that leave the data unchanged)."""
    return _tools(3000)


def test_overlap_counts_are_right(tools: dict[str, Any]) -> None:
    """segkit's 31 regions and 10 pairs equal a plain Python count over the profiles."""
    profiles = [p.attributes for p in tools["pop"].dataset.profiles]
    checks = [
        lambda a: a["is_customer"] and a["plan"] != "free",
        lambda a: a["plan"] in ("pro", "enterprise"),
        lambda a: a["ltv"] > 100,
        lambda a: a["signed_up"] > overlap._RECENT,
        lambda a: a["age"] < 30,
    ]
    codes = [sum(1 << i for i, check in enumerate(checks) if check(a)) for a in profiles]
    regions = {code: codes.count(code) for code in range(1, 32)}
    pairs = {(i, j): sum(1 for c in codes if c >> i & 1 and c >> j & 1) for i, j in overlap.PAIRS}
    engine = tools["segkit"]
    overlap.segkit_setup(engine)
    try:
        assert overlap.segkit_counts(engine) == (regions, pairs)
    finally:
        overlap.segkit_teardown(engine)
    assert all(0.1 <= sum(c >> i & 1 for c in codes) / len(codes) <= 0.4 for i in range(5))


def test_overlap_tools_agree(tools: dict[str, Any]) -> None:
    """Every tool gives the same 31 region counts and 10 pairwise counts."""
    rows = overlap.overlap_workload(tools, runs=1)
    assert next(r.tool for r in rows if r.workload == "overlap") == "segkit (Engine.overlap)"
    assert {r.versus for r in rows if r.workload == "overlap"} == {"", "segkit (Engine.overlap)"}
    assert not set(overlap.NAMES) & set(tools["segkit"].segments)  # dropped again


@pytest.mark.parametrize(
    "peer", ["polars_counts", "duckdb_counts", "pandas_counts", "numpy_counts"]
)
def test_overlap_detects_a_wrong_answer(
    tools: dict[str, Any], peer: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One region count off by one in one peer's answer fails the workload."""
    counts = getattr(overlap, peer)

    def wrong(handle: Any) -> Any:
        regions, pairs = counts(handle)
        return {**regions, 7: regions[7] + 1}, pairs

    monkeypatch.setattr(overlap, peer, wrong)
    with pytest.raises(AssertionError, match=r"overlap: .* differs from segkit \(region"):
        overlap.overlap_workload(tools, runs=1)
    assert not set(overlap.NAMES) & set(tools["segkit"].segments)


def test_split_tools_agree(tools: dict[str, Any]) -> None:
    """segkit, DuckDB, polars and pandas put the same profiles in the same 10 groups."""
    rows = split.split_workload(tools, runs=1)
    cold = next(r for r in rows if r.tool == split.COLD)
    members = sum(1 for p in tools["pop"].dataset.profiles if p.attributes["age"] < 38)
    assert cold.detail.startswith(f"{members:,} members in 10 groups")
    assert [r.versus for r in rows if r.workload == "split"][2:] == [split.COLD] * 3


def test_split_groups_follow_the_hash(tools: dict[str, Any]) -> None:
    """The groups are ``segkit.hashing.bucket(salt, key) // 1000``."""
    from segkit.hashing import bucket

    got = split.duckdb_split(tools["duckdb"])
    keys = [p.key for p in tools["pop"].dataset.profiles]
    for g, ids in enumerate(got):
        assert all(bucket(split.SALT, keys[i]) // 1000 == g for i in ids[:50])


@pytest.mark.parametrize("peer", ["duckdb_split", "polars_split", "pandas_split"])
def test_split_detects_a_wrong_answer(
    tools: dict[str, Any], peer: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One profile moved to another group in one peer's answer fails the workload."""
    fn = getattr(split, peer)

    def wrong(handle: Any) -> Any:
        groups = fn(handle)
        groups[1] = np.sort(np.append(groups[1], groups[0][:1]))
        groups[0] = groups[0][1:]
        return groups

    monkeypatch.setattr(split, peer, wrong)
    with pytest.raises(AssertionError, match=r"split: .* group counts"):
        split.split_workload(tools, runs=1)


def test_incremental_baselines_agree() -> None:
    """Each peer, in both modes, ends with segkit's 100 memberships."""
    tools = _tools(2000)
    rows = workloads.incremental_workload(tools["segkit"], 200, incremental.baselines_for(tools))
    peers = [r for r in rows if not r.tool.startswith("segkit")]
    assert len(peers) == 9
    assert all(r.versus in (incremental.SINGLE, incremental.BATCHED) for r in peers)


@pytest.mark.parametrize("peer", ["polars", "duckdb", "pandas"])
def test_incremental_detects_a_wrong_answer(peer: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """One membership flipped in one peer's final state fails the workload."""
    tools = _tools(1000)
    cls = incremental.PEERS[peer]
    memberships = cls.memberships

    def wrong(self: Any) -> list[Any]:
        got = copy.copy(memberships(self))
        got[3] = got[3][1:]
        return got

    monkeypatch.setattr(cls, "memberships", wrong)
    with pytest.raises(AssertionError, match=rf"incremental: {peer} update .* bench_3"):
        workloads.incremental_workload(tools["segkit"], 100, incremental.baselines_for(tools))


def test_incremental_rules_match_the_workload() -> None:
    """The peers' 100 rules are the incremental workload's rules, as text."""
    assert [r.text() for r in incremental.rules()] == workloads.hundred_rules()


def test_memory_cases_run_for_every_tool(tmp_path: Path) -> None:
    """Every tool loads the data and runs every workload of the memory bench."""
    path = tmp_path / "profiles.parquet"
    memory.write_data(data.population(500), path)
    for tool in memory.TOOLS:
        for workload in memory.WORKLOADS:
            handle = memory.LOADERS[tool](path)
            memory.CASES[workload](tool, handle, 1, 50)
    loaded = memory.LOADERS["segkit"](path).get("c-000007")
    generated = dict(data.population(500).dataset.profiles[6].attributes)
    del generated["email"], generated["lifecycle_stage"]  # not loaded by any tool
    generated.pop("nps", None)  # nor is the survey score
    assert loaded == generated


def test_memory_in_child_processes() -> None:
    """The memory bench runs each cell in its own process and prints a table."""
    results = memory.measure(
        data.population(500), tools=("segkit", "duckdb"), workloads=("build", "split"), runs=1
    )
    assert [(r["workload"], r["tool"]) for r in results] == [
        ("build", "segkit"),
        ("build", "duckdb"),
        ("split", "segkit"),
        ("split", "duckdb"),
    ]
    assert all(r["loaded_mib"] > 0 and not r["peak_includes_load"] for r in results)
    lines = memory.render_lines(results)
    assert lines[1].split() == ["workload", "segkit", "duckdb"]
    assert [line.split(":")[0] for line in lines[2:]] == ["build", "build", "split"]
    markdown = memory.render_markdown(results)
    assert markdown[0] == "| peak memory (MiB above baseline) | segkit | duckdb |"


def test_funnel_log_is_deterministic_and_funnel_shaped() -> None:
    """The funnel workload's log: same seed, same log; fewer entities at each step."""
    from benches import funnel as funnel_bench

    log = data.funnel_log(2_000)
    again = data.funnel_log(2_000)
    assert (log.ts_us == again.ts_us).all()
    assert (log.entity == again.entity).all()
    assert (np.diff(log.ts_us) >= 0).all()  # a log in time order
    tools, _ = funnel_bench.segkit_tools(log, "10m")
    counts, means = tools[funnel_bench.MAIN]()
    assert counts == sorted(counts, reverse=True)
    assert counts[0] > 0
    assert means[0] is None
    assert all(m is not None and m > 0 for m in means[1:])


def test_funnel_peers_compute_segkit_semantics() -> None:
    """On a tiny log written out by hand, every peer gives segkit's counts and times."""
    from benches import funnel as funnel_bench

    day = 86_400 * 1_000_000
    steps = {name: i for i, name in enumerate(data.FUNNEL_EVENTS)}
    rows = [  # (entity, event, day)
        (0, "visit", 0), (0, "form_submit", 0), (0, "mql", 30),  # tie, then the window's end
        (1, "visit", 0), (1, "visit", 5), (1, "form_submit", 6),  # the later start is kept
        (1, "mql", 35),
        (2, "form_submit", 1), (2, "visit", 2), (2, "page_view", 3),  # out of order
        (3, "visit", 0), (3, "form_submit", 31),  # past the window
    ]  # fmt: skip
    rows.sort(key=lambda r: (r[2], r[0]))
    log = data.FunnelLog(
        ["a", "b", "c", "d"],
        np.array([r[0] for r in rows], dtype=np.uint32),
        np.array([steps[r[1]] for r in rows], dtype=np.uint8),
        np.array([1_700_000_000_000_000 + r[2] * day for r in rows], dtype=np.int64),
    )
    tools, _ = funnel_bench.segkit_tools(log, "small")
    expected = tools[funnel_bench.MAIN]()
    assert expected[0] == [4, 2, 2, 0, 0, 0]
    assert expected[1][1:3] == [0.5 * day, 29.5 * day]
    frame = funnel_bench.build_polars(log)
    for answer in (
        funnel_bench.funnel_polars(frame),
        funnel_bench.funnel_duckdb(funnel_bench.build_duckdb(frame)),
        funnel_bench.funnel_pandas(funnel_bench.build_pandas(frame)),
        *(fn() for fn in tools.values()),
    ):
        funnel_bench.check_same("peer", answer, expected)


# --- sql: segkit's SQL back-end on DuckDB against the in-memory segkit ---------------------------


def test_sql_workload_at_the_small_size() -> None:
    """--only sql runs the three questions; DuckDB's answers equal segkit's (checked inside)."""
    from benches import sql

    report = run("small", runs=1, updates=50, only=("sql",))
    rows = [(r["tool"], r["versus"]) for r in report["results"]]
    assert rows == [
        ("segkit filter (Engine.query)", ""),
        ("duckdb filter (to_sql)", "segkit filter (Engine.query)"),
        ("segkit event rule (Engine.query)", ""),
        ("duckdb event rule (to_sql)", "segkit event rule (Engine.query)"),
        ("segkit funnel (numpy columns, ids)", ""),
        ("duckdb funnel (Funnel.to_sql rows)", "segkit funnel (numpy columns, ids)"),
        ("duckdb funnel (+ report_from_rows)", "segkit funnel (numpy columns, ids)"),
    ]
    details = [r["detail"] for r in report["results"]]
    assert details[2].endswith("matches of 2,000 over 19,431 events")
    assert details[4] == "196,017 events; counts 19,640/7,565/3,135/1,509/643/203"
    assert sql.EVENT_RULE == "did visit >= 3 times in last 90d"


def test_sql_workload_detects_a_wrong_answer(
    tools: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """One key missing from DuckDB's answer, or a start 1 µs earlier, fails the workload."""
    from benches import sql

    keys = sql._keys
    monkeypatch.setattr(
        sql, "_keys", lambda con, text, params: set(list(keys(con, text, params))[1:])
    )
    with pytest.raises(AssertionError, match=r"sql: to_sql found \d+ profiles, Engine.query"):
        sql.filter_rows(tools["segkit"], tools["duckdb"], 1)
    with pytest.raises(AssertionError, match=r"sql: to_sql found \d+ profiles for 'did visit"):
        sql.event_rows(data.funnel_log(300), 1)
    monkeypatch.undo()
    rows = sql.report_from_rows

    def shifted(funnel: Any, got: Any, **kw: Any) -> Any:
        got = [(r[0], r[1], r[2] - 1, *r[3:]) for r in got]
        return rows(funnel, got, **kw)

    monkeypatch.setattr(sql, "report_from_rows", shifted)
    with pytest.raises(AssertionError, match=r"sql: the report of Funnel.to_sql's rows differs"):
        sql.funnel_rows(data.funnel_log(500), 1)
