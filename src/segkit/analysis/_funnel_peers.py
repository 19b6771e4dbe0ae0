"""Peer funnel semantics, re-implemented from their documented behaviour and source comments.

* :func:`posthog_ordered` — PostHog's funnel UDF for ordered and strict funnels: every
  timestamp may open an attempt (``entered[0]``), ``entered[k]`` keeps the latest
  attempt that reached step ``k``, an exclusion taints the attempt it interrupts, and
  the entity keeps the first attempt that reached its furthest step (an excluded one
  drops the entity). Events that share a timestamp but match different steps are
  taken in step order, each event once, ignoring exclusions and strict resets.
* :func:`posthog_unordered` — PostHog's unordered UDF: a sliding window holding, per
  step, the events that could complete it; an exclusion empties the window.
* :func:`clickhouse_level` — ClickHouse ``windowFunnel`` (current source): rows sorted
  by ``(timestamp, condition)``, one slot per level holding the chain's first timestamp,
  with the ``strict_order``, ``strict_deduplication``, ``strict_increase``,
  ``strict_once`` and ``allow_reentry`` modes.

Each function works on one entity's columns (µs timestamps sorted, and step bit masks)
and returns ``(level, times, excluded)`` or ``None`` when the entity never entered.

.. versionadded:: 0.1.0
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from segkit.analysis._funnel_default import MISSING, Outcome

if TYPE_CHECKING:
    from segkit.analysis.funnel import Funnel

__all__ = [
    "check_posthog_exclusions",
    "clickhouse_level",
    "peer_function",
    "peer_outcome",
    "posthog_ordered",
    "posthog_steps",
    "posthog_unordered",
]

#: ``(level, chain times, excluded)``
PeerResult = tuple[int, tuple[int, ...], bool]


def posthog_steps(mask: int, n: int, exclusions: Sequence[tuple[int, int, int]]) -> tuple[int, ...]:
    """The UDF's ``steps`` array of an event: ``k + 1`` per matched step, then ``-(k + 1)``.

    An exclusion ``(i, j)`` marks steps ``i + 1 … j``: it interrupts an attempt that
    reached step ``k - 1`` and not yet ``k``.

    >>> posthog_steps(0b101, 3, ())
    (1, 3)
    >>> posthog_steps(0b1000, 3, ((0, 2, 3),))
    (-2, -3)
    """
    out = [k + 1 for k in range(n) if (mask >> k) & 1]
    marked: set[int] = set()
    for i, j, bit in exclusions:
        if (mask >> bit) & 1:
            marked.update(range(i + 1, j + 1))
    out.extend(-(k + 1) for k in sorted(marked))
    return tuple(out)


class _Attempt:
    """One PostHog attempt: its start, whether an exclusion tainted it, its step times."""

    __slots__ = ("excluded", "start", "times", "used")

    def __init__(
        self, start: int, excluded: bool, times: tuple[int, ...], used: tuple[int, ...]
    ) -> None:
        self.start = start
        self.excluded = excluded
        self.times = times
        self.used = used


def posthog_ordered(
    ts: Sequence[int],
    steps: Sequence[tuple[int, ...]],
    n: int,
    window: int,
    *,
    strict: bool,
) -> PeerResult | None:
    """PostHog's ordered (or strict) funnel for one entity; ``window`` in µs."""
    entered: list[_Attempt | None] = [None] * (n + 1)
    top = 0
    top_state: _Attempt | None = None

    def process(pos: int, event_steps: tuple[int, ...], multiple: bool) -> None:
        nonlocal top, top_state
        t = ts[pos]
        for step in reversed(event_steps):
            exclusion = step < 0
            s = -step if exclusion else step
            prev = entered[s - 1]
            if prev is None or t - prev.start > window:
                continue
            cur = entered[s]
            if cur is not None and cur.start == prev.start:
                continue  # this attempt already reached the step
            if exclusion:
                if not prev.excluded:
                    prev.excluded = True
                    if top == s - 1 and top_state is not None and t - top_state.start <= window:
                        top_state.excluded = True
                continue
            if multiple and pos in prev.used:
                continue
            times, used = (*prev.times, t), (*prev.used, pos)
            if not prev.excluded:
                entered[s] = _Attempt(prev.start, prev.excluded, times, used)
            if s > top or (s == top and top_state is not None and top_state.excluded):
                top, top_state = s, _Attempt(prev.start, prev.excluded, times, used)
        if strict and not multiple:
            for k in range(1, n + 1):
                if k not in event_steps:
                    entered[k] = None

    m = len(ts)
    i = 0
    while i < m:
        t = ts[i]
        j = i + 1
        while j < m and ts[j] == t:
            j += 1
        entered[0] = _Attempt(t, False, (), ())
        if all(steps[g] == steps[i] for g in range(i + 1, j)):
            for g in range(i, j):
                process(g, steps[g], False)
        else:  # different steps at one timestamp: in step order, each event once
            pairs = sorted(
                ((g, s) for g in range(i, j) for s in steps[g] if s > 0), key=lambda p: p[1]
            )
            for g, s in pairs:
                process(g, (s,), True)
        if entered[n] is not None:
            break
        i = j
    if top_state is None:
        return None
    if top_state.excluded:
        return (0, (), True)
    return (top, top_state.times, False)


def posthog_unordered(
    ts: Sequence[int], steps: Sequence[tuple[int, ...]], n: int, window: int
) -> PeerResult | None:
    """PostHog's unordered funnel for one entity: most distinct steps within one window."""
    queues: list[deque[int]] = [deque() for _ in range(n)]
    completed = 0
    top = 0
    top_times: tuple[int, ...] = ()

    def update() -> None:
        nonlocal top, top_times
        if completed > top:
            top = completed
            top_times = tuple(sorted(q[0] for q in queues if q))

    m = len(ts)
    for pos in range(m):
        t = ts[pos]
        while True:
            oldest = -1
            for k, q in enumerate(queues):
                if q and (oldest < 0 or q[0] < queues[oldest][0]):
                    oldest = k
            if oldest < 0:
                break
            if completed < n and queues[oldest][0] + window >= t:
                break
            update()
            queues[oldest].popleft()
            if not queues[oldest]:
                completed -= 1
        event_steps = steps[pos]
        if event_steps and all(s < 0 for s in event_steps):
            for q in queues:
                q.clear()
            completed = 0
        else:
            candidates = [s for s in event_steps if s > 0]
            if candidates:
                chosen = min(
                    candidates,
                    key=lambda s: queues[s - 1][-1] if queues[s - 1] else float("-inf"),
                )
                if not queues[chosen - 1]:
                    completed += 1
                queues[chosen - 1].append(t)
        if top == n:
            break
        if pos == m - 1:
            update()
    if top == 0:
        return None
    return (top, top_times, False)


def clickhouse_level(
    ts: Sequence[int],
    masks: Sequence[int],
    n: int,
    window: int,
    modes: frozenset[str],
) -> PeerResult | None:
    """ClickHouse ``windowFunnel(window, modes…)(timestamp, cond1, …)`` for one entity."""
    strict_order = "strict_order" in modes
    dedup = "strict_deduplication" in modes
    increase = "strict_increase" in modes
    reentry = "allow_reentry" in modes
    # rows: (timestamp, condition number 1..n or 0 for "none" under strict_order, row id)
    rows: list[tuple[int, int, int]] = []
    for row, (t, mask) in enumerate(zip(ts, masks, strict=True)):
        hit = False
        for k in range(n):
            if (mask >> k) & 1:
                rows.append((t, k + 1, row))
                hit = True
        if strict_order and not hit:
            rows.append((t, 0, row))
    if not rows:
        return None
    rows.sort()
    if not strict_order and n == 1:
        return (1, (rows[0][0],), False)
    if "strict_once" in modes:
        return _clickhouse_once(rows, n, window, strict_order, dedup, increase, reentry)
    slots: list[tuple[int, tuple[int, ...]] | None] = [None] * n

    def highest() -> PeerResult:
        for k in range(n, 0, -1):
            slot = slots[k - 1]
            if slot is not None:
                return (k, slot[1], False)
        return (0, (), False)

    started = False
    for t, cond, _ in rows:
        idx = cond - 1
        if strict_order and idx == -1:
            if started:
                break
            continue
        if idx == 0:
            slots[0] = (t, (t,))
            started = True
        elif dedup and slots[idx] is not None:
            return highest()
        elif strict_order and started and slots[idx - 1] is None:
            if reentry:
                continue
            level = next(k for k in range(n) if slots[k] is None)
            prev = slots[level - 1]
            return (level, prev[1] if prev is not None else (), False)
        else:
            prev = slots[idx - 1]
            if prev is None:
                continue
            ok = t <= prev[0] + window
            if increase:
                ok = ok and prev[1][-1] < t
            if ok:
                slots[idx] = (prev[0], (*prev[1], t))
                if idx + 1 == n:
                    return (n, slots[idx][1], False)  # type: ignore[index]
    return highest()


def _clickhouse_once(
    rows: list[tuple[int, int, int]],
    n: int,
    window: int,
    strict_order: bool,
    dedup: bool,
    increase: bool,
    reentry: bool,
) -> PeerResult:
    """``strict_once``: keep every partial chain, each row used at most once per chain."""
    # a chain: (first_ts, last_ts, row ids, times)
    levels: list[list[tuple[int, int, tuple[int, ...], tuple[int, ...]]]] = [[] for _ in range(n)]

    def highest() -> PeerResult:
        for k in range(n, 0, -1):
            if levels[k - 1]:
                return (k, levels[k - 1][0][3], False)
        return (0, (), False)

    started = False
    for t, cond, row in rows:
        idx = cond - 1
        if strict_order and idx == -1:
            if started:
                break
            continue
        if idx == 0:
            levels[0].append((t, t, (row,), (t,)))
            started = True
        elif dedup and levels[idx]:
            return highest()
        elif strict_order and started and not levels[idx - 1]:
            if reentry:
                continue
            level = next(k for k in range(n) if not levels[k])
            return (level, levels[level - 1][0][3] if level else (), False)
        elif levels[idx - 1]:
            prev = levels[idx - 1]
            it = 0
            while it < len(prev):
                first, last, path, times = prev[it]
                ok = t <= first + window
                if not ok and len(prev) > 1:
                    del prev[it]  # out of the window: forget it, but keep at least one
                    continue
                ok = ok and row not in path
                if ok and increase:
                    ok = last < t
                if ok:
                    levels[idx].append((first, t, (*path, row), (*times, t)))
                    if idx + 1 == n:
                        return (n, levels[idx][-1][3], False)
                it += 1
    return highest()


def peer_outcome(found: PeerResult, n: int) -> Outcome:
    """A peer's ``(level, times, excluded)`` as an outcome row (times padded to ``n``)."""
    level, times, excluded = found
    if excluded:
        return (0, 0, 0, (MISSING,) * n, True)
    assert len(times) >= level, "a peer chain holds one time per step reached"
    reached = (1 << level) - 1
    return (level, reached, reached & ~1, tuple(times[:level]) + (MISSING,) * (n - level), False)


def peer_function(
    preset: str,
    order: str,
    n: int,
    window: int,
    modes: frozenset[str],
    exclusions: tuple[tuple[int, int, int], ...],
) -> Callable[[Sequence[int], Sequence[int]], list[Outcome]]:
    """The per-entity function of a preset: columns in, outcome rows out."""
    if preset == "clickhouse":

        def clickhouse(ts: Sequence[int], masks: Sequence[int]) -> list[Outcome]:
            found = clickhouse_level(ts, masks, n, window, modes)
            return [] if found is None or not found[0] else [peer_outcome(found, n)]

        return clickhouse
    cache: dict[int, tuple[int, ...]] = {}

    def steps_of(masks: Sequence[int]) -> list[tuple[int, ...]]:
        out = []
        for mask in masks:
            got = cache.get(mask)
            if got is None:
                got = cache[mask] = posthog_steps(mask, n, exclusions)
            out.append(got)
        return out

    if order == "any":

        def unordered(ts: Sequence[int], masks: Sequence[int]) -> list[Outcome]:
            found = posthog_unordered(ts, steps_of(masks), n, window)
            return [] if found is None else [peer_outcome(found, n)]

        return unordered
    strict = order == "strict"

    def ordered(ts: Sequence[int], masks: Sequence[int]) -> list[Outcome]:
        found = posthog_ordered(ts, steps_of(masks), n, window, strict=strict)
        return [] if found is None else [peer_outcome(found, n)]

    return ordered


def check_posthog_exclusions(funnel: Funnel) -> None:
    """PostHog's validation: whole-funnel exclusions when unordered, none equal to a step."""
    n = len(funnel.steps)
    for exclusion, (i, j) in zip(funnel.exclusions, funnel._ranges, strict=True):
        if funnel.order == "any" and (i, j) != (0, n - 1):
            raise ValueError(
                "PostHog allows only whole-funnel exclusions in unordered funnels:"
                f" exclusion {exclusion.event!r} must be between steps 0 and {n - 1}"
            )
        for step in funnel.steps[i : j + 1]:
            if step.event == exclusion.event and (
                exclusion.where is None or exclusion.where == step.where
            ):
                raise ValueError(
                    f"exclusion {exclusion.event!r} matches every event of step"
                    f" {step.label!r} within its range; PostHog rejects such exclusions"
                )
