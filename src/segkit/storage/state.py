"""A segment's whole stored state, written crash-safely across several keys.

One refresh of one segment touches several keys: its membership bitmap, the key
list that gives the bitmap's ids their external keys, its size snapshot, and its
definition. A store offers compare-and-set on one key at a time, not
transactions, so :func:`save_segment_state` orders the writes so that a crash (or
an error) between any two of them leaves every reader with either the complete
old state or the complete new one:

1. **Check** the definition's current version against ``expected_version``
   (fail fast, before writing anything).
2. **Blobs first.** Write the bitmap and the key list under their content
   addresses (:func:`~segkit.storage.content_address`). A blob is never
   overwritten with other bytes (its address *is* its content), so the old
   definition still finds exactly the blobs it names.
3. **Commit.** Put the definition, naming both addresses and carrying the new
   snapshot, with compare-and-set on ``expected_version``. This single write is
   the commit point: before it readers see the old state, after it the new one.
4. **History last.** Add the snapshot to the segment's time series. A crash here
   loses nothing: the committed definition holds the snapshot, and the next save
   of the segment adds it to the series first.

What a crash can leave behind is *garbage* (blobs no definition names), never a
definition pointing at a missing or mismatched bitmap; :func:`collect_garbage`
removes it. :func:`load_segment_state` checks every blob against its address, so
it never returns another membership than the one committed.

>>> from datetime import datetime, timezone
>>> from segkit.storage import InMemoryStorage, SegmentRecord, Snapshot, encode_keys
>>> storage = InMemoryStorage()
>>> now = datetime(2024, 6, 30, tzinfo=timezone.utc)
>>> record = SegmentRecord("imported", "static", now, now)
>>> saved = save_segment_state(storage, record, bitmap=b"<roaring bytes>", keys=encode_keys(["c-1"]),
...                            snapshot=Snapshot("imported", now, 1), expected_version=None)
>>> state = load_segment_state(storage, "imported")
>>> state.version == saved.version, state.bitmap, state.keys, state.record.snapshot.size
(True, b'<roaring bytes>', ('c-1',), 1)

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import threading
from datetime import datetime
from typing import Final

import attrs

from segkit.errors import ConflictError, CorruptDataError
from segkit.storage.codec import content_address, decode_keys, is_content_address
from segkit.storage.protocol import (
    Storage,
    check_version,
    describe_bitmap,
    describe_segment,
    describe_usage,
)
from segkit.storage.records import SegmentRecord, Snapshot, UsageRecord, Versioned

__all__ = [
    "Garbage",
    "SegmentState",
    "collect_garbage",
    "drop_segment_state",
    "load_segment_state",
    "load_segment_states",
    "record_usage",
    "save_segment_state",
]

#: How often a helper re-reads and retries after losing a race on one key.
_RETRIES: Final = 100

#: Content addresses of the key lists that passed :func:`decode_keys` lately. A
#: refresh passes one key list for every segment it saves: parsing it once is enough
#: (the address is a hash of the bytes, so the same address means the same bytes).
_CHECKED_KEYS: dict[str, None] = {}
_CHECKED_KEYS_MAX: Final = 8
_CHECKED_KEYS_LOCK: Final = threading.Lock()


def _check_keys(keys: bytes) -> None:
    """Refuse a malformed key list; each distinct list is parsed once."""
    address = content_address(keys)
    with _CHECKED_KEYS_LOCK:
        if address in _CHECKED_KEYS:
            return
    decode_keys(keys)
    with _CHECKED_KEYS_LOCK:
        _CHECKED_KEYS[address] = None
        while len(_CHECKED_KEYS) > _CHECKED_KEYS_MAX:
            del _CHECKED_KEYS[next(iter(_CHECKED_KEYS))]  # the oldest


@attrs.frozen
class SegmentState:
    """A segment as :func:`load_segment_state` found it: definition, version and membership.

    Attributes:
        record: the stored definition (``record.snapshot`` is the snapshot taken
            with this membership).
        version: the definition's version: pass it as ``expected_version`` to the
            next :func:`save_segment_state` or :func:`drop_segment_state`.
        bitmap: the membership bitmap's bytes (portable Roaring), or ``None``.
        keys: the key list ``record.keys`` names (``keys[i]`` is the external key
            of id ``i``; ``None`` for a free id), or ``None``.

    >>> from datetime import datetime, timezone
    >>> from segkit.storage import InMemoryStorage, SegmentRecord
    >>> storage, now = InMemoryStorage(), datetime(2024, 6, 30, tzinfo=timezone.utc)
    >>> _ = save_segment_state(storage, SegmentRecord("s", "static", now, now), bitmap=None,
    ...                        expected_version=None)
    >>> load_segment_state(storage, "s").bitmap is None
    True

    .. versionadded:: 0.1.0
    """

    record: SegmentRecord
    version: int
    bitmap: bytes | None
    keys: tuple[str | None, ...] | None


@attrs.frozen
class Garbage:
    """What :func:`collect_garbage` found (and removed, unless it was a dry run).

    >>> Garbage((), (), ())
    Garbage(bitmaps=(), snapshots=(), usage=())

    .. versionadded:: 0.1.0
    """

    bitmaps: tuple[str, ...]
    snapshots: tuple[tuple[str, datetime], ...]
    usage: tuple[tuple[str, str, str], ...]


# --- writing ----------------------------------------------------------------------------


def _put_blob(storage: Storage, data: bytes) -> str:
    """Store ``data`` under its content address (once); the address."""
    address = content_address(data)
    for _ in range(_RETRIES):
        found = storage.get_bitmap(address)
        if found is not None and found.value == data:
            return address
        try:  # absent, or damaged bytes the backend did not notice: (re)write it
            storage.put_bitmap(
                address, data, expected_version=None if found is None else found.version
            )
        except ConflictError:
            continue  # another writer got there first: look again
        return address
    raise ConflictError(f"{describe_bitmap(address)}: kept changing while it was written")


def _add_to_history(storage: Storage, name: str, version: int, snapshot: Snapshot) -> None:
    """Make ``snapshot`` (committed in version ``version`` of ``name``) part of the series.

    A newer definition's snapshot at the same instant wins; every write is
    compare-and-set, and a lost race is re-judged from fresh reads.
    """
    for _ in range(_RETRIES):
        current = storage.get_segment(name)
        if current is None:
            return  # dropped meanwhile: its series is garbage now
        owner = current.value.snapshot
        if current.version != version and owner is not None and owner.at == snapshot.at:
            return  # a newer definition owns this instant and records it itself
        found = storage.get_snapshot(name, snapshot.at)
        if found is not None and found.value == snapshot:
            return
        try:
            storage.put_snapshot(
                snapshot, expected_version=None if found is None else found.version
            )
        except ConflictError:
            continue
        return
    raise ConflictError(f"the series of {name!r} kept changing while a snapshot was added")


def save_segment_state(
    storage: Storage,
    record: SegmentRecord,
    *,
    bitmap: bytes | None,
    keys: bytes | None = None,
    snapshot: Snapshot | None = None,
    expected_version: int | None,
) -> Versioned[SegmentRecord]:
    """Store a segment's definition with its membership and snapshot, crash-safely.

    ``bitmap`` is the membership as portable Roaring bytes (``None``: no stored
    membership); ``keys`` is the :func:`~segkit.storage.encode_keys` list that maps
    its ids to external keys (encode it once and pass the same bytes for every
    segment of one refresh: it is stored once). ``record.bitmap``, ``record.keys``
    and ``record.snapshot`` are replaced by what is written here. The writes are
    ordered as the module documentation explains; ``expected_version`` is that of
    the stored definition (``None`` to create it).

    Returns the stored record and its new version. Raises
    :class:`~segkit.ConflictError` if the definition is not at
    ``expected_version``; nothing the old state names has changed then.

    >>> from datetime import datetime, timezone
    >>> from segkit.storage import InMemoryStorage, SegmentRecord
    >>> storage, now = InMemoryStorage(), datetime(2024, 6, 30, tzinfo=timezone.utc)
    >>> rec = SegmentRecord("s", "static", now, now)
    >>> first = save_segment_state(storage, rec, bitmap=b"v1", expected_version=None)
    >>> save_segment_state(storage, rec, bitmap=b"v2", expected_version=None)
    Traceback (most recent call last):
    ...
    segkit.errors.ConflictError: segment 's': expected no stored value, found version 2
    >>> second = save_segment_state(storage, rec, bitmap=b"v2", expected_version=first.version)
    >>> load_segment_state(storage, "s").bitmap
    b'v2'

    .. versionadded:: 0.1.0
    """
    if not isinstance(record, SegmentRecord):
        raise TypeError(f"expected a SegmentRecord, got {type(record).__name__}")
    for value, what in ((bitmap, "bitmap"), (keys, "keys")):
        if value is not None and not isinstance(value, bytes):
            raise TypeError(f"{what} must be bytes or None, got {type(value).__name__}")
    if keys is not None:
        _check_keys(keys)  # refuse a malformed key list before anything is written
    record = attrs.evolve(record, snapshot=snapshot)  # checks the snapshot belongs to it
    name = record.name
    current = storage.get_segment(name)
    # Fail fast on a stale version; the put_segment below is the real compare-and-set.
    check_version(
        describe_segment(name), expected_version, None if current is None else current.version
    )
    if current is not None and current.value.snapshot is not None:
        _add_to_history(storage, name, current.version, current.value.snapshot)  # repair
    new = attrs.evolve(
        record,
        bitmap=None if bitmap is None else _put_blob(storage, bitmap),
        keys=None if keys is None else _put_blob(storage, keys),
        snapshot=snapshot,
    )
    version = storage.put_segment(new, expected_version=expected_version)  # the commit
    if snapshot is not None:
        _add_to_history(storage, name, version, snapshot)
    return Versioned(new, version)


def record_usage(storage: Storage, usage: UsageRecord) -> int:
    """Insert or replace the usage record ``usage.key``; its new version.

    Last writer wins: a lost compare-and-set race is retried from a fresh read.

    >>> from segkit.storage import InMemoryStorage, UsageRecord
    >>> storage = InMemoryStorage()
    >>> record_usage(storage, UsageRecord("vip", "workflow", "automation", "wf-12"))
    1
    >>> record_usage(storage, UsageRecord("vip", "workflow", "communication", "wf-12"))
    2
    >>> [u.value.objective for u in storage.list_usage("vip")]
    ['communication']

    .. versionadded:: 0.1.0
    """
    for _ in range(_RETRIES):
        found = storage.get_usage(*usage.key)
        try:
            return storage.put_usage(
                usage, expected_version=None if found is None else found.version
            )
        except ConflictError:
            continue
    raise ConflictError(f"{describe_usage(*usage.key)}: kept changing while it was written")


def drop_segment_state(storage: Storage, name: str, *, expected_version: int) -> None:
    """Delete segment ``name`` (compare-and-set), then its snapshots and usage records.

    Deleting the definition is the commit point. Its bitmap and key list are
    left for :func:`collect_garbage` (another segment with the same members may
    share them); snapshots and usage records that a crash leaves behind are
    garbage too. If a new segment of the same name appears meanwhile, its series
    and usage are kept.

    >>> from datetime import datetime, timezone
    >>> from segkit.storage import InMemoryStorage, SegmentRecord, Snapshot
    >>> storage, now = InMemoryStorage(), datetime(2024, 6, 30, tzinfo=timezone.utc)
    >>> saved = save_segment_state(storage, SegmentRecord("s", "static", now, now), bitmap=b"x",
    ...                            snapshot=Snapshot("s", now, 1), expected_version=None)
    >>> drop_segment_state(storage, "s", expected_version=saved.version)
    >>> storage.list_segments(), storage.list_snapshots(), storage.list_bitmaps() != []
    ([], [], True)

    .. versionadded:: 0.1.0
    """
    storage.delete_segment(name, expected_version=expected_version)
    _drop_leftovers(storage, name)


def _drop_leftovers(
    storage: Storage, name: str
) -> tuple[list[datetime], list[tuple[str, str, str]]]:
    """Delete the snapshots and usage of ``name`` while no segment of that name exists."""
    snapshots: list[datetime] = []
    usage: list[tuple[str, str, str]] = []
    for snap in storage.list_snapshots(name):
        if storage.get_segment(name) is not None:
            return snapshots, usage  # re-created meanwhile: the rest belongs to it
        try:
            storage.delete_snapshot(name, snap.value.at, expected_version=snap.version)
            snapshots.append(snap.value.at)
        except ConflictError:
            continue
    for use in storage.list_usage(name):
        if storage.get_segment(name) is not None:
            return snapshots, usage
        try:
            storage.delete_usage(*use.value.key, expected_version=use.version)
            usage.append(use.value.key)
        except ConflictError:
            continue
    return snapshots, usage


# --- reading ----------------------------------------------------------------------------


class _Blobs:
    """Blobs read during one load, checked against their addresses, each read once."""

    def __init__(self, storage: Storage) -> None:
        self._storage = storage
        self._bytes: dict[str, bytes] = {}
        self._keys: dict[str, tuple[str | None, ...]] = {}

    def get(self, owner: str, address: str) -> bytes:
        found = self._bytes.get(address)
        if found is not None:
            return found
        stored = self._storage.get_bitmap(address)
        if stored is None:
            raise CorruptDataError(
                f"segment {owner!r} names bitmap {address!r}, which is missing "
                "(was collect_garbage run while a save was in progress?)"
            )
        if content_address(stored.value) != address:
            raise CorruptDataError(
                f"segment {owner!r}: the bytes stored as bitmap {address!r} do not match "
                "their content address (they were altered)"
            )
        self._bytes[address] = stored.value
        return stored.value

    def keys(self, owner: str, address: str) -> tuple[str | None, ...]:
        found = self._keys.get(address)
        if found is None:
            found = self._keys[address] = decode_keys(self.get(owner, address), address=address)
        return found

    def state(self, found: Versioned[SegmentRecord]) -> SegmentState:
        rec = found.value
        return SegmentState(
            rec,
            found.version,
            None if rec.bitmap is None else self.get(rec.name, rec.bitmap),
            None if rec.keys is None else self.keys(rec.name, rec.keys),
        )


def load_segment_state(storage: Storage, name: str) -> SegmentState | None:
    """The committed state of segment ``name``, or ``None`` if there is no such segment.

    Raises :class:`~segkit.CorruptDataError` if a blob the definition names is
    missing or does not match its content address: never another membership.

    >>> from segkit.storage import InMemoryStorage
    >>> load_segment_state(InMemoryStorage(), "nope") is None
    True

    .. versionadded:: 0.1.0
    """
    found = storage.get_segment(name)
    return None if found is None else _Blobs(storage).state(found)


def load_segment_states(storage: Storage) -> dict[str, SegmentState]:
    """The committed state of every stored segment, by name (sorted); shared blobs read once.

    This is what an engine restores from. A segment deleted while this runs is
    left out.

    >>> from datetime import datetime, timezone
    >>> from segkit.storage import InMemoryStorage, SegmentRecord
    >>> storage, now = InMemoryStorage(), datetime(2024, 6, 30, tzinfo=timezone.utc)
    >>> for name in ("b", "a"):
    ...     _ = save_segment_state(storage, SegmentRecord(name, "static", now, now),
    ...                            bitmap=b"same", expected_version=None)
    >>> {name: state.bitmap for name, state in load_segment_states(storage).items()}
    {'a': b'same', 'b': b'same'}

    .. versionadded:: 0.1.0
    """
    blobs = _Blobs(storage)
    out: dict[str, SegmentState] = {}
    for name in storage.list_segments():
        found = storage.get_segment(name)
        if found is not None:
            out[name] = blobs.state(found)
    return out


# --- garbage ----------------------------------------------------------------------------


def collect_garbage(storage: Storage, *, dry_run: bool = False) -> Garbage:
    """Remove what no stored segment uses: blobs, and snapshots and usage of missing segments.

    Only blobs stored under a content address are considered (bitmaps an
    application stored under its own keys are left alone). Run it when no
    :func:`save_segment_state` is in progress (at start-up, or under the
    application's own lock): a blob written by a save that has not committed yet
    looks exactly like garbage. Should that happen anyway, loading the segment
    raises :class:`~segkit.CorruptDataError` (it never returns other members) and
    its next save writes the blob again.

    >>> from datetime import datetime, timezone
    >>> from segkit.storage import InMemoryStorage, SegmentRecord
    >>> storage, now = InMemoryStorage(), datetime(2024, 6, 30, tzinfo=timezone.utc)
    >>> old = save_segment_state(storage, SegmentRecord("s", "static", now, now), bitmap=b"old",
    ...                          expected_version=None)
    >>> new = save_segment_state(storage, SegmentRecord("s", "static", now, now), bitmap=b"new",
    ...                          expected_version=old.version)
    >>> collect_garbage(storage).bitmaps == (old.value.bitmap,)
    True
    >>> load_segment_state(storage, "s").bitmap
    b'new'

    .. versionadded:: 0.1.0
    """
    names = set(storage.list_segments())
    used: set[str] = set()
    for name in names:
        found = storage.get_segment(name)
        if found is not None:
            used.update(a for a in (found.value.bitmap, found.value.keys) if a is not None)
    bitmaps = [k for k in storage.list_bitmaps() if is_content_address(k) and k not in used]
    orphans = sorted(
        {s.value.segment for s in storage.list_snapshots()}
        | {u.value.segment for u in storage.list_usage()}
    )
    orphans = [name for name in orphans if name not in names]
    if dry_run:
        return Garbage(
            tuple(bitmaps),
            tuple(
                (s.value.segment, s.value.at) for n in orphans for s in storage.list_snapshots(n)
            ),
            tuple(u.value.key for n in orphans for u in storage.list_usage(n)),
        )
    removed: list[str] = []
    for address in bitmaps:
        found_blob = storage.get_bitmap(address)
        if found_blob is None:
            continue
        try:
            storage.delete_bitmap(address, expected_version=found_blob.version)
        except ConflictError:
            continue
        removed.append(address)
    snapshots: list[tuple[str, datetime]] = []
    usage: list[tuple[str, str, str]] = []
    for name in orphans:
        gone_snaps, gone_usage = _drop_leftovers(storage, name)
        snapshots.extend((name, at) for at in gone_snaps)
        usage.extend(gone_usage)
    return Garbage(tuple(removed), tuple(snapshots), tuple(usage))
