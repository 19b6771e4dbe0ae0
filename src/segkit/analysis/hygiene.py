"""Segment hygiene: the segments that are empty, tiny, duplicated, unused or stale.

:meth:`Engine.hygiene <segkit.Engine.hygiene>` runs five checks over every
segment and returns one :class:`HygieneIssue` per finding:

========== ======================================================================
kind       the segment ...
========== ======================================================================
empty      has no members
tiny       has fewer than ``tiny`` members (100), but some
duplicate  has a Jaccard index of at least ``duplicate_jaccard`` (0.95) with
           another segment (one issue per pair; empty segments are left out)
unused     has no usage record and no segment refers to it (see
           :class:`~segkit.analysis.usage.UsageLog`)
stale      was not saved for ``stale_days`` (30) days: neither its definition nor
           its membership changed since
========== ======================================================================

The Jaccard index is computed from intersection cardinalities, so no bitmap is
built; only pairs whose sizes allow the threshold are compared (the Jaccard
index of two sets is at most the ratio of their sizes).

>>> import segkit as sk
>>> engine = sk.Engine(sk.Schema(attributes={"age": "int"}))
>>> _ = engine.upsert_many({f"c-{i}": {"age": i} for i in range(200)})
>>> _ = engine.define("adults", "age >= 18")
>>> _ = engine.define("grown_ups", "age > 17")
>>> _ = engine.define("centenarians", "age >= 100 and age < 103")
>>> _ = engine.usage.record("adults", tool="crm", objective="analytics", ref="d-1")
>>> for issue in engine.hygiene():
...     print(issue.kind, issue.segment, "|", issue.detail)
tiny centenarians | has 3 members (fewer than 100)
duplicate adults | Jaccard 1.000 with 'grown_ups' (182 members in common)
unused centenarians | has no usage record and no segment refers to it
unused grown_ups | has no usage record and no segment refers to it

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, Final

import attrs

from segkit._suggest import suggest
from segkit.analysis._html import Columns, Frames, html_table, text_table, typed_columns
from segkit.index import Members
from segkit.timeutil import ensure_aware

if TYPE_CHECKING:
    from segkit.engine import Engine

__all__ = ["HYGIENE_KINDS", "HygieneIssue", "HygieneReport", "hygiene"]

#: The checks, in the order issues are listed.
HYGIENE_KINDS: Final = ("empty", "tiny", "duplicate", "unused", "stale")


@attrs.frozen(repr=False)
class HygieneIssue:
    """One finding of :meth:`Engine.hygiene <segkit.Engine.hygiene>`.

    Attributes:
        kind: ``"empty"``, ``"tiny"``, ``"duplicate"``, ``"unused"`` or ``"stale"``.
        segment: the segment (for a duplicate pair, the first name in sort order).
        size: its current size.
        detail: one line saying what was found.
        other: the other segment of a duplicate pair, else ``None``.
        jaccard: the pair's Jaccard index for a duplicate, else ``None``.
        last_saved: when the segment was last saved, for a stale one, else ``None``.
        members: the segment's current members, as :class:`~segkit.Members`.

    >>> import segkit as sk
    >>> engine = sk.Engine(sk.Schema(attributes={}))
    >>> _ = engine.define_static("old", [])
    >>> issue = engine.hygiene(kinds=["empty"])[0]
    >>> issue
    HygieneIssue('empty', 'old', size=0, detail='has no members')
    >>> issue.to_dict()
    {'kind': 'empty', 'segment': 'old', 'size': 0, 'detail': 'has no members', 'other': None, 'jaccard': None, 'last_saved': None}

    .. versionadded:: 0.1.0
    """

    kind: str
    segment: str
    size: int
    detail: str
    other: str | None = None
    jaccard: float | None = None
    last_saved: datetime | None = None
    members: Members | None = attrs.field(default=None, eq=False)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe copy (the members are left out: see :attr:`members`)."""
        return {
            "kind": self.kind,
            "segment": self.segment,
            "size": self.size,
            "detail": self.detail,
            "other": self.other,
            "jaccard": self.jaccard,
            "last_saved": None if self.last_saved is None else self.last_saved.isoformat(),
        }

    def __repr__(self) -> str:
        return (
            f"HygieneIssue({self.kind!r}, {self.segment!r}, size={self.size}, "
            f"detail={self.detail!r})"
        )


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


class HygieneReport(tuple[HygieneIssue, ...], Frames):
    """The issues of :meth:`Engine.hygiene <segkit.Engine.hygiene>`: a tuple of
    :class:`HygieneIssue`, with a table.

    Indexing, ``len``, iteration and equality work as for the tuple of issues;
    ``repr`` shows :meth:`table`; in a notebook it is an HTML table;
    :meth:`to_pandas` / :meth:`to_polars` give one row per issue.

    >>> import segkit as sk
    >>> engine = sk.Engine(sk.Schema(attributes={"age": "int"}))
    >>> _ = engine.upsert_many({f"c-{i}": {"age": i} for i in range(50)})
    >>> _ = engine.define("kids", "age < 18")
    >>> _ = engine.define("minors", "age <= 17")
    >>> report = engine.hygiene(tiny=10)
    >>> report
    HygieneReport: 3 issues (1 duplicate, 2 unused)
      kind       segment  size  detail
      duplicate  kids       18  Jaccard 1.000 with 'minors' (18 members in common)
      unused     kids       18  has no usage record and no segment refers to it
      unused     minors     18  has no usage record and no segment refers to it
    >>> len(report), report[0].other, report == tuple(report)
    (3, 'minors', True)

    .. versionadded:: 0.1.0
    """

    __slots__ = ()

    def _summary(self) -> str:
        if not self:
            return "HygieneReport: no issues"
        counts: dict[str, int] = {}
        for issue in self:
            counts[issue.kind] = counts.get(issue.kind, 0) + 1
        kinds = ", ".join(f"{n} {kind}" for kind, n in counts.items())
        return f"HygieneReport: {_plural(len(self), 'issue')} ({kinds})"

    def _cells(self) -> list[list[str]]:
        return [[i.kind, i.segment, f"{i.size:,}", i.detail] for i in self]

    def table(self) -> str:
        """The issues as plain text (what ``repr`` shows), in their order.

        >>> import segkit as sk
        >>> print(sk.Engine(sk.Schema(attributes={})).hygiene().table())
        HygieneReport: no issues
        """
        return text_table([self._summary()], _COLUMNS, self._cells())

    def __repr__(self) -> str:
        return self.table()

    def _repr_html_(self) -> str:
        return html_table([self._summary()], _COLUMNS, self._cells())

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict: ``{"issues": [issue.to_dict(), ...]}``.

        >>> import segkit as sk
        >>> sk.Engine(sk.Schema(attributes={})).hygiene().to_dict()
        {'issues': []}
        """
        return {"issues": [issue.to_dict() for issue in self]}

    def _columns(self) -> Columns:
        return typed_columns(
            [
                ("kind", "str", [i.kind for i in self]),
                ("segment", "str", [i.segment for i in self]),
                ("size", "int", [i.size for i in self]),
                ("detail", "str", [i.detail for i in self]),
                ("other", "str", [i.other for i in self]),
                ("jaccard", "float", [i.jaccard for i in self]),
                ("last_saved", "datetime", [i.last_saved for i in self]),
            ]
        )


_COLUMNS: Final = (("kind", "l"), ("segment", "l"), ("size", "r"), ("detail", "l"))


def _kinds(kinds: Iterable[str] | None) -> frozenset[str]:
    if kinds is None:
        return frozenset(HYGIENE_KINDS)
    if isinstance(kinds, str):
        raise TypeError(f"kinds must be an iterable of check names, not the string {kinds!r}")
    chosen = list(kinds)
    for kind in chosen:
        if kind not in HYGIENE_KINDS:
            hint = suggest(kind, HYGIENE_KINDS) if isinstance(kind, str) else None
            extra = f" (did you mean {hint!r}?)" if hint else ""
            raise ValueError(
                f"unknown hygiene check {kind!r}{extra}: expected one of {', '.join(HYGIENE_KINDS)}"
            )
    return frozenset(chosen)


def _check_options(tiny: object, duplicate_jaccard: object, stale_days: object) -> None:
    if isinstance(tiny, bool) or not isinstance(tiny, int):
        raise TypeError(f"tiny must be an int, got {type(tiny).__name__}")
    if tiny < 0:
        raise ValueError(f"tiny must be at least 0, got {tiny}")
    if duplicate_jaccard is not None:
        if isinstance(duplicate_jaccard, bool) or not isinstance(duplicate_jaccard, (int, float)):
            raise TypeError(
                f"duplicate_jaccard must be a number or None, got {type(duplicate_jaccard).__name__}"
            )
        if not 0 < duplicate_jaccard <= 1:
            raise ValueError(f"duplicate_jaccard must be in (0, 1], got {duplicate_jaccard!r}")
    if stale_days is not None:
        if isinstance(stale_days, bool) or not isinstance(stale_days, (int, float)):
            raise TypeError(f"stale_days must be a number or None, got {type(stale_days).__name__}")
        if not math.isfinite(stale_days) or stale_days <= 0:
            raise ValueError(f"stale_days must be positive, got {stale_days!r}")


def hygiene(
    engine: Engine,
    *,
    now: datetime | None = None,
    tiny: int = 100,
    duplicate_jaccard: float | None = 0.95,
    stale_days: float | None = 30,
    kinds: Iterable[str] | None = None,
) -> HygieneReport:
    """The hygiene issues of ``engine``'s segments.

    This is :meth:`Engine.hygiene <segkit.Engine.hygiene>`, which documents the
    options.

    >>> import segkit as sk
    >>> hygiene(sk.Engine(sk.Schema(attributes={})), kinds=["stael"])
    Traceback (most recent call last):
    ...
    ValueError: unknown hygiene check 'stael' (did you mean 'stale'?): expected one of empty, tiny, duplicate, unused, stale

    .. versionadded:: 0.1.0
    """
    chosen = _kinds(kinds)
    _check_options(tiny, duplicate_jaccard, stale_days)
    when = engine.now() if now is None else ensure_aware(now, engine.schema.tz, "now")
    when = when.astimezone(timezone.utc)
    segments = engine._segments
    names = sorted(segments)
    sizes = {name: len(segments[name].ids) for name in names}
    members: dict[str, Members] = {}

    def members_of(name: str) -> Members:
        found = members.get(name)
        if found is None:
            found = members[name] = engine._members(segments[name].ids)
        return found

    issues: list[HygieneIssue] = []
    for name in names:
        size = sizes[name]
        if "empty" in chosen and size == 0:
            issues.append(
                HygieneIssue("empty", name, 0, "has no members", members=members_of(name))
            )
        if "tiny" in chosen and 0 < size < tiny:
            issues.append(
                HygieneIssue(
                    "tiny",
                    name,
                    size,
                    f"has {size} member{'s' if size != 1 else ''} (fewer than {tiny})",
                    members=members_of(name),
                )
            )
    if "duplicate" in chosen and duplicate_jaccard is not None:
        by_size = sorted((sizes[n], n) for n in names if sizes[n])
        for i, (small, a) in enumerate(by_size):
            ids_a = segments[a].ids
            for large, b in by_size[i + 1 :]:
                if small < duplicate_jaccard * large:
                    break  # the Jaccard index is at most small / large
                common = ids_a.intersection_cardinality(segments[b].ids)
                jaccard = common / (small + large - common)
                if jaccard >= duplicate_jaccard:
                    first, second = sorted((a, b))
                    issues.append(
                        HygieneIssue(
                            "duplicate",
                            first,
                            sizes[first],
                            f"Jaccard {jaccard:.3f} with {second!r} ({common} members in common)",
                            other=second,
                            jaccard=jaccard,
                            members=members_of(first),
                        )
                    )
    if "unused" in chosen:
        from segkit.analysis.usage import UsageLog

        for name in UsageLog(engine).unused():
            issues.append(
                HygieneIssue(
                    "unused",
                    name,
                    sizes[name],
                    "has no usage record and no segment refers to it",
                    members=members_of(name),
                )
            )
    if "stale" in chosen and stale_days is not None:
        limit = timedelta(days=stale_days)
        for name in names:
            record = segments[name].record
            if record is None:
                continue
            saved = record.updated_at
            if record.snapshot is not None:
                saved = max(saved, record.snapshot.at)
            age = when - saved
            if age >= limit:
                issues.append(
                    HygieneIssue(
                        "stale",
                        name,
                        sizes[name],
                        f"not saved for {age.days} days (since {saved.date().isoformat()})",
                        last_saved=saved,
                        members=members_of(name),
                    )
                )
    order = {kind: i for i, kind in enumerate(HYGIENE_KINDS)}
    issues.sort(key=lambda issue: (order[issue.kind], issue.segment, issue.other or ""))
    return HygieneReport(issues)
