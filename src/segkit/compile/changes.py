"""Which dynamic segments can a change of a profile's attributes affect, and how?

When a profile's attribute changes from ``old`` to ``new``, a rule's verdict can
only change if one of its *leaves* reading that attribute (``age >= 30``,
``country in [...]``, ...) changes its truth value: the rest of the rule reads
inputs that did not change. :class:`ChangeIndex` uses this in two ways.

**Conjunctions of attribute leaves** (``country = "FR" and age >= 18``, or a
single leaf), the most common shape of rule, are decided without evaluating
their predicates. Each attribute has a *gate*: ``passes(value)`` is a bitmask
with one bit per such rule, set when every leaf the rule has on that attribute
holds for ``value`` (and for every rule not reading it). A rule's verdict is the
AND of its bits over the gates of the attributes it reads, so a change decides
every conjunction at once: ``before = passes(old)``, ``after = passes(new)``, and
only if some rule's bit moved are the gates of the other attributes those rules
read consulted, with the profile's current values. Gates remember their answers:

* when every leaf on the attribute is a comparison, ``between``, ``in`` (or the
  negations) or ``before``/``after`` against plain literals, the truth of all of
  them is constant between consecutive literals (*endpoints*), so the answer is
  kept per interval between endpoints (a binary search finds it);
* otherwise (``contains``, ``matches``, ``has any``, lists, a datetime compared
  with a date, ...) it is kept per value, in a bounded table.

Which conjunctions a moved mask names is remembered too (per mask, at most
:data:`MEMO`), as are the gates of the other attributes to consult for a set of
changed attributes. No per-profile state is kept, so nothing needs maintaining
when profiles are created, deleted or merged. Rules relative to the current time are never
conjunctions in this sense. (Keeping a bitmap of the profiles satisfying each
leaf would decide conjunctions too, but costs work for every leaf a change flips
(a new random ``age`` flips about fifteen of the ``age`` leaves of the hundred
benchmark rules), memory per leaf, and an update on every path that writes
profiles; gates need none of that.)

**Every other rule** is handled leaf by leaf. Equal leaves of different rules
are shared, and indexed so that a change finds the leaves it flips without
evaluating the others:

* *Range leaves* (comparisons, ``between``, ``before``/``after``) are piecewise
  constant in the value: their endpoints are kept sorted, and such a leaf can only
  flip if one of its endpoints lies between ``old`` and ``new``. A single
  threshold (``<``, ``>=``, ``after``, ...) whose endpoint lies strictly between
  them surely flips, towards the side ``new`` moved to.
* *Equality leaves* (``=``, ``!=``, ``in``, ``not in``) hold exactly when the value
  is (or, negated, is not) one of their literals: they are found in a dictionary
  by ``old`` and by ``new``, and a leaf found by just one of the two flipped.
* *List leaves* (``has any/all/none``) can only flip when one of their elements
  enters or leaves the list: found in the same dictionary, then evaluated.
* The few leaves nothing describes (``matches``, ``in last 7d``, ...) are
  evaluated on the old and the new value at every change of their attribute.

A flipped leaf that is a top-level conjunct of its rule and is now false decides
the rule (false); any other flip means the rule must be evaluated again.
Time-relative rules (``in last``, ``more than ... ago``, event windows) are
evaluated at any change of an attribute they read: their stored verdict may date
from an earlier clock.

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import bisect
from collections.abc import Hashable, Iterable, Iterator, Mapping, Sequence
from typing import Any, Final, Generic, TypeVar

from segkit.compile.predicate import _Compiler, _Ctx, _Fn
from segkit.dsl import ast
from segkit.dsl.printer import to_text
from segkit.dsl.rule import Rule

__all__ = ["MEMO", "ChangeIndex"]

S = TypeVar("S", bound=Hashable)

#: A gate that remembers its answers per value keeps at most this many.
MEMO: Final = 4096

# the context leaves are evaluated in by gates (they never read events, keys or now)
_NO_CTX: Final = _Ctx((), None, None)


class _Gate:
    """One attribute's say in the conjunctions of attribute leaves (see the module
    docstring): ``passes(value)`` has bit ``i`` set when the ``i``-th conjunction
    does not read the attribute, or all its leaves on it hold for ``value``."""

    __slots__ = (
        "by_interval",
        "by_value",
        "everyone",
        "leaves",
        "name",
        "numbers",
        "points",
        "readers",
    )

    def __init__(self, name: str) -> None:
        self.name = name
        self.readers = 0  # the conjunctions reading the attribute
        self.everyone = 0  # every conjunction
        # each leaf on the attribute, and the conjunctions it is a conjunct of
        self.leaves: list[tuple[_Fn, int]] = []
        self.numbers: dict[str, int] = {}  # position in leaves, by the leaf's text
        # the sorted endpoints of every leaf; None when some leaf has none
        self.points: list[Any] | None = []
        # answers by value (at most MEMO), and by interval between points
        # (2 * i: below points[i], 2 * i + 1: at it)
        self.by_value: dict[Any, int] = {}
        self.by_interval: dict[int, int] = {}

    def add_leaf(self, node: Any, conjunction: int, compiler: _Compiler) -> None:
        """Make ``node`` a leaf of the conjunction whose bit is ``conjunction``."""
        text = to_text(node)
        number = self.numbers.get(text)
        if number is not None:  # an equal leaf: shared
            fn, users = self.leaves[number]
            self.leaves[number] = (fn, users | conjunction)
            return
        self.numbers[text] = len(self.leaves)
        self.leaves.append((compiler.compile(node), conjunction))
        endpoints = _gate_endpoints(node, compiler)
        if endpoints is None:
            self.points = None
        elif self.points is not None:
            try:
                self.points = sorted({*self.points, *endpoints})
            except TypeError:  # literals that do not order together: remember by value
                self.points = None

    def passes(self, value: Any) -> int:
        by_value = self.by_value
        try:
            found = by_value.get(value)
        except TypeError:  # unhashable
            return self._evaluate(value)
        if found is not None:
            return found
        if value != value:  # NaN: no interval holds it, and no good as a key
            return self._evaluate(value)
        points = self.points
        if points is not None and value is not None:
            try:
                at = bisect.bisect_left(points, value)
            except TypeError:  # a value the endpoints cannot order with: be safe
                return self._evaluate(value)
            interval = 2 * at + 1 if at < len(points) and points[at] == value else 2 * at
            found = self.by_interval.get(interval)
            if found is None:
                found = self.by_interval[interval] = self._evaluate(value)
        else:
            found = self._evaluate(value)
        if len(by_value) >= MEMO:
            by_value.clear()
        by_value[value] = found
        return found

    def _evaluate(self, value: Any) -> int:
        values = {self.name: value}
        failed = 0
        for fn, conjunctions in self.leaves:
            if not fn(values, _NO_CTX):
                failed |= conjunctions
        return self.everyone & ~failed


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
        "name",
        "point_leaf",
        "point_threshold",
        "points",
        "positive",
        "relative",
        "rising",
    )

    def __init__(self, name: str) -> None:
        self.name = name
        self.leaves: list[_Leaf[S]] = []
        # range leaves: sorted endpoints, and the leaf of each
        self.points: list[Any] = []
        self.point_leaf: list[int] = []
        # whether the point's leaf is a single threshold (<, <=, >, >=, before, after):
        # such a leaf surely flips when its point lies strictly between old and new
        self.point_threshold: list[bool] = []
        # per threshold leaf (by number): whether it holds above its point
        self.rising: dict[int, bool] = {}
        # equality leaves (=, !=, in, not in) by literal; list leaves by element
        self.by_value: dict[Any, tuple[int, ...]] = {}
        # per equality leaf: its truth for a value among its literals (=, in: True;
        # !=, not in: False); any other known value gives the opposite
        self.positive: dict[int, bool] = {}
        # time-relative rules reading this attribute: their stored verdict may date from
        # an earlier clock, so any change to the attribute re-evaluates them
        self.relative: list[S] = []
        self.always: list[int] = []  # leaves without either: evaluated on every change

    def add_leaf(self, node: Any, compiler: _Compiler) -> _Leaf[S]:
        """A new leaf, indexed by the values where it can flip."""
        leaf: _Leaf[S] = _Leaf(compiler.compile(node))
        number = len(self.leaves)
        self.leaves.append(leaf)
        exact = _flip_values(node, compiler)
        points = None if exact is not None else _endpoints(node, compiler)
        if exact is not None:
            for value in exact:
                found = self.by_value.get(value, ())
                if number not in found:
                    self.by_value[value] = (*found, number)
            if isinstance(node, ast.Compare):
                self.positive[number] = node.op == "="
            elif isinstance(node, ast.InList):
                self.positive[number] = not node.negated
        elif points is None:
            self.always.append(number)
        else:
            threshold = isinstance(node, ast.TimeCompare) or (
                isinstance(node, ast.Compare) and node.op in ("<", "<=", ">", ">=")
            )
            if threshold:
                self.rising[number] = node.op in (">", ">=", "after")
            for point in points:
                at = bisect.bisect_right(self.points, point)
                self.points.insert(at, point)
                self.point_leaf.insert(at, number)
                self.point_threshold.insert(at, threshold)
        return leaf

    def flips(self, old: Any, new: Any, ctx: _Ctx) -> list[tuple[_Leaf[S], bool]]:
        """The leaves whose truth differs between ``old`` and ``new``, with the new truth."""
        leaves = self.leaves
        if old is None or new is None or old != old or new != new:  # unset, or NaN
            return self._evaluate(range(len(leaves)), old, new, ctx)
        by_value = self.by_value
        if isinstance(old, (tuple, list)):
            found = set(self.always)
            for element in set(old).symmetric_difference(new):
                found.update(by_value.get(element, ()))
            return self._evaluate(found, old, new, ctx)
        out: list[tuple[_Leaf[S], bool]] = []
        if by_value:
            on_old, on_new = by_value.get(old, ()), by_value.get(new, ())
            positive = self.positive
            for number in on_old:
                if number not in on_new:
                    out.append((leaves[number], not positive[number]))
            for number in on_new:
                if number not in on_old:
                    out.append((leaves[number], positive[number]))
        maybe: Iterable[int] = self.always
        points = self.points
        if points:
            try:
                rises = old < new
                lo, hi = (old, new) if rises else (new, old)
                start = bisect.bisect_left(points, lo)
                end = bisect.bisect_right(points, hi)
            except TypeError:  # values this index cannot order: be safe
                return self._evaluate(range(len(leaves)), old, new, ctx)
            if start != end:
                maybe = set(maybe)
                point_leaf, threshold, rising = self.point_leaf, self.point_threshold, self.rising
                for at in range(start, end):
                    number = point_leaf[at]
                    if threshold[at] and lo < points[at] < hi:
                        out.append((leaves[number], rises == rising[number]))
                    else:
                        maybe.add(number)
        if maybe:
            out.extend(self._evaluate(maybe, old, new, ctx))
        return out

    def _evaluate(
        self, numbers: Iterable[int], old: Any, new: Any, ctx: _Ctx
    ) -> list[tuple[_Leaf[S], bool]]:
        """The leaves among ``numbers`` that flip, found by evaluating each on both values."""
        leaves = self.leaves
        before: Mapping[str, Any] = {self.name: old}
        after: Mapping[str, Any] = {self.name: new}
        out = []
        for number in numbers:
            leaf = leaves[number]
            now_true = leaf.fn(after, ctx)
            if leaf.fn(before, ctx) != now_true:
                out.append((leaf, now_true))
        return out


class ChangeIndex(Generic[S]):
    """The attribute leaves of a set of rules, indexed to find what a change can alter.

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
    >>> index.affected("age", 25, 31, ctx)          # enters 30..39: pro_30s may hold
    {'pro_30s': True}
    >>> sorted(index.affected("age", 31, 17, ctx).items())   # both now false
    [('adults', False), ('pro_30s', False)]
    >>> profile = {"age": 31, "plan": "pro"}       # the stored values, after the change
    >>> index.update([("age", 25, 31)], profile, ctx)     # decided: pro_30s now holds
    {'pro_30s': True}
    """

    __slots__ = (
        "_conjunctions",
        "_decoded",
        "_fields",
        "_gates",
        "_others",
        "_others_read",
        "_unchanged_memo",
    )

    def __init__(self, rules: Iterable[tuple[S, ast.Expr]], compiler: _Compiler) -> None:
        self._fields: dict[str, _Field[S]] = {}
        self._gates: dict[str, _Gate] = {}
        self._conjunctions: list[S] = []  # bit i of a gate's mask: the i-th conjunction
        # for each attribute: the other attributes read by the conjunctions reading it
        self._others_read: dict[str, tuple[str, ...]] = {}
        shared: dict[tuple[str, str], _Leaf[S]] = {}
        for segment, expr in rules:
            conjuncts = _conjuncts(expr)
            if all(_gated(node) for node in conjuncts):
                self._add_conjunction(segment, conjuncts, compiler)
                continue
            if Rule(expr).is_time_relative:
                for read in {n.field for n in _attribute_leaves(expr)}:
                    self._field(read).relative.append(segment)
            for node in _attribute_leaves(expr):
                key = (node.field, to_text(node))
                leaf = shared.get(key)
                if leaf is None:
                    leaf = shared[key] = self._field(node.field).add_leaf(node, compiler)
                leaf.users.append((segment, any(node is c for c in conjuncts)))
        everyone = (1 << len(self._conjunctions)) - 1
        for gate in self._gates.values():
            gate.everyone = everyone
        # for each gated attribute: the gates of the other attributes its conjunctions read
        self._others: dict[str, tuple[_Gate, ...]] = {
            name: tuple(self._gates[o] for o in self._others_read.get(name, ()))
            for name in self._gates
        }
        # the same for several changed attributes, by their names (at most MEMO)
        self._unchanged_memo: dict[tuple[str, ...], tuple[_Gate, ...]] = {}
        # the conjunctions whose bits a mask sets, by mask (at most MEMO)
        self._decoded: dict[int, tuple[S, ...]] = {}

    def _field(self, name: str) -> _Field[S]:
        fld = self._fields.get(name)
        if fld is None:
            fld = self._fields[name] = _Field(name)
        return fld

    def _add_conjunction(self, segment: S, leaves: list[Any], compiler: _Compiler) -> None:
        bit = 1 << len(self._conjunctions)
        self._conjunctions.append(segment)
        read = {node.field for node in leaves}
        for name in read:
            others = {*self._others_read.get(name, ()), *(read - {name})}
            self._others_read[name] = tuple(sorted(others))
            gate = self._gates.get(name)
            if gate is None:
                gate = self._gates[name] = _Gate(name)
            gate.readers |= bit
        for node in leaves:
            self._gates[node.field].add_leaf(node, bit, compiler)

    @property
    def fields(self) -> frozenset[str]:
        """The attributes read by at least one rule."""
        return frozenset({*self._fields, *self._gates})

    @property
    def reads_context(self) -> bool:
        """Whether :meth:`update` and :meth:`affected` read their ``ctx`` (the key,
        events and ``now``): only leaves of rules other than conjunctions of
        attribute leaves do; when ``False``, ``ctx`` may be ``None``."""
        return bool(self._fields)

    def affected(
        self, field: str, old: Any, new: Any, ctx: _Ctx, into: dict[S, bool] | None = None
    ) -> dict[S, bool]:
        """Segments whose verdict the change ``old -> new`` of ``field`` can alter.

        Each maps to ``True`` (the rule may hold now: evaluate it again) or
        ``False`` (the rule is now false: a top-level conjunct became false).
        Results accumulate in ``into`` when given; ``False`` wins over ``True``.
        """
        out: dict[S, bool] = {} if into is None else into
        gate = self._gates.get(field)
        if gate is not None:
            after = gate.passes(new)
            for segment, bit in self._members((gate.passes(old) ^ after) & gate.readers):
                if not after & bit:
                    out[segment] = False
                elif out.get(segment) is not False:
                    out[segment] = True
        fld = self._fields.get(field)
        if fld is None:
            return out
        for segment in fld.relative:
            out.setdefault(segment, True)
        for leaf, now_true in fld.flips(old, new, ctx):
            for segment, conjunct in leaf.users:
                if conjunct and not now_true:
                    out[segment] = False
                elif out.get(segment) is not False:
                    out[segment] = True
        return out

    def update(
        self,
        changes: Sequence[tuple[str, Any, Any]],
        values: Mapping[str, Any],
        ctx: _Ctx | None,
    ) -> dict[S, bool | None]:
        """The segments whose verdict a profile's attribute changes can alter.

        ``changes`` are ``(name, old, new)``, at most one per attribute;
        ``values`` are the profile's attributes after them. Each segment maps to
        its new verdict (``True``/``False``: decided without evaluating its rule)
        or to ``None``: evaluate the rule again. A conjunction of attribute leaves
        is never ``None``, and appears only when its verdict may have changed
        (when the change made it false, it may have been false already). ``ctx``
        may be ``None`` when :attr:`reads_context` is ``False``.
        """
        out: dict[S, bool | None] = {}
        gates = self._gates
        if gates:
            before = after = -1  # every bit set
            for name, old, new in changes:
                gate = gates.get(name)
                if gate is not None:
                    try:  # the remembered answers first (what gate.passes does, without a call)
                        was, now = gate.by_value.get(old), gate.by_value.get(new)
                    except TypeError:  # unhashable
                        was = now = None
                    before &= gate.passes(old) if was is None else was
                    after &= gate.passes(new) if now is None else now
            moved = before ^ after
            if moved:
                rising = moved & after
                if rising:  # some may hold now: the other attributes they read have a say
                    unchanged = (
                        self._others[changes[0][0]]
                        if len(changes) == 1
                        else self._unchanged_memo.get(tuple([c[0] for c in changes]))
                        or self._unchanged(changes)
                    )
                    for gate in unchanged:
                        if moved & gate.readers:  # else it passes every moved bit
                            moved &= gate.passes(values.get(gate.name))
                    rising &= moved
                decoded = self._decoded
                if rising:
                    for segment in decoded.get(rising) or self._decode(rising):
                        out[segment] = True
                falling = moved ^ rising
                if falling:
                    for segment in decoded.get(falling) or self._decode(falling):
                        out[segment] = False
        fields = self._fields
        if fields:
            assert ctx is not None, "this index reads the context (see reads_context)"
            for name, old, new in changes:
                fld = fields.get(name)
                if fld is None:
                    continue
                for segment in fld.relative:
                    out.setdefault(segment, None)
                for leaf, now_true in fld.flips(old, new, ctx):
                    for segment, conjunct in leaf.users:
                        if conjunct and not now_true:
                            out[segment] = False
                        elif segment not in out:
                            out[segment] = None
        return out

    def verdicts(self, values: Mapping[str, Any]) -> dict[S, bool]:
        """The verdict of every conjunction of attribute leaves for a profile with
        attributes ``values`` (the other segments are not in the result)."""
        holds = -1
        for name, gate in self._gates.items():
            holds &= gate.passes(values.get(name))
        return {segment: bool(holds >> bit & 1) for bit, segment in enumerate(self._conjunctions)}

    def _unchanged(self, changes: Sequence[tuple[str, Any, Any]]) -> tuple[_Gate, ...]:
        """The gates of the attributes, other than the changed ones, that the
        conjunctions reading a changed attribute read (remembered by the names)."""
        names = tuple([name for name, _, _ in changes])
        others = self._others_read
        read = {o for name in names for o in others.get(name, ())}.difference(names)
        found = tuple(self._gates[name] for name in sorted(read))
        memo = self._unchanged_memo
        if len(memo) >= MEMO:
            memo.clear()
        memo[names] = found
        return found

    def _decode(self, mask: int) -> tuple[S, ...]:
        """The conjunctions whose bits ``mask`` sets, in bit order (remembered by mask)."""
        conjunctions = self._conjunctions
        out = []
        rest = mask
        while rest:
            bit = rest & -rest  # the lowest bit set
            out.append(conjunctions[bit.bit_length() - 1])
            rest ^= bit
        found = tuple(out)
        decoded = self._decoded
        if len(decoded) >= MEMO:
            decoded.clear()
        decoded[mask] = found
        return found

    def _members(self, mask: int) -> Iterator[tuple[S, int]]:
        """The conjunctions whose bits ``mask`` sets, with their bits."""
        conjunctions = self._conjunctions
        while mask:
            bit = mask & -mask
            yield conjunctions[bit.bit_length() - 1], bit
            mask ^= bit


def _conjuncts(expr: ast.Expr) -> list[ast.Expr]:
    """The operands of the top-level ``and`` (nested ones flattened), or ``[expr]``."""
    if not isinstance(expr, ast.And):
        return [expr]
    return [node for item in expr.items for node in _conjuncts(item)]


def _gated(node: ast.Expr) -> bool:
    """Whether ``node`` is a leaf a gate can decide: it reads one attribute and
    nothing else (not the current time)."""
    return isinstance(node, ast.FIELD_NODES) and not isinstance(node, (ast.InLast, ast.MoreThanAgo))


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


def _gate_endpoints(node: Any, compiler: _Compiler) -> list[Any] | None:
    """Values between which the leaf's truth is constant, as for :func:`_endpoints`,
    counting each literal of an equality leaf (``=``, ``!=``, ``in``, ``not in``)."""
    if isinstance(node, (ast.Compare, ast.InList)):
        exact = _flip_values(node, compiler)
        if exact is not None:
            return exact
    return _endpoints(node, compiler)


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
