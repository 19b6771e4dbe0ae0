"""Tests for segkit.records: Profile, Event and IdMap."""

from __future__ import annotations

import operator
import pickle
from datetime import date, datetime, timedelta, timezone
from typing import Any

import attrs
import pytest
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from segkit.records import Event, IdMap, Profile

UTC = timezone.utc
AT = datetime(2024, 6, 1, 9, 30, tzinfo=UTC)

# --- Profile -----------------------------------------------------------------------------------


def test_profile_defaults_and_repr() -> None:
    """A profile without attributes has an empty mapping; repr shows a plain dict."""
    assert Profile("c-1").attributes == {}
    assert repr(Profile("c-1", {"age": 31})) == "Profile(key='c-1', attributes={'age': 31})"


def test_profile_equality_and_hash() -> None:
    """Equality compares key and attributes; the hash uses the key only."""
    a = Profile("c-1", {"tags": ["vip"]})
    assert a == Profile("c-1", {"tags": ["vip"]})
    assert a != Profile("c-1", {"tags": ["new"]})
    assert a != Profile("c-2", {"tags": ["vip"]})
    assert hash(a) == hash(Profile("c-1", {"tags": ["new"]}))
    assert len({a, Profile("c-1", {"tags": ["vip"]})}) == 1


def test_profile_attributes_are_a_read_only_copy() -> None:
    """The attributes are copied on construction and cannot be changed afterwards."""
    source = {"age": 31}
    profile = Profile("c-1", source)
    source["age"] = 99
    assert profile.attributes == {"age": 31}
    with pytest.raises(TypeError):
        profile.attributes["age"] = 1  # type: ignore[index]
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        profile.key = "c-2"  # type: ignore[misc]


def test_profile_attributes_compare_with_dicts_both_ways() -> None:
    """The read-only mapping equals an equal dict from either side."""
    attributes = Profile("c-1", {"a": 1}).attributes
    assert attributes == {"a": 1}
    assert operator.eq({"a": 1}, attributes)  # dict on the left defers to the mapping
    assert attributes != {"a": 2}


def test_profile_pickles() -> None:
    """A profile survives pickling."""
    profile = Profile("c-1", {"age": 31, "tags": ("vip",)})
    assert pickle.loads(pickle.dumps(profile)) == profile


def test_profile_evolve_freezes_again() -> None:
    """attrs.evolve with a new dict stores a read-only copy too."""
    profile = attrs.evolve(Profile("c-1"), attributes={"age": 1})
    assert profile.attributes == {"age": 1}
    with pytest.raises(TypeError):
        profile.attributes["age"] = 2  # type: ignore[index]


@pytest.mark.parametrize(
    ("args", "error", "message"),
    [
        (("",), ValueError, "Profile key must not be empty"),
        ((7,), TypeError, "Profile key must be a string, got 7 (int)"),
        (
            ("c-1", [("age", 1)]),
            TypeError,
            "Profile attributes must be a mapping, got [('age', 1)] (list)",
        ),
        (("c-1", {1: "x"}), TypeError, "Profile attributes names must be strings, got 1 (int)"),
    ],
)
def test_profile_rejects_bad_arguments(
    args: tuple[Any, ...], error: type[Exception], message: str
) -> None:
    """Profile checks its key and that attributes is a mapping with string names."""
    with pytest.raises(error) as info:
        Profile(*args)
    assert str(info.value) == message


# --- Event -------------------------------------------------------------------------------------


def test_event_positional_construction() -> None:
    """Event(key, name, at, properties) works positionally; properties default to empty."""
    event = Event("c-1", "page_view", AT, {"url": "/pricing"})
    assert (event.key, event.name, event.at, event.properties) == (
        "c-1",
        "page_view",
        AT,
        {"url": "/pricing"},
    )
    assert Event("c-1", "signup", AT).properties == {}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-06-01T09:30:00Z", AT),
        ("2024-06-01T09:30:00+00:00", AT),
        ("2024-06-01 11:30+02:00", AT),
        ("2024-06-01T04:00:00-0530", AT),
        ("2024-06-01T10:30:00+01", AT),
        ("2024-06-01T09:30:00.25Z", AT.replace(microsecond=250_000)),
        ("2024-06-01T09:30", datetime(2024, 6, 1, 9, 30)),
    ],
)
def test_event_at_from_iso_text(text: str, expected: datetime) -> None:
    """An ISO 8601 string for at is parsed (Z means UTC; no offset gives a naive datetime)."""
    at = Event("c-1", "x", text).at
    assert at == expected
    assert (at.tzinfo is None) == (expected.tzinfo is None)


@pytest.mark.parametrize(
    ("at", "error", "message"),
    [
        (
            1717234200,
            TypeError,
            "Event at must be a datetime or an ISO 8601 string, got 1717234200 (int)",
        ),
        (
            date(2024, 6, 1),
            TypeError,
            "Event at must be a datetime or an ISO 8601 string, "
            "got datetime.date(2024, 6, 1) (date)",
        ),
        ("2024-06-01", ValueError, "invalid ISO 8601 date-time '2024-06-01'"),
        ("2024-02-30T10:00:00Z", ValueError, "invalid ISO 8601 date-time '2024-02-30T10:00:00Z'"),
        (
            "2024-06-01T10:00:00+25:00",
            ValueError,
            "invalid UTC offset in '2024-06-01T10:00:00+25:00'",
        ),
        ("yesterday", ValueError, "invalid ISO 8601 date-time 'yesterday'"),
    ],
)
def test_event_rejects_bad_at(at: Any, error: type[Exception], message: str) -> None:
    """A bad at raises TypeError or ValueError with a clear message."""
    with pytest.raises(error) as info:
        Event("c-1", "x", at)
    assert str(info.value) == message


@pytest.mark.parametrize(
    ("args", "error", "message"),
    [
        (("", "x", AT), ValueError, "Event key must not be empty"),
        (("c-1", "", AT), ValueError, "Event name must not be empty"),
        ((1, "x", AT), TypeError, "Event key must be a string, got 1 (int)"),
        (("c-1", None, AT), TypeError, "Event name must be a string, got None (NoneType)"),
        (
            ("c-1", "x", AT, ["url"]),
            TypeError,
            "Event properties must be a mapping, got ['url'] (list)",
        ),
    ],
)
def test_event_rejects_bad_arguments(
    args: tuple[Any, ...], error: type[Exception], message: str
) -> None:
    """Event checks key, name and properties minimally."""
    with pytest.raises(error) as info:
        Event(*args)
    assert str(info.value) == message


def test_event_equality_and_hash() -> None:
    """Equality includes properties; the hash leaves them out so lists are fine."""
    a = Event("c-1", "view", AT, {"tags": ["a"]})
    assert a == Event("c-1", "view", AT, {"tags": ["a"]})
    assert a != Event("c-1", "view", AT, {"tags": ["b"]})
    assert a != Event("c-1", "view", AT + timedelta(seconds=1), {"tags": ["a"]})
    assert hash(a) == hash(Event("c-1", "view", AT, {"tags": ["b"]}))


def test_event_properties_are_read_only_and_pickle() -> None:
    """Event properties cannot be changed, and an event survives pickling."""
    event = Event("c-1", "purchase", AT, {"amount": 9.5})
    with pytest.raises(TypeError):
        event.properties["amount"] = 1.0  # type: ignore[index]
    assert pickle.loads(pickle.dumps(event)) == event


# --- IdMap -------------------------------------------------------------------------------------


def test_idmap_assigns_dense_ids_in_first_seen_order() -> None:
    """assign gives 0, 1, 2, … in first-seen order and is idempotent."""
    ids = IdMap()
    assert [ids.assign(k) for k in ("a", "b", "a", "c")] == [0, 1, 0, 2]
    assert (len(ids), ids.high_water, list(ids.items())) == (3, 3, [("a", 0), ("b", 1), ("c", 2)])


def test_idmap_lookups() -> None:
    """id_of, get, key_of and `in` look keys and ids up."""
    ids = IdMap()
    ids.assign("a")
    assert (ids.id_of("a"), ids.get("a"), ids.get("z"), ids.get("z", -1)) == (0, 0, None, -1)
    assert (ids.key_of(0), "a" in ids, "z" in ids) == ("a", True, False)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda ids: ids.id_of("zz"), "\"unknown profile key 'zz'\""),
        (lambda ids: ids.key_of(5), "'no profile has id 5'"),
        (lambda ids: ids.key_of(-1), "'no profile has id -1'"),
        (lambda ids: ids.delete("zz"), "\"unknown profile key 'zz'\""),
        (lambda ids: ids.rename("zz", "a"), "\"unknown profile key 'zz'\""),
    ],
)
def test_idmap_key_errors(call: Any, message: str) -> None:
    """Unknown keys and ids raise KeyError with a clear message."""
    ids = IdMap()
    ids.assign("a")
    with pytest.raises(KeyError) as info:
        call(ids)
    assert str(info.value) == message


def test_idmap_key_of_deleted_id() -> None:
    """A freed id has no key."""
    ids = IdMap()
    ids.assign("a")
    ids.delete("a")
    with pytest.raises(KeyError, match="no profile has id 0"):
        ids.key_of(0)


def test_idmap_does_not_reuse_ids_by_default() -> None:
    """With reuse_ids=False a deleted id is never handed out again."""
    ids = IdMap()
    for key in "abc":
        ids.assign(key)
    assert ids.delete("a") == 0
    assert ids.assign("a") == 3
    assert ids.assign("d") == 4
    assert (list(ids.ids()), list(ids.keys()), len(ids), ids.high_water) == (
        [1, 2, 3, 4],
        ["b", "c", "a", "d"],
        4,
        5,
    )


def test_idmap_reuses_lowest_freed_id_first() -> None:
    """With reuse_ids=True freed ids are reused, lowest first."""
    ids = IdMap(reuse_ids=True)
    for key in "abcd":
        ids.assign(key)
    ids.delete("c")
    ids.delete("a")
    assert [ids.assign(k) for k in ("x", "y", "z")] == [0, 2, 4]
    assert ids.high_water == 5
    assert list(ids.items()) == [("x", 0), ("b", 1), ("y", 2), ("d", 3), ("z", 4)]


def test_idmap_rename_keeps_the_id() -> None:
    """rename moves the id to the new key."""
    ids = IdMap()
    ids.assign("anon-1")
    ids.assign("c-2")
    assert ids.rename("anon-1", "c-1") == 0
    assert (ids.id_of("c-1"), "anon-1" in ids, ids.key_of(0), list(ids.keys())) == (
        0,
        False,
        "c-1",
        ["c-1", "c-2"],
    )
    assert ids.rename("c-1", "c-1") == 0


def test_idmap_rename_onto_existing_key_fails() -> None:
    """rename refuses a new key that already has an id."""
    ids = IdMap()
    ids.assign("a")
    ids.assign("b")
    with pytest.raises(ValueError, match="already has id") as info:
        ids.rename("a", "b")
    assert str(info.value) == "cannot rename 'a' to 'b': 'b' already has id 1"


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda ids: ids.assign(""), ValueError, "a profile key must not be empty"),
        (lambda ids: ids.assign(5), TypeError, "a profile key must be a string, got 5 (int)"),
        (lambda ids: ids.rename("a", ""), ValueError, "a profile key must not be empty"),
        (lambda ids: ids.rename("a", 5), TypeError, "a profile key must be a string, got 5 (int)"),
    ],
)
def test_idmap_rejects_bad_keys(call: Any, error: type[Exception], message: str) -> None:
    """Keys must be non-empty strings."""
    ids = IdMap()
    ids.assign("a")
    with pytest.raises(error) as info:
        call(ids)
    assert str(info.value) == message


def test_idmap_overflow(monkeypatch: pytest.MonkeyPatch) -> None:
    """Assigning past the last uint32 id raises OverflowError (capacity shrunk for the test)."""
    monkeypatch.setattr(IdMap, "_MAX_IDS", 2)
    ids = IdMap()
    ids.assign("a")
    ids.assign("b")
    with pytest.raises(OverflowError) as info:
        ids.assign("c")
    assert str(info.value) == (
        "no ids left: all 2 uint32 ids have been assigned (consider IdMap(reuse_ids=True))"
    )
    assert "c" not in ids
    reusing = IdMap(reuse_ids=True)
    reusing.assign("a")
    reusing.assign("b")
    reusing.delete("a")
    assert reusing.assign("c") == 0


def test_idmap_capacity_is_uint32() -> None:
    """The id space is exactly the uint32 range."""
    assert IdMap._MAX_IDS == 2**32


def test_idmap_repr_and_iteration() -> None:
    """repr is short and iterating an IdMap yields its keys."""
    ids = IdMap(reuse_ids=True)
    ids.assign("a")
    assert repr(ids) == "IdMap(<1 keys>, high_water=1, reuse_ids=True)"
    assert (list(ids), ids.reuse_ids) == (["a"], True)


def test_idmap_pickles() -> None:
    """An IdMap survives pickling with its policy and free ids."""
    ids = IdMap(reuse_ids=True)
    for key in "abc":
        ids.assign(key)
    ids.delete("b")
    copy = pickle.loads(pickle.dumps(ids))
    assert (list(copy.items()), copy.assign("d")) == ([("a", 0), ("c", 2)], 1)


_keys = st.text(alphabet="abcdef", min_size=1, max_size=3)


class IdMapMachine(RuleBasedStateMachine):
    """Checks IdMap against a plain dict model under both id policies."""

    def __init__(self) -> None:
        super().__init__()
        self.reuse = False
        self.ids = IdMap()
        self.model: dict[str, int] = {}
        self.ever_used: set[int] = set()

    @precondition(lambda self: not self.model and not self.ever_used)
    @rule(reuse=st.booleans())
    def choose_policy(self, reuse: bool) -> None:
        """Pick the id policy before anything is assigned."""
        self.reuse = reuse
        self.ids = IdMap(reuse_ids=reuse)

    @rule(key=_keys)
    def assign(self, key: str) -> None:
        """assign returns the existing id, or the lowest free / next new id."""
        new_id = self.ids.assign(key)
        if key in self.model:
            assert new_id == self.model[key]
            return
        free = sorted(self.ever_used - set(self.model.values()))
        if self.reuse and free:
            assert new_id == free[0]
        else:
            assert new_id == len(self.ever_used)
            assert new_id not in self.ever_used
        self.model[key] = new_id
        self.ever_used.add(new_id)

    @rule(key=_keys)
    def delete(self, key: str) -> None:
        """delete returns the freed id, or raises KeyError for an unknown key."""
        if key in self.model:
            assert self.ids.delete(key) == self.model.pop(key)
        else:
            with pytest.raises(KeyError):
                self.ids.delete(key)

    @rule(old=_keys, new=_keys)
    def rename(self, old: str, new: str) -> None:
        """rename keeps the id, or fails without changing anything."""
        if old not in self.model:
            with pytest.raises(KeyError):
                self.ids.rename(old, new)
        elif new != old and new in self.model:
            with pytest.raises(ValueError, match="already has id"):
                self.ids.rename(old, new)
        else:
            assert self.ids.rename(old, new) == self.model[old]
            self.model[new] = self.model.pop(old)

    @invariant()
    def agrees_with_model(self) -> None:
        """Both directions of the map match the model."""
        assert len(self.ids) == len(self.model)
        assert dict(self.ids.items()) == self.model
        assert list(self.ids.ids()) == sorted(self.model.values())
        assert all(self.ids.key_of(i) == k for k, i in self.model.items())
        assert self.ids.high_water == len(self.ever_used)


TestIdMapMachine = IdMapMachine.TestCase
