"""``InMemoryStorage``: the Engine's default storage, the reference backend and the test fake.

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import threading
from collections.abc import Hashable
from datetime import datetime
from typing import TypeVar

import attrs

from segkit.storage.protocol import (
    check_version,
    describe_bitmap,
    describe_segment,
    describe_snapshot,
    describe_usage,
)
from segkit.storage.records import SegmentRecord, Snapshot, UsageRecord, Versioned, utc_instant

__all__ = ["InMemoryStorage"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


def _key_text(value: object, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise TypeError(f"{what} must be a non-empty string, got {value!r}")
    return value


class InMemoryStorage:
    """A :class:`~segkit.storage.Storage` kept in Python dicts, guarded by one lock.

    Nothing survives the process: it is the default of ``segkit.Engine``, the
    reference implementation of the protocol, and a fake for tests. Every method
    holds the lock for its whole duration, so compare-and-set is atomic across
    threads. Versions come from one counter shared by every key, so a key never
    gets a version it had before. Records are frozen; the one mutable field (a
    segment's ``rule`` dict) is copied on the way in and on the way out.

    >>> from datetime import datetime, timezone
    >>> from segkit.storage import SegmentRecord, Snapshot
    >>> storage = InMemoryStorage()
    >>> now = datetime(2024, 6, 30, tzinfo=timezone.utc)
    >>> v = storage.put_segment(SegmentRecord("vip", "static", now, now), expected_version=None)
    >>> storage.put_bitmap("b", b"...", expected_version=None), storage.put_snapshot(Snapshot("vip", now, 3), expected_version=None)
    (2, 3)
    >>> storage
    InMemoryStorage(segments=1, bitmaps=1, snapshots=1, usage=0)

    .. versionadded:: 0.1.0
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._revision = 0
        self._segments: dict[str, Versioned[SegmentRecord]] = {}
        self._bitmaps: dict[str, Versioned[bytes]] = {}
        self._snapshots: dict[tuple[str, datetime], Versioned[Snapshot]] = {}
        self._usage: dict[tuple[str, str, str], Versioned[UsageRecord]] = {}

    def __repr__(self) -> str:
        return (
            f"InMemoryStorage(segments={len(self._segments)}, bitmaps={len(self._bitmaps)}, "
            f"snapshots={len(self._snapshots)}, usage={len(self._usage)})"
        )

    # --- the compare-and-set core (call with the lock held) --------------------------------

    def _put(
        self, table: dict[K, Versioned[V]], key: K, value: V, what: str, expected: int | None
    ) -> int:
        current = table.get(key)
        check_version(what, expected, None if current is None else current.version)
        self._revision += 1
        table[key] = Versioned(value, self._revision)
        return self._revision

    @staticmethod
    def _delete(table: dict[K, Versioned[V]], key: K, what: str, expected: int) -> None:
        current = table.get(key)
        if expected is None:
            raise TypeError("expected_version of a delete must be an int, got None")
        check_version(what, expected, None if current is None else current.version)
        del table[key]

    # --- segments --------------------------------------------------------------------------

    def get_segment(self, name: str) -> Versioned[SegmentRecord] | None:
        """See :meth:`segkit.storage.Storage.get_segment`."""
        with self._lock:
            found = self._segments.get(name)
        return None if found is None else Versioned(attrs.evolve(found.value), found.version)

    def put_segment(self, record: SegmentRecord, *, expected_version: int | None) -> int:
        """See :meth:`segkit.storage.Storage.put_segment`."""
        if not isinstance(record, SegmentRecord):
            raise TypeError(f"expected a SegmentRecord, got {type(record).__name__}")
        copy = attrs.evolve(record)
        with self._lock:
            return self._put(
                self._segments, record.name, copy, describe_segment(record.name), expected_version
            )

    def delete_segment(self, name: str, *, expected_version: int) -> None:
        """See :meth:`segkit.storage.Storage.delete_segment`."""
        with self._lock:
            self._delete(self._segments, name, describe_segment(name), expected_version)

    def list_segments(self) -> list[str]:
        """See :meth:`segkit.storage.Storage.list_segments`."""
        with self._lock:
            return sorted(self._segments)

    # --- bitmaps ---------------------------------------------------------------------------

    def get_bitmap(self, key: str) -> Versioned[bytes] | None:
        """See :meth:`segkit.storage.Storage.get_bitmap`."""
        with self._lock:
            return self._bitmaps.get(key)

    def put_bitmap(self, key: str, data: bytes, *, expected_version: int | None) -> int:
        """See :meth:`segkit.storage.Storage.put_bitmap`."""
        key = _key_text(key, "a bitmap key")
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"bitmap data must be bytes, got {type(data).__name__}")
        value = bytes(data)
        with self._lock:
            return self._put(self._bitmaps, key, value, describe_bitmap(key), expected_version)

    def delete_bitmap(self, key: str, *, expected_version: int) -> None:
        """See :meth:`segkit.storage.Storage.delete_bitmap`."""
        with self._lock:
            self._delete(self._bitmaps, key, describe_bitmap(key), expected_version)

    def list_bitmaps(self) -> list[str]:
        """See :meth:`segkit.storage.Storage.list_bitmaps`."""
        with self._lock:
            return sorted(self._bitmaps)

    # --- snapshots -------------------------------------------------------------------------

    def get_snapshot(self, segment: str, at: datetime) -> Versioned[Snapshot] | None:
        """See :meth:`segkit.storage.Storage.get_snapshot`."""
        with self._lock:
            return self._snapshots.get((segment, utc_instant(at)))

    def put_snapshot(self, snapshot: Snapshot, *, expected_version: int | None) -> int:
        """See :meth:`segkit.storage.Storage.put_snapshot`."""
        if not isinstance(snapshot, Snapshot):
            raise TypeError(f"expected a Snapshot, got {type(snapshot).__name__}")
        key = (snapshot.segment, snapshot.at)
        what = describe_snapshot(*key)
        with self._lock:
            return self._put(self._snapshots, key, snapshot, what, expected_version)

    def delete_snapshot(self, segment: str, at: datetime, *, expected_version: int) -> None:
        """See :meth:`segkit.storage.Storage.delete_snapshot`."""
        at = utc_instant(at)
        with self._lock:
            self._delete(
                self._snapshots, (segment, at), describe_snapshot(segment, at), expected_version
            )

    def list_snapshots(self, segment: str | None = None) -> list[Versioned[Snapshot]]:
        """See :meth:`segkit.storage.Storage.list_snapshots`."""
        with self._lock:
            found = [
                v for (seg, _), v in self._snapshots.items() if segment is None or seg == segment
            ]
        return sorted(found, key=lambda v: (v.value.segment, v.value.at))

    # --- usage -----------------------------------------------------------------------------

    def get_usage(self, segment: str, tool: str, ref: str) -> Versioned[UsageRecord] | None:
        """See :meth:`segkit.storage.Storage.get_usage`."""
        with self._lock:
            return self._usage.get((segment, tool, ref))

    def put_usage(self, record: UsageRecord, *, expected_version: int | None) -> int:
        """See :meth:`segkit.storage.Storage.put_usage`."""
        if not isinstance(record, UsageRecord):
            raise TypeError(f"expected a UsageRecord, got {type(record).__name__}")
        with self._lock:
            return self._put(
                self._usage, record.key, record, describe_usage(*record.key), expected_version
            )

    def delete_usage(self, segment: str, tool: str, ref: str, *, expected_version: int) -> None:
        """See :meth:`segkit.storage.Storage.delete_usage`."""
        with self._lock:
            self._delete(
                self._usage,
                (segment, tool, ref),
                describe_usage(segment, tool, ref),
                expected_version,
            )

    def list_usage(self, segment: str | None = None) -> list[Versioned[UsageRecord]]:
        """See :meth:`segkit.storage.Storage.list_usage`."""
        with self._lock:
            found = [v for key, v in self._usage.items() if segment is None or key[0] == segment]
        return sorted(found, key=lambda v: v.value.key)
