"""The funnel's vectorised path: numpy over whole event columns (the ``fast`` extra).

:class:`~segkit.Funnel` uses it automatically when numpy can be imported and the
funnel is in the common case that :func:`segkit.analysis.funnel.Funnel` marks as
``fast`` (``order="ordered"`` with ``attempts="best"`` or ``"first"``, or
``order="any"``; distinct step events, no exclusions, ``ties`` other than
``"input_order"``; a window of fixed length or none; no attribute stages). The
results are identical to the pure-Python path's: ``tests/test_funnel_fast.py``
compares the two on random event logs.

How it works:

1. each event's name becomes a step number: through a small table when the names
   come as integer codes of ``categories`` (or as a pandas/polars categorical
   column), by comparing the characters of a numpy string column with the step
   names only where the first character matches, or through a dict; ``where``
   filters run in Python, on the events of their names only; events in no step are
   dropped;
2. entities are numbered by first appearance (a dict over the keys), or keep their
   ids when the keys are integer ids of an ``idmap``; times become codes that keep
   their order: ``t - min(t)``, or the rank of ``t`` among the distinct times when
   that does not fit beside the entity in 62 bits;
3. each step's events become one sorted int64 array of ``entity << bits | time``
   keys (``np.sort``, no argsort): the events of an entity are contiguous, in time
   order;
4. every step-0 event opens an attempt; step ``k`` of all attempts at once is one
   :func:`numpy.searchsorted` of the attempts' step ``k - 1`` keys in the step-``k``
   keys: the first key at or after it (after it with ``ties="strictly_later"``) is
   the entity's next step-``k`` event, kept when it is at most the attempt's
   ``entity << bits | deadline`` (same entity, in the window: one comparison);
5. each entity's attempt is chosen by the documented key (furthest step, earliest
   time reached, latest start) with three segmented reductions;
6. the outcome rows go straight into :class:`FunnelOutcomes`' arrays, and
   :func:`aggregate` computes a report's counts, times and histograms vectorised.

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import array
import operator
from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from fractions import Fraction
from itertools import compress, count, repeat
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
    from collections.abc import Iterable

    from segkit.analysis._funnel_default import Spec

__all__ = ["Prepared", "aggregate", "evaluate", "prepare_columns", "prepare_events"]

I64 = npt.NDArray[np.int64]
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=timezone.utc)
_US: Final = timedelta(microseconds=1)
_I64_MAX: Final = 2**63 - 1
#: Bits of a sort key (``entity << bits | time code``): the key of an attempt's
#: deadline stays below the int64 maximum, which ends every step's keys. Tests lower
#: it to reach the time ranks and the dense relabelling.
_KEY_BITS = 62


class Prepared:
    """The step events of a log, numbered: what :func:`evaluate` needs.

    ``label``, ``step`` and ``t`` have one entry per step event (in input order);
    ``label`` (>= 0) tells the entities apart: it is the entity's slot, or its id
    when ``slot_of_label`` (indexed by id, -1 elsewhere) gives the slots. Slots
    number the entities in order of first appearance; ``keys`` and ``ids`` are
    indexed by slot.
    """

    __slots__ = ("extra_ids", "idmap", "ids", "keys", "label", "slot_of_label", "step", "t")

    def __init__(
        self,
        label: I64,
        step: npt.NDArray[np.int8],
        t: I64,
        slot_of_label: I64 | None,
        keys: list[str],
        ids: Sequence[int],
        idmap: IdMap,
        extra_ids: list[int],
    ) -> None:
        self.label = label
        self.step = step
        self.t = t
        self.slot_of_label = slot_of_label
        self.keys = keys
        self.ids = ids
        self.idmap = idmap
        self.extra_ids = extra_ids


# --- input ----------------------------------------------------------------------------------------


def _name_codes(matcher: Matcher) -> dict[str, int]:
    """Step number + 1 of every step event name; -1 for names with a ``where`` filter."""
    # one bit per name: the vectorised case has distinct step events and no exclusions
    codes = {name: mask.bit_length() for name, mask in matcher.plain.items() if mask}
    codes.update((name, -1) for name in matcher.by_name if name not in matcher.plain)
    return codes


def _string_codes(names: npt.NDArray[np.str_], code_of: Mapping[str, int]) -> npt.NDArray[np.int8]:
    """The codes of a numpy string column: the first characters are compared with each
    name's first character, the whole strings only where that one matches."""
    size = names.shape[0]
    codes = np.zeros(size, dtype=np.int8)
    width = names.dtype.itemsize // 4
    if not size or not width:
        return codes
    names = np.ascontiguousarray(names)
    first = names.view(np.uint32).reshape(size, width)[:, 0].copy()
    for name, code in code_of.items():
        # numpy strips trailing NULs (so does .tolist()): such a name matches no string
        if not name or len(name) > width or name.endswith("\0"):
            continue
        at = np.flatnonzero(first == ord(name[0]))
        if len(name) > 1 or width > 1:
            at = at[names[at] == name]
        codes[at] = code
    return codes


def _step_codes(
    names: Sequence[str] | Any,
    matcher: Matcher,
    filtered_mask: Callable[[int, str], int],
    categories: Sequence[Any] | None = None,
) -> npt.NDArray[np.int8]:
    """Step number + 1 of every event (0: in no step); ``where`` filters evaluated.

    With ``categories``, ``names`` are integer codes (checked by the caller).
    """
    code_of = _name_codes(matcher)
    count_ = len(names)
    if categories is not None:
        table = np.fromiter(
            map(code_of.get, categories, repeat(0)), dtype=np.int8, count=len(categories)
        )
        codes = table[np.asarray(names)] if count_ else np.zeros(0, dtype=np.int8)
    elif isinstance(names, np.ndarray) and names.dtype.kind == "U":
        codes = _string_codes(names, code_of)
    else:
        codes = np.fromiter(map(code_of.get, names, repeat(0)), dtype=np.int8, count=count_)
    if len(code_of) > len(matcher.plain):  # where filters
        for i in np.flatnonzero(codes < 0).tolist():
            name = names[i] if categories is None else categories[int(names[i])]
            codes[i] = filtered_mask(i, str(name)).bit_length()
    return codes


def _label_keys(raw: Iterable[Any], size: int) -> tuple[I64, list[Any]]:
    """Number ``size`` keys by first appearance (0, 1, 2, …), and list the distinct
    keys in that order (one dict pass, no Python loop)."""
    first: dict[Any, int] = {}
    at = np.fromiter(map(first.setdefault, raw, count()), dtype=np.int64, count=size)
    slot = np.zeros(size, dtype=np.int64)  # the position of a first appearance -> its slot
    slot[np.fromiter(first.values(), dtype=np.int64, count=len(first))] = np.arange(len(first))
    if "" in first:  # not a valid key: a non-str sends the input to the pure path
        return slot[at], [*first, None]
    return slot[at], list(first)


def _new_idmap(keys: list[str]) -> IdMap:
    """A fresh :class:`IdMap` numbering ``keys`` (distinct, valid) 0, 1, 2, … in bulk."""
    idmap = IdMap()
    idmap._id_of = dict(zip(keys, range(len(keys)), strict=True))
    idmap._key_of = list(keys)
    return idmap


def _keys_of(idmap: IdMap, ids: I64) -> list[str] | None:
    """The keys of ``ids`` (``None`` if one of the ids is free)."""
    table = getattr(idmap, "_key_of", None)  # IdMap's id -> key list: read in bulk
    if isinstance(table, list) and len(table) == idmap.high_water:
        keys: list[Any] = np.array(table, dtype=object)[ids].tolist()
        if len(idmap) < len(table) and None in keys:  # some ids are free
            return None
        return keys
    try:
        return list(map(idmap.key_of, ids.tolist()))
    except KeyError:
        return None


def _first_appearance(ids: I64, high: int) -> I64:
    """The distinct values of ``ids`` (in ``[0, high)``) in order of first appearance."""
    size = ids.shape[0]
    first = np.full(high, size, dtype=np.int64)
    np.minimum.at(first, ids, np.arange(size, dtype=np.int64))
    mark = np.zeros(size + 1, dtype=bool)
    mark[first] = True  # positions are distinct: marking them sorts them
    return ids[np.flatnonzero(mark[:size])]


def _finish(
    label: I64,
    step: npt.NDArray[np.int8],
    t: I64,
    slot_label: I64 | None,
    slot_keys: list[Any],
    idmap: IdMap | None,
    entities: Collection[str] | None,
) -> Prepared | None:
    """Check the keys, apply ``entities`` and give the entities their ids.

    ``slot_keys`` are the entities' keys in order of first appearance; ``slot_label``
    their ids when the keys came as ids of ``idmap`` (``None``: the labels are slots).
    """
    given_ids = slot_label is not None
    if not given_ids and set(map(type, slot_keys)) - {str}:
        return None  # the pure path names the bad key
    if idmap is not None and not given_ids and not all(map(idmap.__contains__, slot_keys)):
        return None  # the pure path names the unknown key
    if entities is not None:
        wanted = frozenset(entities)
        keep_slot = np.fromiter(
            map(wanted.__contains__, slot_keys), dtype=bool, count=len(slot_keys)
        )
        if not keep_slot.all():
            if slot_label is None:
                keep = keep_slot[label]
                label = (np.cumsum(keep_slot) - 1)[label[keep]]
            else:
                slot_label = slot_label[keep_slot]
                kept = np.zeros(int(label.max()) + 1, dtype=bool)
                kept[slot_label] = True
                keep = kept[label]
                label = label[keep]
            step, t = step[keep], t[keep]
            slot_keys = list(compress(slot_keys, keep_slot.tolist()))
    slot_of_label: I64 | None = None
    slot_ids: Sequence[int]
    if slot_label is not None:
        assert idmap is not None
        the_map = idmap
        slot_ids = array.array("q", slot_label.astype(np.int64).tobytes())
        slot_of_label = np.full(idmap.high_water, -1, dtype=np.int64)
        slot_of_label[slot_label] = np.arange(slot_label.shape[0], dtype=np.int64)
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
    return Prepared(label, step, t, slot_of_label, slot_keys, slot_ids, the_map, extra)


def _int_column(values: Iterable[int] | Any, size: int) -> I64 | None:
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
        return np.fromiter(values, dtype=np.int64, count=size)
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
    categories: Sequence[Any] | None = None,
) -> Prepared | None:
    """:meth:`Funnel.evaluate_columns`' input, numbered; ``None``: use the pure path.

    ``None`` is returned for anything unusual (a time that is not an int, a key that
    is not a non-empty string, an unknown key or id…): the pure path then gives the
    answer or raises its exact error. With ``categories``, ``names`` are integer
    codes of them, already checked.
    """
    size = len(names)
    if not (len(keys) == size == len(times_us)):
        return None
    if properties is not None and len(properties) != size:
        return None
    if properties is None and len(matcher.plain) < len(matcher.by_name):
        return None  # a where filter needs the properties: the pure path says so

    def filtered_mask(i: int, name: str) -> int:
        assert properties is not None
        return _filtered_mask(matcher, name, str(keys[i]), properties[i])

    codes = _step_codes(names, matcher, filtered_mask, categories)
    sel = np.flatnonzero(codes > 0)
    step = codes[sel] - np.int8(1)
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
        slot_label = _first_appearance(ids, high)
        slot_keys = _keys_of(idmap, slot_label)
        if slot_keys is None:
            return None  # a freed id: the pure path names it
        return _finish(ids, step, t, slot_label, slot_keys, idmap, entities)
    raw = keys[sel].tolist() if isinstance(keys, np.ndarray) else map(keys.__getitem__, chosen)
    label, distinct_keys = _label_keys(raw, m)
    return _finish(label, step, t, None, distinct_keys, idmap, entities)


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
    return _finish(label, codes[sel] - np.int8(1), t, None, distinct, idmap, entities)


_NAME: Final = operator.attrgetter("name")
_AT: Final = operator.attrgetter("at")
_KEY: Final = operator.attrgetter("key")


# --- evaluation -----------------------------------------------------------------------------------


class _Clock:
    """Time codes that keep the order of the times and fit beside a label in a key.

    ``code`` is ``(t - base) // grain`` when that fits in ``bits`` (with
    ``label_bits``, at most :data:`_KEY_BITS`; ``grain`` is 1, or the common divisor
    of the times' offsets, such as a second for times in whole seconds), else the
    rank of ``t`` among the distinct times ``unique``.
    """

    __slots__ = ("base", "bits", "code", "grain", "span", "top", "unique")

    def __init__(self, t: I64, label_bits: int) -> None:
        lo, hi = int(t.min()), int(t.max())
        room = _KEY_BITS - label_bits
        self.unique: I64 | None = None
        self.base = lo
        self.span = hi - lo
        self.grain = 1
        if self.span.bit_length() <= room:
            self.code = t - lo
        else:
            offset = t - lo if self.span <= _I64_MAX else None
            grain = int(np.gcd.reduce(offset[:4096])) if offset is not None else 0
            if (
                offset is not None
                and grain > 1
                and (self.span // grain).bit_length() <= room
                and not np.remainder(offset, grain).any()
            ):
                self.grain = grain
                self.code = offset // grain
            elif bool((t[1:] >= t[:-1]).all()):  # a log in time order: no sort
                new = np.empty(t.shape[0], dtype=bool)
                new[0] = True
                np.not_equal(t[1:], t[:-1], out=new[1:])
                self.unique = t[new]
                self.code = np.cumsum(new, dtype=np.int64) - 1
            else:
                self.unique = np.unique(t)
                self.code = np.searchsorted(self.unique, t).astype(np.int64)
        self.top = self.span // self.grain if self.unique is None else self.unique.shape[0] - 1
        self.bits = self.top.bit_length()

    def limit(self, start: I64, window_us: int | None) -> I64:
        """The code of each attempt's last moment ``t + window_us`` (``start``: codes of
        ``t``), capped at :attr:`top`."""
        if window_us is None or window_us >= self.span:
            return np.full(start.shape, self.top, dtype=np.int64)
        if self.unique is None:  # t <= t0 + w  <=>  code <= code0 + w // grain
            return np.minimum(start + window_us // self.grain, self.top)
        # offsets from the first time, exact in uint64 even when the span passes 2**63
        offset = (self.unique - np.int64(self.base)).view(np.uint64)
        ends = np.minimum(offset, np.uint64(self.span - window_us)) + np.uint64(window_us)
        last: I64 = np.searchsorted(offset, ends, side="right") - 1
        return last[start]

    def times(self, code: I64) -> I64:
        """The times (µs) of codes."""
        if self.unique is not None:
            at: I64 = self.unique[code]
            return at
        return code * self.grain + self.base if self.grain > 1 else code + self.base


def _step_keys(label: I64, step: npt.NDArray[np.int8], clock: _Clock, n: int) -> list[I64]:
    """Each step's ``label << bits | time code`` keys, sorted, ended by the int64 maximum."""
    key = label << clock.bits
    key |= clock.code
    out = []
    for k in range(n):
        mine = key[step == k]
        keys = np.empty(mine.shape[0] + 1, dtype=np.int64)
        keys[:-1] = mine
        keys[:-1].sort()
        keys[-1] = _I64_MAX
        out.append(keys)
    return out


def evaluate(prep: Prepared, spec: Spec, window_us: int | None, outcomes: FunnelOutcomes) -> None:
    """Compute every entity's outcome row and append the rows to ``outcomes``."""
    label = prep.label
    if not label.shape[0]:
        return
    dense: I64 | None = None  # the labels in use, when relabelled 0, 1, 2, …
    clock = _Clock(prep.t, int(label.max()).bit_length())
    if clock.bits + int(label.max()).bit_length() > _KEY_BITS:
        dense = np.unique(label)
        label = np.searchsorted(dense, label).astype(np.int64)
    keys = _step_keys(label, prep.step, clock, spec.n)
    slot_of = prep.slot_of_label
    if spec.order == "any":
        slots: I64 = np.arange(len(prep.keys), dtype=np.int64)
        labels = slots if slot_of is None else np.asarray(prep.ids, dtype=np.int64)
        if dense is not None:
            labels = np.searchsorted(dense, labels).astype(np.int64)
        level, reached, moved, times = _any(keys, labels, clock, spec, window_us)
        _append(outcomes, slots, level, reached, moved, times)
        return
    row_label, level, reached, moved, times = _ordered(keys, clock, spec, window_us)
    if dense is not None:
        row_label = dense[row_label]
    if slot_of is None:  # labels are slots, and the rows are in label order
        _append(outcomes, row_label, level, reached, moved, times)
        return
    slots = slot_of[row_label]
    row_at = np.full(len(prep.keys), -1, dtype=np.int64)
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
    keys: list[I64], clock: _Clock, spec: Spec, window_us: int | None
) -> tuple[I64, I64, I64, I64, I64]:
    """The rows (label order) of an ordered funnel: each entity's best or first attempt."""
    n = spec.n
    bits = clock.bits
    low = np.int64((1 << bits) - 1)
    side: Any = "right" if spec.ties == "strictly_later" else "left"
    start = keys[0][:-1]
    lab0 = start >> bits
    if spec.attempts == "first" and start.shape[0]:
        first = np.empty(start.shape[0], dtype=bool)
        first[0] = True
        np.not_equal(lab0[1:], lab0[:-1], out=first[1:])
        start, lab0 = start[first], lab0[first]
    stages: list[tuple[npt.NDArray[np.intp], I64]] = []  # (attempts, their step-k codes)
    cand = start
    if n > 1 and start.shape[0]:
        cand = keys[1][np.searchsorted(keys[1], start, side=side)]
        if spec.attempts == "best":
            # like the pure path, skip a start when the next start of its entity comes
            # no later than its step-1 event: that start reaches the same step-1 event,
            # with a later deadline (a later start wins equal attempts)
            nxt, c = start[1:], cand[:-1]
            skip = np.zeros(start.shape[0], dtype=bool)
            skip[:-1] = (lab0[1:] == lab0[:-1]) & (c < ((lab0[:-1] + 1) << bits))
            skip[:-1] &= (nxt < c) if side == "right" else (nxt <= c)
            keep = ~skip
            start, lab0, cand = start[keep], lab0[keep], cand[keep]
    total = start.shape[0]
    if not total:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty, empty, np.zeros((n, 0), dtype=np.int64)
    t0 = start & low
    cap = (lab0 << bits) | clock.limit(t0, window_us)  # the key of each attempt's deadline
    last = t0.copy()  # the code of each attempt's furthest step
    level = np.ones(total, dtype=np.int64)
    alive = np.zeros(0, dtype=np.intp)
    cur = start
    for k in range(1, n):
        if k > 1:
            if not alive.shape[0]:
                break
            cand = keys[k][np.searchsorted(keys[k], cur, side=side)]
            ok = cand <= cap[alive]
        else:
            ok = cand <= cap
        alive = alive[ok] if k > 1 else np.flatnonzero(ok)
        cur = cand[ok]
        at = cur & low
        stages.append((alive, at))
        last[alive] = at
        level[alive] = k + 1
    chosen = _best(lab0, level, last, clock.top)
    level = level[chosen]
    times = np.full((n, chosen.shape[0]), MISSING, dtype=np.int64)
    times[0] = clock.times(t0[chosen])
    for k, (who, at) in enumerate(stages, 1):  # the chosen that reached step k are in who
        hit = level > k
        times[k, hit] = clock.times(at[np.searchsorted(who, chosen[hit])])
    reached = (np.left_shift(np.uint64(1), level.astype(np.uint64)) - np.uint64(1)).astype(
        np.uint64
    )
    moved = reached & ~np.uint64(1)
    return lab0[chosen], level, reached.view(np.int64), moved.view(np.int64), times


def _best(label: I64, level: I64, last: I64, top: int) -> I64:
    """The best attempt of each entity (attempts grouped by ``label``, in start order):
    furthest ``level``, then reached earliest (``last``: code of its furthest step),
    then latest start."""
    total = label.shape[0]
    group = np.empty(total, dtype=bool)
    group[0] = True
    np.not_equal(label[1:], label[:-1], out=group[1:])
    starts = np.flatnonzero(group)
    index_bits = (total - 1).bit_length()
    time_bits = top.bit_length()
    if int(level.max()).bit_length() + time_bits + index_bits <= 63:
        # one maximum over (level, top - last, index) packed in an int64
        score = level << (time_bits + index_bits)
        score |= (top - last) << index_bits
        score |= np.arange(total, dtype=np.int64)
        best: I64 = np.maximum.reduceat(score, starts) & ((1 << index_bits) - 1)
        return best
    gid = np.cumsum(group) - 1
    furthest = np.maximum.reduceat(level, starts)
    ok = level == furthest[gid]
    soonest = np.minimum.reduceat(np.where(ok, last, _I64_MAX), starts)
    ok &= last == soonest[gid]
    return np.maximum.reduceat(np.where(ok, np.arange(total), -1), starts)


def _any(
    keys: list[I64], labels: I64, clock: _Clock, spec: Spec, window_us: int | None
) -> tuple[I64, I64, I64, I64]:
    """The rows (slot order) of ``order="any"``; ``labels[slot]`` is each slot's label."""
    n = spec.n
    bits = clock.bits
    low = np.int64((1 << bits) - 1)
    entities = labels.shape[0]
    slot_at = np.full(int(labels.max()) + 1, -1, dtype=np.int64)
    slot_at[labels] = np.arange(entities, dtype=np.int64)
    firsts = np.zeros((n, entities), dtype=np.int64)
    present = np.zeros((n, entities), dtype=bool)
    for k, step_keys in enumerate(keys):
        mine = step_keys[:-1]
        if not mine.shape[0]:
            continue
        lab = mine >> bits
        head = np.empty(mine.shape[0], dtype=bool)
        head[0] = True
        np.not_equal(lab[1:], lab[:-1], out=head[1:])
        who = slot_at[lab[head]]
        firsts[k, who] = mine[head] & low
        present[k, who] = True
    entry = np.where(present, firsts, _I64_MAX).min(axis=0)  # every slot has a step event
    limit = clock.limit(entry, window_us)
    hit = present & (firsts <= limit)
    times = np.full((n, entities), MISSING, dtype=np.int64)
    times[hit] = clock.times(firsts[hit])
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
    return level, reached.view(np.int64), moved.view(np.int64), times


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
    ordered = np.sort(samples)
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
