"""A conformance suite for :class:`~segkit.storage.Storage` backends, to run in your own tests.

Two ways to run it:

* :func:`check_storage` runs every check against storages made by a factory and
  raises :class:`AssertionError` naming the first check that failed and why.
* :class:`StorageConformance` (and :class:`CorruptionConformance` for backends
  whose stored bytes a test can damage) are mixins of pytest-style test methods:
  subclass them in a ``Test...`` class and define ``make_storage``.

The checks cover round trips of every record type, compare-and-set on create,
update and delete, listing and deletion, isolation of returned values, the
crash-safe state functions on top of the backend, concurrent writers from
threads (no update is lost), and, given a way to damage stored bytes, corruption
detection. Nothing here imports pytest.

>>> from segkit.storage import InMemoryStorage
>>> names = check_storage(InMemoryStorage)
>>> names[:3], len(names)
(['protocol', 'segment_round_trip', 'bitmap_round_trip'], 13)

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta, timezone
from typing import Any, Final, NoReturn

import attrs

from segkit.errors import ConflictError, CorruptDataError
from segkit.index import Bitmap
from segkit.storage.codec import content_address, encode_keys
from segkit.storage.protocol import Storage
from segkit.storage.records import SegmentRecord, Snapshot, UsageRecord, Versioned
from segkit.storage.state import (
    collect_garbage,
    drop_segment_state,
    load_segment_state,
    save_segment_state,
)

__all__ = [
    "CHECKS",
    "DAMAGE_CHECKS",
    "CorruptionConformance",
    "StorageConformance",
    "check_storage",
    "run_check",
]

Factory = Callable[[], Storage]

_T0: Final = datetime(2024, 6, 30, 12, 0, tzinfo=timezone.utc)
_RULE: Final[dict[str, Any]] = {
    "segkit_rule": 1,
    "text": 'country = "FR" and tags has any ["été", "x/y"]',
    "expr": {
        "type": "and",
        "items": [
            {"type": "compare", "field": "country", "op": "=", "value": "FR"},
            {"type": "has_list", "field": "tags", "mode": "any", "values": ["été", "x/y"]},
        ],
    },
}
#: Names that trip naive key layouts: separators, escapes, non-ASCII, look-alike prefixes.
_NAMES: Final = ("vip", "vip2", "with/slash", "50%_off", "été 日本", "a b", "segment", ".")


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."


def _fail(message: str) -> NoReturn:
    raise AssertionError(message)


def _equal(what: str, got: object, want: object) -> None:
    if got != want:
        _fail(f"{what}: got {_show(got)}, expected {_show(want)}")


def _raises(what: str, error: type[Exception], call: Callable[..., object], *args: Any) -> None:
    try:
        result = call(*args)
    except error:
        return
    except Exception as e:
        _fail(f"{what}: expected {error.__name__}, got {type(e).__name__}: {e}")
    _fail(f"{what}: expected {error.__name__}, but it returned {_show(result)}")


def _segment(name: str = "vip", **changes: Any) -> SegmentRecord:
    record = SegmentRecord(
        name,
        "dynamic",
        _T0,
        _T0 + timedelta(microseconds=123456),
        rule=_RULE,
        object_type="company",
        updated_by="ana@example.com",
        tags=("count=0", "é"),
        bitmap=content_address(b"bitmap"),
        keys=content_address(b"keys"),
        snapshot=Snapshot(name, _T0, 42, engagement=0.5),
    )
    return attrs.evolve(record, **changes)


def _static(name: str) -> SegmentRecord:
    return SegmentRecord(name, "static", _T0, _T0)


def _new_version(what: str, version: object, seen: set[int]) -> int:
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        _fail(f"{what} returned {_show(version)}, expected an int >= 1")
    if version in seen:
        _fail(f"{what} returned version {version}, which the key had before")
    if seen and version < max(seen):
        _fail(f"{what} returned version {version}, lower than the earlier {max(seen)}")
    seen.add(version)
    return version


# --- the kinds of values, so that each CAS check runs over all four ---------------------


@attrs.frozen
class _Kind:
    """How to read, write, delete and list one kind of value under one key."""

    label: str
    first: Any
    second: Any
    get: Callable[[Storage], Versioned[Any] | None]
    put: Callable[[Storage, Any, int | None], int]
    delete: Callable[[Storage, int], None]
    listed: Callable[[Storage], list[Any]]


def _kinds() -> list[_Kind]:
    snap1 = Snapshot("vip", _T0, 1)
    snap2 = Snapshot("vip", _T0, 2, engagement=0.25)
    use1 = UsageRecord("vip", "workflow", "automation", "wf-12")
    use2 = UsageRecord("vip", "workflow", "communication", "wf-12", at=_T0)
    return [
        _Kind(
            "segment",
            _segment(),
            _segment(tags=("count=1",)),
            lambda s: s.get_segment("vip"),
            lambda s, v, e: s.put_segment(v, expected_version=e),
            lambda s, e: s.delete_segment("vip", expected_version=e),
            lambda s: s.list_segments(),
        ),
        _Kind(
            "bitmap",
            b"first",
            b"second",
            lambda s: s.get_bitmap("vip"),
            lambda s, v, e: s.put_bitmap("vip", v, expected_version=e),
            lambda s, e: s.delete_bitmap("vip", expected_version=e),
            lambda s: s.list_bitmaps(),
        ),
        _Kind(
            "snapshot",
            snap1,
            snap2,
            lambda s: s.get_snapshot("vip", _T0),
            lambda s, v, e: s.put_snapshot(v, expected_version=e),
            lambda s, e: s.delete_snapshot("vip", _T0, expected_version=e),
            lambda s: [v.value.at for v in s.list_snapshots("vip")],
        ),
        _Kind(
            "usage",
            use1,
            use2,
            lambda s: s.get_usage("vip", "workflow", "wf-12"),
            lambda s, v, e: s.put_usage(v, expected_version=e),
            lambda s, e: s.delete_usage("vip", "workflow", "wf-12", expected_version=e),
            lambda s: [v.value.key for v in s.list_usage("vip")],
        ),
    ]


# --- the checks -------------------------------------------------------------------------


def _check_protocol(make: Factory) -> None:
    storage = make()
    if not isinstance(storage, Storage):
        missing = [m for m in _PROTOCOL_METHODS if not callable(getattr(storage, m, None))]
        _fail(f"{type(storage).__name__} does not satisfy Storage: missing {', '.join(missing)}")
    _equal("list_segments() of a new storage", storage.list_segments(), [])
    _equal("list_bitmaps() of a new storage", storage.list_bitmaps(), [])
    _equal("list_snapshots() of a new storage", storage.list_snapshots(), [])
    _equal("list_usage() of a new storage", storage.list_usage(), [])
    _equal("get_segment of a missing name", storage.get_segment("vip"), None)
    _equal("get_bitmap of a missing key", storage.get_bitmap("vip"), None)
    _equal("get_snapshot of a missing instant", storage.get_snapshot("vip", _T0), None)
    _equal("get_usage of a missing key", storage.get_usage("vip", "ads", "r"), None)


_PROTOCOL_METHODS: Final = (
    *(
        f"{verb}_{noun}"
        for noun in ("segment", "bitmap", "snapshot", "usage")
        for verb in ("get", "put", "delete")
    ),
    *("list_segments", "list_bitmaps", "list_snapshots", "list_usage"),
)


def _check_segment_round_trip(make: Factory) -> None:
    storage = make()
    records = [_segment(name) for name in _NAMES] + [_static("static one")]
    seen: set[int] = set()
    versions = {}
    for record in records:
        versions[record.name] = _new_version(
            f"put_segment({record.name!r})",
            storage.put_segment(record, expected_version=None),
            seen,
        )
    for record in records:
        _equal(
            f"get_segment({record.name!r})",
            storage.get_segment(record.name),
            Versioned(record, versions[record.name]),
        )
    _equal("list_segments()", storage.list_segments(), sorted(r.name for r in records))


def _check_bitmap_round_trip(make: Factory) -> None:
    storage = make()
    roaring = Bitmap(range(0, 300_000, 7)).serialize()
    blobs = {
        "empty": b"",
        "all bytes": bytes(range(256)) * 3,
        "with/slash": b"\x00/\x00",
        content_address(roaring): roaring,
    }
    versions = {
        key: storage.put_bitmap(key, data, expected_version=None) for key, data in blobs.items()
    }
    for key, data in blobs.items():
        found = storage.get_bitmap(key)
        _equal(f"get_bitmap({key!r})", found, Versioned(data, versions[key]))
        if found is not None and type(found.value) is not bytes:
            _fail(f"get_bitmap({key!r}) returned {type(found.value).__name__}, expected bytes")
    _equal("list_bitmaps()", storage.list_bitmaps(), sorted(blobs))


def _check_snapshot_round_trip(make: Factory) -> None:
    storage = make()
    day = timedelta(days=1)
    snaps = [
        Snapshot("vip", _T0 + 2 * day, 30, engagement=0.125),
        Snapshot("vip", _T0, 10),
        Snapshot("vip", _T0 + timedelta(microseconds=1), 11),
        Snapshot("vip2", _T0 - day, 5),
        Snapshot("with/slash", _T0, 0),
    ]
    versions = {(s.segment, s.at): storage.put_snapshot(s, expected_version=None) for s in snaps}
    paris = timezone(timedelta(hours=2))
    for snap in snaps:
        want = Versioned(snap, versions[(snap.segment, snap.at)])
        _equal(
            f"get_snapshot({snap.segment!r}, {snap.at})",
            storage.get_snapshot(snap.segment, snap.at),
            want,
        )
        _equal(
            f"get_snapshot({snap.segment!r}, the same instant at UTC+2)",
            storage.get_snapshot(snap.segment, snap.at.astimezone(paris)),
            want,
        )
    by_key = sorted(snaps, key=lambda s: (s.segment, s.at))
    _equal("list_snapshots()", [v.value for v in storage.list_snapshots()], by_key)
    _equal(
        "list_snapshots('vip')",
        [v.value for v in storage.list_snapshots("vip")],
        [s for s in by_key if s.segment == "vip"],
    )
    _equal("list_snapshots('vi')", storage.list_snapshots("vi"), [])


def _check_usage_round_trip(make: Factory) -> None:
    storage = make()
    uses = [
        UsageRecord("vip", "workflow", "automation", "wf-12", at=_T0),
        UsageRecord("vip", "email", "communication", ""),
        UsageRecord("vip", "email", "communication", "nl/7"),
        UsageRecord("vip2", "ads", "personalization", "c-1"),
    ]
    versions = {u.key: storage.put_usage(u, expected_version=None) for u in uses}
    for use in uses:
        _equal(
            f"get_usage{use.key!r}", storage.get_usage(*use.key), Versioned(use, versions[use.key])
        )
    by_key = sorted(uses, key=lambda u: u.key)
    _equal("list_usage()", [v.value for v in storage.list_usage()], by_key)
    _equal(
        "list_usage('vip')",
        [v.value for v in storage.list_usage("vip")],
        [u for u in by_key if u.segment == "vip"],
    )
    _equal("list_usage('vi')", storage.list_usage("vi"), [])


def _check_create_conflicts(make: Factory) -> None:
    for kind in _kinds():
        storage = make()
        version = kind.put(storage, kind.first, None)
        _raises(
            f"creating a {kind.label} that exists (expected_version=None)",
            ConflictError,
            kind.put,
            storage,
            kind.second,
            None,
        )
        _equal(
            f"the {kind.label} after a refused create",
            kind.get(storage),
            Versioned(kind.first, version),
        )


def _check_update_conflicts(make: Factory) -> None:
    for kind in _kinds():
        storage = make()
        _raises(
            f"updating a missing {kind.label}",
            ConflictError,
            kind.put,
            storage,
            kind.first,
            1,
        )
        _equal(f"the {kind.label} after a refused update of a missing key", kind.get(storage), None)
        seen: set[int] = set()
        v1 = _new_version(f"creating a {kind.label}", kind.put(storage, kind.first, None), seen)
        v2 = _new_version(f"updating a {kind.label}", kind.put(storage, kind.second, v1), seen)
        _raises(
            f"updating a {kind.label} with a stale version",
            ConflictError,
            kind.put,
            storage,
            kind.first,
            v1,
        )
        _equal(
            f"the {kind.label} after a refused update",
            kind.get(storage),
            Versioned(kind.second, v2),
        )
        v3 = _new_version(f"updating a {kind.label} again", kind.put(storage, kind.first, v2), seen)
        _equal(f"the {kind.label} after two updates", kind.get(storage), Versioned(kind.first, v3))


def _check_delete_conflicts(make: Factory) -> None:
    for kind in _kinds():
        storage = make()
        seen: set[int] = set()
        v1 = _new_version(f"creating a {kind.label}", kind.put(storage, kind.first, None), seen)
        v2 = _new_version(f"updating a {kind.label}", kind.put(storage, kind.second, v1), seen)
        _raises(
            f"deleting a {kind.label} with a stale version",
            ConflictError,
            kind.delete,
            storage,
            v1,
        )
        _equal(
            f"the {kind.label} after a refused delete",
            kind.get(storage),
            Versioned(kind.second, v2),
        )
        kind.delete(storage, v2)
        _equal(f"the {kind.label} after a delete", kind.get(storage), None)
        _equal(f"listing after deleting the {kind.label}", kind.listed(storage), [])
        _raises(
            f"deleting a deleted {kind.label}",
            ConflictError,
            kind.delete,
            storage,
            v2,
        )
        _new_version(
            f"re-creating a deleted {kind.label}", kind.put(storage, kind.first, None), seen
        )


def _check_listing(make: Factory) -> None:
    storage = make()
    kinds = _kinds()
    versions = [kind.put(storage, kind.first, None) for kind in kinds]
    for name in ("vip2", "vi", "a"):
        storage.put_segment(_static(name), expected_version=None)
        storage.put_snapshot(Snapshot(name, _T0, 7), expected_version=None)
        storage.put_usage(
            UsageRecord(name, "workflow", "automation", "wf-12"), expected_version=None
        )
    _equal("list_segments()", storage.list_segments(), ["a", "vi", "vip", "vip2"])
    for i, kind in enumerate(kinds):  # one value of each kind is under "vip"
        kind.delete(storage, versions[i])
        for other in kinds[i + 1 :]:
            if other.get(storage) is None:
                _fail(f"deleting the {kind.label} 'vip' also removed the {other.label} 'vip'")
    _equal("list_segments() after deleting 'vip'", storage.list_segments(), ["a", "vi", "vip2"])
    _equal("list_bitmaps() after deleting 'vip'", storage.list_bitmaps(), [])
    _equal("list_snapshots('vip') after deleting it", storage.list_snapshots("vip"), [])
    _equal("list_usage('vip') after deleting it", storage.list_usage("vip"), [])
    _equal(
        "list_snapshots() segments",
        [v.value.segment for v in storage.list_snapshots()],
        ["a", "vi", "vip2"],
    )
    _equal(
        "list_usage() segments",
        [v.value.segment for v in storage.list_usage()],
        ["a", "vi", "vip2"],
    )


def _check_isolation(make: Factory) -> None:
    storage = make()
    rule: dict[str, Any] = {"segkit_rule": 1, "expr": {"type": "and", "items": []}}
    record = _segment(rule=rule)
    version = storage.put_segment(record, expected_version=None)
    rule["expr"]["items"].append("changed after put")
    if record.rule is not None:
        record.rule["expr"]["items"].append("changed in the record after put")
    found = storage.get_segment("vip")
    want = {"segkit_rule": 1, "expr": {"type": "and", "items": []}}
    _equal(
        "the stored rule after the caller changed its dict",
        None if found is None else found.value.rule,
        want,
    )
    if found is not None and found.value.rule is not None:
        found.value.rule["expr"]["items"].append("changed after get")
    again = storage.get_segment("vip")
    _equal(
        "the stored rule after a reader changed its copy",
        None if again is None else again.value.rule,
        want,
    )
    _equal("the version after reads", None if again is None else again.version, version)


def _check_state_functions(make: Factory) -> None:
    storage = make()
    keys = encode_keys(["c-1", None, "c-3"])
    old_bits, new_bits = Bitmap([0, 2]).serialize(), Bitmap([2]).serialize()
    first = save_segment_state(
        storage,
        _static("imported"),
        bitmap=old_bits,
        keys=keys,
        snapshot=Snapshot("imported", _T0, 2),
        expected_version=None,
    )
    second = save_segment_state(
        storage,
        _static("imported"),
        bitmap=new_bits,
        keys=keys,
        snapshot=Snapshot("imported", _T0 + timedelta(days=1), 1),
        expected_version=first.version,
    )
    state = load_segment_state(storage, "imported")
    if state is None:
        _fail("load_segment_state found nothing after save_segment_state")
    _equal("loaded bitmap", state.bitmap, new_bits)
    _equal("loaded keys", state.keys, ("c-1", None, "c-3"))
    _equal("loaded version", state.version, second.version)
    _equal("loaded record", state.record, second.value)
    _equal("snapshot series", [v.value.size for v in storage.list_snapshots("imported")], [2, 1])
    _raises(
        "save_segment_state with a stale version",
        ConflictError,
        lambda: save_segment_state(
            storage, _static("imported"), bitmap=old_bits, expected_version=first.version
        ),
    )
    garbage = collect_garbage(storage)
    _equal("collect_garbage() bitmaps", garbage.bitmaps, (content_address(old_bits),))
    _equal(
        "bitmaps kept",
        storage.list_bitmaps(),
        sorted([content_address(new_bits), content_address(keys)]),
    )
    # a backend that hands back other bytes than the definition names is caught
    forged = _static("forged")
    storage.put_bitmap(content_address(b"members"), b"other members", expected_version=None)
    storage.put_segment(
        attrs.evolve(forged, bitmap=content_address(b"members")), expected_version=None
    )
    _raises(
        "loading a segment whose bitmap bytes do not match",
        CorruptDataError,
        lambda: load_segment_state(storage, "forged"),
    )
    drop_segment_state(storage, "imported", expected_version=second.version)
    _equal("load after drop", load_segment_state(storage, "imported"), None)
    _equal("snapshots after drop", storage.list_snapshots("imported"), [])


def _check_concurrent_writers(make: Factory, threads: int = 8, rounds: int = 25) -> None:
    storage = make()
    storage.put_segment(_segment(tags=("count=0",)), expected_version=None)
    barrier = threading.Barrier(threads)
    lock = threading.Lock()
    versions: list[int] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            barrier.wait()
            for _ in range(rounds):
                for _attempt in range(10_000):
                    found = storage.get_segment("vip")
                    if found is None:
                        _fail("the segment vanished during concurrent updates")
                    count = int(found.value.tags[0].removeprefix("count="))
                    time.sleep(0)  # let another writer in between the read and the write
                    changed = attrs.evolve(found.value, tags=(f"count={count + 1}",))
                    try:
                        version = storage.put_segment(changed, expected_version=found.version)
                    except ConflictError:
                        continue
                    with lock:
                        versions.append(version)
                    break
                else:
                    _fail("a writer lost 10,000 compare-and-set races in a row")
        except BaseException as e:  # collected and re-raised in the calling thread
            with lock:
                errors.append(e)

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    if errors:
        raise errors[0]
    final = storage.get_segment("vip")
    total = threads * rounds
    _equal(
        f"the counter after {threads} threads made {rounds} increments each",
        None if final is None else final.value.tags,
        (f"count={total}",),
    )
    _equal("distinct versions handed out to successful writes", len(set(versions)), total)
    _equal("the final version", None if final is None else final.version, max(versions))


def _check_concurrent_creates(make: Factory, threads: int = 8, rounds: int = 1) -> None:
    del rounds  # one round: every thread creates once
    storage = make()
    barrier = threading.Barrier(threads)
    lock = threading.Lock()
    outcomes: list[str] = []

    def work(i: int) -> None:
        barrier.wait()
        try:
            storage.put_segment(_segment(tags=(f"writer={i}",)), expected_version=None)
        except ConflictError:
            result = "conflict"
        except BaseException as e:
            result = f"{type(e).__name__}: {e}"
        else:
            result = "created"
        with lock:
            outcomes.append(result)

    workers = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    _equal(
        f"outcomes of {threads} threads creating the same segment",
        sorted(outcomes),
        ["conflict"] * (threads - 1) + ["created"],
    )


def _check_damage(make: Factory, damage: Callable[[Storage], None]) -> None:
    for kind in _kinds():
        storage = make()
        kind.put(storage, kind.first, None)
        damage(storage)
        _raises(
            f"reading a damaged {kind.label}",
            CorruptDataError,
            kind.get,
            storage,
        )
    storage = make()
    storage.put_snapshot(Snapshot("vip", _T0, 1), expected_version=None)
    storage.put_usage(UsageRecord("vip", "ads", "analytics", "r"), expected_version=None)
    damage(storage)
    _raises("listing damaged snapshots", CorruptDataError, storage.list_snapshots)
    _raises("listing damaged usage records", CorruptDataError, storage.list_usage)


#: The checks :func:`check_storage` runs, in order: name -> function(factory, threads, rounds).
CHECKS: Final[Mapping[str, Callable[..., None]]] = {
    "protocol": _check_protocol,
    "segment_round_trip": _check_segment_round_trip,
    "bitmap_round_trip": _check_bitmap_round_trip,
    "snapshot_round_trip": _check_snapshot_round_trip,
    "usage_round_trip": _check_usage_round_trip,
    "create_conflicts": _check_create_conflicts,
    "update_conflicts": _check_update_conflicts,
    "delete_conflicts": _check_delete_conflicts,
    "listing": _check_listing,
    "isolation": _check_isolation,
    "state_functions": _check_state_functions,
    "concurrent_writers": _check_concurrent_writers,
    "concurrent_creates": _check_concurrent_creates,
}
_THREADED: Final = frozenset({"concurrent_writers", "concurrent_creates"})

#: The checks that need a way to damage stored bytes.
DAMAGE_CHECKS: Final = ("damage_detected",)


def _run(name: str, call: Callable[[], None]) -> None:
    try:
        call()
    except AssertionError as e:
        raise AssertionError(f"storage check {name!r} failed: {e}") from e
    except Exception as e:
        raise AssertionError(
            f"storage check {name!r} failed: unexpected {type(e).__name__}: {e}"
        ) from e


def run_check(
    name: str,
    make: Factory,
    *,
    damage: Callable[[Storage], None] | None = None,
    threads: int = 8,
    rounds: int = 25,
) -> None:
    """Run the one check ``name`` (see :data:`CHECKS` and :data:`DAMAGE_CHECKS`).

    >>> from segkit.storage import InMemoryStorage
    >>> run_check("listing", InMemoryStorage)
    >>> run_check("damage_detected", InMemoryStorage)
    Traceback (most recent call last):
    ...
    ValueError: check 'damage_detected' needs a damage function

    .. versionadded:: 0.1.0
    """
    if name in DAMAGE_CHECKS:
        if damage is None:
            raise ValueError(f"check {name!r} needs a damage function")
        _run(name, lambda: _check_damage(make, damage))
    elif name in _THREADED:
        _run(name, lambda: CHECKS[name](make, threads, rounds))
    elif name in CHECKS:
        _run(name, lambda: CHECKS[name](make))
    else:
        raise ValueError(f"unknown storage check {name!r}")


def check_storage(
    factory: Factory,
    *,
    damage: Callable[[Storage], None] | None = None,
    threads: int = 8,
    rounds: int = 25,
) -> list[str]:
    """Run every conformance check against storages made by ``factory``; the names run.

    ``factory()`` must return a new, empty storage each time it is called.
    ``damage(storage)``, if given, must alter the stored bytes of every value
    the storage holds (for example flip one byte of each); the corruption checks
    then require every read of a damaged value to raise
    :class:`~segkit.CorruptDataError`. ``threads`` writers each make ``rounds``
    read-modify-write increments in the concurrency check.

    Raises :class:`AssertionError` naming the first failing check and what it saw.

    >>> from segkit.storage import MappingStorage
    >>> def flip(storage):
    ...     for key, value in storage.mapping.items():
    ...         storage.mapping[key] = value[:-1] + bytes([value[-1] ^ 1])
    >>> check_storage(lambda: MappingStorage({}), damage=flip)[-2:]
    ['concurrent_creates', 'damage_detected']

    .. versionadded:: 0.1.0
    """
    names = list(CHECKS) + (list(DAMAGE_CHECKS) if damage is not None else [])
    for name in names:
        run_check(name, factory, damage=damage, threads=threads, rounds=rounds)
    return names


class StorageConformance:
    """Mixin of pytest-style tests that a :class:`~segkit.storage.Storage` backend must pass.

    Subclass it in a ``Test...`` class and define ``make_storage`` to return a
    new, empty storage (a pytest fixture can set attributes it needs, such as a
    temporary directory, with ``autouse=True``). Set ``conformance_threads`` and
    ``conformance_rounds`` to size the concurrency test.

    >>> from segkit.storage import InMemoryStorage
    >>> class TestInMemory(StorageConformance):
    ...     def make_storage(self):
    ...         return InMemoryStorage()
    >>> TestInMemory().test_concurrent_writers()

    .. versionadded:: 0.1.0
    """

    conformance_threads: int = 8
    conformance_rounds: int = 25

    def make_storage(self) -> Storage:
        """A new, empty storage (override this)."""
        raise NotImplementedError(f"{type(self).__name__} must define make_storage()")

    def _check(self, name: str) -> None:
        run_check(
            name,
            self.make_storage,
            threads=self.conformance_threads,
            rounds=self.conformance_rounds,
        )

    def test_protocol(self) -> None:
        """The storage satisfies ``Storage`` and starts empty."""
        self._check("protocol")

    def test_segment_round_trip(self) -> None:
        """Segment records come back equal, with the version their put returned."""
        self._check("segment_round_trip")

    def test_bitmap_round_trip(self) -> None:
        """Bitmaps come back as identical bytes."""
        self._check("bitmap_round_trip")

    def test_snapshot_round_trip(self) -> None:
        """Snapshots come back by instant, listed by segment then time."""
        self._check("snapshot_round_trip")

    def test_usage_round_trip(self) -> None:
        """Usage records come back by key, listed sorted by key."""
        self._check("usage_round_trip")

    def test_create_conflicts(self) -> None:
        """Creating an existing key raises ConflictError and changes nothing."""
        self._check("create_conflicts")

    def test_update_conflicts(self) -> None:
        """Updating with a stale version, or a missing key, raises ConflictError."""
        self._check("update_conflicts")

    def test_delete_conflicts(self) -> None:
        """Deleting with a stale version raises; re-creating gets a new version."""
        self._check("delete_conflicts")

    def test_listing(self) -> None:
        """Listings are sorted, leave deleted keys out, and kinds are independent."""
        self._check("listing")

    def test_isolation(self) -> None:
        """Changing a rule dict after put or after get does not change the store."""
        self._check("isolation")

    def test_state_functions(self) -> None:
        """save/load/drop_segment_state and collect_garbage work on this backend."""
        self._check("state_functions")

    def test_concurrent_writers(self) -> None:
        """Threads doing read-modify-write with retry on ConflictError lose no update."""
        self._check("concurrent_writers")

    def test_concurrent_creates(self) -> None:
        """Of threads creating the same segment at once, exactly one succeeds."""
        self._check("concurrent_creates")


class CorruptionConformance:
    """Mixin of the corruption tests, for backends whose stored bytes a test can damage.

    Define ``make_storage`` and ``damage_storage(storage)``, which must alter the
    stored bytes of every value the storage holds.

    >>> from segkit.storage import MappingStorage
    >>> class TestDamage(CorruptionConformance):
    ...     def make_storage(self):
    ...         return MappingStorage({})
    ...     def damage_storage(self, storage):
    ...         for key, value in storage.mapping.items():
    ...             storage.mapping[key] = value[:10]
    >>> TestDamage().test_damage_detected()

    .. versionadded:: 0.1.0
    """

    def make_storage(self) -> Storage:
        """A new, empty storage (override this)."""
        raise NotImplementedError(f"{type(self).__name__} must define make_storage()")

    def damage_storage(self, storage: Storage) -> None:
        """Alter the stored bytes of every value in ``storage`` (override this)."""
        raise NotImplementedError(f"{type(self).__name__} must define damage_storage()")

    def test_damage_detected(self) -> None:
        """Reading or listing a damaged value raises CorruptDataError."""
        run_check("damage_detected", self.make_storage, damage=self.damage_storage)
