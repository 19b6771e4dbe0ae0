"""Tests for the command line: ``python -m segkit demo``, ``check`` and ``--help``."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from typing import Any

import pytest

import segkit as sk
from segkit import __main__ as cli
from segkit.__main__ import DEMO_SEGMENTS, main, run_demo

SIZE, SEED = 2000, 7

SEGMENTS_TABLE = """\
segment            kind                members  share  description
------------------------------------------------------------------
high_value         demographic             139   7.0%  high-value paying plans
                   rule: plan in ["pro", "enterprise"] and ltv > 500
fr_millennials     demographic              53   2.6%  French millennials
                   rule: country = "FR" and age between 29 and 44
vip_prospects      demographic             125   6.2%  VIPs not yet customers
                   rule: tags has any ["vip", "early_adopter"] and is_customer = false
promoters          demographic             204  10.2%  answered the survey with 9 or 10
                   rule: nps >= 9
repeat_abandoners  behavioural              25   1.2%  abandoned 2+ carts this month
                   rule: did cart_abandoned >= 2 times in last 30d
quick_buyers       behavioural             447  22.4%  bought within a day of carting
                   rule: did add_to_cart then purchase within 1d
big_spenders       behavioural             102   5.1%  spent over 200 in 90 days
                   rule: sum(purchase.amount in last 90d) > 200
recent_buyers      behavioural              39   1.9%  bought this week
                   rule: did purchase in last 7d
pricing_lurkers    behavioural             401  20.1%  saw pricing, never bought
                   rule: not did purchase and did page_view where url starts_with "/pricing"
win_back           segment of segments     124   6.2%  high value, quiet for 90 days
                   rule: in segment "high_value" and not in segment "big_spenders"
hot_leads          segment of segments       8   0.4%  lurkers who keep abandoning
                   rule: in segment "pricing_lurkers" and in segment "repeat_abandoners"
holdout            sampling                188   9.4%  a deterministic 10% holdout
                   rule: bucket("demo-holdout") in 0..999
"""

SECTIONS = [
    "== The data",
    "== Segments (engine.define)",
    "== Overlap of high_value, big_spenders, quick_buyers (engine.overlap)",
    "== A 50/50 split of quick_buyers with its sample-ratio check (engine.split)",
    "== Journey of fr_millennials (engine.funnel, 30-day window)",
    "== Journey of vip_prospects (engine.funnel, 30-day window)",
    "== Segments needing attention (engine.attention, last 7 days)",
    "== KPIs compared (engine.compare): CLV, customer rate, NPS",
    "== Errors point at the problem (python -m segkit check 'rule')",
]


@pytest.fixture(autouse=True)
def _columns(monkeypatch: pytest.MonkeyPatch) -> None:
    """argparse wraps its help to the terminal width: make it fixed."""
    monkeypatch.setenv("COLUMNS", "100")


@pytest.fixture(scope="module")
def text() -> str:
    """The demo's text at a small size, run once for the module."""
    out = io.StringIO()
    assert run_demo(out, size=SIZE, seed=SEED, progress=False) == 0
    return out.getvalue()


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    """The demo's JSON document at the same size and seed."""
    out = io.StringIO()
    assert run_demo(out, size=SIZE, seed=SEED, as_json=True, progress=False) == 0
    parsed: dict[str, Any] = json.loads(out.getvalue())
    return parsed


def test_demo_header(text: str) -> None:
    """The first lines name the version, the sizes and the generator call."""
    assert text.startswith(
        f"segkit {sk.__version__} demo: 2,000 synthetic profiles, 18,859 events\n"
        "as of 2024-06-30 12:00 UTC "
        "(segkit.datasets.generate(2000, seed=7, events_per_profile=11))\n"
    )
    assert (
        "events:     page_view 12,084, signup 401, add_to_cart 2,404, cart_abandoned 739, "
        "checkout_started 1,073, purchase 702, email_open 1,456\n"
    ) in text


def test_demo_prints_every_section_in_order(text: str) -> None:
    """Each section header appears once, in the documented order."""
    positions = [text.index(f"\n{header}\n\n") for header in SECTIONS]
    assert positions == sorted(positions)
    assert all(text.count(header) == 1 for header in SECTIONS)


def test_demo_segments_table(text: str) -> None:
    """The segments table has exact counts for the fixed seed."""
    assert "\n== Segments (engine.define)\n\n" + SEGMENTS_TABLE + "\n== Overlap" in text


def test_demo_counts_are_the_predicates(text: str) -> None:
    """Each demographic and behavioural count equals the predicate's on the same data."""
    data = sk.datasets.generate(SIZE, seed=SEED, events_per_profile=cli.EVENTS_PER_PROFILE)
    events: dict[str, list[sk.Event]] = {}
    for event in data.events:
        events.setdefault(event.key, []).append(event)
    for name, kind, rule, _ in DEMO_SEGMENTS:
        if kind == "segment of segments":
            continue
        pred = sk.compile_predicate(rule, data.schema)
        n = len(pred.filter(data.profiles, lambda key: events.get(key, ()), now=data.now))
        row = next(line for line in text.splitlines() if line.startswith(f"{name} "))
        assert int(row[39:46].replace(",", "")) == n, name


def test_demo_segment_kinds() -> None:
    """The demo has demographic, behavioural and segment-of-segments rules."""
    kinds = {kind for _, kind, _, _ in DEMO_SEGMENTS}
    assert kinds == {"demographic", "behavioural", "segment of segments", "sampling"}
    nested = [rule for _, kind, rule, _ in DEMO_SEGMENTS if kind == "segment of segments"]
    assert all("in segment" in rule for rule in nested)


def test_demo_split_and_attention(text: str) -> None:
    """The split shows its sample-ratio check; the re-imported list is flagged with reasons."""
    assert "Split of 'quick_buyers' (447 members) with salt 'demo-exp': SRM p=0.2016, ok\n" in text
    assert "  control      50  0..4999       210     223.5\n" in text
    assert "AttentionReport: 1 segment, 1 flagged\n" in text
    row = next(line for line in text.splitlines() if line.startswith("  webinar_import"))
    assert row.split()[:4] == ["webinar_import", "115", "+92", "(+400%)"]
    assert row.endswith(
        "crm-sync  size doubled within 2 days; size +400% in 7 days; "
        "engagement rose from zero in 7 days"
    )


def test_demo_journeys_and_kpis(text: str) -> None:
    """Journeys show conversion and time between stages; KPIs show CLV, rate and NPS."""
    assert "FunnelReport: 49 entered, total conversion 30.6%, cumulative 30.6%\n" in text
    assert "  1 add_to_cart          35      71.4%       71.4%      0:10:19    0:09:37\n" in text
    assert "  segment       members  mean(ltv)" in text
    assert "rate(is_customer)" in text
    assert "  promoters         204  " in text
    assert "100.0 [100.0, 100.0] n=204\n" in text


def test_demo_json_has_every_section(doc: dict[str, Any], text: str) -> None:
    """--json gives one document with the same numbers as the text."""
    assert list(doc) == [
        "segkit",
        "size",
        "seed",
        "dataset",
        "segments",
        "overlap",
        "split",
        "journeys",
        "attention",
        "kpis",
        "errors",
    ]
    assert (doc["size"], doc["seed"]) == (SIZE, SEED)
    assert doc["dataset"]["profiles"] == 2000
    assert doc["dataset"]["events"] == 18859
    counts = {row["name"]: row["members"] for row in doc["segments"]}
    assert counts == {
        "high_value": 139,
        "fr_millennials": 53,
        "vip_prospects": 125,
        "promoters": 204,
        "repeat_abandoners": 25,
        "quick_buyers": 447,
        "big_spenders": 102,
        "recent_buyers": 39,
        "pricing_lurkers": 401,
        "win_back": 124,
        "hot_leads": 8,
        "holdout": 188,
    }
    assert doc["overlap"]["names"] == ["high_value", "big_spenders", "quick_buyers"]
    assert [g["count"] for g in doc["split"]["groups"]] == [210, 237]
    assert doc["split"]["srm"]["ok"] is True
    assert list(doc["journeys"]) == ["fr_millennials", "vip_prospects"]
    assert doc["journeys"]["fr_millennials"]["entered"] == 49
    assert [i["name"] for i in doc["attention"]["items"]] == ["webinar_import"]
    assert [r["segment"] for r in doc["kpis"]["rows"]] == [
        "high_value",
        "win_back",
        "quick_buyers",
        "promoters",
        "holdout",
    ]
    assert [e["error"] for e in doc["errors"]] == ["UnknownAttributeError", "RuleSyntaxError"]


def test_demo_is_deterministic(text: str) -> None:
    """The same size and seed print the same text; another seed another one."""
    again, other = io.StringIO(), io.StringIO()
    run_demo(again, size=SIZE, seed=SEED, progress=False)
    run_demo(other, size=SIZE, seed=SEED + 1, progress=False)
    assert again.getvalue() == text
    assert other.getvalue() != text


def test_demo_command_line_options(capsys: pytest.CaptureFixture[str]) -> None:
    """main() passes --size, --seed and --json on; a non-terminal stderr gets no bar."""
    assert main(["demo", "--size", "300", "--seed", "3", "--json"]) == 0
    captured = capsys.readouterr()
    parsed = json.loads(captured.out)
    assert (parsed["size"], parsed["seed"], parsed["dataset"]["profiles"]) == (300, 3, 300)
    assert captured.err == ""


def test_demo_progress_with_tqdm() -> None:
    """With progress on, tqdm bars for the slow steps go to err and are cleared."""
    pytest.importorskip("tqdm")
    out, err = io.StringIO(), io.StringIO()
    run_demo(out, size=300, progress=True, err=err)
    shown = err.getvalue()
    for step in ("loading profiles", "loading events", "defining segments", "refresh at now-0d"):
        assert f"\r{step}: " in shown
    assert shown.endswith("\r")  # the bars are cleared when done
    assert out.getvalue().startswith(f"segkit {sk.__version__} demo: 300 synthetic profiles")


def test_demo_progress_without_tqdm(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without tqdm, the progress line is plain text on err, cleared at the end of a step."""
    monkeypatch.setitem(sys.modules, "tqdm", None)
    err = io.StringIO()
    run_demo(io.StringIO(), size=300, progress=True, err=err)
    shown = err.getvalue()
    assert "\rloading profiles: 300/300\r" in shown
    assert "\rdefining segments: 12/12\r" in shown


def test_demo_progress_follows_the_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """By default the bars are shown only when err is a terminal."""
    monkeypatch.setitem(sys.modules, "tqdm", None)

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    tty, pipe = Terminal(), io.StringIO()
    run_demo(io.StringIO(), size=50, err=tty)
    run_demo(io.StringIO(), size=50, err=pipe)
    assert "loading events: " in tty.getvalue()
    assert pipe.getvalue() == ""


# --- help, usage errors, check ----------------------------------------------------------------


def test_help_lists_the_commands(capsys: pytest.CaptureFixture[str]) -> None:
    """--help lists each command with its one-line description and exits 0."""
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: python -m segkit [-h] COMMAND ...\n")
    assert "\ncommands:\n  COMMAND\n" in out
    assert "    demo      a tour of segkit on built-in synthetic data\n" in out
    assert "    check     check a rule: print its canonical form or its errors\n" in out


def test_demo_help_lists_its_options(capsys: pytest.CaptureFixture[str]) -> None:
    """demo --help describes --size, --seed and --json."""
    with pytest.raises(SystemExit):
        main(["demo", "--help"])
    out = capsys.readouterr().out
    assert "usage: python -m segkit demo [-h] [--size N] [--seed SEED] [--json]\n" in out
    assert "number of profiles (default 50,000; about 9 events each)" in out


def test_no_command_prints_the_help_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    """Without a command: the help on stderr, exit code 2."""
    assert main([]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("usage: python -m segkit [-h] COMMAND ...\n")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["demo", "--size", "0"], "argument --size: must be a positive integer, got 0"),
        (["demo", "--size", "x"], "argument --size: invalid _positive value: 'x'"),
        (["nope"], "argument COMMAND: invalid choice: 'nope' (choose from 'demo', 'check')"),
    ],
)
def test_usage_errors_exit_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Bad arguments print the usage error and exit 2."""
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    assert capsys.readouterr().err.endswith(f"error: {message}\n")


def test_module_runs_as_a_program() -> None:
    """``python -m segkit`` exits 2 with the help; ``check`` exits 1 on a bad rule."""
    bare = subprocess.run([sys.executable, "-m", "segkit"], capture_output=True, text=True)
    assert bare.returncode == 2
    assert "demo" in bare.stderr
    bad = subprocess.run(
        [sys.executable, "-m", "segkit", "check", "age >="], capture_output=True, text=True
    )
    assert (bad.returncode, bad.stdout.splitlines()[0]) == (
        1,
        "RuleSyntaxError: expected a value after '>=' (line 1, column 7)",
    )
