"""The funnel's vectorised path: numpy over whole event columns (the ``fast`` extra).

:class:`~segkit.Funnel` uses it automatically when numpy can be imported and the
funnel is in the common case that :func:`segkit.analysis.funnel.Funnel` marks as
``fast`` (``order="ordered"`` with ``attempts="best"`` or ``"first"``, or
``order="any"``; distinct step events, no exclusions, ``ties`` other than
``"input_order"``; a window of fixed length or none; no attribute stages). The
results are identical to the pure-Python path's: ``tests/test_funnel_fast.py``
compares the two on random event logs.

How it works:

1. each event's name becomes a step number (``where`` filters run in Python, on the
   events of their names only); events in no step are dropped;
2. entities are numbered by first appearance (a dict over the keys, or the ids
   themselves when the keys are integer ids of an ``idmap``) and the step events are
   sorted by ``(entity, time, step)``: the events of an entity are then contiguous,
   in time order, a step before the next one at equal times;
3. every step-0 event opens an attempt; step ``k`` of all attempts at once is one
   :func:`numpy.searchsorted` in the positions of the step-``k`` events: the first
   one after the attempt's step ``k - 1`` (after all the events at its time with
   ``ties="strictly_later"``), kept when it belongs to the same entity and lies in
   the window;
4. each entity's attempt is chosen by the documented key (furthest step, earliest
   time reached, latest start) with three segmented reductions;
5. the outcome rows go straight into :class:`FunnelOutcomes`' arrays, and
   :func:`aggregate` computes a report's counts, times and histograms vectorised.

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import array
import itertools
import operator
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from fractions import Fraction
from itertools import repeat
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import numpy.typing as npt

from segkit.analysis._funnel_columns import Matcher, _filtered_mask
from segkit.analysis._funnel_default import MISSING
from segkit.analysis._funnel_report import (
    FunnelOutcomes,
    FunnelReport,
    TimeStats,
    _bin_layout,
    _ratio,
    _stats_from_sorted,
    step_reports,
)
from segkit.records import Event, IdMap

if TYPE_CHECKING:
    from segkit.analysis._funnel_default import Spec

__all__ = ["Prepared", "aggregate", "evaluate", "prepare_columns", "prepare_events"]

I64 = npt.NDArray[np.int64]
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=timezone.utc)
_US: Final = timedelta(microseconds=1)
#: Pure Python's deadline without a window (a step later than this never counts).
_INF: Final = 2**62
_I64_MAX: Final = 2**63 - 1


class Prepared:
    """The step events of a log, numbered: what :func:`evaluate` needs.

    ``label``, ``step`` and ``t`` have one entry per step event; ``label`` tells the
    entities apart. Sorted by label, the entities are in slot order (order of first
    appearance) unless ``slot_of_entity`` gives each one's slot (in label order).
    ``keys`` and ``ids`` are indexed by slot.
    """

    __slots__ = ("extra_ids", "idmap", "ids", "keys", "label", "slot_of_entity", "step", "t")

    def __init__(
        self,
        label: I64,
        step: I64,
        t: I64,
        slot_of_entity: I64 | None,
        keys: list[str],
        ids: Sequence[int],
        idmap: IdMap,
        extra_ids: list[int],
    ) -> None:
        self.label = label
        self.step = step
        self.t = t
        self.slot_of_entity = slot_of_entity
        self.keys = keys
        self.ids = ids
        self.idmap = idmap
        self.extra_ids = extra_ids


# --- input ----------------------------------------------------------------------------------------


def _step_codes(
    names: Sequence[str] | Any,
    matcher: Matcher,
    filtered_mask: Callable[[int, str], int],
) -> I64:
    """Step number + 1 of every event (0: in no step); ``where`` filters evaluated."""
    count = len(names)
    # one bit per name: the vectorised case has distinct step events and no exclusions
    plain_code = {name: mask.bit_length() for name, mask in matcher.plain.items() if mask}
    filtered = [name for name in matcher.by_name if name not in matcher.plain]
    if isinstance(names, np.ndarray) and names.dtype.kind == "U":
        codes = np.zeros(count, dtype=np.int64)
        for name, code in plain_code.items():
            codes[names == name] = code
        for name in filtered:
            codes[names == name] = -1
    else:
        lookup: dict[str, int] = dict(plain_code)
        lookup.update(dict.fromkeys(filtered, -1))
        codes = np.fromiter(map(lookup.get, names, repeat(0)), dtype=np.int64, count=count)
    if filtered:
        for i in np.flatnonzero(codes < 0).tolist():
            codes[i] = filtered_mask(i, str(names[i])).bit_length()
    return codes


def _label_keys(raw: Iterable[Any], count: int) -> tuple[I64, list[Any]]:
    """Label ``count`` keys: the position of each key's first appearance, and the
    distinct keys in order of first appearance (one dict pass, no Python loop)."""
    first: dict[Any, int] = {}
    label = np.fromiter(map(first.setdefault, raw, itertools.count()), dtype=np.int64, count=count)
    if "" in first:  # not a valid key: a non-str sends the input to the pure path
        return label, [*first, None]
    return label, list(first)


def _new_idmap(keys: list[str]) -> IdMap:
    """A fresh :class:`IdMap` numbering ``keys`` (distinct, valid) 0, 1, 2, … in bulk."""
    idmap = IdMap()
    idmap._id_of = dict(zip(keys, range(len(keys)), strict=True))
    idmap._key_of = list(keys)
    return idmap


def _ranks(values: I64) -> I64:
    """The rank of each value (distinct values) in ascending order."""
    ranks = np.empty(values.shape[0], dtype=np.int64)
    ranks[_stable_argsort(values)] = np.arange(values.shape[0], dtype=np.int64)
    return ranks


def _keys_of(idmap: IdMap, ids: I64) -> npt.NDArray[np.object_] | None:
    """The keys of ``ids`` as an object array (``None`` if one of the ids is free)."""
    table = getattr(idmap, "_key_of", None)  # IdMap's id -> key list: read in bulk
    if isinstance(table, list) and len(table) == idmap.high_water:
        keys = np.array(table, dtype=object)[ids]
    else:
        try:
            keys = np.array(list(map(idmap.key_of, ids.tolist())), dtype=object)
        except KeyError:
            return None
    if None in keys.tolist():
        return None
    return keys


def _finish(
    label: I64,
    step: I64,
    t: I64,
    distinct: list[Any] | npt.NDArray[np.object_],
    slot_of_entity: I64 | None,
    given_ids: I64 | None,
    idmap: IdMap | None,
    entities: Collection[str] | None,
) -> Prepared | None:
    """Check the keys, apply ``entities`` and give the entities their ids.

    ``distinct`` are the entities' keys in label order (in slot order too when
    ``slot_of_entity`` is ``None``); ``given_ids`` their ids when the keys came as ids.
    """
    if given_ids is None and set(map(type, distinct)) - {str}:
        return None  # the pure path names the bad key
    if idmap is not None and given_ids is None and not all(map(idmap.__contains__, distinct)):
        return None  # the pure path names the unknown key
    if entities is not None:
        wanted = frozenset(entities)
        keep_entity = np.fromiter(
            map(wanted.__contains__, distinct), dtype=bool, count=len(distinct)
        )
        if not keep_entity.all():
            _, dense = np.unique(label, return_inverse=True)
            keep = keep_entity[dense]
            label, step, t = label[keep], step[keep], t[keep]
            kept = np.flatnonzero(keep_entity)
            if isinstance(distinct, np.ndarray):
                distinct = distinct[kept]
            else:
                distinct = list(map(distinct.__getitem__, kept.tolist()))
            if given_ids is not None:
                given_ids = given_ids[kept]
            if slot_of_entity is not None:  # ranks among the entities that are left
                slot_of_entity = _ranks(slot_of_entity[kept])
    slot_ids: Sequence[int] | None = None
    if slot_of_entity is None:
        slot_keys = list(distinct)
    else:
        by_slot = np.empty_like(slot_of_entity)
        by_slot[slot_of_entity] = np.arange(slot_of_entity.shape[0])
        if isinstance(distinct, np.ndarray):
            slot_keys = distinct[by_slot].tolist()
        else:
            slot_keys = list(map(distinct.__getitem__, by_slot.tolist()))
        if given_ids is not None:
            slot_ids = array.array("q", given_ids[by_slot].astype(np.int64).tobytes())
    if slot_ids is not None:
        assert idmap is not None
        the_map = idmap
    elif idmap is None:
        the_map = _new_idmap(slot_keys)
        slot_ids = range(len(slot_keys))
    else:
        the_map = idmap
        slot_ids = list(map(idmap.id_of, slot_keys))
    extra: list[int] = []
    if entities is not None:
        for key in sorted(frozenset(entities) - frozenset(slot_keys)):
            got = the_map.assign(key) if idmap is None else the_map.get(key)
            if got is not None:
                extra.append(got)
    return Prepared(label, step, t, slot_of_entity, slot_keys, slot_ids, the_map, extra)


def _int_column(values: Iterable[int] | Any, count: int) -> I64 | None:
    """``values`` as int64, or ``None`` when some value is not a plain int."""
    if isinstance(values, np.ndarray):
        if values.dtype.kind not in "iu":
            return None
        if (
            values.dtype.kind == "u"
            and values.dtype.itemsize == 8
            and values.size
            and int(values.max()) > _I64_MAX
        ):
            return None
        return values.astype(np.int64, copy=False)
    values = list(values)
    if set(map(type, values)) - {int}:
        return None
    try:
        return np.fromiter(values, dtype=np.int64, count=count)
    except OverflowError:
        return None


def prepare_columns(
    keys: Sequence[str] | Any,
    names: Sequence[str] | Any,
    times_us: Sequence[int] | Any,
    matcher: Matcher,
    *,
    properties: Sequence[Mapping[str, Any]] | None,
    entities: Collection[str] | None,
    idmap: IdMap | None,
) -> Prepared | None:
    """:meth:`Funnel.evaluate_columns`' input, numbered; ``None``: use the pure path.

    ``None`` is returned for anything unusual (a time that is not an int, a key that
    is not a non-empty string, an unknown key or id…): the pure path then gives the
    answer or raises its exact error.
    """
    count = len(names)
    if not (len(keys) == count == len(times_us)):
        return None
    if properties is not None and len(properties) != count:
        return None
    if properties is None and len(matcher.plain) < len(matcher.by_name):
        return None  # a where filter needs the properties: the pure path says so

    def filtered_mask(i: int, name: str) -> int:
        assert properties is not None
        return _filtered_mask(matcher, name, str(keys[i]), properties[i])

    codes = _step_codes(names, matcher, filtered_mask)
    sel = np.flatnonzero(codes > 0)
    step = codes[sel] - 1
    m = sel.shape[0]
    chosen: list[int] = (
        [] if isinstance(times_us, np.ndarray) and isinstance(keys, np.ndarray) else sel.tolist()
    )
    t = _int_column(
        times_us[sel] if isinstance(times_us, np.ndarray) else map(times_us.__getitem__, chosen),
        m,
    )
    if t is None:
        return None
    if isinstance(keys, np.ndarray) and keys.dtype.kind in "iu":
        if idmap is None:
            return None
        ids = keys[sel].astype(np.int64)
        high = idmap.high_water
        if m and (int(ids.min()) < 0 or int(ids.max()) >= high):
            return None  # not an id of idmap: the pure path names it
        present = np.zeros(high, dtype=bool)
        present[ids] = True
        id_arr = np.flatnonzero(present)
        key_arr = _keys_of(idmap, id_arr)
        if key_arr is None:
            return None  # a freed id: the pure path names it
        label = (np.cumsum(present) - 1)[ids]  # dense, in id order
        first = np.full(id_arr.shape[0], m, dtype=np.int64)
        np.minimum.at(first, label, np.arange(m, dtype=np.int64))
        return _finish(label, step, t, key_arr, _ranks(first), id_arr, idmap, entities)
    raw = keys[sel].tolist() if isinstance(keys, np.ndarray) else map(keys.__getitem__, chosen)
    label, distinct_keys = _label_keys(raw, m)
    return _finish(label, step, t, distinct_keys, None, None, idmap, entities)


def prepare_events(
    events: Sequence[Event],
    matcher: Matcher,
    *,
    entities: Collection[str] | None,
    idmap: IdMap | None,
) -> Prepared | None:
    """:meth:`Funnel.evaluate`'s input (Event objects), numbered; ``None``: pure path."""
    if set(map(type, events)) - {Event}:
        return None
    names = list(map(_NAME, events))

    def filtered_mask(i: int, name: str) -> int:
        e = events[i]
        return _filtered_mask(matcher, name, e.key, e.properties)

    codes = _step_codes(names, matcher, filtered_mask)
    sel = np.flatnonzero(codes > 0)
    chosen = list(map(events.__getitem__, sel.tolist()))
    m = len(chosen)
    try:  # naive datetimes cannot be subtracted from an aware one: the pure path decides
        t = np.fromiter(
            map(
                operator.floordiv, map(operator.sub, map(_AT, chosen), repeat(_EPOCH)), repeat(_US)
            ),
            dtype=np.int64,
            count=m,
        )
    except (TypeError, OverflowError):
        return None
    label, distinct = _label_keys(map(_KEY, chosen), m)
    return _finish(label, codes[sel] - 1, t, distinct, None, None, idmap, entities)


_NAME: Final = operator.attrgetter("name")
_AT: Final = operator.attrgetter("at")
_KEY: Final = operator.attrgetter("key")


# --- evaluation -----------------------------------------------------------------------------------


def _stable_argsort(values: I64) -> npt.NDArray[np.intp]:
    """``np.argsort(values, kind="stable")``; for values in [0, 2**32), two 16-bit passes
    (numpy sorts 16-bit integers by radix: linear time)."""
    if not values.shape[0] or int(values.min()) < 0 or int(values.max()) >= 2**32:
        return np.argsort(values, kind="stable")
    order = np.argsort((values & 0xFFFF).astype(np.uint16), kind="stable")
    if int(values.max()) < 2**16:
        return order
    high = (values[order] >> 16).astype(np.uint16)
    return order[np.argsort(high, kind="stable")]


def _sort(label: I64, step: I64, t: I64) -> npt.NDArray[np.intp]:
    """The order of the events by ``(label, t, step)`` (stable)."""
    if not t.shape[0]:
        return np.arange(0, dtype=np.intp)
    lo, hi = int(t.min()), int(t.max())
    if hi - lo < 2**56:  # time and step in one key: two stable sorts instead of three
        inner = (t - lo) * 64 + step
        if bool((inner[1:] >= inner[:-1]).all()):  # a log in time order: one sort
            return _stable_argsort(label)
        order = np.argsort(inner, kind="stable")
        return order[_stable_argsort(label[order])]
    return np.lexsort((step, t, label))


def _limits(t0: I64, length: int | None) -> I64:
    """Each attempt's last moment: ``t0 + length``, saturated at the int64 maximum."""
    if length is None:
        return np.full(t0.shape, _INF, dtype=np.int64)
    if length > _I64_MAX:
        return np.full(t0.shape, _I64_MAX, dtype=np.int64)
    if not t0.shape[0] or int(t0.max()) <= _I64_MAX - length:
        return t0 + length
    return np.where(t0 > _I64_MAX - length, _I64_MAX, t0 + length)


def evaluate(prep: Prepared, spec: Spec, window_us: int | None, outcomes: FunnelOutcomes) -> None:
    """Compute every entity's outcome row and append the rows to ``outcomes``."""
    n = spec.n
    order = _sort(prep.label, prep.step, prep.t)
    lab = prep.label[order]
    stp = prep.step[order]
    ts = prep.t[order]
    m = ts.shape[0]
    if not m:
        return
    new_entity = np.empty(m, dtype=bool)
    new_entity[0] = True
    np.not_equal(lab[1:], lab[:-1], out=new_entity[1:])
    ent_first = np.flatnonzero(new_entity)
    ent_of = np.cumsum(new_entity) - 1  # entity index (0..E-1) of every position
    ent_end = np.append(ent_first[1:], m)  # one past each entity's last position
    positions = [np.flatnonzero(stp == k) for k in range(n)]
    if spec.order == "any":
        rows_ent, level, reached, moved, times = _any(positions, ent_of, ts, spec, window_us)
    else:
        rows_ent, level, reached, moved, times = _ordered(
            positions, ent_of, ent_end, lab, ts, spec, window_us
        )
    if prep.slot_of_entity is None:  # label order is slot order
        _append(outcomes, rows_ent, level, reached, moved, times)
        return
    slots = prep.slot_of_entity[rows_ent]
    row_at = np.full(prep.slot_of_entity.shape[0], -1, dtype=np.int64)
    row_at[slots] = np.arange(slots.shape[0], dtype=np.int64)
    by_slot = row_at[row_at >= 0]  # the rows in slot order (slots are distinct)
    _append(
        outcomes,
        slots[by_slot],
        level[by_slot],
        reached[by_slot],
        moved[by_slot],
        times[:, by_slot],
    )


def _ordered(
    positions: list[npt.NDArray[np.intp]],
    ent_of: I64,
    ent_end: npt.NDArray[np.intp],
    lab: I64,
    ts: I64,
    spec: Spec,
    window_us: int | None,
) -> tuple[I64, I64, I64, I64, I64]:
    n = spec.n
    p0 = positions[0]
    e0 = ent_of[p0]
    if spec.attempts == "first" and p0.shape[0]:
        first = np.empty(p0.shape[0], dtype=bool)
        first[0] = True
        np.not_equal(e0[1:], e0[:-1], out=first[1:])
        p0, e0 = p0[first], e0[first]
    later = spec.ties == "strictly_later"
    if later:  # the last position of each run of equal (entity, time)
        m = ts.shape[0]
        run_end = np.empty(m, dtype=bool)
        run_end[-1] = True
        np.logical_or(lab[1:] != lab[:-1], ts[1:] != ts[:-1], out=run_end[:-1])
        last_of_run = np.flatnonzero(run_end)
        run_last = last_of_run[np.searchsorted(last_of_run, np.arange(m))]

    def step_after(
        pk: npt.NDArray[np.intp], cur: npt.NDArray[np.intp], ents: I64
    ) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.bool_]]:
        """The first step event in ``pk`` after each position (and whether it exists)."""
        query = run_last[cur] if later else cur
        j = np.searchsorted(pk, query, side="right")
        found = j < pk.shape[0]
        cand = pk[np.minimum(j, pk.shape[0] - 1)]
        found &= cand < ent_end[ents]
        return cand, found

    t0 = ts[p0]
    stages: list[tuple[npt.NDArray[np.intp], I64]] = []  # (attempts, their step-k times)
    if n > 1 and positions[1].shape[0] and p0.shape[0]:
        cand, found = step_after(positions[1], p0, e0)
        if spec.attempts == "best":
            # like the pure path, skip a start when the next start of its entity comes
            # no later than its step-1 event: that start reaches the same step-1 event,
            # with a later deadline (a later start wins equal attempts)
            skip = np.zeros(p0.shape[0], dtype=bool)
            nxt = t0[1:]
            step1 = ts[cand[:-1]]
            skip[:-1] = (
                found[:-1] & (e0[1:] == e0[:-1]) & ((nxt < step1) | ((nxt == step1) & (not later)))
            )
            keep = ~skip
            p0, e0, t0, cand, found = p0[keep], e0[keep], t0[keep], cand[keep], found[keep]
    count = p0.shape[0]
    limit = _limits(t0, window_us)
    last = t0.copy()  # the time of each attempt's furthest step
    level = np.ones(count, dtype=np.int64)
    alive = np.arange(count)
    cur = p0
    for k in range(1, n):
        pk = positions[k]
        if not alive.shape[0] or not pk.shape[0]:
            break
        if k > 1:
            cand, found = step_after(pk, cur, e0[alive])
        ok = found & (ts[cand] <= limit[alive])
        alive, cur = alive[ok], cand[ok]
        at = ts[cur]
        stages.append((alive, at))
        last[alive] = at
        level[alive] = k + 1
    if not count:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty, empty, np.zeros((n, 0), dtype=np.int64)
    # the best attempt of each entity: furthest, then reached earliest, then latest start
    group = np.empty(count, dtype=bool)
    group[0] = True
    np.not_equal(e0[1:], e0[:-1], out=group[1:])
    starts = np.flatnonzero(group)
    gid = np.cumsum(group) - 1
    top = np.maximum.reduceat(level, starts)
    ok = level == top[gid]
    soonest = np.minimum.reduceat(np.where(ok, last, _I64_MAX), starts)
    ok &= last == soonest[gid]
    chosen = np.maximum.reduceat(np.where(ok, np.arange(count), -1), starts)
    level = level[chosen]
    times = np.full((n, chosen.shape[0]), MISSING, dtype=np.int64)
    times[0] = t0[chosen]
    for k, (who, at) in enumerate(stages, 1):  # ``who`` is ascending: find the chosen ones
        where = np.searchsorted(who, chosen)
        hit = where < who.shape[0]
        hit[hit] = who[where[hit]] == chosen[hit]
        times[k, hit] = at[where[hit]]
    reached = (np.left_shift(np.uint64(1), level.astype(np.uint64)) - np.uint64(1)).astype(
        np.uint64
    )
    moved = reached & ~np.uint64(1)
    return e0[chosen], level, reached.view(np.int64), moved.view(np.int64), times


def _any(
    positions: list[npt.NDArray[np.intp]],
    ent_of: I64,
    ts: I64,
    spec: Spec,
    window_us: int | None,
) -> tuple[I64, I64, I64, I64, I64]:
    n = spec.n
    entities = int(ent_of[-1]) + 1
    firsts = np.full((n, entities), MISSING, dtype=np.int64)
    present = np.zeros((n, entities), dtype=bool)
    for k, pk in enumerate(positions):
        if not pk.shape[0]:
            continue
        e = ent_of[pk]
        head = np.empty(pk.shape[0], dtype=bool)
        head[0] = True
        np.not_equal(e[1:], e[:-1], out=head[1:])
        firsts[k, e[head]] = ts[pk[head]]
        present[k, e[head]] = True
    entry = np.where(present, firsts, _I64_MAX).min(axis=0)
    limit = _limits(entry, window_us)
    hit = present & (firsts <= limit)
    times = np.where(hit, firsts, MISSING)
    reached = np.zeros(entities, dtype=np.uint64)
    moved = np.zeros(entities, dtype=np.uint64)
    for k in range(n):
        reached |= hit[k].astype(np.uint64) << np.uint64(k)
    for k in range(1, n):
        if spec.ties == "strictly_later":
            step_ok = firsts[k] > firsts[k - 1]
        else:
            step_ok = firsts[k] >= firsts[k - 1]
        moved |= (hit[k] & hit[k - 1] & step_ok).astype(np.uint64) << np.uint64(k)
    level = hit.sum(axis=0).astype(np.int64)
    return (
        np.arange(entities, dtype=np.int64),
        level,
        reached.view(np.int64),
        moved.view(np.int64),
        times,
    )


def _append(
    outcomes: FunnelOutcomes,
    slots: I64,
    level: I64,
    reached: I64,
    moved: I64,
    times: I64,
) -> None:
    """Append rows to ``outcomes``' arrays in bulk."""
    outcomes.row_slot.frombytes(slots.astype(_dtype_of(outcomes.row_slot)).tobytes())
    outcomes.row_level.frombytes(level.astype(np.uint8).tobytes())
    outcomes.row_reached.frombytes(reached.astype(np.int64).view(np.uint64).tobytes())
    outcomes.row_moved.frombytes(moved.astype(np.int64).view(np.uint64).tobytes())
    outcomes.row_excluded.frombytes(np.zeros(slots.shape[0], dtype=np.uint8).tobytes())
    for col, values in zip(outcomes.row_times, times, strict=True):
        col.frombytes(np.ascontiguousarray(values, dtype=np.int64).tobytes())


def _dtype_of(column: array.array[int]) -> np.dtype[Any]:
    kind = "i" if column.typecode.islower() else "u"
    return np.dtype(f"{kind}{column.itemsize}")


def _view(column: array.array[int]) -> npt.NDArray[Any]:
    return (
        np.frombuffer(column, dtype=_dtype_of(column))
        if len(column)
        else np.zeros(0, dtype=_dtype_of(column))
    )


# --- aggregation ----------------------------------------------------------------------------------


def _quantile(ordered: I64, q: Fraction) -> int:
    """Same as the pure path's ``_quantile`` (linear interpolation), on a sorted array."""
    size = ordered.shape[0]
    pos = (size - 1) * q
    lo = int(pos)  # pos >= 0: floor
    hi = min(lo + 1, size - 1)
    a, b = int(ordered[lo]), int(ordered[hi])
    value: Fraction = a + (b - a) * (pos - lo)
    return round(value)


def _stats(samples: I64) -> TimeStats:
    """:meth:`TimeStats.of` on an array, vectorised."""
    if not samples.shape[0]:
        return TimeStats.of(())
    ordered = np.sort(samples, kind="stable")
    size = ordered.shape[0]
    lo_v, hi_v = int(ordered[0]), int(ordered[-1])
    if size * max(abs(lo_v), abs(hi_v)) < 2**62:
        total = int(ordered.sum())
    else:
        total = sum(ordered.tolist())
    count, start, width = _bin_layout(size, lo_v, hi_v, None)
    counts = np.bincount((ordered - start) // width, minlength=count + 1).tolist()
    return _stats_from_sorted(
        tuple(ordered.tolist()),
        total,
        _quantile(ordered, Fraction(1, 2)),
        _quantile(ordered, Fraction(9, 10)),
        (start, width, counts),
    )


def aggregate(outcomes: FunnelOutcomes, ids: Iterable[int] | None) -> FunnelReport:
    """:meth:`FunnelOutcomes.report`, vectorised (identical results)."""
    n = len(outcomes.names)
    slot = _view(outcomes.row_slot).astype(np.int64)
    if ids is None:
        keep = None
        population = None
    else:
        population = frozenset(ids)
        known = outcomes.slot_ids
        slot_ids = (
            np.arange(known.start, known.stop, known.step, dtype=np.int64)
            if isinstance(known, range)
            else np.asarray(known, dtype=np.int64)
        )
        wanted = np.fromiter(population, dtype=np.int64, count=len(population))
        keep = np.isin(slot_ids[slot], wanted)
    reached = _view(outcomes.row_reached).view(np.uint64)
    moved = _view(outcomes.row_moved).view(np.uint64)
    excluded_col = _view(outcomes.row_excluded)
    times = [_view(col) for col in outcomes.row_times]
    if keep is not None:
        rows_arr = np.flatnonzero(keep)
        reached, moved, excluded_col = reached[rows_arr], moved[rows_arr], excluded_col[rows_arr]
        times = [col[rows_arr] for col in times]
        rows: tuple[int, ...] = tuple(rows_arr.tolist())
    else:
        rows = tuple(range(slot.shape[0]))
    bits = [((reached >> np.uint64(k)) & np.uint64(1)).astype(bool) for k in range(n)]
    move_bits = [((moved >> np.uint64(k)) & np.uint64(1)).astype(bool) for k in range(n)]
    counts = [int(b.sum()) for b in bits]
    moves = [int(b.sum()) for b in move_bits]
    entered = int((reached != 0).sum())
    excluded = int((excluded_col != 0).sum())
    full = np.uint64((1 << n) - 1)
    complete = np.uint64(((1 << n) - 1) & ~1)
    cumulative = (reached == full) & ((moved & complete) == complete)
    positive = outcomes.positive_times
    stats: list[TimeStats | None] = [None]
    for k in range(1, n):
        sel = move_bits[k]
        samples = times[k][sel] - times[k - 1][sel]
        if positive:
            samples = samples[samples > 0]
        stats.append(_stats(samples))
    both = [0 if k + 1 == n else int((bits[k] & bits[k + 1]).sum()) for k in range(n)]
    steps, transitions = step_reports(outcomes.names, counts, both, moves, stats)
    completion = times[n - 1][cumulative] - times[0][cumulative]
    if positive:
        completion = completion[completion > 0]
    return FunnelReport(
        steps,
        entered,
        excluded,
        _ratio(counts[-1], entered),
        _ratio(int(cumulative.sum()), entered),
        _stats(completion),
        transitions,
        _outcomes=outcomes,
        _rows=rows,
        _population=population,
    )
