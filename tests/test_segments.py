"""The segment dependency graph: exact error messages, topological order, a model check.

The model is a plain ``dict[str, set[str]]`` (segment -> the segments it refers
to); every expectation below is computed from it by brute force, independently of
:class:`segkit.segments.SegmentGraph`.
"""

from __future__ import annotations

import itertools
import re
from collections import deque
from collections.abc import Iterable, Mapping

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from segkit.errors import SegmentError
from segkit.segments import SegmentGraph

Model = Mapping[str, Iterable[str]]

#: Graphs of at most ten segments saturate quickly; a share of the profile's examples
#: keeps this file under five seconds while ``thorough`` still scales it up.
_BUDGET = settings.default.max_examples
PROPERTY = settings(max_examples=max(10, _BUDGET // 4))
MACHINE = settings(max_examples=max(10, _BUDGET // 4), stateful_step_count=30)


def build(model: Model) -> SegmentGraph:
    """A graph with the model's edges, adding segments in the model's (dependency) order."""
    graph = SegmentGraph()
    for name, deps in model.items():
        graph.add(name, deps)
    return graph


def snapshot(graph: SegmentGraph) -> dict[str, tuple[frozenset[str], frozenset[str]]]:
    """Everything observable about each segment: its dependencies and its users."""
    return {name: (graph.depends_on(name), graph.users_of(name)) for name in graph}


def reachable(model: Model, start: str) -> set[str]:
    """Every segment ``start`` depends on, directly or not (excluding ``start`` unless on a cycle)."""
    seen: set[str] = set()
    stack = list(model[start])
    while stack:
        node = stack.pop()
        if node not in seen:
            seen.add(node)
            stack.extend(model[node])
    return seen


def is_acyclic(model: Model) -> bool:
    """No segment depends on itself, directly or not."""
    return all(name not in reachable(model, name) for name in model)


def shortest_cycle_length(model: Model, name: str) -> int | None:
    """Number of edges on the shortest cycle through ``name``, by breadth-first search."""
    dist = dict.fromkeys(model[name], 1)
    queue = deque(dist)
    while queue:
        node = queue.popleft()
        if node == name:
            return dist[node]
        for dep in model[node]:
            if dep not in dist:
                dist[dep] = dist[node] + 1
                queue.append(dep)
    return None


def assert_greedy_order(model: Model, subset: Iterable[str], result: list[str]) -> None:
    """``result`` orders ``subset`` by transitive dependency; ties go to the smallest name."""
    remaining = set(subset)
    assert sorted(result) == sorted(remaining)
    below = {name: reachable(model, name) & remaining for name in remaining}
    for name in result:
        ready = {n for n in remaining if not below[n] & remaining}
        assert name == min(ready)
        remaining.discard(name)


@st.composite
def dags(draw: st.DrawFn) -> dict[str, set[str]]:
    """A random acyclic model whose dependency order is unrelated to name order."""
    names = draw(st.lists(st.sampled_from("abcdefghij"), unique=True, max_size=9))
    model: dict[str, set[str]] = {}
    for i, name in enumerate(names):
        model[name] = draw(st.sets(st.sampled_from(names[:i]), max_size=3)) if i else set()
    return model


# -- exact error messages ---------------------------------------------------------


def test_add_an_existing_name() -> None:
    """Adding a name twice is refused."""
    graph = build({"x": ()})
    with pytest.raises(SegmentError) as info:
        graph.add("x")
    assert str(info.value) == "segment 'x' already exists"


def test_add_an_unknown_dependency_suggests_a_close_name() -> None:
    """One unknown dependency is named, with a suggestion when one is close."""
    graph = build({"z": ()})
    with pytest.raises(SegmentError) as info:
        graph.add("a", ["zz"])
    assert str(info.value) == "segment 'a' refers to unknown segment 'zz' (did you mean 'z'?)"


def test_add_an_unknown_dependency_without_a_suggestion() -> None:
    """No parenthetical when nothing is close, including a segment naming itself."""
    graph = build({"vip": ()})
    with pytest.raises(SegmentError) as info:
        graph.add("a", ["q", "vip"])
    assert str(info.value) == "segment 'a' refers to unknown segment 'q'"
    with pytest.raises(SegmentError) as info:
        graph.add("a", ["a"])
    assert str(info.value) == "segment 'a' refers to unknown segment 'a'"


def test_add_several_unknown_dependencies_are_all_named_sorted() -> None:
    """Several unknown dependencies are listed sorted, without suggestions."""
    graph = build({"p1": ()})
    with pytest.raises(SegmentError) as info:
        graph.add("a", ["q", "p1", "p"])
    assert str(info.value) == "segment 'a' refers to unknown segments 'p', 'q'"


def test_replace_an_unknown_segment() -> None:
    """Redefining a segment that does not exist is refused, with a suggestion if close."""
    graph = build({"buyers": ()})
    with pytest.raises(SegmentError) as info:
        graph.replace("buyer", [])
    assert str(info.value) == "unknown segment 'buyer' (did you mean 'buyers'?)"
    with pytest.raises(SegmentError) as info:
        graph.replace("x", [])
    assert str(info.value) == "unknown segment 'x'"


def test_replace_with_unknown_dependencies() -> None:
    """Unknown dependencies of a redefinition are named like in add."""
    graph = build({"a": (), "b": ()})
    with pytest.raises(SegmentError) as info:
        graph.replace("a", ["bb"])
    assert str(info.value) == "segment 'a' refers to unknown segment 'bb' (did you mean 'b'?)"
    with pytest.raises(SegmentError) as info:
        graph.replace("a", ["y", "x", "b"])
    assert str(info.value) == "segment 'a' refers to unknown segments 'x', 'y'"


def test_replace_does_not_suggest_the_segment_itself() -> None:
    """The suggestion for a redefinition's dependency is never the segment being redefined."""
    graph = build({"vip": ()})
    with pytest.raises(SegmentError) as info:
        graph.replace("vip", ["vipp"])
    assert str(info.value) == "segment 'vip' refers to unknown segment 'vipp'"


def test_replace_that_closes_a_cycle_names_it() -> None:
    """The cycle is spelled from the redefined segment back to it, along the edges."""
    graph = build({"a": (), "c": ["a"], "b": ["c"]})
    with pytest.raises(SegmentError) as info:
        graph.replace("a", ["b"])
    assert str(info.value) == "redefining 'a' would create a cycle: a -> b -> c -> a"


def test_replace_with_a_self_reference() -> None:
    """A segment referring to itself is the shortest cycle of all."""
    graph = build({"a": (), "b": ["a"]})
    with pytest.raises(SegmentError) as info:
        graph.replace("a", ["b", "a"])
    assert str(info.value) == "redefining 'a' would create a cycle: a -> a"


def test_replace_names_the_shortest_cycle() -> None:
    """With several cycles, the shortest one is named (ties by name)."""
    graph = build({"a": (), "b": ["a"], "c": ["b"], "d": ["a"], "e": ["d"]})
    with pytest.raises(SegmentError) as info:
        graph.replace("a", ["c", "e", "d"])
    assert str(info.value) == "redefining 'a' would create a cycle: a -> d -> a"
    with pytest.raises(SegmentError) as info:
        graph.replace("a", ["c", "e"])
    assert str(info.value) == "redefining 'a' would create a cycle: a -> c -> b -> a"


def test_remove_a_used_segment_names_the_users_sorted() -> None:
    """A segment others refer to cannot be dropped; its users are listed sorted."""
    graph = build({"x": (), "b": ["x"], "a": ["x"], "c": ["b"]})
    with pytest.raises(SegmentError) as info:
        graph.remove("x")
    assert str(info.value) == "cannot drop 'x': used by 'a', 'b'"


def test_remove_an_unknown_segment() -> None:
    """Dropping an unknown segment is refused, with a suggestion if close."""
    graph = build({"churned": ()})
    with pytest.raises(SegmentError) as info:
        graph.remove("churnd")
    assert str(info.value) == "unknown segment 'churnd' (did you mean 'churned'?)"


@pytest.mark.parametrize(
    "call",
    [
        lambda g: g.depends_on("vipp"),
        lambda g: g.users_of("vipp"),
        lambda g: g.dependents(["vip", "vipp"]),
        lambda g: g.order(["vipp"]),
    ],
    ids=["depends_on", "users_of", "dependents", "order"],
)
def test_queries_about_an_unknown_segment(call: object) -> None:
    """Every query about an unknown segment raises SegmentError (a LookupError)."""
    graph = build({"vip": ()})
    with pytest.raises(LookupError) as info:
        call(graph)  # type: ignore[operator]
    assert isinstance(info.value, SegmentError)
    assert str(info.value) == "unknown segment 'vipp' (did you mean 'vip'?)"


def test_queries_about_several_unknown_segments() -> None:
    """Several unknown names in a query are listed sorted."""
    graph = build({"a": ()})
    with pytest.raises(SegmentError) as info:
        graph.order(["q", "a", "p"])
    assert str(info.value) == "unknown segments 'p', 'q'"


def test_a_bare_string_is_not_a_list_of_names() -> None:
    """Passing a str where names are expected is a TypeError, not a list of letters."""
    graph = build({"a": (), "b": ()})
    with pytest.raises(TypeError, match="not the string 'ab'"):
        graph.add("c", "ab")
    with pytest.raises(TypeError):
        graph.dependents("a")
    assert "c" not in graph


def test_rejected_changes_leave_the_graph_unchanged() -> None:
    """Each kind of refused change leaves dependencies and users as they were."""
    graph = build({"a": (), "b": ["a"], "c": ["b"]})
    before = snapshot(graph)
    for change in (
        lambda: graph.add("b"),
        lambda: graph.add("d", ["a", "zz"]),
        lambda: graph.replace("a", ["c"]),
        lambda: graph.replace("b", ["a", "zz"]),
        lambda: graph.replace("zz", []),
        lambda: graph.remove("a"),
    ):
        with pytest.raises(SegmentError):
            change()
        assert snapshot(graph) == before


# -- queries and order ------------------------------------------------------------


def test_edges_in_both_directions() -> None:
    """depends_on and users_of are direct only, and follow replace and remove."""
    graph = build({"a": (), "b": ["a"], "c": ["a", "b"]})
    assert graph.depends_on("c") == {"a", "b"}
    assert graph.users_of("a") == {"b", "c"}
    graph.replace("c", ["b"])
    assert graph.users_of("a") == {"b"}
    graph.remove("c")
    assert graph.users_of("b") == frozenset()
    assert list(graph) == ["a", "b"]
    assert len(graph) == 2
    assert "c" not in graph


def test_graphs_with_the_same_edges_are_equal() -> None:
    """Equality is by edges, whatever order the segments were added in."""
    one = build({"a": (), "b": ["a"], "c": []})
    two = build({"c": (), "a": (), "b": ["a"]})
    assert one == two
    two.replace("c", ["a"])
    assert one != two
    assert repr(two) == "<SegmentGraph: 3 segments, 2 references>"


def test_order_puts_dependencies_first_then_names() -> None:
    """order() follows the edges and breaks ties by name, not by insertion order."""
    graph = build({"z": (), "y": ["z"], "b": (), "a": ["y", "b"]})
    assert graph.order() == ["b", "z", "y", "a"]
    assert SegmentGraph().order() == []


def test_order_of_a_subset_looks_through_other_segments() -> None:
    """A dependency through segments outside the subset still orders the subset."""
    graph = build({"z": (), "m": ["z"], "a": ["m"], "b": ()})
    assert graph.order(["a", "z"]) == ["z", "a"]
    assert graph.order(["a", "b", "z"]) == ["b", "z", "a"]
    assert graph.order([]) == []


def test_dependents_are_transitive_and_exclude_the_given_names() -> None:
    """dependents() follows users transitively; a given name appears only if it depends on another."""
    graph = build({"a": (), "b": ["a"], "c": ["b"], "d": ["a"], "x": ()})
    assert graph.dependents(["a"]) == ["b", "c", "d"]
    assert graph.dependents(["b"]) == ["c"]
    assert graph.dependents(["a", "c"]) == ["b", "c", "d"]
    assert graph.dependents(["x", "c"]) == []
    assert graph.dependents([]) == []


@PROPERTY
@given(dags())
def test_order_respects_every_edge_and_is_the_smallest(model: dict[str, set[str]]) -> None:
    """order() of every segment is the lexicographically smallest valid order."""
    order = build(model).order()
    position = {name: i for i, name in enumerate(order)}
    assert all(position[dep] < position[name] for name in model for dep in model[name])
    assert_greedy_order(model, model, order)


@PROPERTY
@given(dags(), st.data())
def test_order_of_a_subset(model: dict[str, set[str]], data: st.DataObject) -> None:
    """order(subset) respects transitive dependencies and breaks ties by name."""
    subset = data.draw(st.sets(st.sampled_from(sorted(model)))) if model else set()
    assert_greedy_order(model, subset, build(model).order(subset))


@PROPERTY
@given(dags(), st.data())
def test_dependents_match_the_model(model: dict[str, set[str]], data: st.DataObject) -> None:
    """dependents() is every transitive user, in the smallest valid order."""
    names = data.draw(st.sets(st.sampled_from(sorted(model)))) if model else set()
    expected = {user for user in model if reachable(model, user) & names}
    result = build(model).dependents(names)
    assert set(result) == expected
    assert_greedy_order(model, expected, result)


# -- long chains --------------------------------------------------------------------

CHAIN = 10_000


def test_a_10000_long_chain_needs_no_recursion() -> None:
    """Every operation works on a 10,000-segment chain whose name order is backwards."""
    chain = [f"s{CHAIN - 1 - i:05d}" for i in range(CHAIN)]  # root has the largest name
    graph = SegmentGraph()
    graph.add(chain[0])
    for dep, name in itertools.pairwise(chain):
        graph.add(name, [dep])
    assert graph.order() == chain
    assert graph.dependents([chain[0]]) == chain[1:]
    assert graph.order([chain[-1], chain[0]]) == [chain[0], chain[-1]]
    with pytest.raises(SegmentError) as info:
        graph.replace(chain[0], [chain[-1]])
    message = str(info.value)
    assert message.startswith("redefining 's09999' would create a cycle: s09999 -> s00000 -> ")
    assert message.endswith(" -> s09998 -> s09999")
    assert message.count(" -> ") == CHAIN
    with pytest.raises(SegmentError, match=r"^cannot drop 's00500': used by 's00499'$"):
        graph.remove("s00500")
    for name in reversed(chain):
        graph.remove(name)
    assert len(graph) == 0


# -- model check ------------------------------------------------------------------

NAMES = st.sampled_from("abcdef")
DEPS = st.sets(NAMES, max_size=3)


class SegmentGraphMachine(RuleBasedStateMachine):
    """Checks SegmentGraph against a dict-of-sets model under random add/replace/remove."""

    def __init__(self) -> None:
        super().__init__()
        self.graph = SegmentGraph()
        self.model: dict[str, set[str]] = {}

    def refused(self, pattern: str, change: object) -> None:
        """``change()`` raises SegmentError matching ``pattern`` and changes nothing."""
        before = snapshot(self.graph)
        with pytest.raises(SegmentError, match=pattern):
            change()  # type: ignore[operator]
        assert snapshot(self.graph) == before

    @rule(name=NAMES, deps=DEPS)
    def add(self, name: str, deps: set[str]) -> None:
        """add succeeds only for a new name whose dependencies all exist."""
        if name in self.model:
            self.refused("already exists", lambda: self.graph.add(name, deps))
        elif deps - self.model.keys():
            self.refused("refers to unknown segment", lambda: self.graph.add(name, deps))
        else:
            self.graph.add(name, deps)
            self.model[name] = set(deps)

    @rule(name=NAMES, deps=DEPS)
    def replace(self, name: str, deps: set[str]) -> None:
        """replace succeeds unless something is unknown or a cycle would close."""
        if name not in self.model:
            self.refused("^unknown segment", lambda: self.graph.replace(name, deps))
            return
        if deps - self.model.keys():
            self.refused("refers to unknown segment", lambda: self.graph.replace(name, deps))
            return
        proposed = {**self.model, name: set(deps)}
        if is_acyclic(proposed):
            self.graph.replace(name, deps)
            self.model = proposed
            return
        before = snapshot(self.graph)
        with pytest.raises(SegmentError) as info:
            self.graph.replace(name, deps)
        assert snapshot(self.graph) == before
        found = re.fullmatch(rf"redefining '{name}' would create a cycle: (.*)", str(info.value))
        assert found is not None
        path = found.group(1).split(" -> ")
        assert path[0] == path[-1] == name
        assert all(b in proposed[a] for a, b in itertools.pairwise(path))
        assert len(path) - 1 == shortest_cycle_length(proposed, name)

    @rule(name=NAMES)
    def remove(self, name: str) -> None:
        """remove succeeds only for a known segment nobody refers to."""
        users = sorted(user for user, deps in self.model.items() if name in deps)
        if name not in self.model:
            self.refused("^unknown segment", lambda: self.graph.remove(name))
        elif users:
            expected = f"cannot drop '{name}': used by " + ", ".join(f"'{u}'" for u in users)
            self.refused(f"^{re.escape(expected)}$", lambda: self.graph.remove(name))
        else:
            self.graph.remove(name)
            del self.model[name]

    @rule(names=st.sets(NAMES, max_size=3))
    def dependents(self, names: set[str]) -> None:
        """dependents agrees with the model, or refuses unknown names."""
        if names - self.model.keys():
            self.refused("^unknown segment", lambda: self.graph.dependents(names))
        else:
            expected = {user for user in self.model if reachable(self.model, user) & names}
            assert_greedy_order(self.model, expected, self.graph.dependents(names))

    @invariant()
    def agrees_with_model(self) -> None:
        """Names and direct dependencies match the model exactly."""
        assert list(self.graph) == sorted(self.model)
        assert len(self.graph) == len(self.model)
        assert {name: set(self.graph.depends_on(name)) for name in self.graph} == self.model

    @invariant()
    def users_are_the_inverse_of_dependencies(self) -> None:
        """b is a user of a exactly when b depends on a."""
        for name in self.model:
            assert self.graph.users_of(name) == {u for u, d in self.model.items() if name in d}

    @invariant()
    def stays_acyclic_and_ordered(self) -> None:
        """The model stays acyclic and order() respects every edge."""
        assert is_acyclic(self.model)
        position = {name: i for i, name in enumerate(self.graph.order())}
        assert sorted(position) == sorted(self.model)
        assert all(position[d] < position[n] for n, deps in self.model.items() for d in deps)


TestSegmentGraphMachine = SegmentGraphMachine.TestCase
TestSegmentGraphMachine.settings = MACHINE
