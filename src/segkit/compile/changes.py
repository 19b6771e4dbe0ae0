"""Which dynamic segments can a change of one attribute affect?

When a profile's attribute changes from ``old`` to ``new``, a rule's verdict can
only change if one of its *leaves* reading that attribute (``age >= 30``,
``country in [...]``, ...) changes its truth value: the rest of the rule reads
inputs that did not change. :class:`ChangeIndex` collects the attribute leaves
of every dynamic rule, shares equal leaves between rules, and indexes the
*endpoints* of the leaves whose truth is piecewise constant in the value
(comparisons, ``between``, ``before``/``after``): such a leaf can only flip if
one of its endpoints lies between ``old`` and ``new``. Equality leaves (``=``,
``!=``, ``in``, ``not in``) can only flip when ``old`` or ``new`` is one of their
values, and list leaves (``has any/all/none``) when one of their elements enters
or leaves the list: those are found in a dictionary. A change evaluates just the
leaves found this way (plus the few leaves nothing describes, such as ``matches``
or ``in last 7d``) on the old and the new value.

A flipped leaf that is a top-level conjunct of its rule and is now false decides
the rule (false) without evaluating it; any other flip means the rule must be
evaluated again for that profile. Rules whose leaves did not flip keep their
verdict and are not evaluated at all, except time-relative rules (``in last``,
``more than ... ago``, event windows): their stored verdict may date from an
earlier clock, so any change to an attribute they read re-evaluates them at the
current time.

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import bisect
from collections.abc import Hashable, Iterable, Mapping
from typing import Any, Generic, TypeVar

from segkit.compile.predicate import _Compiler, _Ctx, _Fn
from segkit.dsl import ast
from segkit.dsl.printer import to_text
from segkit.dsl.rule import Rule

__all__ = ["ChangeIndex"]

S = TypeVar("S", bound=Hashable)


class _Leaf(Generic[S]):
    __slots__ = ("fn", "users")

    def __init__(self, fn: _Fn) -> None:
        self.fn = fn
        # (segment, whether the leaf is a top-level conjunct of its rule)
        self.users: list[tuple[S, bool]] = []


class _Field(Generic[S]):
    """The leaves reading one attribute, indexed by the values where they can flip."""

    __slots__ = (
        "always",
        "by_value",
        "leaves",
        "point_leaf",
        "point_threshold",
        "points",
        "relative",
    )

    def __init__(self) -> None:
        self.leaves: list[_Leaf[S]] = []
        # range leaves: sorted endpoints, and the leaf of each
        self.points: list[Any] = []
        self.point_leaf: list[int] = []
        # whether the point's leaf is a single threshold (<, <=, >, >=, before, after):
        # such a leaf surely flips when its point lies strictly between old and new
        self.point_threshold: list[bool] = []
        # equality leaves (=, !=, in, not in) by literal; list leaves by element
        self.by_value: dict[Any, list[int]] = {}
        # time-relative rules reading this attribute: their stored verdict may date from
        # an earlier clock, so any change to the attribute re-evaluates them
        self.relative: list[S] = []
        self.always: list[int] = []  # leaves without either: evaluated on every change

    def candidates(self, old: Any, new: Any) -> tuple[Iterable[int], Iterable[int]]:
        """(leaves that may flip: evaluate on both values, leaves that surely flip)."""
        if old is None or new is None or old != old or new != new:  # unset, or NaN
            return range(len(self.leaves)), ()
        by_value = self.by_value
        if isinstance(old, (tuple, list)):
            found = set(self.always)
            for element in set(old) ^ set(new):
                found.update(by_value.get(element, ()))
            return found, ()
        found_old, found_new = by_value.get(old), by_value.get(new)
        start = end = 0
        points = self.points
        if points:
            try:
                lo, hi = (old, new) if old <= new else (new, old)
                start = bisect.bisect_left(points, lo)
                end = bisect.bisect_right(points, hi)
            except TypeError:  # values this index cannot order: be safe
                return range(len(self.leaves)), ()
        if start == end and found_old is None and found_new is None:
            return self.always, ()
        maybe = {*(found_old or ()), *(found_new or ()), *self.always}
        sure: list[int] = []
        point_leaf, threshold = self.point_leaf, self.point_threshold
        for at in range(start, end):
            if threshold[at] and lo < points[at] < hi:
                sure.append(point_leaf[at])
            else:
                maybe.add(point_leaf[at])
        return maybe, sure


class ChangeIndex(Generic[S]):
    """The attribute leaves of a set of rules, indexed to find what a change can flip.

    ``rules`` pairs each segment (any hashable handle) with its checked
    expression; ``compiler`` is the predicate compiler of the schema.

    >>> import segkit as sk
    >>> from segkit.compile.predicate import _Compiler, _Ctx
    >>> schema = sk.Schema(attributes={"age": "int", "plan": "string"})
    >>> rules = {
    ...     "adults": sk.parse("age >= 18").expr,
    ...     "pro_30s": sk.parse('plan = "pro" and age between 30 and 39').expr,
    ... }
    >>> index = ChangeIndex(rules.items(), _Compiler(schema, None))
    >>> ctx = _Ctx((), None, "c-1")
    >>> index.affected("age", 20, 25, ctx)          # no endpoint between 20 and 25
    {}
    >>> index.affected("age", 25, 31, ctx)          # enters 30..39: evaluate pro_30s
    {'pro_30s': True}
    >>> sorted(index.affected("age", 31, 17, ctx).items())   # both leaves flip to false
    [('adults', False), ('pro_30s', False)]
    """

    __slots__ = ("_fields",)

    def __init__(self, rules: Iterable[tuple[S, ast.Expr]], compiler: _Compiler) -> None:
        self._fields: dict[str, _Field[S]] = {}
        shared: dict[tuple[str, str], tuple[_Field[S], _Leaf[S]]] = {}
        for segment, expr in rules:
            conjuncts = expr.items if isinstance(expr, ast.And) else (expr,)
            if Rule(expr).is_time_relative:
                for read in {n.field for n in _attribute_leaves(expr)}:
                    self._fields.setdefault(read, _Field()).relative.append(segment)
            for node in _attribute_leaves(expr):
                field_name: str = node.field
                text = to_text(node)
                found = shared.get((field_name, text))
                if found is None:
                    fld = self._fields.setdefault(field_name, _Field())
                    leaf: _Leaf[S] = _Leaf(compiler.compile(node))
                    number = len(fld.leaves)
                    fld.leaves.append(leaf)
                    exact = _flip_values(node, compiler)
                    points = None if exact is not None else _endpoints(node, compiler)
                    if exact is not None:
                        for value in exact:
                            fld.by_value.setdefault(value, []).append(number)
                    elif points is None:
                        fld.always.append(number)
                    else:
                        threshold = isinstance(node, ast.TimeCompare) or (
                            isinstance(node, ast.Compare) and node.op in ("<", "<=", ">", ">=")
                        )
                        for point in points:
                            at = bisect.bisect_right(fld.points, point)
                            fld.points.insert(at, point)
                            fld.point_leaf.insert(at, number)
                            fld.point_threshold.insert(at, threshold)
                    shared[(field_name, text)] = found = (fld, leaf)
                found[1].users.append((segment, any(node is c for c in conjuncts)))

    @property
    def fields(self) -> frozenset[str]:
        """The attributes read by at least one rule."""
        return frozenset(self._fields)

    def affected(
        self, field: str, old: Any, new: Any, ctx: _Ctx, into: dict[S, bool] | None = None
    ) -> dict[S, bool]:
        """Segments whose verdict the change ``old -> new`` of ``field`` can alter.

        Each maps to ``True`` (evaluate the rule again) or ``False`` (the rule is
        now false: a top-level conjunct flipped to false). Results accumulate in
        ``into`` when given; ``False`` wins over ``True``.
        """
        out: dict[S, bool] = {} if into is None else into
        fld = self._fields.get(field)
        if fld is None:
            return out
        leaves = fld.leaves
        before: Mapping[str, Any] = {field: old}
        after: Mapping[str, Any] = {field: new}
        maybe, sure = fld.candidates(old, new)
        flipped = [(leaves[number], leaves[number].fn(after, ctx)) for number in sure]
        for number in maybe:
            leaf = leaves[number]
            now_true = leaf.fn(after, ctx)
            if leaf.fn(before, ctx) != now_true:
                flipped.append((leaf, now_true))
        for segment in fld.relative:
            out.setdefault(segment, True)
        for leaf, now_true in flipped:
            for segment, conjunct in leaf.users:
                if conjunct and not now_true:
                    out[segment] = False
                elif out.get(segment) is not False:
                    out[segment] = True
        return out


def _attribute_leaves(expr: ast.Expr) -> Iterable[Any]:
    """The attribute-reading leaves of ``expr`` (not the properties inside event filters)."""
    stack: list[ast.Expr] = [expr]
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.And, ast.Or)):
            stack.extend(node.items)
        elif isinstance(node, ast.Not):
            stack.append(node.operand)
        elif isinstance(node, ast.FIELD_NODES):
            yield node


def _flip_values(node: Any, compiler: _Compiler) -> list[Any] | None:
    """For a leaf whose truth only changes when the value becomes or stops being one of
    a few values (``=``, ``!=``, ``in``, ``not in``; for lists, ``has any/all/none``
    changes only when one of its elements enters or leaves the list): those values."""
    if isinstance(node, ast.HasList):
        return list(node.values)
    if isinstance(node, ast.Compare) and node.op in ("=", "!="):
        return _stored_values(node, [node.value], compiler)
    if isinstance(node, ast.InList):
        return _stored_values(node, list(node.values), compiler)
    return None


def _endpoints(node: Any, compiler: _Compiler) -> list[Any] | None:
    """Values between which the leaf's truth is constant (None: no such description).

    ``IsKnown`` has none at all (its truth only changes with known-ness, which
    every change to or from ``None`` re-evaluates anyway).
    """
    if isinstance(node, ast.IsKnown):
        return []
    if isinstance(node, ast.Between):
        return _stored_values(node, [node.low, node.high], compiler)
    if isinstance(node, (ast.Compare, ast.TimeCompare)):
        return _stored_values(node, [node.value], compiler)
    return None


def _stored_values(node: Any, literals: list[Any], compiler: _Compiler) -> list[Any] | None:
    """The literals as the stored values they compare with, or None when the leaf
    reads a list or compares a transformed value (e.g. a datetime's local date)."""
    ftype = compiler.ftype(node.field, None)
    if ftype.is_list:
        return None
    out = []
    for literal in literals:
        value, key = compiler.literal_and_key(ftype, literal)
        if key is not None:
            return None
        out.append(value)
    return out
