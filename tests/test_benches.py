"""The benchmark runs at its small size: every tool must return the same answers.

Speed is not asserted here (benchmarks measure, tests check); what is checked is
that the harness works and that segkit, polars, DuckDB and pandas agree.
"""

from __future__ import annotations

from benches import workloads
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
        ("incremental", "segkit upsert (redraw)"),
        ("incremental", "segkit upsert (drift)"),
        ("incremental", "segkit upsert_many x1000 (redraw)"),
    ]
    assert report["results"][0]["detail"] == "32 matches"
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
    assert "32 matches" in table


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
