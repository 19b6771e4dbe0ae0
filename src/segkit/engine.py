"""The Engine: profiles, events, segments and their memberships, kept up to date.

The Engine owns an :class:`~segkit.IdMap`, the attribute and event indexes, the
segment definitions (dynamic: a rule; static: explicit keys) with their
dependency graph, and one membership bitmap per segment.

* ``upsert``/``track`` validate their input, then re-evaluate *only* the dynamic
  segments whose rules read what changed (and the segments that depend on those),
  for that profile only, and return the :class:`MembershipChange`.
* ``define``/``redefine``/``refresh``/``query`` evaluate a rule over every profile
  with a bitmap plan (see :func:`segkit.compile_plan`).
* Bulk calls are all-or-nothing: every record is validated before anything changes.

The time used for time-relative rules (``in last 30d``) is the Engine's clock, read
once per call (``Engine(schema, clock=lambda: ...)`` for tests and backfills).

>>> import segkit as sk
>>> from datetime import datetime, timezone
>>> now = datetime(2024, 6, 30, tzinfo=timezone.utc)
>>> schema = sk.Schema(attributes={"country": "string", "age": "int"},
...                    events={"cart_abandoned": {}}, timezone="UTC")
>>> engine = sk.Engine(schema, clock=lambda: now)
>>> engine.define("fr_adults", 'country = "FR" and age >= 18')
Members(0)
>>> engine.upsert("c-1", {"country": "FR", "age": 31})
MembershipChange(entered={'fr_adults': ['c-1']}, exited={})
>>> engine.upsert("c-1", {"age": 17})
MembershipChange(entered={}, exited={'fr_adults': ['c-1']})

.. versionadded:: 0.1.0
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any, Final

import attrs

from segkit.compile.changes import ChangeIndex
from segkit.compile.plan import Plan, compile_plan
from segkit.compile.predicate import Predicate, _Compiler, _Ctx, compile_predicate
from segkit.dsl import ast
from segkit.dsl.printer import to_text
from segkit.dsl.rule import Rule, RuleLike, as_rule
from segkit.errors import SchemaError, SegmentError
from segkit.index import AttributeIndex, Bitmap, EventIndex, Members
from segkit.records import Event, IdMap, Profile
from segkit.schema import Schema
from segkit.segments import SegmentGraph
from segkit.timeutil import ensure_aware

__all__ = ["Engine", "Explanation", "MembershipChange", "SegmentInfo"]

Clock = Callable[[], datetime]


def _system_clock() -> datetime:
    return datetime.now(timezone.utc)


@attrs.frozen
class MembershipChange:
    """Who entered and who left which segment, as sorted key lists per segment.

    Empty changes are falsy. Combine two with ``|`` (later changes win: a key that
    entered and then left a segment appears in neither list).

    >>> change = MembershipChange({"vip": ["c-1"]}, {})
    >>> bool(change), change.segments
    (True, ['vip'])

    .. versionadded:: 0.1.0
    """

    entered: Mapping[str, list[str]] = attrs.field(factory=dict)
    exited: Mapping[str, list[str]] = attrs.field(factory=dict)

    def __bool__(self) -> bool:
        return bool(self.entered or self.exited)

    @property
    def segments(self) -> list[str]:
        """The segments whose membership changed, sorted."""
        return sorted(set(self.entered) | set(self.exited))

    def to_dict(self) -> dict[str, dict[str, list[str]]]:
        """A JSON-safe copy."""
        return {
            "entered": {k: list(v) for k, v in self.entered.items()},
            "exited": {k: list(v) for k, v in self.exited.items()},
        }


class _ChangeLog:
    """Net membership changes during one Engine call."""

    def __init__(self) -> None:
        self.before: dict[tuple[str, str], bool] = {}
        self.after: dict[tuple[str, str], bool] = {}

    def record(self, segment: str, key: str, was: bool, now: bool) -> None:
        self.before.setdefault((segment, key), was)
        self.after[(segment, key)] = now

    def result(self) -> MembershipChange:
        if not self.after:
            return MembershipChange({}, {})
        entered: dict[str, list[str]] = {}
        exited: dict[str, list[str]] = {}
        for (segment, key), now in self.after.items():
            was = self.before[(segment, key)]
            if now and not was:
                entered.setdefault(segment, []).append(key)
            elif was and not now:
                exited.setdefault(segment, []).append(key)
        return MembershipChange(
            {s: sorted(ks) for s, ks in sorted(entered.items())},
            {s: sorted(ks) for s, ks in sorted(exited.items())},
        )


@attrs.frozen
class SegmentInfo:
    """A segment's definition and size, from :meth:`Engine.segment`.

    >>> import segkit as sk
    >>> engine = sk.Engine(sk.Schema(attributes={"age": "int"}))
    >>> _ = engine.upsert("a", {"age": 30})
    >>> _ = engine.define("adults", "age >= 18")
    >>> _ = engine.define("adult_30s", 'in segment "adults" and age < 40')
    >>> info = engine.segment("adult_30s")
    >>> info.kind, info.size, sorted(info.depends_on), str(info.rule)
    ('dynamic', 1, ['adults'], 'in segment "adults" and age < 40')

    .. versionadded:: 0.1.0
    """

    name: str
    kind: str  # "dynamic" or "static"
    rule: Rule | None
    size: int
    depends_on: frozenset[str]


class _Segment:
    __slots__ = ("attributes", "events", "fn", "ids", "name", "plan", "predicate", "rank", "rule")

    def __init__(self, name: str, rule: Rule | None) -> None:
        self.name = name
        self.ids = Bitmap()
        self.rank = 0  # position in the dependency order of the dynamic segments
        self.set_rule(rule, None, None)

    def set_rule(self, rule: Rule | None, plan: Plan | None, predicate: Predicate | None) -> None:
        self.rule = rule
        self.plan = plan
        self.predicate = predicate
        # the compiled closure, called directly on the hot path (skips argument checks)
        self.fn = None if predicate is None else predicate._fn
        self.attributes = frozenset() if rule is None else rule.attributes
        self.events = frozenset() if rule is None else rule.events

    @property
    def dynamic(self) -> bool:
        return self.rule is not None


@attrs.frozen
class Explanation:
    """Why a profile is or is not in a segment: each clause, whether it held, what it read.

    ``str()`` draws the tree; ``held`` is the verdict of the whole rule;
    ``children`` explain the operands of ``and``/``or``/``not``.

    >>> import segkit as sk
    >>> engine = sk.Engine(sk.Schema(attributes={"plan": "string"}))
    >>> _ = engine.upsert("c-1", {"plan": "free"})
    >>> _ = engine.define("paying", 'plan in ["pro", "team"]')
    >>> why = engine.explain("paying", "c-1")
    >>> why.held, why.values
    (False, {'plan': 'free'})

    .. versionadded:: 0.1.0
    """

    text: str
    held: bool
    values: Mapping[str, Any] = attrs.field(factory=dict)
    children: tuple[Explanation, ...] = ()

    def lines(self, depth: int = 0) -> list[str]:
        """The rendered lines of this node and its children."""
        mark = "yes" if self.held else "no "
        shown = ", ".join(f"{k} = {_show(v)}" for k, v in self.values.items())
        line = f"{'  ' * depth}{mark}  {self.text}" + (f"    [{shown}]" if shown else "")
        out = [line]
        for child in self.children:
            out.extend(child.lines(depth + 1))
        return out

    def __str__(self) -> str:
        return "\n".join(self.lines())


def _show(value: Any) -> str:
    if value is None:
        return "missing"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


class Engine:
    """Profiles, events and segments with incrementally maintained memberships.

    ``schema`` validates every record; ``clock`` gives the time for time-relative
    rules (default: the system clock, in UTC).

    >>> import segkit as sk
    >>> schema = sk.Schema(attributes={"plan": "string"}, timezone="UTC")
    >>> engine = sk.Engine(schema)
    >>> engine.upsert_many({"a": {"plan": "pro"}, "b": {"plan": "free"}})
    MembershipChange(entered={}, exited={})
    >>> engine.define("pro", 'plan = "pro"').to_list()
    ['a']
    >>> engine.query('plan != "pro"').to_list()
    ['b']

    .. versionadded:: 0.1.0
    """

    def __init__(self, schema: Schema, *, clock: Clock | None = None) -> None:
        if not isinstance(schema, Schema):
            raise TypeError(f"expected a segkit.Schema, got {type(schema).__name__}")
        self.schema = schema
        self._clock: Clock = clock or _system_clock
        self._ids = IdMap()
        self._universe = Bitmap()
        self._attrs: dict[int, dict[str, Any]] = {}
        self._events: dict[int, list[Event]] = {}
        self._attr_index: dict[str, AttributeIndex] = {
            name: AttributeIndex(is_list=t.is_list) for name, t in schema.attributes.items()
        }
        self._event_index = EventIndex()
        self._segments: dict[str, _Segment] = {}
        self._graph = SegmentGraph()
        self._order: list[_Segment] | None = None
        self._readers: dict[tuple[str, str], list[_Segment]] = {}
        self._changes: ChangeIndex[_Segment] | None = None
        self._used: set[str] = set()  # segments that other segments refer to
        self._bulk = BULK
        self._plans: dict[str, Plan] = {}

    # --- the IndexView protocol (read by plans) --------------------------------------------

    @property
    def universe(self) -> Bitmap:
        """Ids of every live profile."""
        return self._universe

    @property
    def event_index(self) -> EventIndex:
        """Which profiles have events of which type."""
        return self._event_index

    def attribute_index(self, name: str) -> AttributeIndex | None:
        """The index of attribute ``name``."""
        return self._attr_index.get(name)

    def segment_ids(self, name: str) -> Bitmap:
        """The membership bitmap of segment ``name``."""
        return self._segment(name).ids

    def attributes_of(self, pid: int) -> Mapping[str, Any]:
        """The stored attributes of profile ``pid``."""
        return self._attrs.get(pid, _NO_ATTRS)

    def events_of(self, pid: int) -> Sequence[Event]:
        """The stored events of profile ``pid``."""
        return self._events.get(pid, ())

    def key_of(self, pid: int) -> str:
        """The external key of profile ``pid``."""
        return self._ids.key_of(pid)

    # --- helpers ----------------------------------------------------------------------------

    def now(self) -> datetime:
        """The Engine's clock, as an aware UTC datetime."""
        moment = self._clock()
        if moment.tzinfo is timezone.utc:
            return moment
        return ensure_aware(moment, self.schema.tz, "clock time").astimezone(timezone.utc)

    def _segment(self, name: str) -> _Segment:
        try:
            return self._segments[name]
        except KeyError:
            from segkit._suggest import suggest

            hint = suggest(name, self._segments) if isinstance(name, str) else None
            extra = f" (did you mean {hint!r}?)" if hint else ""
            raise SegmentError(f"unknown segment {name!r}{extra}") from None

    def _resolve(self, name: str, key: str) -> bool:
        pid = self._ids.get(key)
        return pid is not None and pid in self._segment(name).ids

    def _members(self, ids: Bitmap) -> Members:
        return Members(ids, self._ids)

    @property
    def segments(self) -> list[str]:
        """Names of the defined segments, sorted."""
        return sorted(self._segments)

    def segment(self, name: str) -> SegmentInfo:
        """The definition and size of segment ``name``."""
        seg = self._segment(name)
        return SegmentInfo(
            name,
            "dynamic" if seg.dynamic else "static",
            seg.rule,
            len(seg.ids),
            self._graph.depends_on(name),
        )

    def __len__(self) -> int:
        return len(self._universe)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key in self._ids

    def get(self, key: str) -> dict[str, Any] | None:
        """A copy of the stored attributes of ``key``, or ``None`` if unknown."""
        pid = self._ids.get(key)
        return None if pid is None else dict(self._attrs[pid])

    def events(self, key: str) -> list[Event]:
        """The stored events of ``key`` (in arrival order)."""
        pid = self._ids.get(key)
        return [] if pid is None else list(self._events.get(pid, ()))

    # --- profiles and events ----------------------------------------------------------------

    def upsert(self, key: str, attributes: Mapping[str, Any]) -> MembershipChange:
        """Create or update one profile (values merge; ``None`` unsets).

        Returns the membership changes this caused.

        >>> import segkit as sk
        >>> engine = sk.Engine(sk.Schema(attributes={"age": "int"}))
        >>> _ = engine.define("adults", "age >= 18")
        >>> engine.upsert("c-1", {"age": 17})
        MembershipChange(entered={}, exited={})
        >>> engine.upsert("c-1", {"age": 18})
        MembershipChange(entered={'adults': ['c-1']}, exited={})
        """
        values = self.schema.validate_profile(key, attributes)
        log = _ChangeLog()
        self._apply(key, values, log, self.now())
        return log.result()

    def upsert_many(
        self,
        records: Mapping[str, Mapping[str, Any]]
        | Iterable[tuple[str, Mapping[str, Any]] | Profile],
    ) -> MembershipChange:
        """Create or update many profiles: all-or-nothing on bad input.

        ``records`` is a mapping ``{key: attributes}``, or an iterable of
        ``(key, attributes)`` pairs or :class:`~segkit.Profile` objects.

        >>> import segkit as sk
        >>> engine = sk.Engine(sk.Schema(attributes={"age": "int"}))
        >>> engine.upsert_many([("a", {"age": 3}), ("b", {"age": "x"})])
        Traceback (most recent call last):
        ...
        segkit.errors.SchemaError: profile 'b': attribute 'age' expects int, got 'x' (str)
        >>> len(engine)
        0
        """
        validated: list[tuple[str, dict[str, Any]]] = []
        if isinstance(records, Mapping):
            records = list(records.items())
        for record in records:
            if isinstance(record, Profile):
                record = (record.key, record.attributes)
            if not (isinstance(record, tuple) and len(record) == 2):
                raise SchemaError(
                    f"expected (key, attributes) pairs, got {type(record).__name__}",
                    value=record,
                )
            key, values = record
            validated.append((key, self.schema.validate_profile(key, values)))
        if len(validated) >= self._bulk:
            return self._upsert_bulk(validated)
        log = _ChangeLog()
        now = self.now()
        for key, values in validated:
            self._apply(key, values, log, now)
        return log.result()

    def _apply(self, key: str, values: dict[str, Any], log: _ChangeLog, now: datetime) -> None:
        """Merge one validated record and update the memberships it affects."""
        pid, created = self._ensure(key)
        stored = self._attrs[pid]
        index = self._attr_index
        changes: list[tuple[str, Any, Any]] = []
        for name, value in values.items():
            old = stored.get(name)
            if value is None:
                if old is not None:
                    del stored[name]
                    changes.append((name, old, None))
                    index[name].unset(pid)
            elif old is None or old != value or type(old) is not type(value):
                stored[name] = value
                changes.append((name, old, value))
                index[name].set(pid, value)
        if created:
            self._reevaluate(pid, log, now)
        elif changes:
            self._reevaluate_changes(pid, changes, log, now)

    def _upsert_bulk(self, validated: list[tuple[str, dict[str, Any]]]) -> MembershipChange:
        """Apply many records, then re-evaluate each affected segment once, with its
        bitmap plan restricted to the profiles that changed."""
        touched = Bitmap()
        changed_names: set[str] = set()
        created = False
        index = self._attr_index
        for key, values in validated:
            pid, new = self._ensure(key)
            created = created or new
            stored = self._attrs[pid]
            for name, value in values.items():
                old = stored.get(name)
                if value is None:
                    if old is not None:
                        del stored[name]
                        changed_names.add(name)
                        index[name].unset(pid)
                        touched.add(pid)
                elif old is None or old != value or type(old) is not type(value):
                    stored[name] = value
                    changed_names.add(name)
                    index[name].set(pid, value)
                    touched.add(pid)
            if new:
                touched.add(pid)
        if created:
            segments = self._dynamic_order()
        else:
            found = {s.name: s for n in changed_names for s in self._readers_of("a", n)}
            segments = sorted(found.values(), key=lambda seg: seg.rank)
        return self._reevaluate_within(segments, touched, self.now())

    def _reevaluate_within(
        self, segments: Iterable[_Segment], ids: Bitmap, now: datetime
    ) -> MembershipChange:
        """Re-evaluate ``segments`` (in dependency order) for the profiles ``ids``."""
        log = _ChangeLog()
        key_of = self._ids.key_of
        for seg in segments:
            assert seg.plan is not None  # dynamic
            new = seg.plan.execute(self, now, within=ids)
            old = seg.ids & ids
            for pid in new - old:
                log.record(seg.name, key_of(pid), False, True)
            for pid in old - new:
                log.record(seg.name, key_of(pid), True, False)
            seg.ids -= old
            seg.ids |= new
        return log.result()

    def track(self, event: Event) -> MembershipChange:
        """Record one event (creating an empty profile for an unknown key)."""
        return self.track_many([event])

    def track_many(self, events: Iterable[Event]) -> MembershipChange:
        """Record many events: all-or-nothing on bad input."""
        validated: list[Event] = []
        for event in events:
            if not isinstance(event, Event):
                raise SchemaError(
                    f"expected a segkit.Event, got {type(event).__name__}", value=event
                )
            validated.append(self.schema.validate_event(event))
        log = _ChangeLog()
        now = self.now()
        touched: dict[int, set[str]] = {}
        created: set[int] = set()
        for event in validated:
            pid, new = self._ensure(event.key)
            if new:
                created.add(pid)
            self._events.setdefault(pid, []).append(event)
            self._event_index.add(pid, event.name)
            touched.setdefault(pid, set()).add(event.name)
        for pid, names in touched.items():
            if pid in created:
                self._reevaluate(pid, log, now)
            else:
                self._reevaluate(pid, log, now, events=names)
        return log.result()

    def delete(self, key: str) -> MembershipChange:
        """Remove a profile, its events and its memberships (static ones too)."""
        pid = self._ids.get(key)
        if pid is None:
            raise KeyError(f"unknown profile {key!r}")
        log = _ChangeLog()
        for seg in self._segments.values():
            if pid in seg.ids:
                seg.ids.discard(pid)
                log.record(seg.name, key, True, False)
        for name in self._attrs.pop(pid, {}):
            self._attr_index[name].unset(pid)
        self._events.pop(pid, None)
        self._event_index.remove_profile(pid)
        self._universe.discard(pid)
        self._ids.delete(key)
        return log.result()

    def merge(self, anonymous_key: str, *, into: str) -> MembershipChange:
        """Identify an anonymous profile as ``into``: its events and static memberships
        move over, its attributes fill the gaps (``into``'s own values win), then it is
        deleted. When ``into`` does not exist yet, the anonymous profile is renamed.
        """
        anon = self._ids.get(anonymous_key)
        if anon is None:
            raise KeyError(f"unknown profile {anonymous_key!r}")
        if anonymous_key == into:
            raise ValueError("cannot merge a profile into itself")
        log = _ChangeLog()
        if into not in self._ids:
            for seg in self._segments.values():
                if anon in seg.ids:
                    log.record(seg.name, anonymous_key, True, False)
                    log.record(seg.name, into, False, True)
            self._ids.rename(anonymous_key, into)
            self._events[anon] = [attrs.evolve(e, key=into) for e in self._events.get(anon, [])]
            self._reevaluate(anon, log, self.now())
            return log.result()
        target = self._ids.id_of(into)
        moved_attrs = {k: v for k, v in self._attrs[anon].items() if k not in self._attrs[target]}
        moved_events = [attrs.evolve(e, key=into) for e in self._events.get(anon, [])]
        statics = [s for s in self._segments.values() if not s.dynamic and anon in s.ids]
        for change_key, segs in self.delete(anonymous_key).exited.items():
            for k in segs:
                log.record(change_key, k, True, False)
        for name, value in moved_attrs.items():
            self._attrs[target][name] = value
            self._attr_index[name].set(target, value)
        for event in moved_events:
            self._events.setdefault(target, []).append(event)
            self._event_index.add(target, event.name)
        for seg in statics:
            if target not in seg.ids:
                seg.ids.add(target)
                log.record(seg.name, into, False, True)
        self._reevaluate(target, log, self.now())
        return log.result()

    def _ensure(self, key: str) -> tuple[int, bool]:
        pid = self._ids.get(key)
        if pid is not None:
            return pid, False
        pid = self._ids.assign(key)
        self._universe.add(pid)
        self._attrs[pid] = {}
        return pid, True

    def _definitions_changed(self) -> None:
        """Forget the cached evaluation orders (a segment was added, changed or dropped)."""
        self._order = None
        self._readers.clear()
        self._changes = None
        self._used = {name for name in self._segments if self._graph.users_of(name)}

    def _dynamic_order(self) -> list[_Segment]:
        """The dynamic segments in dependency order (cached)."""
        order = self._order
        if order is None:
            order = [self._segments[n] for n in self._graph.order() if self._segments[n].dynamic]
            for rank, seg in enumerate(order):
                seg.rank = rank
            self._order = order
        return order

    def _readers_of(self, kind: str, name: str) -> list[_Segment]:
        """Dynamic segments reading attribute (``kind="a"``) or event (``"e"``) ``name``,
        and the segments depending on them, in dependency order (cached)."""
        cached = self._readers.get((kind, name))
        if cached is None:
            order = self._dynamic_order()
            direct = [s.name for s in order if name in (s.attributes if kind == "a" else s.events)]
            chosen = {*direct, *self._graph.dependents(direct)}
            cached = [s for s in order if s.name in chosen]
            self._readers[(kind, name)] = cached
        return cached

    def _change_index(self) -> ChangeIndex[_Segment]:
        """The attribute leaves of every dynamic rule (cached)."""
        found = self._changes
        if found is None:
            rules = [(seg, seg.rule.expr) for seg in self._dynamic_order() if seg.rule]
            found = self._changes = ChangeIndex(rules, _Compiler(self.schema, self._resolve))
        return found

    def _reevaluate_changes(
        self, pid: int, changes: list[tuple[str, Any, Any]], log: _ChangeLog, now: datetime
    ) -> None:
        """Re-evaluate for one profile only the segments whose attribute leaves flipped."""
        key = self._ids.key_of(pid)
        ctx = _Ctx(self._events.get(pid, ()), now, key)
        index = self._change_index()
        verdicts: dict[_Segment, bool] = {}
        for name, old, new in changes:
            index.affected(name, old, new, ctx, verdicts)
        if not verdicts:
            return
        if any(seg.name in self._used for seg in verdicts):
            for name in self._graph.dependents([seg.name for seg in verdicts]):
                dependent = self._segments[name]
                if dependent.dynamic:
                    verdicts.setdefault(dependent, True)
        values = self._attrs[pid]
        ordered = sorted(verdicts, key=lambda seg: seg.rank) if len(verdicts) > 1 else verdicts
        for seg in ordered:
            was = pid in seg.ids
            if verdicts[seg]:
                fn = seg.fn
                assert fn is not None  # dynamic
                now_in = fn(values, ctx)
            else:
                now_in = False
            if now_in != was:
                if now_in:
                    seg.ids.add(pid)
                else:
                    seg.ids.discard(pid)
                log.record(seg.name, key, was, now_in)

    def _reevaluate(
        self,
        pid: int,
        log: _ChangeLog,
        now: datetime,
        *,
        attributes: Iterable[str] | None = None,
        events: Iterable[str] | None = None,
    ) -> None:
        """Re-evaluate, for one profile, the dynamic segments reading the changed
        ``attributes``/``events`` (all segments when both are None) and every segment
        depending on them, in dependency order. ``now`` must be in UTC."""
        if attributes is None and events is None:
            segments = self._dynamic_order()
        else:
            lists = [self._readers_of("a", n) for n in attributes or ()]
            lists += [self._readers_of("e", n) for n in events or ()]
            lists = [found for found in lists if found]
            if not lists:
                return
            if len(lists) == 1:
                segments = lists[0]
            else:
                unique = {seg.name: seg for found in lists for seg in found}
                segments = sorted(unique.values(), key=lambda seg: seg.rank)
        if not segments:
            return
        key = self._ids.key_of(pid)
        ctx = _Ctx(self._events.get(pid, ()), now, key)
        values = self._attrs[pid]
        for seg in segments:
            fn = seg.fn
            assert fn is not None  # dynamic
            was = pid in seg.ids
            now_in = fn(values, ctx)
            if now_in != was:
                if now_in:
                    seg.ids.add(pid)
                else:
                    seg.ids.discard(pid)
                log.record(seg.name, key, was, now_in)

    # --- segments ---------------------------------------------------------------------------

    def _compile(self, name: str, rule: RuleLike) -> tuple[Rule, Plan, Predicate]:
        if not isinstance(name, str) or not name:
            raise SegmentError("a segment name must be a non-empty string")
        checked = as_rule(rule)
        plan = compile_plan(checked, self.schema, segments=self._resolve)
        predicate = compile_predicate(checked, self.schema, segments=self._resolve)
        return plan.rule, plan, predicate

    def define(self, name: str, rule: RuleLike) -> Members:
        """Define a dynamic segment from a rule and evaluate it; returns its members.

        Raises :class:`~segkit.SegmentError` if the name exists or the rule refers to
        an unknown segment, and the rule's own errors if it does not check.
        """
        if name in self._segments:
            raise SegmentError(f"segment {name!r} already exists; use redefine() to change it")
        checked, plan, predicate = self._compile(name, rule)
        self._graph.add(name, checked.segments)
        seg = _Segment(name, checked)
        seg.set_rule(checked, plan, predicate)
        seg.ids = plan.execute(self, self.now())
        self._segments[name] = seg
        self._definitions_changed()
        return self._members(seg.ids)

    def define_static(self, name: str, keys: Iterable[str]) -> Members:
        """Define a static segment with explicit members (all keys must exist)."""
        if not isinstance(name, str) or not name:
            raise SegmentError("a segment name must be a non-empty string")
        if name in self._segments:
            raise SegmentError(f"segment {name!r} already exists")
        keys = list(keys)
        unknown = sorted({k for k in keys if k not in self._ids})
        if unknown:
            shown = ", ".join(repr(k) for k in unknown[:5]) + (", ..." if len(unknown) > 5 else "")
            raise SegmentError(f"static segment {name!r}: unknown profiles {shown}")
        self._graph.add(name, ())
        seg = _Segment(name, None)
        seg.ids = Bitmap(self._ids.id_of(k) for k in keys)
        self._segments[name] = seg
        self._definitions_changed()
        return self._members(seg.ids)

    def redefine(self, name: str, rule: RuleLike) -> MembershipChange:
        """Replace a dynamic segment's rule; re-evaluates it and the segments using it."""
        seg = self._segment(name)
        if not seg.dynamic:
            raise SegmentError(f"segment {name!r} is static; drop it and define it again")
        checked, plan, predicate = self._compile(name, rule)
        self._graph.replace(name, checked.segments)
        seg.set_rule(checked, plan, predicate)
        self._definitions_changed()
        return self._refresh([name, *self._graph.dependents([name])], self.now())

    def drop(self, name: str) -> None:
        """Delete a segment; refused while other segments refer to it."""
        self._segment(name)
        self._graph.remove(name)
        del self._segments[name]
        self._definitions_changed()

    def refresh(self, now: datetime | None = None) -> MembershipChange:
        """Re-evaluate the time-relative dynamic segments (and their users) at ``now``."""
        when = self.now() if now is None else ensure_aware(now, self.schema.tz, "now")
        relative = [n for n, s in self._segments.items() if s.rule and s.rule.is_time_relative]
        return self._refresh([*relative, *self._graph.dependents(relative)], when)

    def _refresh(self, names: Iterable[str], now: datetime) -> MembershipChange:
        log = _ChangeLog()
        for name in self._graph.order(set(names)):
            seg = self._segments[name]
            if seg.plan is None:
                continue
            new = seg.plan.execute(self, now)
            key_of = self._ids.key_of
            for pid in new - seg.ids:
                log.record(name, key_of(pid), False, True)
            for pid in seg.ids - new:
                log.record(name, key_of(pid), True, False)
            seg.ids = new
        return log.result()

    def members(self, name: str) -> Members:
        """The current members of segment ``name``."""
        return self._members(self._segment(name).ids.copy())

    def query(self, rule: RuleLike, now: datetime | None = None) -> Members:
        """Evaluate a rule over every profile without storing anything.

        Compiled plans of the last :data:`PLAN_CACHE` rule texts are kept, so
        running the same text again skips parsing and planning.

        >>> import segkit as sk
        >>> engine = sk.Engine(sk.Schema(attributes={"age": "int"}))
        >>> _ = engine.upsert_many({"a": {"age": 17}, "b": {"age": 30}})
        >>> engine.query("age >= 18")
        Members(1: 'b')
        """
        plan = self._plans.get(rule) if isinstance(rule, str) else None
        if plan is None:
            plan = compile_plan(rule, self.schema, segments=self._resolve)
            if isinstance(rule, str):
                if len(self._plans) >= PLAN_CACHE:
                    del self._plans[next(iter(self._plans))]  # the oldest entry
                self._plans[rule] = plan
        for ref in plan.rule.segments:
            self._segment(ref)
        when = self.now() if now is None else now
        return self._members(plan.execute(self, when))

    def explain(self, name: str, key: str, now: datetime | None = None) -> Explanation:
        """Which clauses of segment ``name``'s rule hold for ``key``, and the values read.

        >>> import segkit as sk
        >>> engine = sk.Engine(sk.Schema(attributes={"country": "string", "age": "int"}))
        >>> _ = engine.upsert("c-1", {"country": "FR", "age": 51})
        >>> _ = engine.define("fr_millennials", 'country = "FR" and age between 29 and 44')
        >>> print(engine.explain("fr_millennials", "c-1"))
        no   country = "FR" and age between 29 and 44
          yes  country = "FR"    [country = 'FR']
          no   age between 29 and 44    [age = 51]
        """
        seg = self._segment(name)
        pid = self._ids.get(key)
        if pid is None:
            raise KeyError(f"unknown profile {key!r}")
        if seg.rule is None:
            return Explanation(f"static segment {name!r}", pid in seg.ids)
        when = self.now() if now is None else ensure_aware(now, self.schema.tz, "now")
        compiler = _Compiler(self.schema, self._resolve)
        values = self._attrs[pid]
        ctx_events = self._events.get(pid, ())

        def explain(node: ast.Expr) -> Explanation:
            held = compiler.compile(node)(values, _Ctx(ctx_events, when, key))
            children: tuple[Explanation, ...] = ()
            if isinstance(node, (ast.And, ast.Or)):
                children = tuple(explain(item) for item in node.items)
            elif isinstance(node, ast.Not):
                children = (explain(node.operand),)
            read = {node.field: values.get(node.field)} if isinstance(node, ast.FIELD_NODES) else {}
            return Explanation(to_text(node), held, read, children)

        return explain(seg.rule.expr)


_NO_ATTRS: Mapping[str, Any] = {}

#: ``upsert_many`` with at least this many records re-evaluates each affected segment
#: once with its bitmap plan over the changed profiles, instead of profile by profile.
BULK: Final = 4096

#: ``Engine.query`` keeps the compiled plans of this many recent rule texts.
PLAN_CACHE: Final = 128
