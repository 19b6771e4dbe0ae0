"""Type-check a rule against a :class:`~segkit.schema.Schema`.

Finds unknown attributes, events and properties (with "did you mean" above a
similarity threshold), values of the wrong type, operators that do not apply to a
type (``tags > 3``), empty ranges and naive datetimes without a schema time zone.

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from segkit._suggest import suggest
from segkit.dsl import ast
from segkit.dsl.printer import format_name
from segkit.errors import (
    RuleError,
    RuleTypeError,
    Span,
    UnknownAttributeError,
    UnknownEventError,
    UnknownPropertyError,
)

if TYPE_CHECKING:
    from segkit.dsl.rule import Rule, RuleLike
    from segkit.schema import FieldType, Schema

__all__ = ["check", "iter_type_errors"]


def _describe(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, datetime):
        return "a datetime"
    if isinstance(value, date):
        return "a date"
    return type(value).__name__


class _Checker:
    def __init__(self, rule: Rule, schema: Schema) -> None:
        self.rule = rule
        self.source = rule.source
        self.schema = schema
        self.errors: list[RuleError] = []

    def span(self, node: ast.Node) -> Span | None:
        return node.span if self.source else None

    def error(
        self, node: ast.Node, message: str, cls: type[RuleTypeError] = RuleTypeError, **kw: Any
    ) -> None:
        self.errors.append(cls(message, self.source, self.span(node), **kw))

    def field_span(self, node: ast.Node, name: str) -> Span | None:
        """Span of just the field name at the start of ``node`` (for unknown-name carets)."""
        if not self.source:
            return None
        start = node.span.start
        text = self.source[start : start + len(name) + 2]
        width = len(name) + 2 if text.startswith("`") else len(name)
        return Span(start, start + width)

    # --- walking ---------------------------------------------------------------------------

    def walk(self, node: ast.Node, event: str | None) -> None:
        if isinstance(node, ast.FIELD_NODES):
            self.check_field(node, event)
            return
        if isinstance(node, (ast.Did, ast.FirstTime, ast.Aggregate)):
            if self.check_event(node, node.event):
                if node.where is not None:
                    self.walk(node.where, node.event)
                if isinstance(node, ast.Aggregate):
                    self.check_aggregate(node)
            if node.window is not None:
                self.check_window(node.window)
            return
        if isinstance(node, ast.Sequence):
            for step in node.steps:
                if self.check_event(step, step.event) and step.where is not None:
                    self.walk(step.where, step.event)
            if node.window is not None:
                self.check_window(node.window)
            return
        for child in node.children():
            self.walk(child, event)

    def name_span(self, node: ast.Node, name: str, skip: int = 0) -> Span | None:
        """Span of ``name`` written as a whole word (or in backquotes) inside ``node``."""
        if not self.source:
            return None
        text = self.source[node.span.start : node.span.end]
        pattern = (
            rf"`{re.escape(format_name(name)[1:-1])}`"
            if format_name(name) != name
            else (rf"(?<![A-Za-z0-9_]){re.escape(name)}(?![A-Za-z0-9_])")
        )
        m = re.compile(pattern).search(text, skip)
        if m is None:
            return node.span
        return Span(node.span.start + m.start(), node.span.start + m.end())

    def check_event(self, node: ast.Node, name: str) -> bool:
        if self.schema.has_event(name):
            return True
        hint = suggest(name, self.schema.events)
        skip = 0 if isinstance(node, ast.SeqStep) else 3  # past "did" / "sum(" …
        self.errors.append(
            UnknownEventError(
                f"unknown event {name!r}",
                self.source,
                self.name_span(node, name, skip),
                suggestion=hint,
            )
        )
        return False

    def check_window(self, window: ast.Window) -> None:
        if isinstance(window, ast.BetweenWindow):
            for bound in (window.start, window.end):
                self.check_naive(window, bound)
            if _comparable(window.start, window.end) and _gt(window.start, window.end):
                self.error(window, "empty window: the start is after the end")

    def check_naive(self, node: ast.Node, value: Any) -> None:
        if isinstance(value, datetime) and value.tzinfo is None and self.schema.tz is None:
            self.error(
                node,
                f"datetime {value.isoformat()} has no time zone and the schema declares none"
                " (add Z or +HH:MM, or declare Schema(timezone=...))",
            )

    def check_aggregate(self, node: ast.Aggregate) -> None:
        if node.prop is None:
            return
        ftype = self.schema.property_type(node.event, node.prop)
        if ftype is None:
            props = self.schema.events[node.event].properties
            event_span = self.name_span(node, node.event, 3)
            skip = event_span.end - node.span.start if event_span is not None else 0
            self.errors.append(
                UnknownPropertyError(
                    f"event {node.event!r} has no property {node.prop!r}",
                    self.source,
                    self.name_span(node, node.prop, skip),
                    suggestion=suggest(node.prop, props),
                )
            )
            return
        if not ftype.is_numeric:
            self.error(
                node,
                f"{node.func}() needs a numeric property, but {node.event}.{node.prop} is {ftype}",
            )

    def check_field(self, node: Any, event: str | None) -> None:
        name: str = node.field
        if event is None:
            ftype = self.schema.attribute_type(name)
            what = f"attribute {name!r}"
            if ftype is None:
                hint = suggest(name, self.schema.attributes)
                self.errors.append(
                    UnknownAttributeError(
                        f"unknown attribute {name!r}",
                        self.source,
                        self.field_span(node, name),
                        suggestion=hint,
                    )
                )
                return
        else:
            ftype = self.schema.property_type(event, name)
            what = f"property {name!r} of {event!r}"
            if ftype is None:
                props = self.schema.events[event].properties
                self.errors.append(
                    UnknownPropertyError(
                        f"event {event!r} has no property {name!r}",
                        self.source,
                        self.field_span(node, name),
                        suggestion=suggest(name, props),
                    )
                )
                return
        self.check_node_type(node, ftype, f"{ftype} {what}")

    def check_node_type(self, node: Any, ftype: FieldType, what: str) -> None:
        if isinstance(node, ast.IsKnown):
            return
        if isinstance(node, ast.HasList):
            if not ftype.is_list:
                self.error(
                    node, f"'has {node.mode}' applies to list attributes; {what} is not a list"
                )
                return
            for v in node.values:
                self.check_value(node, ftype.element, v, what)
            return
        if ftype.is_list:
            op = _op_word(node)
            self.error(
                node,
                f"'{op}' does not apply to {what}; use 'has any', 'has all' or 'has none'",
                suggestion="has any",
            )
            return
        if isinstance(node, (ast.StringOp, ast.Matches)):
            if ftype.value != "string":
                self.error(node, f"'{_op_word(node)}' applies to strings; {what} is not a string")
            return
        if isinstance(node, (ast.InLast, ast.MoreThanAgo, ast.TimeCompare)):
            if not ftype.is_temporal:
                self.error(
                    node, f"'{_op_word(node)}' applies to dates and datetimes, not to {what}"
                )
            elif isinstance(node, ast.TimeCompare):
                self.check_value(node, ftype, node.value, what)
            return
        if isinstance(node, ast.Compare):
            if ftype.value == "bool" and node.op not in ("=", "!="):
                self.error(node, f"'{node.op}' does not apply to {what}; use = or !=")
                return
            self.check_value(node, ftype, node.value, what)
            return
        if isinstance(node, ast.InList):
            for v in node.values:
                self.check_value(node, ftype, v, what)
            return
        if isinstance(node, ast.Between):
            if not ftype.is_orderable:
                self.error(node, f"'between' does not apply to {what}")
                return
            ok_low = self.check_value(node, ftype, node.low, what)
            ok_high = self.check_value(node, ftype, node.high, what)
            if ok_low and ok_high and _comparable(node.low, node.high) and _gt(node.low, node.high):
                self.error(
                    node,
                    f"empty range: {_show(node.low)} is greater than {_show(node.high)}",
                    suggestion=f"between {_show(node.high)} and {_show(node.low)}",
                )

    def check_value(self, node: ast.Node, ftype: FieldType, value: Any, what: str) -> bool:
        kind = ftype.value
        ok: bool
        if kind == "string":
            ok = isinstance(value, str)
        elif kind in ("int", "float"):
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        elif kind == "bool":
            ok = isinstance(value, bool)
        elif kind == "date":
            ok = isinstance(value, date) and not isinstance(value, datetime)
            if not ok and isinstance(value, datetime):
                self.error(
                    node,
                    f"{what} holds dates; compare it with a date such as @{value.date().isoformat()}",
                    suggestion=f"@{value.date().isoformat()}",
                )
                return False
        elif kind == "datetime":
            ok = isinstance(value, date)
            if ok:
                self.check_naive(node, value)
        else:  # pragma: no cover - all scalar kinds handled above
            ok = False
        if not ok:
            self.error(node, f"cannot compare {what} with {_describe(value)} ({_show(value)})")
        return ok


def _show(value: Any) -> str:
    from segkit.dsl.printer import format_value

    try:
        return format_value(value)
    except (TypeError, ValueError):
        return repr(value)


def _comparable(a: Any, b: Any) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return not isinstance(a, bool) and not isinstance(b, bool)
    if isinstance(a, datetime) and isinstance(b, datetime):
        return (a.tzinfo is None) == (b.tzinfo is None)
    if isinstance(a, datetime) or isinstance(b, datetime):
        return False
    return type(a) is type(b) and isinstance(a, (str, date))


def _gt(a: Any, b: Any) -> bool:
    return bool(a > b)


def _op_word(node: Any) -> str:
    if isinstance(node, ast.Compare):
        return str(node.op)
    if isinstance(node, ast.InList):
        return "not in" if node.negated else "in"
    if isinstance(node, ast.Between):
        return "between"
    if isinstance(node, ast.StringOp):
        return ("i" if node.case_insensitive else "") + node.op
    if isinstance(node, ast.Matches):
        return "matches"
    if isinstance(node, ast.InLast):
        return "in last"
    if isinstance(node, ast.MoreThanAgo):
        return "more than … ago"
    if isinstance(node, ast.TimeCompare):
        return str(node.op)
    return type(node).__name__


def iter_type_errors(rule: Rule, schema: Schema) -> Iterator[RuleError]:
    """Yield every type error of ``rule`` against ``schema``, in source order."""
    checker = _Checker(rule, schema)
    checker.walk(rule.expr, None)
    yield from sorted(checker.errors, key=lambda e: (e.span or Span(0, 0)).start)


def check(rule: RuleLike, schema: Schema) -> Rule:
    """Type-check ``rule`` against ``schema``; return it, or raise the first :class:`RuleTypeError`.

    >>> import segkit as sk
    >>> schema = sk.Schema(attributes={"country": "string", "age": "int"})
    >>> sk.check('contry = "FR"', schema)
    Traceback (most recent call last):
    ...
    segkit.errors.UnknownAttributeError: unknown attribute 'contry' (line 1, column 1)
      contry = "FR"
      ^^^^^^
      hint: did you mean 'country'?
    >>> sk.check('age > 30', schema)
    Rule('age > 30')

    .. versionadded:: 0.1.0
    """
    from segkit.dsl.rule import as_rule

    checked = as_rule(rule)
    for error in iter_type_errors(checked, schema):
        raise error
    return checked
