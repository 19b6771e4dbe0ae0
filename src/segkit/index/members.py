"""``Members``: an immutable set of profiles, backed by a Roaring bitmap.

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import TYPE_CHECKING

from pyroaring import BitMap, FrozenBitMap

if TYPE_CHECKING:
    from segkit.records import IdMap

__all__ = ["Members"]


class Members:
    """The members of a segment or query: keys by membership, ids as a frozen bitmap.

    Supports ``len``, ``in`` (by external key), iteration over keys (in id order),
    and ``&``, ``|``, ``-`` with other ``Members`` of the same engine.

    >>> import segkit as sk
    >>> engine = sk.Engine(sk.Schema(attributes={"age": "int"}))
    >>> _ = engine.upsert_many([("a", {"age": 17}), ("b", {"age": 30}), ("c", {"age": 45})])
    >>> adults = engine.query("age >= 18")
    >>> len(adults), "b" in adults, adults.keys()
    (2, True, ['b', 'c'])
    >>> (adults - engine.query("age > 40")).to_list()
    ['b']
    >>> adults
    Members(2: 'b', 'c')

    .. versionadded:: 0.1.0
    """

    __slots__ = ("_idmap", "ids")

    def __init__(self, ids: BitMap | FrozenBitMap, idmap: IdMap) -> None:
        self.ids = ids if isinstance(ids, FrozenBitMap) else FrozenBitMap(ids)
        self._idmap = idmap

    def __len__(self) -> int:
        return len(self.ids)

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str):
            return False
        pid = self._idmap.get(key)
        return pid is not None and pid in self.ids

    def __iter__(self) -> Iterator[str]:
        key_of = self._idmap.key_of
        return (key_of(pid) for pid in self.ids)

    def keys(self) -> list[str]:
        """The members' external keys, in id order."""
        return list(self)

    to_list = keys

    def _other(self, other: object) -> Members:
        if not isinstance(other, Members):
            raise TypeError(f"expected Members, got {type(other).__name__}")
        if other._idmap is not self._idmap:
            raise ValueError("cannot combine Members of different engines")
        return other

    def __and__(self, other: Members) -> Members:
        return Members(self.ids & self._other(other).ids, self._idmap)

    def __or__(self, other: Members) -> Members:
        return Members(self.ids | self._other(other).ids, self._idmap)

    def __sub__(self, other: Members) -> Members:
        return Members(self.ids - self._other(other).ids, self._idmap)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Members):
            return self.ids == other.ids and self._idmap is other._idmap
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.ids)

    def __repr__(self) -> str:
        shown = ", ".join(repr(k) for k in itertools.islice(self, 5))
        more = ", ..." if len(self) > 5 else ""
        return f"Members({len(self)}: {shown}{more})" if len(self) else "Members(0)"
