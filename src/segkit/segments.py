"""The segment dependency graph: which segments refer to which, kept acyclic.

A rule that says ``in segment "x"`` makes its segment *depend on* ``x``. The
:class:`SegmentGraph` holds those edges for the Engine, refuses any change that
would point at a missing segment or close a cycle (and leaves the graph as it was),
and answers the two questions the Engine asks: in which order to refresh segments,
and which segments must be refreshed after one of them changed.

>>> g = SegmentGraph()
>>> g.add("buyers")
>>> g.add("vip", ["buyers"])
>>> g.add("vip_fr", ["vip"])
>>> g.order()
['buyers', 'vip', 'vip_fr']
>>> g.dependents(["buyers"])
['vip', 'vip_fr']

Every traversal is iterative, so a chain of many thousands of segments needs no
recursion.

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Collection, Iterable, Iterator, Mapping

import attrs

from segkit._suggest import suggest
from segkit.errors import SegmentError

__all__ = ["SegmentGraph"]


def _quoted(names: Iterable[str]) -> str:
    """``'a', 'b'``: names quoted the way error messages quote them."""
    return ", ".join(repr(name) for name in names)


def _unknown(missing: Collection[str], known: Iterable[str]) -> str:
    """``unknown segment 'x' (did you mean 'y'?)``, or ``unknown segments 'p', 'q'``."""
    if len(missing) == 1:
        (only,) = missing
        hint = suggest(only, known)
        return f"unknown segment {only!r}" + ("" if hint is None else f" (did you mean {hint!r}?)")
    return f"unknown segments {_quoted(sorted(missing))}"


def _names(names: Iterable[str]) -> frozenset[str]:
    """The names as a set; a bare ``str`` is refused rather than split into letters."""
    if isinstance(names, str):
        raise TypeError(f"expected an iterable of segment names, not the string {names!r}")
    return frozenset(names)


def _kahn(nodes: Collection[str], preds: Mapping[str, Collection[str]]) -> list[str]:
    """Kahn's topological sort of ``nodes``; ``preds[n]`` (a subset of ``nodes``) come first.

    Among the nodes that are ready, the smallest name goes first, so the result is
    the lexicographically smallest valid order.
    """
    waiting = {node: len(preds[node]) for node in nodes}
    succs: dict[str, list[str]] = {node: [] for node in nodes}
    for node in nodes:
        for pred in preds[node]:
            succs[pred].append(node)
    ready = [node for node, count in waiting.items() if count == 0]
    heapq.heapify(ready)
    out: list[str] = []
    while ready:
        node = heapq.heappop(ready)
        out.append(node)
        for succ in succs[node]:
            waiting[succ] -= 1
            if waiting[succ] == 0:
                heapq.heappush(ready, succ)
    if len(out) != len(nodes):  # pragma: no cover - the graph is kept acyclic
        raise RuntimeError("segment graph has a cycle")
    return out


@attrs.define(repr=False)
class SegmentGraph:
    """Which segments refer to which (``in segment "x"``), kept acyclic.

    An edge ``a -> b`` means segment ``a``'s rule refers to segment ``b``, so ``b``
    must be evaluated before ``a``. Every change is checked before it is applied:
    a :class:`~segkit.errors.SegmentError` leaves the graph exactly as it was.
    Iteration yields the segment names sorted.

    >>> g = SegmentGraph()
    >>> g.add("a")
    >>> g.add("b", ["a"])
    >>> "b" in g, len(g), list(g)
    (True, 2, ['a', 'b'])
    >>> g.replace("a", ["b"])
    Traceback (most recent call last):
    ...
    segkit.errors.SegmentError: redefining 'a' would create a cycle: a -> b -> a

    .. versionadded:: 0.1.0
    """

    _deps: dict[str, frozenset[str]] = attrs.field(init=False, factory=dict)
    _users: dict[str, set[str]] = attrs.field(init=False, factory=dict)

    def add(self, name: str, depends_on: Iterable[str] = ()) -> None:
        """Add segment ``name``, referring to the existing segments ``depends_on``.

        Raises :class:`~segkit.errors.SegmentError` if ``name`` already exists or a
        dependency does not.

        >>> g = SegmentGraph()
        >>> g.add("z")
        >>> g.add("a", ["zz"])
        Traceback (most recent call last):
        ...
        segkit.errors.SegmentError: segment 'a' refers to unknown segment 'zz' (did you mean 'z'?)

        .. versionadded:: 0.1.0
        """
        deps = _names(depends_on)
        if name in self._deps:
            raise SegmentError(f"segment {name!r} already exists")
        self._check_known(name, deps)
        self._deps[name] = deps
        self._users[name] = set()
        for dep in deps:
            self._users[dep].add(name)

    def replace(self, name: str, depends_on: Iterable[str]) -> None:
        """Give the existing segment ``name`` new dependencies (its rule was redefined).

        Raises :class:`~segkit.errors.SegmentError` if ``name`` or a dependency is
        unknown, or if the change would close a cycle; the message then names the
        shortest such cycle, from ``name`` back to ``name``.

        >>> g = SegmentGraph()
        >>> g.add("a"); g.add("b", ["a"]); g.add("c", ["b"])
        >>> g.replace("a", ["c"])
        Traceback (most recent call last):
        ...
        segkit.errors.SegmentError: redefining 'a' would create a cycle: a -> c -> b -> a
        >>> g.replace("c", ["a"])
        >>> sorted(g.users_of("a"))
        ['b', 'c']

        .. versionadded:: 0.1.0
        """
        deps = _names(depends_on)
        self._require(name)
        self._check_known(name, deps)
        cycle = self._cycle_through(name, deps)
        if cycle is not None:
            raise SegmentError(f"redefining {name!r} would create a cycle: {' -> '.join(cycle)}")
        old = self._deps[name]
        for dep in old - deps:
            self._users[dep].discard(name)
        for dep in deps - old:
            self._users[dep].add(name)
        self._deps[name] = deps

    def remove(self, name: str) -> None:
        """Drop segment ``name``; refused while other segments refer to it.

        >>> g = SegmentGraph()
        >>> g.add("x"); g.add("b", ["x"]); g.add("a", ["x"])
        >>> g.remove("x")
        Traceback (most recent call last):
        ...
        segkit.errors.SegmentError: cannot drop 'x': used by 'a', 'b'
        >>> g.remove("a"); g.remove("b"); g.remove("x"); len(g)
        0

        .. versionadded:: 0.1.0
        """
        self._require(name)
        users = self._users[name]
        if users:
            raise SegmentError(f"cannot drop {name!r}: used by {_quoted(sorted(users))}")
        for dep in self._deps.pop(name):
            self._users[dep].discard(name)
        del self._users[name]

    def depends_on(self, name: str) -> frozenset[str]:
        """The segments ``name`` refers to directly.

        >>> g = SegmentGraph()
        >>> g.add("a"); g.add("b", ["a"])
        >>> g.depends_on("b")
        frozenset({'a'})

        .. versionadded:: 0.1.0
        """
        self._require(name)
        return self._deps[name]

    def users_of(self, name: str) -> frozenset[str]:
        """The segments that refer to ``name`` directly.

        >>> g = SegmentGraph()
        >>> g.add("a"); g.add("b", ["a"])
        >>> g.users_of("a")
        frozenset({'b'})

        .. versionadded:: 0.1.0
        """
        self._require(name)
        return frozenset(self._users[name])

    def dependents(self, names: Iterable[str]) -> list[str]:
        """Every segment that depends on one of ``names``, directly or not, in refresh order.

        The given names are left out unless one of them depends on another. The
        order puts dependencies before their users, ties broken by name.

        >>> g = SegmentGraph()
        >>> g.add("a"); g.add("b", ["a"]); g.add("c", ["b"]); g.add("d", ["a"])
        >>> g.dependents(["a"])
        ['b', 'c', 'd']
        >>> g.dependents(["a", "b"])
        ['b', 'c', 'd']
        >>> g.dependents(["c"])
        []

        .. versionadded:: 0.1.0
        """
        start = _names(names)
        self._require_all(start)
        found: set[str] = set()
        stack = list(start)
        while stack:
            for user in self._users[stack.pop()]:
                if user not in found:
                    found.add(user)
                    stack.append(user)
        # ``found`` is closed under "is used by", so a path between two of its
        # members never leaves it: the direct edges inside it are enough.
        return _kahn(found, {node: self._deps[node] & found for node in found})

    def order(self, names: Iterable[str] | None = None) -> list[str]:
        """``names`` (default: every segment) with each one after those it depends on.

        Dependencies count even through segments that are not in ``names``. Ties
        are broken by name.

        >>> g = SegmentGraph()
        >>> g.add("z"); g.add("m", ["z"]); g.add("a", ["m"]); g.add("b")
        >>> g.order()
        ['b', 'z', 'm', 'a']
        >>> g.order(["a", "z", "b"])
        ['b', 'z', 'a']

        .. versionadded:: 0.1.0
        """
        if names is None:
            return _kahn(self._deps.keys(), self._deps)
        subset = _names(names)
        self._require_all(subset)
        if len(subset) == len(self._deps):
            return _kahn(subset, self._deps)
        return _kahn(subset, self._nearest_within(subset))

    def __contains__(self, name: object) -> bool:
        return name in self._deps

    def __len__(self) -> int:
        return len(self._deps)

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._deps))

    def __repr__(self) -> str:
        edges = sum(len(deps) for deps in self._deps.values())
        return f"<SegmentGraph: {len(self._deps)} segments, {edges} references>"

    # -- helpers -----------------------------------------------------------------

    def _require(self, name: str) -> None:
        if name not in self._deps:
            raise SegmentError(_unknown([name], self._deps))

    def _require_all(self, names: frozenset[str]) -> None:
        missing = {name for name in names if name not in self._deps}
        if missing:
            raise SegmentError(_unknown(missing, self._deps))

    def _check_known(self, name: str, deps: frozenset[str]) -> None:
        """Refuse dependencies that are not segments; suggest only other segments."""
        missing = {dep for dep in deps if dep not in self._deps}
        if missing:
            known = (other for other in self._deps if other != name)
            raise SegmentError(f"segment {name!r} refers to {_unknown(missing, known)}")

    def _cycle_through(self, name: str, deps: frozenset[str]) -> list[str] | None:
        """The shortest cycle ``name -> ... -> name`` if ``name`` got ``deps``, else None.

        Breadth-first from the new dependencies along the current edges (iterative,
        neighbours in name order, so the answer is deterministic). The graph is
        acyclic, so any new cycle must pass through ``name``.
        """
        if name in deps:
            return [name, name]
        parent: dict[str, str] = {}
        queue: deque[str] = deque()
        for dep in sorted(deps):
            parent[dep] = name
            queue.append(dep)
        while queue:
            node = queue.popleft()
            for dep in sorted(self._deps[node]):
                if dep == name:
                    path = [name]
                    while node != name:
                        path.append(node)
                        node = parent[node]
                    path.append(name)
                    path.reverse()
                    return path
                if dep not in parent:
                    parent[dep] = node
                    queue.append(dep)
        return None

    def _nearest_within(self, subset: frozenset[str]) -> dict[str, frozenset[str]]:
        """For each member of ``subset``, the members it reaches first along dependencies.

        A path through segments outside ``subset`` still orders its two ends, so
        those outside segments are looked through (memoised, iteratively).
        """
        through: dict[str, frozenset[str]] = {}  # outside node -> nearest members below it

        def nearest(node: str) -> frozenset[str]:
            found: set[str] = set()
            for dep in self._deps[node]:
                if dep in subset:
                    found.add(dep)
                else:
                    found |= through[dep]
            return frozenset(found)

        def resolve(start: str) -> None:
            stack = [start]
            while stack:
                node = stack[-1]
                if node in through:
                    stack.pop()
                    continue
                pending = [d for d in self._deps[node] if d not in subset and d not in through]
                if pending:
                    stack.extend(pending)
                else:
                    through[node] = nearest(node)
                    stack.pop()

        for member in subset:
            for dep in self._deps[member]:
                if dep not in subset:
                    resolve(dep)
        return {member: nearest(member) for member in subset}
