"""The values a :class:`~segkit.storage.Storage` keeps, as frozen, JSON-safe records.

* :class:`SegmentRecord`: a segment's definition (the rule's ``to_dict`` form, or
  none for a static segment) and its metadata, plus what links it to its stored
  membership: the content address of its bitmap, of the key list that gives the
  bitmap's ids their external keys, and its latest :class:`Snapshot`.
* :class:`Snapshot`: a segment's size (and engagement) at one instant; a segment's
  snapshots form its time series.
* :class:`UsageRecord`: where a segment is used (tool, objective, reference).
* :class:`Versioned`: a stored value with the version a compare-and-set write
  must name to replace it.

Every datetime is timezone-aware and normalised to UTC; ``to_dict`` gives plain
JSON values (datetimes as ISO 8601 text) and ``from_dict`` reads them back.

>>> from datetime import datetime, timezone
>>> at = datetime(2024, 6, 30, tzinfo=timezone.utc)
>>> snap = Snapshot("vip", at, size=120, engagement=0.25)
>>> snap.to_dict()
{'segment': 'vip', 'at': '2024-06-30T00:00:00+00:00', 'size': 120, 'engagement': 0.25}
>>> Snapshot.from_dict(snap.to_dict()) == snap
True

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from typing import Any, Final, Generic, Literal, TypeVar

import attrs

__all__ = [
    "SEGMENT_KINDS",
    "SegmentKind",
    "SegmentRecord",
    "Snapshot",
    "UsageRecord",
    "Versioned",
]

T = TypeVar("T")

#: What a segment is: ``"dynamic"`` (a rule decides) or ``"static"`` (explicit members).
SegmentKind = Literal["dynamic", "static"]

#: The values :attr:`SegmentRecord.kind` may take.
SEGMENT_KINDS: Final[tuple[SegmentKind, ...]] = ("dynamic", "static")

#: How deeply a rule's dict form may nest (the rule language bounds it far lower).
_MAX_JSON_DEPTH: Final = 400


# --- field converters (each names the field it guards) ----------------------------------


def _text(value: object, field: str, *, empty: bool = False) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{field} must be a string, got {type(value).__name__}")
    if not empty and not value:
        raise ValueError(f"{field} must not be empty")
    return value


def _utc(value: object, field: str) -> datetime:
    if not isinstance(value, datetime):
        raise TypeError(f"{field} must be a datetime, got {type(value).__name__}")
    if value.utcoffset() is None:
        raise ValueError(f"{field} must be timezone-aware, got the naive {value.isoformat()}")
    return value.astimezone(timezone.utc)


# attrs' mypy plugin wants named functions as converters: one per field.


def _name(value: object) -> str:
    return _text(value, "name")


def _segment(value: object) -> str:
    return _text(value, "segment")


def _tool(value: object) -> str:
    return _text(value, "tool")


def _objective(value: object) -> str:
    return _text(value, "objective")


def _ref(value: object) -> str:
    return _text(value, "ref", empty=True)


def _object_type(value: object) -> str:
    return _text(value, "object_type")


def _updated_by(value: object) -> str | None:
    return None if value is None else _text(value, "updated_by")


def _bitmap(value: object) -> str | None:
    return None if value is None else _text(value, "bitmap")


def _keys(value: object) -> str | None:
    return None if value is None else _text(value, "keys")


def _created_at(value: object) -> datetime:
    return _utc(value, "created_at")


def _updated_at(value: object) -> datetime:
    return _utc(value, "updated_at")


def utc_instant(value: object) -> datetime:
    """``at`` as an aware UTC datetime (snapshots are keyed by instant)."""
    return _utc(value, "at")


def _optional_at(value: object) -> datetime | None:
    return None if value is None else _utc(value, "at")


def _kind(value: object) -> SegmentKind:
    if value == "dynamic":
        return "dynamic"
    if value == "static":
        return "static"
    raise ValueError(f"kind must be 'dynamic' or 'static', got {value!r}")


def _tags(value: object) -> tuple[str, ...]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise TypeError(f"tags must be an iterable of strings, got {type(value).__name__}")
    out: set[str] = set()
    for tag in value:
        if not isinstance(tag, str) or not tag:
            raise TypeError(f"tags must be non-empty strings, got {tag!r}")
        out.add(tag)
    return tuple(sorted(out))


def _size(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"size must be an int, got {type(value).__name__}")
    if value < 0:
        raise ValueError(f"size must not be negative, got {value}")
    return value


def _engagement(value: object) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"engagement must be a number or None, got {type(value).__name__}")
    if not math.isfinite(value):
        raise ValueError(f"engagement must be finite, got {value!r}")
    return float(value)


def _json_copy(value: object, path: str, depth: int = 0) -> Any:
    """A deep copy of a JSON-safe value; refuses anything JSON cannot hold exactly."""
    if depth > _MAX_JSON_DEPTH:
        raise ValueError(f"{path} nests deeper than {_MAX_JSON_DEPTH} levels")
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{path} holds {value!r}, which JSON cannot represent")
        return value
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"{path} has a non-string key {key!r}")
            out[key] = _json_copy(item, f"{path}[{key!r}]", depth + 1)
        return out
    if isinstance(value, (list, tuple)):
        return [_json_copy(item, f"{path}[{i}]", depth + 1) for i, item in enumerate(value)]
    raise TypeError(f"{path} holds a {type(value).__name__}, which is not JSON-safe")


def _rule(value: object) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise TypeError(f"rule must be a dict (Rule.to_dict()) or None, got {type(value).__name__}")
    copied: dict[str, Any] = _json_copy(value, "rule")
    return copied


def _check_fields(
    data: object, what: str, required: tuple[str, ...], optional: tuple[str, ...]
) -> Mapping[str, Any]:
    """Refuse a dict form that is not a mapping, misses a field or has an unknown one."""
    if not isinstance(data, Mapping):
        raise TypeError(f"a {what} must be a dict, got {type(data).__name__}")
    missing = [name for name in required if name not in data]
    if missing:
        raise ValueError(f"{what} is missing {', '.join(repr(m) for m in missing)}")
    unknown = sorted(str(k) for k in data if k not in required and k not in optional)
    if unknown:
        raise ValueError(f"{what} has unknown fields {', '.join(repr(u) for u in unknown)}")
    return data


def _parse_time(value: object, field: str) -> datetime:
    if not isinstance(value, str):
        raise TypeError(f"{field} must be an ISO 8601 string, got {type(value).__name__}")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{field} is not an ISO 8601 datetime: {value!r}") from None
    return _utc(parsed, field)


def _optional_time(value: object, field: str) -> datetime | None:
    return None if value is None else _parse_time(value, field)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


# --- the records --------------------------------------------------------------------------


@attrs.frozen
class Versioned(Generic[T]):
    """A stored value and its version, as every ``get`` of a :class:`Storage` returns it.

    Pass ``version`` as the ``expected_version`` of the next write to that key:
    the write succeeds only if nobody wrote the key in between (compare-and-set).

    >>> v = Versioned(b"\\x00", 3)
    >>> v.value, v.version
    (b'\\x00', 3)

    .. versionadded:: 0.1.0
    """

    value: T
    version: int = attrs.field()

    @version.validator
    def _check_version(self, _attribute: object, value: int) -> None:
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"version must be an int, got {type(value).__name__}")
        if value < 1:
            raise ValueError(f"version must be at least 1, got {value}")


@attrs.frozen
class Snapshot:
    """A segment's size (and optional engagement score) at one instant.

    A segment's snapshots, ordered by ``at``, are its time series (the attention
    analysis reads them). ``engagement`` is an engagement figure or ``None``: the
    snapshots the Engine writes hold the number of members with a tracked event
    within ``Engine.engagement_window`` (7 days by default).

    >>> from datetime import datetime, timezone
    >>> Snapshot("vip", datetime(2024, 6, 30, tzinfo=timezone.utc), size=3)
    Snapshot(segment='vip', at=datetime.datetime(2024, 6, 30, 0, 0, tzinfo=datetime.timezone.utc), size=3, engagement=None)

    .. versionadded:: 0.1.0
    """

    segment: str = attrs.field(converter=_segment)
    at: datetime = attrs.field(converter=utc_instant)
    size: int = attrs.field(converter=_size)
    engagement: float | None = attrs.field(default=None, converter=_engagement)

    def to_dict(self) -> dict[str, Any]:
        """The JSON-safe form (see :meth:`from_dict`).

        >>> from datetime import datetime, timezone
        >>> Snapshot("a", datetime(2024, 1, 1, tzinfo=timezone.utc), 0).to_dict()["at"]
        '2024-01-01T00:00:00+00:00'
        """
        return {
            "segment": self.segment,
            "at": self.at.isoformat(),
            "size": self.size,
            "engagement": self.engagement,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Snapshot:
        """Rebuild a snapshot from :meth:`to_dict` output; ``ValueError``/``TypeError`` if malformed.

        >>> Snapshot.from_dict({"segment": "a", "at": "2024-01-01T01:00:00+01:00", "size": 2}).at
        datetime.datetime(2024, 1, 1, 0, 0, tzinfo=datetime.timezone.utc)
        """
        d = _check_fields(data, "snapshot", ("segment", "at", "size"), ("engagement",))
        return cls(d["segment"], _parse_time(d["at"], "at"), d["size"], d.get("engagement"))


@attrs.frozen
class UsageRecord:
    """Where a segment is used: by which ``tool``, for which ``objective``, under which ``ref``.

    A storage keeps one usage record per ``(segment, tool, ref)``. ``objective`` is
    one of ``"personalization"``, ``"communication"``, ``"automation"``,
    ``"analytics"``, ``"segmentation"``, or the application's own word; ``at`` is
    when it was recorded (optional).

    >>> u = UsageRecord("vip", tool="workflow", objective="automation", ref="wf-12")
    >>> u.key
    ('vip', 'workflow', 'wf-12')
    >>> UsageRecord.from_dict(u.to_dict()) == u
    True

    .. versionadded:: 0.1.0
    """

    segment: str = attrs.field(converter=_segment)
    tool: str = attrs.field(converter=_tool)
    objective: str = attrs.field(converter=_objective)
    ref: str = attrs.field(converter=_ref)
    at: datetime | None = attrs.field(default=None, converter=_optional_at)

    @property
    def key(self) -> tuple[str, str, str]:
        """``(segment, tool, ref)``: what identifies the record in a storage."""
        return (self.segment, self.tool, self.ref)

    def to_dict(self) -> dict[str, Any]:
        """The JSON-safe form (see :meth:`from_dict`).

        >>> UsageRecord("a", "email", "communication", "c-9").to_dict()
        {'segment': 'a', 'tool': 'email', 'objective': 'communication', 'ref': 'c-9', 'at': None}
        """
        return {
            "segment": self.segment,
            "tool": self.tool,
            "objective": self.objective,
            "ref": self.ref,
            "at": _iso(self.at),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> UsageRecord:
        """Rebuild a usage record from :meth:`to_dict` output.

        >>> UsageRecord.from_dict({"segment": "a", "tool": "ads", "objective": "x", "ref": ""}).ref
        ''
        """
        d = _check_fields(data, "usage record", ("segment", "tool", "objective", "ref"), ("at",))
        return cls(
            d["segment"], d["tool"], d["objective"], d["ref"], _optional_time(d.get("at"), "at")
        )


@attrs.frozen
class SegmentRecord:
    """A stored segment definition: the rule, the metadata, and links to its membership.

    Attributes:
        name: the segment's name.
        kind: ``"dynamic"`` (``rule`` is the rule's ``Rule.to_dict()`` form) or
            ``"static"`` (``rule`` is ``None``; the members are in the bitmap).
        created_at, updated_at: aware datetimes, normalised to UTC.
        rule: a deep, JSON-checked copy of the rule's dict form (treat it as read-only).
        object_type: what the segment groups, e.g. ``"contact"`` or ``"company"``.
        updated_by: who made the last change (a user or tool name), or ``None``.
        tags: labels, kept sorted and unique.
        bitmap: content address of the membership bitmap (portable Roaring bytes),
            or ``None``; set by :func:`~segkit.storage.save_segment_state`.
        keys: content address of the key list (see :func:`~segkit.storage.encode_keys`)
            that maps the bitmap's dense ids to external keys, or ``None``.
        snapshot: the size snapshot committed together with ``bitmap``, or ``None``.

    >>> from datetime import datetime, timezone
    >>> now = datetime(2024, 6, 30, tzinfo=timezone.utc)
    >>> rec = SegmentRecord("vip", "dynamic", now, now, rule={"segkit_rule": 1}, tags=["b", "a", "b"])
    >>> rec.tags, rec.object_type
    (('a', 'b'), 'contact')
    >>> SegmentRecord.from_dict(rec.to_dict()) == rec
    True
    >>> SegmentRecord("x", "static", now, now, rule={"segkit_rule": 1})
    Traceback (most recent call last):
    ...
    ValueError: static segment 'x' must not have a rule

    .. versionadded:: 0.1.0
    """

    name: str = attrs.field(converter=_name)
    kind: SegmentKind = attrs.field(converter=_kind)
    created_at: datetime = attrs.field(converter=_created_at)
    updated_at: datetime = attrs.field(converter=_updated_at)
    rule: dict[str, Any] | None = attrs.field(default=None, converter=_rule, hash=False)
    object_type: str = attrs.field(default="contact", converter=_object_type)
    updated_by: str | None = attrs.field(default=None, converter=_updated_by)
    tags: tuple[str, ...] = attrs.field(default=(), converter=_tags)
    bitmap: str | None = attrs.field(default=None, converter=_bitmap)
    keys: str | None = attrs.field(default=None, converter=_keys)
    snapshot: Snapshot | None = attrs.field(default=None)

    def __attrs_post_init__(self) -> None:
        if self.kind == "dynamic" and self.rule is None:
            raise ValueError(f"dynamic segment {self.name!r} needs a rule")
        if self.kind == "static" and self.rule is not None:
            raise ValueError(f"static segment {self.name!r} must not have a rule")
        if self.snapshot is not None:
            if not isinstance(self.snapshot, Snapshot):
                raise TypeError(
                    f"snapshot must be a Snapshot or None, got {type(self.snapshot).__name__}"
                )
            if self.snapshot.segment != self.name:
                raise ValueError(
                    f"segment {self.name!r} cannot hold a snapshot of {self.snapshot.segment!r}"
                )

    def to_dict(self) -> dict[str, Any]:
        """The JSON-safe form (see :meth:`from_dict`).

        >>> from datetime import datetime, timezone
        >>> now = datetime(2024, 6, 30, tzinfo=timezone.utc)
        >>> sorted(SegmentRecord("s", "static", now, now).to_dict())
        ['bitmap', 'created_at', 'keys', 'kind', 'name', 'object_type', 'rule', 'snapshot', 'tags', 'updated_at', 'updated_by']
        """
        return {
            "name": self.name,
            "kind": self.kind,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
            "rule": _json_copy(self.rule, "rule"),
            "object_type": self.object_type,
            "updated_by": self.updated_by,
            "tags": list(self.tags),
            "bitmap": self.bitmap,
            "keys": self.keys,
            "snapshot": None if self.snapshot is None else self.snapshot.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SegmentRecord:
        """Rebuild a record from :meth:`to_dict` output; ``ValueError``/``TypeError`` if malformed.

        >>> SegmentRecord.from_dict({"name": "s", "kind": "static"})
        Traceback (most recent call last):
        ...
        ValueError: segment record is missing 'created_at', 'updated_at'
        """
        d = _check_fields(
            data,
            "segment record",
            ("name", "kind", "created_at", "updated_at"),
            ("rule", "object_type", "updated_by", "tags", "bitmap", "keys", "snapshot"),
        )
        snapshot = d.get("snapshot")
        return cls(
            d["name"],
            d["kind"],
            _parse_time(d["created_at"], "created_at"),
            _parse_time(d["updated_at"], "updated_at"),
            rule=d.get("rule"),
            object_type=d.get("object_type", "contact"),
            updated_by=d.get("updated_by"),
            tags=d.get("tags", ()),
            bitmap=d.get("bitmap"),
            keys=d.get("keys"),
            snapshot=None if snapshot is None else Snapshot.from_dict(snapshot),
        )
