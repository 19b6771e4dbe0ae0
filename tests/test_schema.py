"""Tests for segkit.schema: field types, coercion, validation, inference, serialization."""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from datetime import date, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from segkit.errors import SchemaError
from segkit.records import Event, Profile
from segkit.schema import EventType, FieldType, Schema

UTC = timezone.utc
PARIS = ZoneInfo("Europe/Paris")
VALID = "string, int, float, bool, date, datetime, list[string], list[int]"

SCHEMA = Schema(
    attributes={
        "country": "string",
        "age": "int",
        "ltv": "float",
        "is_customer": "bool",
        "signed_up": "date",
        "last_seen": "datetime",
        "tags": "list[string]",
        "scores": "list[int]",
    },
    events={"purchase": {"amount": "float", "sku": "string"}, "cart_abandoned": {}},
)
UTC_SCHEMA = Schema(SCHEMA.attributes, {"purchase": {"amount": "float"}}, timezone="UTC")
AT = datetime(2024, 1, 1, tzinfo=UTC)


def profile_error(attributes: Mapping[str, Any], schema: Schema = SCHEMA) -> SchemaError:
    with pytest.raises(SchemaError) as info:
        schema.validate_profile("c-1", attributes)
    return info.value


def event_error(event: Event, schema: Schema = SCHEMA) -> SchemaError:
    with pytest.raises(SchemaError) as info:
        schema.validate_event(event)
    return info.value


# --- FieldType ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("string", FieldType.STRING),
        ("str", FieldType.STRING),
        ("int", FieldType.INT),
        ("integer", FieldType.INT),
        ("INT", FieldType.INT),
        ("float", FieldType.FLOAT),
        ("bool", FieldType.BOOL),
        ("boolean", FieldType.BOOL),
        ("date", FieldType.DATE),
        ("datetime", FieldType.DATETIME),
        ("timestamp", FieldType.DATETIME),
        ("list[string]", FieldType.LIST_STRING),
        ("list[str]", FieldType.LIST_STRING),
        ("list[ string ]", FieldType.LIST_STRING),
        ("list[int]", FieldType.LIST_INT),
        (str, FieldType.STRING),
        (int, FieldType.INT),
        (float, FieldType.FLOAT),
        (bool, FieldType.BOOL),
        (date, FieldType.DATE),
        (datetime, FieldType.DATETIME),
        (list[str], FieldType.LIST_STRING),
        (list[int], FieldType.LIST_INT),
        (FieldType.DATE, FieldType.DATE),
    ],
)
def test_field_type_parse(spec: Any, expected: FieldType) -> None:
    """FieldType.parse accepts names, aliases, Python types and FieldTypes."""
    assert FieldType.parse(spec) is expected


@pytest.mark.parametrize(
    ("spec", "shown"),
    [
        ("integr", "'integr' (did you mean 'integer'?)"),
        ("zzz", "'zzz'"),
        (bytes, "bytes"),
        (list[float], "list[float]"),
        (None, "None"),
    ],
)
def test_field_type_parse_rejects(spec: Any, shown: str) -> None:
    """An unknown field type raises SchemaError listing the valid types."""
    with pytest.raises(SchemaError) as info:
        FieldType.parse(spec)
    assert info.value.message == f"unknown field type {shown}; expected one of {VALID}"


def test_field_type_properties() -> None:
    """is_list, element, is_numeric, is_temporal and is_orderable classify each type."""
    table = {
        t: (t.is_list, t.element, t.is_numeric, t.is_temporal, t.is_orderable) for t in FieldType
    }
    assert table == {
        FieldType.STRING: (False, FieldType.STRING, False, False, True),
        FieldType.INT: (False, FieldType.INT, True, False, True),
        FieldType.FLOAT: (False, FieldType.FLOAT, True, False, True),
        FieldType.BOOL: (False, FieldType.BOOL, False, False, False),
        FieldType.DATE: (False, FieldType.DATE, False, True, True),
        FieldType.DATETIME: (False, FieldType.DATETIME, False, True, True),
        FieldType.LIST_STRING: (True, FieldType.STRING, False, False, False),
        FieldType.LIST_INT: (True, FieldType.INT, False, False, False),
    }


def test_field_type_str_and_format() -> None:
    """str() and f-strings of a FieldType give its name."""
    assert (str(FieldType.LIST_INT), f"{FieldType.INT}", f"{FieldType.BOOL:>5}") == (
        "list[int]",
        "int",
        " bool",
    )


# --- declaring a schema ------------------------------------------------------------------------


def test_schema_accessors() -> None:
    """attributes, events, attribute_type, property_type and has_event read the declaration."""
    assert SCHEMA.attributes["age"] is FieldType.INT
    assert SCHEMA.events["purchase"] == EventType(
        "purchase", {"amount": FieldType.FLOAT, "sku": FieldType.STRING}
    )
    assert SCHEMA.attribute_type("tags") is FieldType.LIST_STRING
    assert SCHEMA.attribute_type("nope") is None
    assert SCHEMA.property_type("purchase", "amount") is FieldType.FLOAT
    assert SCHEMA.property_type("purchase", "nope") is None
    assert SCHEMA.property_type("nope", "amount") is None
    assert (SCHEMA.has_event("cart_abandoned"), SCHEMA.has_event("nope")) == (True, False)
    assert (SCHEMA.tz, SCHEMA.timezone_name) == (None, None)


def test_schema_events_as_names() -> None:
    """A list of event names declares events without properties."""
    schema = Schema(events=["signup", "churn"])
    assert dict(schema.events) == {"signup": EventType("signup"), "churn": EventType("churn")}


def test_schema_is_read_only() -> None:
    """The schema's mappings cannot be changed after construction."""
    with pytest.raises(TypeError):
        SCHEMA.attributes["age"] = FieldType.FLOAT  # type: ignore[index]


def test_schema_copies_its_input() -> None:
    """Changing the dict a schema was built from does not change the schema."""
    spec = {"age": "int"}
    schema = Schema(spec)
    spec["age"] = "float"
    assert schema.attribute_type("age") is FieldType.INT


@pytest.mark.parametrize(
    ("timezone_spec", "tz", "name"),
    [
        ("UTC", UTC, "UTC"),
        ("Europe/Paris", PARIS, "Europe/Paris"),
        (PARIS, PARIS, "Europe/Paris"),
        (UTC, UTC, "UTC"),
        (timezone(timedelta(hours=2)), timezone(timedelta(hours=2)), None),
    ],
)
def test_schema_timezone(timezone_spec: Any, tz: Any, name: str | None) -> None:
    """timezone accepts a name or a tzinfo; timezone_name is its IANA name when it has one."""
    schema = Schema(timezone=timezone_spec)
    assert (schema.tz, schema.timezone_name) == (tz, name)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"attributes": {"age": "integr"}},
            "attribute 'age': unknown field type 'integr' (did you mean 'integer'?); "
            f"expected one of {VALID}",
        ),
        (
            {"events": {"purchase": {"amount": "flot"}}},
            "property 'amount' of event 'purchase': unknown field type 'flot' "
            f"(did you mean 'float'?); expected one of {VALID}",
        ),
        ({"attributes": {"": "int"}}, "attribute names must be non-empty strings, got '' (str)"),
        (
            {"attributes": ["age"]},
            "the attribute types must be a mapping of names to types, got ['age'] (list)",
        ),
        (
            {"events": "purchase"},
            "events must be a mapping or a list of event names, got 'purchase' (str)",
        ),
        ({"events": [1]}, "event names must be non-empty strings, got 1 (int)"),
        (
            {"timezone": "Mars/Olympus"},
            "unknown time zone 'Mars/Olympus' (expected an IANA name such as 'Europe/Paris')",
        ),
        ({"extra": "allow"}, "extra must be 'error' or 'ignore', got 'allow'"),
    ],
)
def test_schema_rejects_bad_declarations(kwargs: dict[str, Any], message: str) -> None:
    """A malformed declaration raises SchemaError with an exact message."""
    with pytest.raises(SchemaError) as info:
        Schema(**kwargs)
    assert info.value.message == message


def test_schema_equality_and_hash() -> None:
    """Schemas with the same declaration are equal and hash alike."""
    a = Schema({"age": "int"}, {"e": {}}, timezone="UTC")
    b = Schema({"age": int}, ["e"], timezone=UTC)
    assert a == b
    assert hash(a) == hash(b)
    assert a != Schema({"age": "float"}, {"e": {}}, timezone="UTC")
    assert a != Schema({"age": "int"}, {"e": {}})


def test_schema_repr() -> None:
    """repr shows the declaration with type names."""
    assert repr(Schema({"age": "int"}, ["e"], timezone="Europe/Paris", extra="ignore")) == (
        "Schema(attributes={'age': 'int'}, events={'e': {}}, timezone='Europe/Paris', "
        "extra='ignore')"
    )


def test_schema_pickles() -> None:
    """A schema survives pickling."""
    schema = Schema({"age": "int"}, {"purchase": {"amount": "float"}}, timezone="Europe/Paris")
    assert pickle.loads(pickle.dumps(schema)) == schema


# --- coercion ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field_type", "value", "expected"),
    [
        ("string", "FR", "FR"),
        ("string", "", ""),
        ("int", 31, 31),
        ("int", 31.0, 31),
        ("int", "31", 31),
        ("int", " -7 ", -7),
        ("int", "+5", 5),
        ("float", 2, 2.0),
        ("float", 2.5, 2.5),
        ("float", "2.5", 2.5),
        ("float", " 1e3 ", 1000.0),
        ("float", "-.5", -0.5),
        ("bool", True, True),
        ("bool", "TRUE", True),
        ("bool", "no", False),
        ("bool", "Yes", True),
        ("bool", "0", False),
        ("bool", 1, True),
        ("bool", 0, False),
        ("date", date(2024, 2, 29), date(2024, 2, 29)),
        ("date", "2024-02-29", date(2024, 2, 29)),
        ("datetime", AT, AT),
        ("datetime", "2024-01-01T00:00:00Z", AT),
        ("datetime", "2024-01-01T00:00:00z", AT),
        ("datetime", "2024-01-01 01:00+01:00", AT),
        ("datetime", "2024-01-01T00:00:00.5+00:00", AT.replace(microsecond=500_000)),
        ("list[string]", ["b", "a", "b"], ("b", "a", "b")),
        ("list[string]", ("x",), ("x",)),
        ("list[string]", {"b", "a"}, ("a", "b")),
        ("list[string]", frozenset(), ()),
        ("list[int]", [3, "1", 2.0], (3, 1, 2)),
        ("list[int]", {3, 1}, (1, 3)),
    ],
)
def test_coerce_accepts(field_type: str, value: Any, expected: Any) -> None:
    """Schema.coerce converts each accepted input form to the canonical value and type."""
    result = SCHEMA.coerce(field_type, value)
    assert result == expected
    assert type(result) is type(expected)


def test_coerce_converts_aware_datetimes_to_utc() -> None:
    """An aware datetime comes back in UTC, as the same instant."""
    moment = datetime(2024, 1, 1, 9, tzinfo=timezone(timedelta(hours=5)))
    result = UTC_SCHEMA.coerce("datetime", moment)
    assert (result, result.tzinfo) == (datetime(2024, 1, 1, 4, tzinfo=UTC), UTC)


def test_coerce_iso_string_with_offset() -> None:
    """An ISO string with an offset is read with that offset."""
    result = SCHEMA.coerce("datetime", "2024-06-01T10:00:00-05:30")
    assert result == datetime(2024, 6, 1, 15, 30, tzinfo=UTC)


def test_coerce_rejects_datetimes_out_of_range_in_utc() -> None:
    """A datetime that cannot be expressed in UTC is rejected."""
    moment = datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=1)))
    with pytest.raises(SchemaError) as info:
        SCHEMA.coerce("datetime", moment)
    assert info.value.message == (
        "expected datetime, got datetime.datetime(1, 1, 1, 0, 0, tzinfo=datetime.timezone... "
        "(datetime): out of range in UTC"
    )


@pytest.mark.parametrize(
    ("field_type", "value", "message"),
    [
        ("string", 5, "expected string, got 5 (int)"),
        ("int", True, "expected int, got True (bool)"),
        ("int", 1.5, "expected int, got 1.5 (float): not a whole number"),
        ("int", "1_000", "expected int, got '1_000' (str)"),
        ("int", "3.0", "expected int, got '3.0' (str)"),
        ("float", False, "expected float, got False (bool)"),
        ("float", float("inf"), "expected float, got inf (float): not a finite number"),
        ("float", "nan", "expected float, got 'nan' (str)"),
        ("float", "1e999", "expected float, got '1e999' (str): not a finite number"),
        ("bool", 2, "expected bool, got 2 (int)"),
        ("bool", "maybe", "expected bool, got 'maybe' (str)"),
        ("bool", 1.0, "expected bool, got 1.0 (float)"),
        ("date", "2024-02-30", "expected date, got '2024-02-30' (str)"),
        ("date", "20240201", "expected date, got '20240201' (str)"),
        (
            "date",
            datetime(2024, 1, 1),
            "expected date, got datetime.datetime(2024, 1, 1, 0, 0) (datetime): "
            "a datetime is not a date; pass its .date()",
        ),
        (
            "datetime",
            date(2024, 1, 1),
            "expected datetime, got datetime.date(2024, 1, 1) (date): "
            "a date is not a datetime; give it a time of day",
        ),
        ("datetime", "2024-01-01", "expected datetime, got '2024-01-01' (str)"),
        ("datetime", 1704067200, "expected datetime, got 1704067200 (int)"),
        (
            "list[string]",
            "vip",
            "expected list[string], got 'vip' (str): a single string is not a list; "
            "wrap it in a list",
        ),
        ("list[int]", {"a": 1}, "expected list[int], got {'a': 1} (dict)"),
        (
            "list[int]",
            [1, None],
            "expected list[int], got [1, None] (list): item 1 expects int, got None (NoneType)",
        ),
    ],
)
def test_coerce_rejects(field_type: str, value: Any, message: str) -> None:
    """Schema.coerce rejects values that do not fit, saying what was expected."""
    with pytest.raises(SchemaError) as info:
        SCHEMA.coerce(field_type, value)
    assert info.value.message == message
    assert (info.value.value, info.value.expected) == (value, FieldType.parse(field_type).value)


# --- validating profiles -----------------------------------------------------------------------


def test_validate_profile_coerces_into_a_new_dict() -> None:
    """validate_profile returns a new dict of coerced values and leaves the input alone."""
    raw = {"age": "31", "tags": ["vip"], "signed_up": "2024-01-31", "country": None}
    result = SCHEMA.validate_profile("c-1", raw)
    assert result == {
        "age": 31,
        "tags": ("vip",),
        "signed_up": date(2024, 1, 31),
        "country": None,
    }
    assert raw == {"age": "31", "tags": ["vip"], "signed_up": "2024-01-31", "country": None}
    assert result is not raw


def test_validate_profile_partial_flag_does_not_change_validation() -> None:
    """partial=False validates exactly like partial=True."""
    raw = {"age": 31.0}
    assert SCHEMA.validate_profile("c-1", raw, partial=False) == SCHEMA.validate_profile(
        "c-1", raw, partial=True
    )


def test_validate_profile_extra_ignore_drops_unknown() -> None:
    """With extra="ignore", unknown attributes are dropped instead of raising."""
    schema = Schema({"age": "int"}, extra="ignore")
    assert schema.validate_profile("c-1", {"age": 1, "contry": "FR"}) == {"age": 1}


@pytest.mark.parametrize(
    ("attributes", "message"),
    [
        ({"age": "abc"}, "profile 'c-1': attribute 'age' expects int, got 'abc' (str)"),
        ({"contry": "FR"}, "profile 'c-1': unknown attribute 'contry' (did you mean 'country'?)"),
        ({"zzz": 1}, "profile 'c-1': unknown attribute 'zzz'"),
        ({"Age": 1}, "profile 'c-1': unknown attribute 'Age' (did you mean 'age'?)"),
        ({"age": True}, "profile 'c-1': attribute 'age' expects int, got True (bool)"),
        (
            {"age": 1.5},
            "profile 'c-1': attribute 'age' expects int, got 1.5 (float): not a whole number",
        ),
        (
            {"ltv": float("nan")},
            "profile 'c-1': attribute 'ltv' expects float, got nan (float): not a finite number",
        ),
        (
            {"ltv": "x" * 100},
            "profile 'c-1': attribute 'ltv' expects float, got '" + "x" * 56 + "... (str)",
        ),
        (
            {"tags": "vip"},
            "profile 'c-1': attribute 'tags' expects list[string], got 'vip' (str): "
            "a single string is not a list; wrap it in a list",
        ),
        (
            {"tags": ["a", 1]},
            "profile 'c-1': attribute 'tags' expects list[string], got ['a', 1] (list): "
            "item 1 expects string, got 1 (int)",
        ),
        (
            {"scores": {"x"}},
            "profile 'c-1': attribute 'scores' expects list[int], got {'x'} (set): "
            "an item expects int, got 'x' (str)",
        ),
        (
            {"is_customer": 2},
            "profile 'c-1': attribute 'is_customer' expects bool, got 2 (int)",
        ),
        (
            {"signed_up": "31/01/2024"},
            "profile 'c-1': attribute 'signed_up' expects date, got '31/01/2024' (str)",
        ),
        (
            {"last_seen": datetime(2024, 1, 1)},
            "profile 'c-1': attribute 'last_seen': naive datetime 2024-01-01T00:00:00: "
            "give it a time zone, or declare Schema(timezone=...)",
        ),
        (
            {"last_seen": "2024-01-01T00:00:00"},
            "profile 'c-1': attribute 'last_seen': naive datetime 2024-01-01T00:00:00: "
            "give it a time zone, or declare Schema(timezone=...)",
        ),
        (
            {"last_seen": "yesterday"},
            "profile 'c-1': attribute 'last_seen' expects datetime, got 'yesterday' (str)",
        ),
        (
            {"country": list(range(100))},
            "profile 'c-1': attribute 'country' expects string, got "
            "[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16... (list)",
        ),
    ],
)
def test_validate_profile_errors(attributes: dict[str, Any], message: str) -> None:
    """Bad profile attributes raise SchemaError with an exact, one-line message."""
    assert profile_error(attributes).message == message


def test_validate_profile_error_fields() -> None:
    """SchemaError carries the key, field, value and expected type."""
    e = profile_error({"age": "abc"})
    assert (e.key, e.field, e.value, e.expected) == ("c-1", "age", "abc", "int")
    assert str(e) == e.message
    unknown = profile_error({"contry": "FR"})
    assert (unknown.key, unknown.field, unknown.value, unknown.expected) == (
        "c-1",
        "contry",
        "FR",
        None,
    )


def test_validate_profile_error_pickles() -> None:
    """A validation error survives pickling with its fields."""
    e = pickle.loads(pickle.dumps(profile_error({"age": "abc"})))
    assert (e.message, e.key, e.field, e.value, e.expected) == (
        "profile 'c-1': attribute 'age' expects int, got 'abc' (str)",
        "c-1",
        "age",
        "abc",
        "int",
    )


@pytest.mark.parametrize(
    ("key", "attributes", "message"),
    [
        ("", {}, "a profile key must be a non-empty string, got '' (str)"),
        (7, {}, "a profile key must be a non-empty string, got 7 (int)"),
        (
            "c-1",
            [("age", 1)],
            "profile 'c-1': attributes must be a mapping, got [('age', 1)] (list)",
        ),
    ],
)
def test_validate_profile_rejects_bad_records(key: Any, attributes: Any, message: str) -> None:
    """A bad key or a non-mapping record raises SchemaError."""
    with pytest.raises(SchemaError) as info:
        SCHEMA.validate_profile(key, attributes)
    assert info.value.message == message


# --- validating events -------------------------------------------------------------------------


def test_validate_event_coerces() -> None:
    """validate_event returns a new Event with coerced properties."""
    event = Event("c-1", "purchase", "2024-01-01T00:00:00Z", {"amount": "9.5", "sku": None})
    result = SCHEMA.validate_event(event)
    assert result == Event("c-1", "purchase", AT, {"amount": 9.5, "sku": None})
    assert event.properties == {"amount": "9.5", "sku": None}


def test_validate_event_extra_ignore_drops_unknown_properties() -> None:
    """With extra="ignore", unknown properties are dropped; unknown events still raise."""
    schema = Schema(events={"purchase": {"amount": "float"}}, extra="ignore")
    event = Event("c-1", "purchase", AT, {"amount": 1, "coupon": "X"})
    assert schema.validate_event(event).properties == {"amount": 1.0}
    assert event_error(Event("c-1", "refund", AT), schema).message == (
        "event 'refund' of 'c-1': unknown event type"
    )


@pytest.mark.parametrize(
    ("event", "message"),
    [
        (
            Event("c-1", "purchase", AT, {"amount": "x"}),
            "event 'purchase' of 'c-1': property 'amount' expects float, got 'x' (str)",
        ),
        (
            Event("c-1", "purchse", AT),
            "event 'purchse' of 'c-1': unknown event type (did you mean 'purchase'?)",
        ),
        (Event("c-1", "zzz", AT), "event 'zzz' of 'c-1': unknown event type"),
        (
            Event("c-1", "purchase", datetime(2024, 1, 1)),
            "event 'purchase' of 'c-1': naive timestamp 2024-01-01T00:00:00: "
            "give it a time zone, or declare Schema(timezone=...)",
        ),
        (
            Event("c-1", "purchase", "2024-01-01T00:00:00"),
            "event 'purchase' of 'c-1': naive timestamp 2024-01-01T00:00:00: "
            "give it a time zone, or declare Schema(timezone=...)",
        ),
        (
            Event("c-1", "purchase", AT, {"amont": 1}),
            "event 'purchase' of 'c-1': unknown property 'amont' (did you mean 'amount'?)",
        ),
        (
            Event("c-1", "cart_abandoned", AT, {"amount": 1}),
            "event 'cart_abandoned' of 'c-1': unknown property 'amount'",
        ),
        (
            Event("c-1", "purchase", AT, {"sku": ["a"]}),
            "event 'purchase' of 'c-1': property 'sku' expects string, got ['a'] (list)",
        ),
    ],
)
def test_validate_event_errors(event: Event, message: str) -> None:
    """Bad events raise SchemaError with an exact, one-line message."""
    assert event_error(event).message == message


def test_validate_event_error_fields() -> None:
    """Event errors carry the profile key and the field."""
    e = event_error(Event("c-1", "purchase", AT, {"amount": "x"}))
    assert (e.key, e.field, e.value, e.expected) == ("c-1", "amount", "x", "float")
    naive = event_error(Event("c-1", "purchase", datetime(2024, 1, 1)))
    assert (naive.key, naive.field, naive.expected) == ("c-1", "at", "datetime")


def test_validate_event_rejects_non_events() -> None:
    """validate_event needs an Event."""
    with pytest.raises(SchemaError) as info:
        SCHEMA.validate_event({"key": "c-1"})  # type: ignore[arg-type]
    assert info.value.message == "expected an Event, got {'key': 'c-1'} (dict)"


# --- time zones --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("naive", "offset_hours", "utc"),
    [
        # winter time: UTC+1
        (datetime(2024, 1, 15, 12, 0), 1, datetime(2024, 1, 15, 11, 0, tzinfo=UTC)),
        # summer time: UTC+2
        (datetime(2024, 7, 15, 12, 0), 2, datetime(2024, 7, 15, 10, 0, tzinfo=UTC)),
        # the day clocks go forward, before and after 02:00
        (datetime(2024, 3, 31, 1, 30), 1, datetime(2024, 3, 31, 0, 30, tzinfo=UTC)),
        (datetime(2024, 3, 31, 3, 30), 2, datetime(2024, 3, 31, 1, 30, tzinfo=UTC)),
        # 02:30 does not exist that day: fold=0 reads it with the earlier offset
        (datetime(2024, 3, 31, 2, 30), 1, datetime(2024, 3, 31, 1, 30, tzinfo=UTC)),
        # 02:30 happens twice on 27 October: fold=0 is the first one (summer time)
        (datetime(2024, 10, 27, 2, 30), 2, datetime(2024, 10, 27, 0, 30, tzinfo=UTC)),
    ],
)
def test_naive_datetimes_are_localized_in_schema_timezone(
    naive: datetime, offset_hours: int, utc: datetime
) -> None:
    """A naive datetime is read on the wall clock of the schema's zone, DST included."""
    schema = Schema({"last_seen": "datetime"}, ["visit"], timezone="Europe/Paris")
    assert naive.replace(tzinfo=PARIS).utcoffset() == timedelta(hours=offset_hours)
    for value in (naive, naive.isoformat()):
        result = schema.validate_profile("c-1", {"last_seen": value})["last_seen"]
        assert (result, result.tzinfo) == (utc, UTC)
    event = schema.validate_event(Event("c-1", "visit", naive))
    assert (event.at, event.at.tzinfo) == (utc, UTC)


def test_aware_timestamp_keeps_its_instant() -> None:
    """validate_event keeps the instant of an aware timestamp and returns it in UTC."""
    schema = Schema(events=["visit"], timezone="Europe/Paris")
    at = datetime(2024, 7, 1, 9, tzinfo=timezone(timedelta(hours=-4)))
    result = schema.validate_event(Event("c-1", "visit", at)).at
    assert (result, result.tzinfo) == (datetime(2024, 7, 1, 13, tzinfo=UTC), UTC)


def test_timestamp_in_a_fold_compares_equal_after_validation() -> None:
    """An aware timestamp in a DST fold equals the same instant in UTC once validated."""
    schema = Schema(events=["visit"], timezone="Europe/Paris")
    second_0230 = datetime(2024, 10, 27, 2, 30, fold=1, tzinfo=PARIS)
    assert second_0230 != datetime(2024, 10, 27, 1, 30, tzinfo=UTC)  # PEP 495
    result = schema.validate_event(Event("c-1", "visit", second_0230)).at
    assert result == datetime(2024, 10, 27, 1, 30, tzinfo=UTC)


# --- inference ---------------------------------------------------------------------------------


def test_infer_types() -> None:
    """Schema.infer picks one type per field following the documented rules."""
    records = [
        {
            "flag": True,
            "n": 1,
            "x": 1,
            "d": "2024-01-31",
            "dt": "2024-01-31T10:00:00Z",
            "day": date(2024, 1, 1),
            "moment": AT,
            "tags": ["a"],
            "ids": [],
            "name": "Ada",
            "mixed_text": "2024-01-31",
            "empty": [],
            "unset": None,
        },
        {
            "flag": False,
            "n": None,
            "x": 2.5,
            "d": "2024-02-01",
            "dt": datetime(2024, 1, 1),
            "day": "2024-01-02",
            "moment": "2024-01-01 10:00",
            "tags": ("b", "c"),
            "ids": [1, 2],
            "name": "Bob",
            "mixed_text": "hello",
            "empty": (),
            "unset": None,
        },
    ]
    assert dict(Schema.infer(records).attributes) == {
        "flag": FieldType.BOOL,
        "n": FieldType.INT,
        "x": FieldType.FLOAT,
        "d": FieldType.DATE,
        "dt": FieldType.DATETIME,
        "day": FieldType.DATE,
        "moment": FieldType.DATETIME,
        "tags": FieldType.LIST_STRING,
        "ids": FieldType.LIST_INT,
        "name": FieldType.STRING,
        "mixed_text": FieldType.STRING,
        "empty": FieldType.LIST_STRING,
        "unset": FieldType.STRING,
    }


def test_infer_record_shapes_and_events() -> None:
    """infer reads mappings, (key, mapping) pairs and Profiles, and event properties."""
    events = [
        Event("c-1", "purchase", AT, {"amount": 10}),
        Event("c-2", "purchase", AT, {"amount": 2.5, "sku": "A"}),
        Event("c-1", "signup", AT),
    ]
    schema = Schema.infer(
        [{"age": 1}, ("c-2", {"country": "FR"}), Profile("c-3", {"age": 3})],
        events,
        timezone="UTC",
    )
    assert schema == Schema(
        {"age": "int", "country": "string"},
        {"purchase": {"amount": "float", "sku": "string"}, "signup": {}},
        timezone="UTC",
    )


@pytest.mark.parametrize(
    ("records", "message"),
    [
        (
            [{"score": 1}, {"score": "high"}],
            "cannot infer the type of attribute 'score': it holds 1 (int) and 'high' (str)",
        ),
        (
            [{"flag": True}, {"flag": 0}],
            "cannot infer the type of attribute 'flag': it holds True (bool) and 0 (int)",
        ),
        (
            [{"d": date(2024, 1, 1)}, {"d": "soon"}],
            "cannot infer the type of attribute 'd': "
            "it holds datetime.date(2024, 1, 1) (date) and 'soon' (str)",
        ),
        (
            [{"t": ["a"]}, {"t": [1]}],
            "cannot infer the type of attribute 't': it holds ['a'] (list) and [1] (list)",
        ),
        (
            [{"t": ["a", 1]}],
            "cannot infer the type of attribute 't': unsupported value ['a', 1] (list)",
        ),
        (
            [{"m": {"a": 1}}],
            "cannot infer the type of attribute 'm': unsupported value {'a': 1} (dict)",
        ),
        (
            ["c-1"],
            "cannot infer a schema from record 'c-1' (str): "
            "expected a mapping, a (key, mapping) pair or a Profile",
        ),
    ],
)
def test_infer_conflicts(records: list[Any], message: str) -> None:
    """Values that do not fit one type make infer raise, naming the field and two values."""
    with pytest.raises(SchemaError) as info:
        Schema.infer(records)
    assert info.value.message == message


def test_infer_event_conflict() -> None:
    """A conflict in an event property names the event."""
    events = [Event("c-1", "buy", AT, {"n": 1}), Event("c-1", "buy", AT, {"n": "one"})]
    with pytest.raises(SchemaError) as info:
        Schema.infer([], events)
    assert info.value.message == (
        "cannot infer the type of property 'n' of event 'buy': it holds 1 (int) and 'one' (str)"
    )


_offsets = st.integers(-23 * 60 - 59, 23 * 60 + 59).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)
_datetimes = st.datetimes(timezones=st.none() | st.just(UTC) | _offsets)


def _is_plain_text(text: str) -> bool:
    """True when infer would read ``text`` as a plain string (not a date or date-time)."""
    for kind in ("date", "datetime"):
        try:
            UTC_SCHEMA.coerce(kind, text)
        except SchemaError:
            continue
        return False
    return True


_plain_text = st.text(max_size=20).filter(_is_plain_text)

VALUES_BY_TYPE: dict[FieldType, st.SearchStrategy[Any]] = {
    FieldType.STRING: _plain_text,
    FieldType.INT: st.integers(),
    FieldType.FLOAT: st.floats(allow_nan=False, allow_infinity=False),
    FieldType.BOOL: st.booleans(),
    FieldType.DATE: st.dates() | st.dates().map(date.isoformat),
    FieldType.DATETIME: _datetimes | _datetimes.map(datetime.isoformat),
    FieldType.LIST_STRING: st.lists(st.text(max_size=5), max_size=3),
    FieldType.LIST_INT: st.lists(st.integers(), min_size=1, max_size=3),
}


@given(
    st.sampled_from(list(FieldType)).flatmap(
        lambda t: st.tuples(st.just(t), st.lists(VALUES_BY_TYPE[t] | st.none(), min_size=1))
    )
)
def test_infer_recovers_generated_type(case: tuple[FieldType, list[Any]]) -> None:
    """infer of values generated for one type infers that type, and they then validate."""
    field_type, values = case
    if field_type is FieldType.FLOAT:
        values = [*values, 0.5]  # a float column may hold ints, but needs a float
    if field_type is FieldType.LIST_INT:
        values = [*values, [1]]
    records = [{"f": v} for v in values]
    schema = Schema.infer(records, timezone="UTC")
    expected = field_type
    if all(v is None for v in values):
        expected = FieldType.STRING
    assert schema.attribute_type("f") is expected
    for record in records:
        schema.validate_profile("c-1", record)


ACCEPTED_BY_TYPE: dict[FieldType, st.SearchStrategy[Any]] = {
    FieldType.STRING: st.text(),
    FieldType.INT: st.integers() | st.integers().map(str) | st.integers(-(2**53), 2**53).map(float),
    FieldType.FLOAT: st.floats(allow_nan=False, allow_infinity=False)
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False).map(repr),
    FieldType.BOOL: st.booleans() | st.sampled_from(["true", "False", "YES", "no", "1", "0", 0, 1]),
    FieldType.DATE: st.dates() | st.dates().map(date.isoformat),
    FieldType.DATETIME: _datetimes | _datetimes.map(datetime.isoformat),
    FieldType.LIST_STRING: st.lists(st.text())
    | st.frozensets(st.text())
    | st.lists(st.text()).map(tuple),
    FieldType.LIST_INT: st.lists(st.integers() | st.integers().map(str)) | st.sets(st.integers()),
}


@given(
    st.sampled_from(list(FieldType)).flatmap(lambda t: st.tuples(st.just(t), ACCEPTED_BY_TYPE[t]))
)
def test_coerce_is_idempotent(case: tuple[FieldType, Any]) -> None:
    """coerce(t, coerce(t, v)) == coerce(t, v) for every accepted value."""
    field_type, value = case
    once = UTC_SCHEMA.coerce(field_type, value)
    twice = UTC_SCHEMA.coerce(field_type, once)
    assert twice == once
    assert type(twice) is type(once)


@given(st.integers())
def test_int_text_round_trips(n: int) -> None:
    """An int written as text coerces back to the same int."""
    assert SCHEMA.coerce("int", f" {n} ") == n


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_float_text_round_trips(x: float) -> None:
    """A float written with repr coerces back to the same float."""
    assert SCHEMA.coerce("float", repr(x)) == x


# --- serialization -----------------------------------------------------------------------------


def test_to_dict_and_from_dict_round_trip() -> None:
    """to_dict is JSON-safe and from_dict rebuilds an equal schema."""
    import json

    schema = Schema(
        {"age": int, "tags": "list[str]"},
        {"purchase": {"amount": "float"}, "signup": {}},
        timezone="Europe/Paris",
    )
    data = json.loads(json.dumps(schema.to_dict()))
    assert data == {
        "attributes": {"age": "int", "tags": "list[string]"},
        "events": {"purchase": {"amount": "float"}, "signup": {}},
        "timezone": "Europe/Paris",
    }
    assert Schema.from_dict(data) == schema
    ignoring = Schema({"a": "int"}, extra="ignore")
    assert ignoring.to_dict()["extra"] == "ignore"
    assert Schema.from_dict(ignoring.to_dict()) == ignoring


def test_from_dict_rejects_unknown_keys() -> None:
    """from_dict names an unknown key and suggests the right one."""
    with pytest.raises(SchemaError) as info:
        Schema.from_dict({"atributes": {}})
    assert info.value.message == (
        "unknown schema key 'atributes' (did you mean 'attributes'?); "
        "expected attributes, events, timezone, extra"
    )


def test_to_dict_rejects_unnamed_timezone() -> None:
    """A time zone without a name cannot be serialized."""
    with pytest.raises(SchemaError) as info:
        Schema(timezone=timezone(timedelta(hours=2))).to_dict()
    assert info.value.message == (
        "cannot serialize the time zone datetime.timezone(datetime.timedelta(seconds=7200)): "
        "declare it by name, such as 'Europe/Paris'"
    )
