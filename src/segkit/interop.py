"""Data frames in and out: pandas, polars and pyarrow, imported only when used.

segkit depends on none of them. A function here receives a frame, recognises its
library by the type's module, and asks that library (already imported by the
caller) for plain Python rows: ``None`` for missing cells, ``int``/``float``/
``str``/``bool``/``date``/``datetime`` and lists for the values.

>>> import pyarrow as pa
>>> frame_rows(pa.table({"key": ["a", "b"], "age": [31, None]}))
[{'key': 'a', 'age': 31}, {'key': 'b', 'age': None}]
>>> frame_rows([{"key": "a"}])
Traceback (most recent call last):
...
TypeError: expected a pandas, polars or pyarrow table, got list

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any

__all__ = [
    "frame_columns",
    "frame_library",
    "frame_rows",
    "is_frame",
    "make_frame",
    "typed_frame",
]

_LIBRARIES = ("pandas", "polars", "pyarrow")


def frame_library(frame: object) -> str | None:
    """``"pandas"``, ``"polars"`` or ``"pyarrow"`` for a table of that library, else None.

    >>> import polars as pl
    >>> frame_library(pl.DataFrame({"a": [1]})), frame_library({"a": [1]})
    ('polars', None)
    """
    module = type(frame).__module__.split(".", 1)[0]
    if module not in _LIBRARIES:
        return None
    name = type(frame).__name__
    if module == "pyarrow":
        return module if name in ("Table", "RecordBatch") else None
    return module if name == "DataFrame" else None


def is_frame(value: object) -> bool:
    """Whether ``value`` is a pandas or polars DataFrame or a pyarrow Table/RecordBatch.

    >>> import pandas as pd
    >>> is_frame(pd.DataFrame({"a": [1]})), is_frame([{"a": 1}])
    (True, False)
    """
    return frame_library(value) is not None


def frame_columns(frame: Any) -> list[str]:
    """The column names of ``frame``, as strings, in order.

    >>> import pandas as pd
    >>> frame_columns(pd.DataFrame({"key": ["a"], "age": [3]}))
    ['key', 'age']
    """
    library = frame_library(frame)
    if library is None:
        raise TypeError(f"expected a pandas, polars or pyarrow table, got {type(frame).__name__}")
    names = frame.column_names if library == "pyarrow" else list(frame.columns)
    return [str(name) for name in names]


def frame_rows(frame: Any) -> list[dict[str, Any]]:
    """The rows of ``frame`` as dicts of plain Python values (``None`` when missing).

    pandas' ``NaN``/``NaT``/``None`` all become ``None``; numpy scalars and arrays
    become Python numbers and lists; pandas ``Timestamp`` stays a ``datetime``.

    >>> import pandas as pd
    >>> frame_rows(pd.DataFrame({"key": ["a", "b"], "ltv": [1.5, float("nan")]}))
    [{'key': 'a', 'ltv': 1.5}, {'key': 'b', 'ltv': None}]
    """
    library = frame_library(frame)
    if library is None:
        raise TypeError(f"expected a pandas, polars or pyarrow table, got {type(frame).__name__}")
    if library == "pyarrow":
        rows: list[dict[str, Any]] = frame.to_pylist()
    elif library == "polars":
        rows = frame.to_dicts()
    else:
        names = frame_columns(frame)
        rows = [
            {name: _plain(value) for name, value in zip(names, values, strict=True)}
            for values in frame.itertuples(index=False, name=None)
        ]
        return rows
    return [{str(k): _plain(v) for k, v in row.items()} for row in rows]


def _plain(value: Any) -> Any:
    """A plain Python value for one cell (numpy and pandas scalars unwrapped)."""
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        return None if math.isnan(value) else value
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    module = type(value).__module__.split(".", 1)[0]
    if module == "pandas":
        # NaT and NA are missing; a Timestamp is a datetime already
        if type(value).__name__ in ("NaTType", "NAType"):
            return None
        return value
    if module == "numpy" and hasattr(value, "tolist"):
        return _plain(value.tolist())  # a scalar (.tolist() gives the Python value) or an array
    if isinstance(value, (date, datetime)):
        return value
    return value


#: The extra of segkit that installs each library.
_EXTRAS = {"pandas": "pandas", "polars": "polars", "pyarrow": "arrow"}


def make_frame(columns: dict[str, list[Any]], library: str = "pandas") -> Any:
    """A table of ``library`` (``"pandas"``, ``"polars"`` or ``"pyarrow"``) from columns.

    The library is imported here; when it is missing, ``ImportError`` says what to
    install.

    >>> make_frame({"key": ["a"], "n": [1]}, "pyarrow").num_rows
    1
    >>> make_frame({"key": []}, "excel")
    Traceback (most recent call last):
    ...
    ValueError: library must be 'pandas', 'polars' or 'pyarrow', got 'excel'
    """
    if library not in _LIBRARIES:
        raise ValueError(f"library must be 'pandas', 'polars' or 'pyarrow', got {library!r}")
    module = _import_for(library, "this")
    if library == "pyarrow":
        return module.table(columns)
    return module.DataFrame(columns)


#: The kinds of column :func:`typed_frame` builds, and their polars types.
_POLARS_TYPES: dict[str, str] = {
    "int": "Int64",
    "float": "Float64",
    "str": "String",
    "bool": "Boolean",
    "datetime": "Datetime",
    "duration": "Duration",
    "list[str]": "List",
}


def _import_for(library: str, caller: str) -> Any:
    """``library`` imported, or ``ImportError`` naming ``caller`` and the extra to install."""
    try:
        return __import__(library)
    except ImportError:
        raise ImportError(
            f"{caller} needs {library}: pip install 'segkit[{_EXTRAS[library]}]'"
        ) from None


def typed_frame(
    columns: Mapping[str, tuple[str, Sequence[Any]]],
    library: str = "pandas",
    *,
    caller: str = "this",
) -> Any:
    """A pandas or polars DataFrame from typed columns: ``{name: (kind, values)}``.

    The reports' ``to_pandas()`` and ``to_polars()`` build their frames here, so
    both libraries get the same columns, in the same order, with the same values.
    ``kind`` is one of:

    ========== ======================================= ===========================
    kind       pandas dtype                            polars type
    ========== ======================================= ===========================
    int        ``int64`` (``Int64`` when a value is    ``Int64``
               ``None``)
    float      ``float64`` (``None`` is ``NaN``)       ``Float64`` (``None`` null)
    str        what pandas infers for text             ``String``
    bool       ``bool`` (``boolean`` with ``None``)    ``Boolean``
    datetime   ``datetime64[..., UTC]``                ``Datetime("us", "UTC")``
    duration   ``timedelta64[ns]``                     ``Duration("us")``
    list[str]  ``object`` (Python lists)               ``List(String)``
    ========== ======================================= ===========================

    The library is imported here; when it is missing, ``ImportError`` says that
    ``caller`` needs it and which extra installs it.

    >>> frame = typed_frame({"segment": ("str", ["a", "b"]), "n": ("int", [3, None])})
    >>> frame.dtypes.astype(str).to_dict()
    {'segment': 'str', 'n': 'Int64'}
    >>> typed_frame({"n": ("int", [3, None])}, "polars")["n"].to_list()
    [3, None]
    >>> typed_frame({"n": ("complex", [])})
    Traceback (most recent call last):
    ...
    ValueError: unknown column kind 'complex' for column 'n'
    """
    if library not in ("pandas", "polars"):
        raise ValueError(f"library must be 'pandas' or 'polars', got {library!r}")
    for name, (kind, _) in columns.items():
        if kind not in _POLARS_TYPES:
            raise ValueError(f"unknown column kind {kind!r} for column {name!r}")
    module = _import_for(library, caller)
    if library == "polars":
        series = [
            module.Series(name, list(values), dtype=_polars_type(module, kind))
            for name, (kind, values) in columns.items()
        ]
        return module.DataFrame(series)
    data = {name: _pandas_series(module, kind, values) for name, (kind, values) in columns.items()}
    return module.DataFrame(data)


def _polars_type(pl: Any, kind: str) -> Any:
    if kind == "datetime":
        return pl.Datetime("us", "UTC")
    if kind == "duration":
        return pl.Duration("us")
    if kind == "list[str]":
        return pl.List(pl.String)
    return getattr(pl, _POLARS_TYPES[kind])


def _pandas_series(pd: Any, kind: str, values: Sequence[Any]) -> Any:
    values = list(values)
    missing = any(v is None for v in values)
    if kind == "int":
        return pd.Series(values, dtype="Int64" if missing else "int64")
    if kind == "float":
        return pd.Series([math.nan if v is None else v for v in values], dtype="float64")
    if kind == "bool":
        return pd.Series(values, dtype="boolean" if missing else "bool")
    if kind == "datetime":
        return pd.to_datetime(pd.Series(values, dtype=object), utc=True)
    if kind == "duration":
        return pd.Series(values, dtype="timedelta64[ns]")
    if kind == "list[str]" or not values:
        return pd.Series(values, dtype=object)
    return pd.Series(values)  # text: what this pandas makes of strings
