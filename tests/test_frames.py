"""Data-frame input: upsert_frame, track_frame and Schema.infer over pandas/polars/pyarrow."""

from __future__ import annotations

from datetime import date, datetime, timezone
from typing import Any

import pandas as pd
import polars as pl
import pyarrow as pa
import pytest

import segkit as sk
from segkit.interop import frame_rows

SCHEMA = sk.Schema(
    attributes={
        "plan": "string",
        "age": "int",
        "ltv": "float",
        "signed_up": "date",
        "tags": "list[string]",
        "is_customer": "bool",
    },
    events={"purchase": {"amount": "float"}, "visit": {"url": "string"}},
    timezone="UTC",
)

DATA: dict[str, list[Any]] = {
    "key": ["a", "b", "c"],
    "plan": ["pro", None, "free"],
    "age": [31, 45, None],
    "ltv": [10.5, None, 0.0],
    "signed_up": [date(2024, 1, 31), date(2023, 5, 1), None],
    "tags": [["x", "y"], [], None],
    "is_customer": [True, False, None],
}
EXPECTED = {
    "a": {
        "plan": "pro",
        "age": 31,
        "ltv": 10.5,
        "signed_up": date(2024, 1, 31),
        "tags": ("x", "y"),
        "is_customer": True,
    },
    "b": {"age": 45, "signed_up": date(2023, 5, 1), "tags": (), "is_customer": False},
    "c": {"plan": "free", "ltv": 0.0},
}


def pandas_frame() -> Any:
    frame = pd.DataFrame(DATA)
    # pandas has no date type: a datetime64 column of midnights stands for dates
    frame["signed_up"] = pd.to_datetime(frame["signed_up"])
    return frame


MAKERS = {
    "pandas": pandas_frame,
    "polars": lambda: pl.DataFrame(DATA),
    "pyarrow": lambda: pa.table(DATA),
}


@pytest.mark.parametrize("library", sorted(MAKERS))
def test_upsert_frame_stores_each_row(library: str) -> None:
    engine = sk.Engine(SCHEMA)
    engine.upsert_frame(MAKERS[library]())
    assert {key: engine.get(key) for key in ("a", "b", "c")} == EXPECTED


@pytest.mark.parametrize("library", sorted(MAKERS))
def test_upsert_frame_skips_or_unsets_missing_cells(library: str) -> None:
    engine = sk.Engine(SCHEMA)
    engine.upsert("b", {"plan": "team", "ltv": 3.0})
    engine.upsert_frame(MAKERS[library]())
    assert engine.get("b") == {**EXPECTED["b"], "plan": "team", "ltv": 3.0}
    engine.upsert_frame(MAKERS[library](), nulls="unset")
    assert engine.get("b") == EXPECTED["b"]


def test_upsert_frame_returns_membership_changes() -> None:
    engine = sk.Engine(SCHEMA)
    engine.define("pro", 'plan = "pro"')
    change = engine.upsert_frame(pl.DataFrame({"key": ["a", "b"], "plan": ["pro", "free"]}))
    assert change.to_dict() == {"entered": {"pro": ["a"]}, "exited": {}}


def test_integer_keys_become_text() -> None:
    engine = sk.Engine(SCHEMA)
    engine.upsert_frame(pd.DataFrame({"id": [7, 12], "age": [1, 2]}), key="id")
    assert engine.get("7") == {"age": 1}
    assert engine.get("12") == {"age": 2}


def test_a_bad_cell_changes_nothing() -> None:
    engine = sk.Engine(SCHEMA)
    frame = pd.DataFrame({"key": ["a", "b"], "age": ["31", "old"]})
    with pytest.raises(sk.SchemaError) as error:
        engine.upsert_frame(frame)
    assert str(error.value) == "profile 'b': attribute 'age' expects int, got 'old' (str)"
    assert len(engine) == 0


def test_errors_name_the_column() -> None:
    engine = sk.Engine(SCHEMA)
    with pytest.raises(sk.SchemaError) as error:
        engine.upsert_frame(pd.DataFrame({"kye": ["a"]}))
    assert str(error.value) == (
        "the frame has no key column 'key' (did you mean 'kye'?); its columns: kye"
    )
    with pytest.raises(sk.SchemaError) as error:
        engine.upsert_frame(pd.DataFrame({"key": ["a", None]}))
    assert str(error.value) == "row 1: column 'key' must hold non-empty keys, got None"
    with pytest.raises(ValueError, match=r"^nulls must be 'skip' or 'unset', got 'drop'$"):
        engine.upsert_frame(pd.DataFrame({"key": ["a"]}), nulls="drop")
    with pytest.raises(TypeError, match=r"^expected a pandas, polars or pyarrow table, got dict$"):
        engine.upsert_frame({"key": ["a"]})
    with pytest.raises(sk.SchemaError, match=r"attribute 'colour'"):
        engine.upsert_frame(pd.DataFrame({"key": ["a"], "colour": ["red"]}))


def test_a_date_column_rejects_times_of_day() -> None:
    engine = sk.Engine(SCHEMA)
    frame = pd.DataFrame({"key": ["a"], "signed_up": pd.to_datetime(["2024-01-31 10:00"])})
    with pytest.raises(sk.SchemaError, match=r"a datetime is not a date"):
        engine.upsert_frame(frame)


EVENTS: dict[str, list[Any]] = {
    "key": ["a", "b", "a"],
    "event": ["visit", "purchase", "purchase"],
    "at": [
        datetime(2024, 6, 1, 10, tzinfo=timezone.utc),
        datetime(2024, 6, 2, 11, tzinfo=timezone.utc),
        datetime(2024, 6, 3, 12, tzinfo=timezone.utc),
    ],
    "url": ["/pricing", None, None],
    "amount": [None, 20.0, 5.5],
}


@pytest.mark.parametrize(
    "make",
    [
        lambda: pd.DataFrame(EVENTS),
        lambda: pl.DataFrame(EVENTS),
        lambda: pa.table(EVENTS),
    ],
    ids=["pandas", "polars", "pyarrow"],
)
def test_track_frame_records_each_row(make: Any) -> None:
    engine = sk.Engine(SCHEMA)
    engine.define("buyers", "did purchase")
    change = engine.track_frame(make())
    assert change.to_dict() == {"entered": {"buyers": ["a", "b"]}, "exited": {}}
    assert [(e.name, e.at.day, e.properties) for e in engine.events("a")] == [
        ("visit", 1, {"url": "/pricing"}),
        ("purchase", 3, {"amount": 5.5}),
    ]


def test_track_frame_with_one_event_name() -> None:
    engine = sk.Engine(SCHEMA)
    frame = pd.DataFrame({"who": ["a"], "when": pd.to_datetime(["2024-06-01"]), "amount": [3.0]})
    engine.track_frame(frame, key="who", at="when", event="purchase")
    assert [(e.name, e.at, e.properties) for e in engine.events("a")] == [
        ("purchase", datetime(2024, 6, 1, tzinfo=timezone.utc), {"amount": 3.0})
    ]


def test_track_frame_errors_change_nothing() -> None:
    engine = sk.Engine(SCHEMA)
    with pytest.raises(sk.SchemaError) as error:
        engine.track_frame(pd.DataFrame({"key": ["a"], "at": [1]}), event="buy")
    assert (
        str(error.value)
        == "event='buy' is neither a column ('key', 'at') nor an event of the schema"
    )
    with pytest.raises(sk.SchemaError) as error:
        engine.track_frame(pd.DataFrame({"key": ["a"], "event": ["visit"]}))
    assert str(error.value) == "the frame has no at column 'at'; its columns: key, event"
    bad = pd.DataFrame({"key": ["a", "b"], "event": ["visit", "visit"], "at": ["x", "y"]})
    with pytest.raises(sk.SchemaError) as error:
        engine.track_frame(bad)
    assert str(error.value) == "row 0 (key 'a'): column 'at' must hold datetimes, got 'x'"
    frame = pd.DataFrame(EVENTS)
    frame.loc[2, "amount"] = -1.0
    frame["event"] = ["visit", "purchase", "nope"]
    with pytest.raises(sk.SchemaError, match=r"nope"):
        engine.track_frame(frame)
    assert len(engine) == 0
    assert engine.events("a") == []


def test_frame_rows_unwraps_library_values() -> None:
    frame = pd.DataFrame(
        {
            "n": pd.array([1, None], dtype="Int64"),
            "t": pd.to_datetime(["2024-01-01", None]),
            "x": [1.5, float("nan")],
        }
    )
    rows = frame_rows(frame)
    assert rows == [
        {"n": 1, "t": datetime(2024, 1, 1), "x": 1.5},
        {"n": None, "t": None, "x": None},
    ]
    assert type(rows[0]["n"]) is int


@pytest.mark.parametrize("library", sorted(MAKERS))
def test_schema_infer_from_a_frame(library: str) -> None:
    schema = sk.Schema.infer(MAKERS[library](), key="key")
    expected = {
        "plan": "string",
        # pandas stores an int column with a missing value as floats, and dates as datetimes
        "age": "float" if library == "pandas" else "int",
        "ltv": "float",
        "signed_up": "datetime" if library == "pandas" else "date",
        "tags": "list[string]",
        "is_customer": "bool",
    }
    assert {name: str(t) for name, t in schema.attributes.items()} == expected


@pytest.mark.parametrize("library", ["pandas", "polars", "pyarrow"])
def test_members_to_frame(library: str) -> None:
    engine = sk.Engine(SCHEMA)
    engine.upsert_many({"a": {"age": 30}, "b": {"age": 12}, "c": {"age": 50}})
    frame = engine.query("age > 18").to_frame(library)
    assert frame_rows(frame) == [{"key": "a"}, {"key": "c"}]


def test_to_frame_names_the_extra_when_the_library_is_missing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import sys

    engine = sk.Engine(SCHEMA)
    monkeypatch.setitem(sys.modules, "polars", None)
    with pytest.raises(ImportError) as error:
        engine.query("age > 18").to_frame("polars")
    assert str(error.value) == "this needs polars: pip install 'segkit[polars]'"


def test_members_html() -> None:
    engine = sk.Engine(SCHEMA)
    engine.upsert_many({f"k<{i}>": {"age": i} for i in range(12)})
    html = engine.query("age >= 0")._repr_html_()
    assert html.startswith("<div><strong>Members</strong> (12 profiles)<ul>")
    assert "<li><code>k&lt;0&gt;</code></li>" in html
    assert html.endswith("<li>… 2 more</li></ul></div>")
