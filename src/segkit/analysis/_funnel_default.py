"""segkit's own funnel semantics, computed per entity from its event columns.

See ``docs/funnels.md`` for the definitions. In short, for ``order="ordered"`` an
*attempt* is a chain of distinct events ``e0, e1, …`` matching steps ``0, 1, …`` with
non-decreasing times (the ``ties`` option says what equal times allow) that all lie
within ``window`` of ``e0``. An entity's result is the attempt chosen by the key

    (furthest step, earliest time it was reached, latest start, earliest intermediate times)

so times always come from one real attempt. With exclusions, a chain is *blocked* at
step ``j`` of an exclusion ``(i, j)`` when an exclusion event lies strictly between
``e_i`` and ``e_j`` (``stop_at_exclusion``); under ``drop_entirely`` an entity whose
furthest attempts are all *tainted* (an exclusion event strictly after ``e_i`` and
before ``e_j``, or, when ``e_j`` was not reached, before the window closes) is removed.

Two engines compute this. The *fast path* (distinct step events, no exclusions)
walks per-step sorted timestamp arrays with :mod:`bisect` and tries only the starts
that are not dominated (the latest step-0 event before each step-1 event). The
*general path* finds, for each start, the component-wise earliest valid chain by
raising lower bounds until every constraint holds (order, window, exclusion gaps, and
distinct events at equal timestamps through a small matching).

.. versionadded:: 0.1.0
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Callable, Sequence
from typing import Final

__all__ = ["MISSING", "Outcome", "Spec", "evaluate_entity"]

#: Stands for "no time" in an outcome's times and in the outcome columns.
MISSING: Final = -(2**63)
#: A deadline later than any timestamp (no window).
_INF: Final = 2**62

#: ``(level, reached mask, moved mask, times, excluded)`` of one attempt (or entity).
Outcome = tuple[int, int, int, tuple[int, ...], bool]


class Spec:
    """The options an algorithm needs, resolved from a :class:`~segkit.Funnel`."""

    __slots__ = (
        "attempts",
        "bit_step",
        "deadline",
        "drop",
        "exclusions",
        "fast",
        "n",
        "order",
        "reuse",
        "ties",
        "vector",
        "window_us",
    )

    def __init__(
        self,
        *,
        n: int,
        order: str,
        ties: str,
        attempts: str,
        reuse: bool,
        exclusions: tuple[tuple[int, int, int], ...],
        drop: bool,
        deadline: Callable[[int], int] | None,
        fast: bool,
        window_us: int | None = None,
        vector: bool = False,
    ) -> None:
        self.n = n
        self.order = order
        self.ties = ties
        self.attempts = attempts
        self.reuse = reuse
        self.exclusions = exclusions  # (from_step, to_step, mask bit)
        self.drop = drop
        self.deadline: Callable[[int], int] = deadline if deadline is not None else _no_deadline
        self.fast = fast
        #: the window's fixed length in µs (``None``: no window, or a calendar one)
        self.window_us = window_us
        #: whether the numpy engine supports these options (see ``_funnel_numpy``)
        self.vector = vector
        #: step index of a single-step mask (the fast path's masks have one bit)
        self.bit_step = {1 << k: k for k in range(n)}


def _no_deadline(start: int) -> int:
    return _INF


def _level_outcome(times: Sequence[int], n: int, excluded: bool = False) -> Outcome:
    level = len(times)
    reached = (1 << level) - 1
    padded = tuple(times) + (MISSING,) * (n - level)
    return (level, reached, reached & ~1, padded, excluded)


def _chain_key(times: Sequence[int]) -> tuple[int, int, int, tuple[int, ...]]:
    """Bigger is better: furthest, then earliest end, then latest start, then earliest middle."""
    return (len(times), -times[-1], times[0], tuple(-t for t in times[1:-1]))


# --- the fast path: distinct step events, no exclusions ------------------------------------------


def ordered_fast(steps: list[list[int]], spec: Spec) -> Outcome | None:
    """``order="ordered"`` over per-step sorted timestamps (each event matches one step)."""
    first = steps[0]
    if not first:
        return None
    n = spec.n
    if n == 1 or not steps[1]:
        return _level_outcome((first[0],), n)
    later = spec.ties == "strictly_later"
    seek = bisect_right if later else bisect_left
    deadline = spec.deadline
    starts = first if spec.attempts == "best" else first[:1]
    second = steps[1]
    count = len(starts)
    best: list[int] | None = None
    best_key: tuple[int, int, int] | None = None
    for idx in range(count):
        s = starts[idx]
        if best is not None and len(best) == n and s > best[-1]:
            break  # every later chain ends after the best complete one
        if idx + 1 < count:
            j = seek(second, s)
            if j < len(second):
                nxt = starts[idx + 1]
                if nxt < second[j] or (nxt == second[j] and not later):
                    continue  # the next start reaches the same step-1 event with a later deadline
        limit = deadline(s)
        times = [s]
        t = s
        for k in range(1, n):
            col = steps[k]
            j = seek(col, t)
            if j == len(col):
                break
            t = col[j]
            if t > limit:
                break
            times.append(t)
        key = (len(times), -times[-1], s)
        if best_key is None or key > best_key:
            best, best_key = times, key
    assert best is not None
    return _level_outcome(best, n)


def any_fast(steps: list[list[int]], spec: Spec) -> Outcome | None:
    """``order="any"`` over per-step sorted timestamps."""
    firsts = [col[0] if col else None for col in steps]
    present = [t for t in firsts if t is not None]
    if not present:
        return None
    limit = spec.deadline(min(present))
    return _any_outcome(firsts, [0] * len(firsts), limit, spec)


def _any_outcome(
    firsts: Sequence[int | None], positions: Sequence[int], limit: int, spec: Spec
) -> Outcome:
    n = spec.n
    reached = moved = 0
    times = [MISSING] * n
    for k, t in enumerate(firsts):
        if t is not None and t <= limit:
            reached |= 1 << k
            times[k] = t
    for k in range(1, n):
        if (reached >> (k - 1)) & 3 != 3:
            continue
        a, b = times[k - 1], times[k]
        if spec.ties == "strictly_later":
            ok = b > a
        elif spec.ties == "input_order":
            ok = (b, positions[k]) >= (a, positions[k - 1])
        else:
            ok = b >= a
        if ok:
            moved |= 1 << k
    return (reached.bit_count(), reached, moved, tuple(times), False)


# --- the general path -----------------------------------------------------------------------------


def _feasible(steps: Sequence[int], masks: Sequence[int]) -> bool:
    """Can each step get its own event among ``masks``? (bipartite matching)"""
    owner = [-1] * len(masks)

    def place(step: int, seen: set[int]) -> bool:
        for e, mask in enumerate(masks):
            if (mask >> step) & 1 and e not in seen:
                seen.add(e)
                if owner[e] < 0 or place(owner[e], seen):
                    owner[e] = step
                    return True
        return False

    return all(place(step, set()) for step in steps)


class _Chains:
    """Candidate events per step of one entity, and the constrained chain search."""

    __slots__ = ("cand_pos", "cand_ts", "masks", "spec", "ts", "xs")

    def __init__(self, ts: Sequence[int], masks: Sequence[int], spec: Spec) -> None:
        n = spec.n
        self.ts = ts
        self.masks = masks
        self.spec = spec
        self.cand_ts: list[list[int]] = [[] for _ in range(n)]
        self.cand_pos: list[list[int]] = [[] for _ in range(n)]
        self.xs: dict[int, list[int]] = {bit: [] for _, _, bit in spec.exclusions}
        step_mask = (1 << n) - 1
        for pos, (t, mask) in enumerate(zip(ts, masks, strict=True)):
            if mask & step_mask:
                for k in range(n):
                    if (mask >> k) & 1:
                        self.cand_ts[k].append(t)
                        self.cand_pos[k].append(pos)
            if mask >> n:
                for bit, col in self.xs.items():
                    if (mask >> bit) & 1:
                        col.append(t)

    def earliest(self, k: int, chain: list[tuple[int, int]], low: int) -> int:
        """Index of the first step-``k`` candidate after ``chain[k - 1]`` and not before ``low``."""
        spec = self.spec
        col = self.cand_ts[k]
        t_prev, pos_prev = chain[k - 1]
        if spec.ties == "strictly_later":
            i = bisect_right(col, t_prev)
        else:
            i = bisect_left(col, t_prev)
            if spec.ties == "input_order":
                cpos = self.cand_pos[k]
                while (
                    i < len(col)
                    and col[i] == t_prev
                    and (cpos[i] < pos_prev or (cpos[i] == pos_prev and not spec.reuse))
                ):
                    i += 1
        if low > t_prev:
            i = max(i, bisect_left(col, low))
        if spec.ties != "any_order" or spec.reuse:
            return i
        while i < len(col):  # distinct events among the chain's steps at one timestamp
            t = col[i]
            same = [q for q in range(k) if chain[q][0] == t]
            if not same:
                return i
            lo, hi = bisect_left(self.ts, t), bisect_right(self.ts, t)
            if _feasible([*same, k], self.masks[lo:hi]):
                return i
            i = bisect_right(col, t, i)
        return i

    def solve(
        self, start: int, upto: int, constraints: Sequence[tuple[int, int, int, bool]]
    ) -> list[tuple[int, int]] | None:
        """The component-wise earliest valid chain of steps ``0..upto`` from start ``start``.

        ``constraints`` are ``(i, j, bit, before_end)``: no exclusion event strictly
        after ``e_i`` and strictly before ``e_j`` (``before_end`` false) or at or before
        the window's end (``before_end`` true). ``None`` when no such chain exists.
        """
        t0 = self.cand_ts[0][start]
        limit = self.spec.deadline(t0)
        chain: list[tuple[int, int]] = [(t0, self.cand_pos[0][start])] * (upto + 1)
        lows = [MISSING] * (upto + 1)

        def settle(first: int) -> bool:
            for p in range(max(first, 1), upto + 1):
                i = self.earliest(p, chain, lows[p])
                col = self.cand_ts[p]
                if i >= len(col) or col[i] > limit:
                    return False
                chain[p] = (col[i], self.cand_pos[p][i])
            return True

        if not settle(1):
            return None
        while True:
            for i, j, bit, before_end in constraints:
                xs = self.xs[bit]
                if before_end:
                    idx = bisect_right(xs, limit) - 1
                else:
                    idx = bisect_left(xs, chain[j][0]) - 1
                if idx >= 0 and xs[idx] > chain[i][0]:
                    if i == 0:
                        return None  # the start cannot move
                    lows[i] = xs[idx]
                    if not settle(i):
                        return None
                    break
            else:
                return chain

    def level(self, start: int, stop_constraints: bool) -> list[int]:
        """Times of the best chain from ``start`` (exclusions block steps when asked)."""
        n = self.spec.n
        best = [self.cand_ts[0][start]]
        for k in range(1, n):
            cons = (
                [(i, j, bit, False) for i, j, bit in self.spec.exclusions if j <= k]
                if stop_constraints
                else []
            )
            chain = self.solve(start, k, cons)
            if chain is None:
                break
            best = [t for t, _ in chain]
        return best

    def clean(self, start: int, level: int) -> list[int] | None:
        """Times of the earliest untainted chain of ``level`` steps from ``start``, if any."""
        cons = [(i, j, bit, j >= level) for i, j, bit in self.spec.exclusions if i <= level - 1]
        chain = self.solve(start, level - 1, cons)
        return None if chain is None else [t for t, _ in chain]


def _ordered_general(ts: Sequence[int], masks: Sequence[int], spec: Spec) -> list[Outcome]:
    chains = _Chains(ts, masks, spec)
    firsts = chains.cand_ts[0]
    if not firsts:
        return []
    n = spec.n
    if spec.attempts == "best":
        return [_best_of(chains, range(len(firsts)), spec)[0]]
    out: list[Outcome] = []
    i = 0
    while i < len(firsts):
        # with ties="any_order", simultaneous step-0 events are one and the same start
        group = range(i, bisect_right(firsts, firsts[i]) if spec.ties == "any_order" else i + 1)
        outcome, times = _best_of(chains, group, spec)
        out.append(outcome)
        if spec.attempts == "first":
            break
        if len(times) == n:
            end = times[-1]
        else:
            end = spec.deadline(firsts[i])
            if end >= _INF:
                break
        i = bisect_right(firsts, end)
    return out


def _best_of(chains: _Chains, starts: Sequence[int], spec: Spec) -> tuple[Outcome, list[int]]:
    n = spec.n
    if not spec.drop:
        best = max((chains.level(s, bool(spec.exclusions)) for s in starts), key=_chain_key)
        return _level_outcome(best, n), best
    plain = [chains.level(s, False) for s in starts]
    top = max(len(times) for times in plain)
    clean: list[list[int]] = []
    for s, times in zip(starts, plain, strict=True):
        if len(times) == top:
            found = chains.clean(s, top)
            if found is not None:
                clean.append(found)
    if not clean:
        longest = max(plain, key=_chain_key)
        return (0, 0, 0, (MISSING,) * n, True), longest
    best = max(clean, key=_chain_key)
    return _level_outcome(best, n), best


# --- strict order ---------------------------------------------------------------------------------


def _strict_chains(ts: Sequence[int], masks: Sequence[int], a: int, spec: Spec) -> list[list[int]]:
    """Every maximal strict chain (as times) that starts with the step-0 event at ``a``."""
    n, m = spec.n, len(ts)
    t0 = ts[a]
    limit = spec.deadline(t0)
    if spec.ties != "any_order":
        k, p = 1, a + 1
        while (
            k < n
            and p < m
            and ts[p] <= limit
            and (masks[p] >> k) & 1
            and (spec.ties != "strictly_later" or ts[p] > ts[p - 1])
        ):
            k += 1
            p += 1
        return [list(ts[a : a + k])]
    lo, hi = bisect_left(ts, t0), bisect_right(ts, t0)
    others = [masks[i] for i in range(lo, hi) if i != a]
    out: list[list[int]] = []
    for r in range(min(len(others), n - 1) + 1):
        if r and not _feasible(range(1, r + 1), others):
            break
        k = 1 + r
        times = [t0] * k
        p = hi
        while k < n and p < m and ts[p] <= limit:
            t = ts[p]
            end = bisect_right(ts, t, p)
            group = masks[p:end]
            size = end - p
            if k + size <= n and _feasible(range(k, k + size), group):
                times += [t] * size
                k += size
                p = end
                continue
            take = min(size, n - k)
            while take and not _feasible(range(k, k + take), group):
                take -= 1
            times += [t] * take
            k += take
            break
        out.append(times)
    return out


def _cut(times: list[int], spec: Spec, xs: dict[int, list[int]]) -> list[int]:
    """``times`` cut before the first step an exclusion blocks (``stop_at_exclusion``)."""
    level = len(times)
    for i, j, bit in spec.exclusions:
        if j < level:
            col = xs[bit]
            idx = bisect_left(col, times[j]) - 1
            if idx >= 0 and col[idx] > times[i]:
                level = j
    return times[:level]


def _tainted(times: list[int], spec: Spec, xs: dict[int, list[int]]) -> bool:
    level = len(times)
    limit = spec.deadline(times[0])
    for i, j, bit in spec.exclusions:
        if i >= level:
            continue
        col = xs[bit]
        idx = (bisect_left(col, times[j]) if j < level else bisect_right(col, limit)) - 1
        if idx >= 0 and col[idx] > times[i]:
            return True
    return False


def _strict(ts: Sequence[int], masks: Sequence[int], spec: Spec) -> list[Outcome]:
    n = spec.n
    starts = [i for i, mask in enumerate(masks) if mask & 1]
    if not starts:
        return []
    xs: dict[int, list[int]] = {bit: [] for _, _, bit in spec.exclusions}
    for t, mask in zip(ts, masks, strict=True):
        if mask >> n:
            for bit, col in xs.items():
                if (mask >> bit) & 1:
                    col.append(t)

    def outcome_of(group: Sequence[int]) -> tuple[Outcome, list[int]]:
        chains = [c for a in group for c in _strict_chains(ts, masks, a, spec)]
        if not spec.drop:
            best = max((_cut(c, spec, xs) for c in chains), key=_chain_key)
            return _level_outcome(best, n), best
        top = max(len(c) for c in chains)
        clean = [c for c in chains if len(c) == top and not _tainted(c, spec, xs)]
        if not clean:
            return (0, 0, 0, (MISSING,) * n, True), max(chains, key=_chain_key)
        best = max(clean, key=_chain_key)
        return _level_outcome(best, n), best

    if spec.attempts == "best":
        return [outcome_of(starts)[0]]
    out: list[Outcome] = []
    i = 0
    while i < len(starts):
        t0 = ts[starts[i]]
        group = [a for a in starts[i:] if ts[a] == t0] if spec.ties == "any_order" else [starts[i]]
        outcome, times = outcome_of(group)
        out.append(outcome)
        if spec.attempts == "first":
            break
        if len(times) == n:
            end = times[-1]
        else:
            end = spec.deadline(t0)
            if end >= _INF:
                break
        while i < len(starts) and ts[starts[i]] <= end:
            i += 1
    return out


def _any_general(ts: Sequence[int], masks: Sequence[int], spec: Spec) -> list[Outcome]:
    n = spec.n
    step_mask = (1 << n) - 1
    entry = next((i for i, mask in enumerate(masks) if mask & step_mask), None)
    if entry is None:
        return []
    firsts: list[int | None] = [None] * n
    positions = [0] * n
    for pos in range(entry, len(ts)):
        mask = masks[pos] & step_mask
        if not mask:
            continue
        for k in range(n):
            if (mask >> k) & 1 and firsts[k] is None:
                firsts[k] = ts[pos]
                positions[k] = pos
    return [_any_outcome(firsts, positions, spec.deadline(ts[entry]), spec)]


def evaluate_entity(ts: Sequence[int], masks: Sequence[int], spec: Spec) -> list[Outcome]:
    """The outcome rows of one entity (none when it never entered the funnel)."""
    if spec.fast:
        steps: list[list[int]] = [[] for _ in range(spec.n)]
        bit_step = spec.bit_step
        for t, mask in zip(ts, masks, strict=True):
            steps[bit_step[mask]].append(t)
        found = ordered_fast(steps, spec) if spec.order == "ordered" else any_fast(steps, spec)
        return [] if found is None else [found]
    if spec.order == "strict":
        return _strict(ts, masks, spec)
    if spec.order == "any":
        return _any_general(ts, masks, spec)
    return _ordered_general(ts, masks, spec)
