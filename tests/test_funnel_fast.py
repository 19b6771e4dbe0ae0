"""The numpy funnel engine gives exactly the pure-Python engine's results.

Hypothesis generates small event logs (few entities and minutes, so equal timestamps,
events exactly at a window's end and repeated step events are common) and funnels
with every option; each log runs through both engines, as Event objects and as
columns (lists, numpy arrays, integer ids of an IdMap), and every visible result
must be equal: the report, levels, members and dropped entities of every step,
per-segment reports, and the errors raised on bad input.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import segkit as sk
from segkit.analysis._funnel_options import NUMPY_MIN_SIZE, numpy_enabled, use_backend
from segkit.analysis.funnel import Funnel, FunnelReport, Step
from segkit.errors import SchemaError
from segkit.records import IdMap

BASE = datetime(2024, 3, 1, tzinfo=timezone.utc)
MINUTE_US = 60_000_000
BASE_US = int(BASE.timestamp()) * 1_000_000
KEYS = ("u0", "u1", "u2", "u3", "u4", "u5")
NAMES = ("a", "b", "c", "d", "z")  # "z" is in no step


def _snapshot(report: FunnelReport) -> dict[str, Any]:
    """Everything a user can read from a report, in comparable form."""
    n = len(report.steps)
    out = report._outcomes  # the per-entity rows behind the report, column by column
    return {
        "rows": (
            list(out.row_slot),
            list(out.row_level),
            list(out.row_reached),
            list(out.row_moved),
            list(out.row_excluded),
            [list(col) for col in out.row_times],
            list(out.slot_keys),
            list(out.slot_ids),
            list(out.extra_ids),
        ),
        "dict": report.to_dict(),
        "report": report,
        "levels": report.levels(),
        "members": [report.members(i).keys() for i in range(n)],
        "dropped": [report.dropped(i).keys() for i in range(n)],
        "excluded": report.excluded_members().keys(),
        "bins": [
            None if s.time_from_previous is None else s.time_from_previous.bins(3)
            for s in report.steps
        ],
    }


def _both(run: Callable[[], Any]) -> tuple[Any, Any]:
    """``run()`` with the pure engine, then with the numpy engine."""
    with use_backend("python"):
        pure = run()
    with use_backend("numpy"):
        fast = run()
    return pure, fast


@st.composite
def funnels(draw: st.DrawFn) -> Funnel:
    """Funnels in and out of the vectorised case (repeated steps, filters, windows)."""
    n = draw(st.integers(1, 4))
    repeated = draw(st.booleans())
    pool = NAMES[:4] if repeated else NAMES[:n]
    names = (
        [draw(st.sampled_from(pool)) for _ in range(n)]
        if repeated
        else list(draw(st.permutations(pool)))
    )
    steps: list[str | Step] = [
        Step(name, where="v >= 2") if draw(st.integers(0, 5)) == 0 else name for name in names
    ]
    window = draw(
        st.sampled_from(
            [None, timedelta(minutes=1), timedelta(minutes=5), timedelta(minutes=12), "10min", "1d"]
        )
    )
    order = draw(st.sampled_from(["ordered", "ordered", "any", "strict"]))
    ties = draw(st.sampled_from(["any_order", "any_order", "strictly_later", "input_order"]))
    attempts = draw(
        st.sampled_from(["best", "best", "first"] + (["every"] if order != "any" else []))
    )
    return Funnel(steps, window=window, order=order, ties=ties, attempts=attempts)


@st.composite
def logs(draw: st.DrawFn) -> list[tuple[str, str, int, dict[str, Any]]]:
    """(key, name, minute, properties) rows, in no particular order."""
    rows = draw(
        st.lists(
            st.tuples(
                st.sampled_from(KEYS),
                st.sampled_from(NAMES),
                st.integers(0, 20),
                st.sampled_from([{}, {"v": 1}, {"v": 3}]),
            ),
            max_size=40,
        )
    )
    return rows


def _events(rows: list[tuple[str, str, int, dict[str, Any]]]) -> list[sk.Event]:
    return [sk.Event(k, n, BASE + timedelta(minutes=m), p) for k, n, m, p in rows]


def _columns(
    rows: list[tuple[str, str, int, dict[str, Any]]],
) -> tuple[list[str], list[str], list[int], list[dict[str, Any]]]:
    return (
        [r[0] for r in rows],
        [r[1] for r in rows],
        [BASE_US + r[2] * MINUTE_US for r in rows],
        [r[3] for r in rows],
    )


@given(funnels(), logs())
def test_event_objects_give_identical_reports(funnel: Funnel, rows: list[Any]) -> None:
    """Funnel.run over Event objects: both engines agree on everything."""
    pure, fast = _both(lambda: _snapshot(funnel.run(_events(rows))))
    assert pure == fast


@given(funnels(), logs())
def test_columns_give_identical_reports(funnel: Funnel, rows: list[Any]) -> None:
    """evaluate_columns over lists and over numpy arrays: both engines agree."""
    keys, names, times, props = _columns(rows)

    def as_lists() -> Any:
        return _snapshot(funnel.evaluate_columns(keys, names, times, properties=props).report())

    def as_arrays() -> Any:
        out = funnel.evaluate_columns(
            np.array(keys, dtype=object),
            np.array(names, dtype=str),
            np.array(times, dtype=np.int64),
            properties=props,
        )
        return _snapshot(out.report())

    pure, fast = _both(as_lists)
    assert pure == fast
    pure_arrays, fast_arrays = _both(as_arrays)
    assert pure_arrays == fast_arrays == pure


@given(funnels(), logs(), st.sets(st.sampled_from(KEYS)))
def test_ids_of_an_idmap_give_identical_reports(
    funnel: Funnel, rows: list[Any], segment: set[str]
) -> None:
    """Integer keys (ids of an IdMap), per-segment reports and entities=: engines agree."""
    idmap = IdMap()
    for key in reversed(KEYS):  # ids in another order than the keys' first appearance
        idmap.assign(key)
    keys, names, times, props = _columns(rows)
    ids = np.array([idmap.id_of(k) for k in keys], dtype=np.uint32)

    def run() -> Any:
        by_id = funnel.evaluate_columns(ids, names, times, properties=props, idmap=idmap)
        by_key = funnel.evaluate_columns(keys, names, times, properties=props, idmap=idmap)
        some = funnel.evaluate_columns(keys, names, times, properties=props, entities=segment)
        return (
            _snapshot(by_id.report()),
            _snapshot(by_key.report()),
            _snapshot(by_id.report_for(segment)),
            _snapshot(some.report()),
        )

    pure, fast = _both(run)
    assert pure == fast
    assert pure[0] == pure[1]


@settings(max_examples=25)
@given(st.integers(0, 2**32), st.sampled_from(["any_order", "strictly_later"]))
def test_a_large_random_log_gives_identical_reports(seed: int, ties: str) -> None:
    """A few thousand events with many ties and repeats: the vectorised case at scale."""
    rng = np.random.default_rng(seed)
    size = 3_000
    keys = [f"k{i}" for i in rng.integers(0, 300, size).tolist()]
    names = [NAMES[i] for i in rng.integers(0, len(NAMES), size).tolist()]
    times = (BASE_US + rng.integers(0, 200, size) * MINUTE_US).tolist()
    for order in ("ordered", "any"):
        funnel = Funnel(["a", "b", "c", "d"], window=timedelta(minutes=30), order=order, ties=ties)  # type: ignore[arg-type]

        def run(funnel: Funnel = funnel) -> Any:
            return _snapshot(funnel.evaluate_columns(keys, names, times).report())

        pure, fast = _both(run)
        assert pure == fast


def test_auto_uses_numpy_for_large_inputs_only() -> None:
    """The default engine picks numpy from NUMPY_MIN_SIZE events (or rows) up."""
    with use_backend("auto"):
        assert not numpy_enabled(NUMPY_MIN_SIZE - 1)
        assert numpy_enabled(NUMPY_MIN_SIZE)
    with use_backend("python"):
        assert not numpy_enabled(10**9)
    with pytest.raises(ValueError, match="backend must be one of"):
        use_backend("cuda").__enter__()


@pytest.fixture(params=["python", "numpy"])
def backend(request: pytest.FixtureRequest) -> Iterator[str]:
    with use_backend(request.param):
        yield request.param


def test_bad_times_raise_the_same_error(backend: str) -> None:
    """A time that is not an int is refused by either engine with the same message."""
    funnel = Funnel(["a", "b"])
    for bad in (1.5, True, "0"):
        with pytest.raises(TypeError, match="times_us must hold integers"):
            funnel.evaluate_columns(["u", "u"], ["a", "b"], [0, bad])  # type: ignore[list-item]


def test_bad_keys_raise_the_same_error(backend: str) -> None:
    """An empty or non-string key is refused by either engine with the same message."""
    funnel = Funnel(["a", "b"])
    with pytest.raises(SchemaError, match="an entity key must be a non-empty string"):
        funnel.evaluate_columns(["u", ""], ["a", "b"], [0, 1])
    with pytest.raises(SchemaError, match="an entity key must be a non-empty string"):
        funnel.evaluate_columns(["u", 3], ["a", "b"], [0, 1])  # type: ignore[list-item]


def test_unknown_ids_and_keys_raise_the_same_error(backend: str) -> None:
    """With an idmap, an unknown id or key is a KeyError naming it, in either engine."""
    idmap = IdMap()
    idmap.assign("u")
    funnel = Funnel(["a", "b"])
    with pytest.raises(KeyError, match="no profile has id 7"):
        funnel.evaluate_columns(np.array([0, 7]), ["a", "b"], [0, 1], idmap=idmap)
    with pytest.raises(KeyError, match="unknown profile key 'w'"):
        funnel.evaluate_columns(["u", "w"], ["a", "b"], [0, 1], idmap=idmap)


def test_naive_timestamps_follow_the_funnel_time_zone(backend: str) -> None:
    """Naive datetimes: read in the funnel's zone, or refused without one, in either engine."""
    naive = [
        sk.Event("u", "a", datetime(2024, 3, 1, 9)),
        sk.Event("u", "b", datetime(2024, 3, 1, 10)),
    ]
    with pytest.raises(SchemaError, match="naive timestamp"):
        Funnel(["a", "b"]).run(naive)
    report = Funnel(["a", "b"], timezone="Europe/Paris").run(naive)
    assert report.steps[1].time_from_previous is not None
    assert report.steps[1].time_from_previous.mean == timedelta(hours=1)


def test_where_filters_need_properties_in_either_engine(backend: str) -> None:
    """A step with a where filter needs properties=, whichever engine runs."""
    funnel = Funnel(["a", Step("b", where="v > 1")])
    with pytest.raises(ValueError, match="have a where filter: pass properties="):
        funnel.evaluate_columns(["u", "u"], ["a", "b"], [0, 1])


def test_window_end_is_included_and_overflow_is_safe(backend: str) -> None:
    """A step exactly at start + window counts; times near the int64 limit do not wrap."""
    funnel = Funnel(["a", "b"], window=timedelta(minutes=5))
    got = funnel.evaluate_columns(
        ["u", "u", "v", "v"], ["a", "b", "a", "b"], [0, 300_000_000, 0, 300_000_001]
    )
    assert got.report().levels() == {"u": 2, "v": 1}
    top = 2**63 - 10
    late = funnel.evaluate_columns(["u", "u"], ["a", "b"], [top - 1, top])
    assert late.report().levels() == {"u": 2}


def test_without_numpy_the_pure_engine_gives_the_same_report() -> None:
    """With numpy not importable, a large funnel runs in pure Python, with the same result."""
    import json
    import subprocess
    import sys
    import textwrap

    setup = textwrap.dedent(
        """
        keys = [f"k{i % 500}" for i in range(6000)]
        names = ["abcz"[i % 4] for i in range(6000)]
        times = [(i * 7919) % 100_000 * 1_000_000 for i in range(6000)]
        funnel = Funnel(["a", "b", "c"], window="1h")
        """
    )
    code = (
        "import sys, json\n"
        "sys.modules['numpy'] = None  # import numpy now raises ImportError\n"
        "from segkit.analysis.funnel import Funnel\n"
        f"{setup}\n"
        "print(json.dumps(funnel.evaluate_columns(keys, names, times).report().to_dict()))\n"
        "print(sys.modules['numpy'] is None)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    report, blocked = out.stdout.strip().splitlines()
    assert blocked == "True"
    # the same columns and funnel in this process, where numpy is available
    keys = [f"k{i % 500}" for i in range(6000)]
    names = ["abcz"[i % 4] for i in range(6000)]
    times = [(i * 7919) % 100_000 * 1_000_000 for i in range(6000)]
    funnel = Funnel(["a", "b", "c"], window="1h")
    with use_backend("auto"):
        here = funnel.evaluate_columns(keys, names, times)
        assert numpy_enabled(len(keys))
    assert json.loads(report) == json.loads(json.dumps(here.report().to_dict()))


# --- coded names, time codes and key packing (issue 5: the funnel within 2x of polars) ---------

CATEGORIES = ("z", "d", "c", "b", "a", "unused")  # codes in another order than NAMES


@given(funnels(), logs())
def test_coded_names_give_identical_reports(funnel: Funnel, rows: list[Any]) -> None:
    """Names as codes of categories (list, numpy, pandas, polars Enum): same as strings."""
    import pandas as pd
    import polars as pl

    keys, names, times, props = _columns(rows)
    codes = [CATEGORIES.index(name) for name in names]

    def run() -> Any:
        as_strings = funnel.evaluate_columns(keys, names, times, properties=props)
        forms = [
            funnel.evaluate_columns(keys, codes, times, properties=props, categories=CATEGORIES),
            funnel.evaluate_columns(
                keys,
                np.array(codes, dtype=np.uint8),
                np.array(times, dtype=np.int64),
                properties=props,
                categories=list(CATEGORIES),
            ),
            funnel.evaluate_columns(
                keys, pd.Categorical(names, categories=CATEGORIES), times, properties=props
            ),
            funnel.evaluate_columns(
                keys,
                pd.Series(names, dtype=pd.CategoricalDtype(CATEGORIES)),
                times,
                properties=props,
            ),
            funnel.evaluate_columns(
                keys, pl.Series(names, dtype=pl.Enum(CATEGORIES)), times, properties=props
            ),
        ]
        return [_snapshot(as_strings.report())] + [_snapshot(f.report()) for f in forms]

    pure, fast = _both(run)
    assert pure == fast
    assert all(form == pure[0] for form in pure)


def test_missing_categorical_names_are_in_no_step(backend: str) -> None:
    """A missing name in a pandas or polars categorical column matches no step."""
    import pandas as pd
    import polars as pl

    funnel = Funnel(["a", "b"])
    names = ["a", None, "b", "a"]
    keys, times = ["u", "u", "u", "v"], [0, 1, 2, 3]
    for column in (
        pd.Categorical(names, categories=["a", "b"]),
        pl.Series(names, dtype=pl.Enum(["a", "b"])),
    ):
        report = funnel.evaluate_columns(keys, column, times).report()
        assert [s.count for s in report.steps] == [2, 1]
        assert report.levels() == {"u": 2, "v": 1}


def test_bad_codes_raise_the_same_error(backend: str) -> None:
    """A code outside the categories, or not an int, is refused with the same message."""
    funnel = Funnel(["a", "b"])
    cases = [
        ([0, 2], "names[1] is 2"),
        (np.array([0, 2], dtype=np.uint8), "names[1] is 2"),
        (np.array([1, -1]), "names[1] is -1"),
        (np.array([0.0, 1.0]), "names[0] is 0.0"),
        ([0, True], "names[1] is True"),
        (["a", "b"], "names[0] is 'a'"),
    ]
    for codes, where in cases:
        with pytest.raises(ValueError, match="integer codes") as info:
            funnel.evaluate_columns(["u", "u"], codes, [0, 1], categories=["a", "b"])
        assert str(info.value) == (
            f"names must be integer codes of categories (0 <= code < 2): {where}"
        )


def test_string_columns_match_whole_names_only(backend: str) -> None:
    """A numpy string column: a name sharing a first letter, a prefix or a longer step
    name does not match; a step name ending in NUL matches nothing (numpy strips it)."""
    names = np.array(["ab", "a", "abc", "b", "a\0", "bz"])
    keys = ["u", "u", "u", "u", "u", "v"]
    times = [0, 1, 2, 3, 4, 5]
    report = Funnel(["a", "b"]).evaluate_columns(keys, names, times).report()
    assert report.levels() == {"u": 2}
    assert Funnel(["abcd", "b"]).evaluate_columns(keys, names, times).report().levels() == {"u": 0}
    assert Funnel(["a\0", "b"]).evaluate_columns(keys, names, times).report().entered == 0


@pytest.mark.parametrize("key_bits", [62, 14, 9])
@pytest.mark.parametrize("order", ["ordered", "any"])
def test_time_ranks_grains_and_dense_labels_give_identical_reports(
    monkeypatch: pytest.MonkeyPatch, key_bits: int, order: str
) -> None:
    """Whatever the time codes (offsets, whole seconds, ranks) and labels (ids, dense),
    including time spans past 2**62 and unsorted logs, the engines agree."""
    from segkit.analysis import _funnel_numpy

    monkeypatch.setattr(_funnel_numpy, "_KEY_BITS", key_bits)
    rng = np.random.default_rng(5)
    size = 2_500
    idmap = IdMap()
    for i in range(400):
        idmap.assign(f"k{i}")
    ids = rng.integers(0, 400, size)
    names = [NAMES[i] for i in rng.integers(0, len(NAMES), size).tolist()]
    seconds = rng.integers(0, 3_000, size) * 1_000_000
    spans = {
        "minutes": BASE_US + seconds,  # whole seconds
        "micros": BASE_US + seconds + rng.integers(0, 2, size),
        "huge": np.where(rng.random(size) < 0.5, -(2**62), 2**62) + seconds,
        # offsets of 53 bits: too wide to pack with the attempt's index to pick the best
        "wide": BASE_US + seconds + np.where(rng.random(size) < 0.3, 2**52 + 1, 0),
    }
    for label, times in spans.items():
        for sort in (False, True):
            t = np.sort(times) if sort else times
            funnel = Funnel(["a", "b", "c"], window=timedelta(minutes=20), order=order)  # type: ignore[arg-type]

            def run(funnel: Funnel = funnel, t: Any = t) -> Any:
                return _snapshot(funnel.evaluate_columns(ids, names, t, idmap=idmap).report())

            pure, fast = _both(run)
            assert pure == fast, (label, sort)


def test_clock_picks_offsets_grains_or_ranks(monkeypatch: pytest.MonkeyPatch) -> None:
    """The time codes: plain offsets when they fit, whole seconds next, else ranks."""
    from segkit.analysis._funnel_numpy import _Clock

    t = np.array([5_000_000, 2_000_000, 2_000_000, 9_000_000], dtype=np.int64)
    plain = _Clock(t, 20)
    assert (plain.grain, plain.code.tolist(), plain.bits) == (1, [3_000_000, 0, 0, 7_000_000], 23)
    seconds = _Clock(t, 40)
    assert (seconds.grain, seconds.code.tolist(), seconds.bits) == (1_000_000, [3, 0, 0, 7], 3)
    assert seconds.times(seconds.code).tolist() == t.tolist()
    assert seconds.limit(seconds.code, 2_500_000).tolist() == [5, 2, 2, 7]
    ranks = _Clock(t + np.array([0, 0, 1, 0]), 59)
    assert ranks.unique is not None
    assert (ranks.code.tolist(), ranks.bits) == ([2, 0, 1, 3], 2)
    assert ranks.limit(ranks.code, 3_000_000).tolist() == [2, 2, 2, 3]
    assert ranks.limit(ranks.code, None).tolist() == [3, 3, 3, 3]


def test_time_spans_past_2_to_the_63_keep_exact_windows(backend: str) -> None:
    """Times from near the int64 minimum to near its maximum, with a window of 100
    million days: the window ends neither wrap nor move, in either engine."""
    window = timedelta(days=100_000_000)
    window_us = window // timedelta(microseconds=1)
    low, high = -(2**63) + 5, 2**63 - 10
    keys = ["u", "u", "v", "v", "w", "w", "x", "x"]
    names = ["a", "b"] * 4
    times = [
        high - 90, high,  # both near the maximum
        low, low + window_us + 1,  # one µs past the window's end
        0, 2**62,  # within the window
        low + 1, low + 1 + window_us,  # exactly at the window's end
    ]  # fmt: skip
    report = Funnel(["a", "b"], window=window).evaluate_columns(keys, names, times).report()
    assert report.levels() == {"u": 2, "v": 1, "w": 2, "x": 2}
    assert report.steps[1].time_from_previous is not None
    assert report.steps[1].time_from_previous.max == window
