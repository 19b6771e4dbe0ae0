"""The versioned, JSON-safe dict form of rules (``Rule.to_dict`` / ``Rule.from_dict``).

Format version 1::

    {"segkit_rule": 1, "text": "<canonical text>", "expr": <node>}

Each node is ``{"type": <snake_case node name>, <field>: <value>, ...}``. Literal
values are JSON scalars, except dates (``{"date": "2024-01-31"}``) and datetimes
(``{"datetime": "2024-01-31T10:00:00+00:00"}``); durations are their text
(``"30d"``). ``text`` is informative: loading reads ``expr``.

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, Final

import attrs

from segkit.dsl import ast
from segkit.dsl.parser import MAX_DEPTH, compile_regex
from segkit.errors import RuleSyntaxError
from segkit.hashing import BUCKETS
from segkit.timeutil import Duration

if TYPE_CHECKING:
    from segkit.dsl.rule import Rule

__all__ = ["FORMAT_VERSION", "rule_from_dict", "rule_to_dict"]

#: Version of the dict format written by :func:`rule_to_dict`.
FORMAT_VERSION: Final = 1

_NODE_TYPES: Final[dict[str, type[ast.Node]]] = {
    "and": ast.And,
    "or": ast.Or,
    "not": ast.Not,
    "compare": ast.Compare,
    "in_list": ast.InList,
    "between": ast.Between,
    "string_op": ast.StringOp,
    "matches": ast.Matches,
    "is_known": ast.IsKnown,
    "has_list": ast.HasList,
    "in_last": ast.InLast,
    "time_compare": ast.TimeCompare,
    "more_than_ago": ast.MoreThanAgo,
    "in_segment": ast.InSegment,
    "bucket": ast.Bucket,
    "did": ast.Did,
    "sequence": ast.Sequence,
    "seq_step": ast.SeqStep,
    "first_time": ast.FirstTime,
    "aggregate": ast.Aggregate,
    "last_window": ast.LastWindow,
    "between_window": ast.BetweenWindow,
}
_TYPE_NAMES: Final = {cls: name for name, cls in _NODE_TYPES.items()}
_NODE_FIELDS: Final = {"items", "operand", "where", "window", "steps"}
_DURATION_FIELDS: Final = {"duration", "within"}
_STR_FIELDS: Final = {"field", "op", "event", "segment", "salt", "pattern", "flags", "mode", "func"}
_OPTIONAL_STR_FIELDS: Final = {"prop", "count_op"}
_OPTIONAL_FIELDS: Final = {"prop", "count_op", "count"}
_EXPR_FIELDS: Final = {"operand", "where"}
_EXPR_TYPES: Final = (
    ast.And,
    ast.Or,
    ast.Not,
    *ast.FIELD_NODES,
    ast.InSegment,
    ast.Bucket,
    ast.Did,
    ast.Sequence,
    ast.FirstTime,
    ast.Aggregate,
)


def _value_to_json(value: Any) -> Any:
    if isinstance(value, datetime):
        return {"datetime": value.isoformat()}
    if isinstance(value, date):
        return {"date": value.isoformat()}
    if isinstance(value, tuple):
        return [_value_to_json(v) for v in value]
    return value


def _node_to_dict(node: ast.Node) -> dict[str, Any]:
    out: dict[str, Any] = {"type": _TYPE_NAMES[type(node)]}
    for field in attrs.fields(type(node)):
        if field.name == "span":
            continue
        value = getattr(node, field.name)
        if field.name in _NODE_FIELDS:
            if value is None:
                out[field.name] = None
            elif isinstance(value, tuple):
                out[field.name] = [_node_to_dict(v) for v in value]
            else:
                out[field.name] = _node_to_dict(value)
        elif isinstance(value, Duration):
            out[field.name] = str(value)
        else:
            out[field.name] = _value_to_json(value)
    return out


def rule_to_dict(rule: Rule) -> dict[str, Any]:
    """See :meth:`segkit.Rule.to_dict`."""
    return {"segkit_rule": FORMAT_VERSION, "text": str(rule), "expr": _node_to_dict(rule.expr)}


class _Loader:
    def __init__(self) -> None:
        self.path: list[str] = []

    def fail(self, message: str) -> RuleSyntaxError:
        where = "".join(self.path)
        return RuleSyntaxError(f"invalid rule dict{' at ' + where if where else ''}: {message}")

    def value(self, raw: Any, *, allow_list: bool = False) -> Any:
        if isinstance(raw, (bool, int, str)):
            return raw
        if isinstance(raw, float):
            if not math.isfinite(raw):
                raise self.fail(f"numbers must be finite, got {raw!r}")
            return raw
        if isinstance(raw, Mapping) and len(raw) == 1:
            ((kind, text),) = raw.items()
            if kind in ("date", "datetime") and isinstance(text, str):
                try:
                    return (
                        date.fromisoformat(text) if kind == "date" else datetime.fromisoformat(text)
                    )
                except ValueError:
                    raise self.fail(f"invalid {kind} {text!r}") from None
        if allow_list and isinstance(raw, list):
            return tuple(self.value(v) for v in raw)
        raise self.fail(f"unsupported value {raw!r}")

    def node(self, raw: Any, depth: int) -> ast.Node:
        if depth > MAX_DEPTH * 2:
            raise self.fail(f"rule nests deeper than {MAX_DEPTH} levels")
        if not isinstance(raw, Mapping):
            raise self.fail(f"expected a node object, got {type(raw).__name__}")
        type_name = raw.get("type")
        cls = _NODE_TYPES.get(type_name) if isinstance(type_name, str) else None
        if cls is None:
            raise self.fail(f"unknown node type {type_name!r}")
        kwargs: dict[str, Any] = {}
        fields = {f.name: f for f in attrs.fields(cls) if f.name != "span"}
        unknown = set(raw) - set(fields) - {"type"}
        if unknown:
            raise self.fail(f"unknown keys {sorted(unknown)} for {type_name!r}")
        for name, field in fields.items():
            if name not in raw:
                if field.default is attrs.NOTHING:
                    raise self.fail(f"missing {name!r} for {type_name!r}")
                continue
            item = raw[name]
            self.path.append(f".{name}")
            if name in _NODE_FIELDS:
                if item is None:
                    kwargs[name] = None
                elif name in ("items", "steps"):
                    if not isinstance(item, list):
                        raise self.fail("expected a list of nodes")
                    kwargs[name] = tuple(self._indexed(i, v, depth) for i, v in enumerate(item))
                else:
                    kwargs[name] = self.node(item, depth + 1)
            elif name in _DURATION_FIELDS:
                try:
                    kwargs[name] = Duration.parse(item) if isinstance(item, str) else None
                except ValueError as exc:
                    raise self.fail(str(exc)) from None
                if kwargs[name] is None:
                    raise self.fail(f"expected a duration such as '30d', got {item!r}")
            elif item is None and name in _OPTIONAL_FIELDS:
                kwargs[name] = None
            else:
                kwargs[name] = self.value(item, allow_list=name == "values")
            self._check_field_type(name, kwargs[name])
            self.path.pop()
        try:
            node = cls(**kwargs)
        except (TypeError, ValueError) as exc:
            raise self.fail(str(exc)) from None
        self.validate(node)
        return node

    def _check_field_type(self, name: str, value: Any) -> None:
        expected: type | tuple[type, ...] | None = None
        if name in _STR_FIELDS:
            expected = str
        elif name in _OPTIONAL_STR_FIELDS:
            expected = (str, type(None))
        elif name in ("negated", "case_insensitive"):
            expected = bool
        elif name in _EXPR_FIELDS:
            expected = _EXPR_TYPES if name != "where" else (*_EXPR_TYPES, type(None))
        elif name == "window":
            expected = (ast.LastWindow, ast.BetweenWindow, type(None))
        if expected is not None and not isinstance(value, expected):
            raise self.fail(f"unexpected {type(value).__name__} value {value!r}")
        if name == "items" and not all(isinstance(v, _EXPR_TYPES) for v in value):
            raise self.fail("expected a list of conditions")
        if name == "steps" and not all(isinstance(v, ast.SeqStep) for v in value):
            raise self.fail("expected a list of 'seq_step' nodes")
        if name in ("start", "end") and not isinstance(value, date):
            raise self.fail(f"expected a date or datetime, got {value!r}")

    def _indexed(self, i: int, raw: Any, depth: int) -> ast.Node:
        self.path.append(f"[{i}]")
        node = self.node(raw, depth + 1)
        self.path.pop()
        return node

    def validate(self, node: ast.Node) -> None:
        """Check what the parser would have refused, so every loaded rule prints and re-parses."""
        checks: list[tuple[bool, str]] = []
        if isinstance(node, (ast.And, ast.Or)):
            checks.append((len(node.items) >= 2, "'and'/'or' need at least two items"))
        if isinstance(node, (ast.Compare, ast.Aggregate)):
            checks.append((node.op in ast.COMPARE_OPS, f"unknown operator {node.op!r}"))
        if isinstance(node, ast.StringOp):
            checks.append((node.op in ast.STRING_OPS, f"unknown string operator {node.op!r}"))
            checks.append((isinstance(node.value, str), "a string operator needs a string"))
        if isinstance(node, ast.HasList):
            checks.append((node.mode in ast.HAS_MODES, f"unknown mode {node.mode!r}"))
        if isinstance(node, ast.TimeCompare):
            checks.append((node.op in ("before", "after"), f"unknown operator {node.op!r}"))
            checks.append((isinstance(node.value, date), "before/after need a date"))
        if isinstance(node, ast.Matches):
            ok = all(f in ast.REGEX_FLAGS for f in node.flags) and node.flags == "".join(
                f for f in ast.REGEX_FLAGS if f in node.flags
            )
            checks.append((ok, f"bad regex flags {node.flags!r}"))
            if ok:
                try:
                    compile_regex(node.pattern, node.flags)
                except ValueError as exc:
                    checks.append((False, str(exc)))
        if isinstance(node, ast.Bucket):
            ok = (
                isinstance(node.low, int)
                and isinstance(node.high, int)
                and 0 <= node.low <= node.high < BUCKETS
            )
            checks.append((ok, "bucket range must satisfy 0 <= low <= high <= 9999"))
        if isinstance(node, ast.Did) and (node.count_op is None) != (node.count is None):
            checks.append((False, "'count_op' and 'count' go together"))
        if isinstance(node, ast.Did) and node.count_op is not None:
            checks.append((node.count_op in ast.COMPARE_OPS, f"unknown operator {node.count_op!r}"))
            ok = (
                isinstance(node.count, int) and not isinstance(node.count, bool) and node.count >= 0
            )
            checks.append((ok, "a count must be a whole number >= 0"))
        if isinstance(node, ast.Aggregate):
            checks.append((node.func in ast.AGGREGATE_FUNCS, f"unknown function {node.func!r}"))
            checks.append(
                ((node.prop is None) == (node.func == "count"), "only count() takes no property")
            )
        if isinstance(node, ast.Sequence):
            checks.append((len(node.steps) >= 2, "a sequence needs at least two steps"))
        for ok, message in checks:
            if not ok:
                raise self.fail(message)


def rule_from_dict(data: Mapping[str, Any]) -> Rule:
    """See :meth:`segkit.Rule.from_dict`."""
    from segkit.dsl.rule import Rule

    loader = _Loader()
    if not isinstance(data, Mapping):
        raise loader.fail(f"expected a dict, got {type(data).__name__}")
    version = data.get("segkit_rule")
    if version != FORMAT_VERSION:
        if isinstance(version, int) and version > FORMAT_VERSION:
            raise loader.fail(
                f"format version {version} is newer than this segkit understands"
                f" ({FORMAT_VERSION}); upgrade segkit"
            )
        raise loader.fail(f"expected 'segkit_rule': {FORMAT_VERSION}, got {version!r}")
    loader.path.append("expr")
    expr = loader.node(data.get("expr"), 0)
    return Rule(expr)  # type: ignore[arg-type]
