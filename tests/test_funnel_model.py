"""An independent, brute-force model of segkit's default funnel semantics.

The model enumerates every chain of events an entity could use (no pruning, no
bisect, no fixpoint), keeps the valid ones, and picks the attempt by the documented
key: furthest step, then earliest time it was reached, then latest start, then the
earliest intermediate times. Hypothesis generates small event logs with repeated
names, equal timestamps, property filters, exclusions and every option, and the
model must agree with :meth:`Funnel.run` on levels, members, counts and times.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from itertools import pairwise
from typing import Any

import attrs
from hypothesis import given
from hypothesis import strategies as st

import segkit as sk
from segkit.analysis.funnel import Exclusion, Funnel, FunnelReport, Step

BASE = datetime(2024, 3, 1, tzinfo=timezone.utc)
NAMES = ("a", "b", "c", "x", "z")  # "z" is never a step: it only matters to strict order
# ("w" is a fourth step name the fast-path cases use)
WHERES: dict[str | None, Callable[[dict[str, Any]], bool]] = {
    None: lambda props: True,
    "v >= 2": lambda props: isinstance(props.get("v"), int) and props["v"] >= 2,
    "v is not known": lambda props: props.get("v") is None,
}


@attrs.frozen
class Ev:
    """One event of the model: its time (minutes after BASE), input position and data."""

    key: str
    name: str
    minute: int
    props: dict[str, Any] = attrs.field(eq=False)


@attrs.frozen
class Case:
    """A generated funnel definition and event log."""

    steps: tuple[tuple[str, str | None], ...]
    exclusions: tuple[tuple[str, str | None, int, int], ...]
    order: str
    ties: str
    attempts: str
    reuse: bool
    drop: bool
    window: int | None  # minutes
    events: tuple[Ev, ...]


# --- the model ---------------------------------------------------------------------------------


def _matches(case: Case, e: Ev, name: str, where: str | None) -> bool:
    return e.name == name and WHERES[where](e.props)


def _timeline(case: Case, key: str) -> list[tuple[int, int, Ev]]:
    """(minute, input position, event) of one entity, in time then input order."""
    rows = [(e.minute, pos, e) for pos, e in enumerate(case.events) if e.key == key]
    return sorted(rows, key=lambda r: (r[0], r[1]))


def _relevant(case: Case, e: Ev) -> bool:
    steps = any(_matches(case, e, n, w) for n, w in case.steps)
    excl = any(_matches(case, e, n, w) for n, w, _, _ in case.exclusions)
    return steps or excl


def _ordered_ok(case: Case, prev: tuple[int, int], cur: tuple[int, int]) -> bool:
    (t0, p0), (t1, p1) = prev, cur
    if case.ties == "strictly_later":
        return t1 > t0
    if case.ties == "input_order":
        return (t1, p1) > (t0, p0) or (case.reuse and (t1, p1) == (t0, p0))
    return t1 >= t0


def _chains(case: Case, line: list[tuple[int, int, Ev]], start: int) -> list[list[int]]:
    """Every chain (timeline indexes) starting at ``line[start]``, any length >= 1."""
    n = len(case.steps)
    limit = None if case.window is None else line[start][0] + case.window
    out: list[list[int]] = []

    def grow(chain: list[int]) -> None:
        out.append(chain)
        k = len(chain)
        if k == n:
            return
        name, where = case.steps[k]
        for q, (t, pos, e) in enumerate(line):
            if not _matches(case, e, name, where):
                continue
            if q in chain and not case.reuse:
                continue
            if limit is not None and t > limit:
                continue
            prev = line[chain[-1]]
            if not _ordered_ok(case, (prev[0], prev[1]), (t, pos)):
                continue
            if case.order == "strict" and not _strict_ok(case, line, [*chain, q]):
                continue
            grow([*chain, q])

    grow([start])
    return out


def _strict_ok(case: Case, line: list[tuple[int, int, Ev]], chain: list[int]) -> bool:
    if case.ties == "any_order":
        first, last = line[chain[0]][0], line[chain[-1]][0]
        return all(not (first < line[q][0] < last) for q in range(len(line)) if q not in chain)
    return all(b == a + 1 for a, b in pairwise(chain))


def _xs(case: Case, line: list[tuple[int, int, Ev]], x: int) -> list[int]:
    name, where, _, _ = case.exclusions[x]
    return [t for t, _, e in line if _matches(case, e, name, where)]


def _blocked(case: Case, line: list[tuple[int, int, Ev]], times: list[int]) -> bool:
    """stop_at_exclusion: an exclusion event strictly between e_i and e_j, j reached."""
    for x, (_, _, i, j) in enumerate(case.exclusions):
        if j < len(times) and any(times[i] < t < times[j] for t in _xs(case, line, x)):
            return True
    return False


def _tainted(case: Case, line: list[tuple[int, int, Ev]], times: list[int]) -> bool:
    """drop_entirely: like _blocked, or up to the window's end when e_j was not reached."""
    end = float("inf") if case.window is None else times[0] + case.window
    for x, (_, _, i, j) in enumerate(case.exclusions):
        if i >= len(times):
            continue
        for t in _xs(case, line, x):
            if j < len(times) and times[i] < t < times[j]:
                return True
            if j >= len(times) and times[i] < t <= end:
                return True
    return False


def _key(times: list[int]) -> tuple[Any, ...]:
    return (len(times), -times[-1], times[0], tuple(-t for t in times[1:-1]))


Result = tuple[int, tuple[int | None, ...], bool]  # level, step times, excluded


def _attempt(
    case: Case, line: list[tuple[int, int, Ev]], starts: list[int]
) -> tuple[Result, list[int]]:
    """The counted result of the attempts opened by ``starts``, and the chain that ends it."""
    n = len(case.steps)
    all_chains = [[line[q][0] for q in c] for s in starts for c in _chains(case, line, s)]
    if not case.drop:
        valid = [c for c in all_chains if not _blocked(case, line, c)]
        best = max(valid, key=_key)
        return (len(best), tuple(best) + (None,) * (n - len(best)), False), best
    top = max(len(c) for c in all_chains)
    clean = [c for c in all_chains if len(c) == top and not _tainted(case, line, c)]
    if not clean:
        return (0, (None,) * n, True), max(all_chains, key=_key)
    best = max(clean, key=_key)
    return (len(best), tuple(best) + (None,) * (n - len(best)), False), best


def model_entity(case: Case, key: str) -> list[Result]:
    """The model's outcome rows for one entity (several with attempts='every')."""
    full = _timeline(case, key)
    line = full if case.order == "strict" else [r for r in full if _relevant(case, r[2])]
    n = len(case.steps)
    if case.order == "any":
        return _model_any(case, line)
    name0, where0 = case.steps[0]
    starts = [q for q, (_, _, e) in enumerate(line) if _matches(case, e, name0, where0)]
    if not starts:
        return []
    if case.attempts == "best":
        return [_attempt(case, line, starts)[0]]
    rows: list[Result] = []
    pending = starts
    while pending:
        s = pending[0]
        # "the first step-0 event": with ties="any_order", simultaneous ones are all first
        same = [q for q in pending if line[q][0] == line[s][0]]
        result, chain = _attempt(case, line, same if case.ties == "any_order" else [s])
        rows.append(result)
        if case.attempts == "first":
            break
        if len(chain) == n:
            end = chain[-1]  # the entry converted
        elif case.window is None:
            break  # never times out
        else:
            end = line[s][0] + case.window  # it timed out
        pending = [q for q in pending if line[q][0] > end]
    return rows


def _model_any(case: Case, line: list[tuple[int, int, Ev]]) -> list[Result]:
    entries = [
        q for q, (_, _, e) in enumerate(line) if any(_matches(case, e, *s) for s in case.steps)
    ]
    if not entries:
        return []
    end = None if case.window is None else line[entries[0]][0] + case.window
    times: list[int | None] = []
    for name, where in case.steps:
        hits = [
            t for t, _, e in line if _matches(case, e, name, where) and (end is None or t <= end)
        ]
        times.append(min(hits) if hits else None)
    return [(sum(t is not None for t in times), tuple(times), False)]


def _moved(case: Case, line_of: Any, result: Result, k: int) -> bool:
    """For order='any': did the entity move from stage k-1 to stage k?"""
    a, b = result[1][k - 1], result[1][k]
    if a is None or b is None:
        return False
    if case.ties == "strictly_later":
        return b > a
    if case.ties == "input_order":
        return line_of(k) >= line_of(k - 1)
    return b >= a


# --- running both --------------------------------------------------------------------------------


def _funnel(case: Case) -> Funnel:
    return Funnel(
        [Step(name, where=where) for name, where in case.steps],
        window=None if case.window is None else timedelta(minutes=case.window),
        order=case.order,  # type: ignore[arg-type]
        ties=case.ties,  # type: ignore[arg-type]
        attempts=case.attempts,  # type: ignore[arg-type]
        reuse_events=case.reuse,
        exclusions=[Exclusion(name, (i, j), where=where) for name, where, i, j in case.exclusions],
        on_exclusion="drop_entirely" if case.drop else "stop_at_exclusion",
    )


def _sk_events(case: Case) -> list[sk.Event]:
    return [
        sk.Event(e.key, e.name, BASE + timedelta(minutes=e.minute), e.props) for e in case.events
    ]


def _first_positions(case: Case, key: str) -> dict[int, int]:
    line = [r for r in _timeline(case, key) if _relevant(case, r[2])]
    out = {}
    for k, (name, where) in enumerate(case.steps):
        for q, (_, _, e) in enumerate(line):
            if _matches(case, e, name, where):
                out[k] = q
                break
    return out


def _minutes(td: timedelta | None) -> float | None:
    return None if td is None else td.total_seconds() / 60


def check_agreement(case: Case) -> None:
    report: FunnelReport = _funnel(case).run(_sk_events(case))
    n = len(case.steps)
    keys = sorted({e.key for e in case.events})
    rows: list[tuple[str, Result]] = [(k, r) for k in keys for r in model_entity(case, k)]
    # levels
    want_levels = {}
    for key, result in rows:
        want_levels[key] = max(want_levels.get(key, 0), result[0])
    got_levels = {k: v for k, v in report.levels().items() if v}
    assert got_levels == {k: v for k, v in want_levels.items() if v}
    # counts, members, exclusions
    kept = [(key, r) for key, r in rows if not r[2]]
    reached = [
        [(key, r) for key, r in kept if (r[1][k] is not None if case.order == "any" else r[0] > k)]
        for k in range(n)
    ]
    assert [s.count for s in report.steps] == [len(r) for r in reached]
    for k in range(n):
        assert sorted(report.members(k).keys()) == sorted({key for key, _ in reached[k]})
    assert report.excluded == sum(1 for _, r in rows if r[2])
    assert report.entered == sum(1 for _, r in kept if r[0] > 0)
    # times from the previous step
    for k in range(1, n):
        if case.order == "any":
            samples = []
            for key, r in kept:
                pos = _first_positions(case, key)
                if _moved(case, pos.get, r, k):
                    samples.append(r[1][k] - r[1][k - 1])  # type: ignore[operator]
        else:
            samples = [r[1][k] - r[1][k - 1] for _, r in kept if r[0] > k]  # type: ignore[operator]
        stats = report.steps[k].time_from_previous
        assert stats is not None
        assert stats.count == len(samples)
        if samples:
            assert _minutes(stats.min) == min(samples)
            assert _minutes(stats.max) == max(samples)
            assert stats.mean == timedelta(minutes=1) * sum(samples) / len(samples)


# --- generation ----------------------------------------------------------------------------------


@st.composite
def cases(
    draw: st.DrawFn,
    orders: tuple[str, ...] = ("ordered", "ordered", "strict", "any"),
    *,
    fast: bool = False,
    with_exclusions: bool = False,
) -> Case:
    """A funnel and a log. ``fast``: options the bisect fast path takes (distinct step
    events, no exclusions); ``with_exclusions``: at least one exclusion, x-heavy logs."""
    order = draw(st.sampled_from(orders))
    n = draw(st.integers(2 if with_exclusions else 1, 4))
    if fast:
        names = draw(st.permutations((*NAMES[:3], "w")))[:n]
        steps = tuple((name, draw(st.sampled_from([None, None, "v >= 2"]))) for name in names)
    else:
        steps = tuple(
            (draw(st.sampled_from(NAMES[:3])), draw(st.sampled_from([None, None, "v >= 2"])))
            for _ in range(n)
        )
    exclusions: tuple[tuple[str, str | None, int, int], ...] = ()
    if order != "any" and n >= 2 and not fast:
        count = draw(st.integers(1 if with_exclusions else 0, 2))
        ex = []
        for _ in range(count):
            i = draw(st.integers(0, n - 2))
            j = draw(st.integers(i + 1, n - 1))
            name = draw(st.sampled_from(["x", "x", "c"]))
            ex.append((name, draw(st.sampled_from([None, "v is not known"])), i, j))
        exclusions = tuple(ex)
    if fast:
        attempts = draw(st.sampled_from(["best", "first"] if order == "ordered" else ["best"]))
    else:
        attempts = draw(
            st.sampled_from(
                ["best", "best", "first", "every"] if order != "any" else ["best", "first"]
            )
        )
    reuse = order != "strict" and draw(st.booleans())
    pool = [name for name, _ in steps] * 3 + ["x", "x", "c", "z"]
    if with_exclusions:
        pool += ["x"] * 3
    events = tuple(
        Ev(
            draw(st.sampled_from(["k1", "k2"])),
            draw(st.sampled_from(pool)),
            draw(st.one_of(st.integers(0, 4).map(lambda m: 2 * m), st.integers(0, 9))),
            draw(st.sampled_from([{}, {"v": 1}, {"v": 2}, {"v": 3}])),
        )
        for _ in range(draw(st.integers(0, 10)))
    )
    ties = (
        ["any_order", "strictly_later"] if fast else ["any_order", "input_order", "strictly_later"]
    )
    return Case(
        steps,
        exclusions,
        order,
        draw(st.sampled_from(ties)),
        attempts,
        reuse,
        draw(st.booleans()),
        draw(st.sampled_from([None, 2, 2, 4, 6])),
        events,
    )


@given(cases())
def test_funnel_run_agrees_with_the_brute_force_model(case: Case) -> None:
    """Funnel.run and the plain model agree on every generated log and option set."""
    check_agreement(case)


@given(cases(("ordered", "any"), fast=True))
def test_the_fast_path_agrees_with_the_model(case: Case) -> None:
    """The bisect fast path (distinct step events, no exclusions) agrees with the model."""
    assert _funnel(case)._spec.fast
    check_agreement(case)


@given(cases(("ordered", "strict"), with_exclusions=True))
def test_exclusions_agree_with_the_model(case: Case) -> None:
    """Exclusions (stop_at_exclusion and drop_entirely) agree with the model."""
    check_agreement(case)


@given(cases(("strict",)))
def test_strict_order_agrees_with_the_model(case: Case) -> None:
    """Strict order (adjacent events, every ties option) agrees with the model."""
    check_agreement(case)


def test_model_agrees_on_a_hand_written_case() -> None:
    """A fixed case where greedy-earliest would be wrong because of an exclusion."""
    case = Case(
        steps=(("a", None), ("b", None), ("c", None)),
        exclusions=(("x", None, 1, 2),),
        order="ordered",
        ties="any_order",
        attempts="best",
        reuse=False,
        drop=False,
        window=None,
        events=(
            Ev("k1", "a", 0, {}),
            Ev("k1", "b", 1, {}),
            Ev("k1", "x", 2, {}),
            Ev("k1", "b", 3, {}),
            Ev("k1", "c", 4, {}),
        ),
    )
    assert model_entity(case, "k1") == [(3, (0, 3, 4), False)]
    check_agreement(case)
