"""Deterministic splits of a segment into groups (A/B tests, holdouts), with an SRM check.

Every profile has a bucket under a salt: ``bucket(salt, key)`` from
:mod:`segkit.hashing`, a number from 0 to 9,999 that depends only on the salt and
the profile's external key. :meth:`segkit.Engine.split` gives each group a
contiguous range of buckets in proportion to its weight, so a profile's group
never depends on insertion order or dense ids, and does not change when the
segment grows or shrinks; the same groups are selected in rules by
``bucket("salt") in LO..HI`` (see :meth:`Split.rule`).

* **Bucket ranges.** Weights are relative (``{"a": 1, "b": 3}`` is 25% / 75%;
  percentages that add up to 100 read naturally). With ``W`` the total and
  ``C_k`` the sum of the first ``k`` weights, in the order given, the boundaries
  are ``B_k = floor(10000 * C_k / W + 1/2)`` (exact arithmetic; a float weight is
  read as the decimal it prints as, so ``33.3`` is 333/10), and group ``k`` owns
  buckets ``B_(k-1) .. B_k - 1``. A zero weight owns no bucket (an empty group,
  for ramp-ups); a positive weight that rounds to no bucket is an error.
* **Holdout.** ``holdout=5`` holds out 5% of the segment *before* the groups are
  formed, by a second salt: the members with ``bucket(salt + ":holdout", key)``
  in ``0 .. H - 1``, where ``H`` is the percentage in whole buckets (0.01%
  each, rounded half up). The holdout is therefore as stable as the groups, does
  not move when the weights change, and the groups keep their bucket ranges
  whatever the holdout's size.
* **Stratified splits** (``by="country"``): in each stratum (the members with one
  value of the attribute; members without a value form their own stratum) the
  members are ranked by bucket, then by key, and cut at
  ``floor(n * C_k / W + u)``, so every stratum's groups keep the weights'
  proportions to within one member. The offset ``u`` is the stratum's own,
  ``bucket(salt, "stratum:" + repr(value)) / 10000`` (see :func:`stratum_offset`):
  a fixed 1/2 would give the odd member of every small stratum to the same group. This gives up one kind of stability: a
  profile's group still never depends on insertion order or dense ids, but when
  its stratum gains or loses members, the profiles next to a cut can move to the
  neighbouring group. Such a split has no bucket rule.
* **SRM.** :class:`SampleRatioCheck` is a chi-square goodness-of-fit test of the
  group counts (holdout included) against the expected counts;
  ``ok`` means ``p_value >= alpha`` (default :data:`SRM_ALPHA` = 0.001).

The buckets of the profiles a split reads are cached in the engine, per salt (the
last :data:`SPLIT_CACHE_SALTS` salts), so a second split with a salt is fast; the
cache is dropped when a profile is renamed (``merge`` into a new key) and never
used by an :class:`~segkit.IdMap` that reuses ids.

>>> import segkit as sk
>>> engine = sk.Engine(sk.Schema(attributes={"plan": "string"}))
>>> _ = engine.upsert_many({f"c-{i}": {"plan": "pro"} for i in range(1000)})
>>> _ = engine.define("pro", 'plan = "pro"')
>>> split = engine.split("pro", {"control": 10, "a": 45, "b": 45}, salt="exp-7")
>>> dict(split.counts)
{'control': 114, 'a': 466, 'b': 420}
>>> split.rule("control")
'bucket("exp-7") in 0..999'
>>> split.srm.ok
True

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import array
import contextlib
import hashlib
import itertools
import math
import numbers
import struct
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from datetime import date
from fractions import Fraction
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final, cast

import attrs

from segkit.analysis._chisq import chi2_sf
from segkit.analysis._html import Columns, Frames, html_table, typed_columns
from segkit.errors import SchemaError, SegmentError
from segkit.hashing import BUCKETS, bucket
from segkit.index import Bitmap, FrozenBitmap, Members

if TYPE_CHECKING:
    from segkit.engine import Engine
    from segkit.index import AttributeIndex
    from segkit.records import IdMap

__all__ = [
    "HOLDOUT",
    "HOLDOUT_SALT_SUFFIX",
    "SPLIT_CACHE_SALTS",
    "SRM_ALPHA",
    "BucketCache",
    "SampleRatioCheck",
    "Split",
    "split_members",
    "split_segment",
    "stratum_offset",
]

#: Default significance level of the sample-ratio-mismatch check: a p-value below
#: it flags the split (a false alarm about once in a thousand healthy splits).
SRM_ALPHA: Final = 0.001
#: The name of the holdout group.
HOLDOUT: Final = "holdout"
#: The holdout's salt is the split's salt followed by this suffix.
HOLDOUT_SALT_SUFFIX: Final = ":holdout"
#: An engine caches the buckets of this many salts (least recently used first out).
SPLIT_CACHE_SALTS: Final = 4
#: Buckets per coarse block of the cache (a range is a union of blocks and buckets).
_BLOCK: Final = 100
#: Strata up to this size are sorted directly; larger ones are cut with the cache's
#: per-bucket bitmaps (the same result, fewer Python steps).
_SORT_MAX: Final = 2048
_UNSET: Final = 0xFFFF
_UINT32: Final = struct.Struct(">I")
_ONE_HALF: Final = Fraction(1, 2)


# --- the bucket cache ---------------------------------------------------------------------


def bucket_function(salt: str) -> Callable[[str], int]:
    """``key -> bucket(salt, key)``, faster for many keys (the same md5-based value).

    >>> from segkit.hashing import bucket
    >>> bucket_function("exp-7")("c-1") == bucket("exp-7", "c-1")
    True
    """
    prefix = f"{salt}:".encode()
    md5 = hashlib.md5
    unpack = _UINT32.unpack_from

    def bucket_of(key: str) -> int:
        digest = md5(prefix + key.encode(), usedforsecurity=False).digest()
        value: int = unpack(digest)[0]
        return value % BUCKETS

    return bucket_of


class _SaltTable:
    """The buckets under one salt of the ids hashed so far: by id, per bucket, per block."""

    __slots__ = ("by_id", "coarse", "covered", "fine", "prefix")

    def __init__(self, salt: str) -> None:
        self.prefix = f"{salt}:".encode()
        self.covered = Bitmap()
        self.fine: dict[int, Bitmap] = {}  # bucket -> ids
        self.coarse: dict[int, Bitmap] = {}  # block -> ids
        self.by_id = array.array("H")  # id -> bucket (_UNSET beyond the hashed ids)

    def cover(self, ids: Bitmap | FrozenBitmap, idmap: IdMap) -> None:
        """Hash the ids of ``ids`` not hashed yet (``bucket_function`` inlined: this
        loop is the cost of a cold split)."""
        missing = ids - self.covered
        if not missing:
            return
        pids = missing.to_array()
        prefix = self.prefix
        md5 = hashlib.md5
        unpack = _UINT32.unpack_from
        if len(pids) * 8 >= idmap.high_water:  # many: index a copy of the key list
            keys = cast("list[str]", idmap.keys_by_id())  # members' ids are live: no None
            buckets = [
                unpack(md5(prefix + keys[pid].encode(), usedforsecurity=False).digest())[0]
                % BUCKETS
                for pid in pids
            ]
        else:
            key_of = idmap.key_of
            buckets = [
                unpack(md5(prefix + key_of(pid).encode(), usedforsecurity=False).digest())[0]
                % BUCKETS
                for pid in pids
            ]
        by_id = self.by_id
        size = pids[-1] + 1
        if len(by_id) < size:
            by_id += array.array("H", [_UNSET]) * (size - len(by_id))
        lists: list[list[int]] = [[] for _ in range(BUCKETS)]
        for pid, b in zip(pids, buckets, strict=True):
            by_id[pid] = b
            lists[b].append(pid)
        fine, coarse = self.fine, self.coarse
        for first in range(0, BUCKETS, _BLOCK):
            block_ids: list[int] = []
            for b in range(first, first + _BLOCK):
                found = lists[b]
                if found:
                    block_ids += found
                    bm = fine.get(b)
                    if bm is None:
                        fine[b] = Bitmap(found)
                    else:
                        bm.update(found)
            if block_ids:
                block = coarse.get(first // _BLOCK)
                if block is None:
                    coarse[first // _BLOCK] = Bitmap(block_ids)
                else:
                    block.update(block_ids)
        self.covered |= missing

    def between(self, low: int, high: int) -> Bitmap:
        """The hashed ids whose bucket lies in ``low .. high`` (inclusive)."""
        if low > high:
            return Bitmap()
        first = -(-low // _BLOCK)  # the first whole block
        stop = (high + 1) // _BLOCK  # one past the last whole block
        fine, coarse = self.fine, self.coarse
        if first < stop:
            parts = [coarse[j] for j in range(first, stop) if j in coarse]
            edges = [*range(low, first * _BLOCK), *range(stop * _BLOCK, high + 1)]
        else:
            parts = []
            edges = list(range(low, high + 1))
        parts += [fine[b] for b in edges if b in fine]
        return Bitmap.union(Bitmap(), *parts)


class BucketCache:
    """An engine's split buckets per salt (an LRU of :data:`SPLIT_CACHE_SALTS` salts).

    A bucket never goes stale: the cache is emptied when the engine's
    :class:`~segkit.IdMap` or its rename count changes (``merge`` into a new key
    gives an id another key), deleted ids are never handed out again by the
    Engine's IdMap (their cached buckets are never read: splits only read ids of
    current members), and an IdMap that reuses ids gets a fresh, uncached table
    each time.

    >>> from segkit.records import IdMap
    >>> ids = IdMap()
    >>> cache = BucketCache()
    >>> cache.table("exp-7", ids, renames=0) is cache.table("exp-7", ids, renames=0)
    True
    >>> cache.table("exp-7", ids, renames=1) is cache.table("exp-7", ids, renames=0)
    False

    .. versionadded:: 0.1.0
    """

    __slots__ = ("_idmap", "_renames", "_size", "_tables")

    def __init__(self, size: int = SPLIT_CACHE_SALTS) -> None:
        self._size = size
        self._tables: OrderedDict[str, _SaltTable] = OrderedDict()
        self._idmap: IdMap | None = None
        self._renames = 0

    def __len__(self) -> int:
        return len(self._tables)

    def table(self, salt: str, idmap: IdMap, *, renames: int) -> _SaltTable:
        """The table of ``salt`` for ids of ``idmap`` after ``renames`` renames."""
        if idmap.reuse_ids:
            return _SaltTable(salt)  # an id may name another key at any time
        if idmap is not self._idmap or renames != self._renames:
            self._tables.clear()
            self._idmap = idmap
            self._renames = renames
        tables = self._tables
        found = tables.get(salt)
        if found is None:
            found = tables[salt] = _SaltTable(salt)
            while len(tables) > self._size:
                tables.popitem(last=False)
        else:
            tables.move_to_end(salt)
        return found


# --- validation ---------------------------------------------------------------------------


def _exact(value: float) -> Fraction:
    """A weight as an exact fraction (a float as the decimal it prints as)."""
    if isinstance(value, float):
        return Fraction(repr(value))
    return Fraction(value)  # int, Fraction, Decimal, …


def _round_half_up(value: Fraction) -> int:
    return math.floor(value + _ONE_HALF)


def _check_groups(groups: object, holdout: bool) -> dict[str, float]:
    if not isinstance(groups, Mapping):
        raise TypeError(
            f"groups must be a mapping of group name to weight, got {type(groups).__name__}"
        )
    if not groups:
        raise ValueError("a split needs at least one group")
    weights: dict[str, float] = {}
    for group, weight in groups.items():
        if not isinstance(group, str) or not group:
            raise ValueError(f"a group name must be a non-empty string, got {group!r}")
        if holdout and group == HOLDOUT:
            raise ValueError(
                f"the group name {HOLDOUT!r} is taken by the holdout: rename that group"
            )
        if isinstance(weight, bool) or not isinstance(weight, numbers.Real):
            raise ValueError(f"the weight of group {group!r} must be a number, got {weight!r}")
        if not math.isfinite(weight):
            raise ValueError(f"the weight of group {group!r} must be finite, got {weight!r}")
        if weight < 0:
            raise ValueError(f"the weight of group {group!r} must not be negative, got {weight!r}")
        weights[group] = cast(float, weight)  # an int, float, Fraction, ...: kept as given
    if not any(weights.values()):
        raise ValueError("the weights add up to 0: give at least one group a positive weight")
    return weights


def _boundaries(
    weights: Mapping[str, float], scale: int, offset: Fraction = _ONE_HALF
) -> list[int]:
    """``[0, B_1, ..., B_m = scale]``: ``floor(scale * C_k / W + offset)``, exactly."""
    exact = [_exact(w) for w in weights.values()]
    total = sum(exact, Fraction(0))
    out = [0]
    running = Fraction(0)
    for w in exact:
        running += w
        out.append(math.floor(scale * running / total + offset))
    return out


def stratum_offset(salt: str, value: Any) -> Fraction:
    """The rounding offset of a stratum's cuts: ``bucket(salt, "stratum:" + repr(value)) / 10000``.

    A fixed offset of 1/2 would hand the odd member of every small stratum to the
    same group; an offset drawn per stratum makes the rounding unbiased across
    strata (systematic sampling with a random start) and still deterministic.

    >>> stratum_offset("exp-7", "FR")
    Fraction(439, 10000)
    """
    return Fraction(bucket(salt, f"stratum:{value!r}"), BUCKETS)


def _ranges(weights: Mapping[str, float]) -> dict[str, tuple[int, int] | None]:
    """Each group's inclusive bucket range (``None`` for a zero weight)."""
    cuts = _boundaries(weights, BUCKETS)
    ranges: dict[str, tuple[int, int] | None] = {}
    for group, (lo, hi) in zip(weights, itertools.pairwise(cuts), strict=True):
        if hi <= lo and weights[group] > 0:
            raise ValueError(
                f"group {group!r} is too small: its weight {weights[group]!r} rounds to no "
                f"bucket (one bucket is 1/{BUCKETS} of the total)"
            )
        ranges[group] = (lo, hi - 1) if hi > lo else None
    return ranges


def _check_holdout(holdout: object) -> int:
    """The holdout's number of buckets (0: none)."""
    if holdout is None:
        return 0
    if isinstance(holdout, bool) or not isinstance(holdout, numbers.Real):
        raise ValueError(f"holdout must be a percentage, got {holdout!r}")
    size = (
        _round_half_up(_exact(cast(float, holdout)) * BUCKETS / 100)
        if math.isfinite(holdout)
        else -1
    )
    if not 1 <= size < BUCKETS:
        raise ValueError(f"holdout must be a percentage from 0.01 to 99.99, got {holdout!r}")
    return size


def _check_by(engine: Engine, by: object) -> AttributeIndex | None:
    if by is None:
        return None
    if not isinstance(by, str):
        raise TypeError(f"by must be an attribute name, got {by!r}")
    types = engine.schema.attributes
    if by not in types:
        from segkit._suggest import suggest

        hint = suggest(by, types)
        extra = f" (did you mean {hint!r}?)" if hint else ""
        raise SchemaError(f"cannot split by unknown attribute {by!r}{extra}", field=by)
    if types[by].is_list:
        raise ValueError(
            f"cannot split by {by!r}: it is a list attribute, and a profile can hold several values"
        )
    return engine._attr_index[by]


def _check_save(engine: Engine, name: str, save: object, groups: list[str]) -> list[str]:
    """The names of the static segments to save (none when ``save`` is False)."""
    if save is False:
        return []
    if save is True:
        prefix = name
    elif isinstance(save, str) and save:
        prefix = save
    else:
        raise ValueError(f"save must be True, False or a non-empty name prefix, got {save!r}")
    names = [f"{prefix}_{group}" for group in groups]
    existing = set(engine.segments)
    for static in names:
        if static in existing:
            raise SegmentError(
                f"cannot save the split: segment {static!r} already exists "
                "(pass another prefix with save=...)"
            )
    return names


# --- stratified cuts ----------------------------------------------------------------------


def _strata(
    ids: Bitmap | FrozenBitmap, index: AttributeIndex
) -> list[tuple[Any, Bitmap | FrozenBitmap]]:
    """The members of ``ids`` by value of the attribute (sorted), then those without one."""
    found: dict[Any, list[int]] = {}
    get = index.get
    for pid in ids & index.known:
        value = get(pid)
        listed = found.get(value)
        if listed is None:
            found[value] = [pid]
        else:
            listed.append(pid)
    out: list[tuple[Any, Bitmap | FrozenBitmap]] = [
        (value, Bitmap(pids)) for value, pids in sorted(found.items(), key=lambda kv: kv[0])
    ]
    missing = ids - index.known
    if missing:
        out.append((None, missing))
    return out


def _cut(
    table: _SaltTable,
    stratum: Bitmap | FrozenBitmap,
    cuts: list[int],
    key_of: Callable[[int], str],
) -> list[Bitmap]:
    """Rank ``stratum`` by (bucket, key) and cut it at the ranks ``cuts`` (``[0, ..., n]``)."""
    n = len(stratum)
    if n <= _SORT_MAX:
        by_id = table.by_id
        ranked = sorted(stratum, key=lambda pid: (by_id[pid], key_of(pid)))
        return [Bitmap(ranked[lo:hi]) for lo, hi in itertools.pairwise(cuts)]
    # Large: find each cut's bucket by counting members per block, then per bucket;
    # only the members of a bucket that a cut falls into are sorted by key.
    coarse, fine = table.coarse, table.fine
    blocks = [
        coarse[j].intersection_cardinality(stratum) if j in coarse else 0
        for j in range(BUCKETS // _BLOCK)
    ]
    ranked_in: dict[int, list[int]] = {}

    def members_of(b: int) -> list[int]:
        found = ranked_in.get(b)
        if found is None:
            found = ranked_in[b] = sorted(fine[b] & stratum, key=key_of)
        return found

    def locate(rank: int) -> tuple[int, int]:
        """(bucket, offset): the member of that rank is ``members_of(bucket)[offset]``."""
        if rank >= n:
            return BUCKETS, 0
        seen = 0
        block = 0
        while seen + blocks[block] <= rank:
            seen += blocks[block]
            block += 1
        b = block * _BLOCK
        while True:
            count = fine[b].intersection_cardinality(stratum) if b in fine else 0
            if seen + count > rank:
                return b, rank - seen
            seen += count
            b += 1

    points = [locate(rank) for rank in cuts]
    out: list[Bitmap] = []
    for (b1, o1), (b2, o2) in itertools.pairwise(points):
        if (b1, o1) == (b2, o2):
            out.append(Bitmap())
        elif b1 == b2:
            out.append(Bitmap(members_of(b1)[o1:o2]))
        else:
            group = table.between(b1 + 1, b2 - 1) & stratum
            group.update(members_of(b1)[o1:])
            if b2 < BUCKETS and o2:
                group.update(members_of(b2)[:o2])
            out.append(group)
    return out


# --- results ------------------------------------------------------------------------------


@attrs.frozen
class SampleRatioCheck:
    """A sample-ratio-mismatch check: chi-square goodness of fit of group counts.

    ``statistic`` is ``Σ (observed - expected)**2 / expected`` over the groups with a
    positive expected count, ``df`` their number minus one, ``p_value`` the chance of
    a statistic at least this large if members were assigned with the expected
    ratios, and ``ok`` is ``p_value >= alpha``. With fewer than two such groups
    there is nothing to test: statistic 0, ``df`` 0, p-value 1.

    >>> check = SampleRatioCheck.of({"a": 5_150, "b": 4_850}, {"a": 5_000, "b": 5_000})
    >>> round(check.statistic, 6), check.df, round(check.p_value, 4), check.ok
    (9.0, 1, 0.0027, True)
    >>> check.with_alpha(0.01).ok
    False

    .. versionadded:: 0.1.0
    """

    statistic: float
    df: int
    p_value: float
    alpha: float = SRM_ALPHA
    ok: bool = True

    @classmethod
    def of(
        cls,
        observed: Mapping[str, int],
        expected: Mapping[str, float],
        alpha: float = SRM_ALPHA,
    ) -> SampleRatioCheck:
        """Test ``observed`` counts against ``expected`` counts (same groups).

        >>> SampleRatioCheck.of({"a": 0}, {"a": 0.0})
        SampleRatioCheck(statistic=0.0, df=0, p_value=1.0, alpha=0.001, ok=True)
        """
        _check_alpha(alpha)
        if set(observed) != set(expected):
            raise ValueError("observed and expected counts must name the same groups")
        statistic = 0.0
        cells = 0
        for group, e in expected.items():
            o = observed[group]
            if e < 0 or o < 0:
                raise ValueError(f"group {group!r}: counts must not be negative")
            if e > 0:
                statistic += (o - e) ** 2 / e
                cells += 1
            elif o > 0:
                statistic = math.inf  # members where none were expected
        df = max(cells - 1, 0)
        if math.isinf(statistic):
            p_value = 0.0
        elif df:
            p_value = chi2_sf(statistic, df)
        else:
            p_value = 1.0
        return cls(statistic, df, p_value, alpha, p_value >= alpha)

    def with_alpha(self, alpha: float) -> SampleRatioCheck:
        """The same test judged at another significance level."""
        _check_alpha(alpha)
        return attrs.evolve(self, alpha=alpha, ok=self.p_value >= alpha)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict of the fields.

        >>> sorted(SampleRatioCheck.of({"a": 1}, {"a": 1.0}).to_dict())
        ['alpha', 'df', 'ok', 'p_value', 'statistic']
        """
        return {
            "statistic": self.statistic,
            "df": self.df,
            "p_value": self.p_value,
            "alpha": self.alpha,
            "ok": self.ok,
        }


def _check_alpha(alpha: float) -> None:
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 < alpha < 1:
        raise ValueError(f"alpha must be a number between 0 and 1, got {alpha!r}")


def _json_value(value: Any) -> Any:
    if isinstance(value, date):  # and datetime
        return value.isoformat()
    return value


def _json_number(value: float | None) -> int | float | None:
    if value is None or isinstance(value, int):
        return value
    return float(value)


def _show_number(value: float) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


@attrs.frozen(repr=False)
class Split(Mapping[str, Members], Frames):
    """The groups of a split segment: a read-only mapping ``group -> Members``.

    ``dict(split)`` gives the members of each group (in the order given, the
    holdout last). Besides:

    * ``segment``, ``salt``, ``by`` and ``holdout`` (the percentage asked for):
      the arguments of :meth:`segkit.Engine.split`; ``weights`` the groups' weights;
    * ``buckets``: each group's inclusive bucket range ``(low, high)`` under
      ``salt``, ``None`` for an empty group or a stratified split; the holdout's
      range is under ``salt + ":holdout"``;
    * ``counts`` and ``expected``: the members per group, and how many the weights
      give (``expected`` uses each group's share of the buckets, or of the weights
      when stratified, times the segment's size);
    * ``srm``: the :class:`SampleRatioCheck` of ``counts`` against ``expected``;
    * ``strata``: for a stratified split, the counts per group in each stratum (by
      attribute value; ``None`` for the members without a value);
    * ``saved``: the static segments saved with ``save=``.

    :meth:`to_pandas` and :meth:`to_polars` give one row per group (``group``,
    ``weight``, bucket range ``low``/``high``, ``count``, ``share`` of the
    segment, ``expected``); a notebook shows the table in HTML.

    >>> import segkit as sk
    >>> engine = sk.Engine(sk.Schema(attributes={"plan": "string"}))
    >>> _ = engine.upsert_many({f"c-{i}": {"plan": "pro"} for i in range(200)})
    >>> _ = engine.define("pro", 'plan = "pro"')
    >>> split = engine.split("pro", {"a": 50, "b": 50}, salt="exp-1", holdout=10)
    >>> split
    Split of 'pro' (200 members) with salt 'exp-1': SRM p=0.4298, ok
      group    weight  buckets     count  expected
      a            50  0..4999        82      90.0
      b            50  5000..9999     94      90.0
      holdout     10%  0..999*        24      20.0
      * holdout buckets are under the salt 'exp-1:holdout'
    >>> list(split), len(split["a"])
    (['a', 'b', 'holdout'], 82)

    .. versionadded:: 0.1.0
    """

    segment: str
    salt: str
    by: str | None
    holdout: float | None
    weights: Mapping[str, float]
    buckets: Mapping[str, tuple[int, int] | None]
    counts: Mapping[str, int]
    expected: Mapping[str, float]
    srm: SampleRatioCheck
    strata: Mapping[Any, Mapping[str, int]] = attrs.field(factory=lambda: MappingProxyType({}))
    saved: tuple[str, ...] = ()
    _groups: Mapping[str, Members] = attrs.field(
        factory=lambda: MappingProxyType({}), eq=False, alias="_groups"
    )

    def __getitem__(self, group: str) -> Members:
        try:
            return self._groups[group]
        except KeyError:
            shown = ", ".join(repr(g) for g in self._groups)
            raise KeyError(f"no group {group!r} in this split (its groups: {shown})") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._groups)

    def __len__(self) -> int:
        return len(self._groups)

    @property
    def groups(self) -> tuple[str, ...]:
        """The group names, in order (the holdout last)."""
        return tuple(self._groups)

    def rule(self, group: str) -> str:
        """Rule text selecting ``group`` among the segment's members (``bucket`` clauses).

        ``engine.query(split.rule(g)) & engine.members(segment)`` is the group
        ``g``; add ``in segment "…" and`` in front for a standalone segment rule.

        >>> import segkit as sk
        >>> engine = sk.Engine(sk.Schema(attributes={}))
        >>> _ = engine.upsert_many({"a": {}, "b": {}})
        >>> _ = engine.define_static("all", ["a", "b"])
        >>> split = engine.split("all", {"x": 1, "y": 3}, salt="s", holdout=5)
        >>> split.rule("y")
        'bucket("s") in 2500..9999 and not bucket("s:holdout") in 0..499'
        >>> split.rule("holdout")
        'bucket("s:holdout") in 0..499'
        """
        if group not in self._groups:
            self[group]  # raises the KeyError
        if self.by is not None:
            raise ValueError(
                f"a split stratified by {self.by!r} has no bucket rule: each stratum's "
                "groups come from ranking its members"
            )
        from segkit.dsl.builder import bucket as bucket_rule

        held = self.buckets.get(HOLDOUT) if self.holdout is not None else None
        holdout_rule = None
        if held is not None:
            holdout_rule = bucket_rule(self.salt + HOLDOUT_SALT_SUFFIX).between(*held)
            if group == HOLDOUT:
                return str(holdout_rule)
        found = self.buckets[group]
        if found is None:
            raise ValueError(
                f"group {group!r} has weight 0: it owns no bucket, so no rule selects it"
            )
        rule = bucket_rule(self.salt).between(*found)
        return str(rule if holdout_rule is None else rule & ~holdout_rule)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict (without the members; dates in ISO format).

        >>> import segkit as sk
        >>> engine = sk.Engine(sk.Schema(attributes={}))
        >>> _ = engine.upsert_many({"a": {}, "b": {}})
        >>> _ = engine.define_static("all", ["a", "b"])
        >>> engine.split("all", {"x": 1}, salt="s").to_dict()["groups"]
        [{'name': 'x', 'weight': 1, 'buckets': [0, 9999], 'count': 2, 'expected': 2.0}]
        """
        rows = []
        for group in self._groups:
            found = self.buckets.get(group)
            weight = self.holdout if group == HOLDOUT and self.holdout is not None else None
            rows.append(
                {
                    "name": group,
                    "weight": _json_number(self.weights.get(group, weight)),
                    "buckets": None if found is None else list(found),
                    "count": self.counts[group],
                    "expected": self.expected[group],
                }
            )
        return {
            "segment": self.segment,
            "salt": self.salt,
            "by": self.by,
            "holdout": _json_number(self.holdout),
            "groups": rows,
            "srm": self.srm.to_dict(),
            "strata": [
                {"value": _json_value(value), "counts": dict(counts)}
                for value, counts in self.strata.items()
            ],
            "saved": list(self.saved),
        }

    def _display(self) -> tuple[str, list[tuple[str, str, str, str, str]], list[str]]:
        """The head line, the rows as text and the notes of :meth:`table`."""
        size = sum(self.counts.values())
        head = f"Split of {self.segment!r} ({size} members) with salt {self.salt!r}"
        if self.by is not None:
            head += f", by {self.by!r} ({len(self.strata)} strata)"
        head += f": SRM p={self.srm.p_value:.4f}, {'ok' if self.srm.ok else 'MISMATCH'}"
        rows = []
        for group in self._groups:
            if group == HOLDOUT and self.holdout is not None:
                weight = f"{_show_number(self.holdout)}%"
                found = self.buckets[group]
                span = "-" if found is None else f"{found[0]}..{found[1]}*"
            else:
                weight = _show_number(self.weights[group])
                found = self.buckets.get(group)
                span = "-" if found is None else f"{found[0]}..{found[1]}"
            rows.append(
                (group, weight, span, str(self.counts[group]), f"{self.expected[group]:.1f}")
            )
        notes = []
        if self.holdout is not None:
            notes.append(
                f"* holdout buckets are under the salt {self.salt + HOLDOUT_SALT_SUFFIX!r}"
            )
        return head, rows, notes

    def table(self) -> str:
        """The split as plain text (what ``repr`` shows).

        >>> import segkit as sk
        >>> engine = sk.Engine(sk.Schema(attributes={}))
        >>> _ = engine.upsert_many({"a": {}, "b": {}})
        >>> _ = engine.define_static("all", ["a", "b"])
        >>> print(engine.split("all", {"x": 1}, salt="s").table())
        Split of 'all' (2 members) with salt 's': SRM p=1.0000, ok
          group  weight  buckets  count  expected
          x           1  0..9999      2       2.0
        """
        head, rows, notes = self._display()
        widths = [
            max(len(title), *(len(row[i]) for row in rows))
            for i, title in enumerate(("group", "weight", "buckets", "count", "expected"))
        ]
        lines = [
            head,
            f"  {'group':<{widths[0]}}  {'weight':>{widths[1]}}  {'buckets':<{widths[2]}}"
            f"  {'count':>{widths[3]}}  {'expected':>{widths[4]}}",
        ]
        for group, weight, span, count, expected in rows:
            lines.append(
                f"  {group:<{widths[0]}}  {weight:>{widths[1]}}  {span:<{widths[2]}}"
                f"  {count:>{widths[3]}}  {expected:>{widths[4]}}"
            )
        lines += [f"  {note}" for note in notes]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return self.table()

    def _repr_html_(self) -> str:
        """The notebook view: :meth:`table` as an HTML table."""
        head, rows, notes = self._display()
        columns = [("group", "l"), ("weight", "r"), ("buckets", "l"), ("count", "r")]
        return html_table([head], [*columns, ("expected", "r")], rows, notes)

    def _columns(self) -> Columns:
        """One row per group (the holdout last): weight, bucket range, count, share, expected.

        ``weight`` is the holdout's percentage on its row (as in :meth:`to_dict`);
        ``low`` and ``high`` are the bucket range (missing for an empty group or a
        stratified split); ``share`` is the group's count over the segment's size.
        """
        groups = list(self._groups)
        total = sum(self.counts.values())
        weights = [
            self.holdout if g == HOLDOUT and self.holdout is not None else self.weights[g]
            for g in groups
        ]
        spans = [self.buckets.get(g) for g in groups]
        return typed_columns(
            [
                ("group", "str", groups),
                ("weight", "float", [float(w) for w in weights]),
                ("low", "int", [None if b is None else b[0] for b in spans]),
                ("high", "int", [None if b is None else b[1] for b in spans]),
                ("count", "int", [self.counts[g] for g in groups]),
                ("share", "float", [self.counts[g] / total if total else 0.0 for g in groups]),
                ("expected", "float", [self.expected[g] for g in groups]),
            ]
        )


# --- the split ----------------------------------------------------------------------------


def split_segment(
    engine: Engine,
    name: str,
    groups: Mapping[str, float],
    *,
    salt: str,
    by: str | None = None,
    holdout: float | None = None,
    save: bool | str = False,
) -> Split:
    """Split segment ``name`` of ``engine``: what :meth:`segkit.Engine.split` runs.

    >>> import segkit as sk
    >>> engine = sk.Engine(sk.Schema(attributes={}))
    >>> _ = engine.upsert_many({"a": {}, "b": {}})
    >>> _ = engine.define_static("all", ["a", "b"])
    >>> dict(split_segment(engine, "all", {"x": 1}, salt="s"))
    {'x': Members(2: 'a', 'b')}
    """
    seg = engine._segment(name)
    if not isinstance(salt, str):
        raise TypeError(f"salt must be a string, got {type(salt).__name__}")
    if not salt:
        raise ValueError("salt must not be empty: use one salt per experiment")
    weights = _check_groups(groups, holdout is not None)
    held_buckets = _check_holdout(holdout)
    index = _check_by(engine, by)
    ranges = _ranges(weights)
    names = [*weights, *([HOLDOUT] if held_buckets else [])]
    static_names = _check_save(engine, name, save, names)
    # --- nothing below raises on bad input -----------------------------------------------
    ids = seg.ids
    idmap = engine._ids
    cache = engine._split_buckets()
    renames = engine._renames
    total = len(ids)
    found, shares, ranges, strata = _assign(
        ids,
        idmap,
        salt,
        weights,
        ranges,
        held_buckets,
        lambda salted: cache.table(salted, idmap, renames=renames),
        index,
    )
    counts = {group: len(bm) for group, bm in found.items()}
    expected = {group: float(total * share) for group, share in shares.items()}
    members = {group: Members(bm, idmap) for group, bm in found.items()}
    saved = _save(engine, name, members, static_names) if static_names else ()
    return Split(
        name,
        salt,
        by,
        holdout,
        MappingProxyType(dict(weights)),
        MappingProxyType(ranges),
        MappingProxyType(counts),
        MappingProxyType(expected),
        SampleRatioCheck.of(counts, expected),
        strata=MappingProxyType({v: MappingProxyType(c) for v, c in strata.items()}),
        saved=saved,
        _groups=MappingProxyType(members),
    )


def _assign(
    ids: Bitmap | FrozenBitmap,
    idmap: IdMap,
    salt: str,
    weights: Mapping[str, float],
    ranges: dict[str, tuple[int, int] | None],
    held_buckets: int,
    table_of: Callable[[str], _SaltTable],
    index: AttributeIndex | None = None,
) -> tuple[
    dict[str, Bitmap],
    dict[str, Fraction],
    dict[str, tuple[int, int] | None],
    dict[Any, dict[str, int]],
]:
    """Each group's ids, its expected share, its bucket range and the per-stratum counts.

    ``table_of(salt)`` gives the bucket table of a salt (cached or not); with
    ``index`` the cuts are made per stratum of that attribute.
    """
    rest: Bitmap | FrozenBitmap = ids
    found: dict[str, Bitmap] = {}
    held: Bitmap | None = None
    if held_buckets:
        held_table = table_of(salt + HOLDOUT_SALT_SUFFIX)
        held_table.cover(ids, idmap)
        held = held_table.between(0, held_buckets - 1) & ids
        rest = ids - held
    table = table_of(salt)
    table.cover(rest, idmap)
    kept = 1 - Fraction(held_buckets, BUCKETS)
    strata: dict[Any, dict[str, int]] = {}
    if index is None:
        for group, span in ranges.items():
            found[group] = Bitmap() if span is None else table.between(*span) & rest
        shares = {
            group: kept * Fraction(0 if span is None else span[1] - span[0] + 1, BUCKETS)
            for group, span in ranges.items()
        }
    else:
        for group in weights:
            found[group] = Bitmap()
        for value, stratum in _strata(rest, index):
            cuts = _boundaries(weights, len(stratum), stratum_offset(salt, value))
            parts = _cut(table, stratum, cuts, idmap.key_of)
            strata[value] = {}
            for group, part in zip(weights, parts, strict=True):
                found[group] |= part
                strata[value][group] = len(part)
        exact = {group: _exact(w) for group, w in weights.items()}
        weight_total = sum(exact.values(), Fraction(0))
        shares = {group: kept * w / weight_total for group, w in exact.items()}
        ranges = dict.fromkeys(weights)
    if held is not None:
        found[HOLDOUT] = held
        shares[HOLDOUT] = Fraction(held_buckets, BUCKETS)
        ranges[HOLDOUT] = (0, held_buckets - 1)
    return found, shares, ranges, strata


def _save(
    engine: Engine, name: str, members: Mapping[str, Members], static_names: list[str]
) -> tuple[str, ...]:
    """Save each group as a static segment, all or nothing; record the parent's use."""
    from segkit.storage import UsageRecord, record_usage

    object_type = engine.segment(name).object_type
    created: list[str] = []
    try:
        for static, group in zip(static_names, members.values(), strict=True):
            engine.define_static(static, group, object_type=object_type)
            created.append(static)
    except BaseException:
        for static in reversed(created):
            with contextlib.suppress(Exception):  # best effort: the first error matters
                engine.drop(static)
        raise
    at = engine.now()
    for static in static_names:
        record_usage(
            engine.storage,
            UsageRecord(
                name, tool="segkit", objective="segmentation", ref=f"split:{static}", at=at
            ),
        )
    return tuple(static_names)


def split_members(
    name: str,
    members: Members,
    groups: Mapping[str, float],
    *,
    salt: str,
    holdout: float | None = None,
) -> Split:
    """Split ``members`` (any :class:`~segkit.Members`, no Engine needed) like
    :meth:`segkit.Engine.split`: the same buckets, ranges, holdout and SRM check.

    ``name`` labels the split (its ``segment``). Stratified splits (``by=``) need an
    Engine's attribute index and are not offered here; nothing is saved. This is
    what :meth:`segkit.spark.SparkMemberships.split` runs on bitmaps from Spark.

    >>> import segkit as sk
    >>> engine = sk.Engine(sk.Schema(attributes={}))
    >>> _ = engine.upsert_many({f"c-{i}": {} for i in range(300)})
    >>> _ = engine.define_static("everyone", [f"c-{i}" for i in range(300)])
    >>> mine = split_members("everyone", engine.members("everyone"),
    ...                      {"control": 50, "test": 50}, salt="exp-7")
    >>> dict(mine.counts) == dict(engine.split("everyone", {"control": 50, "test": 50},
    ...                                         salt="exp-7").counts)
    True

    .. versionadded:: 0.1.0
    """
    if not isinstance(members, Members):
        raise TypeError(f"members must be segkit.Members, got {type(members).__name__}")
    if not isinstance(salt, str):
        raise TypeError(f"salt must be a string, got {type(salt).__name__}")
    if not salt:
        raise ValueError("salt must not be empty: use one salt per experiment")
    weights = _check_groups(groups, holdout is not None)
    held_buckets = _check_holdout(holdout)
    ranges = _ranges(weights)
    ids, idmap = members.ids, members._idmap
    found, shares, ranges, _ = _assign(ids, idmap, salt, weights, ranges, held_buckets, _SaltTable)
    counts = {group: len(bm) for group, bm in found.items()}
    expected = {group: float(len(ids) * share) for group, share in shares.items()}
    return Split(
        name,
        salt,
        None,
        holdout,
        MappingProxyType(dict(weights)),
        MappingProxyType(ranges),
        MappingProxyType(counts),
        MappingProxyType(expected),
        SampleRatioCheck.of(counts, expected),
        _groups=MappingProxyType({g: Members(bm, idmap) for g, bm in found.items()}),
    )
