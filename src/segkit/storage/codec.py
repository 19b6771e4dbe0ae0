"""The byte format of stored values: a framed, versioned, checksummed envelope.

:class:`~segkit.storage.MappingStorage` stores every value as one *frame*; other
backends may use it too. Format version 1 (big-endian)::

    offset  size  field
         0     4  magic b"SGKT"
         4     1  format version (1)
         5     1  kind: 1 segment, 2 bitmap, 3 snapshot, 4 usage, 5 meta
         6     8  the value's storage version (the compare-and-set version)
        14     8  payload length n
        22     n  payload (UTF-8 JSON for records, raw bytes for bitmaps)
      22+n    16  BLAKE2b-128 of the storage key (length-prefixed) and bytes 0 .. 22+n

Every format version starts with the magic and the format byte and ends with the
same 16-byte checksum over everything before it, so a value written by a newer
segkit is recognised as such (and not mistaken for damage). The JSON layouts of
the records (their ``to_dict`` forms) are part of the format: changing them means
a new format version. Because the checksum
covers the storage key, a value copied under another key does not decode either.

:func:`decode` never returns altered bytes: it raises
:class:`~segkit.CorruptDataError` saying what is wrong (not a segkit value,
truncated, trailing bytes, checksum mismatch, wrong kind) and for which key, and
asks to upgrade segkit for a newer format version.

>>> frame = encode("bitmap", b"\\x3a\\x30\\x00\\x00", version=7, key="segkit/bitmap/b")
>>> decode(frame, key="segkit/bitmap/b")
Frame(kind='bitmap', version=7, payload=b':0\\x00\\x00')
>>> decode(frame[:-1], key="segkit/bitmap/b")
Traceback (most recent call last):
...
segkit.errors.CorruptDataError: stored value for key 'segkit/bitmap/b' is truncated: 41 bytes, expected 42
>>> decode(frame, key="segkit/bitmap/other")
Traceback (most recent call last):
...
segkit.errors.CorruptDataError: stored value for key 'segkit/bitmap/other' is corrupt: checksum mismatch (the bytes were altered, or the value was stored under another key)

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Iterable
from typing import Final, Literal

import attrs

from segkit.errors import CorruptDataError

__all__ = [
    "FORMAT_VERSION",
    "MAGIC",
    "Frame",
    "ValueKind",
    "content_address",
    "decode",
    "decode_keys",
    "encode",
    "encode_keys",
    "is_content_address",
]

#: The first four bytes of every stored value.
MAGIC: Final = b"SGKT"

#: The frame format version this segkit writes (and the newest it reads).
FORMAT_VERSION: Final = 1

#: What a frame holds.
ValueKind = Literal["segment", "bitmap", "snapshot", "usage", "meta"]

_KIND_CODES: Final[dict[ValueKind, int]] = {
    "segment": 1,
    "bitmap": 2,
    "snapshot": 3,
    "usage": 4,
    "meta": 5,
}
_KINDS_BY_CODE: Final[dict[int, ValueKind]] = {code: kind for kind, code in _KIND_CODES.items()}

_HEADER: Final = struct.Struct(">4sBBQQ")  # magic, format, kind, version, payload length
_DIGEST_SIZE: Final = 16
_PREFIX: Final = 5  # magic + format byte: the part every format version shares
_MAX_U64: Final = 2**64 - 1

#: Prefix of the content addresses made by :func:`content_address`.
_ADDRESS_PREFIX: Final = "blake2b-"
_ADDRESS_HEX: Final = 64

#: Version of the key-list format written by :func:`encode_keys`.
KEYS_FORMAT_VERSION: Final = 1


@attrs.frozen
class Frame:
    """A decoded stored value: its kind, its storage version and its payload.

    >>> decode(encode("meta", b"", version=1))
    Frame(kind='meta', version=1, payload=b'')

    .. versionadded:: 0.1.0
    """

    kind: ValueKind
    version: int
    payload: bytes


def _digest(key: str, body: bytes | memoryview) -> bytes:
    h = hashlib.blake2b(digest_size=_DIGEST_SIZE)
    key_bytes = key.encode("utf-8")
    h.update(len(key_bytes).to_bytes(8, "big"))
    h.update(key_bytes)
    h.update(body)
    return h.digest()


def encode(kind: ValueKind, payload: bytes, *, version: int, key: str = "") -> bytes:
    """Frame ``payload`` as a ``kind`` value at storage ``version``, stored under ``key``.

    Pass the same ``key`` to :func:`decode`; ``""`` when the value has no key.

    >>> frame = encode("segment", b"{}", version=1, key="k")
    >>> frame[:4], len(frame)
    (b'SGKT', 40)

    .. versionadded:: 0.1.0
    """
    if kind not in _KIND_CODES:
        raise ValueError(f"unknown value kind {kind!r}")
    if isinstance(version, bool) or not isinstance(version, int) or not 0 <= version <= _MAX_U64:
        raise ValueError(f"version must be an int from 0 to 2**64 - 1, got {version!r}")
    if not isinstance(payload, (bytes, bytearray, memoryview)):
        raise TypeError(f"payload must be bytes, got {type(payload).__name__}")
    body = _HEADER.pack(MAGIC, FORMAT_VERSION, _KIND_CODES[kind], version, len(payload)) + bytes(
        payload
    )
    return body + _digest(key, body)


def decode(data: bytes, *, key: str = "", kind: ValueKind | None = None) -> Frame:
    """Check and unpack a frame made by :func:`encode`; ``kind`` (if given) must match.

    Raises :class:`~segkit.CorruptDataError` for anything but an intact frame
    stored under ``key``: the message names the key and the problem.

    >>> decode(b"PK\\x03\\x04 something else", key="k")
    Traceback (most recent call last):
    ...
    segkit.errors.CorruptDataError: stored value for key 'k' is not a segkit value: bad magic b'PK\\x03\\x04' (expected b'SGKT')
    >>> decode(encode("usage", b"{}", version=2), kind="segment")
    Traceback (most recent call last):
    ...
    segkit.errors.CorruptDataError: stored value holds a usage record, expected a segment

    .. versionadded:: 0.1.0
    """
    where = f"stored value for key {key!r}" if key else "stored value"
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise CorruptDataError(f"{where} is not bytes but {type(data).__name__}")
    data = bytes(data)
    size = len(data)
    if data[:4] != MAGIC[:size]:
        raise CorruptDataError(
            f"{where} is not a segkit value: bad magic {data[:4]!r} (expected {MAGIC!r})"
        )
    if size < _PREFIX:
        raise CorruptDataError(
            f"{where} is truncated: {size} bytes, shorter than the {_HEADER.size}-byte header"
        )
    fmt = data[4]
    if fmt != FORMAT_VERSION:
        if fmt > FORMAT_VERSION and size >= _PREFIX + _DIGEST_SIZE:
            body, digest = data[:-_DIGEST_SIZE], data[-_DIGEST_SIZE:]
            if _digest(key, body) == digest:
                raise CorruptDataError(
                    f"{where} has format version {fmt}, but this segkit reads format "
                    f"version {FORMAT_VERSION} only: upgrade segkit to read it"
                )
        raise CorruptDataError(
            f"{where} is corrupt: checksum mismatch (the bytes were altered, "
            "or the value was stored under another key)"
        )
    if size < _HEADER.size:
        raise CorruptDataError(
            f"{where} is truncated: {size} bytes, shorter than the {_HEADER.size}-byte header"
        )
    _, _, code, version, length = _HEADER.unpack_from(data)
    expected = _HEADER.size + length + _DIGEST_SIZE
    if size < expected:
        raise CorruptDataError(f"{where} is truncated: {size} bytes, expected {expected}")
    if size > expected:
        raise CorruptDataError(
            f"{where} is corrupt: {size - expected} unexpected trailing bytes "
            f"({size} bytes, expected {expected})"
        )
    if _digest(key, memoryview(data)[:-_DIGEST_SIZE]) != data[-_DIGEST_SIZE:]:
        raise CorruptDataError(
            f"{where} is corrupt: checksum mismatch (the bytes were altered, "
            "or the value was stored under another key)"
        )
    found = _KINDS_BY_CODE.get(code)
    if found is None:
        raise CorruptDataError(f"{where} is corrupt: unknown value kind {code}")
    if kind is not None and found != kind:
        raise CorruptDataError(f"{where} holds {_a(found)}, expected {_a(kind)}")
    return Frame(found, version, data[_HEADER.size : _HEADER.size + length])


def _a(kind: ValueKind) -> str:
    return {
        "segment": "a segment",
        "bitmap": "a bitmap",
        "snapshot": "a snapshot",
        "usage": "a usage record",
        "meta": "a meta value",
    }[kind]


# --- content addresses and key lists -----------------------------------------------------


def content_address(data: bytes) -> str:
    """The content address of ``data``: ``"blake2b-"`` and 64 hex digits of BLAKE2b-256.

    Two byte strings have the same address only if they are equal, so a
    definition that names its bitmap by address can always tell whether the
    bytes it finds are the bytes it meant.

    >>> content_address(b"")
    'blake2b-0e5751c026e543b2e8ab2eb06099daa1d1e5df47778f7787faab45cdf12fe3a8'

    .. versionadded:: 0.1.0
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"expected bytes, got {type(data).__name__}")
    return _ADDRESS_PREFIX + hashlib.blake2b(data, digest_size=32).hexdigest()


def is_content_address(key: str) -> bool:
    """Whether ``key`` has the shape of a :func:`content_address`.

    >>> is_content_address(content_address(b"x")), is_content_address("vip")
    (True, False)

    .. versionadded:: 0.1.0
    """
    if not key.startswith(_ADDRESS_PREFIX):
        return False
    digits = key[len(_ADDRESS_PREFIX) :]
    return len(digits) == _ADDRESS_HEX and all(c in "0123456789abcdef" for c in digits)


def encode_keys(keys: Iterable[str | None]) -> bytes:
    """The portable form of a key list: ``keys[i]`` is the external key of dense id ``i``.

    ``None`` marks a free id (a deleted profile), so ids keep their positions.
    The bytes are UTF-8 JSON, ``{"segkit_keys": 1, "keys": [...]}``; a stored
    bitmap of ids plus this list gives its members' keys without segkit.

    >>> encode_keys(["c-1", None, "c-3"])
    b'{"segkit_keys":1,"keys":["c-1",null,"c-3"]}'

    .. versionadded:: 0.1.0
    """
    if isinstance(keys, (str, bytes)):
        raise TypeError("expected an iterable of keys, not a single string")
    out: list[str | None] = []
    for key in keys:
        if key is not None and (not isinstance(key, str) or not key):
            raise TypeError(f"a key must be a non-empty string or None, got {key!r}")
        out.append(key)
    doc = {"segkit_keys": KEYS_FORMAT_VERSION, "keys": out}
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def decode_keys(data: bytes, *, address: str | None = None) -> tuple[str | None, ...]:
    """Read a key list made by :func:`encode_keys`; :class:`~segkit.CorruptDataError` if malformed.

    >>> decode_keys(encode_keys(["a", None]))
    ('a', None)
    >>> decode_keys(b'{"segkit_keys": 2, "keys": []}')
    Traceback (most recent call last):
    ...
    segkit.errors.CorruptDataError: key list has format version 2, but this segkit reads version 1 only: upgrade segkit to read it

    .. versionadded:: 0.1.0
    """
    where = f"key list {address!r}" if address else "key list"
    try:
        doc = json.loads(bytes(data).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CorruptDataError(f"{where} is corrupt: not UTF-8 JSON ({e})") from None
    version = doc.get("segkit_keys") if isinstance(doc, dict) else None
    if isinstance(version, int) and not isinstance(version, bool) and version > KEYS_FORMAT_VERSION:
        raise CorruptDataError(
            f"{where} has format version {version}, but this segkit reads version "
            f"{KEYS_FORMAT_VERSION} only: upgrade segkit to read it"
        )
    keys = doc.get("keys") if isinstance(doc, dict) else None
    if version != KEYS_FORMAT_VERSION or set(doc) != {"segkit_keys", "keys"}:
        raise CorruptDataError(f"{where} is corrupt: not a segkit key list")
    if not isinstance(keys, list) or not all(k is None or (isinstance(k, str) and k) for k in keys):
        raise CorruptDataError(f"{where} is corrupt: keys must be non-empty strings or null")
    return tuple(keys)
