"""Persistence without I/O: the :class:`Storage` protocol, two backends, a codec.

segkit opens no file and no socket. An application that wants segments to
outlive the process hands the Engine a :class:`Storage`:

* :class:`InMemoryStorage`: the default; nothing survives the process.
* :class:`MappingStorage`: over any ``MutableMapping[str, bytes]`` the application
  opened itself (``dict``, ``dbm``, ``shelve``, a key-value server's client).
* its own class with the sixteen methods of :class:`Storage`, checked by
  ``segkit.testing.check_storage``.

:func:`save_segment_state` and :func:`load_segment_state` store and restore a
segment's definition, membership bitmap and snapshot across several keys so that
a crash never leaves a mixed state. See ``docs/storage.md``.

>>> import segkit.storage as st
>>> isinstance(st.MappingStorage({}), st.Storage)
True

.. versionadded:: 0.1.0
"""

from segkit.storage.codec import (
    FORMAT_VERSION,
    Frame,
    content_address,
    decode,
    decode_keys,
    encode,
    encode_keys,
    is_content_address,
)
from segkit.storage.mapping import MappingStorage, RawMapping
from segkit.storage.memory import InMemoryStorage
from segkit.storage.protocol import (
    Storage,
    check_version,
    describe_bitmap,
    describe_segment,
    describe_snapshot,
    describe_usage,
)
from segkit.storage.records import (
    SEGMENT_KINDS,
    SegmentKind,
    SegmentRecord,
    Snapshot,
    UsageRecord,
    Versioned,
)
from segkit.storage.state import (
    Garbage,
    SegmentState,
    collect_garbage,
    drop_segment_state,
    load_segment_state,
    load_segment_states,
    record_usage,
    save_segment_state,
)

__all__ = [
    "FORMAT_VERSION",
    "SEGMENT_KINDS",
    "Frame",
    "Garbage",
    "InMemoryStorage",
    "MappingStorage",
    "RawMapping",
    "SegmentKind",
    "SegmentRecord",
    "SegmentState",
    "Snapshot",
    "Storage",
    "UsageRecord",
    "Versioned",
    "check_version",
    "collect_garbage",
    "content_address",
    "decode",
    "decode_keys",
    "describe_bitmap",
    "describe_segment",
    "describe_snapshot",
    "describe_usage",
    "drop_segment_state",
    "encode",
    "encode_keys",
    "is_content_address",
    "load_segment_state",
    "load_segment_states",
    "record_usage",
    "save_segment_state",
]
