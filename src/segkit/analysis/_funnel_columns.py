"""Funnel input: match events to steps and hold them in compact per-entity columns.

Every event of interest becomes two numbers in its entity's columns: its time in
microseconds since the Unix epoch (``array('q')``) and a bit mask of the steps and
exclusions it matches (``array('Q')``: bit ``k`` is step ``k``, bit ``n + x`` is
exclusion ``x``). Events that match nothing are skipped unless the funnel needs the
entity's whole timeline (strict orders). No :class:`~segkit.records.Event` object is
kept, and the algorithms never see one.

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import array
import contextlib
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from datetime import date, datetime, time, timedelta, timezone, tzinfo
from itertools import compress, repeat
from typing import Any, Final

from segkit.errors import SchemaError
from segkit.records import Event, IdMap, Profile, _describe, _parse_iso_datetime, _show

__all__ = ["Columns", "Matcher", "coded_names", "from_us", "ingest", "ingest_columns", "to_us"]

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=timezone.utc)
_US: Final = timedelta(microseconds=1)

#: ``properties -> bool`` for one step's ``where`` (``None``: every event of the name).
Filter = Callable[[Mapping[str, Any]], bool]


def to_us(moment: datetime, tz: tzinfo | None, what: str, key: str | None = None) -> int:
    """``moment`` as microseconds since the Unix epoch; a naive one is read in ``tz``.

    >>> to_us(datetime(1970, 1, 1, 0, 0, 1, tzinfo=timezone.utc), None, "timestamp")
    1000000
    >>> to_us(datetime(2024, 1, 1), None, "timestamp", "c-1")
    Traceback (most recent call last):
    ...
    segkit.errors.SchemaError: event of 'c-1': naive timestamp 2024-01-01T00:00:00 has no time zone; give it one, or pass timezone= (or a Schema with a time zone) to the Funnel
    """
    zone = moment.tzinfo
    if zone is None or (zone is not timezone.utc and zone.utcoffset(moment) is None):
        if tz is None:
            owner = f"event of {_show(key)}: " if key is not None else ""
            raise SchemaError(
                f"{owner}naive {what} {moment.isoformat()} has no time zone; give it one,"
                " or pass timezone= (or a Schema with a time zone) to the Funnel",
                key=key,
                field="at",
                value=moment,
                expected="an aware datetime",
            )
        moment = moment.replace(tzinfo=tz)
    return (moment - _EPOCH) // _US


def from_us(us: int) -> datetime:
    """The aware UTC datetime of ``us`` microseconds since the epoch.

    >>> from_us(1_000_000)
    datetime.datetime(1970, 1, 1, 0, 0, 1, tzinfo=datetime.timezone.utc)
    """
    return _EPOCH + timedelta(microseconds=us)


class Matcher:
    """What a funnel reads from each event: names, ``where`` filters, attribute stages.

    ``by_name[name]`` lists ``(bit, filter)`` pairs; ``attributes`` lists
    ``(bit, attribute)`` pairs for attribute-timestamp stages.
    """

    __slots__ = ("attributes", "bits", "by_name", "keep_all", "plain", "tz")

    def __init__(
        self,
        by_name: Mapping[str, tuple[tuple[int, Filter | None], ...]],
        attributes: tuple[tuple[int, str], ...],
        *,
        bits: int,
        keep_all: bool,
        tz: tzinfo | None,
    ) -> None:
        self.by_name = dict(by_name)
        #: names whose steps and exclusions have no filter: the event's mask is fixed
        self.plain: dict[str, int] = {
            name: sum(1 << bit for bit, _ in specs)
            for name, specs in self.by_name.items()
            if all(fn is None for _, fn in specs)
        }
        self.attributes = attributes
        self.bits = bits
        self.keep_all = keep_all
        self.tz = tz


class Columns:
    """Per-entity event columns: ``ts[slot]`` (µs, sorted) and ``masks[slot]``.

    ``keys[slot]`` and ``ids[slot]`` are the entity's external key and its id in
    ``idmap``; ``extra_ids`` are requested entities that had no funnel event.
    """

    __slots__ = ("extra_ids", "idmap", "ids", "keys", "masks", "ts")

    def __init__(self, idmap: IdMap) -> None:
        self.idmap = idmap
        self.keys: list[str] = []
        self.ids: list[int] = []
        self.ts: list[array.array[int]] = []
        self.masks: list[array.array[int]] = []
        self.extra_ids: list[int] = []

    def __len__(self) -> int:
        return len(self.keys)


def _attribute_us(value: object, tz: tzinfo | None, key: str, name: str) -> int | None:
    """The timestamp of an attribute stage's value (``None`` when unset)."""
    if value is None:
        return None
    if isinstance(value, str):
        with contextlib.suppress(ValueError):  # not a date-time: reported below
            value = _parse_iso_datetime(value)
    if isinstance(value, datetime):
        return to_us(value, tz, f"attribute {name!r}", key)
    if isinstance(value, date):
        if tz is None:
            raise SchemaError(
                f"profile {_show(key)}: attribute {name!r} holds the date {value.isoformat()},"
                " which needs a time zone to become a moment; pass timezone= to the Funnel",
                key=key,
                field=name,
                value=value,
                expected="datetime",
            )
        return to_us(datetime.combine(value, time(), tz), tz, f"attribute {name!r}", key)
    raise SchemaError(
        f"profile {_show(key)}: attribute {name!r} is a funnel stage and must hold a"
        f" datetime, got {_describe(value)}",
        key=key,
        field=name,
        value=value,
        expected="datetime",
    )


def _profile_items(
    profiles: Iterable[Profile] | Mapping[str, Mapping[str, Any]],
) -> Iterable[tuple[str, Mapping[str, Any]]]:
    if isinstance(profiles, Mapping):
        return profiles.items()
    out: list[tuple[str, Mapping[str, Any]]] = []
    for p in profiles:
        if not isinstance(p, Profile):
            raise SchemaError(f"expected a segkit.Profile, got {_describe(p)}", value=p)
        out.append((p.key, p.attributes))
    return out


class _Builder:
    """Collects ``(key, time, mask)`` triples into per-entity columns."""

    __slots__ = ("cols", "own_ids", "slot_of", "unsorted", "wanted")

    def __init__(self, idmap: IdMap | None, entities: Collection[str] | None) -> None:
        self.own_ids = idmap is None
        self.cols = Columns(IdMap() if idmap is None else idmap)
        self.slot_of: dict[str, int] = {}
        self.unsorted: set[int] = set()
        self.wanted = None if entities is None else frozenset(entities)

    def new_slot(self, key: str) -> int:
        if not isinstance(key, str) or not key:
            raise SchemaError(f"an entity key must be a non-empty string, got {_describe(key)}")
        cols = self.cols
        slot = len(cols.keys)
        self.slot_of[key] = slot
        cols.keys.append(key)
        cols.ids.append(cols.idmap.assign(key) if self.own_ids else cols.idmap.id_of(key))
        cols.ts.append(array.array("q"))
        cols.masks.append(array.array("Q"))
        return slot

    def add(self, key: str, t: int, mask: int) -> None:
        slot = self.slot_of.get(key)
        if slot is None:
            slot = self.new_slot(key)
        col = self.cols.ts[slot]
        if col and col[-1] > t:
            self.unsorted.add(slot)
        col.append(t)
        self.cols.masks[slot].append(mask)

    def add_profiles(
        self,
        matcher: Matcher,
        profiles: Iterable[Profile] | Mapping[str, Mapping[str, Any]] | None,
    ) -> None:
        if not matcher.attributes or profiles is None:
            return
        wanted = self.wanted
        for key, attributes in _profile_items(profiles):
            if wanted is not None and key not in wanted:
                continue
            for bit, name in matcher.attributes:
                t = _attribute_us(attributes.get(name), matcher.tz, key, name)
                if t is not None:
                    self.add(key, t, 1 << bit)

    def finish(self) -> Columns:
        cols = self.cols
        for slot in self.unsorted:  # stable: equal timestamps keep their input order
            ts, ms = cols.ts[slot], cols.masks[slot]
            order = sorted(range(len(ts)), key=ts.__getitem__)
            cols.ts[slot] = array.array("q", [ts[i] for i in order])
            cols.masks[slot] = array.array("Q", [ms[i] for i in order])
        if self.wanted is not None:
            idmap = cols.idmap
            for key in sorted(self.wanted - self.slot_of.keys()):
                got = idmap.assign(key) if self.own_ids else idmap.get(key)
                if got is not None:
                    cols.extra_ids.append(got)
        return cols


def _filtered_mask(matcher: Matcher, name: str, key: str, properties: Mapping[str, Any]) -> int:
    """The mask of an event whose name has ``where`` filters."""
    mask = 0
    for bit, fn in matcher.by_name[name]:
        if fn is None:
            mask |= 1 << bit
            continue
        try:
            hit = fn(properties)
        except TypeError as exc:
            raise SchemaError(
                f"event {_show(name)} of {_show(key)}: a property does not have its schema"
                f" type ({exc}); validate events with Schema.validate_event first",
                key=key,
            ) from exc
        if hit:
            mask |= 1 << bit
    return mask


def ingest(
    events: Iterable[Event],
    matcher: Matcher,
    *,
    profiles: Iterable[Profile] | Mapping[str, Mapping[str, Any]] | None = None,
    entities: Collection[str] | None = None,
    idmap: IdMap | None = None,
) -> Columns:
    """Match ``events`` (and profile attribute stages) and store them per entity.

    With ``idmap`` (an Engine's), every key must already have an id; without one a
    fresh :class:`IdMap` numbers the entities in order of appearance.
    """
    builder = _Builder(idmap, entities)
    plain = matcher.plain
    keep_all = matcher.keep_all
    tz = matcher.tz
    wanted = builder.wanted
    epoch, utc = _EPOCH, timezone.utc
    slot_of, unsorted = builder.slot_of, builder.unsorted
    all_ts, all_masks = builder.cols.ts, builder.cols.masks
    for e in events:
        if type(e) is not Event and not isinstance(e, Event):
            raise SchemaError(f"expected a segkit.Event, got {_describe(e)}", value=e)
        name = e.name
        mask = plain.get(name)
        if mask is None:
            if name in matcher.by_name:
                mask = _filtered_mask(matcher, name, e.key, e.properties)
                if not mask and not keep_all:
                    continue
            elif keep_all:
                mask = 0
            else:
                continue
        key = e.key
        if wanted is not None and key not in wanted:
            continue
        at = e.at
        if at.tzinfo is utc:
            d = at - epoch
            t = (d.days * 86400 + d.seconds) * 1_000_000 + d.microseconds
        else:
            t = to_us(at, tz, "timestamp", key)
        slot = slot_of.get(key)  # inlined _Builder.add: this loop runs once per event
        if slot is None:
            slot = builder.new_slot(key)
        col = all_ts[slot]
        if col and col[-1] > t:
            unsorted.add(slot)
        col.append(t)
        all_masks[slot].append(mask)
    builder.add_profiles(matcher, profiles)
    return builder.finish()


def coded_names(names: Any, categories: Sequence[Any] | None) -> tuple[Any, Sequence[Any] | None]:
    """``names`` as ``(integer codes, categories)`` when they come coded, else ``(names, None)``.

    Coded names are integer codes of ``categories`` (checked: ``0 <= code <
    len(categories)``), a pandas categorical column (``Categorical`` or a ``category``
    Series) or a polars ``Enum`` Series; their missing values become a ``None``
    category, which no step matches.

    >>> coded_names([1, 0, 1], ["visit", "buy"])
    ([1, 0, 1], ['visit', 'buy'])
    >>> coded_names(["visit"], None)
    (['visit'], None)
    >>> coded_names([0, 2], ["visit", "buy"])
    Traceback (most recent call last):
    ...
    ValueError: names must be integer codes of categories (0 <= code < 2): names[1] is 2
    """
    if categories is None:
        dtype = getattr(names, "dtype", None)
        if getattr(dtype, "name", None) == "category" and hasattr(dtype, "categories"):
            import numpy as np  # a pandas column: numpy is installed

            column = getattr(names, "cat", names)  # a Series' accessor, or a Categorical
            codes = np.asarray(column.codes)
            found = list(column.categories)
            if codes.size and int(codes.min()) < 0:  # -1: a missing value
                codes = np.where(codes < 0, len(found), codes)
                found.append(None)
            return codes, found
        if type(dtype).__name__ == "Enum" and type(names).__module__.startswith("polars"):
            found = list(dtype.categories.to_list())  # type: ignore[union-attr]
            codes = names.to_physical().fill_null(len(found)).to_numpy()
            if names.null_count():
                found.append(None)
            return codes, found
        return names, None
    size = len(categories)
    bad: tuple[int, Any] | None = None
    kind = getattr(getattr(names, "dtype", None), "kind", None)
    if kind is not None and getattr(names, "ndim", 1) == 1:  # a numpy array
        if kind not in "iu":
            bad = (0, names[0].item()) if len(names) else None
        elif len(names) and (int(names.min()) < 0 or int(names.max()) >= size):
            import numpy as np

            i = int(np.flatnonzero((names < 0) | (names >= size))[0])
            bad = (i, names[i].item())
    else:
        for i, code in enumerate(names):
            if type(code) is not int and (isinstance(code, bool) or not isinstance(code, int)):
                bad = (i, code)
                break
            if not 0 <= code < size:
                bad = (i, code)
                break
    if bad is not None:
        raise ValueError(
            f"names must be integer codes of categories (0 <= code < {size}):"
            f" names[{bad[0]}] is {bad[1]!r}"
        )
    return names, categories


def ingest_columns(
    keys: Sequence[str],
    names: Sequence[str],
    times_us: Sequence[int],
    matcher: Matcher,
    *,
    properties: Sequence[Mapping[str, Any]] | None = None,
    profiles: Iterable[Profile] | Mapping[str, Mapping[str, Any]] | None = None,
    entities: Collection[str] | None = None,
    idmap: IdMap | None = None,
) -> Columns:
    """Like :func:`ingest`, from parallel columns (times in µs since the epoch)."""
    if not (len(keys) == len(names) == len(times_us)):
        raise ValueError(
            f"keys, names and times_us must have the same length, got {len(keys)},"
            f" {len(names)} and {len(times_us)}"
        )
    if properties is not None and len(properties) != len(keys):
        raise ValueError(
            f"properties must have one mapping per event, got {len(properties)} for {len(keys)}"
        )
    filtered = [name for name, specs in matcher.by_name.items() if name not in matcher.plain]
    if filtered and properties is None:
        raise ValueError(
            f"steps or exclusions on {', '.join(map(repr, sorted(filtered)))} have a where"
            " filter: pass properties="
        )
    builder = _Builder(idmap, entities)
    plain = matcher.plain
    keep_all = matcher.keep_all
    wanted = builder.wanted
    slot_of, unsorted = builder.slot_of, builder.unsorted
    all_ts, all_masks = builder.cols.ts, builder.cols.masks
    by_name = matcher.by_name
    rows: Iterable[tuple[int, str, int, int]]
    if keep_all:
        rows = zip(
            range(len(names)), keys, times_us, map(plain.get, names, repeat(-1)), strict=True
        )
    else:  # skip the events of no step or exclusion without a Python loop over them
        lookup = dict(plain)
        lookup.update((name, -1) for name in by_name if name not in plain)
        codes: list[Any] = list(map(lookup.get, names))
        rows = zip(
            compress(range(len(names)), codes),
            compress(keys, codes),
            compress(times_us, codes),
            compress(codes, codes),
            strict=True,
        )
    for i, key, t, mask in rows:
        if mask < 0:  # a where filter decides, or a name that only strict orders read
            name = names[i]
            if name in by_name:
                assert properties is not None
                mask = _filtered_mask(matcher, name, keys[i], properties[i])
                if not mask and not keep_all:
                    continue
            else:
                mask = 0
        if wanted is not None and key not in wanted:
            continue
        if type(t) is not int:
            if isinstance(t, bool) or not isinstance(t, int):
                raise TypeError(f"times_us must hold integers (µs since the epoch), got {t!r}")
            t = int(t)
        slot = slot_of.get(key)  # inlined _Builder.add
        if slot is None:
            slot = builder.new_slot(key)
        col = all_ts[slot]
        if col and col[-1] > t:
            unsorted.add(slot)
        col.append(t)
        all_masks[slot].append(mask)
    builder.add_profiles(matcher, profiles)
    return builder.finish()
