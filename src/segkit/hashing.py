"""The deterministic hash behind ``bucket("salt")`` in rules and ``Engine.split``.

``bucket(salt, key)`` is the first 8 hex digits of ``md5(salt + ":" + key)`` (UTF-8)
read as an unsigned 32-bit integer, modulo 10,000. It depends only on the salt and
the profile's external key, never on insertion order or dense ids, so a profile
keeps its bucket when a segment grows or shrinks. MD5 is used for portability
(every SQL engine has it), not for security.

>>> bucket("exp-7", "c-1")
1058
>>> 0 <= bucket("exp-7", "c-2") < BUCKETS
True

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import hashlib
from typing import Final

__all__ = ["BUCKETS", "bucket"]

#: Number of buckets: bucket numbers run from 0 to 9,999.
BUCKETS: Final = 10_000


def bucket(salt: str, key: str) -> int:
    """The bucket (0..9999) of external ``key`` under ``salt``.

    >>> bucket("", "x") == bucket("", "x")
    True
    """
    digest = hashlib.md5(f"{salt}:{key}".encode(), usedforsecurity=False).hexdigest()
    return int(digest[:8], 16) % BUCKETS
