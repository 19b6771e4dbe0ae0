"""Where each segment is used, for what, and which segments nobody uses.

:attr:`Engine.usage <segkit.Engine.usage>` is a :class:`UsageLog` bound to the
engine. Applications record each use of a segment (a workflow, a campaign, a
personalisation rule, a dashboard) with a ``tool``, an ``objective`` and a
``ref``; the records live in the engine's :class:`~segkit.Storage` (one per
``(segment, tool, ref)``) and are deleted with the segment.

Uses inside segkit count too, under the objective ``"segmentation"`` and the
tool ``"segkit"``:

* a rule that says ``in segment "x"`` uses ``x`` (``ref="segment:<user>"``). These
  are read from the engine's dependency graph on every call, never stored, so
  they follow ``redefine`` and ``drop`` at once;
* a split saved as static segments uses its parent (``ref="split:<static>"``)
  and a lookalike segment uses its seed (``ref="lookalike:<name>"``). Those are
  stored records; one whose static segment no longer exists is stale and left
  out.

>>> import segkit as sk
>>> engine = sk.Engine(sk.Schema(attributes={"plan": "string"}))
>>> _ = engine.define("pro", 'plan = "pro"')
>>> _ = engine.define("pro_fr", 'in segment "pro" and plan = "pro"')
>>> _ = engine.define("free", 'plan = "free"')
>>> _ = engine.usage.record("pro_fr", tool="workflow", objective="automation", ref="wf-12")
>>> [(u.tool, u.objective, u.ref) for u in engine.usage.where_used("pro")]
[('segkit', 'segmentation', 'segment:pro_fr')]
>>> engine.usage.unused()
['free']

.. versionadded:: 0.1.0
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Final

import attrs

from segkit._suggest import suggest
from segkit.analysis._html import Columns, Frames, html_table, text_table, typed_columns
from segkit.errors import ConflictError
from segkit.index import Bitmap, Members
from segkit.storage import UsageRecord, describe_usage, record_usage

if TYPE_CHECKING:
    from segkit.engine import Engine

__all__ = ["OBJECTIVES", "SEGKIT_TOOL", "ObjectiveUsage", "UsageLog"]

#: The objectives a use is recorded under, in the order reports list them.
OBJECTIVES: Final = ("personalization", "communication", "automation", "analytics", "segmentation")

#: The tool name of segkit's own uses (rule references, splits, lookalike seeds).
SEGKIT_TOOL: Final = "segkit"

#: The ``ref`` prefixes of segkit's own uses, and what follows them: a segment name.
_REFERENCE: Final = "segment:"
_STORED_PREFIXES: Final = ("split:", "lookalike:")

#: How often :meth:`UsageLog.remove` re-reads after losing a race.
_RETRIES: Final = 100

#: The unused segments named by :meth:`UsageLog.table` (then "... N more").
_UNUSED_SHOWN: Final = 10
_COLUMNS: Final = (("segment", "l"), ("tool", "l"), ("objective", "l"), ("ref", "l"), ("at", "l"))


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


@attrs.frozen(repr=False)
class ObjectiveUsage:
    """The segments used for one objective, and the profiles they reach.

    ``segments`` are sorted; ``count`` is their number; ``members`` is the union
    of their current members (for example every profile that some communication
    can reach), as :class:`~segkit.Members`.

    >>> import segkit as sk
    >>> engine = sk.Engine(sk.Schema(attributes={"plan": "string"}))
    >>> _ = engine.upsert_many({"a": {"plan": "pro"}, "b": {"plan": "free"}})
    >>> _ = engine.define("pro", 'plan = "pro"')
    >>> _ = engine.usage.record("pro", tool="email", objective="communication", ref="nl-7")
    >>> reach = engine.usage.by_objective()["communication"]
    >>> reach
    ObjectiveUsage('communication', count=1, segments=('pro',))
    >>> reach.members.keys(), reach.to_dict()
    (['a'], {'objective': 'communication', 'count': 1, 'segments': ['pro']})

    .. versionadded:: 0.1.0
    """

    objective: str
    segments: tuple[str, ...]
    members: Members = attrs.field(eq=False)

    @property
    def count(self) -> int:
        """The number of segments used for this objective."""
        return len(self.segments)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe copy (the members are left out: see :attr:`members`)."""
        return {"objective": self.objective, "count": self.count, "segments": list(self.segments)}

    def __repr__(self) -> str:
        return f"ObjectiveUsage({self.objective!r}, count={self.count}, segments={self.segments!r})"


class UsageLog(Frames):
    """Record, remove and query where an engine's segments are used.

    Get it from :attr:`Engine.usage <segkit.Engine.usage>`. ``objective`` must be
    one of :data:`OBJECTIVES` (``"personalization"``, ``"communication"``,
    ``"automation"``, ``"analytics"``, ``"segmentation"``): a fixed vocabulary
    keeps :meth:`by_objective` comparable across tools and catches typos. The
    tool name ``"segkit"`` is reserved for segkit's own uses.

    :meth:`table` lists every current use (a notebook shows it in HTML), and
    :meth:`to_pandas` / :meth:`to_polars` give one row per use.

    >>> import segkit as sk
    >>> engine = sk.Engine(sk.Schema(attributes={}))
    >>> _ = engine.define_static("vip", [])
    >>> engine.usage.record("vip", tool="workflow", objective="automaton", ref="wf-1")
    Traceback (most recent call last):
    ...
    ValueError: unknown objective 'automaton' (did you mean 'automation'?): expected one of personalization, communication, automation, analytics, segmentation
    >>> engine.usage.record("vip", tool="workflow", objective="automation", ref="wf-1").key
    ('vip', 'workflow', 'wf-1')
    >>> engine.usage
    UsageLog(segments=1, used=1, records=1)

    .. versionadded:: 0.1.0
    """

    __slots__ = ("_engine",)

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def __repr__(self) -> str:
        uses = self._uses()
        used = sum(1 for records in uses.values() if records)
        total = sum(len(records) for records in uses.values())
        return f"UsageLog(segments={len(uses)}, used={used}, records={total})"

    def _display(self) -> tuple[str, list[list[str]], list[str]]:
        """The head line, one row of cells per use, and the unused segments' note."""
        uses = self._uses()
        records = [usage for found in uses.values() for usage in found]
        unused = [name for name, found in uses.items() if not found]
        used = len(uses) - len(unused)
        head = (
            f"UsageLog: {_plural(len(uses), 'segment')}, {used} used, "
            f"{_plural(len(records), 'use')}"
        )
        cells = [
            [
                u.segment,
                u.tool,
                u.objective,
                u.ref,
                "-" if u.at is None else u.at.strftime("%Y-%m-%d %H:%M"),
            ]
            for u in records
        ]
        notes = []
        if unused:
            more = (
                f", ... {len(unused) - _UNUSED_SHOWN} more" if len(unused) > _UNUSED_SHOWN else ""
            )
            notes.append(f"unused: {', '.join(unused[:_UNUSED_SHOWN])}{more}")
        return head, cells, notes

    def table(self) -> str:
        """Every current use as plain text, by segment, then tool, then ref; then the unused.

        ``at`` is when the use was recorded (for a rule reference, when the
        referring segment last changed), to the minute.

        >>> import segkit as sk
        >>> from datetime import datetime, timezone
        >>> now = datetime(2024, 6, 30, 9, 15, tzinfo=timezone.utc)
        >>> engine = sk.Engine(sk.Schema(attributes={}), clock=lambda: now)
        >>> for name in ("vip", "old"):
        ...     _ = engine.define_static(name, [])
        >>> _ = engine.usage.record("vip", tool="email", objective="communication", ref="nl-7")
        >>> print(engine.usage.table())
        UsageLog: 2 segments, 1 used, 1 use
          segment  tool   objective      ref   at
          vip      email  communication  nl-7  2024-06-30 09:15
          unused: old
        """
        head, cells, notes = self._display()
        return text_table([head], _COLUMNS, cells, notes)

    def _repr_html_(self) -> str:
        """The notebook view: :meth:`table` as an HTML table."""
        head, cells, notes = self._display()
        return html_table([head], _COLUMNS, cells, notes)

    def _columns(self) -> Columns:
        """One row per current use (rule references included): the fields of a record."""
        records = [usage for found in self._uses().values() for usage in found]
        return typed_columns(
            [
                ("segment", "str", [u.segment for u in records]),
                ("tool", "str", [u.tool for u in records]),
                ("objective", "str", [u.objective for u in records]),
                ("ref", "str", [u.ref for u in records]),
                ("at", "datetime", [u.at for u in records]),
            ]
        )

    # --- writing ----------------------------------------------------------------------------

    def record(self, segment: str, *, tool: str, objective: str, ref: str = "") -> UsageRecord:
        """Record that ``tool`` uses ``segment`` for ``objective`` under ``ref``; the record.

        One record is kept per ``(segment, tool, ref)``: recording the same triple
        again replaces it (a new objective, a new time). ``at`` is the engine's
        clock time. Raises :class:`~segkit.SegmentError` for an unknown segment
        (with a suggestion), ``ValueError`` for an unknown objective, an empty tool
        or the reserved tool ``"segkit"``, ``TypeError`` for a value that is not a
        string; nothing is written then.

        >>> import segkit as sk
        >>> from datetime import datetime, timezone
        >>> now = datetime(2024, 6, 30, tzinfo=timezone.utc)
        >>> engine = sk.Engine(sk.Schema(attributes={}), clock=lambda: now)
        >>> _ = engine.define_static("vip", [])
        >>> engine.usage.record("vip", tool="email", objective="communication", ref="nl-7")
        UsageRecord(segment='vip', tool='email', objective='communication', ref='nl-7', at=datetime.datetime(2024, 6, 30, 0, 0, tzinfo=datetime.timezone.utc))
        >>> engine.usage.record("vipp", tool="email", objective="communication")
        Traceback (most recent call last):
        ...
        segkit.errors.SegmentError: unknown segment 'vipp' (did you mean 'vip'?)

        .. versionadded:: 0.1.0
        """
        engine = self._engine
        engine._segment(segment)
        _check_text(tool, "tool")
        if tool == SEGKIT_TOOL:
            raise ValueError(
                f"tool {SEGKIT_TOOL!r} is reserved for segkit's own uses "
                "(rule references, splits, lookalike seeds)"
            )
        _check_objective(objective)
        _check_text(ref, "ref", empty=True)
        usage = UsageRecord(segment, tool, objective, ref, at=engine.now())
        record_usage(engine._storage, usage)
        return usage

    def remove(self, segment: str, *, tool: str, ref: str = "") -> UsageRecord:
        """Delete the usage record ``(segment, tool, ref)``; the record that was removed.

        Raises :class:`~segkit.SegmentError` for an unknown segment, ``KeyError``
        if no such use is recorded, and ``ValueError`` for a rule reference (it
        goes away when the referring segment is redefined or dropped).

        >>> import segkit as sk
        >>> engine = sk.Engine(sk.Schema(attributes={}))
        >>> _ = engine.define_static("vip", [])
        >>> _ = engine.usage.record("vip", tool="ads", objective="communication", ref="c-1")
        >>> engine.usage.remove("vip", tool="ads", ref="c-1").objective
        'communication'
        >>> engine.usage.remove("vip", tool="ads", ref="c-1")
        Traceback (most recent call last):
        ...
        KeyError: "usage of 'vip' by 'ads' ref 'c-1' is not recorded"

        .. versionadded:: 0.1.0
        """
        engine = self._engine
        engine._segment(segment)
        _check_text(tool, "tool")
        _check_text(ref, "ref", empty=True)
        if tool == SEGKIT_TOOL and ref.startswith(_REFERENCE):
            user = ref[len(_REFERENCE) :]
            raise ValueError(
                f"{describe_usage(segment, tool, ref)} comes from the rule of segment "
                f"{user!r}: redefine or drop {user!r} to remove it"
            )
        storage = engine._storage
        for _ in range(_RETRIES):
            found = storage.get_usage(segment, tool, ref)
            if found is None:
                raise KeyError(f"{describe_usage(segment, tool, ref)} is not recorded")
            try:
                storage.delete_usage(segment, tool, ref, expected_version=found.version)
            except ConflictError:
                continue  # replaced meanwhile: look again
            return found.value
        raise ConflictError(f"{describe_usage(segment, tool, ref)}: kept changing while removed")

    # --- reading ----------------------------------------------------------------------------

    def where_used(self, segment: str) -> list[UsageRecord]:
        """Every use of ``segment``, sorted by tool then ref (rule references included).

        A rule reference is reported as ``UsageRecord(segment, "segkit",
        "segmentation", "segment:<user>")`` with ``at`` the time the referring
        segment was last changed.

        >>> import segkit as sk
        >>> engine = sk.Engine(sk.Schema(attributes={"age": "int"}))
        >>> _ = engine.define("adults", "age >= 18")
        >>> _ = engine.define("seniors", 'in segment "adults" and age >= 65')
        >>> [u.ref for u in engine.usage.where_used("adults")]
        ['segment:seniors']
        >>> _ = engine.redefine("seniors", "age >= 65")
        >>> engine.usage.where_used("adults")
        []

        .. versionadded:: 0.1.0
        """
        self._engine._segment(segment)
        return self._uses([segment])[segment]

    def by_objective(self) -> dict[str, ObjectiveUsage]:
        """Per objective, the segments used for it (and their number and reach).

        Every objective of :data:`OBJECTIVES` is a key, in that order, even with no
        segment; objectives written to the storage by other means follow, sorted.

        >>> import segkit as sk
        >>> engine = sk.Engine(sk.Schema(attributes={}))
        >>> for name in ("a", "b"):
        ...     _ = engine.define_static(name, [])
        >>> _ = engine.usage.record("a", tool="crm", objective="analytics", ref="d-1")
        >>> _ = engine.usage.record("b", tool="crm", objective="analytics", ref="d-1")
        >>> {k: v.segments for k, v in engine.usage.by_objective().items() if v.count}
        {'analytics': ('a', 'b')}

        .. versionadded:: 0.1.0
        """
        engine = self._engine
        found: dict[str, set[str]] = {objective: set() for objective in OBJECTIVES}
        for name, records in self._uses().items():
            for usage in records:
                found.setdefault(usage.objective, set()).add(name)
        order = [*OBJECTIVES, *sorted(k for k in found if k not in OBJECTIVES)]
        out: dict[str, ObjectiveUsage] = {}
        for objective in order:
            names = tuple(sorted(found[objective]))
            bitmaps = [engine._segments[name].ids for name in names]
            ids = Bitmap.union(*bitmaps) if bitmaps else Bitmap()
            out[objective] = ObjectiveUsage(objective, names, engine._members(ids))
        return out

    def unused(self) -> list[str]:
        """The segments with no use at all (no record, no rule reference), sorted.

        >>> import segkit as sk
        >>> engine = sk.Engine(sk.Schema(attributes={}))
        >>> _ = engine.define_static("old", [])
        >>> engine.usage.unused()
        ['old']

        .. versionadded:: 0.1.0
        """
        return [name for name, records in self._uses().items() if not records]

    def _uses(self, names: Iterable[str] | None = None) -> dict[str, list[UsageRecord]]:
        """Every current use of each segment among ``names`` (default: all), by name."""
        engine = self._engine
        segments = engine._segments
        storage = engine._storage
        chosen = sorted(segments) if names is None else list(names)
        out: dict[str, list[UsageRecord]] = {name: [] for name in chosen}
        if names is None:
            stored = [v.value for v in storage.list_usage()]
        else:
            stored = [v.value for name in chosen for v in storage.list_usage(name)]
        for usage in stored:
            records = out.get(usage.segment)
            if records is not None and _is_current(usage, segments):
                records.append(usage)
        graph = engine._graph
        for name, records in out.items():
            for user in sorted(graph.users_of(name)):
                record = segments[user].record
                at = None if record is None else record.updated_at
                records.append(
                    UsageRecord(name, SEGKIT_TOOL, "segmentation", f"{_REFERENCE}{user}", at=at)
                )
            records.sort(key=lambda u: (u.tool, u.ref))
        return out


def _is_current(usage: UsageRecord, segments: Mapping[str, object]) -> bool:
    """Whether a stored record still describes a use (segkit's own ones are checked)."""
    if usage.tool != SEGKIT_TOOL:
        return True
    ref = usage.ref
    if ref.startswith(_REFERENCE):
        return False  # rule references come from the dependency graph, never from storage
    for prefix in _STORED_PREFIXES:
        if ref.startswith(prefix):
            return ref[len(prefix) :] in segments
    return True


def _check_text(value: object, field: str, *, empty: bool = False) -> None:
    if not isinstance(value, str):
        raise TypeError(f"{field} must be a string, got {type(value).__name__}")
    if not empty and not value:
        raise ValueError(f"{field} must not be empty")


def _check_objective(objective: object) -> None:
    _check_text(objective, "objective")
    assert isinstance(objective, str)
    if objective not in OBJECTIVES:
        hint = suggest(objective, OBJECTIVES)
        extra = f" (did you mean {hint!r}?)" if hint else ""
        raise ValueError(
            f"unknown objective {objective!r}{extra}: expected one of {', '.join(OBJECTIVES)}"
        )
