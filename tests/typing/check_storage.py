"""Static typing checks of the storage protocol, run with ``mypy --strict --warn-unused-ignores``.

Both built-in backends (and a hand-written one) must type-check as
``segkit.storage.Storage``; a class missing methods, or with a wrong signature,
must not: each ``# type: ignore[...]`` below is an error mypy has to report, or
the ignore would be unused and the run would fail.
"""

from __future__ import annotations

import dbm.dumb
import shelve
from datetime import datetime

from segkit.storage import (
    InMemoryStorage,
    MappingStorage,
    SegmentRecord,
    Snapshot,
    Storage,
    UsageRecord,
    Versioned,
    load_segment_state,
)


class Complete:
    """A third-party backend written from the protocol alone (bodies elided)."""

    def get_segment(self, name: str) -> Versioned[SegmentRecord] | None:
        return None

    def put_segment(self, record: SegmentRecord, *, expected_version: int | None) -> int:
        return 1

    def delete_segment(self, name: str, *, expected_version: int) -> None:
        return None

    def list_segments(self) -> list[str]:
        return []

    def get_bitmap(self, key: str) -> Versioned[bytes] | None:
        return None

    def put_bitmap(self, key: str, data: bytes, *, expected_version: int | None) -> int:
        return 1

    def delete_bitmap(self, key: str, *, expected_version: int) -> None:
        return None

    def list_bitmaps(self) -> list[str]:
        return []

    def get_snapshot(self, segment: str, at: datetime) -> Versioned[Snapshot] | None:
        return None

    def put_snapshot(self, snapshot: Snapshot, *, expected_version: int | None) -> int:
        return 1

    def delete_snapshot(self, segment: str, at: datetime, *, expected_version: int) -> None:
        return None

    def list_snapshots(self, segment: str | None = None) -> list[Versioned[Snapshot]]:
        return []

    def get_usage(self, segment: str, tool: str, ref: str) -> Versioned[UsageRecord] | None:
        return None

    def put_usage(self, record: UsageRecord, *, expected_version: int | None) -> int:
        return 1

    def delete_usage(self, segment: str, tool: str, ref: str, *, expected_version: int) -> None:
        return None

    def list_usage(self, segment: str | None = None) -> list[Versioned[UsageRecord]]:
        return []


class Incomplete:
    """Only the segment half of the protocol."""

    def get_segment(self, name: str) -> Versioned[SegmentRecord] | None:
        return None

    def put_segment(self, record: SegmentRecord, *, expected_version: int | None) -> int:
        return 1


class WrongSignature(Complete):
    """put_bitmap without the expected version: writers could overwrite each other."""

    def put_bitmap(self, key: str, data: bytes) -> int:  # type: ignore[override]
        return 1


def _positive(path: str) -> None:
    backend: type[Storage] = InMemoryStorage
    backend = MappingStorage
    third_party: type[Storage] = Complete
    with dbm.dumb.open(path) as db, shelve.open(path) as shelf:
        storages: list[Storage] = [
            InMemoryStorage(),
            MappingStorage({}),
            MappingStorage(db),
            MappingStorage(shelf),
            Complete(),
        ]
    state = load_segment_state(storages[0], "vip")
    version: int | None = None if state is None else state.version
    found: Versioned[bytes] | None = storages[1].get_bitmap("b")
    del backend, third_party, version, found


def _negative() -> None:
    backend: type[Storage] = Incomplete  # type: ignore[assignment]
    storage: Storage = Incomplete()  # type: ignore[assignment]
    other: Storage = WrongSignature()  # type: ignore[assignment]
    InMemoryStorage().put_bitmap("b", b"")  # type: ignore[call-arg]
    InMemoryStorage().put_segment(SegmentRecord("a", "static", datetime.now(), datetime.now()), 1)  # type: ignore[call-arg]
    MappingStorage({"k": 1})  # type: ignore[arg-type]
    del backend, storage, other
