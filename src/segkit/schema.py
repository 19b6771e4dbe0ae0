"""Schemas: the declared attributes and events, and the validation of incoming records.

A :class:`Schema` names every profile attribute and every event type (with its
properties) and gives each a :class:`FieldType`. Rules are type-checked against
it, and every record is validated and *coerced* by it before it reaches an index:
``"31"`` becomes ``31`` for an ``int`` attribute, a list becomes a tuple, a naive
datetime is localized in the schema's time zone. Bad records raise
:class:`~segkit.errors.SchemaError` naming the record, the field, the value and the
expected type.

>>> schema = Schema(
...     attributes={"country": "string", "age": int, "tags": "list[string]"},
...     events={"purchase": {"amount": "float"}, "cart_abandoned": {}},
...     timezone="UTC",
... )
>>> schema.validate_profile("c-1", {"country": "FR", "age": "31", "tags": ["vip"]})
{'country': 'FR', 'age': 31, 'tags': ('vip',)}
>>> schema.validate_profile("c-1", {"age": "abc"})
Traceback (most recent call last):
...
segkit.errors.SchemaError: profile 'c-1': attribute 'age' expects int, got 'abc' (str)

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import enum
import math
import re
import typing
from collections.abc import Callable, Iterable, Mapping
from datetime import date, datetime, timezone, tzinfo
from types import GenericAlias
from typing import Any, Final, Literal, TypeAlias

import attrs

from segkit._suggest import suggest
from segkit.errors import SchemaError
from segkit.records import (
    Event,
    Profile,
    _describe,
    _FrozenDict,
    _parse_iso_datetime,
    _show,
)
from segkit.timeutil import ensure_aware, resolve_timezone

__all__ = ["EventType", "FieldType", "FieldTypeLike", "Schema"]


class FieldType(str, enum.Enum):
    """The type of an attribute or an event property.

    >>> FieldType.parse("list[str]")
    <FieldType.LIST_STRING: 'list[string]'>
    >>> FieldType.parse(float), str(FieldType.DATE)
    (<FieldType.FLOAT: 'float'>, 'date')
    >>> FieldType.LIST_INT.element, FieldType.LIST_INT.is_list
    (<FieldType.INT: 'int'>, True)

    .. versionadded:: 0.1.0
    """

    STRING = "string"
    INT = "int"
    FLOAT = "float"
    BOOL = "bool"
    DATE = "date"
    DATETIME = "datetime"
    LIST_STRING = "list[string]"
    LIST_INT = "list[int]"

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)

    @property
    def is_list(self) -> bool:
        """True for ``list[string]`` and ``list[int]``."""
        return self in (FieldType.LIST_STRING, FieldType.LIST_INT)

    @property
    def element(self) -> FieldType:
        """The element type of a list type (``STRING`` or ``INT``); a scalar type itself.

        >>> FieldType.LIST_STRING.element, FieldType.BOOL.element
        (<FieldType.STRING: 'string'>, <FieldType.BOOL: 'bool'>)
        """
        if self is FieldType.LIST_STRING:
            return FieldType.STRING
        if self is FieldType.LIST_INT:
            return FieldType.INT
        return self

    @property
    def is_numeric(self) -> bool:
        """True for ``int`` and ``float``."""
        return self in (FieldType.INT, FieldType.FLOAT)

    @property
    def is_temporal(self) -> bool:
        """True for ``date`` and ``datetime``."""
        return self in (FieldType.DATE, FieldType.DATETIME)

    @property
    def is_orderable(self) -> bool:
        """True when ``<`` and ``>`` make sense: numbers, dates, date-times and strings."""
        return self.is_numeric or self.is_temporal or self is FieldType.STRING

    @classmethod
    def parse(cls, value: object) -> FieldType:
        """A :class:`FieldType` from itself, its name, an alias, or a Python type.

        Names are case-insensitive; the aliases are ``str``, ``integer``,
        ``boolean``, ``timestamp`` and ``list[str]``. The Python types are ``str``,
        ``int``, ``float``, ``bool``, :class:`~datetime.date`,
        :class:`~datetime.datetime`, ``list[str]`` and ``list[int]``.

        >>> FieldType.parse("Integer"), FieldType.parse(list[int])
        (<FieldType.INT: 'int'>, <FieldType.LIST_INT: 'list[int]'>)
        >>> FieldType.parse("integr")
        Traceback (most recent call last):
        ...
        segkit.errors.SchemaError: unknown field type 'integr' (did you mean 'integer'?);
        expected one of string, int, float, bool, date, datetime, list[string], list[int]
        """
        if isinstance(value, FieldType):
            return value
        if isinstance(value, str):
            normalized = "".join(value.split()).lower()
            found = _TYPE_NAMES.get(normalized)
            if found is not None:
                return found
            hint = suggest(normalized, _TYPE_NAMES)
            shown = _show(value)
            if hint is not None:
                shown += f" (did you mean {hint!r}?)"
        else:
            found = _python_type(value)
            if found is not None:
                return found
            shown = _type_name(value)
        raise SchemaError(
            f"unknown field type {shown}; expected one of {_VALID_TYPES}",
            value=value,
            expected="a field type",
        )


_TYPE_NAMES: Final[dict[str, FieldType]] = {
    **{t.value: t for t in FieldType},
    "str": FieldType.STRING,
    "integer": FieldType.INT,
    "boolean": FieldType.BOOL,
    "timestamp": FieldType.DATETIME,
    "list[str]": FieldType.LIST_STRING,
    "list[integer]": FieldType.LIST_INT,
}
_VALID_TYPES: Final = ", ".join(t.value for t in FieldType)
_PYTHON_TYPES: Final[dict[object, FieldType]] = {
    str: FieldType.STRING,
    int: FieldType.INT,
    float: FieldType.FLOAT,
    bool: FieldType.BOOL,
    date: FieldType.DATE,
    datetime: FieldType.DATETIME,
}


def _python_type(value: object) -> FieldType | None:
    try:
        found = _PYTHON_TYPES.get(value)
    except TypeError:  # an unhashable value
        return None
    if found is not None:
        return found
    if typing.get_origin(value) is list:
        args = typing.get_args(value)
        if args == (str,):
            return FieldType.LIST_STRING
        if args == (int,):
            return FieldType.LIST_INT
    return None


def _type_name(value: object) -> str:
    if isinstance(value, type) and not isinstance(value, GenericAlias):
        return value.__qualname__
    return _show(value)


#: What may name a field type: a :class:`FieldType`, its name, or a Python type.
FieldTypeLike: TypeAlias = FieldType | str | type | GenericAlias


def _parse_fields(spec: object, kind: str, owner: str = "") -> dict[str, FieldType]:
    """Parse a ``{name: type}`` mapping of ``kind`` ("attribute" or "property") fields.

    ``owner`` (such as ``" of event 'purchase'"``) follows field names in messages.
    """
    if not isinstance(spec, Mapping):
        raise SchemaError(
            f"the {kind} types{owner} must be a mapping of names to types, got {_describe(spec)}",
            value=spec,
        )
    out: dict[str, FieldType] = {}
    for name, type_spec in spec.items():
        if not isinstance(name, str) or not name:
            raise SchemaError(
                f"{kind} names{owner} must be non-empty strings, got {_describe(name)}",
                value=name,
            )
        try:
            out[name] = FieldType.parse(type_spec)
        except SchemaError as e:
            raise SchemaError(
                f"{kind} {_show(name)}{owner}: {e.message}",
                field=name,
                value=type_spec,
                expected=e.expected,
            ) from None
    return out


def _freeze_field_types(spec: Mapping[str, FieldTypeLike]) -> Mapping[str, FieldType]:
    return _FrozenDict(_parse_fields(spec, "property"))


@attrs.frozen
class EventType:
    """An event type: its ``name`` and the types of its ``properties``.

    >>> EventType("purchase", {"amount": "float"})
    EventType(name='purchase', properties={'amount': <FieldType.FLOAT: 'float'>})

    .. versionadded:: 0.1.0
    """

    name: str
    properties: Mapping[str, FieldType] = attrs.field(
        factory=_FrozenDict, converter=_freeze_field_types, hash=False
    )


# --- coercion ----------------------------------------------------------------------------------


class _Reject(Exception):
    """Internal: ``value`` does not coerce; ``hint`` (may be empty) says why."""

    def __init__(self, hint: str = "") -> None:
        super().__init__(hint)
        self.hint = hint


class _Naive(Exception):
    """Internal: a naive datetime and no schema time zone; ``message`` says so."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


_INT_TEXT: Final = re.compile(r"[+-]?[0-9]+")
_FLOAT_TEXT: Final = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_DATE_TEXT: Final = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})")
_BOOL_TEXT: Final = {"true": True, "false": False, "yes": True, "no": False, "1": True, "0": False}


def _to_string(value: object, tz: tzinfo | None) -> str:
    if isinstance(value, str):
        return value if type(value) is str else value[:]
    raise _Reject()


def _to_int(value: object, tz: tzinfo | None) -> int:
    if isinstance(value, bool):
        raise _Reject()
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if math.isfinite(value) and value.is_integer():
            return int(value)
        raise _Reject("not a whole number")
    if isinstance(value, str):
        text = value.strip()
        if _INT_TEXT.fullmatch(text):
            try:
                return int(text)
            except ValueError:  # beyond the interpreter's digit limit
                raise _Reject("too many digits") from None
    raise _Reject()


def _finite(number: float) -> float:
    if not math.isfinite(number):
        raise _Reject("not a finite number")
    return number


def _to_float(value: object, tz: tzinfo | None) -> float:
    if isinstance(value, bool):
        raise _Reject()
    if isinstance(value, int):
        try:
            return float(value)
        except OverflowError:
            raise _Reject("too large for a float") from None
    if isinstance(value, float):
        return _finite(float(value))
    if isinstance(value, str):
        text = value.strip()
        if _FLOAT_TEXT.fullmatch(text):
            return _finite(float(text))
    raise _Reject()


def _to_bool(value: object, tz: tzinfo | None) -> bool:
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int) and value in (0, 1):
        return value == 1
    if isinstance(value, str):
        found = _BOOL_TEXT.get(value.strip().lower())
        if found is not None:
            return found
    raise _Reject()


def _parse_date_text(text: str) -> date | None:
    m = _DATE_TEXT.fullmatch(text.strip())
    if m is None:
        return None
    try:
        return date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
    except ValueError:
        return None


def _to_date(value: object, tz: tzinfo | None) -> date:
    if isinstance(value, datetime):
        raise _Reject("a datetime is not a date; pass its .date()")
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        found = _parse_date_text(value)
        if found is not None:
            return found
    raise _Reject()


def _localize(moment: datetime, tz: tzinfo | None, what: str) -> datetime:
    """``moment`` as an aware datetime in UTC; a naive one is read on the wall clock of ``tz``.

    UTC makes equal instants compare equal: two aware datetimes in different zones
    never do when one of them falls in a daylight-saving fold or gap (PEP 495).
    """
    try:
        aware = ensure_aware(moment, tz, what)
    except ValueError as e:
        raise _Naive(str(e)) from None
    try:
        return aware.astimezone(timezone.utc)
    except OverflowError:
        raise _Reject("out of range in UTC") from None


def _to_datetime(value: object, tz: tzinfo | None) -> datetime:
    if isinstance(value, datetime):
        return _localize(value, tz, "datetime")
    if isinstance(value, date):
        raise _Reject("a date is not a datetime; give it a time of day")
    if isinstance(value, str):
        try:
            parsed = _parse_iso_datetime(value)
        except ValueError:
            raise _Reject() from None
        return _localize(parsed, tz, "datetime")
    raise _Reject()


def _to_list(element: FieldType) -> Callable[[object, tzinfo | None], tuple[Any, ...]]:
    convert = _SCALAR_COERCERS[element]

    def to_list(value: object, tz: tzinfo | None) -> tuple[Any, ...]:
        if isinstance(value, str):
            raise _Reject("a single string is not a list; wrap it in a list")
        if isinstance(value, (list, tuple)):
            items: list[Any] = []
            for index, item in enumerate(value):
                try:
                    items.append(convert(item, tz))
                except _Reject:
                    raise _Reject(
                        f"item {index} expects {element}, got {_describe(item)}"
                    ) from None
            return tuple(items)
        if isinstance(value, (set, frozenset)):
            converted = []
            for item in value:
                try:
                    converted.append(convert(item, tz))
                except _Reject:
                    raise _Reject(f"an item expects {element}, got {_describe(item)}") from None
            return tuple(sorted(converted))
        raise _Reject()

    return to_list


_SCALAR_COERCERS: Final[dict[FieldType, Callable[[object, tzinfo | None], Any]]] = {
    FieldType.STRING: _to_string,
    FieldType.INT: _to_int,
    FieldType.FLOAT: _to_float,
    FieldType.BOOL: _to_bool,
    FieldType.DATE: _to_date,
    FieldType.DATETIME: _to_datetime,
}
_COERCERS: Final[dict[FieldType, Callable[[object, tzinfo | None], Any]]] = {
    **_SCALAR_COERCERS,
    FieldType.LIST_STRING: _to_list(FieldType.STRING),
    FieldType.LIST_INT: _to_list(FieldType.INT),
}
#: A value of exactly this Python type is stored as it is (a float if it is finite):
#: the fast path of ``Schema.validate_profile`` skips the coercer.
_AS_IS: Final[dict[FieldType, type]] = {
    FieldType.STRING: str,
    FieldType.INT: int,
    FieldType.FLOAT: float,
    FieldType.BOOL: bool,
    FieldType.DATE: date,
}
_AS_IS_BY_VALUE: Final[dict[str, type]] = {t.value: kind for t, kind in _AS_IS.items()}


def _coerce_field(
    field_type: FieldType,
    value: object,
    tz: tzinfo | None,
    *,
    prefix: str,
    subject: str,
    key: str | None,
    field: str | None,
) -> Any:
    """Coerce ``value``; on failure raise a :class:`SchemaError` that reads
    ``{prefix}{subject} expects {type}, got {value} ({type}): {hint}``."""
    try:
        return _COERCERS[field_type](value, tz)
    except _Reject as e:
        hint = f": {e.hint}" if e.hint else ""
        message = f"{prefix}{subject} expects {field_type}, got {_describe(value)}{hint}"
    except _Naive as e:
        message = f"{prefix}{subject}: {e.message}" if subject else f"{prefix}{e.message}"
    raise SchemaError(message, key=key, field=field, value=value, expected=field_type.value)


def _event_prefix(event: Event) -> str:
    """The start of every error message about ``event`` (built only when one is raised)."""
    return f"event {_show(event.name)} of {_show(event.key)}: "


def _did_you_mean(name: object, candidates: Iterable[str]) -> str:
    found = suggest(name, candidates) if isinstance(name, str) else None
    return f" (did you mean {found!r}?)" if found is not None else ""


# --- inference ---------------------------------------------------------------------------------

#: Sets of observed value kinds that resolve to one type, tried in order.
_RESOLUTIONS: Final[tuple[tuple[frozenset[str], FieldType], ...]] = (
    (frozenset({"bool"}), FieldType.BOOL),
    (frozenset({"int"}), FieldType.INT),
    (frozenset({"int", "float"}), FieldType.FLOAT),
    (frozenset({"date", "date_text"}), FieldType.DATE),
    (frozenset({"datetime", "datetime_text"}), FieldType.DATETIME),
    (frozenset({"date_text", "datetime_text", "text"}), FieldType.STRING),
    (frozenset({"list_empty", "list_string"}), FieldType.LIST_STRING),
    (frozenset({"list_empty", "list_int"}), FieldType.LIST_INT),
)


def _resolve(kinds: Iterable[str]) -> FieldType | None:
    seen = frozenset(kinds)
    if not seen:
        return FieldType.STRING
    for allowed, field_type in _RESOLUTIONS:
        if seen <= allowed:
            return field_type
    return None


def _is_datetime_text(text: str) -> bool:
    try:
        _parse_iso_datetime(text)
    except ValueError:
        return False
    return True


class _Inferrer:
    """Collects the kinds of values seen per field and resolves them to a type."""

    def __init__(self, kind: str, owner: str = "") -> None:
        self._kind_name = kind
        self._owner = owner
        self._examples: dict[str, dict[str, object]] = {}

    def add(self, name: object, value: object) -> None:
        if not isinstance(name, str) or not name:
            raise SchemaError(
                f"cannot infer a schema: {self._kind_name} names{self._owner} must be "
                f"non-empty strings, got {_describe(name)}",
                value=name,
            )
        examples = self._examples.setdefault(name, {})
        if value is None:
            return
        kind = self._kind(name, value)
        if kind in examples:
            return
        if _resolve([*examples, kind]) is None:
            first = next(iter(examples.values()))
            raise SchemaError(
                f"cannot infer the type of {self._kind_name} {_show(name)}{self._owner}: "
                f"it holds {_describe(first)} and {_describe(value)}",
                field=name,
                value=value,
            )
        examples[kind] = value

    def _kind(self, name: str, value: object) -> str:
        if isinstance(value, bool):
            return "bool"
        if isinstance(value, int):
            return "int"
        if isinstance(value, float):
            return "float"
        if isinstance(value, datetime):
            return "datetime"
        if isinstance(value, date):
            return "date"
        if isinstance(value, str):
            if _parse_date_text(value) is not None:
                return "date_text"
            if _is_datetime_text(value):
                return "datetime_text"
            return "text"
        if isinstance(value, (list, tuple)):
            if not value:
                return "list_empty"
            if all(isinstance(v, str) for v in value):
                return "list_string"
            if all(isinstance(v, int) and not isinstance(v, bool) for v in value):
                return "list_int"
        raise SchemaError(
            f"cannot infer the type of {self._kind_name} {_show(name)}{self._owner}: "
            f"unsupported value {_describe(value)}",
            field=name,
            value=value,
        )

    def result(self) -> dict[str, FieldType]:
        out: dict[str, FieldType] = {}
        for name, examples in self._examples.items():
            resolved = _resolve(examples)
            assert resolved is not None  # add() keeps every field resolvable
            out[name] = resolved
        return out


def _record_attributes(record: object) -> Mapping[str, Any]:
    if isinstance(record, Profile):
        return record.attributes
    if isinstance(record, Mapping):
        return record
    if isinstance(record, (tuple, list)) and len(record) == 2 and isinstance(record[1], Mapping):
        return record[1]
    raise SchemaError(
        f"cannot infer a schema from record {_describe(record)}: "
        "expected a mapping, a (key, mapping) pair or a Profile",
        value=record,
    )


def _timezone_name(spec: str | tzinfo | None, tz: tzinfo | None) -> str | None:
    if tz is None:
        return None
    if tz is timezone.utc:
        return "UTC"
    key = getattr(tz, "key", None)
    if isinstance(key, str):
        return key
    return spec if isinstance(spec, str) else None


_DICT_KEYS: Final = ("attributes", "events", "timezone", "extra")


# --- the schema --------------------------------------------------------------------------------


@attrs.frozen(init=False, repr=False)
class Schema:
    """The declared profile attributes and event types, with a default time zone.

    ``attributes`` maps names to field types and ``events`` maps event names to
    ``{property: type}`` (or is a list of event names without properties). A type
    is a :class:`FieldType`, its name (``"int"``, ``"list[string]"``, …) or a
    Python type (``int``, ``list[str]``, …).

    ``timezone`` (an IANA name such as ``"Europe/Paris"``, ``"UTC"`` or a tzinfo)
    localizes naive datetimes; without it a naive datetime is an error.
    ``extra="ignore"`` drops unknown attributes and properties instead of raising.

    >>> schema = Schema({"age": "int"}, {"purchase": {"amount": float}}, timezone="Europe/Paris")
    >>> schema
    Schema(attributes={'age': 'int'}, events={'purchase': {'amount': 'float'}},
           timezone='Europe/Paris')
    >>> schema.attribute_type("age"), schema.property_type("purchase", "amount")
    (<FieldType.INT: 'int'>, <FieldType.FLOAT: 'float'>)
    >>> Schema({"age": "integr"})
    Traceback (most recent call last):
    ...
    segkit.errors.SchemaError: attribute 'age': unknown field type 'integr'
    (did you mean 'integer'?); expected one of string, int, float, bool, date, datetime,
    list[string], list[int]

    .. versionadded:: 0.1.0
    """

    _attributes: Mapping[str, FieldType] = attrs.field(hash=False)
    _events: Mapping[str, EventType] = attrs.field(hash=False)
    _tz: tzinfo | None
    _timezone_name: str | None = attrs.field(eq=False)
    extra: Literal["error", "ignore"]

    def __init__(
        self,
        attributes: Mapping[str, FieldTypeLike] | None = None,
        events: Mapping[str, Mapping[str, FieldTypeLike]] | Iterable[str] | None = None,
        *,
        timezone: str | tzinfo | None = None,
        extra: Literal["error", "ignore"] = "error",
    ) -> None:
        parsed = _parse_fields({} if attributes is None else attributes, "attribute")
        try:
            tz = resolve_timezone(timezone)
        except (ValueError, TypeError) as e:
            raise SchemaError(str(e), value=timezone, expected="a time zone") from None
        if extra not in ("error", "ignore"):
            raise SchemaError(f"extra must be 'error' or 'ignore', got {_show(extra)}", value=extra)
        self.__attrs_init__(
            _FrozenDict(parsed),
            _FrozenDict(self._parse_events(events)),
            tz,
            _timezone_name(timezone, tz),
            extra,
        )

    @staticmethod
    def _parse_events(events: object) -> dict[str, EventType]:
        if events is None:
            return {}
        if isinstance(events, str):
            raise SchemaError(
                f"events must be a mapping or a list of event names, got {_describe(events)}",
                value=events,
            )
        if isinstance(events, Mapping):
            pairs: Iterable[tuple[object, object]] = events.items()
        elif isinstance(events, Iterable):
            pairs = ((name, {}) for name in events)
        else:
            raise SchemaError(
                f"events must be a mapping or a list of event names, got {_describe(events)}",
                value=events,
            )
        out: dict[str, EventType] = {}
        for name, spec in pairs:
            if not isinstance(name, str) or not name:
                raise SchemaError(
                    f"event names must be non-empty strings, got {_describe(name)}", value=name
                )
            if isinstance(spec, EventType):
                spec = spec.properties
            if spec is None:
                spec = {}
            properties = _parse_fields(spec, "property", f" of event {_show(name)}")
            out[name] = EventType(name, _FrozenDict(properties))
        return out

    # --- reading -------------------------------------------------------------------------------

    @property
    def attributes(self) -> Mapping[str, FieldType]:
        """The declared attributes, ``{name: FieldType}`` (read-only)."""
        return self._attributes

    @property
    def events(self) -> Mapping[str, EventType]:
        """The declared event types, ``{name: EventType}`` (read-only)."""
        return self._events

    @property
    def tz(self) -> tzinfo | None:
        """The default time zone for naive datetimes, or ``None``.

        >>> Schema(timezone="UTC").tz
        datetime.timezone.utc
        """
        return self._tz

    @property
    def timezone_name(self) -> str | None:
        """The time zone's name (``"Europe/Paris"``, ``"UTC"``), or ``None``.

        ``None`` also for a tzinfo without a name (such as a fixed offset).
        """
        return self._timezone_name

    def attribute_type(self, name: str) -> FieldType | None:
        """The type of attribute ``name``, or ``None`` if it is not declared.

        >>> Schema({"age": "int"}).attribute_type("agee") is None
        True
        """
        return self._attributes.get(name)

    def property_type(self, event: str, prop: str) -> FieldType | None:
        """The type of property ``prop`` of event ``event``, or ``None``.

        >>> schema = Schema(events={"purchase": {"amount": "float"}})
        >>> schema.property_type("purchase", "sku") is None
        True
        """
        found = self._events.get(event)
        return None if found is None else found.properties.get(prop)

    def has_event(self, name: str) -> bool:
        """Whether event type ``name`` is declared.

        >>> Schema(events=["signup"]).has_event("signup")
        True
        """
        return name in self._events

    # --- validation ----------------------------------------------------------------------------

    def coerce(self, field_type: FieldTypeLike, value: object) -> Any:
        """``value`` converted to ``field_type``; :class:`SchemaError` if it does not fit.

        See ``docs/schema.md`` for the table of accepted values. Lists come back as
        tuples; naive datetimes are localized in :attr:`tz`, and every datetime comes
        back in UTC (the same instant).

        >>> schema = Schema(timezone="UTC")
        >>> schema.coerce("int", " 31 "), schema.coerce("bool", "yes")
        (31, True)
        >>> schema.coerce("list[int]", {2, "1"})
        (1, 2)
        >>> schema.coerce("datetime", "2024-01-31T10:00:00Z")
        datetime.datetime(2024, 1, 31, 10, 0, tzinfo=datetime.timezone.utc)
        >>> schema.coerce("float", "nan")
        Traceback (most recent call last):
        ...
        segkit.errors.SchemaError: expected float, got 'nan' (str)
        """
        ft = FieldType.parse(field_type)
        try:
            return _COERCERS[ft](value, self._tz)
        except _Reject as e:
            hint = f": {e.hint}" if e.hint else ""
            message = f"expected {ft}, got {_describe(value)}{hint}"
        except _Naive as e:
            message = e.message
        raise SchemaError(message, value=value, expected=ft.value)

    def validate_profile(
        self, key: str, attributes: Mapping[str, Any], *, partial: bool = True
    ) -> dict[str, Any]:
        """Validate and coerce a profile's attributes; returns a new dict.

        A ``None`` value is kept (it means "unset"). An unknown attribute raises,
        unless the schema has ``extra="ignore"``, which drops it. The input is never
        modified. ``partial`` says whether the record will be merged into the stored
        profile (``True``) or replace it; it does not change validation.

        >>> schema = Schema({"country": "string", "age": "int"})
        >>> schema.validate_profile("c-1", {"age": 31.0, "country": None})
        {'age': 31, 'country': None}
        >>> schema.validate_profile("c-1", {"contry": "FR"})
        Traceback (most recent call last):
        ...
        segkit.errors.SchemaError: profile 'c-1': unknown attribute 'contry'
        (did you mean 'country'?)
        """
        if not isinstance(key, str) or not key:
            raise SchemaError(
                f"a profile key must be a non-empty string, got {_describe(key)}", value=key
            )
        if type(attributes) is not dict and not isinstance(attributes, Mapping):
            raise SchemaError(
                f"profile {_show(key)}: attributes must be a mapping, got {_describe(attributes)}",
                key=key,
                value=attributes,
            )
        out: dict[str, Any] = {}
        tz = self._tz
        types = self._attributes
        # the plain dict inside: its ``get`` runs no Python code (Mapping.get does)
        lookup = types._data if type(types) is _FrozenDict else types
        for name, value in attributes.items():
            field_type = lookup.get(name)
            if field_type is None:
                if self.extra == "ignore":
                    continue
                raise SchemaError(
                    f"profile {_show(key)}: unknown attribute {_show(name)}"
                    f"{_did_you_mean(name, self._attributes)}",
                    key=key,
                    field=name,
                    value=value,
                )
            if value is None:
                out[name] = None
                continue
            kind = type(value)
            # by the type's string value: hashing the enum member would run Python code
            as_is = _AS_IS_BY_VALUE.get(field_type._value_)
            if kind is as_is and (kind is not float or math.isfinite(value)):
                out[name] = value  # already what is stored: nothing to coerce
                continue
            try:  # the fast path; _coerce_field builds the error message on failure
                out[name] = _COERCERS[field_type](value, tz)
            except (_Reject, _Naive):
                _coerce_field(
                    field_type,
                    value,
                    tz,
                    prefix=f"profile {_show(key)}: ",
                    subject=f"attribute {_show(name)}",
                    key=key,
                    field=name,
                )
                raise  # pragma: no cover - _coerce_field always raises here
        return out

    def validate_event(self, event: Event) -> Event:
        """Validate and coerce an event; returns a new :class:`~segkit.records.Event`.

        The event type must be declared. Properties are coerced like attributes
        (``None`` kept, unknown ones raise unless ``extra="ignore"``). ``at`` must be
        time-zone aware; a naive one is localized in :attr:`tz`, or rejected when the
        schema has no time zone. Like every coerced datetime, ``at`` comes back in UTC.

        >>> from datetime import datetime
        >>> schema = Schema(events={"purchase": {"amount": "float"}}, timezone="UTC")
        >>> raw = Event("c-1", "purchase", datetime(2024, 1, 1), {"amount": "9.5"})
        >>> e = schema.validate_event(raw)
        >>> e.at, e.properties
        (datetime.datetime(2024, 1, 1, 0, 0, tzinfo=datetime.timezone.utc), {'amount': 9.5})
        >>> schema.validate_event(Event("c-1", "purchse", datetime(2024, 1, 1)))
        Traceback (most recent call last):
        ...
        segkit.errors.SchemaError: event 'purchse' of 'c-1': unknown event type
        (did you mean 'purchase'?)
        """
        if not isinstance(event, Event):
            raise SchemaError(f"expected an Event, got {_describe(event)}", value=event)
        event_type = self._events.get(event.name)
        if event_type is None:
            raise SchemaError(
                f"{_event_prefix(event)}unknown event type"
                f"{_did_you_mean(event.name, self._events)}",
                key=event.key,
                value=event.name,
            )
        at = event.at
        if type(at) is not datetime or at.tzinfo is not timezone.utc:  # else: stored as it is
            try:
                at = _localize(at, self._tz, "timestamp")
            except _Naive as e:
                message = _event_prefix(event) + e.message
            except _Reject as e:
                message = f"{_event_prefix(event)}timestamp {_describe(event.at)} is {e.hint}"
            else:
                message = ""
            if message:
                raise SchemaError(
                    message, key=event.key, field="at", value=event.at, expected="datetime"
                )
        declared = event_type.properties
        properties: dict[str, Any] = {}
        for name, value in event.properties.items():
            field_type = declared.get(name)
            if field_type is None:
                if self.extra == "ignore":
                    continue
                raise SchemaError(
                    f"{_event_prefix(event)}unknown property {_show(name)}"
                    f"{_did_you_mean(name, declared)}",
                    key=event.key,
                    field=name,
                    value=value,
                )
            if value is None:
                properties[name] = None
                continue
            kind = type(value)
            as_is = _AS_IS_BY_VALUE.get(field_type._value_)
            if kind is as_is and (kind is not float or math.isfinite(value)):
                properties[name] = value  # already what is stored: nothing to coerce
                continue
            properties[name] = _coerce_field(
                field_type,
                value,
                self._tz,
                prefix=_event_prefix(event),
                subject=f"property {_show(name)}",
                key=event.key,
                field=name,
            )
        return Event(event.key, event.name, at, properties)

    # --- inference and serialization -----------------------------------------------------------

    @classmethod
    def infer(
        cls,
        records: Iterable[Mapping[str, Any] | tuple[str, Mapping[str, Any]] | Profile],
        events: Iterable[Event] = (),
        *,
        timezone: str | tzinfo | None = None,
        key: str | None = None,
    ) -> Schema:
        """Infer a schema from sample records and events.

        ``records`` holds mappings, ``(key, mapping)`` pairs or
        :class:`~segkit.records.Profile` objects, or is a pandas, polars or pyarrow
        table (one record per row; the column named ``key``, if given, is the
        profiles' key and not an attribute). Per field, ``None`` is ignored;
        then bools give ``bool``, ints ``int``, ints and floats ``float``, date
        objects or ``"YYYY-MM-DD"`` strings ``date``, datetime objects or ISO
        date-time strings ``datetime``, other strings ``string``, lists of strings
        (or only empty lists) ``list[string]``, and lists of ints ``list[int]``. A
        field that only ever holds ``None`` is a ``string``. Values that do not fit
        one type raise :class:`SchemaError`.

        >>> Schema.infer([{"age": 31, "ltv": 10}, {"age": 40, "ltv": 12.5, "since": "2024-01-31"}])
        Schema(attributes={'age': 'int', 'ltv': 'float', 'since': 'date'}, events={})
        >>> Schema.infer([{"score": 1}, {"score": "high"}])
        Traceback (most recent call last):
        ...
        segkit.errors.SchemaError: cannot infer the type of attribute 'score':
        it holds 1 (int) and 'high' (str)
        >>> import polars as pl
        >>> Schema.infer(pl.DataFrame({"id": ["a"], "plan": ["pro"]}), key="id")
        Schema(attributes={'plan': 'string'}, events={})
        """
        from segkit.interop import frame_rows, is_frame

        if is_frame(records):
            rows = frame_rows(records)
            if key is not None:
                for row in rows:
                    row.pop(key, None)
            records = rows
        attributes = _Inferrer("attribute")
        for record in records:
            for name, value in _record_attributes(record).items():
                attributes.add(name, value)
        per_event: dict[str, _Inferrer] = {}
        for event in events:
            if not isinstance(event, Event):
                raise SchemaError(
                    f"cannot infer a schema from event {_describe(event)}: expected an Event",
                    value=event,
                )
            inferrer = per_event.get(event.name)
            if inferrer is None:
                owner = f" of event {_show(event.name)}"
                inferrer = per_event[event.name] = _Inferrer("property", owner)
            for name, value in event.properties.items():
                inferrer.add(name, value)
        return cls(
            attributes.result(),
            {name: inferrer.result() for name, inferrer in per_event.items()},
            timezone=timezone,
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict; :meth:`from_dict` turns it back into an equal schema.

        ``"extra"`` is only present when it is not the default ``"error"``.

        >>> Schema({"age": "int"}, ["signup"], timezone="UTC").to_dict()
        {'attributes': {'age': 'int'}, 'events': {'signup': {}}, 'timezone': 'UTC'}
        """
        if self._tz is not None and self._timezone_name is None:
            raise SchemaError(
                f"cannot serialize the time zone {_show(self._tz)}: "
                "declare it by name, such as 'Europe/Paris'",
                value=self._tz,
            )
        out: dict[str, Any] = {
            "attributes": {name: t.value for name, t in self._attributes.items()},
            "events": {
                name: {p: t.value for p, t in event.properties.items()}
                for name, event in self._events.items()
            },
            "timezone": self._timezone_name,
        }
        if self.extra != "error":
            out["extra"] = self.extra
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Schema:
        """The schema described by a :meth:`to_dict` dict.

        >>> s = Schema({"tags": "list[string]"}, {"purchase": {"amount": "float"}})
        >>> Schema.from_dict(s.to_dict()) == s
        True
        """
        if not isinstance(data, Mapping):
            raise SchemaError(f"a schema dict must be a mapping, got {_describe(data)}")
        for name in data:
            if name not in _DICT_KEYS:
                raise SchemaError(
                    f"unknown schema key {_show(name)}{_did_you_mean(name, _DICT_KEYS)}; "
                    f"expected {', '.join(_DICT_KEYS)}",
                    field=name if isinstance(name, str) else None,
                )
        return cls(
            data.get("attributes"),
            data.get("events"),
            timezone=data.get("timezone"),
            extra=data.get("extra", "error"),
        )

    def __repr__(self) -> str:
        attributes = {name: t.value for name, t in self._attributes.items()}
        events = {
            name: {p: t.value for p, t in event.properties.items()}
            for name, event in self._events.items()
        }
        parts = [f"attributes={attributes!r}", f"events={events!r}"]
        if self._tz is not None:
            parts.append(f"timezone={self._timezone_name or self._tz!r}")
        if self.extra != "error":
            parts.append(f"extra={self.extra!r}")
        return f"Schema({', '.join(parts)})"
