"""What the reports share for display: HTML tables, durations, and data frames.

* :func:`html_table` renders every report's ``_repr_html_`` (a notebook's view), so
  the reports look alike and every string is escaped in one place;
* :func:`format_duration` shows a duration rounded to whole seconds, in the text
  tables and in HTML alike (the reports' values keep their microseconds);
* :class:`Frames` gives a report ``to_pandas()`` and ``to_polars()`` from one
  ``_columns()`` method, converted by :func:`segkit.interop.typed_frame`, so both
  libraries get the same columns and values; :func:`typed_columns` builds those
  columns and refuses two with one name.

>>> print(html_table(["Report: 1 row"], [("name", "l"), ("n", "r")], [["<b>&", "1"]]))
<table class="segkit-report">
<caption style="text-align:left">Report: 1 row</caption>
<thead><tr><th style="text-align:left">name</th><th style="text-align:right">n</th></tr></thead>
<tbody>
<tr><td style="text-align:left">&lt;b&gt;&amp;</td><td style="text-align:right">1</td></tr>
</tbody>
</table>

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from datetime import timedelta
from typing import Any, Final, TypeAlias

__all__ = ["Columns", "Frames", "format_duration", "html_table", "text_table", "typed_columns"]

#: Typed frame columns, ``{name: (kind, values)}`` (kinds: see :func:`segkit.interop.typed_frame`).
Columns: TypeAlias = dict[str, tuple[str, list[Any]]]

_ALIGN: Final = {"l": "left", "r": "right"}
_MICROSECONDS: Final = 1_000_000


def format_duration(value: timedelta | None) -> str:
    """A duration rounded to the nearest whole second (halves up), as ``str(timedelta)`` shows it.

    ``None`` (no sample) is ``"-"``.

    >>> format_duration(timedelta(days=1, hours=2, minutes=3, seconds=4, microseconds=623456))
    '1 day, 2:03:05'
    >>> format_duration(timedelta(seconds=-90.4)), format_duration(None)
    ('-0:01:30', '-')
    """
    if value is None:
        return "-"
    us = value // timedelta(microseconds=1)
    sign = "-" if us < 0 else ""
    seconds = (abs(us) + _MICROSECONDS // 2) // _MICROSECONDS
    return f"{sign}{timedelta(seconds=seconds)}"


def _cell(tag: str, text: str, align: str) -> str:
    return f'<{tag} style="text-align:{_ALIGN[align]}">{html.escape(text)}</{tag}>'


def html_table(
    caption: Sequence[str],
    columns: Sequence[tuple[str, str]],
    rows: Iterable[Sequence[str]],
    notes: Sequence[str] = (),
) -> str:
    """A compact HTML table: caption lines, a header row, one row per item, notes below.

    ``columns`` are ``(title, align)`` pairs, ``align`` ``"l"`` (text) or ``"r"``
    (numbers); ``rows`` hold the cells as text. Every caption line, title, cell
    and note is escaped with :func:`html.escape`. Without rows there is no header
    either: the caption says it all.

    >>> print(html_table(["Nothing here"], [("name", "l")], [], notes=["a <note>"]))
    <table class="segkit-report">
    <caption style="text-align:left">Nothing here</caption>
    <tfoot><tr><td colspan="1" style="text-align:left">a &lt;note&gt;</td></tr></tfoot>
    </table>
    """
    lines = [
        '<table class="segkit-report">',
        '<caption style="text-align:left">'
        + "<br>".join(html.escape(line) for line in caption)
        + "</caption>",
    ]
    body = [
        "<tr>"
        + "".join(_cell("td", cell, a) for cell, (_, a) in zip(row, columns, strict=True))
        + "</tr>"
        for row in rows
    ]
    if body:
        head = "".join(_cell("th", title, a) for title, a in columns)
        lines += [f"<thead><tr>{head}</tr></thead>", "<tbody>", *body, "</tbody>"]
    if notes:
        foot = "".join(
            f'<tr><td colspan="{len(columns)}" style="text-align:left">{html.escape(note)}</td></tr>'
            for note in notes
        )
        lines.append(f"<tfoot>{foot}</tfoot>")
    lines.append("</table>")
    return "\n".join(lines)


def text_table(
    head: Sequence[str],
    columns: Sequence[tuple[str, str]],
    rows: Sequence[Sequence[str]],
    notes: Sequence[str] = (),
) -> str:
    """The plain-text twin of :func:`html_table`: head lines, then aligned columns.

    Columns are two spaces apart and indented by two; ``"r"`` columns are aligned
    right. Without rows only the head lines (and notes) are shown.

    >>> print(text_table(["Report: 2 rows"], [("name", "l"), ("n", "r")], [["a", "1"], ["bb", "10"]]))
    Report: 2 rows
      name   n
      a      1
      bb    10
    """
    lines = list(head)
    if rows:
        widths = [
            max(len(title), *(len(row[i]) for row in rows)) for i, (title, _) in enumerate(columns)
        ]
        for cells in [[title for title, _ in columns], *rows]:
            parts = [
                cell.rjust(width) if align == "r" else cell.ljust(width)
                for cell, width, (_, align) in zip(cells, widths, columns, strict=True)
            ]
            lines.append(("  " + "  ".join(parts)).rstrip())
    lines += [f"  {note}" for note in notes]
    return "\n".join(lines)


def typed_columns(items: Iterable[tuple[str, str, list[Any]]]) -> Columns:
    """``{name: (kind, values)}`` from ``(name, kind, values)`` triples, refusing a repeated name.

    A segment or metric named like another column (``"count"``, ``"share"``, …)
    would silently replace it: that is an error instead.

    >>> typed_columns([("segment", "str", ["a"]), ("n", "int", [1])])
    {'segment': ('str', ['a']), 'n': ('int', [1])}
    >>> typed_columns([("count", "bool", [True]), ("count", "int", [1])])
    Traceback (most recent call last):
    ...
    ValueError: two columns of the frame would be named 'count': rename the segment or metric
    """
    out: Columns = {}
    for name, kind, values in items:
        if name in out:
            raise ValueError(
                f"two columns of the frame would be named {name!r}: rename the segment or metric"
            )
        out[name] = (kind, values)
    return out


class Frames:
    """``to_pandas()`` and ``to_polars()`` for a report with a ``_columns()`` method.

    pandas and polars are imported when called; when one is missing,
    ``ImportError`` names the extra that installs it.

    >>> import segkit as sk
    >>> engine = sk.Engine(sk.Schema(attributes={}))
    >>> _ = engine.define_static("old", [])
    >>> engine.hygiene(kinds=["empty"]).to_pandas()[["kind", "segment", "size"]]
        kind segment  size
    0  empty     old     0
    >>> engine.hygiene(kinds=["empty"]).to_polars()["detail"].to_list()
    ['has no members']

    .. versionadded:: 0.1.0
    """

    __slots__ = ()

    def _columns(self) -> Columns:
        raise NotImplementedError  # pragma: no cover - every report defines it

    def to_pandas(self) -> Any:
        """The report as a pandas DataFrame, one row per item (needs ``segkit[pandas]``).

        >>> import segkit as sk
        >>> engine = sk.Engine(sk.Schema(attributes={}))
        >>> _ = engine.define_static("old", [])
        >>> list(engine.hygiene(kinds=["empty"]).to_pandas().columns)
        ['kind', 'segment', 'size', 'detail', 'other', 'jaccard', 'last_saved']
        """
        from segkit.interop import typed_frame

        return typed_frame(self._columns(), "pandas", caller="to_pandas()")

    def to_polars(self) -> Any:
        """The report as a polars DataFrame, one row per item (needs ``segkit[polars]``).

        >>> import segkit as sk
        >>> engine = sk.Engine(sk.Schema(attributes={}))
        >>> _ = engine.define_static("old", [])
        >>> engine.hygiene(kinds=["empty"]).to_polars().columns
        ['kind', 'segment', 'size', 'detail', 'other', 'jaccard', 'last_saved']
        """
        from segkit.interop import typed_frame

        return typed_frame(self._columns(), "polars", caller="to_polars()")
