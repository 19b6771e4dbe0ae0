"""``Members``: an immutable set of profiles, backed by a Roaring bitmap.

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

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

    def to_frame(self, library: str = "pandas") -> Any:
        """The members as a one-column table (``key``, in id order).

        ``library`` is ``"pandas"`` (default), ``"polars"`` or ``"pyarrow"``; it is
        imported here, and a clear error names the extra to install when missing.

        >>> import segkit as sk
        >>> engine = sk.Engine(sk.Schema(attributes={"age": "int"}))
        >>> _ = engine.upsert_many({"a": {"age": 30}, "b": {"age": 12}})
        >>> engine.query("age > 18").to_frame()
          key
        0   a
        >>> engine.query("age > 0").to_frame("polars")["key"].to_list()
        ['a', 'b']
        """
        from segkit.interop import make_frame

        return make_frame({"key": self.keys()}, library)

    def _repr_html_(self) -> str:
        """The notebook view: the size and the first keys."""
        import html

        shown = "".join(
            f"<li><code>{html.escape(k)}</code></li>" for k in itertools.islice(self, 10)
        )
        more = f"<li>… {len(self) - 10:,} more</li>" if len(self) > 10 else ""
        return (
            f"<div><strong>Members</strong> ({len(self):,} profile"
            f"{'' if len(self) == 1 else 's'})<ul>{shown}{more}</ul></div>"
        )

    def __repr__(self) -> str:
        shown = ", ".join(repr(k) for k in itertools.islice(self, 5))
        more = ", ..." if len(self) > 5 else ""
        return f"Members({len(self)}: {shown}{more})" if len(self) else "Members(0)"
