"""The storage protocol: the conformance suite on every built-in backend, plus their specifics."""

from __future__ import annotations

import dbm.dumb
import shelve
import threading
from collections.abc import Iterator, MutableMapping
from contextlib import ExitStack
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import attrs
import pytest

from segkit.errors import ConflictError, CorruptDataError
from segkit.storage import (
    InMemoryStorage,
    MappingStorage,
    SegmentRecord,
    Snapshot,
    Storage,
    UsageRecord,
    Versioned,
    decode,
    encode,
)
from segkit.testing import (
    CHECKS,
    CorruptionConformance,
    StorageConformance,
    check_storage,
    run_check,
)

NOW = datetime(2024, 6, 30, 12, 0, tzinfo=timezone.utc)


def flip_every_value(storage: Storage) -> None:
    """Flip a bit of the last payload byte (the byte before the checksum) of every stored value."""
    assert isinstance(storage, MappingStorage)
    mapping: MutableMapping[Any, Any] = storage.mapping
    for key in list(mapping.keys()):
        value = bytearray(mapping[key])
        value[-17] ^= 0x40
        mapping[key] = bytes(value)


# --- the conformance suite on every built-in backend ------------------------------------


class TestInMemoryConformance(StorageConformance):
    """InMemoryStorage passes the conformance suite."""

    def make_storage(self) -> Storage:
        return InMemoryStorage()


class TestDictConformance(StorageConformance, CorruptionConformance):
    """MappingStorage over a dict passes the suite, corruption checks included."""

    def make_storage(self) -> Storage:
        return MappingStorage({})

    def damage_storage(self, storage: Storage) -> None:
        flip_every_value(storage)


class TestDbmDumbConformance(StorageConformance, CorruptionConformance):
    """MappingStorage over dbm.dumb (keys come back as bytes) passes the suite."""

    conformance_rounds = 10

    @pytest.fixture(autouse=True)
    def _files(self, tmp_path: Path) -> Iterator[None]:
        self.dir = tmp_path
        self.count = 0
        with ExitStack() as self.opened:
            yield

    def make_storage(self) -> Storage:
        self.count += 1
        path = str(self.dir / f"db{self.count}")
        db = self.opened.enter_context(dbm.dumb.open(path, "n"))  # noqa: SIM115 - the stack closes it
        return MappingStorage(db)

    def damage_storage(self, storage: Storage) -> None:
        flip_every_value(storage)


class TestShelveConformance(StorageConformance, CorruptionConformance):
    """MappingStorage over a shelve.Shelf passes the suite."""

    conformance_rounds = 10

    @pytest.fixture(autouse=True)
    def _files(self, tmp_path: Path) -> Iterator[None]:
        self.dir = tmp_path
        self.count = 0
        with ExitStack() as self.opened:
            yield

    def make_storage(self) -> Storage:
        self.count += 1
        path = str(self.dir / f"shelf{self.count}")
        shelf = self.opened.enter_context(shelve.open(path, "n"))  # noqa: SIM115 - the stack closes it
        return MappingStorage(shelf)

    def damage_storage(self, storage: Storage) -> None:
        flip_every_value(storage)


def test_check_storage_runs_every_check_and_returns_their_names() -> None:
    """check_storage runs all checks, and the damage checks only with a damage function."""
    assert check_storage(InMemoryStorage, rounds=3) == list(CHECKS)
    names = check_storage(lambda: MappingStorage({}), damage=flip_every_value, rounds=3)
    assert names == [*CHECKS, "damage_detected"]


def test_run_check_refuses_unknown_names() -> None:
    """An unknown check name is a caller error, not a pass."""
    with pytest.raises(ValueError, match=r"^unknown storage check 'nope'$"):
        run_check("nope", InMemoryStorage)


# --- the suite fails broken backends, naming the check ----------------------------------


class LastWriterWins(InMemoryStorage):
    """A broken backend: put_segment ignores the expected version."""

    def put_segment(self, record: SegmentRecord, *, expected_version: int | None) -> int:
        found = self.get_segment(record.name)
        version = None if found is None else found.version
        return super().put_segment(record, expected_version=version)


class ForgetsOnDelete(InMemoryStorage):
    """A broken backend: versions restart after a delete (so stale writers can win)."""

    def put_bitmap(self, key: str, data: bytes, *, expected_version: int | None) -> int:
        super().put_bitmap(key, data, expected_version=expected_version)
        return 1 if expected_version is None else expected_version + 1


class SharesRules(InMemoryStorage):
    """A broken backend: hands out the stored record itself, rule dict and all."""

    def __init__(self) -> None:
        super().__init__()
        self.kept: dict[str, Versioned[SegmentRecord]] = {}

    def put_segment(self, record: SegmentRecord, *, expected_version: int | None) -> int:
        version = super().put_segment(record, expected_version=expected_version)
        self.kept[record.name] = Versioned(record, version)
        return version

    def get_segment(self, name: str) -> Versioned[SegmentRecord] | None:
        return self.kept.get(name)


class IgnoresDamage(MappingStorage):
    """A broken backend: returns stored bitmap bytes without checking them."""

    def get_bitmap(self, key: str) -> Versioned[bytes] | None:
        raw = self.mapping.get(f"segkit/bitmap/{key}")
        return None if raw is None else Versioned(bytes(raw[22:-16]), 1)


def test_the_suite_catches_a_backend_without_compare_and_set() -> None:
    """Lost updates are reported by the create-conflict check, with what it saw."""
    with pytest.raises(AssertionError) as info:
        check_storage(LastWriterWins)
    assert str(info.value) == (
        "storage check 'create_conflicts' failed: creating a segment that exists "
        "(expected_version=None): expected ConflictError, but it returned 2"
    )


def test_the_suite_catches_lost_updates_between_threads() -> None:
    """The concurrency check alone catches a backend that drops concurrent updates."""
    with pytest.raises(
        AssertionError,
        match=r"^storage check 'concurrent_writers' failed: the counter after 8 threads made 25 increments each: got \('count=\d+',\), expected \('count=200',\)$",
    ):
        run_check("concurrent_writers", LastWriterWins)


def test_the_suite_catches_reused_versions() -> None:
    """A version handed out twice to one key fails the delete check."""
    with pytest.raises(AssertionError) as info:
        run_check("delete_conflicts", ForgetsOnDelete)
    assert str(info.value) == (
        "storage check 'delete_conflicts' failed: re-creating a deleted bitmap returned "
        "version 1, which the key had before"
    )


def test_the_suite_catches_shared_mutable_state() -> None:
    """Handing out the caller's rule dict fails the isolation check."""
    with pytest.raises(AssertionError) as info:
        run_check("isolation", SharesRules)
    assert str(info.value).startswith(
        "storage check 'isolation' failed: the stored rule after the caller changed its dict: got"
    )


def test_the_suite_catches_a_backend_that_returns_damaged_bytes() -> None:
    """Returning damaged bitmap bytes fails the damage check."""
    with pytest.raises(AssertionError) as info:
        run_check("damage_detected", lambda: IgnoresDamage({}), damage=flip_every_value)
    assert str(info.value) == (
        "storage check 'damage_detected' failed: reading a damaged bitmap: expected "
        "CorruptDataError, but it returned Versioned(value=b'firs4', version=1)"
    )


# --- the protocol as a runtime check ----------------------------------------------------


class Incomplete:
    """Has the segment methods only."""

    def get_segment(self, name: str) -> None:
        return None


@pytest.mark.parametrize(
    ("candidate", "expected"),
    [
        (InMemoryStorage(), True),
        (MappingStorage({}), True),
        (Incomplete(), False),
        ({}, False),
    ],
)
def test_isinstance_storage(candidate: object, expected: bool) -> None:
    """isinstance(x, Storage) holds for both built-ins and not for incomplete classes."""
    assert isinstance(candidate, Storage) is expected


def test_the_protocol_check_names_the_missing_methods() -> None:
    """A class missing methods fails the first check with their names."""
    with pytest.raises(AssertionError) as info:
        run_check("protocol", Incomplete)  # type: ignore[arg-type]
    assert str(info.value) == (
        "storage check 'protocol' failed: Incomplete does not satisfy Storage: missing "
        "put_segment, delete_segment, get_bitmap, put_bitmap, delete_bitmap, get_snapshot, "
        "put_snapshot, delete_snapshot, get_usage, put_usage, delete_usage, list_segments, "
        "list_bitmaps, list_snapshots, list_usage"
    )


# --- exact conflict messages, the same from both built-ins -------------------------------


def both() -> list[Storage]:
    return [InMemoryStorage(), MappingStorage({})]


@pytest.mark.parametrize("storage", both(), ids=["memory", "mapping"])
def test_conflict_messages(storage: Storage) -> None:
    """Each kind of conflict names the key, the expected and the found version."""
    rec = SegmentRecord("vip", "static", NOW, NOW)
    storage.put_segment(rec, expected_version=None)
    with pytest.raises(ConflictError) as info:
        storage.put_segment(rec, expected_version=None)
    assert str(info.value) == "segment 'vip': expected no stored value, found version 1"
    with pytest.raises(ConflictError) as info:
        storage.put_bitmap("b", b"", expected_version=4)
    assert str(info.value) == "bitmap 'b': expected version 4, found no stored value"
    storage.put_snapshot(Snapshot("vip", NOW, 1), expected_version=None)
    with pytest.raises(ConflictError) as info:
        storage.delete_snapshot("vip", NOW, expected_version=1)
    assert str(info.value) == (
        "snapshot of 'vip' at 2024-06-30T12:00:00+00:00: expected version 1, found version 2"
    )
    with pytest.raises(ConflictError) as info:
        storage.delete_usage("vip", "ads", "r-1", expected_version=9)
    assert (
        str(info.value)
        == "usage of 'vip' by 'ads' ref 'r-1': expected version 9, found no stored value"
    )


@pytest.mark.parametrize("storage", both(), ids=["memory", "mapping"])
@pytest.mark.parametrize(
    ("expected", "error", "message"),
    [
        (0, ValueError, "expected_version must be at least 1, got 0"),
        (True, TypeError, "expected_version must be an int or None, got True"),
        ("1", TypeError, "expected_version must be an int or None, got '1'"),
    ],
)
def test_bad_expected_versions_are_caller_errors(
    storage: Storage, expected: Any, error: type[Exception], message: str
) -> None:
    """A malformed expected_version raises TypeError/ValueError, not ConflictError."""
    with pytest.raises(error) as info:
        storage.put_bitmap("b", b"", expected_version=expected)
    assert str(info.value) == message
    assert storage.list_bitmaps() == []


@pytest.mark.parametrize("storage", both(), ids=["memory", "mapping"])
def test_deleting_with_none_is_a_caller_error(storage: Storage) -> None:
    """delete_* needs the version being deleted; None is refused."""
    with pytest.raises(TypeError, match=r"^expected_version of a delete must be an int, got None$"):
        storage.delete_bitmap("b", expected_version=None)  # type: ignore[arg-type]


@pytest.mark.parametrize("storage", both(), ids=["memory", "mapping"])
def test_wrong_value_types_are_refused(storage: Storage) -> None:
    """Puts check what they are given before anything is stored."""
    with pytest.raises(TypeError, match=r"^expected a SegmentRecord, got dict$"):
        storage.put_segment({"name": "x"}, expected_version=None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"^bitmap data must be bytes, got str$"):
        storage.put_bitmap("b", "text", expected_version=None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"^a bitmap key must be a non-empty string, got ''$"):
        storage.put_bitmap("", b"", expected_version=None)
    with pytest.raises(TypeError, match=r"^expected a Snapshot, got int$"):
        storage.put_snapshot(3, expected_version=None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"^expected a UsageRecord, got NoneType$"):
        storage.put_usage(None, expected_version=None)  # type: ignore[arg-type]
    assert storage.list_segments() == storage.list_bitmaps() == []


def test_in_memory_repr_counts_values() -> None:
    """The repr shows how many values of each kind are stored."""
    storage = InMemoryStorage()
    storage.put_usage(UsageRecord("a", "ads", "analytics", ""), expected_version=None)
    assert repr(storage) == "InMemoryStorage(segments=0, bitmaps=0, snapshots=0, usage=1)"


# --- MappingStorage specifics -----------------------------------------------------------


def test_mapping_key_layout_is_percent_encoded_under_the_prefix() -> None:
    """Every component is percent-encoded, so names with '/' cannot collide."""
    mapping: dict[str, bytes] = {}
    storage = MappingStorage(mapping, prefix="app1/")
    storage.put_segment(SegmentRecord("a/b", "static", NOW, NOW), expected_version=None)
    storage.put_bitmap("50%", b"", expected_version=None)
    storage.put_snapshot(Snapshot("a/b", NOW, 1), expected_version=None)
    storage.put_usage(UsageRecord("a/b", "e mail", "communication", "x/y"), expected_version=None)
    assert sorted(mapping) == [
        "app1/bitmap/50%25",
        "app1/revision",
        "app1/segment/a%2Fb",
        "app1/snapshot/a%2Fb/2024-06-30T12%3A00%3A00%2B00%3A00",
        "app1/usage/a%2Fb/e%20mail/x%2Fy",
    ]
    assert storage.list_segments() == ["a/b"]
    assert storage.list_bitmaps() == ["50%"]
    assert repr(storage) == "MappingStorage(dict, prefix='app1/')"


def test_two_prefixes_share_one_mapping() -> None:
    """Storages with different prefixes over one mapping do not see each other."""
    mapping: dict[str, bytes] = {}
    one, two = MappingStorage(mapping, prefix="one/"), MappingStorage(mapping, prefix="two/")
    one.put_bitmap("b", b"1", expected_version=None)
    assert two.list_bitmaps() == []
    assert two.get_bitmap("b") is None
    two.put_bitmap("b", b"2", expected_version=None)
    assert one.get_bitmap("b") == Versioned(b"1", 1)
    assert two.get_bitmap("b") == Versioned(b"2", 1)


def test_dbm_returns_bytes_keys_and_values(tmp_path: Path) -> None:
    """Over dbm, keys come back as bytes; MappingStorage lists and reads them all the same."""
    with dbm.dumb.open(str(tmp_path / "db"), "n") as db:
        storage = MappingStorage(db)
        storage.put_segment(SegmentRecord("été", "static", NOW, NOW), expected_version=None)
        assert all(isinstance(k, bytes) for k in db)
        assert storage.list_segments() == ["été"]
    with dbm.dumb.open(str(tmp_path / "db"), "r") as db:  # reopened: the state survived
        found = MappingStorage(db).get_segment("été")
        assert found == Versioned(SegmentRecord("été", "static", NOW, NOW), 1)


def test_versions_survive_a_lost_revision_counter() -> None:
    """If the counter key disappears, new versions still start above every stored one."""
    mapping: dict[str, bytes] = {}
    storage = MappingStorage(mapping)
    for key in "abc":
        storage.put_bitmap(key, b"", expected_version=None)
    del mapping["segkit/revision"]
    assert storage.put_bitmap("d", b"", expected_version=None) == 4


def test_the_revision_counter_is_checked_too() -> None:
    """A damaged counter raises CorruptDataError instead of handing out a wrong version."""
    mapping: dict[str, bytes] = {}
    storage = MappingStorage(mapping)
    storage.put_bitmap("a", b"", expected_version=None)
    mapping["segkit/revision"] = mapping["segkit/revision"][:-1]
    with pytest.raises(CorruptDataError) as info:
        storage.put_bitmap("b", b"", expected_version=None)
    assert (
        str(info.value)
        == "stored value for key 'segkit/revision' is truncated: 37 bytes, expected 38"
    )
    assert storage.get_bitmap("b") is None


def test_a_value_moved_to_another_key_is_refused() -> None:
    """The checksum covers the key: a value copied under another key does not decode."""
    mapping: dict[str, bytes] = {}
    storage = MappingStorage(mapping)
    storage.put_bitmap("members-a", b"aaa", expected_version=None)
    mapping["segkit/bitmap/members-b"] = mapping["segkit/bitmap/members-a"]
    with pytest.raises(CorruptDataError) as info:
        storage.get_bitmap("members-b")
    assert str(info.value) == (
        "stored value for key 'segkit/bitmap/members-b' is corrupt: checksum mismatch "
        "(the bytes were altered, or the value was stored under another key)"
    )


def test_a_value_of_another_kind_is_refused() -> None:
    """A bitmap frame found where a segment belongs is reported as such."""
    mapping: dict[str, bytes] = {}
    storage = MappingStorage(mapping)
    key = "segkit/segment/vip"
    mapping[key] = encode("bitmap", b"", version=1, key=key)
    with pytest.raises(CorruptDataError) as info:
        storage.get_segment("vip")
    assert (
        str(info.value)
        == "stored value for key 'segkit/segment/vip' holds a bitmap, expected a segment"
    )


def test_an_intact_frame_with_a_bad_record_is_refused() -> None:
    """A well-framed payload that is not a valid record raises CorruptDataError naming the key."""
    mapping: dict[str, bytes] = {}
    storage = MappingStorage(mapping)
    key = "segkit/usage/a/ads/r"
    mapping[key] = encode("usage", b'{"segment": "a"}', version=1, key=key)
    with pytest.raises(CorruptDataError) as info:
        storage.list_usage()
    assert str(info.value) == (
        "stored value for key 'segkit/usage/a/ads/r' is corrupt: usage record is missing "
        "'tool', 'objective', 'ref'"
    )
    mapping[key] = encode("usage", b"\xff", version=1, key=key)
    with pytest.raises(
        CorruptDataError,
        match=r"^stored value for key 'segkit/usage/a/ads/r' is corrupt: 'utf-8' codec can't decode",
    ):
        storage.get_usage("a", "ads", "r")


def test_a_value_that_is_not_bytes_is_refused() -> None:
    """Something other than bytes under a segkit key is reported, not crashed on."""
    mapping: dict[str, Any] = {"segkit/bitmap/b": "text"}
    with pytest.raises(CorruptDataError) as info:
        MappingStorage(mapping).get_bitmap("b")
    assert str(info.value) == "stored value for key 'segkit/bitmap/b' is not bytes but str"


def test_mapping_storage_refuses_non_mappings() -> None:
    """The constructor checks its arguments."""
    with pytest.raises(TypeError, match=r"^expected a MutableMapping, got list$"):
        MappingStorage([])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"^prefix must be a string, got int$"):
        MappingStorage({}, prefix=3)  # type: ignore[arg-type]


class CountingLock:
    """A lock that counts how often it was taken (stands in for a cross-process lock)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.entered = 0

    def __enter__(self) -> None:
        self.lock.acquire()
        self.entered += 1

    def __exit__(self, *exc: object) -> None:
        self.lock.release()


def test_a_shared_lock_makes_two_instances_compare_and_set_together() -> None:
    """Two MappingStorage instances over one mapping and one lock keep CAS between them."""
    mapping: dict[str, bytes] = {}
    lock = CountingLock()
    one, two = MappingStorage(mapping, lock=lock), MappingStorage(mapping, lock=lock)
    run_check("concurrent_writers", lambda: one, rounds=5)
    assert lock.entered > 0
    found = two.get_segment("vip")
    assert found is not None
    assert found.value.tags == ("count=40",)
    with pytest.raises(ConflictError):
        two.put_segment(found.value, expected_version=found.version - 1)


def test_decode_of_what_mapping_storage_wrote() -> None:
    """A stored value is an ordinary codec frame holding the record's JSON."""
    mapping: dict[str, bytes] = {}
    MappingStorage(mapping).put_snapshot(Snapshot("a", NOW, 3), expected_version=None)
    key = "segkit/snapshot/a/2024-06-30T12%3A00%3A00%2B00%3A00"
    frame = decode(mapping[key], key=key, kind="snapshot")
    assert (frame.version, frame.payload) == (
        1,
        b'{"at":"2024-06-30T12:00:00+00:00","engagement":null,"segment":"a","size":3}',
    )


# --- records ----------------------------------------------------------------------------


def test_records_round_trip_through_dicts() -> None:
    """to_dict gives JSON values, from_dict rebuilds an equal record."""
    rec = SegmentRecord(
        "vip",
        "dynamic",
        NOW.astimezone(timezone(timedelta(hours=2))),
        NOW,
        rule={"segkit_rule": 1, "items": [1, 2.5, None, True, "x"]},
        tags=["b", "a"],
        snapshot=Snapshot("vip", NOW, 3, engagement=1),
    )
    assert rec.created_at == NOW
    assert str(rec.created_at.tzinfo) == "UTC"
    assert rec.to_dict() == {
        "name": "vip",
        "kind": "dynamic",
        "created_at": "2024-06-30T12:00:00+00:00",
        "updated_at": "2024-06-30T12:00:00+00:00",
        "rule": {"segkit_rule": 1, "items": [1, 2.5, None, True, "x"]},
        "object_type": "contact",
        "updated_by": None,
        "tags": ["a", "b"],
        "bitmap": None,
        "keys": None,
        "snapshot": {
            "segment": "vip",
            "at": "2024-06-30T12:00:00+00:00",
            "size": 3,
            "engagement": 1.0,
        },
    }
    assert SegmentRecord.from_dict(rec.to_dict()) == rec
    use = UsageRecord("vip", "ads", "personalization", "r", at=NOW)
    assert UsageRecord.from_dict(use.to_dict()) == use


def test_records_are_hashable_and_frozen() -> None:
    """Records are frozen values (the rule dict is left out of the hash)."""
    rec = SegmentRecord("vip", "dynamic", NOW, NOW, rule={"a": 1})
    assert hash(rec) == hash(attrs.evolve(rec, rule={"a": 2}))
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        rec.name = "x"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("build", "error", "message"),
    [
        (lambda: SegmentRecord("", "static", NOW, NOW), ValueError, "name must not be empty"),
        (
            lambda: SegmentRecord("a", "smart", NOW, NOW),
            ValueError,
            "kind must be 'dynamic' or 'static', got 'smart'",
        ),
        (
            lambda: SegmentRecord("a", "dynamic", NOW, NOW),
            ValueError,
            "dynamic segment 'a' needs a rule",
        ),
        (
            lambda: SegmentRecord("a", "static", datetime(2024, 1, 1), NOW),
            ValueError,
            "created_at must be timezone-aware, got the naive 2024-01-01T00:00:00",
        ),
        (
            lambda: SegmentRecord("a", "static", "2024", NOW),
            TypeError,
            "created_at must be a datetime, got str",
        ),
        (
            lambda: SegmentRecord("a", "static", NOW, NOW, tags="vip"),
            TypeError,
            "tags must be an iterable of strings, got str",
        ),
        (
            lambda: SegmentRecord("a", "static", NOW, NOW, tags=[""]),
            TypeError,
            "tags must be non-empty strings, got ''",
        ),
        (
            lambda: SegmentRecord("a", "dynamic", NOW, NOW, rule={"x": float("nan")}),
            ValueError,
            "rule['x'] holds nan, which JSON cannot represent",
        ),
        (
            lambda: SegmentRecord("a", "dynamic", NOW, NOW, rule={"x": [{1: 2}]}),
            TypeError,
            "rule['x'][0] has a non-string key 1",
        ),
        (
            lambda: SegmentRecord("a", "dynamic", NOW, NOW, rule={"x": {1, 2}}),
            TypeError,
            "rule['x'] holds a set, which is not JSON-safe",
        ),
        (
            lambda: SegmentRecord("a", "dynamic", NOW, NOW, rule="x > 1"),
            TypeError,
            "rule must be a dict (Rule.to_dict()) or None, got str",
        ),
        (
            lambda: SegmentRecord("a", "static", NOW, NOW, snapshot=Snapshot("b", NOW, 1)),
            ValueError,
            "segment 'a' cannot hold a snapshot of 'b'",
        ),
        (
            lambda: SegmentRecord("a", "static", NOW, NOW, snapshot=3),  # type: ignore[arg-type]
            TypeError,
            "snapshot must be a Snapshot or None, got int",
        ),
        (lambda: Snapshot("a", NOW, -1), ValueError, "size must not be negative, got -1"),
        (lambda: Snapshot("a", NOW, True), TypeError, "size must be an int, got bool"),
        (
            lambda: Snapshot("a", NOW, 1, engagement=float("inf")),
            ValueError,
            "engagement must be finite, got inf",
        ),
        (
            lambda: Snapshot("a", NOW, 1, engagement="high"),
            TypeError,
            "engagement must be a number or None, got str",
        ),
        (lambda: UsageRecord("a", "", "x", "r"), ValueError, "tool must not be empty"),
        (
            lambda: UsageRecord("a", "ads", "x", None),
            TypeError,
            "ref must be a string, got NoneType",
        ),
        (lambda: Versioned(b"", 0), ValueError, "version must be at least 1, got 0"),
        (
            lambda: Versioned(b"", "1"),  # type: ignore[arg-type]
            TypeError,
            "version must be an int, got str",
        ),
        (
            lambda: SegmentRecord.from_dict([]),  # type: ignore[arg-type]
            TypeError,
            "a segment record must be a dict, got list",
        ),
        (
            lambda: SegmentRecord.from_dict(
                {"name": "a", "kind": "static", "created_at": "x", "updated_at": "y"}
            ),
            ValueError,
            "created_at is not an ISO 8601 datetime: 'x'",
        ),
        (
            lambda: Snapshot.from_dict({"segment": "a", "at": "2024-01-01T00:00:00", "size": 1}),
            ValueError,
            "at must be timezone-aware, got the naive 2024-01-01T00:00:00",
        ),
        (
            lambda: Snapshot.from_dict(
                {"segment": "a", "at": 1, "size": 1, "color": 2, "extra": 3}
            ),
            ValueError,
            "snapshot has unknown fields 'color', 'extra'",
        ),
    ],
)
def test_record_validation_messages(build: Any, error: type[Exception], message: str) -> None:
    """Records refuse bad fields with a message naming the field and the value."""
    with pytest.raises(error) as info:
        build()
    assert str(info.value) == message
