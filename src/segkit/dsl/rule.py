"""The :class:`Rule` value and the text entry points ``parse``, ``is_valid``, ``iter_errors``.

.. versionadded:: 0.1.0
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, Protocol, Union, runtime_checkable

import attrs

from segkit.dsl import ast
from segkit.dsl.parser import MAX_DEPTH, parse_expr, parse_expr_all
from segkit.dsl.printer import to_text
from segkit.errors import RuleError, RuleSyntaxError

if TYPE_CHECKING:
    from typing import TypeAlias

    from segkit.schema import Schema

__all__ = ["Rule", "RuleLike", "as_rule", "is_valid", "iter_errors", "parse"]


@runtime_checkable
class _ToRule(Protocol):
    def to_rule(self) -> Rule: ...


#: What every API that takes a rule accepts: rule text, a :class:`Rule`, or a builder.
RuleLike: TypeAlias = Union[str, "Rule", _ToRule]


def _check_depth(expr: ast.Expr) -> None:
    """Reject trees nested deeper than MAX_DEPTH (builder and dict input; text is checked while parsing)."""
    stack: list[tuple[ast.Node, int]] = [(expr, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH * 2:
            raise RuleSyntaxError(f"rule nests deeper than {MAX_DEPTH} levels")
        for child in node.children():
            stack.append((child, depth + 1))


@attrs.frozen(eq=False)
class Rule:
    """A parsed rule: an immutable AST (``expr``) plus the text it came from.

    Two rules are equal when their ASTs are equal (spans and source text are
    ignored), so ``parse(str(rule)) == rule`` for every rule. Combine rules with
    ``&``, ``|`` and ``~``.

    >>> import segkit as sk
    >>> r = sk.parse('country = "FR"  and age between 29 and 44')
    >>> str(r)
    'country = "FR" and age between 29 and 44'
    >>> sk.parse(str(r)) == r
    True
    >>> str(r | ~sk.parse("is_customer = true"))
    'country = "FR" and age between 29 and 44 or not is_customer = true'
    >>> sorted(r.attributes)
    ['age', 'country']

    .. versionadded:: 0.1.0
    """

    expr: ast.Expr
    source: str = attrs.field(default="", repr=False)

    def __attrs_post_init__(self) -> None:
        if not self.source:
            _check_depth(self.expr)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Rule):
            return self.expr == other.expr
        if isinstance(other, _ToRule) and not isinstance(other, str):
            return self.expr == other.to_rule().expr
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.expr)

    def __str__(self) -> str:
        return to_text(self.expr)

    def __repr__(self) -> str:
        return f"Rule({str(self)!r})"

    def to_rule(self) -> Rule:
        """Return ``self`` (so a Rule is accepted wherever a builder is)."""
        return self

    # --- combinators -----------------------------------------------------------------------

    def __and__(self, other: RuleLike) -> Rule:
        return Rule(_combine(ast.And, self.expr, as_rule(other).expr))

    def __rand__(self, other: RuleLike) -> Rule:
        return Rule(_combine(ast.And, as_rule(other).expr, self.expr))

    def __or__(self, other: RuleLike) -> Rule:
        return Rule(_combine(ast.Or, self.expr, as_rule(other).expr))

    def __ror__(self, other: RuleLike) -> Rule:
        return Rule(_combine(ast.Or, as_rule(other).expr, self.expr))

    def __invert__(self) -> Rule:
        if isinstance(self.expr, ast.InSegment):  # same meaning, reads as "not in segment"
            return Rule(attrs.evolve(self.expr, negated=not self.expr.negated))
        return Rule(ast.Not(self.expr))

    # --- what the rule reads ---------------------------------------------------------------

    @property
    def attributes(self) -> frozenset[str]:
        """Profile attributes the rule reads (not event properties).

        >>> import segkit as sk
        >>> sorted(sk.parse('age > 3 and did buy where price > 2').attributes)
        ['age']
        """
        return frozenset(_collect(self.expr, "attributes"))

    @property
    def events(self) -> frozenset[str]:
        """Event names the rule reads.

        >>> import segkit as sk
        >>> sorted(sk.parse('did a then b within 1d or count(c) > 2').events)
        ['a', 'b', 'c']
        """
        return frozenset(_collect(self.expr, "events"))

    @property
    def segments(self) -> frozenset[str]:
        """Names of the segments the rule refers to with ``in segment``.

        >>> import segkit as sk
        >>> sorted(sk.parse('in segment "vip" and not in segment "churned"').segments)
        ['churned', 'vip']
        """
        return frozenset(_collect(self.expr, "segments"))

    @property
    def is_time_relative(self) -> bool:
        """True when the rule's answer can change with ``now`` alone.

        That is the case for ``in last``, ``more than … ago`` and event predicates
        (an event's window or, without one, nothing — events at or before ``now``
        still count, so a rule over events without a window is *not* time-relative).

        >>> import segkit as sk
        >>> sk.parse("did buy in last 7d").is_time_relative, sk.parse("did buy").is_time_relative
        (True, False)
        """
        return any(
            isinstance(n, (ast.InLast, ast.MoreThanAgo, ast.LastWindow))
            for n in ast.iter_nodes(self.expr)
        )

    @property
    def uses_bucket(self) -> bool:
        """True when the rule uses ``bucket(...)`` (needs the profile's key)."""
        return any(isinstance(n, ast.Bucket) for n in ast.iter_nodes(self.expr))

    # --- serialisation ---------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """A versioned, JSON-safe form for storage (see :meth:`from_dict`).

        >>> import segkit as sk
        >>> sk.parse("age >= 18").to_dict()
        {'segkit_rule': 1, 'text': 'age >= 18', 'expr': {'type': 'compare', 'field': 'age', 'op': '>=', 'value': 18}}
        """
        from segkit.dsl.serde import rule_to_dict

        return rule_to_dict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Rule:
        """Rebuild a rule from :meth:`to_dict` output; raises :class:`RuleSyntaxError` if malformed.

        >>> import segkit as sk
        >>> r = sk.parse('did purchase where amount > 10 in last 30d')
        >>> sk.Rule.from_dict(r.to_dict()) == r
        True
        """
        from segkit.dsl.serde import rule_from_dict

        return rule_from_dict(data)


def _combine(cls: type[ast.And] | type[ast.Or], left: ast.Expr, right: ast.Expr) -> ast.Expr:
    items: list[ast.Expr] = []
    for side in (left, right):
        if type(side) is cls:
            items.extend(side.items)
        else:
            items.append(side)
    return cls(tuple(items))


def _collect(expr: ast.Expr, what: str) -> Iterator[str]:
    """Names of attributes / events / segments read by ``expr`` (event ``where`` excluded)."""
    stack: list[ast.Node] = [expr]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.FIELD_NODES):
            if what == "attributes":
                yield node.field
            continue
        if isinstance(node, ast.InSegment):
            if what == "segments":
                yield node.segment
            continue
        if isinstance(node, (ast.Did, ast.FirstTime, ast.Aggregate)):
            if what == "events":
                yield node.event
            continue
        if isinstance(node, ast.Sequence):
            if what == "events":
                yield from (s.event for s in node.steps)
            continue
        stack.extend(node.children())


def parse(text: str) -> Rule:
    """Parse rule text into a :class:`Rule`; raise the first :class:`RuleSyntaxError`.

    >>> import segkit as sk
    >>> sk.parse("did cart_abandoned >= 3 times in last 30d")
    Rule('did cart_abandoned >= 3 times in last 30d')
    >>> sk.parse("age >> 3")
    Traceback (most recent call last):
    ...
    segkit.errors.RuleSyntaxError: unknown operator '>>' (line 1, column 5)
      age >> 3
          ^^
      hint: did you mean '>'?

    .. versionadded:: 0.1.0
    """
    return Rule(parse_expr(text), text)


def as_rule(value: RuleLike) -> Rule:
    """Coerce rule text, a :class:`Rule` or a builder into a :class:`Rule`.

    >>> import segkit as sk
    >>> as_rule("age > 3") == as_rule(sk.attr("age") > 3)
    True
    """
    if isinstance(value, Rule):
        return value
    if isinstance(value, str):
        return parse(value)
    if isinstance(value, _ToRule):
        return value.to_rule()
    raise TypeError(f"expected rule text, a Rule or a rule builder, got {type(value).__name__}")


def iter_errors(text: str, schema: Schema | None = None) -> Iterator[RuleError]:
    """Yield every problem in ``text``: all syntax errors, then (with a schema) all type errors.

    >>> import segkit as sk
    >>> [e.message for e in sk.iter_errors('age >= and country = or x')]
    ["expected a value after '>=', found 'and'", "expected a value after '=', found 'or'", "expected an operator after 'x'"]

    .. versionadded:: 0.1.0
    """
    expr, errors = parse_expr_all(text)
    yield from errors
    if expr is None or errors or schema is None:
        return
    from segkit.dsl.check import iter_type_errors

    yield from iter_type_errors(Rule(expr, text), schema)


def is_valid(text: str, schema: Schema | None = None) -> bool:
    """True when ``text`` parses (and, with a schema, type-checks) without errors.

    >>> import segkit as sk
    >>> sk.is_valid("age > 3"), sk.is_valid("age >")
    (True, False)

    .. versionadded:: 0.1.0
    """
    return next(iter_errors(text, schema), None) is None
