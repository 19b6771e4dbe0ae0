"""segkit.plot: each chart's content (bars, labels, points), drawn with the Agg backend."""

from __future__ import annotations

import sys
from datetime import datetime, timedelta, timezone
from typing import Any

import matplotlib
import pytest

import segkit as sk
from segkit import plot

matplotlib.use("Agg")

T0 = datetime(2024, 6, 1, tzinfo=timezone.utc)


def engine_with_segments() -> sk.Engine:
    engine = sk.Engine(sk.Schema(attributes={"n": "int"}))
    engine.upsert_many({f"k{i:02d}": {"n": i} for i in range(30)})
    engine.define("small", "n < 10")
    engine.define("even", "n in [0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28]")
    engine.define("big", "n >= 20")
    engine.define("tail", "n >= 25")
    return engine


def test_upset_draws_every_region_with_its_dots() -> None:
    engine = engine_with_segments()
    report = engine.overlap(["small", "even", "big", "tail"])
    fig = plot.upset(report)
    bars, matrix, totals = fig.axes
    heights = [int(p.get_height()) for p in bars.patches]
    assert heights == [r.count for r in report.regions]
    assert [t.get_text() for t in bars.texts] == [f"{r.count:,}" for r in report.regions]
    assert [t.get_text() for t in matrix.get_yticklabels()] == ["small", "even", "big", "tail"]
    assert [int(p.get_width()) for p in totals.patches] == [10, 15, 10, 5]
    # the filled dots of each column are the region's segments
    filled = [c for c in matrix.collections if tuple(c.get_facecolor()[0][:3]) == (0, 0, 0)]
    position = {name: i for i, name in enumerate(report.names)}
    for column, region in zip(filled, report.regions, strict=True):
        assert sorted(int(y) for _, y in column.get_offsets()) == sorted(
            position[s] for s in region.segments
        )


def test_upset_keeps_the_first_regions() -> None:
    report = engine_with_segments().overlap(["small", "even", "big"])
    fig = plot.upset(report, max_regions=2, title="Overlap")
    assert [int(p.get_height()) for p in fig.axes[0].patches] == [
        r.count for r in report.regions[:2]
    ]
    assert fig._suptitle is not None
    assert fig._suptitle.get_text() == "Overlap"
    with pytest.raises(ValueError, match=r"^max_regions must be at least 1, got 0$"):
        plot.upset(report, max_regions=0)


def test_venn_of_three_labels_every_region() -> None:
    engine = engine_with_segments()
    report = engine.overlap(["small", "even", "big"], empty=True)
    texts = [t.get_text() for t in plot.venn(report).axes[0].texts]
    assert texts[:3] == ["small (10)", "even (15)", "big (10)"]
    # regions in the order of the label table: a, b, c, a&b, a&c, b&c, a&b&c
    assert texts[3:] == ["5", "5", "5", "5", "0", "5", "0"]
    with pytest.raises(ValueError, match=r"^a Venn diagram shows 2 or 3 segments, not 4"):
        plot.venn(engine.overlap(["small", "even", "big", "tail"]))


def test_funnel_chart_labels_counts_conversion_and_times() -> None:
    events = [
        sk.Event("a", "visit", T0),
        sk.Event("a", "cart", T0 + timedelta(minutes=30)),
        sk.Event("a", "buy", T0 + timedelta(days=2)),
        sk.Event("b", "visit", T0),
        sk.Event("b", "cart", T0 + timedelta(minutes=10)),
        sk.Event("c", "visit", T0),
        sk.Event("d", "visit", T0),
    ]
    report = sk.Funnel(["visit", "cart", "buy"], window=timedelta(days=7)).run(events)
    ax = plot.funnel(report).axes[0]
    assert [int(p.get_height()) for p in ax.patches] == [4, 2, 1]
    assert [t.get_text() for t in ax.texts] == [
        "4 (100%)",
        "2 (50%)",
        "1 (25%)",
        "median 20min",
        "median 2.0d",
    ]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["visit", "cart", "buy"]


def test_history_marks_the_flagged_window() -> None:
    storage = sk.InMemoryStorage()
    sizes = [100, 101, 102, 103, 104, 105, 106, 107, 108, 220]
    for day, size in enumerate(sizes):
        storage.put_snapshot(
            sk.Snapshot("vip", T0 + timedelta(days=day), size), expected_version=None
        )
    engine = sk.Engine(sk.Schema(attributes={}), storage=storage)

    class Item:
        name = "vip"
        reasons = ("doubled within 2 days",)

    fig = plot.history(engine, "vip", attention=[Item()], days=2)
    ax = fig.axes[0]
    assert [int(y) for y in ax.lines[0].get_ydata()] == sizes
    assert [int(y) for _, y in ax.collections[0].get_offsets()] == [108, 220]
    assert ax.get_title() == "vip: doubled within 2 days"
    with pytest.raises(ValueError, match=r"^segment 'nope' has no stored snapshots$"):
        plot.history(engine, "nope")


def test_a_missing_matplotlib_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    report: Any = engine_with_segments().overlap(["small", "even"])
    with pytest.raises(ImportError) as error:
        plot.upset(report)
    assert str(error.value) == "segkit.plot needs matplotlib: pip install 'segkit[plot]'"


def test_split_balance_shows_actual_and_expected_counts() -> None:
    engine = sk.Engine(sk.Schema(attributes={"n": "int"}))
    engine.upsert_many({f"k{i:03d}": {"n": i} for i in range(200)})
    engine.define("everyone", "n >= 0")
    split = engine.split("everyone", {"control": 50, "test": 50}, salt="exp-1")
    ax = plot.split_balance(split).axes[0]
    heights = [round(p.get_height(), 6) for p in ax.patches]
    assert heights == [
        split.counts["control"],
        split.counts["test"],
        round(split.expected["control"], 6),
        round(split.expected["test"], 6),
    ]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["control", "test"]
    verdict = "balanced" if split.srm.ok else "sample-ratio mismatch"
    assert ax.get_title() == f"{verdict} (p = {split.srm.p_value:.3g})"
