"""Canonical printer: AST in, rule text out, such that ``parse(print(e)) == e``.

One spelling per construct: ``=`` (never ``==``), double-quoted strings, lower-case
keywords, single spaces, parentheses only where precedence or structure needs
them, names in backquotes when they are not plain identifiers or collide with a
keyword.

>>> from segkit.dsl.ast import And, Or, Compare, Not
>>> to_text(And((Or((Compare("a", "=", 1), Compare("b", "=", 2))), Not(Compare("c", "<", 3.5)))))
'(a = 1 or b = 2) and not c < 3.5'

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Any, Final

from segkit.dsl import ast
from segkit.dsl.tokens import KEYWORDS

__all__ = ["format_name", "format_value", "to_text"]

_IDENT_RE: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_STRING_ESCAPES: Final = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\t": "\\t", "\r": "\\r"}


def format_name(name: str) -> str:
    """A name as the parser reads it: bare when possible, else in backquotes.

    >>> format_name("age"), format_name("$el.text"), format_name("last")
    ('age', '`$el.text`', '`last`')
    """
    if _IDENT_RE.fullmatch(name) and name not in KEYWORDS:
        return name
    escaped = name.replace("\\", "\\\\").replace("`", "\\`")
    return "`" + _escape_controls(escaped) + "`"


def _escape_controls(text: str) -> str:
    out = []
    for ch in text:
        if ch in "\n\t\r":
            out.append(_STRING_ESCAPES[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return "".join(out)


def _format_string(text: str) -> str:
    out = ['"']
    for ch in text:
        if ch in _STRING_ESCAPES:
            out.append(_STRING_ESCAPES[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def format_value(value: Any) -> str:
    """A literal value in rule syntax.

    >>> format_value("a\\"b"), format_value(True), format_value(2.0), format_value(date(2024, 1, 31))
    ('"a\\\\"b"', 'true', '2.0', '@2024-01-31')
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"rule values must be finite numbers, got {value!r}")
        return repr(value)
    if isinstance(value, str):
        return _format_string(value)
    if isinstance(value, datetime):
        text = value.isoformat()
        if value.tzinfo is not None and value.utcoffset() == timedelta(0):
            text = value.replace(tzinfo=None).isoformat() + "Z"
        return "@" + text
    if isinstance(value, date):
        return "@" + value.isoformat()
    raise TypeError(f"cannot write {type(value).__name__} value {value!r} in a rule")


def _format_list(values: tuple[Any, ...]) -> str:
    return "[" + ", ".join(format_value(v) for v in values) + "]"


def _format_regex(pattern: str, flags: str) -> str:
    out = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern):
            out.append(pattern[i : i + 2])
            i += 2
            continue
        if ch == "/":
            out.append("\\/")
        elif ch == "\n":
            out.append("\\n")
        else:
            out.append(ch)
        i += 1
    return "/" + "".join(out) + "/" + flags


def _window(node: ast.Window | None) -> str:
    if node is None:
        return ""
    if isinstance(node, ast.LastWindow):
        return f" in last {node.duration}"
    return f" between {format_value(node.start)} and {format_value(node.end)}"


def _where(node: ast.Expr | None) -> str:
    if node is None:
        return ""
    return " where " + _operand(node, 3)


_PRECEDENCE: Final = {ast.Or: 1, ast.And: 2}


def _operand(node: ast.Expr, parent_power: int) -> str:
    """Print ``node`` as an operand of a construct binding at ``parent_power``."""
    power = _PRECEDENCE.get(type(node))
    text = to_text(node)
    if power is not None and power <= parent_power:
        return f"({text})"
    return text


def _not(node: ast.Not) -> str:
    if isinstance(node.operand, ast.InSegment):  # "not in segment" reads as the negated form
        return f"not ({to_text(node.operand)})"
    return "not " + _operand(node.operand, 3)


def _boolean(word: str, power: int) -> Callable[[Any], str]:
    def render(node: ast.And | ast.Or) -> str:
        return f" {word} ".join(_operand(item, power) for item in node.items)

    return render


def _compare(node: ast.Compare) -> str:
    return f"{format_name(node.field)} {node.op} {format_value(node.value)}"


def _in_list(node: ast.InList) -> str:
    word = "not in" if node.negated else "in"
    return f"{format_name(node.field)} {word} {_format_list(node.values)}"


def _between(node: ast.Between) -> str:
    word = "not between" if node.negated else "between"
    return (
        f"{format_name(node.field)} {word} {format_value(node.low)} and {format_value(node.high)}"
    )


def _string_op(node: ast.StringOp) -> str:
    op = ("i" if node.case_insensitive else "") + node.op
    if node.negated:
        op = "not " + op
    return f"{format_name(node.field)} {op} {_format_string(node.value)}"


def _matches(node: ast.Matches) -> str:
    word = "not matches" if node.negated else "matches"
    return f"{format_name(node.field)} {word} {_format_regex(node.pattern, node.flags)}"


def _is_known(node: ast.IsKnown) -> str:
    return f"{format_name(node.field)} is {'not ' if node.negated else ''}known"


def _has_list(node: ast.HasList) -> str:
    return f"{format_name(node.field)} has {node.mode} {_format_list(node.values)}"


def _in_last(node: ast.InLast) -> str:
    return f"{format_name(node.field)} {'not ' if node.negated else ''}in last {node.duration}"


def _time_compare(node: ast.TimeCompare) -> str:
    return f"{format_name(node.field)} {node.op} {format_value(node.value)}"


def _more_than_ago(node: ast.MoreThanAgo) -> str:
    return f"{format_name(node.field)} more than {node.duration} ago"


def _in_segment(node: ast.InSegment) -> str:
    return f"{'not ' if node.negated else ''}in segment {_format_string(node.segment)}"


def _bucket(node: ast.Bucket) -> str:
    return f"bucket({_format_string(node.salt)}) in {node.low}..{node.high}"


def _did(node: ast.Did) -> str:
    text = f"did {format_name(node.event)}{_where(node.where)}"
    if node.count_op is not None:
        text += f" {node.count_op} {node.count} times"
    return text + _window(node.window)


def _sequence(node: ast.Sequence) -> str:
    steps = " then ".join(f"{format_name(s.event)}{_where(s.where)}" for s in node.steps)
    return f"did {steps} within {node.within}{_window(node.window)}"


def _first_time(node: ast.FirstTime) -> str:
    return f"did {format_name(node.event)}{_where(node.where)} for the first time{_window(node.window)}"


def _aggregate(node: ast.Aggregate) -> str:
    target = format_name(node.event)
    if node.prop is not None:
        target += "." + format_name(node.prop)
    inner = f"{target}{_where(node.where)}{_window(node.window)}"
    return f"{node.func}({inner}) {node.op} {format_value(node.value)}"


_PRINTERS: Final[dict[type, Callable[[Any], str]]] = {
    ast.And: _boolean("and", 2),
    ast.Or: _boolean("or", 1),
    ast.Not: _not,
    ast.Compare: _compare,
    ast.InList: _in_list,
    ast.Between: _between,
    ast.StringOp: _string_op,
    ast.Matches: _matches,
    ast.IsKnown: _is_known,
    ast.HasList: _has_list,
    ast.InLast: _in_last,
    ast.TimeCompare: _time_compare,
    ast.MoreThanAgo: _more_than_ago,
    ast.InSegment: _in_segment,
    ast.Bucket: _bucket,
    ast.Did: _did,
    ast.Sequence: _sequence,
    ast.FirstTime: _first_time,
    ast.Aggregate: _aggregate,
}


def to_text(node: ast.Expr) -> str:
    """The canonical rule text of an expression.

    >>> from segkit.dsl.ast import Did, LastWindow
    >>> from segkit.timeutil import Duration
    >>> to_text(Did("cart_abandoned", None, ">=", 3, LastWindow(Duration(30, "d"))))
    'did cart_abandoned >= 3 times in last 30d'
    """
    try:
        printer = _PRINTERS[type(node)]
    except KeyError:
        raise TypeError(f"not a rule expression: {type(node).__name__}") from None
    return printer(node)
