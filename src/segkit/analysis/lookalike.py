"""Lookalike audiences: the profiles outside a seed segment that resemble it the most.

Every attribute value (or bin of values) gets a weight: how much more common it
is among the seed's members than among everybody else. A profile's score is the
sum of the weights of its values; the best-scoring non-members form the lookalike.

**Weights.** For an attribute with ``k`` values ``v`` (or ``k`` bins), counted
with bitmap intersection cardinalities over the live profiles,

* ``seed_v``: seed members holding ``v``; ``seed_known``: seed members with any value;
* ``rest_v``: non-members holding ``v``; ``rest_known``: non-members with any value;
* ``a``: the ``smoothing`` (default 1, Laplace's add-one),

the weight of ``v`` is the smoothed log-odds ratio (natural logarithm)::

    w_v = log((seed_v + a) / (seed_known + a*k)) - log((rest_v + a) / (rest_known + a*k))

When no seed member has a value for the attribute (``seed_known = 0``) the seed
tells nothing about it and every ``w_v`` is 0.

**Values.** Strings, bools and integers of ``list`` attributes are taken value
by value (the attribute index's per-value bitmaps). A string or list attribute
with more than ``max_values`` distinct values (default 1024, where the index
stops keeping per-value bitmaps) looks like an identifier: the default
attribute list leaves it out, and naming it raises. Numbers, dates and
date-times are cut into quantile bins over the whole population (default
:data:`DEFAULT_BINS` = 5, quintiles): with the ``n`` known values sorted as
``x[0] <= … <= x[n-1]``, the candidate edges are ``x[floor(j*n/bins)]`` for
``j = 1 … bins-1``; edges equal to the minimum and repeated edges are dropped, so
no bin is empty. Bin ``i`` holds ``edges[i-1] <= value < edges[i]`` (the first
bin is ``< edges[0]``, the last ``>= edges[-1]``). ``bins={"age": [18, 30, 45]}``
sets an attribute's edges explicitly, ``bins={"ltv": 10}`` its bin count.

**Scores.** ``score(p) = sum of w_v over p's attributes``: a missing value adds 0;
a list attribute adds the *mean* weight of its distinct elements (so a profile
with many tags counts like one with a few, and an empty list adds 0). The
``size`` non-members with the highest scores are chosen; equal scores are broken
by external key, in ascending order, so the result does not depend on the order
in which profiles were loaded.

**Default attributes.** Every attribute of the schema, in declaration order,
except those the seed's rule reads (directly or through the segments it refers
to: a lookalike of ``plan = "pro"`` that weighed ``plan`` would merely redo the
seed's definition) and the identifier-like ones above; :attr:`Lookalike.skipped`
says which were left out and why. ``attributes=[...]`` overrides the choice.

>>> import segkit as sk
>>> engine = sk.Engine(sk.Schema(attributes={"country": "string", "plan": "string",
...                                          "is_customer": "bool"}))
>>> _ = engine.upsert_many({
...     "c-1": {"country": "FR", "plan": "pro", "is_customer": True},
...     "c-2": {"country": "FR", "plan": "pro", "is_customer": True},
...     "p-1": {"country": "FR", "plan": "pro", "is_customer": False},
...     "p-2": {"country": "DE", "plan": "free", "is_customer": False},
...     "p-3": {"country": "FR", "plan": "free", "is_customer": False}})
>>> _ = engine.define("customers", "is_customer = true")
>>> found = engine.lookalike("customers", size=2)
>>> list(found.scores), found.attributes, dict(found.skipped)
(['p-1', 'p-3'], ('country', 'plan'), {'is_customer': "read by the rule of segment 'customers'"})
>>> engine.members("customers_lookalike").keys()
['p-1', 'p-3']

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import bisect
import contextlib
import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, Final, TypeAlias

import attrs

from segkit._suggest import suggest
from segkit.analysis._html import Columns, Frames, html_table, typed_columns
from segkit.errors import RuleTypeError, SegmentError, UnknownAttributeError
from segkit.index import LOW_CARDINALITY, AttributeIndex, Bitmap, Members
from segkit.records import _FrozenDict
from segkit.schema import FieldType
from segkit.storage import UsageRecord, record_usage

if TYPE_CHECKING:
    from segkit.engine import Engine, _Segment

__all__ = [
    "DEFAULT_BINS",
    "MAX_VALUES",
    "Bins",
    "Lookalike",
    "LookalikeContribution",
    "LookalikeWeight",
    "lookalike",
    "quantile_edges",
]

#: Quantile bins per numeric or date attribute, unless ``bins`` says otherwise (quintiles).
DEFAULT_BINS: Final = 5
#: Default ``max_values``: a string or list attribute with more distinct values is
#: identifier-like (the attribute index keeps per-value bitmaps up to this many).
MAX_VALUES: Final = LOW_CARDINALITY

#: ``bins``: a bin count for every binned attribute, or per attribute a bin count or
#: the edges themselves (attributes left out get :data:`DEFAULT_BINS`).
Bins: TypeAlias = int | Mapping[str, int | Sequence[Any]]

_REPR_MEMBERS: Final = 10
#: Profiles read at a time while collecting distinct values.
_CHUNK: Final = 4096
_REPR_WEIGHTS: Final = 3


def _show(value: Any) -> str:
    """A bin edge as text: dates and date-times in ISO 8601, numbers as Python prints them."""
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    return repr(value)


def _json(value: Any) -> Any:
    """A value or bin edge in JSON-safe form."""
    return value.isoformat() if isinstance(value, (date, datetime)) else value


@attrs.frozen
class LookalikeWeight:
    """One attribute value (or bin) with its weight and the counts behind it.

    ``value`` is the value itself for strings, bools and list elements, and a
    label such as ``"[30, 45)"`` for a bin, whose ``bounds`` are ``(low, high)``
    (``low <= value < high``; ``None`` is an open end). ``seed_count`` and
    ``rest_count`` are the seed members and the non-members holding the value.

    >>> import math
    >>> row = LookalikeWeight("age", "[30, 45)", math.log(2), 6, 3, (30, 45))
    >>> row.to_dict()
    {'attribute': 'age', 'value': '[30, 45)', 'weight': 0.6931471805599453, 'seed_count': 6, 'rest_count': 3, 'bounds': [30, 45]}

    .. versionadded:: 0.1.0
    """

    attribute: str
    value: Any
    weight: float
    seed_count: int
    rest_count: int
    bounds: tuple[Any, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict (dates as ISO 8601 text).

        >>> LookalikeWeight("plan", "pro", 0.5, 3, 1).to_dict()["bounds"] is None
        True
        """
        return {
            "attribute": self.attribute,
            "value": _json(self.value),
            "weight": self.weight,
            "seed_count": self.seed_count,
            "rest_count": self.rest_count,
            "bounds": None if self.bounds is None else [_json(b) for b in self.bounds],
        }


@attrs.frozen
class LookalikeContribution:
    """What one of a profile's values added to its lookalike score.

    ``contribution`` is the value's ``weight``, divided by the number of distinct
    elements for a list attribute (a list adds the mean weight of its elements).

    >>> LookalikeContribution("tags", "vip", 1.5, 0.75).to_dict()
    {'attribute': 'tags', 'value': 'vip', 'weight': 1.5, 'contribution': 0.75}

    .. versionadded:: 0.1.0
    """

    attribute: str
    value: Any
    weight: float
    contribution: float

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict.

        >>> LookalikeContribution("plan", "pro", 0.5, 0.5).to_dict()["contribution"]
        0.5
        """
        return {
            "attribute": self.attribute,
            "value": _json(self.value),
            "weight": self.weight,
            "contribution": self.contribution,
        }


@attrs.frozen(repr=False)
class Lookalike(Frames):
    """The non-members of a seed segment that resemble it most, with their scores.

    * ``members``: the chosen profiles (:class:`~segkit.Members`);
    * ``scores``: ``{key: score}`` for the chosen profiles, best first (equal scores
      by key);
    * ``weights``: every attribute value or bin with its weight and counts
      (:class:`LookalikeWeight`), highest weight first;
    * ``attributes``: the attributes compared; ``skipped``: the schema's attributes
      left out by default, with the reason; ``bins``: the bin edges of each binned
      attribute;
    * ``candidates``: how many non-members were scored; ``segment``: the name of
      the saved static segment, or ``None``.

    :meth:`drivers` tells which values made one profile's score. :meth:`to_pandas`
    and :meth:`to_polars` give one row per weight; a notebook shows the table in
    HTML.

    >>> import segkit as sk
    >>> engine = sk.Engine(sk.Schema(attributes={"plan": "string"}))
    >>> _ = engine.upsert_many({"a": {"plan": "pro"}, "b": {"plan": "pro"}, "c": {"plan": "free"}})
    >>> _ = engine.define_static("fans", ["a"])
    >>> found = engine.lookalike("fans", size=1, save=False)
    >>> found
    Lookalike of 'fans': 1 of 2 candidates (not saved)
      rank  key  score
         1  b    +0.288
      strongest weights: plan = 'pro' (+0.288), plan = 'free' (-0.405)
    >>> found.members, found.segment
    (Members(1: 'b'), None)

    .. versionadded:: 0.1.0
    """

    seed: str
    segment: str | None
    members: Members
    scores: Mapping[str, float] = attrs.field(hash=False)
    weights: tuple[LookalikeWeight, ...]
    attributes: tuple[str, ...]
    skipped: Mapping[str, str] = attrs.field(hash=False)
    bins: Mapping[str, tuple[Any, ...]] = attrs.field(hash=False)
    candidates: int
    smoothing: float
    # per chosen key: the indexes into ``weights`` of the values it holds
    _member_rows: Mapping[str, tuple[int, ...]] = attrs.field(
        hash=False, eq=False, alias="_member_rows"
    )
    _lists: frozenset[str] = attrs.field(eq=False, alias="_lists")

    def drivers(self, key: str, top: int | None = None) -> tuple[LookalikeContribution, ...]:
        """The values behind the score of chosen profile ``key``, largest contribution first.

        The contributions add up to ``scores[key]``; ``top`` keeps the first few.
        Equal contributions are ordered by attribute, then by weight-table order.

        >>> import segkit as sk
        >>> engine = sk.Engine(sk.Schema(attributes={"plan": "string", "country": "string"}))
        >>> _ = engine.upsert_many({"a": {"plan": "pro", "country": "FR"},
        ...                         "b": {"plan": "pro", "country": "DE"},
        ...                         "c": {"plan": "free", "country": "FR"}})
        >>> _ = engine.define_static("fans", ["a"])
        >>> found = engine.lookalike("fans", size=1, save=False)
        >>> [(d.attribute, d.value, round(d.contribution, 3)) for d in found.drivers("b")]
        [('plan', 'pro', 0.288), ('country', 'DE', -0.405)]
        >>> found.drivers("c")
        Traceback (most recent call last):
        ...
        KeyError: "profile 'c' is not among the 1 profile(s) this lookalike chose"
        """
        rows = self._member_rows.get(key) if isinstance(key, str) else None
        if rows is None:
            raise KeyError(
                f"profile {key!r} is not among the {len(self.scores)} profile(s) "
                "this lookalike chose"
            )
        if top is not None and (isinstance(top, bool) or not isinstance(top, int) or top < 0):
            raise ValueError(f"top must be a non-negative int or None, got {top!r}")
        weights = self.weights
        per_attribute: dict[str, int] = {}
        for r in rows:
            name = weights[r].attribute
            per_attribute[name] = per_attribute.get(name, 0) + 1
        found = []
        for r in rows:
            row = weights[r]
            share = per_attribute[row.attribute] if row.attribute in self._lists else 1
            found.append((row, r, row.weight / share))
        found.sort(key=lambda item: (-item[2], item[0].attribute, item[1]))
        out = tuple(
            LookalikeContribution(row.attribute, row.value, row.weight, c) for row, _, c in found
        )
        return out if top is None else out[:top]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict: the options, the chosen keys best first, scores and weights.

        >>> import segkit as sk
        >>> engine = sk.Engine(sk.Schema(attributes={"plan": "string"}))
        >>> _ = engine.upsert_many({"a": {"plan": "pro"}, "b": {"plan": "pro"}})
        >>> _ = engine.define_static("fans", ["a"])
        >>> d = engine.lookalike("fans", size=1, save=False).to_dict()
        >>> d["members"], d["segment"], sorted(d)
        (['b'], None, ['attributes', 'bins', 'candidates', 'members', 'scores', 'seed', 'segment', 'skipped', 'smoothing', 'weights'])
        """
        return {
            "seed": self.seed,
            "segment": self.segment,
            "candidates": self.candidates,
            "smoothing": self.smoothing,
            "attributes": list(self.attributes),
            "skipped": dict(self.skipped),
            "bins": {name: [_json(e) for e in edges] for name, edges in self.bins.items()},
            "members": list(self.scores),
            "scores": dict(self.scores),
            "weights": [row.to_dict() for row in self.weights],
        }

    def table(self) -> str:
        """The result as plain text (what ``repr`` shows): the first ten chosen
        profiles and the strongest weights on either side.

        >>> import segkit as sk
        >>> engine = sk.Engine(sk.Schema(attributes={"plan": "string"}))
        >>> _ = engine.upsert_many({"a": {"plan": "pro"}})
        >>> _ = engine.define_static("fans", ["a"])
        >>> print(engine.lookalike("fans", size=3, name="more_fans").table())
        Lookalike of 'fans': 0 of 0 candidates, saved as 'more_fans'
          strongest weights: plan = 'pro' (+0.000)
        """
        head, cells, more, strongest = self._display()
        lines = [head]
        if cells:
            width = max(3, *(len(key) for _, key, _ in cells))
            rank_width = max(4, len(cells[-1][0]))
            lines.append(f"  {'rank':>{rank_width}}  {'key':<{width}}  score")
            for rank, key, score in cells:
                lines.append(f"  {rank:>{rank_width}}  {key:<{width}}  {score}")
            if more:
                lines.append(f"  ... {more} more")
        if strongest:
            lines.append(f"  {strongest}")
        return "\n".join(lines)

    def _display(self) -> tuple[str, list[tuple[str, str, str]], int, str]:
        """The head line, the first chosen profiles' cells, how many more, the weights line."""
        saved = " (not saved)" if self.segment is None else f", saved as {self.segment!r}"
        head = (
            f"Lookalike of {self.seed!r}: {len(self.scores)} of {self.candidates} candidates{saved}"
        )
        shown = list(self.scores.items())[:_REPR_MEMBERS]
        cells = [(str(rank), key, f"{score:+.3f}") for rank, (key, score) in enumerate(shown, 1)]
        weights = self.weights
        strongest = list(weights[:_REPR_WEIGHTS])
        strongest += [w for w in weights[-_REPR_WEIGHTS:] if w.weight < 0 and w not in strongest]
        text = ", ".join(f"{w.attribute} = {_label(w)} ({w.weight:+.3f})" for w in strongest)
        line = f"strongest weights: {text}" if strongest else ""
        return head, cells, len(self.scores) - len(shown), line

    def __repr__(self) -> str:
        return self.table()

    def _repr_html_(self) -> str:
        """The notebook view: :meth:`table` as an HTML table."""
        head, cells, more, strongest = self._display()
        notes = [f"... {more} more"] if more else []
        if strongest:
            notes.append(strongest)
        return html_table([head], [("rank", "r"), ("key", "l"), ("score", "r")], cells, notes)

    def _columns(self) -> Columns:
        """One row per weight, highest first: attribute, value (as text), weight, counts.

        ``value`` is text so that one column holds every attribute's values: a
        string as itself, a bin as its label (``"[30, 45)"``), a bool or a list's
        integer element as Python prints it (``"True"``, ``"3"``).
        """
        rows = self.weights
        return typed_columns(
            [
                ("attribute", "str", [w.attribute for w in rows]),
                ("value", "str", [str(w.value) for w in rows]),
                ("weight", "float", [w.weight for w in rows]),
                ("seed_count", "int", [w.seed_count for w in rows]),
                ("rest_count", "int", [w.rest_count for w in rows]),
            ]
        )


def _label(row: LookalikeWeight) -> str:
    return str(row.value) if row.bounds is not None else repr(row.value)


# --- the computation --------------------------------------------------------------------------


@attrs.define
class _Row:
    """An attribute value or bin during the computation: who holds it, and the counts."""

    attribute: str
    value: Any
    bounds: tuple[Any, Any] | None
    ids: Bitmap
    seed_count: int = 0
    rest_count: int = 0
    weight: float = 0.0


def lookalike(
    engine: Engine,
    seed: str,
    *,
    size: int,
    attributes: Iterable[str] | None = None,
    name: str | None = None,
    save: bool = True,
    smoothing: float = 1.0,
    bins: Bins = DEFAULT_BINS,
    max_values: int = MAX_VALUES,
    updated_by: str | None = None,
) -> Lookalike:
    """The ``size`` profiles outside segment ``seed`` that resemble it most (see the module).

    Everything is checked before anything is written; with ``save=True`` the
    result is saved as static segment ``name`` (default ``f"{seed}_lookalike"``)
    and the use of the seed is recorded (tool ``"segkit"``, objective
    ``"segmentation"``, ref ``f"lookalike:{name}"``). :meth:`segkit.Engine.lookalike`
    calls this.

    >>> import segkit as sk
    >>> engine = sk.Engine(sk.Schema(attributes={"plan": "string"}))
    >>> _ = engine.upsert_many({"a": {"plan": "pro"}, "b": {"plan": "pro"}, "c": {}})
    >>> _ = engine.define_static("fans", ["a"])
    >>> lookalike(engine, "fans", size=1).segment
    'fans_lookalike'

    .. versionadded:: 0.1.0
    """
    seg = engine._segment(seed)
    _check_size(size)
    _check_smoothing(smoothing)
    if isinstance(max_values, bool) or not isinstance(max_values, int) or max_values < 1:
        raise ValueError(f"max_values must be a positive int, got {max_values!r}")
    target: str | None = None
    if save:
        target = f"{seed}_lookalike" if name is None else name
        if not isinstance(target, str) or not target:
            raise SegmentError("a segment name must be a non-empty string")
        if target in engine._segments:
            raise SegmentError(f"segment {target!r} already exists")
    elif name is not None and (not isinstance(name, str) or not name):
        raise SegmentError("a segment name must be a non-empty string")
    schema = engine.schema
    explicit = attributes is not None
    if attributes is None:
        read = _attributes_read(engine, seg)
        names = [a for a in schema.attributes if a not in read]
        skipped: dict[str, str] = {
            attribute: f"read by the rule of segment {read[attribute]!r}"
            for attribute in schema.attributes
            if attribute in read
        }
    else:
        names = _check_attributes(attributes, schema.attributes)
        skipped = {}
    edges_by_attribute = _check_bins(bins, names, schema.attributes)
    universe = engine._universe
    seed_ids = seg.ids & universe
    if not seed_ids:
        raise ValueError(f"segment {seed!r} has no members: a lookalike needs at least one")

    # --- values and bins, with their counts ------------------------------------------------
    rest = universe - seed_ids
    a = float(smoothing)
    groups: list[tuple[str, list[_Row], bool]] = []
    bin_edges: dict[str, tuple[Any, ...]] = {}
    for attribute in names:
        ftype = schema.attributes[attribute]
        index = engine._attr_index[attribute]
        if ftype.is_numeric or ftype.is_temporal:
            spec = edges_by_attribute[attribute]
            # few distinct numbers: their per-value bitmaps give the counts and the bins
            pairs = _values_and_ids(index, None) if index.low_cardinality else None
            if isinstance(spec, tuple):
                edges = spec
            elif pairs is not None:
                edges = _counted_quantile_edges(pairs, spec)
            else:
                edges = quantile_edges(sorted(map(index.get, index.known)), spec)
            bin_edges[attribute] = edges
            found = _bin_rows(attribute, index, edges, pairs)
        else:
            values = _values_and_ids(index, max_values)
            if values is None:
                if explicit:
                    raise ValueError(
                        f"attribute {attribute!r} has more than max_values={max_values} "
                        "distinct values: it looks like an identifier, not a trait "
                        "(raise max_values to weigh it anyway)"
                    )
                skipped[attribute] = f"more than {max_values} distinct values"
                continue
            found = [_Row(attribute, value, None, ids) for value, ids in values]
        _weigh(found, index.known, seed_ids, rest, a)
        groups.append((attribute, found, ftype.is_list))
    if not groups:
        raise ValueError(
            f"no attribute to compare profiles on: segment {seed!r} reads every usable "
            "attribute of the schema; name some with attributes=[...]"
        )

    # --- scores and the top ``size`` -------------------------------------------------------
    scores = _score(engine, groups, rest)
    key_of = engine._ids.key_of
    ranked = _top(list(rest), scores, size, key_of)
    chosen = Bitmap(ranked)
    rows = [row for _, found, _ in groups for row in found]
    order = sorted(range(len(rows)), key=lambda r: (-rows[r].weight, rows[r].attribute, r))
    position = {r: i for i, r in enumerate(order)}
    member_rows: dict[int, list[int]] = {pid: [] for pid in ranked}
    for r, row in enumerate(rows):
        for pid in row.ids & chosen:
            member_rows[pid].append(position[r])
    weights = tuple(
        LookalikeWeight(
            row.attribute, row.value, row.weight, row.seed_count, row.rest_count, row.bounds
        )
        for row in (rows[r] for r in order)
    )
    keys = [key_of(pid) for pid in ranked]
    result = Lookalike(
        seed,
        target,
        engine._members(chosen),
        _FrozenDict({key: scores[pid] for key, pid in zip(keys, ranked, strict=True)}),
        weights,
        tuple(attribute for attribute, _, _ in groups),
        _FrozenDict({n: skipped[n] for n in schema.attributes if n in skipped}),
        _FrozenDict(bin_edges),
        len(rest),
        a,
        _member_rows=_FrozenDict(
            {key: tuple(sorted(member_rows[pid])) for key, pid in zip(keys, ranked, strict=True)}
        ),
        _lists=frozenset(attribute for attribute, _, is_list in groups if is_list),
    )
    if target is not None:
        _save(engine, seed, target, keys, updated_by)
    return result


def _save(engine: Engine, seed: str, target: str, keys: list[str], updated_by: str | None) -> None:
    """Save the static segment, then record the seed's use; undo the segment if that fails."""
    engine.define_static(target, keys, updated_by=updated_by)
    usage = UsageRecord(
        seed, tool="segkit", objective="segmentation", ref=f"lookalike:{target}", at=engine.now()
    )
    try:
        record_usage(engine._storage, usage)
    except BaseException:
        with contextlib.suppress(Exception):  # the first error is the one to report
            engine.drop(target)
        raise


def _check_size(size: object) -> None:
    if isinstance(size, bool) or not isinstance(size, int):
        raise TypeError(f"size must be an int, got {size!r}")
    if size < 1:
        raise ValueError(f"size must be at least 1, got {size}")


def _check_smoothing(smoothing: object) -> None:
    ok = (
        isinstance(smoothing, (int, float))
        and not isinstance(smoothing, bool)
        and math.isfinite(smoothing)
        and smoothing > 0
    )
    if not ok:
        raise ValueError(f"smoothing must be a positive finite number, got {smoothing!r}")


def _attributes_read(engine: Engine, seg: _Segment) -> dict[str, str]:
    """``{attribute: segment}`` for every attribute the rule of ``seg`` reads, directly
    or through the segments it refers to (the segment named is the one whose rule reads it)."""
    read: dict[str, str] = {}
    todo = [seg.name]
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        rule = engine._segments[name].rule
        if rule is None:
            continue
        for attribute in sorted(rule.attributes):
            read.setdefault(attribute, name)
        todo.extend(sorted(rule.segments, reverse=True))
    return read


def _check_attributes(attributes: Iterable[str], known: Mapping[str, FieldType]) -> list[str]:
    if isinstance(attributes, str):
        raise TypeError(
            f"attributes must be a list of attribute names, not the string {attributes!r}"
        )
    names = list(dict.fromkeys(attributes))
    if not names:
        raise ValueError("attributes is empty: name at least one attribute to compare")
    for attribute in names:
        if not isinstance(attribute, str):
            raise TypeError(f"an attribute name must be a string, got {attribute!r}")
        if attribute not in known:
            raise UnknownAttributeError(
                f"unknown attribute {attribute!r}", suggestion=suggest(attribute, known)
            )
    return names


def _check_bins(
    bins: Bins, names: Sequence[str], types: Mapping[str, FieldType]
) -> dict[str, int | tuple[Any, ...]]:
    """Per binned attribute among ``names``: its bin count or its checked edges."""
    if isinstance(bins, Mapping):
        given: Mapping[str, int | Sequence[Any]] = bins
        default: int = DEFAULT_BINS
    else:
        given = {}
        default = _check_bin_count(bins, "bins")
    for attribute in given:
        if attribute not in types:
            raise UnknownAttributeError(
                f"bins names unknown attribute {attribute!r}",
                suggestion=suggest(attribute, types) if isinstance(attribute, str) else None,
            )
        ftype = types[attribute]
        if not (ftype.is_numeric or ftype.is_temporal):
            raise RuleTypeError(
                f"bins for attribute {attribute!r}: only numbers and dates are binned, "
                f"and it is a {ftype} (its values are weighed one by one)"
            )
        if attribute not in names:
            raise ValueError(
                f"bins for attribute {attribute!r}: it is not among the attributes compared "
                f"({', '.join(repr(n) for n in names)})"
            )
    out: dict[str, int | tuple[Any, ...]] = {}
    for attribute in names:
        ftype = types[attribute]
        if not (ftype.is_numeric or ftype.is_temporal):
            continue
        spec = given.get(attribute, default)
        if isinstance(spec, int) and not isinstance(spec, bool):
            out[attribute] = _check_bin_count(spec, f"bins for attribute {attribute!r}")
        else:
            out[attribute] = _check_edges(spec, attribute, ftype)
    return out


def _check_bin_count(count: object, what: str) -> int:
    if isinstance(count, bool) or not isinstance(count, int):
        raise TypeError(
            f"{what} must be an int, or a mapping of attribute names to bin counts or edges; "
            f"got {count!r}"
        )
    if count < 2:
        raise ValueError(f"{what} must be at least 2, got {count}")
    return count


def _check_edges(edges: object, attribute: str, ftype: FieldType) -> tuple[Any, ...]:
    what = f"bins for attribute {attribute!r}"
    if isinstance(edges, (str, bytes)) or not isinstance(edges, Sequence):
        raise TypeError(f"{what} must be a bin count or a list of edges, got {edges!r}")
    out = tuple(edges)
    if not out:
        raise ValueError(f"{what}: the list of edges is empty")
    for edge in out:
        if ftype.is_numeric:
            ok = (
                isinstance(edge, (int, float))
                and not isinstance(edge, bool)
                and math.isfinite(edge)
            )
            expected = "a finite number"
        elif ftype is FieldType.DATE:
            ok = isinstance(edge, date) and not isinstance(edge, datetime)
            expected = "a date"
        else:
            ok = isinstance(edge, datetime) and edge.tzinfo is not None
            expected = "an aware datetime"
        if not ok:
            raise TypeError(
                f"{what}: each edge must be {expected} (the attribute is a {ftype}), got {edge!r}"
            )
    if any(b <= a for a, b in itertools.pairwise(out)):
        raise ValueError(f"{what}: the edges must increase strictly, got {list(out)!r}")
    return out


def quantile_edges(ordered: Sequence[Any], bins: int) -> tuple[Any, ...]:
    """The bin edges of sorted values ``ordered`` for ``bins`` quantile bins.

    ``ordered[floor(j * n / bins)]`` for ``j = 1 … bins - 1``, leaving out edges
    equal to the smallest value and repeated edges, so that no bin is empty
    (fewer bins when values repeat).

    >>> quantile_edges([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 5)
    (3, 5, 7, 9)
    >>> quantile_edges([0, 0, 0, 1, 1, 2, 3, 5], 4)
    (1, 3)
    >>> quantile_edges([7, 7], 5), quantile_edges([], 5)
    ((), ())

    .. versionadded:: 0.1.0
    """
    n = len(ordered)
    if not n:
        return ()
    out: list[Any] = []
    for j in range(1, bins):
        edge = ordered[j * n // bins]
        if edge > ordered[0] and (not out or edge > out[-1]):
            out.append(edge)
    return tuple(out)


def _values_and_ids(index: AttributeIndex, limit: int | None) -> list[tuple[Any, Bitmap]] | None:
    """Each distinct value (list attributes: element) with the ids holding it, sorted by
    value; ``None`` when there are more than ``limit``.

    With per-value bitmaps the values are found by peeling: take any profile left,
    its value's bitmap, remove it, repeat (one step per distinct value).
    """
    get = index.get
    if index.low_cardinality:
        remaining = index.known.copy()
        found: list[tuple[Any, Bitmap]] = []
        while remaining:
            if limit is not None and len(found) >= limit:
                return None
            value = get(remaining.min())
            ids = index.equal(value)
            found.append((value, ids))
            remaining -= ids
        found.sort(key=lambda item: item[0])
        return found
    present: set[Any] = set()
    pids = iter(index.known)
    while chunk := list(itertools.islice(pids, _CHUNK)):  # stop early once past the limit
        if index.is_list:
            for value in map(get, chunk):
                present.update(value)
        else:
            present.update(map(get, chunk))
        if limit is not None and len(present) > limit:
            return None
    return [(value, index.equal(value)) for value in sorted(present)]


def _counted_quantile_edges(pairs: Sequence[tuple[Any, Bitmap]], bins: int) -> tuple[Any, ...]:
    """:func:`quantile_edges` of the values that ``pairs`` (sorted) hold ``len(ids)`` times each."""
    cumulative = list(itertools.accumulate(len(ids) for _, ids in pairs))
    n = cumulative[-1] if cumulative else 0
    out: list[Any] = []
    for j in range(1, bins if n else 1):
        edge = pairs[bisect.bisect_right(cumulative, j * n // bins)][0]
        if edge > pairs[0][0] and (not out or edge > out[-1]):
            out.append(edge)
    return tuple(out)


def _bin_rows(
    attribute: str,
    index: AttributeIndex,
    edges: tuple[Any, ...],
    pairs: Sequence[tuple[Any, Bitmap]] | None,
) -> list[_Row]:
    """One row per bin: ``< edges[0]``, ``[edges[0], edges[1])``, …, ``>= edges[-1]``.

    ``pairs`` (each value with its ids, sorted) saves the range queries when given.
    """
    if not edges:
        return [_Row(attribute, "(all)", (None, None), index.known)] if index.known else []
    bounds = [(None, edges[0]), *itertools.pairwise(edges), (edges[-1], None)]
    values = None if pairs is None else [value for value, _ in pairs]
    found = []
    for low, high in bounds:
        if low is None:
            label = f"< {_show(high)}"
        elif high is None:
            label = f">= {_show(low)}"
        else:
            label = f"[{_show(low)}, {_show(high)})"
        if pairs is None or values is None:
            ids = index.range(low, high, low_inclusive=True, high_inclusive=False)
        else:
            start = 0 if low is None else bisect.bisect_left(values, low)
            stop = len(values) if high is None else bisect.bisect_left(values, high)
            inside = [bm for _, bm in pairs[start:stop]]
            ids = Bitmap.union(*inside) if inside else Bitmap()
        found.append(_Row(attribute, label, (low, high), ids))
    return found


def _weigh(rows: list[_Row], known: Bitmap, seed: Bitmap, rest: Bitmap, a: float) -> None:
    """Fill in each row's counts and smoothed log-odds weight (see the module)."""
    k = len(rows)
    seed_known = known.intersection_cardinality(seed)
    rest_known = known.intersection_cardinality(rest)
    seed_total = seed_known + a * k
    rest_total = rest_known + a * k
    for row in rows:
        row.seed_count = row.ids.intersection_cardinality(seed)
        row.rest_count = row.ids.intersection_cardinality(rest)
        if seed_known:
            row.weight = math.log((row.seed_count + a) / seed_total) - math.log(
                (row.rest_count + a) / rest_total
            )


def _score(engine: Engine, groups: list[tuple[str, list[_Row], bool]], rest: Bitmap) -> list[float]:
    """Each profile's score, indexed by id (only the non-members' are filled in).

    Attributes are added in order, so that equal values always give equal scores.
    """
    scores = [0.0] * (rest.max() + 1 if rest else 0)
    for attribute, rows, is_list in groups:
        if is_list:
            sums: dict[int, float] = {}
            for row in rows:
                w = row.weight
                if w:
                    for pid in row.ids & rest:
                        sums[pid] = sums.get(pid, 0.0) + w
            get = engine._attr_index[attribute].get
            for pid, total in sums.items():
                scores[pid] += total / len(set(get(pid)))
        else:
            for row in rows:
                w = row.weight
                if w:
                    for pid in row.ids & rest:
                        scores[pid] += w
    return scores


def _top(candidates: list[int], scores: list[float], size: int, key_of: Any) -> list[int]:
    """The ``size`` best candidates, best first; equal scores in ascending key order."""
    if size < len(candidates):
        threshold = sorted((scores[pid] for pid in candidates), reverse=True)[size - 1]
        above = [pid for pid in candidates if scores[pid] > threshold]
        tied = sorted((pid for pid in candidates if scores[pid] == threshold), key=key_of)
        candidates = above + tied[: size - len(above)]
    return sorted(candidates, key=lambda pid: (-scores[pid], key_of(pid)))
