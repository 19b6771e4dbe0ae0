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
* Segment definitions, memberships and size snapshots are kept in a
  :class:`~segkit.Storage` (an :class:`~segkit.InMemoryStorage` by default):
  definition changes are saved at once, membership changes from ``upsert``/``track``
  at :meth:`Engine.refresh` and :meth:`Engine.save`; :meth:`Engine.from_storage`
  restores an engine, to which the application re-supplies its profiles and events.

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

from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Final

import attrs

from segkit.compile.changes import ChangeIndex
from segkit.compile.plan import Plan, compile_plan
from segkit.compile.predicate import Predicate, _Compiler, _Ctx, compile_predicate
from segkit.dsl import ast
from segkit.dsl.printer import to_text
from segkit.dsl.rule import Rule, RuleLike, as_rule
from segkit.errors import ConflictError, CorruptDataError, RuleError, SchemaError, SegmentError
from segkit.index import AttributeIndex, Bitmap, EventIndex, Members
from segkit.progress import ProgressLike, total_of
from segkit.progress import start as start_progress
from segkit.records import Event, IdMap, Profile
from segkit.schema import Schema
from segkit.segments import SegmentGraph
from segkit.storage import (
    InMemoryStorage,
    SegmentRecord,
    SegmentState,
    Snapshot,
    Storage,
    Versioned,
    content_address,
    drop_segment_state,
    encode_keys,
    load_segment_states,
    save_segment_state,
)
from segkit.timeutil import ensure_aware

if TYPE_CHECKING:
    from datetime import timedelta

    from segkit.analysis.attention import AttentionReport
    from segkit.analysis.drivers import Drivers
    from segkit.analysis.funnel import Funnel, FunnelReport
    from segkit.analysis.hygiene import HygieneReport
    from segkit.analysis.lookalike import Bins, Lookalike
    from segkit.analysis.metrics import Comparison, Metric
    from segkit.analysis.overlap import OverlapReport
    from segkit.analysis.split import BucketCache, Split
    from segkit.analysis.usage import UsageLog

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

    __slots__ = ("after", "before")

    def __init__(self) -> None:
        self.before: dict[tuple[str, str], bool] = {}
        self.after: dict[tuple[str, str], bool] = {}

    def record(self, segment: str, key: str, was: bool, now: bool) -> None:
        pair = (segment, key)
        self.before.setdefault(pair, was)
        self.after[pair] = now

    def record_flips(self, key: str, entered: list[str], exited: list[str]) -> None:
        """``key`` entered the segments named ``entered`` and left ``exited``."""
        before, after = self.before, self.after
        for segment in entered:
            pair = (segment, key)
            before.setdefault(pair, False)
            after[pair] = True
        for segment in exited:
            pair = (segment, key)
            before.setdefault(pair, True)
            after[pair] = False

    def result(self) -> MembershipChange:
        if not self.after:
            return MembershipChange({}, {})
        entered: list[tuple[str, str]] = []
        exited: list[tuple[str, str]] = []
        before = self.before
        for pair, now in self.after.items():
            was = before[pair]
            if now and not was:
                entered.append(pair)
            elif was and not now:
                exited.append(pair)
        return MembershipChange(_grouped(entered), _grouped(exited))


def _grouped(pairs: list[tuple[str, str]]) -> dict[str, list[str]]:
    """``(segment, key)`` pairs as ``{segment: [key, ...]}``, segments and keys sorted."""
    pairs.sort()
    out: dict[str, list[str]] = {}
    for segment, key in pairs:
        keys = out.get(segment)
        if keys is None:
            out[segment] = [key]
        else:
            keys.append(key)
    return out


@attrs.frozen
class SegmentInfo:
    """A segment's definition, size and stored metadata, from :meth:`Engine.segment`.

    ``object_type``, ``tags``, ``created_at``, ``updated_at`` and ``updated_by``
    are the metadata kept in the storage (see :class:`~segkit.SegmentRecord`);
    ``version`` is the stored definition's version, which changes with every save.

    >>> import segkit as sk
    >>> engine = sk.Engine(sk.Schema(attributes={"age": "int"}))
    >>> _ = engine.upsert("a", {"age": 30})
    >>> _ = engine.define("adults", "age >= 18")
    >>> _ = engine.define("adult_30s", 'in segment "adults" and age < 40', tags=["age"])
    >>> info = engine.segment("adult_30s")
    >>> info.kind, info.size, sorted(info.depends_on), str(info.rule)
    ('dynamic', 1, ['adults'], 'in segment "adults" and age < 40')
    >>> info.object_type, info.tags, info.updated_by
    ('contact', ('age',), None)

    .. versionadded:: 0.1.0
    """

    name: str
    kind: str  # "dynamic" or "static"
    rule: Rule | None
    size: int
    depends_on: frozenset[str]
    # the stored metadata (left out of the repr, which stays one short line)
    object_type: str = attrs.field(default="contact", repr=False)
    tags: tuple[str, ...] = attrs.field(default=(), repr=False)
    created_at: datetime | None = attrs.field(default=None, repr=False)
    updated_at: datetime | None = attrs.field(default=None, repr=False)
    updated_by: str | None = attrs.field(default=None, repr=False)
    version: int | None = attrs.field(default=None, repr=False)


class _Segment:
    __slots__ = (
        "attributes",
        "events",
        "fn",
        "ids",
        "name",
        "pending",
        "plan",
        "predicate",
        "rank",
        "record",
        "rule",
        "saved_ids",
        "saved_pending",
        "stored",
        "version",
    )

    def __init__(self, name: str, rule: Rule | None) -> None:
        self.name = name
        self.ids = Bitmap()
        self.rank = 0  # position in the dependency order of the dynamic segments
        self.set_rule(rule, None, None)
        # --- persistence (never read on the hot paths) ---
        # the stored definition and its version (set by the first save or load)
        self.record: SegmentRecord | None = None
        self.version: int | None = None
        # static members whose profile has not been (re-)supplied yet, by key
        self.pending: set[str] = set()
        # what storage holds, in this engine's ids: compared by ``Engine._is_dirty``
        self.saved_ids: Bitmap | None = None
        self.saved_pending: set[str] = set()
        # the loaded state, when what storage holds is in another engine's ids
        self.stored: SegmentState | None = None

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

    ``schema`` validates every record; ``storage`` keeps segment definitions,
    memberships and size snapshots (default: a fresh
    :class:`~segkit.InMemoryStorage`; to restore an engine from a storage that
    already holds segments, use :meth:`from_storage`); ``clock`` gives the time for
    time-relative rules (default: the system clock, in UTC).

    What is written to ``storage``, and when:

    * ``define``, ``define_static``, ``redefine``, ``add_members``,
      ``remove_members`` and ``drop`` write through: the segment is saved before
      the call returns, and if that save fails the engine is left as it was.
    * ``upsert``/``track``/``delete``/``merge`` change memberships in memory only
      (they stay fast); :meth:`refresh` and :meth:`save` write every segment whose
      membership changed since it was last saved or loaded.
    * Profiles and events are never stored: they are the application's data.

    >>> import segkit as sk
    >>> schema = sk.Schema(attributes={"plan": "string"}, timezone="UTC")
    >>> engine = sk.Engine(schema)
    >>> engine.upsert_many({"a": {"plan": "pro"}, "b": {"plan": "free"}})
    MembershipChange(entered={}, exited={})
    >>> engine.define("pro", 'plan = "pro"').to_list()
    ['a']
    >>> engine.query('plan != "pro"').to_list()
    ['b']
    >>> engine.storage.list_segments()
    ['pro']

    .. versionadded:: 0.1.0
    """

    def __init__(
        self, schema: Schema, *, storage: Storage | None = None, clock: Clock | None = None
    ) -> None:
        self._setup(schema, storage, clock)
        if storage is not None:
            stored = self._storage.list_segments()
            if stored:
                shown = ", ".join(repr(n) for n in stored[:3]) + (
                    ", ..." if len(stored) > 3 else ""
                )
                raise ValueError(
                    f"the storage already holds {len(stored)} "
                    f"segment{'s' if len(stored) > 1 else ''} ({shown}): "
                    "restore them with Engine.from_storage(schema, storage)"
                )

    def _setup(self, schema: Schema, storage: Storage | None, clock: Clock | None) -> None:
        if not isinstance(schema, Schema):
            raise TypeError(f"expected a segkit.Schema, got {type(schema).__name__}")
        if storage is not None and not isinstance(storage, Storage):
            raise TypeError(f"storage must implement segkit.Storage, got {type(storage).__name__}")
        self.schema = schema
        self._clock: Clock = clock or _system_clock
        self._storage: Storage = InMemoryStorage() if storage is None else storage
        self._ids = IdMap()
        self._universe = Bitmap()
        self._events: dict[int, list[Event]] = {}
        self._attr_index: dict[str, AttributeIndex] = {
            name: AttributeIndex(is_list=t.is_list) for name, t in schema.attributes.items()
        }
        self._event_index = EventIndex()
        from segkit.analysis.attention import ENGAGEMENT_WINDOW

        self._engagement_window: timedelta | None = ENGAGEMENT_WINDOW
        self._segments: dict[str, _Segment] = {}
        self._graph = SegmentGraph()
        self._order: list[_Segment] | None = None
        self._readers: dict[tuple[str, str], list[_Segment]] = {}
        self._changes: ChangeIndex[_Segment] | None = None
        self._used: set[str] = set()  # segments that other segments refer to
        self._bulk = BULK
        self._plans: dict[str, Plan] = {}
        # static members waiting for their profile: key -> the static segments naming it
        self._waiting: dict[str, list[_Segment]] = {}
        self._renames = 0  # IdMap renames (they change the stored key list)
        self._keys_cache: tuple[tuple[int, int, int], bytes] | None = None

    @classmethod
    def from_storage(
        cls, schema: Schema, storage: Storage, *, clock: Clock | None = None
    ) -> Engine:
        """An engine with every segment that ``storage`` holds, ready for the data.

        The definitions come back (rules, metadata, static members); profiles and
        events do not: they are the application's data and storage never holds
        them. Re-supply them with ``upsert_many`` and ``track_many`` before calling
        :meth:`save` or :meth:`refresh`:

        * a **dynamic** segment's members are evaluated from the re-supplied data
          as it arrives (its stored membership is only compared, so saving an
          unchanged membership writes nothing);
        * a **static** segment's stored keys become members as soon as a profile
          with that key is upserted or tracked; until then they are
          :meth:`pending_keys`, kept in storage but not in :meth:`members`.

        Raises :class:`~segkit.SegmentError` if a stored rule does not check
        against ``schema`` or the stored segments do not form a valid dependency
        graph, and :class:`~segkit.CorruptDataError` for damaged stored data.

        >>> import segkit as sk
        >>> schema = sk.Schema(attributes={"age": "int"})
        >>> storage = sk.InMemoryStorage()
        >>> first = sk.Engine(schema, storage=storage)
        >>> _ = first.upsert_many({"a": {"age": 30}, "b": {"age": 12}})
        >>> _ = first.define("adults", "age >= 18")
        >>> _ = first.define_static("picked", ["a", "b"])
        >>> engine = sk.Engine.from_storage(schema, storage)
        >>> engine.segments, len(engine.members("adults")), engine.pending_keys()
        (['adults', 'picked'], 0, ['a', 'b'])
        >>> _ = engine.upsert_many({"a": {"age": 30}, "b": {"age": 12}})
        >>> engine.members("adults").keys(), engine.members("picked").keys()
        (['a'], ['a', 'b'])
        >>> engine.save()  # nothing changed since the load
        []

        .. versionadded:: 0.1.0
        """
        engine = cls.__new__(cls)
        engine._setup(schema, storage, clock)
        engine._adopt(load_segment_states(engine._storage))
        return engine

    @property
    def storage(self) -> Storage:
        """The storage this engine saves its segments to.

        >>> import segkit as sk
        >>> sk.Engine(sk.Schema(attributes={})).storage
        InMemoryStorage(segments=0, bitmaps=0, snapshots=0, usage=0)

        .. versionadded:: 0.1.0
        """
        return self._storage

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
        return _ProfileView(self._attr_index, pid)

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
        """The definition, size and stored metadata of segment ``name``."""
        seg = self._segment(name)
        record = seg.record
        assert record is not None  # every segment is saved when it is defined
        return SegmentInfo(
            name,
            "dynamic" if seg.dynamic else "static",
            seg.rule,
            len(seg.ids),
            self._graph.depends_on(name),
            object_type=record.object_type,
            tags=record.tags,
            created_at=record.created_at,
            updated_at=record.updated_at,
            updated_by=record.updated_by,
            version=seg.version,
        )

    def pending_keys(self, name: str | None = None) -> list[str]:
        """Keys of static members whose profile this engine does not have (yet), sorted.

        After :meth:`from_storage`, a static segment's stored keys wait here until a
        profile with that key is upserted or tracked; then it becomes a member.
        They stay part of the segment in storage. ``name`` limits the answer to one
        static segment.

        >>> import segkit as sk
        >>> schema = sk.Schema(attributes={"age": "int"})
        >>> storage = sk.InMemoryStorage()
        >>> first = sk.Engine(schema, storage=storage)
        >>> _ = first.upsert_many({"a": {}, "b": {}})
        >>> _ = first.define_static("picked", ["a", "b"])
        >>> engine = sk.Engine.from_storage(schema, storage)
        >>> _ = engine.upsert("b", {"age": 40})
        >>> engine.pending_keys("picked"), engine.members("picked").keys()
        (['a'], ['b'])

        .. versionadded:: 0.1.0
        """
        if name is None:
            return sorted(self._waiting)
        return sorted(self._segment(name).pending)

    def __len__(self) -> int:
        return len(self._universe)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key in self._ids

    def get(self, key: str) -> dict[str, Any] | None:
        """A copy of the stored attributes of ``key``, or ``None`` if unknown."""
        pid = self._ids.get(key)
        return None if pid is None else dict(_ProfileView(self._attr_index, pid))

    def events(self, key: str) -> list[Event]:
        """The stored events of ``key`` (in arrival order)."""
        pid = self._ids.get(key)
        return [] if pid is None else list(self._events.get(pid, ()))

    # --- profiles and events ----------------------------------------------------------------

    def upsert(self, key: str, attributes: Mapping[str, Any]) -> MembershipChange:
        """Create or update one profile (values merge; ``None`` unsets).

        Returns the membership changes this caused. Nothing is written to storage
        here (see :meth:`save`); a new profile whose key a static segment of a
        restored engine holds becomes its member (see :meth:`pending_keys`).

        >>> import segkit as sk
        >>> engine = sk.Engine(sk.Schema(attributes={"age": "int"}))
        >>> _ = engine.define("adults", "age >= 18")
        >>> engine.upsert("c-1", {"age": 17})
        MembershipChange(entered={}, exited={})
        >>> engine.upsert("c-1", {"age": 18})
        MembershipChange(entered={'adults': ['c-1']}, exited={})
        """
        values = self.schema.validate_profile(key, attributes)
        pid = self._ids.get(key)
        if pid is None:  # a new profile
            log = _ChangeLog()
            self._apply(key, values, log, self.now())
            return log.result()
        # an existing profile: each segment is decided at most once, no log is needed
        changes = self._store_values(pid, values)
        if not changes:
            return MembershipChange({}, {})
        entered, exited = self._reevaluate_changes(pid, key, changes, None)
        return MembershipChange(_one_key(entered, key), _one_key(exited, key))

    def upsert_many(
        self,
        records: Mapping[str, Mapping[str, Any]]
        | Iterable[tuple[str, Mapping[str, Any]] | Profile],
        *,
        progress: ProgressLike = None,
    ) -> MembershipChange:
        """Create or update many profiles: all-or-nothing on bad input.

        ``records`` is a mapping ``{key: attributes}``, or an iterable of
        ``(key, attributes)`` pairs or :class:`~segkit.Profile` objects.
        ``progress`` reports the records checked (see :mod:`segkit.progress`).

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
        reporter = start_progress(progress, total_of(records), desc="upsert_many")
        for record in reporter.iterate(records):
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
            change = self._upsert_bulk(validated)
            reporter.finish()
            return change
        log = _ChangeLog()
        now = self.now()
        for key, values in validated:
            self._apply(key, values, log, now)
        reporter.finish()
        return log.result()

    def _apply(self, key: str, values: dict[str, Any], log: _ChangeLog, now: datetime) -> None:
        """Merge one validated record and update the memberships it affects."""
        pid, created = self._ensure(key)
        changes = self._store_values(pid, values)
        if created:
            if self._waiting:
                self._attach(key, pid, log)
            self._reevaluate(pid, log, now)
        elif changes:
            log.record_flips(key, *self._reevaluate_changes(pid, key, changes, now))

    def _store_values(self, pid: int, values: dict[str, Any]) -> list[tuple[str, Any, Any]]:
        """Store validated values (``None`` unsets); the ``(name, old, new)`` changes."""
        index = self._attr_index
        changes: list[tuple[str, Any, Any]] = []
        for name, value in values.items():
            old = index[name].swap(pid, value)
            if old is None:
                if value is not None:
                    changes.append((name, None, value))
            elif value is None or old != value or type(old) is not type(value):
                changes.append((name, old, value))
        return changes

    def _upsert_bulk(self, validated: list[tuple[str, dict[str, Any]]]) -> MembershipChange:
        """Apply many records, then re-evaluate each affected segment once, with its
        bitmap plan restricted to the profiles that changed."""
        touched = Bitmap()
        changed_names: set[str] = set()
        created = False
        log = _ChangeLog()
        for key, values in validated:
            pid, new = self._ensure(key)
            created = created or new
            if new and self._waiting:
                self._attach(key, pid, log)
            changes = self._store_values(pid, values)
            changed_names.update(name for name, _, _ in changes)
            if new or changes:
                touched.add(pid)
        if created:
            segments = self._dynamic_order()
        else:
            found = {s.name: s for n in changed_names for s in self._readers_of("a", n)}
            segments = sorted(found.values(), key=lambda seg: seg.rank)
        return self._reevaluate_within(segments, touched, self.now(), log)

    def _reevaluate_within(
        self, segments: Iterable[_Segment], ids: Bitmap, now: datetime, log: _ChangeLog
    ) -> MembershipChange:
        """Re-evaluate ``segments`` (in dependency order) for the profiles ``ids``."""
        for seg in segments:
            assert seg.plan is not None  # dynamic
            new = seg.plan.execute(self, now, within=ids)
            old = seg.ids & ids
            self._log_diff(log, seg.name, old, new)
            seg.ids -= old
            seg.ids |= new
        return log.result()

    def track(self, event: Event) -> MembershipChange:
        """Record one event (creating an empty profile for an unknown key)."""
        return self.track_many([event])

    def track_many(
        self, events: Iterable[Event], *, progress: ProgressLike = None
    ) -> MembershipChange:
        """Record many events: all-or-nothing on bad input.

        ``progress`` reports the events checked (see :mod:`segkit.progress`).
        """
        validated: list[Event] = []
        reporter = start_progress(progress, total_of(events), desc="track_many")
        for event in reporter.iterate(events):
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
                if self._waiting:
                    self._attach(event.key, pid, log)
            self._events.setdefault(pid, []).append(event)
            self._event_index.add(pid, event.name, event.at)
            touched.setdefault(pid, set()).add(event.name)
        for pid, names in touched.items():
            if pid in created:
                self._reevaluate(pid, log, now)
            else:
                self._reevaluate(pid, log, now, events=names)
        reporter.finish()
        return log.result()

    def delete(self, key: str) -> MembershipChange:
        """Remove a profile, its events and its memberships (static ones too).

        Like ``upsert``, it changes memberships in memory only; :meth:`save` and
        :meth:`refresh` write them to storage.
        """
        pid = self._ids.get(key)
        if pid is None:
            raise KeyError(f"unknown profile {key!r}")
        log = _ChangeLog()
        for seg in self._segments.values():
            if pid in seg.ids:
                seg.ids.discard(pid)
                log.record(seg.name, key, True, False)
        for column in self._attr_index.values():
            column.unset(pid)
        self._events.pop(pid, None)
        self._event_index.remove_profile(pid)
        self._universe.discard(pid)
        self._ids.delete(key)
        return log.result()

    def merge(self, anonymous_key: str, *, into: str) -> MembershipChange:
        """Identify an anonymous profile as ``into``: its events and static memberships
        move over, its attributes fill the gaps (``into``'s own values win), then it is
        deleted. When ``into`` does not exist yet, the anonymous profile is renamed.
        Memberships change in memory; :meth:`save` and :meth:`refresh` write them.
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
                    seg.saved_ids = seg.stored = None  # same id, another key: save it again
            self._ids.rename(anonymous_key, into)
            self._renames += 1
            if self._waiting:
                self._attach(into, anon, log)
            self._events[anon] = [attrs.evolve(e, key=into) for e in self._events.get(anon, [])]
            self._reevaluate(anon, log, self.now())
            return log.result()
        target = self._ids.id_of(into)
        known = _ProfileView(self._attr_index, target)
        moved_attrs = {
            k: v for k, v in _ProfileView(self._attr_index, anon).items() if k not in known
        }
        moved_events = [attrs.evolve(e, key=into) for e in self._events.get(anon, [])]
        statics = [s for s in self._segments.values() if not s.dynamic and anon in s.ids]
        for change_key, segs in self.delete(anonymous_key).exited.items():
            for k in segs:
                log.record(change_key, k, True, False)
        for name, value in moved_attrs.items():
            self._attr_index[name].set(target, value)
        for event in moved_events:
            self._events.setdefault(target, []).append(event)
            self._event_index.add(target, event.name, event.at)
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
        self,
        pid: int,
        key: str,
        changes: list[tuple[str, Any, Any]],
        now: datetime | None,
    ) -> tuple[list[str], list[str]]:
        """Update one profile's memberships after its attribute ``changes``: only the
        segments whose verdict they can alter, decided by the change index where it can
        (conjunctions of attribute leaves, a conjunct that became false), by their rule
        otherwise. Returns the names of the segments the profile entered and left.

        ``now`` (None: read the clock if some rule needs it) is in UTC.
        """
        index = self._changes
        if index is None:
            index = self._change_index()
        values = _ProfileView(self._attr_index, pid)
        ctx: _Ctx | None = None  # built only when a rule needs it
        if index.reads_context:
            ctx = _Ctx(self._events.get(pid, ()), self.now() if now is None else now, key)
        verdicts = index.update(changes, values, ctx)
        entered: list[str] = []
        exited: list[str] = []
        if not verdicts:
            return entered, exited
        used = self._used
        if used and any(seg.name in used for seg in verdicts):
            for name in self._graph.dependents([seg.name for seg in verdicts]):
                dependent = self._segments[name]
                if dependent.dynamic:
                    verdicts.setdefault(dependent, None)
        # dependency order matters only when some segment is used by another
        ordered = sorted(verdicts.items(), key=_by_rank) if used else verdicts.items()
        for seg, now_in in ordered:
            if now_in is None:
                fn = seg.fn
                assert fn is not None  # dynamic
                if ctx is None:
                    ctx = _Ctx(self._events.get(pid, ()), self.now() if now is None else now, key)
                now_in = fn(values, ctx)
            ids = seg.ids
            if now_in:
                if pid not in ids:
                    ids.add(pid)
                    entered.append(seg.name)
            elif pid in ids:
                ids.discard(pid)
                exited.append(seg.name)
        return entered, exited

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
        values = _ProfileView(self._attr_index, pid)
        decided: Mapping[_Segment, bool] = {}
        if attributes is None and events is None:  # the conjunctions of leaves, at once
            decided = self._change_index().verdicts(values)
        for seg in segments:
            now_in = decided.get(seg)
            if now_in is None:
                fn = seg.fn
                assert fn is not None  # dynamic
                now_in = fn(values, ctx)
            _set_member(seg, pid, key, pid in seg.ids, now_in, log)

    # --- segments ---------------------------------------------------------------------------

    def _compile(self, name: str, rule: RuleLike) -> tuple[Rule, Plan, Predicate]:
        if not isinstance(name, str) or not name:
            raise SegmentError("a segment name must be a non-empty string")
        checked = as_rule(rule)
        plan = compile_plan(checked, self.schema, segments=self._resolve)
        predicate = compile_predicate(checked, self.schema, segments=self._resolve)
        return plan.rule, plan, predicate

    def define(
        self,
        name: str,
        rule: RuleLike,
        *,
        object_type: str = "contact",
        updated_by: str | None = None,
        tags: Iterable[str] = (),
        progress: ProgressLike = None,
    ) -> Members:
        """Define a dynamic segment from a rule, evaluate it and save it; returns its members.

        ``object_type`` (what the segment groups), ``updated_by`` (who made the
        change) and ``tags`` are stored with the definition (see
        :class:`~segkit.SegmentRecord`). Raises :class:`~segkit.SegmentError` if
        the name exists or the rule refers to an unknown segment, the rule's own
        errors if it does not check, and :class:`~segkit.ConflictError` if another
        writer stored a segment of that name meanwhile. When it raises, the engine
        is unchanged. ``progress`` (see :mod:`segkit.progress`) counts the profiles
        that parts of the rule no index answers (event conditions, regexes over
        many values, ...) are checked on one by one; the total is not known
        before the final call.

        >>> import segkit as sk
        >>> engine = sk.Engine(sk.Schema(attributes={"age": "int"}))
        >>> _ = engine.upsert("a", {"age": 30})
        >>> engine.define("adults", "age >= 18", updated_by="ana", tags=["core"])
        Members(1: 'a')
        >>> stored = engine.storage.get_segment("adults").value
        >>> stored.kind, stored.rule["text"], stored.updated_by, stored.tags
        ('dynamic', 'age >= 18', 'ana', ('core',))
        """
        if name in self._segments:
            raise SegmentError(f"segment {name!r} already exists; use redefine() to change it")
        checked, plan, predicate = self._compile(name, rule)
        now = self.now()
        record = SegmentRecord(
            name,
            "dynamic",
            now,
            now,
            rule=checked.to_dict(),
            object_type=object_type,
            updated_by=updated_by,
            tags=tags,
        )
        self._graph.add(name, checked.segments)
        try:
            ids = plan.execute(self, now, progress=progress)
            saved = self._write(record, ids, (), now, None)
        except BaseException:
            self._graph.remove(name)
            raise
        seg = _Segment(name, checked)
        seg.set_rule(checked, plan, predicate)
        seg.ids = ids
        self._mark_saved(seg, saved)
        self._segments[name] = seg
        self._definitions_changed()
        return self._members(seg.ids)

    def define_static(
        self,
        name: str,
        keys: Iterable[str],
        *,
        object_type: str = "contact",
        updated_by: str | None = None,
        tags: Iterable[str] = (),
    ) -> Members:
        """Define a static segment with explicit members (all keys must exist) and save it.

        The metadata and the errors are those of :meth:`define`; change the members
        later with :meth:`add_members` and :meth:`remove_members`.

        >>> import segkit as sk
        >>> engine = sk.Engine(sk.Schema(attributes={}))
        >>> _ = engine.upsert_many({"c-1": {}, "c-2": {}})
        >>> engine.define_static("imported", ["c-2"], object_type="company")
        Members(1: 'c-2')
        >>> engine.define_static("other", ["c-9"])
        Traceback (most recent call last):
        ...
        segkit.errors.SegmentError: static segment 'other': unknown profiles 'c-9'
        """
        if not isinstance(name, str) or not name:
            raise SegmentError("a segment name must be a non-empty string")
        if name in self._segments:
            raise SegmentError(f"segment {name!r} already exists")
        ids = self._ids_of(name, keys)
        now = self.now()
        record = SegmentRecord(
            name, "static", now, now, object_type=object_type, updated_by=updated_by, tags=tags
        )
        self._graph.add(name, ())
        try:
            saved = self._write(record, ids, (), now, None)
        except BaseException:
            self._graph.remove(name)
            raise
        seg = _Segment(name, None)
        seg.ids = ids
        self._mark_saved(seg, saved)
        self._segments[name] = seg
        self._definitions_changed()
        return self._members(seg.ids)

    def add_members(
        self, name: str, keys: Iterable[str], *, updated_by: str | None = None
    ) -> MembershipChange:
        """Add profiles to static segment ``name`` and save it; returns the membership changes.

        Every key must be a profile of this engine; keys already in the segment are
        skipped (nothing is written when nothing changes). The segments that use
        ``name`` are re-evaluated and saved too. Raises
        :class:`~segkit.ConflictError` if another writer changed the segment since
        this engine read it: the engine is then unchanged; call :meth:`reload` and
        try again.

        >>> import segkit as sk
        >>> engine = sk.Engine(sk.Schema(attributes={}))
        >>> _ = engine.upsert_many({"c-1": {}, "c-2": {}})
        >>> _ = engine.define_static("vip", ["c-1"])
        >>> engine.add_members("vip", ["c-1", "c-2"], updated_by="ana")
        MembershipChange(entered={'vip': ['c-2']}, exited={})
        >>> engine.segment("vip").updated_by
        'ana'

        .. versionadded:: 0.1.0
        """
        seg = self._static(name)
        return self._update_static(seg, seg.ids | self._ids_of(name, keys), seg.pending, updated_by)

    def remove_members(
        self, name: str, keys: Iterable[str], *, updated_by: str | None = None
    ) -> MembershipChange:
        """Remove keys from static segment ``name`` and save it; returns the membership changes.

        Keys that are not in the segment are skipped; a key still waiting for its
        profile (see :meth:`pending_keys`) is removed too. Saving and conflicts work
        as in :meth:`add_members`.

        >>> import segkit as sk
        >>> engine = sk.Engine(sk.Schema(attributes={}))
        >>> _ = engine.upsert_many({"c-1": {}, "c-2": {}})
        >>> _ = engine.define_static("vip", ["c-1", "c-2"])
        >>> engine.remove_members("vip", ["c-2", "c-7"])
        MembershipChange(entered={}, exited={'vip': ['c-2']})

        .. versionadded:: 0.1.0
        """
        seg = self._static(name)
        if isinstance(keys, str):
            raise TypeError(f"keys must be an iterable of profile keys, not the string {keys!r}")
        gone = Bitmap()
        gone_pending: set[str] = set()
        for key in keys:
            pid = self._ids.get(key)
            if pid is not None:
                gone.add(pid)
            elif key in seg.pending:
                gone_pending.add(key)
        return self._update_static(seg, seg.ids - gone, seg.pending - gone_pending, updated_by)

    def _update_static(
        self, seg: _Segment, ids: Bitmap, pending: set[str], updated_by: str | None
    ) -> MembershipChange:
        """Save static ``seg`` with new members, then apply them and refresh its users."""
        if ids == seg.ids and pending == seg.pending:
            return MembershipChange({}, {})
        now = self.now()
        record = attrs.evolve(self._record(seg), updated_at=now, updated_by=updated_by)
        saved = self._write(record, ids, pending, now, seg.version)
        log = _ChangeLog()
        self._log_diff(log, seg.name, seg.ids, ids)
        seg.ids = ids
        for key in seg.pending - pending:
            self._unwait(key, seg)
        seg.pending = pending
        self._mark_saved(seg, saved)
        users = self._graph.dependents([seg.name])
        self._refresh(users, now, log)
        self._save_dirty(users, now)
        return log.result()

    def redefine(
        self,
        name: str,
        rule: RuleLike,
        *,
        object_type: str | None = None,
        updated_by: str | None = None,
        tags: Iterable[str] | None = None,
        progress: ProgressLike = None,
    ) -> MembershipChange:
        """Replace a dynamic segment's rule and save it; re-evaluates (and saves) its users.

        ``object_type`` and ``tags`` keep their stored values unless given;
        ``updated_by`` records who made this change (``None``: unknown). ``progress``
        counts the profiles the new rule is checked on one by one, as in
        :meth:`define`. If saving
        the segment fails (for instance :class:`~segkit.ConflictError`: another
        writer changed it since this engine read it), the engine is unchanged. If
        saving a segment that uses it fails afterwards, the redefinition stands,
        the error propagates, and :meth:`save` writes the rest.

        >>> import segkit as sk
        >>> engine = sk.Engine(sk.Schema(attributes={"age": "int"}))
        >>> _ = engine.upsert_many({"a": {"age": 30}, "b": {"age": 16}})
        >>> _ = engine.define("adults", "age >= 18")
        >>> engine.redefine("adults", "age >= 16", updated_by="ana")
        MembershipChange(entered={'adults': ['b']}, exited={})
        >>> engine.storage.get_segment("adults").value.rule["text"]
        'age >= 16'
        """
        seg = self._segment(name)
        if not seg.dynamic:
            raise SegmentError(f"segment {name!r} is static; drop it and define it again")
        checked, plan, predicate = self._compile(name, rule)
        now = self.now()
        changes: dict[str, Any] = {
            "rule": checked.to_dict(),
            "updated_at": now,
            "updated_by": updated_by,
        }
        if object_type is not None:
            changes["object_type"] = object_type
        if tags is not None:
            changes["tags"] = tags
        record = attrs.evolve(self._record(seg), **changes)
        old_deps = self._graph.depends_on(name)
        self._graph.replace(name, checked.segments)
        try:
            ids = plan.execute(self, now, progress=progress)
            saved = self._write(record, ids, (), now, seg.version)
        except BaseException:
            self._graph.replace(name, old_deps)
            raise
        log = _ChangeLog()
        self._log_diff(log, name, seg.ids, ids)
        seg.set_rule(checked, plan, predicate)
        seg.ids = ids
        self._mark_saved(seg, saved)
        self._definitions_changed()
        users = self._graph.dependents([name])
        self._refresh(users, now, log)
        self._save_dirty(users, now)
        return log.result()

    def drop(self, name: str) -> None:
        """Delete a segment, here and in storage; refused while other segments refer to it.

        Its snapshots and usage records are deleted too; its bitmap is left for
        :func:`segkit.storage.collect_garbage`. Raises
        :class:`~segkit.ConflictError` if another writer changed the segment since
        this engine read it (the engine is then unchanged).

        >>> import segkit as sk
        >>> engine = sk.Engine(sk.Schema(attributes={}))
        >>> _ = engine.define_static("old", [])
        >>> engine.drop("old")
        >>> engine.segments, engine.storage.list_segments()
        ([], [])
        """
        seg = self._segment(name)
        deps = self._graph.depends_on(name)
        self._graph.remove(name)
        try:
            drop_segment_state(self._storage, name, expected_version=self._version(seg))
        except Exception as error:
            known, found = self._read_stored(name)
            if not known or found is not None:
                self._graph.add(name, deps)
                if isinstance(error, ConflictError):
                    raise _conflict(error) from error
                raise
            # The definition is gone (deleting it is the commit, or another writer
            # dropped it too): what a failed clean-up leaves is garbage.
        except BaseException:
            self._graph.add(name, deps)
            raise
        del self._segments[name]
        for key in seg.pending:
            self._unwait(key, seg)
        self._definitions_changed()

    def refresh(
        self, now: datetime | None = None, *, progress: ProgressLike = None
    ) -> MembershipChange:
        """Re-evaluate the time-relative dynamic segments (and their users) at ``now``, then save.

        Saving works as in :meth:`save` (snapshots are taken at ``now``): every
        segment whose membership changed since it was last saved or loaded is
        written, including changes made by ``upsert``/``track``/``delete``/``merge``.
        If a save fails, the re-evaluation stands, the error propagates, and the
        next :meth:`save` writes what is left. ``progress`` reports the segments
        re-evaluated (see :mod:`segkit.progress`).

        >>> import segkit as sk
        >>> from datetime import datetime, timedelta, timezone
        >>> t0 = datetime(2024, 6, 30, tzinfo=timezone.utc)
        >>> engine = sk.Engine(sk.Schema(events={"visit": {}}), clock=lambda: t0)
        >>> _ = engine.track(sk.Event("a", "visit", t0 - timedelta(days=1)))
        >>> _ = engine.define("recent", "did visit in last 7d")
        >>> engine.refresh(now=t0 + timedelta(days=7))
        MembershipChange(entered={}, exited={'recent': ['a']})
        >>> [s.value.size for s in engine.storage.list_snapshots("recent")]
        [1, 0]
        """
        when = self.now() if now is None else ensure_aware(now, self.schema.tz, "now")
        relative = [n for n, s in self._segments.items() if s.rule and s.rule.is_time_relative]
        log = _ChangeLog()
        names = {*relative, *self._graph.dependents(relative)}
        reporter = start_progress(progress, len(names), desc="refresh")
        self._refresh(names, when, log, reporter.iterate)
        self._save_dirty(None, when)
        reporter.finish()
        return log.result()

    def _refresh(
        self,
        names: Iterable[str],
        now: datetime,
        log: _ChangeLog,
        counted: Callable[[Iterable[str]], Iterable[str]] = iter,
    ) -> None:
        """Re-evaluate the dynamic segments among ``names``, in dependency order."""
        for name in counted(self._graph.order(set(names))):
            seg = self._segments[name]
            if seg.plan is None:
                continue
            new = seg.plan.execute(self, now)
            self._log_diff(log, name, seg.ids, new)
            seg.ids = new

    def save(self) -> list[str]:
        """Write every segment whose membership changed since it was last saved or loaded.

        ``upsert``, ``track``, ``delete`` and ``merge`` change memberships in memory
        only, so that they stay fast; this writes them (as :meth:`refresh` does),
        one segment at a time in dependency order, each with a size snapshot at the
        engine's clock time. Returns the names of the segments written.

        Each segment is saved atomically: storage holds its old or its new state,
        never a mix (see ``docs/storage.md``). If a save fails, the error
        propagates; the segments written before it stay written and the next call
        writes the rest. :class:`~segkit.ConflictError` means another writer
        changed that segment: call :meth:`reload`, then save again.

        >>> import segkit as sk
        >>> engine = sk.Engine(sk.Schema(attributes={"age": "int"}))
        >>> _ = engine.define("adults", "age >= 18")
        >>> _ = engine.upsert("a", {"age": 30})
        >>> engine.storage.get_segment("adults").value.snapshot.size
        0
        >>> engine.save()
        ['adults']
        >>> engine.storage.get_segment("adults").value.snapshot.size
        1
        >>> engine.save()
        []

        .. versionadded:: 0.1.0
        """
        return self._save_dirty(None, self.now())

    def reload(self) -> MembershipChange:
        """Take in what other writers stored; returns the membership changes.

        Every segment whose stored version differs from the one this engine last
        saved or loaded takes its stored definition: a dynamic segment is evaluated
        over this engine's data, a static one gets the stored keys (those without a
        profile here become :meth:`pending_keys`). Stored segments this engine lacks
        are added, segments no longer stored are dropped, and the segments using a
        changed one are re-evaluated. Segments at the same version are kept as
        they are, including membership changes not saved yet.

        This is how to recover from a :class:`~segkit.ConflictError`: reload, then
        redo the change. Errors are those of :meth:`from_storage`; the engine is
        unchanged when it raises.

        >>> import segkit as sk
        >>> schema = sk.Schema(attributes={})
        >>> storage = sk.InMemoryStorage()
        >>> ours = sk.Engine(schema, storage=storage)
        >>> theirs = sk.Engine.from_storage(schema, storage)
        >>> for engine in (ours, theirs):
        ...     _ = engine.upsert_many({"c-1": {}, "c-2": {}})
        >>> _ = ours.define_static("vip", ["c-1"])
        >>> theirs.reload()
        MembershipChange(entered={'vip': ['c-1']}, exited={})
        >>> _ = ours.add_members("vip", ["c-2"])
        >>> theirs.remove_members("vip", ["c-1"])
        Traceback (most recent call last):
        ...
        segkit.errors.ConflictError: segment 'vip': expected version 3, found version 6 (another writer changed it since this engine read it: call reload() and try again)
        >>> _ = theirs.reload()
        >>> theirs.remove_members("vip", ["c-1"])
        MembershipChange(entered={}, exited={'vip': ['c-1']})

        .. versionadded:: 0.1.0
        """
        return self._adopt(load_segment_states(self._storage))

    # --- persistence helpers (never called on the upsert/track paths) ---------------------

    def _static(self, name: str) -> _Segment:
        seg = self._segment(name)
        if seg.dynamic:
            raise SegmentError(
                f"segment {name!r} is dynamic (its rule decides its members); "
                "use redefine() to change it"
            )
        return seg

    def _ids_of(self, name: str, keys: Iterable[str]) -> Bitmap:
        """The ids of ``keys`` for static segment ``name``; every key must be a profile."""
        if isinstance(keys, str):
            raise TypeError(f"keys must be an iterable of profile keys, not the string {keys!r}")
        keys = list(keys)
        unknown = sorted({k for k in keys if k not in self._ids})
        if unknown:
            shown = ", ".join(repr(k) for k in unknown[:5]) + (", ..." if len(unknown) > 5 else "")
            raise SegmentError(f"static segment {name!r}: unknown profiles {shown}")
        return Bitmap(self._ids.id_of(k) for k in keys)

    @staticmethod
    def _record(seg: _Segment) -> SegmentRecord:
        assert seg.record is not None  # every segment is saved when it is defined
        return seg.record

    @staticmethod
    def _version(seg: _Segment) -> int:
        assert seg.version is not None  # every segment is saved when it is defined
        return seg.version

    def _log_diff(self, log: _ChangeLog, name: str, old: Bitmap, new: Bitmap) -> None:
        key_of = self._ids.key_of
        for pid in new - old:
            log.record(name, key_of(pid), False, True)
        for pid in old - new:
            log.record(name, key_of(pid), True, False)

    def _attach(self, key: str, pid: int, log: _ChangeLog) -> None:
        """Profile ``key`` (id ``pid``) now exists: make it a member of the static
        segments that were waiting for it."""
        for seg in self._waiting.pop(key, ()):
            seg.pending.discard(key)
            seg.ids.add(pid)
            if seg.saved_ids is not None and key in seg.saved_pending:
                # storage already holds this key: the segment did not change
                seg.saved_pending.discard(key)
                seg.saved_ids.add(pid)
            log.record(seg.name, key, False, True)

    def _unwait(self, key: str, seg: _Segment) -> None:
        waiting = self._waiting.get(key)
        if waiting is not None:
            waiting[:] = [other for other in waiting if other is not seg]
            if not waiting:
                del self._waiting[key]

    def _key_list(self) -> tuple[bytes, dict[str, int]]:
        """The encoded key list for one save batch, and the ids given to pending keys.

        ``keys[i]`` is the key of id ``i`` (``None`` for a free id); the keys that
        static segments wait for follow, sorted, after the last id.
        """
        keys = self._ids
        if not self._waiting:
            state = (keys.high_water, len(keys), self._renames)
            cached = self._keys_cache
            if cached is None or cached[0] != state:
                cached = self._keys_cache = (state, encode_keys(keys.keys_by_id()))
            return cached[1], {}
        listed = keys.keys_by_id()
        waiting = sorted(self._waiting)
        position = {key: len(listed) + i for i, key in enumerate(waiting)}
        return encode_keys([*listed, *waiting]), position

    def _write(
        self,
        record: SegmentRecord,
        ids: Bitmap,
        pending: Collection[str],
        now: datetime,
        expected: int | None,
        key_list: tuple[bytes, dict[str, int]] | None = None,
    ) -> Versioned[SegmentRecord]:
        """Save one segment's definition, membership and size snapshot (crash-safely).

        ``key_list`` is :meth:`_key_list`, when the caller saves several segments.
        """
        keys, position = self._key_list() if key_list is None else key_list
        engagement = self._engagement(ids, now)
        if pending:
            ids = ids | Bitmap(position[key] for key in pending)
        bitmap = ids.serialize()
        snapshot = Snapshot(record.name, now, len(ids), engagement)
        try:
            return save_segment_state(
                self._storage,
                record,
                bitmap=bitmap,
                keys=keys,
                snapshot=snapshot,
                expected_version=expected,
            )
        except Exception as error:
            meant = attrs.evolve(
                record,
                bitmap=content_address(bitmap),
                keys=content_address(keys),
                snapshot=snapshot,
            )
            known, found = self._read_stored(record.name)
            if known and found is not None and found.value == meant:
                # The commit landed and a later write failed (adding the snapshot to
                # the time series): the save stands, and the next save of this
                # segment adds the missing point first.
                return found
            if isinstance(error, ConflictError):
                raise _conflict(error) from error
            raise

    def _read_stored(self, name: str) -> tuple[bool, Versioned[SegmentRecord] | None]:
        """``(True, stored definition or None)``, or ``(False, None)`` if reading failed."""
        try:
            return True, self._storage.get_segment(name)
        except Exception:
            return False, None

    def _mark_saved(self, seg: _Segment, saved: Versioned[SegmentRecord]) -> None:
        """Storage now holds ``seg`` as it is."""
        seg.record = saved.value
        seg.version = saved.version
        seg.saved_ids = seg.ids.copy()
        seg.saved_pending = set(seg.pending)
        seg.stored = None

    def _is_dirty(self, seg: _Segment) -> bool:
        """Whether storage holds other members for ``seg`` than the engine does."""
        if seg.saved_ids is not None:
            return seg.ids != seg.saved_ids or seg.pending != seg.saved_pending
        if seg.stored is None:
            return True
        # loaded from storage, in another engine's ids: compare the keys
        try:
            stored = _stored_keys(seg.stored)
        except CorruptDataError:
            return True
        if len(stored) != len(seg.ids) + len(seg.pending):
            return True
        key_of = self._ids.key_of
        if set(stored) != {key_of(pid) for pid in seg.ids} | seg.pending:
            return True
        seg.saved_ids = seg.ids.copy()
        seg.saved_pending = set(seg.pending)
        seg.stored = None
        return False

    def _save_dirty(self, names: Iterable[str] | None, now: datetime) -> list[str]:
        """Save the segments among ``names`` (default: all) that storage holds differently."""
        if names is None:
            order = self._graph.order()
        else:
            chosen = set(names)
            order = self._graph.order(chosen) if chosen else []
        written: list[str] = []
        key_list: tuple[bytes, dict[str, int]] | None = None
        for name in order:
            seg = self._segments[name]
            if self._is_dirty(seg):
                key_list = key_list or self._key_list()  # encoded once per batch
                record = self._record(seg)
                saved = self._write(record, seg.ids, seg.pending, now, seg.version, key_list)
                self._mark_saved(seg, saved)
                written.append(name)
        return written

    def _adopt(self, states: Mapping[str, SegmentState]) -> MembershipChange:
        """Make the engine's definitions those of ``states`` (from ``load_segment_states``).

        Segments at the version this engine knows are kept. Everything that can
        fail (rules, references, cycles, stored members) is checked before the
        engine changes.
        """
        local = self._segments
        changed = sorted(
            n for n, s in states.items() if n not in local or local[n].version != s.version
        )
        removed = sorted(n for n in local if n not in states)
        if not changed and not removed:
            return MembershipChange({}, {})
        deps = {n: self._graph.depends_on(n) for n in states if n not in changed}
        fresh: dict[str, _Segment] = {}
        for name in changed:
            state = states[name]
            record = state.record
            if record.kind == "dynamic":
                try:
                    checked, plan, predicate = self._compile(
                        name, Rule.from_dict(record.rule or {})
                    )
                except RuleError as e:
                    raise SegmentError(f"cannot restore segment {name!r}: {e.message}") from e
                seg = _Segment(name, checked)
                seg.set_rule(checked, plan, predicate)
                seg.stored = state
                deps[name] = checked.segments
            else:
                seg = _Segment(name, None)
                for key in _stored_keys(state):
                    pid = self._ids.get(key)
                    if pid is None:
                        seg.pending.add(key)
                    else:
                        seg.ids.add(pid)
                seg.saved_ids = seg.ids.copy()
                seg.saved_pending = set(seg.pending)
                deps[name] = frozenset()
            seg.record = record
            seg.version = state.version
            fresh[name] = seg
        graph = SegmentGraph()
        for name in _restore_order(deps):
            graph.add(name, deps[name])
        # --- nothing below raises: apply -------------------------------------------------
        log = _ChangeLog()
        before: dict[str, Bitmap] = {}
        for name in removed:
            self._log_diff(log, name, local.pop(name).ids, Bitmap())
        for name, seg in fresh.items():
            old = local.get(name)
            before[name] = Bitmap() if old is None else old.ids
            local[name] = seg
        self._graph = graph
        self._waiting = {}
        for seg in local.values():
            for key in seg.pending:
                self._waiting.setdefault(key, []).append(seg)
        self._definitions_changed()
        now = self.now()
        for name in graph.order({*changed, *graph.dependents(changed)}):
            seg = local[name]
            old_ids = before.get(name, seg.ids)
            if seg.plan is not None:
                seg.ids = seg.plan.execute(self, now)
            self._log_diff(log, name, old_ids, seg.ids)
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

    def funnel(
        self,
        funnel: Funnel,
        segments: Iterable[str] = (),
        *,
        now: datetime | None = None,
        progress: ProgressLike = None,
    ) -> dict[str, FunnelReport]:
        """Run ``funnel`` over the engine's events: one report for everybody (``"all"``)
        and one per segment in ``segments``, from a single evaluation.

        Only profiles with an event that can start the funnel are read (every profile
        when a stage is an attribute). Segment members are the stored memberships;
        with ``now``, time-relative segments are evaluated at ``now`` for this report
        (nothing is stored). The reports' members combine with :meth:`members`.
        ``progress`` reports the entities evaluated (see :mod:`segkit.progress`).

        >>> import segkit as sk
        >>> from datetime import datetime, timedelta, timezone
        >>> t0 = datetime(2024, 6, 1, tzinfo=timezone.utc)
        >>> engine = sk.Engine(sk.Schema(attributes={"plan": "string"},
        ...                              events={"visit": {}, "buy": {}}))
        >>> _ = engine.upsert_many({"a": {"plan": "pro"}, "b": {"plan": "free"}})
        >>> _ = engine.track_many([sk.Event("a", "visit", t0), sk.Event("a", "buy", t0 + timedelta(hours=1)),
        ...                        sk.Event("b", "visit", t0)])
        >>> _ = engine.define("pro", 'plan = "pro"')
        >>> reports = engine.funnel(sk.Funnel(["visit", "buy"], window=timedelta(days=7)), ["pro"])
        >>> reports["all"].steps[1].count, reports["pro"].steps[1].count
        (1, 1)
        >>> reports["all"].members(1) == engine.members("pro")
        True
        """
        names = list(dict.fromkeys(segments))
        chosen = [self._segment(name) for name in names]
        if "all" in names:
            raise SegmentError("'all' names the report over every profile; rename that segment")
        when = None if now is None else ensure_aware(now, self.schema.tz, "now")
        attribute_stages = any(step.event is None for step in funnel.steps)
        entry = funnel.entry_events
        candidates = (
            self._universe if attribute_stages or not entry else self._event_index.having(entry)
        )
        wanted = None if funnel.reads_all_events else funnel.event_names
        key_of = self._ids.key_of
        events = [
            event
            for pid in candidates
            for event in self._events.get(pid, ())
            if wanted is None or event.name in wanted
        ]
        profiles = (
            {key_of(pid): dict(_ProfileView(self._attr_index, pid)) for pid in candidates}
            if attribute_stages
            else None
        )
        outcomes = funnel.evaluate(events, profiles=profiles, idmap=self._ids, progress=progress)
        reports = {"all": outcomes.report()}
        for seg in chosen:
            ids = seg.ids
            if when is not None and seg.plan is not None and seg.rule and seg.rule.is_time_relative:
                ids = seg.plan.execute(self, when)
            reports[seg.name] = outcomes.report(ids)
        return reports

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
        values = _ProfileView(self._attr_index, pid)
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

    # --- analysis: overlap and split (begin) ---

    def overlap(
        self, names: Iterable[str], *, empty: bool = False, pairwise: bool = False
    ) -> OverlapReport:
        """How segments ``names`` overlap: every exclusive region, totals and pairs.

        ``names`` is any number of distinct segment names (an unknown one raises
        :class:`~segkit.SegmentError`, a repeated one :class:`ValueError`). The
        report reads the memberships as they are now. ``empty=True`` lists all
        ``2**N - 1`` regions, the empty ones too. More than 20 segments need
        ``pairwise=True``, which computes only the pairwise counts (no regions,
        no bitmap built). See :class:`~segkit.OverlapReport`.

        >>> import segkit as sk
        >>> engine = sk.Engine(sk.Schema(attributes={"plan": "string", "age": "int"}))
        >>> _ = engine.upsert_many({"a": {"plan": "pro", "age": 30}, "b": {"plan": "pro"},
        ...                         "c": {"age": 40}})
        >>> _ = engine.define("pro", 'plan = "pro"'), engine.define("adults", "age >= 18")
        >>> engine.overlap(["pro", "adults"])
        OverlapReport: 2 segments (pro: 2, adults: 2), 3 profiles in any
          count  region
              1  pro
              1  adults
              1  pro & adults

        .. versionadded:: 0.1.0
        """
        from segkit.analysis.overlap import check_names as _check_names
        from segkit.analysis.overlap import overlap as _overlap

        chosen = _check_names(names, pairwise=pairwise)
        segments = [(name, self._members(self._segment(name).ids)) for name in chosen]
        return _overlap(segments, empty=empty, pairwise=pairwise)

    def split(
        self,
        name: str,
        groups: Mapping[str, float],
        *,
        salt: str,
        by: str | None = None,
        holdout: float | None = None,
        save: bool | str = False,
    ) -> Split:
        """Split segment ``name`` into groups by a deterministic hash of each key.

        ``groups`` maps each group to its weight (relative: integers or
        percentages). A profile's bucket is ``segkit.hashing.bucket(salt, key)``
        (0..9999) and each group owns a contiguous range of buckets, so its
        groups never depend on insertion order and stay put when the segment
        grows or shrinks; :meth:`Split.rule <segkit.Split.rule>` gives the same
        selection as rule text. ``holdout`` (a percentage) is held out first, by
        the salt ``salt + ":holdout"``; ``by`` stratifies by an attribute, so that
        each stratum keeps the weights' proportions. ``save=True`` (or a name
        prefix) saves each group as a static segment ``f"{prefix}_{group}"``
        (all or nothing) and records that the split uses segment ``name``.
        The rounding, stability and SRM rules are in :mod:`segkit.analysis.split`.

        >>> import segkit as sk
        >>> engine = sk.Engine(sk.Schema(attributes={"country": "string"}))
        >>> _ = engine.upsert_many({f"c-{i}": {"country": "FR" if i % 3 else "DE"}
        ...                         for i in range(300)})
        >>> _ = engine.define_static("everyone", [f"c-{i}" for i in range(300)])
        >>> split = engine.split("everyone", {"control": 50, "test": 50}, salt="exp-7")
        >>> dict(split.counts), split.rule("test")
        ({'control': 149, 'test': 151}, 'bucket("exp-7") in 5000..9999')
        >>> by_country = engine.split("everyone", {"control": 50, "test": 50}, salt="exp-7",
        ...                           by="country", save="exp7")
        >>> {country: dict(counts) for country, counts in by_country.strata.items()}
        {'DE': {'control': 50, 'test': 50}, 'FR': {'control': 100, 'test': 100}}
        >>> by_country.saved, len(engine.members("exp7_test"))
        (('exp7_control', 'exp7_test'), 150)

        .. versionadded:: 0.1.0
        """
        from segkit.analysis.split import split_segment as _split

        return _split(self, name, groups, salt=salt, by=by, holdout=holdout, save=save)

    def _split_buckets(self) -> BucketCache:
        """The cache of split buckets per salt (made on first use)."""
        cache: BucketCache | None = self.__dict__.get("_split_bucket_cache")
        if cache is None:
            from segkit.analysis.split import BucketCache as _BucketCache

            cache = self._split_bucket_cache = _BucketCache()
        return cache

    # --- analysis: overlap and split (end) ---

    # --- analysis: metrics and drivers (begin) ---

    def compare(
        self,
        names: Sequence[str],
        metrics: Sequence[Metric],
        *,
        now: datetime | None = None,
        confidence: float = 0.95,
    ) -> Comparison:
        """Segment KPIs side by side: each metric over each segment, with confidence intervals.

        ``names`` are distinct defined segments (one row each, in that order);
        ``metrics`` come from :mod:`segkit.analysis.metrics` (``sk.metrics``):
        ``count()``, ``mean``/``median``/``sum(attr)``, ``rate``/``churn(bool attribute
        or rule)``, ``conversion(rule)``, ``nps(attr)``, ``csat(attr, satisfied=...)``.
        Each value is a :class:`~segkit.analysis.metrics.MetricValue` ``(value, low,
        high, n)``: ``n`` members had a value (missing values are skipped; ``value`` is
        ``None`` when ``n == 0``) and ``[low, high]`` is the ``confidence`` interval.
        Members are the stored memberships; with ``now``, time-relative segments are
        evaluated at ``now`` (nothing is stored), and rule-based rates always are
        (default: the engine's clock). Everything is checked before anything is
        measured; nothing changes.

        >>> import segkit as sk
        >>> from segkit.analysis import metrics
        >>> engine = sk.Engine(sk.Schema(attributes={"plan": "string", "ltv": "float"}))
        >>> _ = engine.upsert_many({"a": {"plan": "pro", "ltv": 120.0}, "b": {"plan": "pro", "ltv": 80.0},
        ...                         "c": {"plan": "free", "ltv": 10.0}, "d": {"plan": "free"}})
        >>> _ = engine.define("pro", 'plan = "pro"'), engine.define("free", 'plan = "free"')
        >>> engine.compare(["pro", "free"], [metrics.mean("ltv")])
        Comparison of 2 segments (95% confidence)
          segment  members  mean(ltv)
          pro            2  100 [-154.1, 354.1] n=2
          free           2  10 n=1

        .. versionadded:: 0.1.0
        """
        from segkit.analysis.metrics import compare as _compare

        return _compare(self, names, metrics, now=now, confidence=confidence)

    def drivers(
        self,
        segment: str,
        metric: Metric,
        *,
        attributes: Iterable[str] | None = None,
        min_count: int = 30,
        bins: int = 4,
        now: datetime | None = None,
        confidence: float = 0.95,
    ) -> Drivers:
        """Which attribute values inside ``segment`` separate ``metric`` most.

        Each value of each attribute (``attributes``, default: all but the metric's
        own; numbers and dates in ``bins`` quantile bins) makes a group; the metric
        in the group is compared with the rest of the segment, with the difference,
        a standardized effect (Cohen's d for means and NPS, Cohen's h for rates) and a
        p-value. Groups (or rests) with fewer than ``min_count`` members with a value
        are left out; rows are ranked by ``|effect|``. See
        :class:`~segkit.analysis.drivers.Drivers`.

        >>> import segkit as sk
        >>> from segkit.analysis import metrics
        >>> engine = sk.Engine(sk.Schema(attributes={"role": "string", "nps": "int"}))
        >>> _ = engine.upsert_many({f"c{i}": {"role": ["dev", "ops", "pm"][i % 3],
        ...                                   "nps": [10, 9, 2][i % 3]} for i in range(30)})
        >>> _ = engine.define("users", "nps is known")
        >>> [row.group for row in engine.drivers("users", metrics.nps("nps"), min_count=5)]
        ['role = "pm"', 'role = "dev"', 'role = "ops"']

        .. versionadded:: 0.1.0
        """
        from segkit.analysis.drivers import drivers as _drivers

        return _drivers(
            self,
            segment,
            metric,
            attributes=attributes,
            min_count=min_count,
            bins=bins,
            now=now,
            confidence=confidence,
        )

    # --- analysis: metrics and drivers (end) ---

    # --- analysis: usage, attention and hygiene (begin) ---

    @property
    def usage(self) -> UsageLog:
        """Where this engine's segments are used: record, remove, query.

        See :class:`~segkit.analysis.usage.UsageLog`. Records live in the
        storage; rule references (``in segment "x"``) count as uses of ``x`` under
        the objective ``"segmentation"``.

        >>> import segkit as sk
        >>> engine = sk.Engine(sk.Schema(attributes={}))
        >>> _ = engine.define_static("vip", [])
        >>> _ = engine.define_static("old", [])
        >>> _ = engine.usage.record("vip", tool="workflow", objective="automation", ref="wf-12")
        >>> [u.ref for u in engine.usage.where_used("vip")], engine.usage.unused()
        (['wf-12'], ['old'])

        .. versionadded:: 0.1.0
        """
        from segkit.analysis.usage import UsageLog as _UsageLog

        return _UsageLog(self)

    @property
    def engagement_window(self) -> timedelta | None:
        """How far back a tracked event makes a member *engaged* (default: 7 days).

        Every size snapshot stores, as its ``engagement``, the number of members
        with an event at ``t`` where ``at - window < t <= at``. Set a
        ``timedelta`` or fixed-length duration text (``"14d"``), or ``None`` to
        store no engagement. Snapshots already stored keep their figure.

        >>> import segkit as sk
        >>> engine = sk.Engine(sk.Schema(events={"visit": {}}))
        >>> engine.engagement_window
        datetime.timedelta(days=7)
        >>> engine.engagement_window = "14d"
        >>> engine.engagement_window
        datetime.timedelta(days=14)

        .. versionadded:: 0.1.0
        """
        return self._engagement_window

    @engagement_window.setter
    def engagement_window(self, value: timedelta | str | None) -> None:
        from segkit.analysis.attention import coerce_engagement_window

        self._engagement_window = coerce_engagement_window(value)

    def _engagement(self, ids: Bitmap, now: datetime) -> float | None:
        """The engagement figure of a snapshot of ``ids`` taken at ``now`` (UTC)."""
        from segkit.analysis.attention import count_engaged

        return count_engaged(self, ids, now)

    def attention(
        self,
        now: datetime | None = None,
        *,
        days: int = 7,
        within_days: int = 2,
        change_pct: float | None = 50.0,
        min_change: float = 10,
        z_threshold: float | None = 3.5,
        min_history: int = 7,
        history_days: int = 90,
        flagged_only: bool = True,
    ) -> AttentionReport:
        """The segments whose size or engagement changed irregularly, most irregular first.

        Reads each segment's stored snapshots up to ``now`` (default: the
        engine's clock), keeping the last one of each UTC day, and gives a reason
        for each of these, for the size and for the engagement:

        * it **fell to zero** within the last ``days`` days (default 7);
        * it **doubled** or **halved** within ``within_days`` days (default 2);
        * it changed by at least ``change_pct`` percent (default 50; ``None``
          turns it off) over the last ``days`` days, or rose from zero;
        * the **robust z-score** (:func:`~segkit.analysis.attention.robust_z`) of
          the latest day-over-day change against the segment's own day-over-day
          changes of the ``history_days`` days before (default 90) is at least
          ``z_threshold`` in absolute value (default 3.5; ``None`` turns it off),
          given at least ``min_history`` earlier changes (default 7).

        No reason is given for a change of fewer than ``min_change`` members
        (default 10). Only segments with a reason are listed unless
        ``flagged_only=False``. Order: more reasons first, then the larger
        7-day change in percent (a rise from zero counts as infinite), then the
        larger absolute change, then the name.

        >>> import segkit as sk
        >>> from datetime import datetime, timedelta, timezone
        >>> t0 = datetime(2024, 6, 1, tzinfo=timezone.utc)
        >>> clock = [t0]
        >>> engine = sk.Engine(sk.Schema(attributes={}), clock=lambda: clock[0])
        >>> _ = engine.upsert_many({f"c-{i}": {} for i in range(60)})
        >>> _ = engine.define_static("import", [f"c-{i}" for i in range(20)])
        >>> clock[0] = t0 + timedelta(days=1)
        >>> _ = engine.add_members("import", [f"c-{i}" for i in range(60)])
        >>> [item.reasons for item in engine.attention()]
        [('size doubled within 2 days', 'size +200% in 7 days')]
        >>> engine.attention(min_change=50)
        AttentionReport: 0 segments, 0 flagged

        .. versionadded:: 0.1.0
        """
        from segkit.analysis.attention import attention as _attention

        return _attention(
            self,
            now,
            days=days,
            within_days=within_days,
            change_pct=change_pct,
            min_change=min_change,
            z_threshold=z_threshold,
            min_history=min_history,
            history_days=history_days,
            flagged_only=flagged_only,
        )

    def hygiene(
        self,
        *,
        now: datetime | None = None,
        tiny: int = 100,
        duplicate_jaccard: float | None = 0.95,
        stale_days: float | None = 30,
        kinds: Iterable[str] | None = None,
    ) -> HygieneReport:
        """Segments that are empty, tiny, near-duplicates, unused or stale.

        * ``"empty"``: no members;
        * ``"tiny"``: fewer than ``tiny`` members (default 100; 0 turns it off);
        * ``"duplicate"``: a Jaccard index of at least ``duplicate_jaccard``
          (default 0.95; ``None`` turns it off) with another non-empty segment,
          one issue per pair, computed from intersection cardinalities;
        * ``"unused"``: no usage record and no rule refers to it (see :attr:`usage`);
        * ``"stale"``: not saved for at least ``stale_days`` days before ``now``
          (default 30; ``None`` turns it off): the later of the definition's
          ``updated_at`` and the last snapshot.

        ``kinds`` limits the checks (default: all five). Issues are ordered by
        kind as listed above, then by segment name.

        >>> import segkit as sk
        >>> engine = sk.Engine(sk.Schema(attributes={"age": "int"}))
        >>> _ = engine.upsert_many({f"c-{i}": {"age": i} for i in range(50)})
        >>> _ = engine.define("kids", "age < 18")
        >>> _ = engine.define("minors", "age <= 17")
        >>> engine.hygiene(tiny=10, kinds=["tiny", "duplicate"])
        HygieneReport: 1 issue (1 duplicate)
          kind       segment  size  detail
          duplicate  kids       18  Jaccard 1.000 with 'minors' (18 members in common)

        .. versionadded:: 0.1.0
        """
        from segkit.analysis.hygiene import hygiene as _hygiene

        return _hygiene(
            self,
            now=now,
            tiny=tiny,
            duplicate_jaccard=duplicate_jaccard,
            stale_days=stale_days,
            kinds=kinds,
        )

    # --- analysis: usage, attention and hygiene (end) ---

    # --- analysis: lookalike (begin) ---

    def lookalike(
        self,
        seed: str,
        *,
        size: int,
        attributes: Iterable[str] | None = None,
        name: str | None = None,
        save: bool = True,
        smoothing: float = 1.0,
        bins: Bins = 5,
        max_values: int = 1024,
        updated_by: str | None = None,
    ) -> Lookalike:
        """The ``size`` profiles outside segment ``seed`` that resemble its members most.

        Each attribute value (numbers and dates: each of ``bins`` quantile bins) gets
        a smoothed log-odds weight, how much more common it is in the seed than
        outside; a profile's score is the sum of its values' weights (the mean of
        its elements' for a list attribute). ``attributes`` defaults to every
        attribute of the schema except those the seed's rule reads and those with
        more than ``max_values`` distinct strings or list elements.
        ``smoothing`` is the pseudo-count ``a`` of the formula; ``bins`` a bin count,
        or ``{attribute: count or edges}``. Equal scores go by external key.

        With ``save=True`` (the default) the chosen profiles become static segment
        ``name`` (default ``f"{seed}_lookalike"``, saved with ``updated_by``), and
        the use of ``seed`` is recorded under objective ``"segmentation"``. Every
        check happens before anything is written. The formula, the bins and the
        errors are described in :mod:`segkit.analysis.lookalike` and
        ``docs/analysis.md``.

        >>> import segkit as sk
        >>> engine = sk.Engine(sk.Schema(attributes={"country": "string", "plan": "string"}))
        >>> _ = engine.upsert_many({"c-1": {"country": "FR", "plan": "pro"},
        ...                         "p-1": {"country": "FR", "plan": "free"},
        ...                         "p-2": {"country": "DE", "plan": "free"}})
        >>> _ = engine.define("pro", 'plan = "pro"')
        >>> found = engine.lookalike("pro", size=1)
        >>> found.attributes, list(found.scores), found.segment
        (('country',), ['p-1'], 'pro_lookalike')
        >>> [u.value.ref for u in engine.storage.list_usage("pro")]
        ['lookalike:pro_lookalike']

        .. versionadded:: 0.1.0
        """
        from segkit.analysis.lookalike import lookalike as _lookalike

        return _lookalike(
            self,
            seed,
            size=size,
            attributes=attributes,
            name=name,
            save=save,
            smoothing=smoothing,
            bins=bins,
            max_values=max_values,
            updated_by=updated_by,
        )

    # --- analysis: lookalike (end) ---

    # --- data frames ------------------------------------------------------------------------

    def upsert_frame(
        self, frame: Any, *, key: str = "key", nulls: str = "skip", progress: ProgressLike = None
    ) -> MembershipChange:
        """Create or update one profile per row of a pandas, polars or pyarrow table.

        Column ``key`` holds the external keys (strings; integer keys are turned into
        their decimal text); every other column is an attribute. A missing cell
        (``None``, ``NaN``, ``NaT``, null) leaves the attribute as it is with
        ``nulls="skip"`` (the default) or unsets it with ``nulls="unset"``. A
        midnight datetime in a ``date`` column (pandas has no date type) is taken
        as that date. Validation and the all-or-nothing rule are those of
        :meth:`upsert_many`: a bad cell raises :class:`~segkit.SchemaError` naming
        the row's key and the column, and nothing changes. ``progress`` reports
        the rows checked (see :mod:`segkit.progress`).

        >>> import pandas as pd
        >>> import segkit as sk
        >>> engine = sk.Engine(sk.Schema(attributes={"plan": "string", "ltv": "float"}))
        >>> _ = engine.define("pro", 'plan = "pro"')
        >>> frame = pd.DataFrame({"id": ["a", "b"], "plan": ["pro", None], "ltv": [10.0, 2.5]})
        >>> engine.upsert_frame(frame, key="id")
        MembershipChange(entered={'pro': ['a']}, exited={})
        >>> engine.get("b")
        {'ltv': 2.5}
        """
        from segkit.interop import frame_columns, frame_rows

        if nulls not in ("skip", "unset"):
            raise ValueError(f"nulls must be 'skip' or 'unset', got {nulls!r}")
        columns = frame_columns(frame)
        if key not in columns:
            raise SchemaError(_missing_column("key", key, columns))
        dates = {
            name for name, t in self.schema.attributes.items() if t == "date" and name in columns
        }
        records: list[tuple[str, dict[str, Any]]] = []
        for number, row in enumerate(frame_rows(frame)):
            row_key = _frame_key(row.pop(key), number, key)
            values: dict[str, Any] = {}
            for name, value in row.items():
                if value is None:
                    if nulls == "unset":
                        values[name] = None
                    continue
                if name in dates and _naive_midnight(value):
                    value = value.date()
                values[name] = value
            records.append((row_key, values))
        return self.upsert_many(records, progress=progress)

    def track_frame(
        self,
        frame: Any,
        *,
        key: str = "key",
        event: str = "event",
        at: str = "at",
        progress: ProgressLike = None,
    ) -> MembershipChange:
        """Record one event per row of a pandas, polars or pyarrow table.

        ``key`` and ``at`` name the columns of the external key and the event time;
        ``event`` names the column of event names, or, when the frame has no such
        column, is itself the name of every row's event. The other columns are
        event properties: a row's non-missing cells are the properties of its
        event. Validation and the all-or-nothing rule are those of
        :meth:`track_many`; ``progress`` reports the rows checked (see
        :mod:`segkit.progress`).

        >>> import pandas as pd
        >>> import segkit as sk
        >>> engine = sk.Engine(sk.Schema(events={"purchase": {"amount": "float"}}, timezone="UTC"))
        >>> _ = engine.define("buyers", "did purchase")
        >>> frame = pd.DataFrame({"key": ["a", "a"], "at": pd.to_datetime(["2024-06-01", "2024-06-02"]),
        ...                       "amount": [10.0, None]})
        >>> engine.track_frame(frame, event="purchase")
        MembershipChange(entered={'buyers': ['a']}, exited={})
        >>> [e.properties for e in engine.events("a")]
        [{'amount': 10.0}, {}]
        """
        from segkit.interop import frame_columns, frame_rows

        columns = frame_columns(frame)
        for role, name in (("key", key), ("at", at)):
            if name not in columns:
                raise SchemaError(_missing_column(role, name, columns))
        per_row = event in columns
        if not per_row and event not in self.schema.events:
            raise SchemaError(
                f"event={event!r} is neither a column ({', '.join(map(repr, columns))}) "
                "nor an event of the schema"
            )
        events: list[Event] = []
        for number, row in enumerate(frame_rows(frame)):
            row_key = _frame_key(row.pop(key), number, key)
            name = row.pop(event) if per_row else event
            moment = row.pop(at)
            if not isinstance(name, str):
                raise SchemaError(
                    f"row {number} (key {row_key!r}): column {event!r} must hold event names,"
                    f" got {name!r}"
                )
            if not isinstance(moment, datetime):
                raise SchemaError(
                    f"row {number} (key {row_key!r}): column {at!r} must hold datetimes,"
                    f" got {moment!r}"
                )
            properties = {k: v for k, v in row.items() if v is not None}
            events.append(Event(row_key, name, moment, properties))
        return self.track_many(events, progress=progress)


def _missing_column(role: str, name: str, columns: list[str]) -> str:
    """The message for a frame without the column an argument names."""
    from segkit._suggest import suggest

    hint = suggest(name, columns)
    extra = f" (did you mean {hint!r}?)" if hint else ""
    return f"the frame has no {role} column {name!r}{extra}; its columns: {', '.join(columns)}"


def _naive_midnight(value: Any) -> bool:
    """Whether ``value`` is a naive datetime at midnight (how pandas holds a date)."""
    return (
        isinstance(value, datetime)
        and value.tzinfo is None
        and not (value.hour or value.minute or value.second or value.microsecond)
    )


def _frame_key(value: Any, number: int, column: str) -> str:
    """The external key in row ``number`` of a frame (integers become their decimal text)."""
    if isinstance(value, str) and value:
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise SchemaError(f"row {number}: column {column!r} must hold non-empty keys, got {value!r}")


def _one_key(names: list[str], key: str) -> dict[str, list[str]]:
    """``{name: [key]}`` for each segment name, sorted (what ``_ChangeLog.result``
    gives when only ``key`` changed, each segment once); sorts ``names``."""
    out: dict[str, list[str]] = {}
    if names:
        if len(names) > 1:
            names.sort()
        for name in names:
            out[name] = [key]
    return out


def _by_rank(item: tuple[_Segment, bool | None]) -> int:
    """The sort key of a ``(segment, verdict)`` pair: the segment's dependency rank."""
    return item[0].rank


def _set_member(
    seg: _Segment, pid: int, key: str, was: bool, now_in: bool, log: _ChangeLog
) -> None:
    """Record profile ``pid``'s new verdict for ``seg`` (a no-op when unchanged)."""
    if now_in != was:
        if now_in:
            seg.ids.add(pid)
        else:
            seg.ids.discard(pid)
        log.record(seg.name, key, was, now_in)


class _ProfileView(Mapping[str, Any]):
    """One profile's attributes, read from the attribute indexes (no copy is kept)."""

    __slots__ = ("_index", "_pid")

    def __init__(self, index: Mapping[str, AttributeIndex], pid: int) -> None:
        self._index = index
        self._pid = pid

    def get(self, name: str, default: Any = None) -> Any:
        column = self._index.get(name)
        value = None if column is None else column.get(self._pid)
        return default if value is None else value

    def __getitem__(self, name: str) -> Any:
        value = self.get(name)
        if value is None:
            raise KeyError(name)
        return value

    def __iter__(self) -> Iterator[str]:
        pid = self._pid
        return (name for name, column in self._index.items() if column.get(pid) is not None)

    def __len__(self) -> int:
        return sum(1 for _ in self)


#: ``upsert_many`` with at least this many records re-evaluates each affected segment
#: once with its bitmap plan over the changed profiles, instead of profile by profile.
BULK: Final = 4096

#: ``Engine.query`` keeps the compiled plans of this many recent rule texts.
PLAN_CACHE: Final = 128


def _conflict(error: ConflictError) -> ConflictError:
    """The storage's conflict, saying what happened and what to do."""
    return ConflictError(
        f"{error} (another writer changed it since this engine read it: "
        "call reload() and try again)"
    )


def _stored_keys(state: SegmentState) -> list[str]:
    """The keys of a stored membership: its bitmap's ids mapped through its key list."""
    name = state.record.name
    if state.bitmap is None:
        return []
    if state.keys is None:
        raise CorruptDataError(f"segment {name!r} has a membership bitmap but no key list")
    try:
        ids = Bitmap.deserialize(state.bitmap)
    except ValueError:
        raise CorruptDataError(
            f"segment {name!r}: its membership is not a portable Roaring bitmap"
        ) from None
    keys = state.keys
    out: list[str] = []
    for pid in ids:
        key = keys[pid] if pid < len(keys) else None
        if key is None:
            raise CorruptDataError(
                f"segment {name!r}: its bitmap holds id {pid}, which its key list does not name"
            )
        out.append(key)
    return out


def _restore_order(deps: Mapping[str, frozenset[str]]) -> list[str]:
    """The stored segments, each after those it refers to; a clear error if impossible.

    Each stored definition was valid when it was written, but two writers changing
    two segments at once can leave a reference to a dropped segment or a cycle.
    """
    for name in sorted(deps):
        missing = sorted(dep for dep in deps[name] if dep not in deps)
        if missing:
            raise SegmentError(
                f"cannot restore segment {name!r}: it refers to segment {missing[0]!r}, "
                "which the storage does not hold"
            )
    waiting = {name: set(found) for name, found in deps.items()}
    order: list[str] = []
    ready = sorted(name for name, found in waiting.items() if not found)
    while ready:
        name = ready.pop(0)
        order.append(name)
        del waiting[name]
        for other, found in waiting.items():
            if name in found:
                found.discard(name)
                if not found:
                    ready.append(other)
        ready.sort()
    if waiting:  # every segment left waits for another one left: walk to a cycle
        path = [min(waiting)]
        while path.count(path[-1]) < 2:
            path.append(min(waiting[path[-1]]))
        cycle = path[path.index(path[-1]) :]
        raise SegmentError(
            f"cannot restore the stored segments: they refer to each other in a cycle: "
            f"{' -> '.join(cycle)}"
        )
    return order
