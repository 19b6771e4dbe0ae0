"""The :class:`Storage` protocol: the plug-in contract for persisting segkit's state.

segkit opens no file and no socket. The embedding application hands the Engine an
object with the methods below; :class:`~segkit.storage.InMemoryStorage` (the
default) and :class:`~segkit.storage.MappingStorage` (over any ``dict``-like store)
ship with segkit, and ``segkit.testing`` checks a third-party one.

Four kinds of values, each under its own keys:

============  ===========================  =================================
kind          key                          value
============  ===========================  =================================
segment       ``name``                     :class:`SegmentRecord`
bitmap        ``key`` (any string)         ``bytes`` (portable Roaring)
snapshot      ``(segment, at)``            :class:`Snapshot`
usage         ``(segment, tool, ref)``     :class:`UsageRecord`
============  ===========================  =================================

Every write names the version it expects to replace (compare-and-set):
``expected_version=None`` means "the key must not exist", an int means "the key
must hold exactly this version". On a mismatch the write changes nothing and
raises :class:`~segkit.ConflictError`, so two writers never silently overwrite each
other: the loser re-reads and retries (or gives up). A successful write returns
the key's new version. Versions are ints ``>= 1``; a key never gets a version it
had before, not even after a delete and a re-create.

>>> from datetime import datetime, timezone
>>> from segkit.storage import InMemoryStorage, SegmentRecord
>>> storage = InMemoryStorage()
>>> isinstance(storage, Storage)
True
>>> now = datetime(2024, 6, 30, tzinfo=timezone.utc)
>>> v1 = storage.put_segment(SegmentRecord("vip", "static", now, now), expected_version=None)
>>> storage.put_segment(SegmentRecord("vip", "static", now, now), expected_version=None)
Traceback (most recent call last):
...
segkit.errors.ConflictError: segment 'vip': expected no stored value, found version 1

.. versionadded:: 0.1.0
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol, runtime_checkable

from segkit.errors import ConflictError
from segkit.storage.records import SegmentRecord, Snapshot, UsageRecord, Versioned

__all__ = [
    "Storage",
    "check_version",
    "describe_bitmap",
    "describe_segment",
    "describe_snapshot",
    "describe_usage",
]


def check_version(what: str, expected: int | None, found: int | None) -> None:
    """Raise :class:`~segkit.ConflictError` unless ``found`` is the ``expected`` version.

    ``what`` names the key in the message (see the ``describe_*`` helpers);
    ``None`` means "no stored value". Backends call this so that every backend
    words its conflicts the same way. An ``expected`` that is not ``None`` or an
    int ``>= 1`` is a caller bug (``TypeError``/``ValueError``).

    >>> check_version("segment 'vip'", 3, 3)
    >>> check_version("segment 'vip'", 3, 4)
    Traceback (most recent call last):
    ...
    segkit.errors.ConflictError: segment 'vip': expected version 3, found version 4
    >>> check_version("segment 'vip'", 3, None)
    Traceback (most recent call last):
    ...
    segkit.errors.ConflictError: segment 'vip': expected version 3, found no stored value

    .. versionadded:: 0.1.0
    """
    if expected is not None:
        if isinstance(expected, bool) or not isinstance(expected, int):
            raise TypeError(f"expected_version must be an int or None, got {expected!r}")
        if expected < 1:
            raise ValueError(f"expected_version must be at least 1, got {expected}")
    if expected == found:
        return
    if expected is None:
        raise ConflictError(f"{what}: expected no stored value, found version {found}")
    if found is None:
        raise ConflictError(f"{what}: expected version {expected}, found no stored value")
    raise ConflictError(f"{what}: expected version {expected}, found version {found}")


def describe_segment(name: str) -> str:
    """How messages name a segment definition.

    >>> describe_segment("vip")
    "segment 'vip'"

    .. versionadded:: 0.1.0
    """
    return f"segment {name!r}"


def describe_bitmap(key: str) -> str:
    """How messages name a stored bitmap.

    >>> describe_bitmap("b")
    "bitmap 'b'"

    .. versionadded:: 0.1.0
    """
    return f"bitmap {key!r}"


def describe_snapshot(segment: str, at: datetime) -> str:
    """How messages name a snapshot.

    >>> from datetime import datetime, timezone
    >>> describe_snapshot("vip", datetime(2024, 6, 30, tzinfo=timezone.utc))
    "snapshot of 'vip' at 2024-06-30T00:00:00+00:00"

    .. versionadded:: 0.1.0
    """
    return f"snapshot of {segment!r} at {at.isoformat()}"


def describe_usage(segment: str, tool: str, ref: str) -> str:
    """How messages name a usage record.

    >>> describe_usage("vip", "workflow", "wf-12")
    "usage of 'vip' by 'workflow' ref 'wf-12'"

    .. versionadded:: 0.1.0
    """
    return f"usage of {segment!r} by {tool!r} ref {ref!r}"


@runtime_checkable
class Storage(Protocol):
    """Where segkit keeps segment definitions, membership bitmaps, snapshots and usage.

    Implement the sixteen methods below (four per kind of value: ``get_*``,
    ``put_*``, ``delete_*``, ``list_*``); no base class is needed. A conforming
    backend:

    * returns ``None`` from ``get_*`` for a missing key, never raises for it;
    * compares and sets atomically: a ``put_*``/``delete_*`` whose
      ``expected_version`` differs from the stored one (``None``: nothing stored)
      changes nothing and raises :class:`~segkit.ConflictError` (use
      :func:`check_version` for the message), even when several threads write;
    * returns from a successful ``put_*`` a new version: an int ``>= 1`` that the
      key never had before, also across a delete and a re-create;
    * returns what was written: equal records and identical bytes, and values
      that do not share mutable state with the caller (a ``rule`` dict changed
      after ``put_segment`` or after ``get_segment`` does not change the store);
    * raises :class:`~segkit.CorruptDataError` rather than return damaged data;
    * may raise any other :class:`~segkit.StorageError` for its own failures.

    A backend stores records as it likes (``to_dict`` gives a JSON form; the
    :mod:`~segkit.storage.codec` frames bytes with a checksum). Records and keys
    are validated by their constructors; a backend need not check them again.
    ``segkit.testing.check_storage`` runs the conformance checks.

    >>> from segkit.storage import InMemoryStorage, MappingStorage
    >>> isinstance(InMemoryStorage(), Storage), isinstance(MappingStorage({}), Storage)
    (True, True)
    >>> isinstance(object(), Storage)
    False

    .. versionadded:: 0.1.0
    """

    # --- segment definitions ------------------------------------------------------------

    def get_segment(self, name: str) -> Versioned[SegmentRecord] | None:
        """The definition of segment ``name`` and its version, or ``None``.

        >>> from datetime import datetime, timezone
        >>> from segkit.storage import InMemoryStorage, SegmentRecord
        >>> s, now = InMemoryStorage(), datetime(2024, 6, 30, tzinfo=timezone.utc)
        >>> s.get_segment("vip") is None
        True
        >>> v = s.put_segment(SegmentRecord("vip", "static", now, now), expected_version=None)
        >>> s.get_segment("vip").value.kind
        'static'

        .. versionadded:: 0.1.0
        """
        ...

    def put_segment(self, record: SegmentRecord, *, expected_version: int | None) -> int:
        """Store ``record`` under ``record.name`` if it holds ``expected_version``; the new version.

        ``expected_version=None`` creates: it fails if the segment exists.

        >>> from datetime import datetime, timezone
        >>> from segkit.storage import InMemoryStorage, SegmentRecord
        >>> s, now = InMemoryStorage(), datetime(2024, 6, 30, tzinfo=timezone.utc)
        >>> v1 = s.put_segment(SegmentRecord("vip", "static", now, now), expected_version=None)
        >>> v2 = s.put_segment(SegmentRecord("vip", "static", now, now, tags=["x"]), expected_version=v1)
        >>> v2 > v1
        True
        >>> s.put_segment(SegmentRecord("vip", "static", now, now), expected_version=v1)
        Traceback (most recent call last):
        ...
        segkit.errors.ConflictError: segment 'vip': expected version 1, found version 2

        .. versionadded:: 0.1.0
        """
        ...

    def delete_segment(self, name: str, *, expected_version: int) -> None:
        """Delete segment ``name`` if it holds ``expected_version``.

        Deleting only the definition leaves its bitmap, snapshots and usage;
        :func:`~segkit.storage.drop_segment_state` removes those too.

        >>> from datetime import datetime, timezone
        >>> from segkit.storage import InMemoryStorage, SegmentRecord
        >>> s, now = InMemoryStorage(), datetime(2024, 6, 30, tzinfo=timezone.utc)
        >>> v = s.put_segment(SegmentRecord("vip", "static", now, now), expected_version=None)
        >>> s.delete_segment("vip", expected_version=v)
        >>> s.delete_segment("vip", expected_version=v)
        Traceback (most recent call last):
        ...
        segkit.errors.ConflictError: segment 'vip': expected version 1, found no stored value

        .. versionadded:: 0.1.0
        """
        ...

    def list_segments(self) -> list[str]:
        """The names of the stored segments, sorted.

        >>> from datetime import datetime, timezone
        >>> from segkit.storage import InMemoryStorage, SegmentRecord
        >>> s, now = InMemoryStorage(), datetime(2024, 6, 30, tzinfo=timezone.utc)
        >>> for name in ("b", "a"):
        ...     _ = s.put_segment(SegmentRecord(name, "static", now, now), expected_version=None)
        >>> s.list_segments()
        ['a', 'b']

        .. versionadded:: 0.1.0
        """
        ...

    # --- membership bitmaps (opaque bytes) ----------------------------------------------

    def get_bitmap(self, key: str) -> Versioned[bytes] | None:
        """The bytes stored under bitmap ``key`` and their version, or ``None``.

        segkit stores portable Roaring bitmaps (the format every Roaring
        implementation reads) under their content address (see
        :func:`~segkit.storage.content_address`), and the key lists of
        :func:`~segkit.storage.encode_keys`; to the backend they are opaque bytes.

        >>> from segkit.storage import InMemoryStorage
        >>> s = InMemoryStorage()
        >>> _ = s.put_bitmap("b", b"\\x3a\\x30", expected_version=None)
        >>> s.get_bitmap("b").value
        b':0'

        .. versionadded:: 0.1.0
        """
        ...

    def put_bitmap(self, key: str, data: bytes, *, expected_version: int | None) -> int:
        """Store ``data`` under bitmap ``key`` if it holds ``expected_version``; the new version.

        >>> from segkit.storage import InMemoryStorage
        >>> s = InMemoryStorage()
        >>> s.put_bitmap("b", b"", expected_version=None)
        1

        .. versionadded:: 0.1.0
        """
        ...

    def delete_bitmap(self, key: str, *, expected_version: int) -> None:
        """Delete bitmap ``key`` if it holds ``expected_version``.

        >>> from segkit.storage import InMemoryStorage
        >>> s = InMemoryStorage()
        >>> s.delete_bitmap("b", expected_version=s.put_bitmap("b", b"", expected_version=None))
        >>> s.get_bitmap("b") is None
        True

        .. versionadded:: 0.1.0
        """
        ...

    def list_bitmaps(self) -> list[str]:
        """The keys of the stored bitmaps, sorted.

        >>> from segkit.storage import InMemoryStorage
        >>> s = InMemoryStorage()
        >>> _ = s.put_bitmap("z", b"", expected_version=None)
        >>> s.list_bitmaps()
        ['z']

        .. versionadded:: 0.1.0
        """
        ...

    # --- size snapshots (one time series per segment) -----------------------------------

    def get_snapshot(self, segment: str, at: datetime) -> Versioned[Snapshot] | None:
        """The snapshot of ``segment`` at instant ``at`` and its version, or ``None``.

        ``at`` is compared as an instant: the same moment in another time zone is
        the same key.

        >>> from datetime import datetime, timedelta, timezone
        >>> from segkit.storage import InMemoryStorage, Snapshot
        >>> s, at = InMemoryStorage(), datetime(2024, 6, 30, tzinfo=timezone.utc)
        >>> _ = s.put_snapshot(Snapshot("vip", at, 10), expected_version=None)
        >>> s.get_snapshot("vip", at.astimezone(timezone(timedelta(hours=2)))).value.size
        10

        .. versionadded:: 0.1.0
        """
        ...

    def put_snapshot(self, snapshot: Snapshot, *, expected_version: int | None) -> int:
        """Store ``snapshot`` under ``(snapshot.segment, snapshot.at)``; the new version.

        >>> from datetime import datetime, timezone
        >>> from segkit.storage import InMemoryStorage, Snapshot
        >>> s, at = InMemoryStorage(), datetime(2024, 6, 30, tzinfo=timezone.utc)
        >>> s.put_snapshot(Snapshot("vip", at, 10), expected_version=None)
        1

        .. versionadded:: 0.1.0
        """
        ...

    def delete_snapshot(self, segment: str, at: datetime, *, expected_version: int) -> None:
        """Delete the snapshot of ``segment`` at ``at`` if it holds ``expected_version``.

        >>> from datetime import datetime, timezone
        >>> from segkit.storage import InMemoryStorage, Snapshot
        >>> s, at = InMemoryStorage(), datetime(2024, 6, 30, tzinfo=timezone.utc)
        >>> v = s.put_snapshot(Snapshot("vip", at, 10), expected_version=None)
        >>> s.delete_snapshot("vip", at, expected_version=v)
        >>> s.list_snapshots("vip")
        []

        .. versionadded:: 0.1.0
        """
        ...

    def list_snapshots(self, segment: str | None = None) -> list[Versioned[Snapshot]]:
        """The snapshots of ``segment`` (of every segment when ``None``), by segment then time.

        >>> from datetime import datetime, timedelta, timezone
        >>> from segkit.storage import InMemoryStorage, Snapshot
        >>> s, at = InMemoryStorage(), datetime(2024, 6, 30, tzinfo=timezone.utc)
        >>> for days, size in ((2, 30), (0, 10), (1, 20)):
        ...     _ = s.put_snapshot(Snapshot("vip", at + timedelta(days=days), size), expected_version=None)
        >>> [v.value.size for v in s.list_snapshots("vip")]
        [10, 20, 30]

        .. versionadded:: 0.1.0
        """
        ...

    # --- usage records ------------------------------------------------------------------

    def get_usage(self, segment: str, tool: str, ref: str) -> Versioned[UsageRecord] | None:
        """The usage record ``(segment, tool, ref)`` and its version, or ``None``.

        >>> from segkit.storage import InMemoryStorage, UsageRecord
        >>> s = InMemoryStorage()
        >>> _ = s.put_usage(UsageRecord("vip", "workflow", "automation", "wf-12"), expected_version=None)
        >>> s.get_usage("vip", "workflow", "wf-12").value.objective
        'automation'

        .. versionadded:: 0.1.0
        """
        ...

    def put_usage(self, record: UsageRecord, *, expected_version: int | None) -> int:
        """Store ``record`` under ``record.key`` if it holds ``expected_version``; the new version.

        >>> from segkit.storage import InMemoryStorage, UsageRecord
        >>> s = InMemoryStorage()
        >>> s.put_usage(UsageRecord("vip", "email", "communication", "nl-7"), expected_version=None)
        1

        .. versionadded:: 0.1.0
        """
        ...

    def delete_usage(self, segment: str, tool: str, ref: str, *, expected_version: int) -> None:
        """Delete the usage record ``(segment, tool, ref)`` if it holds ``expected_version``.

        >>> from segkit.storage import InMemoryStorage, UsageRecord
        >>> s = InMemoryStorage()
        >>> v = s.put_usage(UsageRecord("vip", "email", "communication", "nl-7"), expected_version=None)
        >>> s.delete_usage("vip", "email", "nl-7", expected_version=v)
        >>> s.list_usage()
        []

        .. versionadded:: 0.1.0
        """
        ...

    def list_usage(self, segment: str | None = None) -> list[Versioned[UsageRecord]]:
        """The usage records of ``segment`` (of every segment when ``None``), sorted by key.

        >>> from segkit.storage import InMemoryStorage, UsageRecord
        >>> s = InMemoryStorage()
        >>> for seg, tool in (("b", "ads"), ("a", "web"), ("a", "email")):
        ...     _ = s.put_usage(UsageRecord(seg, tool, "analytics", "r"), expected_version=None)
        >>> [u.value.key for u in s.list_usage()]
        [('a', 'email', 'r'), ('a', 'web', 'r'), ('b', 'ads', 'r')]
        >>> len(s.list_usage("b"))
        1

        .. versionadded:: 0.1.0
        """
        ...
