"""The storage codec: frames round-trip, and any damage raises CorruptDataError."""

from __future__ import annotations

import hashlib
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from segkit.errors import CorruptDataError
from segkit.index import Bitmap
from segkit.storage import (
    FORMAT_VERSION,
    Frame,
    content_address,
    decode,
    decode_keys,
    encode,
    encode_keys,
    is_content_address,
)

KINDS = st.sampled_from(["segment", "bitmap", "snapshot", "usage", "meta"])
KEYS = st.text(max_size=20)
VERSIONS = st.integers(min_value=0, max_value=2**64 - 1)


@given(kind=KINDS, payload=st.binary(max_size=300), version=VERSIONS, key=KEYS)
def test_frames_round_trip(kind: str, payload: bytes, version: int, key: str) -> None:
    """decode(encode(...)) gives back the kind, the version and the payload."""
    frame = encode(kind, payload, version=version, key=key)  # type: ignore[arg-type]
    assert decode(frame, key=key, kind=kind) == Frame(kind, version, payload)  # type: ignore[arg-type]
    assert len(frame) == 22 + len(payload) + 16


@given(payload=st.binary(max_size=120), key=KEYS, flips=st.data())
def test_every_single_byte_change_raises(payload: bytes, key: str, flips: st.DataObject) -> None:
    """Changing any one byte of a frame, to any other value, raises CorruptDataError."""
    frame = encode("bitmap", payload, version=7, key=key)
    for i in range(len(frame)):
        delta = flips.draw(st.integers(min_value=1, max_value=255), label=f"delta at {i}")
        damaged = bytearray(frame)
        damaged[i] ^= delta
        with pytest.raises(CorruptDataError):
            decode(bytes(damaged), key=key)


@given(payload=st.binary(max_size=120), key=KEYS)
def test_every_truncation_and_extension_raises(payload: bytes, key: str) -> None:
    """Every strict prefix of a frame, and a frame with bytes appended, raises CorruptDataError."""
    frame = encode("segment", payload, version=1, key=key)
    for end in range(len(frame)):
        with pytest.raises(CorruptDataError):
            decode(frame[:end], key=key)
    with pytest.raises(CorruptDataError):
        decode(frame + b"\x00", key=key)


def test_a_real_bitmap_frame_with_each_bit_flipped() -> None:
    """Every single-bit flip of a framed Roaring bitmap is caught (exhaustive, no sampling)."""
    payload = Bitmap([1, 5, 70_000, 2**31]).serialize()
    frame = encode("bitmap", payload, version=3, key="segkit/bitmap/x")
    for i in range(len(frame)):
        for bit in range(8):
            damaged = bytearray(frame)
            damaged[i] ^= 1 << bit
            with pytest.raises(CorruptDataError):
                decode(bytes(damaged), key="segkit/bitmap/x")


FRAME = encode("segment", b'{"a":1}', version=5, key="k")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "stored value for key 'k' is truncated: 0 bytes, shorter than the 22-byte header"),
        (b"SG", "stored value for key 'k' is truncated: 2 bytes, shorter than the 22-byte header"),
        (
            FRAME[:21],
            "stored value for key 'k' is truncated: 21 bytes, shorter than the 22-byte header",
        ),
        (FRAME[:30], "stored value for key 'k' is truncated: 30 bytes, expected 45"),
        (
            FRAME + b"xy",
            "stored value for key 'k' is corrupt: 2 unexpected trailing bytes (47 bytes, expected 45)",
        ),
        (
            b"\x89PNG\r\n",
            "stored value for key 'k' is not a segkit value: bad magic b'\\x89PNG' (expected b'SGKT')",
        ),
        (b"X", "stored value for key 'k' is not a segkit value: bad magic b'X' (expected b'SGKT')"),
        (
            FRAME[:25] + b"!" + FRAME[26:],
            "stored value for key 'k' is corrupt: checksum mismatch (the bytes were altered, "
            "or the value was stored under another key)",
        ),
        (
            FRAME[:4] + b"\x00" + FRAME[5:],
            "stored value for key 'k' is corrupt: checksum mismatch (the bytes were altered, "
            "or the value was stored under another key)",
        ),
    ],
)
def test_corruption_messages(data: bytes, message: str) -> None:
    """Each kind of damage gets a message that says what is wrong and for which key."""
    with pytest.raises(CorruptDataError) as info:
        decode(data, key="k")
    assert str(info.value) == message


def test_without_a_key_the_message_says_stored_value() -> None:
    """Decoding without a key still explains the problem."""
    with pytest.raises(CorruptDataError) as info:
        decode(b"SGKT")
    assert str(info.value) == "stored value is truncated: 4 bytes, shorter than the 22-byte header"


def _future_frame(fmt: int, body: bytes, key: str) -> bytes:
    """A frame as a later segkit might write it: same magic, format byte and trailing checksum."""
    start = b"SGKT" + bytes([fmt]) + body
    h = hashlib.blake2b(digest_size=16)
    h.update(len(key.encode()).to_bytes(8, "big"))
    h.update(key.encode())
    h.update(start)
    return start + h.digest()


def test_a_newer_format_asks_to_upgrade() -> None:
    """An intact value of a newer format version is not called corrupt: upgrade segkit."""
    with pytest.raises(CorruptDataError) as info:
        decode(_future_frame(FORMAT_VERSION + 1, b"\x00" * 40, "k"), key="k")
    assert str(info.value) == (
        "stored value for key 'k' has format version 2, but this segkit reads format "
        "version 1 only: upgrade segkit to read it"
    )


def test_a_damaged_newer_format_is_called_damaged() -> None:
    """A newer-format value whose checksum fails is reported as a checksum mismatch."""
    frame = bytearray(_future_frame(9, b"\x00" * 40, "k"))
    frame[10] ^= 1
    with pytest.raises(CorruptDataError, match=r"checksum mismatch"):
        decode(bytes(frame), key="k")


def test_an_unknown_kind_code_with_a_valid_checksum() -> None:
    """A well-formed frame with an unknown kind code names the code."""
    body = struct.pack(">4sBBQQ", b"SGKT", 1, 99, 1, 0)
    h = hashlib.blake2b(digest_size=16)
    h.update((0).to_bytes(8, "big"))
    h.update(body)
    with pytest.raises(CorruptDataError) as info:
        decode(body + h.digest())
    assert str(info.value) == "stored value is corrupt: unknown value kind 99"


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda: encode("blob", b"", version=1), ValueError, "unknown value kind 'blob'"),  # type: ignore[arg-type]
        (
            lambda: encode("meta", b"", version=-1),
            ValueError,
            "version must be an int from 0 to 2**64 - 1, got -1",
        ),
        (
            lambda: encode("meta", b"", version=2**64),
            ValueError,
            "version must be an int from 0 to 2**64 - 1, got 18446744073709551616",
        ),
        (lambda: encode("meta", "text", version=1), TypeError, "payload must be bytes, got str"),  # type: ignore[arg-type]
    ],
)
def test_encode_refuses_bad_arguments(call: object, error: type[Exception], message: str) -> None:
    """encode checks its arguments."""
    with pytest.raises(error) as info:
        call()  # type: ignore[operator]
    assert str(info.value) == message


# --- content addresses and key lists ----------------------------------------------------


@given(st.binary(max_size=200), st.binary(max_size=200))
def test_content_addresses_differ_for_different_bytes(a: bytes, b: bytes) -> None:
    """Addresses are equal exactly when the bytes are, and always look like an address."""
    assert (content_address(a) == content_address(b)) is (a == b)
    assert is_content_address(content_address(a))


@pytest.mark.parametrize(
    "key",
    [
        "blake2b-",
        "blake2b-" + "0" * 63,
        "blake2b-" + "G" * 64,
        "blake2b-" + "A" * 64,
        "sha1-" + "0" * 64,
    ],
)
def test_is_content_address_rejects_look_alikes(key: str) -> None:
    """Only 'blake2b-' followed by exactly 64 lowercase hex digits is an address."""
    assert not is_content_address(key)


@given(st.lists(st.one_of(st.none(), st.text(min_size=1, max_size=10)), max_size=30))
def test_key_lists_round_trip(keys: list[str | None]) -> None:
    """encode_keys/decode_keys keep every key and every hole at its id."""
    assert decode_keys(encode_keys(keys)) == tuple(keys)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            b"\xff",
            "key list 'a1' is corrupt: not UTF-8 JSON ('utf-8' codec can't decode byte 0xff in position 0: invalid start byte)",
        ),
        (b"[]", "key list 'a1' is corrupt: not a segkit key list"),
        (
            b'{"segkit_keys": 1, "keys": [], "x": 1}',
            "key list 'a1' is corrupt: not a segkit key list",
        ),
        (
            b'{"segkit_keys": 1, "keys": [""]}',
            "key list 'a1' is corrupt: keys must be non-empty strings or null",
        ),
        (
            b'{"segkit_keys": 1, "keys": {"a": 1}}',
            "key list 'a1' is corrupt: keys must be non-empty strings or null",
        ),
        (
            b'{"segkit_keys": 3, "keys": []}',
            "key list 'a1' has format version 3, but this segkit reads version 1 only: upgrade segkit to read it",
        ),
    ],
)
def test_key_list_errors(data: bytes, message: str) -> None:
    """A malformed or newer key list raises CorruptDataError naming the list."""
    with pytest.raises(CorruptDataError) as info:
        decode_keys(data, address="a1")
    assert str(info.value) == message


def test_encode_keys_refuses_bad_keys() -> None:
    """A single string, an empty key or a non-string key is refused."""
    with pytest.raises(TypeError, match=r"^expected an iterable of keys, not a single string$"):
        encode_keys("abc")
    with pytest.raises(TypeError, match=r"^a key must be a non-empty string or None, got ''$"):
        encode_keys(["a", ""])
    with pytest.raises(TypeError, match=r"^a key must be a non-empty string or None, got 3$"):
        encode_keys([3])  # type: ignore[list-item]
