"""How N segments overlap: every exclusive region of the Venn/UpSet diagram, and pairs.

An *exclusive region* is a non-empty set of segments ``T``: its members are in every
segment of ``T`` and in none of the others. The ``2**N - 1`` regions partition the
profiles that are in at least one segment, so their counts add up to the size of
the union. :func:`overlap` (usually called as :meth:`segkit.Engine.overlap`)
returns an :class:`OverlapReport` with the regions sorted like an UpSet plot,
per-segment totals, and the pairwise intersection counts with Jaccard and
containment matrices.

How the counts are computed (chosen by measurement, see ``docs/analysis.md``):

* pairwise counts use ``intersection_cardinality``: no bitmap is built;
* up to :data:`MOBIUS_MAX` segments, region counts come from the cardinality of
  every intersection of segments (Möbius inversion, like inclusion-exclusion):
  ``|A ∩ B ∩ C|`` is counted from the bitmap ``A ∩ B`` without building the
  three-way bitmap; members are computed when first asked for;
* beyond that, the union is refined one segment at a time (each part splits into
  the ids inside and outside the next segment), which costs one pass per segment
  and never visits an empty region.

>>> import segkit as sk
>>> engine = sk.Engine(sk.Schema(attributes={"plan": "string", "age": "int"}))
>>> _ = engine.upsert_many({"a": {"plan": "pro", "age": 30}, "b": {"plan": "pro", "age": 17},
...                         "c": {"plan": "free", "age": 40}, "d": {"age": 12}})
>>> _ = engine.define("pro", 'plan = "pro"')
>>> _ = engine.define("adults", "age >= 18")
>>> report = engine.overlap(["pro", "adults"])
>>> [(r.segments, r.count) for r in report.regions]
[(('pro',), 1), (('adults',), 1), (('pro', 'adults'), 1)]
>>> report.region("pro", "adults").keys()
['a']

.. versionadded:: 0.1.0
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final, Literal

import attrs

from segkit.analysis._html import Columns, Frames, html_table, typed_columns
from segkit.index import Bitmap, FrozenBitmap, Members

if TYPE_CHECKING:
    from segkit.records import IdMap

__all__ = ["MAX_REGION_SEGMENTS", "MOBIUS_MAX", "OverlapReport", "Region", "check_names", "overlap"]

#: At most this many segments get their exclusive regions (``2**20 - 1`` of them);
#: beyond, pass ``pairwise=True``.
MAX_REGION_SEGMENTS: Final = 20
#: Up to this many segments, region counts come from intersection counts (Möbius
#: inversion); beyond, from refining the union segment by segment.
MOBIUS_MAX: Final = 8
#: ``repr`` shows at most this many rows.
_SHOWN: Final = 20

SortKey = Literal["count", "degree", "names"]
_SORTS: Final = ("count", "degree", "names")


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def check_names(names: Iterable[str], *, pairwise: bool = False) -> tuple[str, ...]:
    """Validate the segment names of an overlap: one or more, distinct, strings.

    More than :data:`MAX_REGION_SEGMENTS` names need ``pairwise=True``.

    >>> check_names(["a", "b"])
    ('a', 'b')
    >>> check_names(["a", "b", "a"])
    Traceback (most recent call last):
    ...
    ValueError: overlap names segment 'a' more than once
    """
    if isinstance(names, str):
        raise TypeError(
            f"names must be an iterable of segment names, not the string {names!r} "
            f"(did you mean [{names!r}]?)"
        )
    chosen = tuple(names)
    if not chosen:
        raise ValueError("overlap needs at least one segment name")
    for name in chosen:
        if not isinstance(name, str):
            raise TypeError(f"a segment name must be a string, got {name!r}")
    seen: set[str] = set()
    for name in chosen:
        if name in seen:
            raise ValueError(f"overlap names segment {name!r} more than once")
        seen.add(name)
    n = len(chosen)
    if n > MAX_REGION_SEGMENTS and not pairwise:
        raise ValueError(
            f"an overlap of {n} segments has up to 2**{n} - 1 = {2**n - 1:,} regions; "
            f"regions are computed for at most {MAX_REGION_SEGMENTS} segments: "
            "pass pairwise=True for the pairwise counts, Jaccard and containment only"
        )
    return chosen


def _positions(mask: int, n: int) -> tuple[int, ...]:
    return tuple(i for i in range(n) if mask >> i & 1)


def _mobius_counts(bitmaps: tuple[FrozenBitmap, ...]) -> list[int]:
    """Exclusive-region counts by mask (index 0 unused), from intersection counts.

    ``g[T] = |∩ T|`` for every non-empty mask ``T``: the bitmap ``∩ T`` is built
    only when a larger mask extends it (adding a segment with a higher bit); the
    masks that include the last segment are only counted. Then
    ``f[T] = Σ_{S ⊇ T} (-1)**(|S| - |T|) g[S]`` (the superset Möbius transform).
    """
    n = len(bitmaps)
    full = 1 << n
    last = n - 1
    g = [0] * full
    inter: list[FrozenBitmap | Bitmap | None] = [None] * full
    for i, bm in enumerate(bitmaps):
        g[1 << i] = len(bm)
        inter[1 << i] = bm
    for mask in range(3, full):
        if not mask & (mask - 1):
            continue  # a single segment
        high = mask.bit_length() - 1
        prev = mask ^ (1 << high)
        if not g[prev]:
            continue  # an empty intersection stays empty
        base = inter[prev]
        assert base is not None
        if high == last:
            g[mask] = base.intersection_cardinality(bitmaps[high])
        else:
            found = base & bitmaps[high]
            g[mask] = len(found)
            inter[mask] = found
    for i in range(n):
        bit = 1 << i
        for mask in range(1, full):
            if not mask & bit:
                g[mask] -= g[mask | bit]
    return g


def _refine(bitmaps: tuple[FrozenBitmap, ...]) -> dict[int, Bitmap]:
    """The non-empty exclusive regions by mask: the union split by each segment in turn."""
    parts: dict[int, Bitmap] = {0: Bitmap.union(Bitmap(), *bitmaps)}  # a mutable copy
    for i, segment in enumerate(bitmaps):
        bit = 1 << i
        refined: dict[int, Bitmap] = {}
        for mask, part in parts.items():
            inside = part.intersection_cardinality(segment)
            if not inside:
                refined[mask] = part
            elif inside == len(part):
                refined[mask | bit] = part
            else:
                refined[mask | bit] = part & segment
                part -= segment  # ours: built by this function
                refined[mask] = part
        parts = refined
    parts.pop(0, None)  # only when every segment is empty
    return parts


class _Source:
    """The segments' bitmaps behind a report; computes (and keeps) region members."""

    __slots__ = ("bitmaps", "idmap", "known")

    def __init__(
        self, bitmaps: tuple[FrozenBitmap, ...], idmap: IdMap, known: dict[int, Bitmap]
    ) -> None:
        self.bitmaps = bitmaps
        self.idmap = idmap
        self.known = known  # region members by mask, computed so far

    def members(self, mask: int) -> Members:
        found = self.known.get(mask)
        if found is None:
            found = self.known[mask] = self.select(mask, ~mask)
        return Members(found, self.idmap)

    def select(self, inside: int, outside: int) -> Bitmap:
        """Ids in every segment of mask ``inside`` and in no segment of mask ``outside``."""
        bitmaps = self.bitmaps
        n = len(bitmaps)
        chosen = sorted((bitmaps[i] for i in _positions(inside, n)), key=len)
        found = Bitmap(chosen[0])
        for bm in chosen[1:]:
            if not found:
                break
            found &= bm
        for i in _positions(outside & ((1 << n) - 1), n):
            if not found:
                break
            found -= bitmaps[i]
        return found


@attrs.frozen
class Region:
    """One exclusive region of an overlap: profiles in exactly ``segments``.

    ``segments`` are listed in the report's order; ``count`` is the number of
    members, and ``members`` the :class:`~segkit.Members` themselves (computed when
    first read). ``degree`` is the number of segments.

    >>> import segkit as sk
    >>> engine = sk.Engine(sk.Schema(attributes={"n": "int"}))
    >>> _ = engine.upsert_many({"a": {"n": 1}, "b": {"n": 2}})
    >>> _ = engine.define("low", "n <= 1"), engine.define("any", "n >= 0")
    >>> region = engine.overlap(["low", "any"]).regions[-1]
    >>> region
    Region(segments=('low', 'any'), count=1)
    >>> region.degree, region.members
    (2, Members(1: 'a'))

    .. versionadded:: 0.1.0
    """

    segments: tuple[str, ...]
    count: int
    _mask: int = attrs.field(eq=False, repr=False, alias="_mask")
    _source: _Source = attrs.field(eq=False, repr=False, alias="_source")

    @property
    def degree(self) -> int:
        """The number of segments the members are in."""
        return len(self.segments)

    @property
    def members(self) -> Members:
        """The profiles in exactly these segments."""
        return self._source.members(self._mask)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict: ``{"segments": [...], "count": n}``."""
        return {"segments": list(self.segments), "count": self.count}


def _sort_key(by: str, n: int) -> Callable[[Region], tuple[Any, ...]]:
    def positions(region: Region) -> tuple[int, ...]:
        return _positions(region._mask, n)

    if by == "count":
        return lambda r: (-r.count, r.degree, positions(r))
    if by == "degree":
        return lambda r: (r.degree, -r.count, positions(r))
    return positions


def _frozen_matrix(rows: dict[str, dict[str, Any]]) -> Mapping[str, Mapping[str, Any]]:
    return MappingProxyType({k: MappingProxyType(v) for k, v in rows.items()})


@attrs.frozen(repr=False)
class OverlapReport(Frames):
    """The overlap of N segments: exclusive regions, totals, pairwise counts.

    * ``names``: the segments, in the order asked for;
    * ``totals``: each segment's size;
    * ``regions``: every non-empty exclusive region (all ``2**N - 1`` with
      ``empty=True``), sorted like an UpSet plot: largest count first, then fewer
      segments first, then by the positions of their segments in ``names``. Empty
      when ``pairwise_only`` (see :meth:`segkit.Engine.overlap`);
    * ``pairwise``: ``pairwise[a][b] = |a ∩ b|``; the diagonal holds the totals.

    :meth:`jaccard` and :meth:`containment` derive matrices from those counts;
    :meth:`region` drills down to members; :meth:`sorted` reorders the regions.
    :meth:`to_pandas` and :meth:`to_polars` give one row per region: a bool
    column per segment (is the region in it), ``count`` and ``share`` (of the
    union); a notebook shows the table in HTML.

    >>> import segkit as sk
    >>> engine = sk.Engine(sk.Schema(attributes={"n": "int"}))
    >>> _ = engine.upsert_many({k: {"n": i} for i, k in enumerate("abcdef")})
    >>> _ = engine.define("low", "n < 3"), engine.define("even", "n in [0, 2, 4]")
    >>> report = engine.overlap(["low", "even"])
    >>> report
    OverlapReport: 2 segments (low: 3, even: 3), 4 profiles in any
      count  region
          2  low & even
          1  low
          1  even
    >>> report.pairwise["low"]["even"], report.jaccard()["low"]["even"]
    (2, 0.5)
    >>> report.union
    4

    .. versionadded:: 0.1.0
    """

    names: tuple[str, ...]
    totals: Mapping[str, int]
    pairwise: Mapping[str, Mapping[str, int]]
    regions: tuple[Region, ...]
    pairwise_only: bool = False
    _source: _Source = attrs.field(eq=False, repr=False, alias="_source", kw_only=True)

    @property
    def union(self) -> int:
        """The number of profiles in at least one of the segments."""
        if not self.pairwise_only:
            return sum(r.count for r in self.regions)
        return len(Bitmap.union(*self._source.bitmaps))

    def jaccard(self) -> dict[str, dict[str, float]]:
        """``|a & b| / |a | b|`` (intersection over union) for every pair, 1.0 on the diagonal.

        Two empty segments are identical sets: their index is 1.0.

        >>> import segkit as sk
        >>> engine = sk.Engine(sk.Schema(attributes={"n": "int"}))
        >>> _ = engine.upsert_many({k: {"n": i} for i, k in enumerate("abcd")})
        >>> _ = engine.define("low", "n < 2"), engine.define("mid", "n in [1, 2]")
        >>> engine.overlap(["low", "mid"]).jaccard()
        {'low': {'low': 1.0, 'mid': 0.3333333333333333}, 'mid': {'low': 0.3333333333333333, 'mid': 1.0}}
        """
        totals = self.totals
        out: dict[str, dict[str, float]] = {}
        for a in self.names:
            row = out[a] = {}
            for b in self.names:
                both = self.pairwise[a][b]
                either = totals[a] + totals[b] - both
                row[b] = both / either if either else 1.0
        return out

    def containment(self) -> dict[str, dict[str, float]]:
        """``containment[a][b] = |a ∩ b| / |a|``: the share of ``a`` that is also in ``b``.

        An empty ``a`` is contained in every segment: its row is all 1.0.

        >>> import segkit as sk
        >>> engine = sk.Engine(sk.Schema(attributes={"n": "int"}))
        >>> _ = engine.upsert_many({k: {"n": i} for i, k in enumerate("abcd")})
        >>> _ = engine.define("low", "n < 2"), engine.define("all", "n >= 0")
        >>> engine.overlap(["low", "all"]).containment()
        {'low': {'low': 1.0, 'all': 1.0}, 'all': {'low': 0.5, 'all': 1.0}}
        """
        out: dict[str, dict[str, float]] = {}
        for a in self.names:
            size = self.totals[a]
            out[a] = {b: self.pairwise[a][b] / size if size else 1.0 for b in self.names}
        return out

    def _mask_of(self, names: Iterable[str], what: str) -> int:
        if isinstance(names, str):
            raise TypeError(
                f"{what} must be an iterable of segment names, not the string {names!r}"
            )
        index = {name: i for i, name in enumerate(self.names)}
        mask = 0
        for name in names:
            i = index.get(name) if isinstance(name, str) else None
            if i is None:
                shown = ", ".join(repr(n) for n in self.names)
                raise ValueError(f"segment {name!r} is not in this overlap (its segments: {shown})")
            if mask >> i & 1:
                raise ValueError(f"segment {name!r} is named more than once")
            mask |= 1 << i
        return mask

    def region(self, *names: str, not_: Iterable[str] | None = None) -> Members:
        """The members of a region, chosen by segment names.

        * ``region("a", "b")`` (``not_`` omitted): the *exclusive* region: in ``a``
          and ``b`` and in none of the report's other segments, the members of the
          :class:`Region` with those segments;
        * ``region("a", "b", not_=["c"])``: in ``a`` and ``b``, not in ``c``, and
          unconstrained by the other segments (``not_=[]``: the plain intersection).

        Works in ``pairwise_only`` reports too. Every name must be one of ``names``,
        at most once, and not both kept and excluded.

        >>> import segkit as sk
        >>> engine = sk.Engine(sk.Schema(attributes={"n": "int"}))
        >>> _ = engine.upsert_many({k: {"n": i} for i, k in enumerate("abcdef")})
        >>> for name, rule in [("x", "n < 4"), ("y", "n >= 2"), ("z", "n = 3")]:
        ...     _ = engine.define(name, rule)
        >>> report = engine.overlap(["x", "y", "z"])
        >>> report.region("x", "y").keys(), report.region("x", "y", not_=[]).keys()
        (['c'], ['c', 'd'])
        >>> report.region("y", not_=["x"]).keys()
        ['e', 'f']
        """
        if not names:
            raise ValueError("region() needs at least one segment name")
        inside = self._mask_of(names, "names")
        if not_ is None:
            return self._source.members(inside)
        outside = self._mask_of(not_, "not_")
        both = inside & outside
        if both:
            name = self.names[both.bit_length() - 1]
            raise ValueError(f"segment {name!r} is both required and excluded")
        return Members(self._source.select(inside, outside), self._source.idmap)

    def sorted(self, by: SortKey = "count", *, reverse: bool = False) -> OverlapReport:
        """A copy with the regions in another order.

        * ``"count"`` (the default order): largest first, then fewer segments, then
          by the positions of the segments in ``names``;
        * ``"degree"``: fewer segments first, then largest first, then positions;
        * ``"names"``: by the positions of the segments in ``names``
          (``a``, ``a & b``, ``a & b & c``, ``a & c``, ``b``, …).

        ``reverse=True`` reverses the whole order.

        >>> import segkit as sk
        >>> engine = sk.Engine(sk.Schema(attributes={"n": "int"}))
        >>> _ = engine.upsert_many({k: {"n": i} for i, k in enumerate("abcdef")})
        >>> _ = engine.define("low", "n < 3"), engine.define("even", "n in [0, 2, 4]")
        >>> [r.segments for r in engine.overlap(["low", "even"]).sorted("names").regions]
        [('low',), ('low', 'even'), ('even',)]
        """
        if by not in _SORTS:
            raise ValueError(
                f"cannot sort regions by {by!r}: choose one of {', '.join(map(repr, _SORTS))}"
            )
        ordered = sorted(self.regions, key=_sort_key(by, len(self.names)), reverse=reverse)
        return attrs.evolve(self, regions=tuple(ordered))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict: names, totals, union, pairwise, jaccard, containment, regions.

        >>> import segkit as sk
        >>> engine = sk.Engine(sk.Schema(attributes={"n": "int"}))
        >>> _ = engine.upsert_many({"a": {"n": 1}})
        >>> _ = engine.define("one", "n = 1")
        >>> engine.overlap(["one"]).to_dict()["regions"]
        [{'segments': ['one'], 'count': 1}]
        """
        return {
            "names": list(self.names),
            "pairwise_only": self.pairwise_only,
            "totals": dict(self.totals),
            "union": self.union,
            "pairwise": {a: dict(row) for a, row in self.pairwise.items()},
            "jaccard": self.jaccard(),
            "containment": self.containment(),
            "regions": [r.to_dict() for r in self.regions],
        }

    def _display(self, rows: int) -> tuple[str, str, list[tuple[int, str]], int]:
        """The head line, the label column's title, the first ``rows`` rows and how many more."""
        shown = ", ".join(f"{n}: {self.totals[n]}" for n in self.names[:10])
        if len(self.names) > 10:
            shown += ", ..."
        head = f"OverlapReport: {_plural(len(self.names), 'segment')} ({shown})"
        if self.pairwise_only:
            pairs = [
                (self.pairwise[a][b], f"{a} & {b}")
                for i, a in enumerate(self.names)
                for b in self.names[i + 1 :]
            ]
            pairs.sort(key=lambda p: -p[0])
            body, label = pairs, "pair"
            head += ", pairwise only"
        else:
            body = [(r.count, " & ".join(r.segments)) for r in self.regions]
            label = "region"
            head += f", {self.union} profiles in any"
        return head, label, body[:rows], max(len(body) - rows, 0)

    def table(self, rows: int = _SHOWN) -> str:
        """The report as plain text (what ``repr`` shows): the first ``rows`` regions,
        or in a ``pairwise_only`` report the pairs, largest first.

        >>> import segkit as sk
        >>> engine = sk.Engine(sk.Schema(attributes={"n": "int"}))
        >>> _ = engine.upsert_many({k: {"n": i} for i, k in enumerate("abc")})
        >>> _ = engine.define("low", "n < 2"), engine.define("high", "n > 0")
        >>> print(engine.overlap(["low", "high"], pairwise=True).table())
        OverlapReport: 2 segments (low: 2, high: 2), pairwise only
          count  pair
              1  low & high
        """
        head, label, body, more = self._display(rows)
        width = max([5, *(len(str(c)) for c, _ in body)])
        lines = [head, f"  {'count':>{width}}  {label}"]
        lines += [f"  {c:>{width}}  {text}" for c, text in body]
        if more:
            lines.append(f"  ... {more} more")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return self.table()

    def _repr_html_(self) -> str:
        """The notebook view: :meth:`table` as an HTML table (the first 20 rows)."""
        head, label, body, more = self._display(_SHOWN)
        return html_table(
            [head],
            [("count", "r"), (label, "l")],
            [[str(c), text] for c, text in body],
            [f"... {more} more"] if more else [],
        )

    def _columns(self) -> Columns:
        """One row per region: a bool column per segment (is the region in it), count, share.

        ``share`` is the region's count over :attr:`union` (0.0 when it is 0). A
        ``pairwise_only`` report has no regions: no rows.
        """
        union = self.union
        regions = self.regions
        return typed_columns(
            [
                *((name, "bool", [name in r.segments for r in regions]) for name in self.names),
                ("count", "int", [r.count for r in regions]),
                ("share", "float", [r.count / union if union else 0.0 for r in regions]),
            ]
        )


def overlap(
    segments: Mapping[str, Members] | Iterable[tuple[str, Members]],
    *,
    empty: bool = False,
    pairwise: bool = False,
) -> OverlapReport:
    """The overlap of named :class:`~segkit.Members` of one engine (any query results).

    :meth:`segkit.Engine.overlap` calls this with segment memberships; options and
    errors are documented there.

    >>> import segkit as sk
    >>> engine = sk.Engine(sk.Schema(attributes={"n": "int"}))
    >>> _ = engine.upsert_many({k: {"n": i} for i, k in enumerate("abcd")})
    >>> report = overlap({"low": engine.query("n < 2"), "odd": engine.query("n in [1, 3]")})
    >>> [(r.segments, r.count) for r in report.regions]
    [(('low',), 1), (('odd',), 1), (('low', 'odd'), 1)]
    """
    pairs = list(segments.items() if isinstance(segments, Mapping) else segments)
    names = check_names([name for name, _ in pairs], pairwise=pairwise)
    if pairwise and empty:
        raise ValueError("empty=True lists regions, which pairwise=True does not compute")
    idmap: IdMap | None = None
    bitmaps: list[FrozenBitmap] = []
    for name, members in pairs:
        if not isinstance(members, Members):
            raise TypeError(f"segment {name!r}: expected Members, got {type(members).__name__}")
        if idmap is None:
            idmap = members._idmap
        elif members._idmap is not idmap:
            raise ValueError(f"segment {name!r}: cannot overlap Members of different engines")
        bitmaps.append(members.ids)
    assert idmap is not None  # check_names requires one name or more
    frozen = tuple(bitmaps)
    n = len(frozen)
    totals = {name: len(bm) for name, bm in zip(names, frozen, strict=True)}
    matrix: dict[str, dict[str, int]] = {name: {} for name in names}
    for i, a in enumerate(names):
        matrix[a][a] = totals[a]
        for j in range(i + 1, n):
            b = names[j]
            matrix[a][b] = matrix[b][a] = frozen[i].intersection_cardinality(frozen[j])
    # rows in the order of names
    pairwise_counts = {a: {b: matrix[a][b] for b in names} for a in names}
    known: dict[int, Bitmap] = {}
    source = _Source(frozen, idmap, known)
    regions: tuple[Region, ...] = ()
    if not pairwise:
        if n <= MOBIUS_MAX:
            counts = _mobius_counts(frozen)
            found: Iterator[tuple[int, int]] = (
                (mask, counts[mask]) for mask in range(1, 1 << n) if empty or counts[mask]
            )
        else:
            parts = _refine(frozen)
            known.update(parts)
            if empty:
                found = ((mask, len(parts.get(mask, ()))) for mask in range(1, 1 << n))
            else:
                found = ((mask, len(part)) for mask, part in parts.items())
        listed = [
            Region(tuple(names[i] for i in _positions(mask, n)), count, _mask=mask, _source=source)
            for mask, count in found
        ]
        listed.sort(key=_sort_key("count", n))
        regions = tuple(listed)
    return OverlapReport(
        names,
        MappingProxyType(totals),
        _frozen_matrix(pairwise_counts),
        regions,
        pairwise,
        _source=source,
    )
