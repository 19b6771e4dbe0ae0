"""Crash safety and concurrency of the multi-key state functions (save/load/drop/gc)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

import attrs
import pytest

from segkit.errors import ConflictError, CorruptDataError
from segkit.index import Bitmap
from segkit.storage import (
    Garbage,
    InMemoryStorage,
    MappingStorage,
    SegmentRecord,
    SegmentState,
    Snapshot,
    Storage,
    UsageRecord,
    Versioned,
    collect_garbage,
    content_address,
    drop_segment_state,
    encode_keys,
    load_segment_state,
    load_segment_states,
    record_usage,
    save_segment_state,
)

T0 = datetime(2024, 6, 30, tzinfo=timezone.utc)
T1 = T0 + timedelta(days=1)
RULE = {
    "segkit_rule": 1,
    "text": "age >= 18",
    "expr": {"type": "compare", "field": "age", "op": ">=", "value": 18},
}


class SimulatedCrash(RuntimeError):
    """Raised by CrashingStorage in place of the k-th write."""


class CrashingStorage:
    """Wraps a storage; the k-th write (put or delete, counting from 1) raises instead of writing."""

    def __init__(self, inner: Storage, crash_at: int) -> None:
        self.inner = inner
        self.crash_at = crash_at
        self.writes = 0

    def _write(self) -> None:
        self.writes += 1
        if self.writes == self.crash_at:
            raise SimulatedCrash(f"crash at write {self.writes}")

    def get_segment(self, name: str) -> Versioned[SegmentRecord] | None:
        return self.inner.get_segment(name)

    def put_segment(self, record: SegmentRecord, *, expected_version: int | None) -> int:
        self._write()
        return self.inner.put_segment(record, expected_version=expected_version)

    def delete_segment(self, name: str, *, expected_version: int) -> None:
        self._write()
        self.inner.delete_segment(name, expected_version=expected_version)

    def list_segments(self) -> list[str]:
        return self.inner.list_segments()

    def get_bitmap(self, key: str) -> Versioned[bytes] | None:
        return self.inner.get_bitmap(key)

    def put_bitmap(self, key: str, data: bytes, *, expected_version: int | None) -> int:
        self._write()
        return self.inner.put_bitmap(key, data, expected_version=expected_version)

    def delete_bitmap(self, key: str, *, expected_version: int) -> None:
        self._write()
        self.inner.delete_bitmap(key, expected_version=expected_version)

    def list_bitmaps(self) -> list[str]:
        return self.inner.list_bitmaps()

    def get_snapshot(self, segment: str, at: datetime) -> Versioned[Snapshot] | None:
        return self.inner.get_snapshot(segment, at)

    def put_snapshot(self, snapshot: Snapshot, *, expected_version: int | None) -> int:
        self._write()
        return self.inner.put_snapshot(snapshot, expected_version=expected_version)

    def delete_snapshot(self, segment: str, at: datetime, *, expected_version: int) -> None:
        self._write()
        self.inner.delete_snapshot(segment, at, expected_version=expected_version)

    def list_snapshots(self, segment: str | None = None) -> list[Versioned[Snapshot]]:
        return self.inner.list_snapshots(segment)

    def get_usage(self, segment: str, tool: str, ref: str) -> Versioned[UsageRecord] | None:
        return self.inner.get_usage(segment, tool, ref)

    def put_usage(self, record: UsageRecord, *, expected_version: int | None) -> int:
        self._write()
        return self.inner.put_usage(record, expected_version=expected_version)

    def delete_usage(self, segment: str, tool: str, ref: str, *, expected_version: int) -> None:
        self._write()
        self.inner.delete_usage(segment, tool, ref, expected_version=expected_version)

    def list_usage(self, segment: str | None = None) -> list[Versioned[UsageRecord]]:
        return self.inner.list_usage(segment)


def test_the_crashing_wrapper_is_a_storage() -> None:
    """The test wrapper itself satisfies the protocol (statically and at run time)."""
    wrapper: Storage = CrashingStorage(InMemoryStorage(), 0)
    assert isinstance(wrapper, Storage)


def bits(*ids: int) -> bytes:
    return Bitmap(ids).serialize()


@attrs.frozen
class Planned:
    """What one segment looks like before and after a refresh."""

    name: str
    old_bits: bytes
    new_bits: bytes
    old_size: int
    new_size: int

    def record(self) -> SegmentRecord:
        return SegmentRecord(self.name, "dynamic", T0, T0, rule=RULE, tags=("refreshed",))


PLAN = [
    Planned("adults", bits(0, 1, 2), bits(1, 2, 3, 4), 3, 4),
    Planned("adults_fr", bits(1), bits(1, 4), 1, 2),
    Planned("unchanged", bits(7), bits(7), 1, 1),  # the same bitmap: its blob is shared
]
OLD_KEYS = encode_keys(["c-0", "c-1", "c-2", None, None, None, None, "c-7"])
NEW_KEYS = encode_keys(["c-0", "c-1", "c-2", "c-3", "c-4", None, None, "c-7"])


def set_up_old_state(storage: Storage) -> dict[str, int]:
    versions = {}
    for plan in PLAN:
        saved = save_segment_state(
            storage,
            plan.record(),
            bitmap=plan.old_bits,
            keys=OLD_KEYS,
            snapshot=Snapshot(plan.name, T0, plan.old_size),
            expected_version=None,
        )
        versions[plan.name] = saved.version
    return versions


def refresh(storage: Storage, versions: dict[str, int]) -> None:
    """Save every segment's new state, as an engine's refresh would."""
    for plan in PLAN:
        save_segment_state(
            storage,
            attrs.evolve(plan.record(), updated_at=T1, updated_by="refresh"),
            bitmap=plan.new_bits,
            keys=NEW_KEYS,
            snapshot=Snapshot(plan.name, T1, plan.new_size, engagement=0.5),
            expected_version=versions[plan.name],
        )


def count_writes(action: Callable[[Storage], object], storage: Storage) -> int:
    counter = CrashingStorage(storage, crash_at=0)
    action(counter)
    return counter.writes


def assert_old_or_new(storage: Storage, plan: Planned) -> str:
    """The segment's loaded state is exactly the old one or exactly the new one."""
    state = load_segment_state(storage, plan.name)
    assert state is not None
    rec = state.record
    old = (
        plan.old_bits,
        ("c-0", "c-1", "c-2", None, None, None, None, "c-7"),
        Snapshot(plan.name, T0, plan.old_size),
        T0,
        None,
    )
    new = (
        plan.new_bits,
        ("c-0", "c-1", "c-2", "c-3", "c-4", None, None, "c-7"),
        Snapshot(plan.name, T1, plan.new_size, engagement=0.5),
        T1,
        "refresh",
    )
    found = (state.bitmap, state.keys, rec.snapshot, rec.updated_at, rec.updated_by)
    assert found in (old, new), f"{plan.name} is mixed: {found}"
    assert rec.bitmap == content_address(found[0])
    # the series never holds a snapshot of a state that was not committed
    series = [v.value for v in storage.list_snapshots(plan.name)]
    if found == old:
        assert series == [old[2]]
        return "old"
    assert series in ([old[2]], [old[2], new[2]])  # the new point may be missing, never wrong
    return "new"


@pytest.mark.parametrize(
    "backend", [InMemoryStorage, lambda: MappingStorage({})], ids=["memory", "mapping"]
)
def test_a_crash_at_any_write_of_a_refresh_leaves_each_segment_old_or_new(
    backend: Callable[[], Storage],
) -> None:
    """For every k, a refresh that crashes at its k-th write leaves each segment whole.

    After the crash each segment loads as its complete old or complete new state;
    redoing the refresh then completes it, and collect_garbage leaves exactly the
    blobs the new state names.
    """
    total = count_writes(lambda s: refresh(s, set_up_old_state(s)), backend()) - count_writes(
        set_up_old_state, backend()
    )
    # 3 x (segment, snapshot) + 2 new bitmaps ("unchanged" reuses its blob) + the new key list
    assert total == 9
    outcomes = set()
    for k in range(1, total + 1):
        inner = backend()
        versions = set_up_old_state(inner)
        with pytest.raises(SimulatedCrash):
            refresh(CrashingStorage(inner, crash_at=k), versions)
        states = tuple(assert_old_or_new(inner, plan) for plan in PLAN)
        outcomes.add(states)
        # recovery: reload, redo the refresh for the segments still old
        current = {name: s.version for name, s in load_segment_states(inner).items()}
        for (
            plan
        ) in PLAN:  # a segment still old gets its new state; a new one gets its missing point
            save_segment_state(
                inner,
                attrs.evolve(plan.record(), updated_at=T1, updated_by="refresh"),
                bitmap=plan.new_bits,
                keys=NEW_KEYS,
                snapshot=Snapshot(plan.name, T1, plan.new_size, engagement=0.5),
                expected_version=current[plan.name],
            )
        for plan in PLAN:
            assert assert_old_or_new(inner, plan) == "new"
            assert len(inner.list_snapshots(plan.name)) == 2
        collect_garbage(inner)
        assert inner.list_bitmaps() == sorted(
            {content_address(p.new_bits) for p in PLAN} | {content_address(NEW_KEYS)}
        )
    assert ("old", "old", "old") in outcomes
    assert ("new", "old", "old") in outcomes
    assert ("new", "new", "old") in outcomes


def test_a_crash_after_the_commit_loses_only_the_series_point_until_the_next_save() -> None:
    """Crashing at the history write: the state is new, the series misses a point, the next save adds it."""
    storage = InMemoryStorage()
    rec = SegmentRecord("s", "static", T0, T0)
    first = save_segment_state(
        storage, rec, bitmap=bits(1), snapshot=Snapshot("s", T0, 1), expected_version=None
    )
    with pytest.raises(SimulatedCrash):
        save_segment_state(
            CrashingStorage(storage, crash_at=3),  # bitmap, segment, then the series
            rec,
            bitmap=bits(1, 2),
            snapshot=Snapshot("s", T1, 2),
            expected_version=first.version,
        )
    state = load_segment_state(storage, "s")
    assert state is not None
    assert (state.bitmap, state.record.snapshot) == (bits(1, 2), Snapshot("s", T1, 2))
    assert [v.value.size for v in storage.list_snapshots("s")] == [1]
    save_segment_state(
        storage,
        rec,
        bitmap=bits(1, 2, 3),
        snapshot=Snapshot("s", T1 + timedelta(days=1), 3),
        expected_version=state.version,
    )
    assert [v.value.size for v in storage.list_snapshots("s")] == [1, 2, 3]


def test_a_newer_definition_owns_its_instant_in_the_series() -> None:
    """Two saves with the same snapshot time: the series keeps the later commit's value."""
    storage = InMemoryStorage()
    rec = SegmentRecord("s", "static", T0, T0)
    v1 = save_segment_state(
        storage, rec, bitmap=bits(1), snapshot=Snapshot("s", T0, 1), expected_version=None
    )
    save_segment_state(
        storage, rec, bitmap=bits(1, 2), snapshot=Snapshot("s", T0, 2), expected_version=v1.version
    )
    assert [v.value for v in storage.list_snapshots("s")] == [Snapshot("s", T0, 2)]


def test_a_late_history_write_does_not_overwrite_a_newer_commit() -> None:
    """A writer whose commit was superseded does not put its older snapshot over the newer one."""
    from segkit.storage.state import _add_to_history

    storage = InMemoryStorage()
    rec = SegmentRecord("s", "static", T0, T0)
    v1 = save_segment_state(
        storage, rec, bitmap=bits(1), snapshot=Snapshot("s", T0, 1), expected_version=None
    )
    v2 = save_segment_state(
        storage, rec, bitmap=bits(2), snapshot=Snapshot("s", T1, 2), expected_version=v1.version
    )
    v3 = save_segment_state(
        storage, rec, bitmap=bits(3), snapshot=Snapshot("s", T1, 3), expected_version=v2.version
    )
    _add_to_history(storage, "s", v2.version, Snapshot("s", T1, 2))  # v2's writer, arriving late
    assert [v.value.size for v in storage.list_snapshots("s")] == [1, 3]
    assert v3.value.snapshot == Snapshot("s", T1, 3)


def test_a_conflicting_save_writes_nothing_the_old_state_names() -> None:
    """A stale save fails before writing; the stored state and the series are untouched."""
    storage = InMemoryStorage()
    rec = SegmentRecord("s", "static", T0, T0)
    v1 = save_segment_state(
        storage, rec, bitmap=bits(1), snapshot=Snapshot("s", T0, 1), expected_version=None
    )
    save_segment_state(storage, rec, bitmap=bits(2), expected_version=v1.version)
    before = (storage.list_bitmaps(), storage.list_snapshots(), load_segment_state(storage, "s"))
    with pytest.raises(ConflictError) as info:
        save_segment_state(
            storage, rec, bitmap=bits(3), snapshot=Snapshot("s", T1, 1), expected_version=v1.version
        )
    assert str(info.value) == "segment 's': expected version 2, found version 5"
    assert (
        storage.list_bitmaps(),
        storage.list_snapshots(),
        load_segment_state(storage, "s"),
    ) == before


def test_a_missing_or_altered_blob_is_reported_never_returned() -> None:
    """Loading checks every blob against its address: missing or altered bytes raise."""
    storage = InMemoryStorage()
    rec = SegmentRecord("s", "static", T0, T0)
    saved = save_segment_state(
        storage, rec, bitmap=bits(1, 2), keys=encode_keys(["a", "b", "c"]), expected_version=None
    )
    address = saved.value.bitmap
    assert address is not None
    blob = storage.get_bitmap(address)
    assert blob is not None
    storage.put_bitmap(address, bits(1, 2, 3), expected_version=blob.version)
    with pytest.raises(CorruptDataError) as info:
        load_segment_state(storage, "s")
    assert str(info.value) == (
        f"segment 's': the bytes stored as bitmap {address!r} do not match their content "
        "address (they were altered)"
    )
    changed = storage.get_bitmap(address)
    assert changed is not None
    storage.delete_bitmap(address, expected_version=changed.version)
    with pytest.raises(CorruptDataError) as info:
        load_segment_states(storage)
    assert str(info.value) == (
        f"segment 's' names bitmap {address!r}, which is missing "
        "(was collect_garbage run while a save was in progress?)"
    )
    # the next save of the same membership writes the blob again
    again = save_segment_state(storage, rec, bitmap=bits(1, 2), expected_version=saved.version)
    state = load_segment_state(storage, "s")
    assert state is not None
    assert (state.bitmap, state.version) == (bits(1, 2), again.version)


def test_a_save_repairs_a_blob_whose_bytes_were_altered() -> None:
    """If the stored bytes under an address differ from the address, a save rewrites them."""
    storage = InMemoryStorage()
    address = content_address(bits(5))
    storage.put_bitmap(address, b"garbage", expected_version=None)
    save_segment_state(
        storage, SegmentRecord("s", "static", T0, T0), bitmap=bits(5), expected_version=None
    )
    state = load_segment_state(storage, "s")
    assert state is not None
    assert state.bitmap == bits(5)


def test_save_checks_its_arguments_before_writing() -> None:
    """Bad bitmap or key-list arguments fail before anything is stored."""
    storage = InMemoryStorage()
    rec = SegmentRecord("s", "static", T0, T0)
    with pytest.raises(TypeError, match=r"^bitmap must be bytes or None, got bytearray$"):
        save_segment_state(storage, rec, bitmap=bytearray(b"x"), expected_version=None)  # type: ignore[arg-type]
    with pytest.raises(CorruptDataError, match=r"^key list is corrupt: not a segkit key list$"):
        save_segment_state(storage, rec, bitmap=None, keys=b"[]", expected_version=None)
    with pytest.raises(TypeError, match=r"^expected a SegmentRecord, got dict$"):
        save_segment_state(storage, {}, bitmap=None, expected_version=None)  # type: ignore[arg-type]
    assert repr(storage) == "InMemoryStorage(segments=0, bitmaps=0, snapshots=0, usage=0)"


def test_load_segment_states_reads_each_shared_blob_once() -> None:
    """Restoring many segments that share a key list reads that list once."""
    inner = InMemoryStorage()
    keys = encode_keys([f"c-{i}" for i in range(5)])
    for name in ("a", "b", "c"):
        save_segment_state(
            inner,
            SegmentRecord(name, "static", T0, T0),
            bitmap=bits(1),
            keys=keys,
            expected_version=None,
        )
    reads: list[str] = []

    class Counting(CrashingStorage):
        def get_bitmap(self, key: str) -> Versioned[bytes] | None:
            reads.append(key)
            return super().get_bitmap(key)

    states = load_segment_states(Counting(inner, crash_at=0))
    assert sorted(reads) == sorted([content_address(bits(1)), content_address(keys)])
    assert list(states) == ["a", "b", "c"]
    assert states["b"] == SegmentState(
        attrs.evolve(
            SegmentRecord("b", "static", T0, T0),
            bitmap=content_address(bits(1)),
            keys=content_address(keys),
        ),
        states["b"].version,
        bits(1),
        ("c-0", "c-1", "c-2", "c-3", "c-4"),
    )


# --- drop and garbage -------------------------------------------------------------------


def test_drop_removes_the_definition_series_and_usage_but_not_shared_blobs() -> None:
    """Dropping one of two segments with the same members keeps their shared bitmap."""
    storage = InMemoryStorage()
    a = save_segment_state(
        storage,
        SegmentRecord("a", "static", T0, T0),
        bitmap=bits(1),
        snapshot=Snapshot("a", T0, 1),
        expected_version=None,
    )
    save_segment_state(
        storage, SegmentRecord("b", "static", T0, T0), bitmap=bits(1), expected_version=None
    )
    record_usage(storage, UsageRecord("a", "ads", "personalization", "c-1"))
    drop_segment_state(storage, "a", expected_version=a.version)
    assert storage.list_segments() == ["b"]
    assert storage.list_snapshots() == []
    assert storage.list_usage() == []
    assert collect_garbage(storage) == Garbage((), (), ())
    state = load_segment_state(storage, "b")
    assert state is not None
    assert state.bitmap == bits(1)


def test_drop_with_a_stale_version_changes_nothing() -> None:
    """drop_segment_state is compare-and-set on the definition."""
    storage = InMemoryStorage()
    a = save_segment_state(
        storage, SegmentRecord("a", "static", T0, T0), bitmap=bits(1), expected_version=None
    )
    save_segment_state(
        storage, SegmentRecord("a", "static", T0, T0), bitmap=bits(2), expected_version=a.version
    )
    with pytest.raises(ConflictError, match=r"^segment 'a': expected version 2, found version 4$"):
        drop_segment_state(storage, "a", expected_version=a.version)
    assert storage.list_segments() == ["a"]


def test_a_crash_during_drop_leaves_garbage_that_gc_removes() -> None:
    """A drop that crashes after deleting the definition leaves leftovers; gc clears them."""
    storage = InMemoryStorage()
    saved = save_segment_state(
        storage,
        SegmentRecord("a", "static", T0, T0),
        bitmap=bits(1),
        snapshot=Snapshot("a", T0, 1),
        expected_version=None,
    )
    record_usage(storage, UsageRecord("a", "ads", "personalization", "c-1"))
    with pytest.raises(SimulatedCrash):
        drop_segment_state(
            CrashingStorage(storage, crash_at=2), "a", expected_version=saved.version
        )
    assert load_segment_state(storage, "a") is None
    assert collect_garbage(storage, dry_run=True) == Garbage(
        (content_address(bits(1)),), (("a", T0),), (("a", "ads", "c-1"),)
    )
    assert len(storage.list_snapshots()) == 1  # the dry run removed nothing
    assert collect_garbage(storage) == Garbage(
        (content_address(bits(1)),), (("a", T0),), (("a", "ads", "c-1"),)
    )
    assert (storage.list_bitmaps(), storage.list_snapshots(), storage.list_usage()) == ([], [], [])


def test_a_drop_keeps_the_series_of_a_segment_recreated_meanwhile() -> None:
    """If the name is defined again before the leftovers go, they belong to the new segment."""
    storage = InMemoryStorage()
    saved = save_segment_state(
        storage,
        SegmentRecord("a", "static", T0, T0),
        bitmap=None,
        snapshot=Snapshot("a", T0, 1),
        expected_version=None,
    )
    storage.delete_segment("a", expected_version=saved.version)
    save_segment_state(
        storage, SegmentRecord("a", "static", T1, T1), bitmap=None, expected_version=None
    )
    assert collect_garbage(storage) == Garbage((), (), ())
    assert [v.value.at for v in storage.list_snapshots("a")] == [T0]


def test_gc_leaves_bitmaps_under_application_keys_alone() -> None:
    """Only content-addressed blobs are collected."""
    storage = InMemoryStorage()
    storage.put_bitmap("my-export", b"x", expected_version=None)
    storage.put_bitmap(content_address(b"y"), b"y", expected_version=None)
    assert collect_garbage(storage).bitmaps == (content_address(b"y"),)
    assert storage.list_bitmaps() == ["my-export"]


def test_record_usage_replaces_by_key() -> None:
    """record_usage inserts, then replaces the record with the same (segment, tool, ref)."""
    storage = MappingStorage({})
    assert record_usage(storage, UsageRecord("a", "ads", "personalization", "c-1")) == 1
    assert record_usage(storage, UsageRecord("a", "ads", "analytics", "c-1", at=T0)) == 2
    assert [v.value for v in storage.list_usage()] == [
        UsageRecord("a", "ads", "analytics", "c-1", at=T0)
    ]


# --- concurrency through the state functions --------------------------------------------


@pytest.mark.parametrize(
    "backend", [InMemoryStorage, lambda: MappingStorage({})], ids=["memory", "mapping"]
)
def test_concurrent_read_modify_write_saves_lose_nothing(backend: Callable[[], Storage]) -> None:
    """8 threads add their own id to a static segment's members via load/modify/save with retry.

    Every update lands (or is retried after a ConflictError); the final bitmap,
    key list and snapshot agree and hold all 8 x 5 ids.
    """
    storage = backend()
    save_segment_state(
        storage,
        SegmentRecord("s", "static", T0, T0),
        bitmap=bits(),
        snapshot=Snapshot("s", T0, 0),
        expected_version=None,
    )
    barrier = threading.Barrier(8)
    errors: list[BaseException] = []

    def work(worker: int) -> None:
        try:
            barrier.wait()
            for step in range(5):
                while True:
                    state = load_segment_state(storage, "s")
                    assert state is not None
                    assert state.bitmap is not None
                    members = Bitmap.deserialize(state.bitmap)
                    members.add(worker * 100 + step)
                    try:
                        save_segment_state(
                            storage,
                            state.record,
                            bitmap=members.serialize(),
                            snapshot=Snapshot(
                                "s", T0 + timedelta(seconds=len(members)), len(members)
                            ),
                            expected_version=state.version,
                        )
                    except ConflictError:
                        continue
                    break
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    state = load_segment_state(storage, "s")
    assert state is not None
    assert state.bitmap is not None
    assert sorted(Bitmap.deserialize(state.bitmap)) == sorted(
        w * 100 + s for w in range(8) for s in range(5)
    )
    assert state.record.snapshot == Snapshot("s", T0 + timedelta(seconds=40), 40)
    assert [v.value.size for v in storage.list_snapshots("s")] == list(range(41))


def test_a_snapshot_of_another_segment_is_refused_before_any_write() -> None:
    """save_segment_state checks the snapshot's segment before writing blobs."""
    storage = InMemoryStorage()
    with pytest.raises(ValueError, match=r"^segment 's' cannot hold a snapshot of 't'$"):
        save_segment_state(
            storage,
            SegmentRecord("s", "static", T0, T0),
            bitmap=bits(1),
            snapshot=Snapshot("t", T0, 1),
            expected_version=None,
        )
    assert storage.list_bitmaps() == []
