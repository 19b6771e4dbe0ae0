"""Bitmap indexes over dense profile ids. The only package that imports pyroaring.

.. versionadded:: 0.1.0
"""

from pyroaring import BitMap as Bitmap
from pyroaring import FrozenBitMap as FrozenBitmap

from segkit.index.attributes import LOW_CARDINALITY, AttributeIndex, SortedColumn
from segkit.index.events import EventIndex
from segkit.index.members import Members

__all__ = [
    "LOW_CARDINALITY",
    "AttributeIndex",
    "Bitmap",
    "EventIndex",
    "FrozenBitmap",
    "Members",
    "SortedColumn",
]
