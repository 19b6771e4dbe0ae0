"""``MappingStorage``: the storage protocol over any ``MutableMapping[str, bytes]``.

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator, MutableMapping
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any, TypeAlias, TypeVar, cast
from urllib.parse import quote, unquote

from segkit.errors import CorruptDataError
from segkit.storage.codec import ValueKind, decode, encode
from segkit.storage.protocol import (
    check_version,
    describe_bitmap,
    describe_segment,
    describe_snapshot,
    describe_usage,
)
from segkit.storage.records import SegmentRecord, Snapshot, UsageRecord, Versioned, utc_instant

__all__ = ["MappingStorage", "RawMapping"]

R = TypeVar("R")

#: What :class:`MappingStorage` accepts: a ``dict``, a ``shelve.Shelf``, a ``dbm``
#: database (whose keys come back as ``bytes``) or any other such mapping.
RawMapping: TypeAlias = MutableMapping[str, bytes] | MutableMapping[str | bytes, bytes]


def _q(part: str) -> str:
    """One key component, percent-encoded so that ``/`` can separate components."""
    return quote(part, safe="")


def _json(value: dict[str, Any]) -> bytes:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()


class MappingStorage:
    """A :class:`~segkit.storage.Storage` over a mapping of string keys to bytes.

    ``mapping`` is anything with ``__getitem__``, ``__setitem__``,
    ``__delitem__`` and ``keys()``: a ``dict``, ``dbm.open(path, "c")``,
    ``shelve.open(path)``, or a dict-like client of a key-value server. segkit
    never opens, syncs or closes it: that stays with the caller. Every value is a
    :mod:`~segkit.storage.codec` frame carrying its version and a checksum over
    the value and its key, so damaged or misplaced bytes raise
    :class:`~segkit.CorruptDataError` instead of being read.

    Keys (components percent-encoded, under ``prefix``, default ``"segkit/"``)::

        segkit/revision                         the version counter
        segkit/segment/<name>                   SegmentRecord (JSON)
        segkit/bitmap/<key>                     bitmap bytes
        segkit/snapshot/<segment>/<at, UTC>     Snapshot (JSON)
        segkit/usage/<segment>/<tool>/<ref>     UsageRecord (JSON)

    **Compare-and-set** holds between everyone using the same ``lock``. By default
    each ``MappingStorage`` has its own lock, which is enough for threads sharing
    that instance. When several instances or processes write to one underlying
    store, pass the same ``lock``: any context manager that excludes the others,
    such as a file lock or a lock on the key-value server. Listing reads every key
    of the mapping (a mapping has no range scan); use a ``prefix`` per storage to
    share one mapping.

    >>> storage = MappingStorage({})
    >>> v = storage.put_bitmap("b", b"\\x01\\x02", expected_version=None)
    >>> storage.get_bitmap("b")
    Versioned(value=b'\\x01\\x02', version=1)
    >>> sorted(storage.mapping)
    ['segkit/bitmap/b', 'segkit/revision']

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        mapping: RawMapping,
        *,
        prefix: str = "segkit/",
        lock: AbstractContextManager[Any] | None = None,
    ) -> None:
        if not isinstance(mapping, MutableMapping):
            raise TypeError(f"expected a MutableMapping, got {type(mapping).__name__}")
        if not isinstance(prefix, str):
            raise TypeError(f"prefix must be a string, got {type(prefix).__name__}")
        self._mapping = cast("MutableMapping[Any, Any]", mapping)
        self._prefix = prefix
        self._lock: AbstractContextManager[Any] = threading.RLock() if lock is None else lock

    @property
    def mapping(self) -> RawMapping:
        """The underlying mapping (for tests and maintenance; writing to it bypasses the locks)."""
        return self._mapping

    @property
    def prefix(self) -> str:
        """The prefix of every key this storage writes."""
        return self._prefix

    def __repr__(self) -> str:
        return f"MappingStorage({type(self._mapping).__name__}, prefix={self._prefix!r})"

    # --- raw access (call with the lock held) ----------------------------------------------

    def _read(self, key: str, kind: ValueKind) -> tuple[bytes, int] | None:
        try:
            raw = self._mapping[key]
        except KeyError:
            return None
        frame = decode(raw, key=key, kind=kind)
        return frame.payload, frame.version

    def _keys(self, prefix: str) -> Iterator[str]:
        full = self._prefix + prefix
        for raw in list(self._mapping.keys()):
            key = raw.decode("utf-8") if isinstance(raw, bytes) else raw
            if isinstance(key, str) and key.startswith(full):
                yield key

    def _next_version(self) -> int:
        key = self._prefix + "revision"
        found = self._read(key, "meta")
        if found is None:  # a new store, or a lost counter: start above every stored version
            current = max((self._version_at(k) for k in self._keys("")), default=0)
        else:
            current = found[1]
        self._mapping[key] = encode("meta", b"", version=current + 1, key=key)
        return current + 1

    def _version_at(self, key: str) -> int:
        raw = self._mapping[key]
        return decode(raw, key=key).version

    def _put(
        self, key: str, kind: ValueKind, payload: bytes, what: str, expected: int | None
    ) -> int:
        with self._lock:
            found = self._read(key, kind)
            check_version(what, expected, None if found is None else found[1])
            version = self._next_version()
            self._mapping[key] = encode(kind, payload, version=version, key=key)
            return version

    def _delete(self, key: str, kind: ValueKind, what: str, expected: int) -> None:
        if expected is None:
            raise TypeError("expected_version of a delete must be an int, got None")
        with self._lock:
            found = self._read(key, kind)
            check_version(what, expected, None if found is None else found[1])
            del self._mapping[key]

    def _get(
        self, key: str, kind: ValueKind, load: Callable[[dict[str, Any]], R]
    ) -> Versioned[R] | None:
        with self._lock:
            found = self._read(key, kind)
        return None if found is None else Versioned(self._load(key, found[0], load), found[1])

    def _list(
        self, prefix: str, kind: ValueKind, load: Callable[[dict[str, Any]], R]
    ) -> list[Versioned[R]]:
        with self._lock:
            found = [(key, self._read(key, kind)) for key in self._keys(prefix)]
        return [
            Versioned(self._load(key, item[0], load), item[1])
            for key, item in found
            if item is not None
        ]

    @staticmethod
    def _load(key: str, payload: bytes, load: Callable[[dict[str, Any]], R]) -> R:
        try:
            return load(json.loads(payload.decode("utf-8")))
        except (ValueError, TypeError) as e:  # JSONDecodeError and UnicodeDecodeError too
            raise CorruptDataError(f"stored value for key {key!r} is corrupt: {e}") from None

    # --- key layout ------------------------------------------------------------------------

    def _segment_key(self, name: str) -> str:
        return f"{self._prefix}segment/{_q(name)}"

    def _bitmap_key(self, key: str) -> str:
        return f"{self._prefix}bitmap/{_q(key)}"

    def _snapshot_key(self, segment: str, at: datetime) -> str:
        return f"{self._prefix}snapshot/{_q(segment)}/{_q(utc_instant(at).isoformat())}"

    def _usage_key(self, segment: str, tool: str, ref: str) -> str:
        return f"{self._prefix}usage/{_q(segment)}/{_q(tool)}/{_q(ref)}"

    # --- segments --------------------------------------------------------------------------

    def get_segment(self, name: str) -> Versioned[SegmentRecord] | None:
        """See :meth:`segkit.storage.Storage.get_segment`."""
        return self._get(self._segment_key(name), "segment", SegmentRecord.from_dict)

    def put_segment(self, record: SegmentRecord, *, expected_version: int | None) -> int:
        """See :meth:`segkit.storage.Storage.put_segment`."""
        if not isinstance(record, SegmentRecord):
            raise TypeError(f"expected a SegmentRecord, got {type(record).__name__}")
        key = self._segment_key(record.name)
        payload = _json(record.to_dict())
        return self._put(key, "segment", payload, describe_segment(record.name), expected_version)

    def delete_segment(self, name: str, *, expected_version: int) -> None:
        """See :meth:`segkit.storage.Storage.delete_segment`."""
        self._delete(self._segment_key(name), "segment", describe_segment(name), expected_version)

    def list_segments(self) -> list[str]:
        """See :meth:`segkit.storage.Storage.list_segments`."""
        start = len(self._prefix + "segment/")
        with self._lock:
            return sorted(unquote(key[start:]) for key in self._keys("segment/"))

    # --- bitmaps ---------------------------------------------------------------------------

    def get_bitmap(self, key: str) -> Versioned[bytes] | None:
        """See :meth:`segkit.storage.Storage.get_bitmap`."""
        with self._lock:
            found = self._read(self._bitmap_key(key), "bitmap")
        return None if found is None else Versioned(found[0], found[1])

    def put_bitmap(self, key: str, data: bytes, *, expected_version: int | None) -> int:
        """See :meth:`segkit.storage.Storage.put_bitmap`."""
        if not isinstance(key, str) or not key:
            raise TypeError(f"a bitmap key must be a non-empty string, got {key!r}")
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"bitmap data must be bytes, got {type(data).__name__}")
        return self._put(
            self._bitmap_key(key), "bitmap", bytes(data), describe_bitmap(key), expected_version
        )

    def delete_bitmap(self, key: str, *, expected_version: int) -> None:
        """See :meth:`segkit.storage.Storage.delete_bitmap`."""
        self._delete(self._bitmap_key(key), "bitmap", describe_bitmap(key), expected_version)

    def list_bitmaps(self) -> list[str]:
        """See :meth:`segkit.storage.Storage.list_bitmaps`."""
        start = len(self._prefix + "bitmap/")
        with self._lock:
            return sorted(unquote(key[start:]) for key in self._keys("bitmap/"))

    # --- snapshots -------------------------------------------------------------------------

    def get_snapshot(self, segment: str, at: datetime) -> Versioned[Snapshot] | None:
        """See :meth:`segkit.storage.Storage.get_snapshot`."""
        return self._get(self._snapshot_key(segment, at), "snapshot", Snapshot.from_dict)

    def put_snapshot(self, snapshot: Snapshot, *, expected_version: int | None) -> int:
        """See :meth:`segkit.storage.Storage.put_snapshot`."""
        if not isinstance(snapshot, Snapshot):
            raise TypeError(f"expected a Snapshot, got {type(snapshot).__name__}")
        key = self._snapshot_key(snapshot.segment, snapshot.at)
        what = describe_snapshot(snapshot.segment, snapshot.at)
        return self._put(key, "snapshot", _json(snapshot.to_dict()), what, expected_version)

    def delete_snapshot(self, segment: str, at: datetime, *, expected_version: int) -> None:
        """See :meth:`segkit.storage.Storage.delete_snapshot`."""
        what = describe_snapshot(segment, utc_instant(at))
        self._delete(self._snapshot_key(segment, at), "snapshot", what, expected_version)

    def list_snapshots(self, segment: str | None = None) -> list[Versioned[Snapshot]]:
        """See :meth:`segkit.storage.Storage.list_snapshots`."""
        prefix = "snapshot/" if segment is None else f"snapshot/{_q(segment)}/"
        found = self._list(prefix, "snapshot", Snapshot.from_dict)
        return sorted(found, key=lambda v: (v.value.segment, v.value.at))

    # --- usage -----------------------------------------------------------------------------

    def get_usage(self, segment: str, tool: str, ref: str) -> Versioned[UsageRecord] | None:
        """See :meth:`segkit.storage.Storage.get_usage`."""
        return self._get(self._usage_key(segment, tool, ref), "usage", UsageRecord.from_dict)

    def put_usage(self, record: UsageRecord, *, expected_version: int | None) -> int:
        """See :meth:`segkit.storage.Storage.put_usage`."""
        if not isinstance(record, UsageRecord):
            raise TypeError(f"expected a UsageRecord, got {type(record).__name__}")
        key = self._usage_key(*record.key)
        what = describe_usage(*record.key)
        return self._put(key, "usage", _json(record.to_dict()), what, expected_version)

    def delete_usage(self, segment: str, tool: str, ref: str, *, expected_version: int) -> None:
        """See :meth:`segkit.storage.Storage.delete_usage`."""
        what = describe_usage(segment, tool, ref)
        self._delete(self._usage_key(segment, tool, ref), "usage", what, expected_version)

    def list_usage(self, segment: str | None = None) -> list[Versioned[UsageRecord]]:
        """See :meth:`segkit.storage.Storage.list_usage`."""
        prefix = "usage/" if segment is None else f"usage/{_q(segment)}/"
        found = self._list(prefix, "usage", UsageRecord.from_dict)
        return sorted(found, key=lambda v: v.value.key)
