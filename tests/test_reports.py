"""Reports in notebooks and data frames: _repr_html_, repr/table, to_pandas and to_polars."""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import pandas as pd
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import segkit as sk
from segkit.analysis import metrics
from segkit.analysis._html import format_duration, html_table, text_table, typed_columns
from segkit.analysis.attention import AttentionReport
from segkit.analysis.funnel import Funnel
from segkit.analysis.hygiene import HygieneReport
from segkit.interop import frame_rows, typed_frame

NOW = datetime(2024, 6, 30, 9, 15, tzinfo=timezone.utc)
T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)
DAY = timedelta(days=1)
#: A name that must be escaped in HTML.
ODD = "<b>&"
ODD_HTML = "&lt;b&gt;&amp;"


def left(text: str) -> str:
    return f'<td style="text-align:left">{text}</td>'


def right(text: str) -> str:
    return f'<td style="text-align:right">{text}</td>'


def head(*cells: tuple[str, str]) -> str:
    """The exact header row of a report's HTML table from ``(title, align)`` pairs."""
    side = {"l": "left", "r": "right"}
    return (
        "<thead><tr>"
        + "".join(f'<th style="text-align:{side[a]}">{t}</th>' for t, a in cells)
        + "</tr></thead>"
    )


def row(*cells: str) -> str:
    return "<tr>" + "".join(cells) + "</tr>"


def caption(text: str) -> str:
    return f'<caption style="text-align:left">{text}</caption>'


def shop() -> sk.Engine:
    """12 profiles, half "pro" and half ``ODD`` (a plan name with HTML in it)."""
    engine = sk.Engine(
        sk.Schema(attributes={"plan": "string", "age": "int", "ltv": "float", "ok": "bool"}),
        clock=lambda: NOW,
    )
    engine.upsert_many(
        {
            f"c{i}": {
                "plan": ["pro", ODD][i % 2],
                "age": 10 + 5 * i,
                "ltv": float(10 * i),
                "ok": i % 3 == 0,
            }
            for i in range(12)
        }
    )
    return engine


def same_frames(report: Any) -> list[dict[str, Any]]:
    """The rows of ``report.to_pandas()``, checked equal to those of ``to_polars()``."""
    frame = report.to_pandas()
    other = report.to_polars()
    assert list(frame.columns) == other.columns
    rows = frame_rows(frame)
    assert rows == frame_rows(other)
    return rows


# --- the shared helpers -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, "-"),
        (timedelta(0), "0:00:00"),
        (timedelta(seconds=4, microseconds=499_999), "0:00:04"),
        (timedelta(seconds=4, microseconds=500_000), "0:00:05"),
        (timedelta(days=1, hours=2, minutes=3, seconds=4, microseconds=123_456), "1 day, 2:03:04"),
        (timedelta(days=3, seconds=59, microseconds=999_999), "3 days, 0:01:00"),
        (-timedelta(minutes=1, seconds=30, microseconds=400_000), "-0:01:30"),
    ],
)
def test_format_duration_rounds_to_whole_seconds(value: timedelta | None, text: str) -> None:
    """Durations show as str(timedelta) rounded to the second, halves up; None as '-'."""
    assert format_duration(value) == text


def test_html_table_escapes_every_string() -> None:
    """Caption lines, titles, cells and notes are all escaped; caption lines join with <br>."""
    got = html_table(["a<1>", "b&c"], [("x<", "l"), ("n", "r")], [["<b>&", "1"]], ['"q"'])
    assert got == (
        '<table class="segkit-report">\n'
        '<caption style="text-align:left">a&lt;1&gt;<br>b&amp;c</caption>\n'
        '<thead><tr><th style="text-align:left">x&lt;</th>'
        '<th style="text-align:right">n</th></tr></thead>\n'
        "<tbody>\n"
        f"{row(left('&lt;b&gt;&amp;'), right('1'))}\n"
        "</tbody>\n"
        '<tfoot><tr><td colspan="2" style="text-align:left">&quot;q&quot;</td></tr></tfoot>\n'
        "</table>"
    )


def test_text_table_aligns_columns() -> None:
    """Text columns are padded on the right, number columns on the left; notes follow."""
    got = text_table(["T"], [("name", "l"), ("n", "r")], [["a", "1"], ["bbbbb", "10"]], ["n1"])
    assert got == "T\n  name    n\n  a       1\n  bbbbb  10\n  n1"
    assert text_table(["T"], [("name", "l")], []) == "T"


def test_typed_frame_kinds_in_both_libraries() -> None:
    """Each column kind maps to one pandas dtype and one polars type, with the same values."""
    columns: dict[str, tuple[str, list[Any]]] = {
        "i": ("int", [1, None]),
        "f": ("float", [1.5, None]),
        "s": ("str", ["x", None]),
        "b": ("bool", [True, None]),
        "t": ("datetime", [NOW, None]),
        "d": ("duration", [timedelta(microseconds=7), None]),
        "l": ("list[str]", [["x"], []]),
    }
    frame = typed_frame(columns, "pandas")
    dtypes = {name: str(t) for name, t in frame.dtypes.items()}
    assert {k: v for k, v in dtypes.items() if k not in ("s", "t")} == {
        "i": "Int64",
        "f": "float64",
        "b": "boolean",
        "d": "timedelta64[ns]",
        "l": "object",
    }
    assert pd.api.types.is_string_dtype(frame["s"])
    assert str(frame["t"].dtype.tz) == "UTC"
    polars = typed_frame(columns, "polars")
    assert dict(polars.schema) == {
        "i": pl.Int64,
        "f": pl.Float64,
        "s": pl.String,
        "b": pl.Boolean,
        "t": pl.Datetime("us", "UTC"),
        "d": pl.Duration("us"),
        "l": pl.List(pl.String),
    }
    expected = [
        {"i": 1, "f": 1.5, "s": "x", "b": True, "t": NOW, "d": timedelta(microseconds=7)},
        {"i": None, "f": None, "s": None, "b": None, "t": None, "d": None},
    ]
    for rows in (frame_rows(frame), frame_rows(polars)):
        assert [{k: v for k, v in r.items() if k != "l"} for r in rows] == expected
        assert [r["l"] for r in rows] == [["x"], []]
    assert str(typed_frame({"i": ("int", [1, 2])})["i"].dtype) == "int64"
    with pytest.raises(ValueError, match=r"^library must be 'pandas' or 'polars', got 'pyarrow'$"):
        typed_frame(columns, "pyarrow")


def test_a_repeated_column_name_is_an_error() -> None:
    """A segment named like another column of the frame is refused, not silently dropped."""
    with pytest.raises(ValueError, match=r"^two columns") as error:
        typed_columns([("share", "bool", []), ("share", "float", [])])
    assert str(error.value) == (
        "two columns of the frame would be named 'share': rename the segment or metric"
    )
    engine = shop()
    engine.define("count", "age > 30")
    with pytest.raises(ValueError, match=r"would be named 'count'"):
        engine.overlap(["count"]).to_pandas()


# --- Members --------------------------------------------------------------------------------


def test_members_html_and_frame() -> None:
    """Members show their size and escaped keys; to_frame has one 'key' column."""
    engine = sk.Engine(sk.Schema(attributes={"n": "int"}))
    engine.upsert_many({ODD: {"n": 1}, "a": {"n": 2}})
    members = engine.query("n > 0")
    assert members._repr_html_() == (
        "<div><strong>Members</strong> (2 profiles)"
        f"<ul><li><code>{ODD_HTML}</code></li><li><code>a</code></li></ul></div>"
    )
    assert repr(members) == "Members(2: '<b>&', 'a')"
    assert frame_rows(members.to_frame()) == [{"key": ODD}, {"key": "a"}]
    assert frame_rows(members.to_frame("polars")) == [{"key": ODD}, {"key": "a"}]


# --- overlap --------------------------------------------------------------------------------


def overlap_report() -> sk.OverlapReport:
    engine = shop()
    engine.define(ODD, f'plan = "{ODD}"')
    engine.define("adults", "age >= 18")
    return engine.overlap([ODD, "adults"])


def test_overlap_repr_and_html() -> None:
    """The HTML view is the text table, escaped, in an HTML table."""
    report = overlap_report()
    assert repr(report) == (
        "OverlapReport: 2 segments (<b>&: 6, adults: 10), 11 profiles in any\n"
        "  count  region\n"
        "      5  adults\n"
        "      5  <b>& & adults\n"
        "      1  <b>&"
    )
    assert report._repr_html_() == "\n".join(
        [
            '<table class="segkit-report">',
            caption(f"OverlapReport: 2 segments ({ODD_HTML}: 6, adults: 10), 11 profiles in any"),
            head(("count", "r"), ("region", "l")),
            "<tbody>",
            row(right("5"), left("adults")),
            row(right("5"), left(f"{ODD_HTML} &amp; adults")),
            row(right("1"), left(ODD_HTML)),
            "</tbody>",
            "</table>",
        ]
    )


def test_overlap_html_lists_the_first_rows_and_pairs() -> None:
    """Beyond 20 regions a note counts the rest; a pairwise-only report lists pairs."""
    engine = sk.Engine(sk.Schema(attributes={"n": "int"}))
    engine.upsert_many({f"k{i}": {"n": i} for i in range(32)})
    for bit in range(5):
        engine.define(f"b{bit}", f"n in [{', '.join(str(i) for i in range(32) if i >> bit & 1)}]")
    names = [f"b{bit}" for bit in range(5)]
    html = engine.overlap(names)._repr_html_()
    assert html.count('<tr><td style="text-align:right">') == 20
    assert (
        '<tfoot><tr><td colspan="2" style="text-align:left">... 11 more</td></tr></tfoot>' in html
    )
    pairs = engine.overlap(names[:2], pairwise=True)._repr_html_()
    assert head(("count", "r"), ("pair", "l")) in pairs
    assert row(right("8"), left("b0 &amp; b1")) in pairs


def test_overlap_frames() -> None:
    """One row per region: a bool column per segment, count, and share of the union."""
    report = overlap_report()
    assert same_frames(report) == [
        {ODD: False, "adults": True, "count": 5, "share": 5 / 11},
        {ODD: True, "adults": True, "count": 5, "share": 5 / 11},
        {ODD: True, "adults": False, "count": 1, "share": 1 / 11},
    ]
    frame = report.to_pandas()
    assert [str(t) for t in frame.dtypes] == ["bool", "bool", "int64", "float64"]
    assert report.to_polars().dtypes == [pl.Boolean, pl.Boolean, pl.Int64, pl.Float64]
    by_names = report.sorted("names")
    assert same_frames(by_names)[0] == {ODD: True, "adults": False, "count": 1, "share": 1 / 11}


def test_pairwise_only_overlap_frame_has_no_rows() -> None:
    """A pairwise-only report computes no region: its frames have the columns and no row."""
    engine = shop()
    engine.define("adults", "age >= 18")
    frame = engine.overlap(["adults"], pairwise=True).to_polars()
    assert frame.columns == ["adults", "count", "share"]
    assert frame.height == 0


# --- split ----------------------------------------------------------------------------------


def split_report() -> sk.Split:
    engine = shop()
    engine.define("adults", "age >= 18")
    return engine.split("adults", {"a": 1, ODD: 1}, salt="s", holdout=10)


def test_split_html() -> None:
    """The split's HTML has the text table's columns and the holdout note below."""
    html = split_report()._repr_html_()
    assert html.split("\n")[1:4] == [
        caption(
            "Split of &#x27;adults&#x27; (10 members) with salt &#x27;s&#x27;: SRM p=0.9460, ok"
        ),
        head(("group", "l"), ("weight", "r"), ("buckets", "l"), ("count", "r"), ("expected", "r")),
        "<tbody>",
    ]
    assert row(left(ODD_HTML), right("1"), left("5000..9999"), right("5"), right("4.5")) in html
    assert row(left("holdout"), right("10%"), left("0..999*"), right("1"), right("1.0")) in html
    assert html.endswith(
        '<tfoot><tr><td colspan="5" style="text-align:left">* holdout buckets are under the '
        "salt &#x27;s:holdout&#x27;</td></tr></tfoot>\n</table>"
    )


def test_split_frames() -> None:
    """One row per group: weight, bucket range, count, share of the segment, expected."""
    split = split_report()
    assert same_frames(split) == [
        {"group": "a", "weight": 1.0, "low": 0, "high": 4999, "count": 4, "share": 0.4,
         "expected": 4.5},
        {"group": ODD, "weight": 1.0, "low": 5000, "high": 9999, "count": 5, "share": 0.5,
         "expected": 4.5},
        {"group": "holdout", "weight": 10.0, "low": 0, "high": 999, "count": 1, "share": 0.1,
         "expected": 1.0},
    ]  # fmt: skip
    assert [str(t) for t in split.to_pandas().dtypes.drop("group")] == [
        "float64", "int64", "int64", "int64", "float64", "float64",
    ]  # fmt: skip


def test_stratified_split_frame_has_no_bucket_range() -> None:
    """A stratified split has no bucket range: low and high are missing (Int64 in pandas)."""
    engine = shop()
    engine.define("adults", "age >= 18")
    split = engine.split("adults", {"a": 1, "b": 1}, salt="s", by="plan")
    frame = split.to_pandas()
    assert str(frame["low"].dtype) == "Int64"
    assert [(r["group"], r["low"], r["high"], r["count"]) for r in same_frames(split)] == [
        ("a", None, None, 4),
        ("b", None, None, 6),
    ]


# --- funnel ---------------------------------------------------------------------------------


def funnel_report() -> sk.FunnelReport:
    """4 entrants, 3 of them reach ``ODD`` after 10 s, 1 h and 1 day 2 h (with microseconds)."""
    events = [
        sk.Event("a", "visit", T0),
        sk.Event("a", ODD, T0 + timedelta(days=1, hours=2, minutes=3, seconds=4, microseconds=623456)),
        sk.Event("b", "visit", T0),
        sk.Event("b", ODD, T0 + timedelta(seconds=10, microseconds=1)),
        sk.Event("c", "visit", T0),
        sk.Event("c", ODD, T0 + timedelta(hours=1)),
        sk.Event("d", "visit", T0),
    ]  # fmt: skip
    return Funnel(["visit", ODD], window="7d").run(events)


#: The exact mean time to ``ODD``: 9:01:04.874486, shown rounded up to 9:01:05.
MEAN = timedelta(hours=9, minutes=1, seconds=4, microseconds=874486)


def test_funnel_table_rounds_times_to_seconds() -> None:
    """table() and repr show mean and median times to the nearest second."""
    assert repr(funnel_report()) == (
        "FunnelReport: 4 entered, total conversion 75.0%, cumulative 75.0%\n"
        "  # step   count  from prev  from start  median time  mean time\n"
        "  0 visit      4     100.0%      100.0%            -          -\n"
        "  1 <b>&       3      75.0%       75.0%      1:00:00    9:01:05"
    )


def test_funnel_html() -> None:
    """The funnel's HTML has one row per step, times rounded, names escaped."""
    html = funnel_report()._repr_html_()
    lines = html.split("\n")
    assert lines[1] == caption("FunnelReport: 4 entered, total conversion 75.0%, cumulative 75.0%")
    assert lines[2] == head(
        ("#", "r"),
        ("step", "l"),
        ("count", "r"),
        ("from prev", "r"),
        ("from start", "r"),
        ("median time", "r"),
        ("mean time", "r"),
    )
    assert lines[4] == row(
        right("0"), left("visit"), right("4"), right("100.0%"), right("100.0%"), right("-"),
        right("-"),
    )  # fmt: skip
    assert lines[5] == row(
        right("1"), left(ODD_HTML), right("3"), right("75.0%"), right("75.0%"),
        right("1:00:00"), right("9:01:05"),
    )  # fmt: skip


def test_funnel_frames_keep_exact_times() -> None:
    """One row per step; the times are exact durations (microseconds kept)."""
    report = funnel_report()
    assert same_frames(report) == [
        {"step": 0, "name": "visit", "count": 4, "dropped": 1,
         "conversion_from_previous": 1.0, "conversion_from_start": 1.0, "time_count": None,
         "mean_time": None, "median_time": None, "p90_time": None, "min_time": None,
         "max_time": None},
        {"step": 1, "name": ODD, "count": 3, "dropped": 0,
         "conversion_from_previous": 0.75, "conversion_from_start": 0.75, "time_count": 3,
         "mean_time": MEAN, "median_time": timedelta(hours=1),
         "p90_time": timedelta(hours=21, minutes=2, seconds=27, microseconds=698765),
         "min_time": timedelta(seconds=10, microseconds=1),
         "max_time": timedelta(days=1, hours=2, minutes=3, seconds=4, microseconds=623456)},
    ]  # fmt: skip
    stats = report.steps[1].time_from_previous
    assert stats is not None
    assert (stats.mean, stats.p90) == (MEAN, timedelta(seconds=75747, microseconds=698765))
    assert report.to_dict()["steps"][1]["time_from_previous"]["mean_seconds"] == 32464.874486
    frame = report.to_pandas()
    assert str(frame["mean_time"].dtype) == "timedelta64[ns]"
    assert str(frame["time_count"].dtype) == "Int64"
    assert report.to_polars().schema["mean_time"] == pl.Duration("us")


def test_engine_funnel_reports_convert_too() -> None:
    """engine.funnel returns one FunnelReport per segment, each with its frame."""
    engine = sk.Engine(sk.Schema(attributes={"plan": "string"}, events={"visit": {}, "buy": {}}))
    engine.upsert_many({"a": {"plan": "pro"}, "b": {"plan": "free"}})
    engine.track_many([sk.Event("a", "visit", T0), sk.Event("a", "buy", T0 + DAY),
                       sk.Event("b", "visit", T0)])  # fmt: skip
    engine.define("pro", 'plan = "pro"')
    reports = engine.funnel(Funnel(["visit", "buy"], window="7d"), segments=["pro"])
    assert [r["count"] for r in same_frames(reports["pro"])] == [1, 1]


# --- comparison -----------------------------------------------------------------------------


def comparison() -> sk.Comparison:
    engine = shop()
    engine.define(ODD, f'plan = "{ODD}"')
    engine.define("nobody", "age > 1000")
    return engine.compare([ODD, "nobody"], [metrics.count(), metrics.mean("ltv")])


def test_comparison_html() -> None:
    """One row per segment; each metric cell as in the text table."""
    html = comparison()._repr_html_()
    lines = html.split("\n")
    assert lines[1] == caption("Comparison of 2 segments (95% confidence)")
    assert lines[2] == head(("segment", "l"), ("members", "r"), ("count", "l"), ("mean(ltv)", "l"))
    assert lines[4] == row(left(ODD_HTML), right("6"), left("6"), left("60 [20.73, 99.27] n=6"))
    assert lines[5] == row(left("nobody"), right("0"), left("0"), left("- n=0"))


def test_comparison_frames() -> None:
    """Per metric: value, _low, _high and _n columns; a missing value is NaN / null."""
    table = comparison()
    rows = same_frames(table)
    assert list(rows[0]) == [
        "segment", "size", "count", "count_low", "count_high", "count_n",
        "mean(ltv)", "mean(ltv)_low", "mean(ltv)_high", "mean(ltv)_n",
    ]  # fmt: skip
    value = table[ODD, "mean(ltv)"]
    assert rows[0] == {
        "segment": ODD, "size": 6, "count": 6.0, "count_low": 6.0, "count_high": 6.0,
        "count_n": 6, "mean(ltv)": 60.0, "mean(ltv)_low": value.low,
        "mean(ltv)_high": value.high, "mean(ltv)_n": 6,
    }  # fmt: skip
    assert round(rows[0]["mean(ltv)_low"], 4) == 20.7337
    assert rows[1] == {
        "segment": "nobody", "size": 0, "count": 0.0, "count_low": 0.0, "count_high": 0.0,
        "count_n": 0, "mean(ltv)": None, "mean(ltv)_low": None, "mean(ltv)_high": None,
        "mean(ltv)_n": 0,
    }  # fmt: skip
    frame = table.to_pandas()
    assert str(frame["mean(ltv)"].dtype) == "float64"
    assert bool(frame["mean(ltv)"].isna()[1])
    assert str(frame["mean(ltv)_n"].dtype) == "int64"


# --- drivers and lookalike ------------------------------------------------------------------


def drivers_report() -> sk.Drivers:
    engine = shop()
    engine.define("all", "age is known")
    return engine.drivers("all", metrics.mean("ltv"), min_count=2, attributes=["plan", "ok"])


def test_drivers_html() -> None:
    """Both head lines form the caption; one row per driver, escaped."""
    html = drivers_report()._repr_html_()
    lines = html.split("\n")
    assert lines[1] == caption(
        "Drivers of mean(ltv) in segment &#x27;all&#x27;: 12 members, 55 [32.09, 77.91] n=12"
        "<br>effect size: Cohen&#x27;s d; 4 groups, 0 left out (fewer than 2)"
    )
    assert lines[2] == head(
        ("#", "r"), ("group", "l"), ("n", "r"), ("value", "r"), ("rest n", "r"), ("rest", "r"),
        ("difference", "r"), ("effect", "r"), ("p-value", "r"),
    )  # fmt: skip
    assert lines[6] == row(
        right("3"), left(f"plan = &quot;{ODD_HTML}&quot;"), right("6"), right("60"), right("6"),
        right("50"), right("+10"), right("+0.267"), right("0.653"),
    )  # fmt: skip


def test_drivers_frames() -> None:
    """One row per driver, strongest first, with the numbers of Driver.to_dict."""
    report = drivers_report()
    rows = same_frames(report)
    assert rows == [driver.to_dict() for driver in report]
    assert [(r["group"], r["size"], r["value"], r["rest_value"]) for r in rows] == [
        ("ok = false", 8, 60.0, 45.0),
        ("ok = true", 4, 45.0, 60.0),
        ('plan = "<b>&"', 6, 60.0, 50.0),
        ('plan = "pro"', 6, 50.0, 60.0),
    ]


def test_drivers_html_shows_the_top_ten() -> None:
    """Like repr, the HTML view lists ten drivers and counts the others."""
    engine = sk.Engine(sk.Schema(attributes={"g": "int", "ltv": "float"}))
    engine.upsert_many({f"c{i}": {"g": i % 12, "ltv": float(i % 7)} for i in range(120)})
    engine.define("all", "g is known")
    report = engine.drivers("all", metrics.mean("ltv"), min_count=2, bins=12)
    html = report._repr_html_()
    assert len(report) == 12
    assert html.count('<tr><td style="text-align:right">') == 10
    assert '<td colspan="9" style="text-align:left">... 2 more</td>' in html


def lookalike_report() -> sk.Lookalike:
    engine = shop()
    engine.define_static("fans", ["c0", "c2"])
    return engine.lookalike("fans", size=2, save=False, attributes=["plan", "ok"])


def test_lookalike_html() -> None:
    """The chosen profiles by rank, and the strongest weights as a note."""
    html = lookalike_report()._repr_html_()
    assert html == "\n".join(
        [
            '<table class="segkit-report">',
            caption("Lookalike of &#x27;fans&#x27;: 2 of 10 candidates (not saved)"),
            head(("rank", "r"), ("key", "l"), ("score", "r")),
            "<tbody>",
            row(right("1"), left("c6"), right("+0.993")),
            row(right("2"), left("c10"), right("+0.300")),
            "</tbody>",
            '<tfoot><tr><td colspan="3" style="text-align:left">strongest weights: '
            "plan = &#x27;pro&#x27; (+0.588), ok = True (+0.405), ok = False (-0.288), "
            f"plan = &#x27;{ODD_HTML}&#x27; (-0.847)</td></tr></tfoot>",
            "</table>",
        ]
    )


def test_lookalike_frames() -> None:
    """One row per weight, highest first; values as text so one column holds them all."""
    report = lookalike_report()
    rows = same_frames(report)
    assert [(r["attribute"], r["value"], r["seed_count"], r["rest_count"]) for r in rows] == [
        ("plan", "pro", 2, 4),
        ("ok", "True", 1, 3),
        ("ok", "False", 1, 7),
        ("plan", ODD, 0, 6),
    ]
    assert [r["weight"] for r in rows] == [w.weight for w in report.weights]


def test_lookalike_bins_show_as_labels() -> None:
    """A binned attribute's value is its bin label."""
    engine = sk.Engine(sk.Schema(attributes={"age": "int"}))
    engine.upsert_many({f"c{i}": {"age": i} for i in range(10)})
    engine.define_static("young", ["c0", "c1"])
    found = engine.lookalike("young", size=1, save=False, bins={"age": [5]})
    assert [r["value"] for r in same_frames(found)] == ["< 5", ">= 5"]


# --- usage ----------------------------------------------------------------------------------


def usage_engine() -> sk.Engine:
    engine = shop()
    engine.define("all", "age is known")
    engine.define("pro", 'in segment "all" and plan = "pro"')
    engine.define_static("old", [])
    engine.usage.record("all", tool=ODD, objective="analytics", ref="d-1")
    return engine


def test_usage_table_and_html() -> None:
    """One line per use (rule references included), then the unused segments."""
    log = usage_engine().usage
    assert log.table() == (
        "UsageLog: 3 segments, 1 used, 2 uses\n"
        "  segment  tool    objective     ref          at\n"
        "  all      <b>&    analytics     d-1          2024-06-30 09:15\n"
        "  all      segkit  segmentation  segment:pro  2024-06-30 09:15\n"
        "  unused: old, pro"
    )
    assert repr(log) == "UsageLog(segments=3, used=1, records=2)"
    lines = log._repr_html_().split("\n")
    assert lines[1] == caption("UsageLog: 3 segments, 1 used, 2 uses")
    assert lines[2] == head(
        ("segment", "l"), ("tool", "l"), ("objective", "l"), ("ref", "l"), ("at", "l")
    )
    assert lines[4] == row(
        left("all"), left(ODD_HTML), left("analytics"), left("d-1"), left("2024-06-30 09:15")
    )
    assert lines[7] == (
        '<tfoot><tr><td colspan="5" style="text-align:left">unused: old, pro</td></tr></tfoot>'
    )


def test_usage_frames() -> None:
    """One row per use, with the time it was recorded (UTC)."""
    log = usage_engine().usage
    assert same_frames(log) == [
        {"segment": "all", "tool": ODD, "objective": "analytics", "ref": "d-1", "at": NOW},
        {"segment": "all", "tool": "segkit", "objective": "segmentation", "ref": "segment:pro",
         "at": NOW},
    ]  # fmt: skip
    assert log.to_polars().schema["at"] == pl.Datetime("us", "UTC")


def test_usage_names_at_most_ten_unused_segments() -> None:
    """The unused note names ten segments and counts the others."""
    engine = sk.Engine(sk.Schema(attributes={}))
    for i in range(12):
        engine.define_static(f"s{i:02d}", [])
    assert engine.usage.table() == (
        "UsageLog: 12 segments, 0 used, 0 uses\n"
        "  unused: s00, s01, s02, s03, s04, s05, s06, s07, s08, s09, ... 2 more"
    )


# --- attention ------------------------------------------------------------------------------


def attention_engine() -> sk.Engine:
    clock = [T0]
    engine = sk.Engine(sk.Schema(attributes={}), clock=lambda: clock[0])
    engine.upsert_many({f"c-{i}": {} for i in range(40)})
    engine.define_static("imported", [f"c-{i}" for i in range(40)], updated_by="ana")
    engine.define_static("calm", [f"c-{i}" for i in range(5)])
    clock[0] = T0 + 3 * DAY + timedelta(hours=4, minutes=5)
    engine.remove_members("imported", [f"c-{i}" for i in range(40)], updated_by=ODD)
    return engine


def test_attention_report_is_a_tuple_of_items() -> None:
    """Indexing, len, iteration and equality behave as for the tuple of items."""
    report = attention_engine().attention()
    assert isinstance(report, AttentionReport)
    assert isinstance(report, tuple)
    assert len(report) == 1
    assert report == (report[0],)
    assert list(report) == [report[0]]
    assert report[0].name == "imported"
    assert report[:1] == (report[0],)


def test_attention_repr_and_html() -> None:
    """One line per segment: size, change, kind, last update, by whom, reasons."""
    report = attention_engine().attention(flagged_only=False)
    assert repr(report) == (
        "AttentionReport: 2 segments, 1 flagged\n"
        "  segment   size       change  kind    updated           by    reasons\n"
        "  imported     0  -40 (-100%)  static  2024-01-04 04:05  <b>&  size fell to zero\n"
        "  calm         5     +0 (+0%)  static  2024-01-01 00:00  -     -"
    )
    lines = report._repr_html_().split("\n")
    assert lines[1] == caption("AttentionReport: 2 segments, 1 flagged")
    assert lines[2] == head(
        ("segment", "l"), ("size", "r"), ("change", "r"), ("kind", "l"), ("updated", "l"),
        ("by", "l"), ("reasons", "l"),
    )  # fmt: skip
    assert lines[4] == row(
        left("imported"), right("0"), right("-40 (-100%)"), left("static"),
        left("2024-01-04 04:05"), left(ODD_HTML), left("size fell to zero"),
    )  # fmt: skip
    empty = attention_engine().attention(T0 - DAY)
    assert repr(empty) == "AttentionReport: 0 segments, 0 flagged"
    assert empty._repr_html_() == (
        '<table class="segkit-report">\n'
        f"{caption('AttentionReport: 0 segments, 0 flagged')}\n"
        "</table>"
    )


def test_attention_frames_and_dict() -> None:
    """One row per item with every field of to_dict; reasons as a list."""
    report = attention_engine().attention(flagged_only=False)
    rows = same_frames(report)
    assert rows[0] == {
        "name": "imported", "size": 0, "change_7d": -40, "change_7d_pct": -100.0, "z": None,
        "engagement": None, "engagement_change_7d": None, "engagement_z": None,
        "kind": "static", "object_type": "contact",
        "updated_at": T0 + 3 * DAY + timedelta(hours=4, minutes=5), "updated_by": ODD,
        "reasons": ["size fell to zero"],
    }  # fmt: skip
    assert rows[1]["reasons"] == []
    assert report.to_polars().schema["reasons"] == pl.List(pl.String)
    assert report.to_dict() == {"items": [item.to_dict() for item in report]}


# --- hygiene --------------------------------------------------------------------------------


def hygiene_engine() -> sk.Engine:
    clock = [T0]
    engine = sk.Engine(sk.Schema(attributes={"age": "int"}), clock=lambda: clock[0])
    engine.upsert_many({f"c-{i}": {"age": i} for i in range(50)})
    engine.define("kids", "age < 18")
    engine.define(ODD, "age <= 17")
    engine.define("none", "age > 100")
    clock[0] = T0 + 40 * DAY
    engine.redefine("kids", "age < 18")
    engine.usage.record("kids", tool="crm", objective="analytics", ref="d-1")
    return engine


def test_hygiene_report_is_a_tuple_of_issues() -> None:
    """Indexing, len, iteration and equality behave as for the tuple of issues."""
    report = hygiene_engine().hygiene(kinds=["empty"])
    assert isinstance(report, HygieneReport)
    assert report == (sk.HygieneIssue("empty", "none", 0, "has no members"),)
    assert report != [sk.HygieneIssue("empty", "none", 0, "has no members")]  # type: ignore[comparison-overlap]
    assert hygiene_engine().hygiene(kinds=["empty"], now=T0) == report


def test_hygiene_repr_and_html() -> None:
    """One line per issue; the head counts the issues by kind."""
    report = hygiene_engine().hygiene(tiny=10)
    assert repr(report) == (
        "HygieneReport: 6 issues (1 empty, 1 duplicate, 2 unused, 2 stale)\n"
        "  kind       segment  size  detail\n"
        "  empty      none        0  has no members\n"
        "  duplicate  <b>&       18  Jaccard 1.000 with 'kids' (18 members in common)\n"
        "  unused     <b>&       18  has no usage record and no segment refers to it\n"
        "  unused     none        0  has no usage record and no segment refers to it\n"
        "  stale      <b>&       18  not saved for 40 days (since 2024-01-01)\n"
        "  stale      none        0  not saved for 40 days (since 2024-01-01)"
    )
    lines = report._repr_html_().split("\n")
    assert lines[1] == caption("HygieneReport: 6 issues (1 empty, 1 duplicate, 2 unused, 2 stale)")
    assert lines[2] == head(("kind", "l"), ("segment", "l"), ("size", "r"), ("detail", "l"))
    assert lines[5] == row(
        left("duplicate"),
        left(ODD_HTML),
        right("18"),
        left("Jaccard 1.000 with &#x27;kids&#x27; (18 members in common)"),
    )
    assert repr(hygiene_engine().hygiene(kinds=[])) == "HygieneReport: no issues"


def test_hygiene_frames_and_dict() -> None:
    """One row per issue; other, jaccard and last_saved are missing where they do not apply."""
    report = hygiene_engine().hygiene(tiny=10)
    rows = same_frames(report)
    assert rows[1] == {
        "kind": "duplicate", "segment": ODD, "size": 18,
        "detail": "Jaccard 1.000 with 'kids' (18 members in common)", "other": "kids",
        "jaccard": 1.0, "last_saved": None,
    }  # fmt: skip
    assert rows[4]["last_saved"] == T0
    assert rows[0]["other"] is None
    assert report.to_pandas()["last_saved"].dtype.tz is not None
    assert report.to_dict() == {"issues": [issue.to_dict() for issue in report]}


# --- a missing library ----------------------------------------------------------------------

REPORTS: dict[str, Callable[[], Any]] = {
    "overlap": overlap_report,
    "split": split_report,
    "funnel": funnel_report,
    "comparison": comparison,
    "drivers": drivers_report,
    "lookalike": lookalike_report,
    "usage": lambda: usage_engine().usage,
    "attention": lambda: attention_engine().attention(),
    "hygiene": lambda: hygiene_engine().hygiene(),
}


@pytest.mark.parametrize("name", sorted(REPORTS))
@pytest.mark.parametrize(("method", "library"), [("to_pandas", "pandas"), ("to_polars", "polars")])
def test_a_missing_library_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, name: str, method: str, library: str
) -> None:
    """Without the library, the error says which method needs it and what to install."""
    report = REPORTS[name]()
    monkeypatch.setitem(sys.modules, library, None)
    with pytest.raises(ImportError) as error:
        getattr(report, method)()
    assert str(error.value) == f"{method}() needs {library}: pip install 'segkit[{library}]'"


@pytest.mark.parametrize("name", sorted(REPORTS))
def test_every_report_has_html_and_text(name: str) -> None:
    """Every report renders an HTML table whose caption is the first line of its repr."""
    report = REPORTS[name]()
    html = report._repr_html_()
    assert html.startswith('<table class="segkit-report">\n<caption style="text-align:left">')
    assert html.endswith("</table>")
    first = repr(report).split("\n")[0]
    if name == "usage":
        first = report.table().split("\n")[0]
    escaped = first.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    escaped = escaped.replace("'", "&#x27;").replace('"', "&quot;")
    assert html.split("\n")[1].startswith(f'<caption style="text-align:left">{escaped}')


@settings(max_examples=25, deadline=None)
@given(
    memberships=st.lists(st.frozensets(st.integers(0, 3), max_size=4), min_size=1, max_size=12),
)
def test_overlap_frame_matches_the_regions(memberships: list[frozenset[int]]) -> None:
    """For any memberships of 4 segments, the frame lists each region's segments and count."""
    names = ["s0", "s1", "s2", "s3"]
    engine = sk.Engine(sk.Schema(attributes={}))
    engine.upsert_many({f"k{i}": {} for i in range(len(memberships))})
    for j, name in enumerate(names):
        engine.define_static(name, [f"k{i}" for i, m in enumerate(memberships) if j in m])
    report = engine.overlap(names)
    rows = same_frames(report)
    assert [(tuple(n for n in names if r[n]), r["count"]) for r in rows] == [
        (region.segments, region.count) for region in report.regions
    ]
    assert sum(r["count"] for r in rows) == report.union
    assert sum(r["share"] for r in rows) == pytest.approx(1.0 if report.union else 0.0)


def test_reports_pickle_as_themselves() -> None:
    """A tuple report survives pickling with its type and items."""
    import pickle

    report = hygiene_engine().hygiene(tiny=10)
    copy = pickle.loads(pickle.dumps(report))
    assert type(copy) is HygieneReport
    assert copy == report
