"""The records segkit ingests: :class:`Profile`, :class:`Event`, and the :class:`IdMap`.

A profile is identified by its *external key* (a string such as ``"c-1"``, owned by
the embedding application); the index stores it under a dense ``uint32`` id that the
:class:`IdMap` hands out. Profiles and events are frozen values; their mappings are
read-only copies, so a record cannot change after it was validated.

>>> from datetime import datetime, timezone
>>> Profile("c-1", {"country": "FR", "age": 31})
Profile(key='c-1', attributes={'country': 'FR', 'age': 31})
>>> at = datetime(2024, 6, 1, 9, 30, tzinfo=timezone.utc)
>>> e = Event("c-1", "page_view", at, {"url": "/pricing"})
>>> e.at.isoformat(), e.properties
('2024-06-01T09:30:00+00:00', {'url': '/pricing'})

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import heapq
import re
from collections.abc import ItemsView, Iterator, KeysView, Mapping, ValuesView
from datetime import datetime, timedelta, timezone
from typing import Any, ClassVar, Final, TypeVar

import attrs

__all__ = ["Event", "IdMap", "Profile"]

_T = TypeVar("_T")


def _show(value: object) -> str:
    """``repr(value)`` cut to at most 60 characters, for error messages."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _describe(value: object) -> str:
    """``'abc' (str)``: the shortened repr of ``value`` and its type name."""
    return f"{_show(value)} ({type(value).__name__})"


class _FrozenDict(Mapping[str, Any]):
    """A read-only, picklable copy of a mapping; compares equal to any equal mapping.

    It is not hashable (values may be lists); records exclude it from their hash.
    """

    __slots__ = ("_data",)

    _data: dict[str, Any]

    def __init__(self, data: Mapping[str, Any] | None = None) -> None:
        object.__setattr__(self, "_data", dict(data) if data is not None else {})

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, key: object) -> bool:
        return key in self._data

    # the dict's own methods: Mapping's generic ones run Python code per call
    def get(self, key: str, default: Any = None) -> Any:
        return self._data.get(key, default)

    def keys(self) -> KeysView[str]:
        return self._data.keys()

    def values(self) -> ValuesView[Any]:
        return self._data.values()

    def items(self) -> ItemsView[str, Any]:
        return self._data.items()

    def __repr__(self) -> str:
        return repr(self._data)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} is read-only")

    def __reduce__(self) -> tuple[Any, ...]:
        return (_FrozenDict, (self._data,))


def _freeze(value: Mapping[str, Any], what: str) -> _FrozenDict:
    if isinstance(value, _FrozenDict):
        return value
    if not isinstance(value, Mapping):
        raise TypeError(f"{what} must be a mapping, got {_describe(value)}")
    for name in value:
        if not isinstance(name, str):
            raise TypeError(f"{what} names must be strings, got {_describe(name)}")
    return _FrozenDict(value)


def _freeze_attributes(value: Mapping[str, Any]) -> _FrozenDict:
    return _freeze(value, "Profile attributes")


def _freeze_properties(value: Mapping[str, Any]) -> _FrozenDict:
    return _freeze(value, "Event properties")


def _check_name(kind: str) -> Any:
    def check(_: object, attribute: attrs.Attribute[str], value: object) -> None:
        if not isinstance(value, str):
            raise TypeError(f"{kind} {attribute.name} must be a string, got {_describe(value)}")
        if not value:
            raise ValueError(f"{kind} {attribute.name} must not be empty")

    return check


_ISO_DATETIME: Final = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,6}))?)?"
    r"(?:([Zz])|([+-])(\d{2})(?::?(\d{2}))?)?"
)


def _parse_iso_datetime(text: str) -> datetime:
    """Parse an ISO 8601 date-time, the same way on every Python version.

    Accepts ``YYYY-MM-DDTHH:MM[:SS[.ffffff]]`` (``T`` or a space), optionally followed
    by ``Z`` or an offset ``±HH[:MM]``; the result is naive when no offset is given.
    A bare date is *not* a date-time. Raises :class:`ValueError`.

    >>> _parse_iso_datetime("2024-01-31T10:00:00Z")
    datetime.datetime(2024, 1, 31, 10, 0, tzinfo=datetime.timezone.utc)
    >>> _parse_iso_datetime("2024-01-31 10:00:00.5+02:00").isoformat()
    '2024-01-31T10:00:00.500000+02:00'
    """
    m = _ISO_DATETIME.fullmatch(text.strip())
    if m is None:
        raise ValueError(f"invalid ISO 8601 date-time {_show(text)}")
    year, month, day, hour, minute = (int(g) for g in m.group(1, 2, 3, 4, 5))
    second = int(m.group(6) or 0)
    micro = int((m.group(7) or "0").ljust(6, "0"))
    tz: timezone | None = None
    if m.group(8):
        tz = timezone.utc
    elif m.group(9):
        hours, minutes = int(m.group(10)), int(m.group(11) or 0)
        if hours > 23 or minutes > 59:
            raise ValueError(f"invalid UTC offset in {_show(text)}")
        offset = timedelta(hours=hours, minutes=minutes)
        tz = timezone.utc if not offset else timezone(-offset if m.group(9) == "-" else offset)
    try:
        return datetime(year, month, day, hour, minute, second, micro, tzinfo=tz)
    except ValueError:
        raise ValueError(f"invalid ISO 8601 date-time {_show(text)}") from None


def _to_datetime(value: datetime | str) -> datetime:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str):
        return _parse_iso_datetime(value)
    raise TypeError(f"Event at must be a datetime or an ISO 8601 string, got {_describe(value)}")


@attrs.frozen
class Profile:
    """A profile: its external ``key`` and its attribute values.

    ``attributes`` is stored as a read-only copy. Two profiles are equal when both
    the key and the attributes are equal; the hash uses the key only, so a profile
    can sit in a set even when an attribute holds a list.

    >>> p = Profile("c-1", {"age": 31})
    >>> p.attributes["age"], p == Profile("c-1", {"age": 31}), len({p, p})
    (31, True, 1)
    >>> Profile("")
    Traceback (most recent call last):
    ...
    ValueError: Profile key must not be empty

    Validation against a schema (types, unknown attributes) is
    :meth:`segkit.schema.Schema.validate_profile`'s job.

    .. versionadded:: 0.1.0
    """

    key: str = attrs.field(validator=_check_name("Profile"))
    attributes: Mapping[str, Any] = attrs.field(
        factory=_FrozenDict, converter=_freeze_attributes, hash=False
    )


@attrs.frozen
class Event:
    """Something a profile did at a moment: ``Event(key, name, at, properties)``.

    ``at`` is a :class:`~datetime.datetime` or an ISO 8601 string (parsed on the
    spot; a trailing ``Z`` means UTC). It should be time-zone aware;
    :meth:`segkit.schema.Schema.validate_event` localizes a naive one in the
    schema's time zone or rejects it. ``properties`` is stored as a read-only copy
    and left out of the hash.

    >>> e = Event("c-1", "purchase", "2024-06-01T09:30:00Z", {"amount": 42.0})
    >>> e.at
    datetime.datetime(2024, 6, 1, 9, 30, tzinfo=datetime.timezone.utc)
    >>> e.properties["amount"]
    42.0
    >>> Event("c-1", "purchase", 1717234200)
    Traceback (most recent call last):
    ...
    TypeError: Event at must be a datetime or an ISO 8601 string, got 1717234200 (int)

    .. versionadded:: 0.1.0
    """

    key: str = attrs.field(validator=_check_name("Event"))
    name: str = attrs.field(validator=_check_name("Event"))
    at: datetime = attrs.field(converter=_to_datetime)
    properties: Mapping[str, Any] = attrs.field(
        factory=_FrozenDict, converter=_freeze_properties, hash=False
    )


class IdMap:
    """A two-way map between external keys (``str``) and dense ``uint32`` ids.

    Ids are handed out 0, 1, 2, … in the order keys are first seen. What happens to
    the id of a deleted key is a policy:

    * ``reuse_ids=False`` (the default): a freed id is never handed out again, so a
      membership bitmap that still holds it cannot silently make a *new* profile a
      member. Ids grow with every profile ever seen (:attr:`high_water`).
    * ``reuse_ids=True``: freed ids are reused, lowest first, which keeps bitmaps
      dense under churn. The caller must first clear the id from every bitmap.

    At most 2**32 ids (0 to 2**32 - 1) exist; one more raises :class:`OverflowError`.

    >>> ids = IdMap()
    >>> ids.assign("c-1"), ids.assign("c-2"), ids.assign("c-1")
    (0, 1, 0)
    >>> ids.delete("c-1")
    0
    >>> ids.assign("c-3"), ids.high_water, len(ids)
    (2, 3, 2)
    >>> reusing = IdMap(reuse_ids=True)
    >>> [reusing.assign(k) for k in "abc"], reusing.delete("a"), reusing.assign("d")
    ([0, 1, 2], 0, 0)

    .. versionadded:: 0.1.0
    """

    __slots__ = ("_free", "_id_of", "_key_of", "_reuse_ids")

    #: Number of distinct ids available (uint32).
    _MAX_IDS: ClassVar[int] = 2**32

    def __init__(self, *, reuse_ids: bool = False) -> None:
        self._reuse_ids = reuse_ids
        self._id_of: dict[str, int] = {}
        self._key_of: list[str | None] = []
        self._free: list[int] = []

    @property
    def reuse_ids(self) -> bool:
        """Whether freed ids are handed out again (see the class docstring)."""
        return self._reuse_ids

    @property
    def high_water(self) -> int:
        """The next never-used id (one more than the largest id ever assigned).

        >>> ids = IdMap()
        >>> ids.high_water, ids.assign("a"), ids.high_water
        (0, 0, 1)
        """
        return len(self._key_of)

    def assign(self, key: str) -> int:
        """The id of ``key``, assigning the next one if ``key`` is new.

        >>> IdMap().assign("c-1")
        0
        """
        found = self._id_of.get(key)
        if found is not None:
            return found
        if not isinstance(key, str):
            raise TypeError(f"a profile key must be a string, got {_describe(key)}")
        if not key:
            raise ValueError("a profile key must not be empty")
        if self._free:
            new_id = heapq.heappop(self._free)
            self._key_of[new_id] = key
        else:
            new_id = len(self._key_of)
            if new_id >= self._MAX_IDS:
                raise OverflowError(
                    f"no ids left: all {self._MAX_IDS} uint32 ids have been assigned"
                    + ("" if self._reuse_ids else " (consider IdMap(reuse_ids=True))")
                )
            self._key_of.append(key)
        self._id_of[key] = new_id
        return new_id

    def id_of(self, key: str) -> int:
        """The id of a known ``key``; :class:`KeyError` if it has none.

        >>> ids = IdMap()
        >>> _ = ids.assign("c-1")
        >>> ids.id_of("c-1")
        0
        >>> ids.id_of("c-9")
        Traceback (most recent call last):
        ...
        KeyError: "unknown profile key 'c-9'"
        """
        try:
            return self._id_of[key]
        except KeyError:
            raise KeyError(f"unknown profile key {_show(key)}") from None
        except TypeError:
            raise TypeError(f"a profile key must be a string, got {_describe(key)}") from None

    def get(self, key: str, default: _T | None = None) -> int | _T | None:
        """The id of ``key``, or ``default`` when it has none.

        >>> IdMap().get("c-1", -1)
        -1
        """
        return self._id_of.get(key, default)

    def key_of(self, id_: int) -> str:
        """The key holding ``id_``; :class:`KeyError` for a free or never-used id.

        >>> ids = IdMap()
        >>> _ = ids.assign("c-1")
        >>> ids.key_of(0)
        'c-1'
        >>> ids.key_of(7)
        Traceback (most recent call last):
        ...
        KeyError: 'no profile has id 7'
        """
        key = self._key_of[id_] if 0 <= id_ < len(self._key_of) else None
        if key is None:
            raise KeyError(f"no profile has id {_show(id_)}")
        return key

    def __contains__(self, key: object) -> bool:
        return key in self._id_of

    def __len__(self) -> int:
        return len(self._id_of)

    def __iter__(self) -> Iterator[str]:
        return self.keys()

    def __repr__(self) -> str:
        return (
            f"IdMap(<{len(self)} keys>, high_water={self.high_water}, reuse_ids={self._reuse_ids})"
        )

    def delete(self, key: str) -> int:
        """Forget ``key`` and return its freed id; :class:`KeyError` if unknown.

        With ``reuse_ids=True`` the id goes back to the pool: clear it from every
        bitmap before the next :meth:`assign`.

        >>> ids = IdMap()
        >>> _ = ids.assign("c-1")
        >>> ids.delete("c-1"), "c-1" in ids
        (0, False)
        """
        freed = self.id_of(key)
        del self._id_of[key]
        self._key_of[freed] = None
        if self._reuse_ids:
            heapq.heappush(self._free, freed)
        return freed

    def rename(self, old_key: str, new_key: str) -> int:
        """Move the id of ``old_key`` to ``new_key`` and return it.

        :class:`KeyError` if ``old_key`` is unknown, :class:`ValueError` if
        ``new_key`` already has an id (merge the two profiles instead).

        >>> ids = IdMap()
        >>> _ = ids.assign("anon-42")
        >>> ids.rename("anon-42", "c-1"), ids.key_of(0)
        (0, 'c-1')
        """
        id_ = self.id_of(old_key)
        if new_key == old_key:
            return id_
        if not isinstance(new_key, str):
            raise TypeError(f"a profile key must be a string, got {_describe(new_key)}")
        if not new_key:
            raise ValueError("a profile key must not be empty")
        if new_key in self._id_of:
            raise ValueError(
                f"cannot rename {_show(old_key)} to {_show(new_key)}: "
                f"{_show(new_key)} already has id {self._id_of[new_key]}"
            )
        del self._id_of[old_key]
        self._id_of[new_key] = id_
        self._key_of[id_] = new_key
        return id_

    def keys(self) -> Iterator[str]:
        """The live keys, in ascending id order.

        >>> ids = IdMap()
        >>> _ = [ids.assign(k) for k in ("b", "a")]
        >>> list(ids.keys())
        ['b', 'a']
        """
        return (k for k in self._key_of if k is not None)

    def ids(self) -> Iterator[int]:
        """The live ids, ascending.

        >>> ids = IdMap()
        >>> _ = [ids.assign(k) for k in "abc"]
        >>> _ = ids.delete("b")
        >>> list(ids.ids())
        [0, 2]
        """
        return (i for i, k in enumerate(self._key_of) if k is not None)

    def keys_by_id(self) -> list[str | None]:
        """Every id's key, indexed by id: ``keys_by_id()[i]`` is the key of id ``i``.

        A free id (its key was deleted) holds ``None``, so positions are kept; the
        list has :attr:`high_water` entries. This is the key list a stored bitmap of
        ids needs (see :func:`segkit.storage.encode_keys`). The list is a copy.

        >>> ids = IdMap()
        >>> _ = [ids.assign(k) for k in ("c-1", "c-2", "c-3")]
        >>> _ = ids.delete("c-2")
        >>> ids.keys_by_id()
        ['c-1', None, 'c-3']

        .. versionadded:: 0.1.0
        """
        return list(self._key_of)

    def items(self) -> Iterator[tuple[str, int]]:
        """``(key, id)`` pairs of the live keys, in ascending id order.

        >>> ids = IdMap()
        >>> _ = ids.assign("a")
        >>> list(ids.items())
        [('a', 0)]
        """
        return ((k, i) for i, k in enumerate(self._key_of) if k is not None)
