"""Funnels and customer journeys: stages in order, who reaches each, and how fast.

A :class:`Funnel` is a list of steps (event names, :class:`Step` objects with a
``where`` filter, or profile attribute timestamps) plus explicit options: the
conversion ``window``, the ``order`` (``"ordered"``, ``"strict"``, ``"any"``), how equal
timestamps are treated (``ties``), which ``attempts`` count, and exclusion steps with
their effect. :meth:`Funnel.run` takes any iterable of :class:`~segkit.Event` and
returns a :class:`FunnelReport`; :meth:`Funnel.preset` reproduces PostHog's and
ClickHouse's funnels exactly. ``docs/funnels.md`` defines every option.

>>> import segkit as sk
>>> events = [
...     sk.Event("ann", "signup", "2024-03-01T09:00:00Z"),
...     sk.Event("ann", "upgrade", "2024-03-02T09:00:00Z"),
...     sk.Event("bob", "signup", "2024-03-01T10:00:00Z"),
... ]
>>> report = Funnel(["signup", "upgrade"], window="7d").run(events)
>>> [s.count for s in report.steps], report.total_conversion
([2, 1], 0.5)
>>> report.steps[1].time_from_previous.mean
datetime.timedelta(days=1)

.. versionadded:: 0.1.0
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from datetime import timedelta, tzinfo
from typing import TYPE_CHECKING, Any, Final, Literal

import attrs

from segkit.analysis._funnel_columns import (
    Columns,
    Matcher,
    coded_names,
    ingest,
    ingest_columns,
)
from segkit.analysis._funnel_default import Outcome, Spec, evaluate_entity
from segkit.analysis._funnel_options import (
    check_against_schema,
    choice,
    coerce_window,
    deadline,
    exact_window,
    exclusion_range,
    fixed_length_us,
    numpy_enabled,
)
from segkit.analysis._funnel_peers import check_posthog_exclusions, peer_function
from segkit.analysis._funnel_report import (
    FunnelOutcomes,
    FunnelReport,
    HistogramBin,
    StepReport,
    TimeStats,
    Transition,
)
from segkit.compile.predicate import compile_event_filter
from segkit.dsl.rule import Rule, as_rule
from segkit.errors import SegkitError
from segkit.progress import ProgressLike
from segkit.progress import start as start_progress
from segkit.timeutil import Duration, resolve_timezone

if TYPE_CHECKING:
    from segkit.analysis import _funnel_numpy
    from segkit.compile.sql import SqlQuery
    from segkit.dsl.rule import RuleLike
    from segkit.records import Event, IdMap, Profile
    from segkit.schema import Schema

__all__ = [
    "Exclusion",
    "Funnel",
    "FunnelOutcomes",
    "FunnelReport",
    "HistogramBin",
    "Step",
    "StepReport",
    "TimeStats",
    "Transition",
]

Order = Literal["ordered", "strict", "any"]
Ties = Literal["any_order", "input_order", "strictly_later"]
Attempts = Literal["best", "first", "every"]
OnExclusion = Literal["stop_at_exclusion", "drop_entirely"]
WindowLike = timedelta | str | Duration

_ORDERS: Final = ("ordered", "strict", "any")
_TIES: Final = ("any_order", "input_order", "strictly_later")
_ATTEMPTS: Final = ("best", "first", "every")
_ON_EXCLUSION: Final = ("stop_at_exclusion", "drop_entirely")
_PRESETS: Final = ("posthog", "clickhouse")
_CLICKHOUSE_MODES: Final = (
    "strict_order",
    "strict_deduplication",
    "strict_increase",
    "strict_once",
    "allow_reentry",
)
#: At most this many steps (and, separately, exclusions): step masks are 64-bit.
MAX_STEPS: Final = 32
_POSTHOG_DEFAULT_WINDOW: Final = timedelta(days=14)


def _where(value: RuleLike | None) -> Rule | None:
    return None if value is None else as_rule(value)


@attrs.frozen(init=False)
class Step:
    """One funnel step: an event (optionally filtered) or a profile attribute timestamp.

    ``where`` is rule text over the event's properties, as after ``did EVENT where``:
    ``'`$el.tag_name` = "button"'``, ``"plan is not known"``, ``"amount >= 10"``.
    ``name`` is the label shown in reports (default: the event name, with its filter).

    >>> Step("purchase", where="amount >= 10", name="big purchase").label
    'big purchase'
    >>> Step("purchase", where="amount >= 10").label
    'purchase where amount >= 10'
    >>> Step.attribute("became_mql_at").label
    'became_mql_at'
    >>> Step("purchase", where="amount >=")
    Traceback (most recent call last):
    ...
    segkit.errors.RuleSyntaxError: expected a value after '>=' (line 1, column 10)
      amount >=
               ^

    .. versionadded:: 0.1.0
    """

    event: str | None
    where: Rule | None
    name: str | None
    profile_attribute: str | None

    def __init__(
        self, event: str, where: RuleLike | None = None, *, name: str | None = None
    ) -> None:
        if not isinstance(event, str) or not event:
            raise TypeError(f"a step's event must be a non-empty string, got {event!r}")
        if name is not None and not isinstance(name, str):
            raise TypeError(f"a step's name must be a string, got {name!r}")
        self.__attrs_init__(event, _where(where), name, None)

    @classmethod
    def attribute(cls, attribute: str, *, name: str | None = None) -> Step:
        """A stage reached at the time stored in a profile attribute (CRM lifecycle dates).

        Pass the profiles to :meth:`Funnel.run` (``profiles=``); an entity whose
        attribute is unset has not reached the stage.

        >>> Step.attribute("became_customer_at", name="customer").profile_attribute
        'became_customer_at'

        .. versionadded:: 0.1.0
        """
        if not isinstance(attribute, str) or not attribute:
            raise TypeError(f"an attribute stage needs an attribute name, got {attribute!r}")
        step = object.__new__(cls)
        step.__attrs_init__(None, None, name, attribute)
        return step

    @property
    def label(self) -> str:
        """The name shown in reports.

        >>> Step("buy", where="amount > 3").label, Step("buy", name="purchase").label
        ('buy where amount > 3', 'purchase')
        """
        if self.name is not None:
            return self.name
        if self.event is None:
            assert self.profile_attribute is not None
            return self.profile_attribute
        return self.event if self.where is None else f"{self.event} where {self.where}"


@attrs.frozen(init=False)
class Exclusion:
    """An event that must not happen between two steps of an attempt.

    ``between=(i, j)`` names the steps by their 0-based index (``i < j``); ``None`` means
    the whole funnel, from the first step to the last. ``where`` filters the event like
    a step's. What an exclusion does is the funnel's ``on_exclusion`` option.

    >>> Exclusion("refund", between=(1, 2))
    Exclusion(event='refund', between=(1, 2), where=None)

    .. versionadded:: 0.1.0
    """

    event: str
    between: tuple[int, int] | None
    where: Rule | None

    def __init__(
        self,
        event: str,
        between: tuple[int, int] | None = None,
        *,
        where: RuleLike | None = None,
    ) -> None:
        if not isinstance(event, str) or not event:
            raise TypeError(f"an exclusion's event must be a non-empty string, got {event!r}")
        if between is not None and (
            not isinstance(between, tuple)
            or len(between) != 2
            or not all(isinstance(i, int) and not isinstance(i, bool) for i in between)
        ):
            raise TypeError(f"between must be a pair of step indexes, got {between!r}")
        self.__attrs_init__(event, between, _where(where))


@attrs.frozen(init=False, repr=False)
class Funnel:
    """An ordered list of steps and the rules that say who reached which.

    ``steps`` are event names, :class:`Step` objects or :meth:`Step.attribute` stages.
    The options (``docs/funnels.md`` has the full definitions):

    * ``window``: a :class:`~datetime.timedelta` (exact elapsed time), or a duration
      such as ``"30d"`` (days, weeks, months and years on the calendar of
      ``timezone``), or ``None`` for no limit. It runs from the attempt's first step
      and its end is included: a step at exactly ``start + window`` counts.
    * ``order``: ``"ordered"`` (steps in order; other events in between are fine),
      ``"strict"`` (no other event of the entity in between), or ``"any"``
      (HubSpot-style stages: each stage counts whenever it was reached within the
      window from the entity's first stage event).
    * ``ties``: ``"any_order"`` (events with equal timestamps may count in step
      order, whatever their input order), ``"input_order"`` (equal timestamps keep the
      order the events came in), or ``"strictly_later"`` (each step needs a later
      timestamp than the previous one).
    * ``attempts``: ``"best"`` (every step-0 event opens an attempt; the entity counts
      once, with the attempt that gets furthest, reached earliest, started latest),
      ``"first"`` (only the entity's first step-0 event), or ``"every"`` (re-entry:
      attempts follow one another, a new one opening with the first step-0 event after
      the previous one converted or timed out; counts are then entries).
    * ``reuse_events``: let one event fill several steps of an attempt (ClickHouse).
    * ``exclusions`` and ``on_exclusion``: ``"stop_at_exclusion"`` (an exclusion event
      strictly between steps ``i`` and ``j`` blocks step ``j``: the attempt counts up to
      ``j - 1``) or ``"drop_entirely"`` (an entity whose furthest attempts all meet an
      exclusion before step ``j``, or before the window closes when ``j`` was not
      reached, is removed from every step).
    * ``schema``: check step events, properties and attribute stages against it
      (unknown names raise with a suggestion); its time zone is the default
      ``timezone``, which reads naive timestamps and calendar windows.

    >>> import segkit as sk
    >>> f = Funnel(["visit", Step("purchase", where="amount >= 10")], window="7d")
    >>> f
    Funnel(['visit', 'purchase where amount >= 10'], window='7d')
    >>> Funnel(["visit"], window=timedelta(0))
    Traceback (most recent call last):
    ...
    ValueError: window must be positive, got datetime.timedelta(0)

    .. versionadded:: 0.1.0
    """

    steps: tuple[Step, ...]
    window: timedelta | Duration | None
    order: str
    ties: str
    attempts: str
    reuse_events: bool
    exclusions: tuple[Exclusion, ...]
    on_exclusion: str
    timezone: tzinfo | None
    preset_name: str | None
    modes: tuple[str, ...]
    schema: Schema | None = attrs.field(eq=False)
    _ranges: tuple[tuple[int, int], ...] = attrs.field(eq=False, repr=False)
    _matcher: Matcher = attrs.field(eq=False, repr=False)
    _spec: Spec = attrs.field(eq=False, repr=False)

    def __init__(
        self,
        steps: Sequence[str | Step],
        *,
        window: WindowLike | None = None,
        order: Order = "ordered",
        ties: Ties = "any_order",
        attempts: Attempts = "best",
        reuse_events: bool = False,
        exclusions: Sequence[Exclusion] = (),
        on_exclusion: OnExclusion = "stop_at_exclusion",
        schema: Schema | None = None,
        timezone: str | tzinfo | None = None,
    ) -> None:
        self._setup(
            steps,
            window=window,
            order=order,
            ties=ties,
            attempts=attempts,
            reuse_events=reuse_events,
            exclusions=exclusions,
            on_exclusion=on_exclusion,
            schema=schema,
            timezone=timezone,
            preset=None,
            modes=(),
        )

    def _setup(
        self,
        steps: Sequence[str | Step],
        *,
        window: object,
        order: object,
        ties: object,
        attempts: object,
        reuse_events: object,
        exclusions: Sequence[Exclusion],
        on_exclusion: object,
        schema: Schema | None,
        timezone: str | tzinfo | None,
        preset: str | None,
        modes: tuple[str, ...],
    ) -> None:
        if isinstance(steps, str) or not isinstance(steps, Sequence):
            raise TypeError(f"steps must be a list of event names or Steps, got {steps!r}")
        parsed = tuple(s if isinstance(s, Step) else Step(s) for s in steps)
        n = len(parsed)
        if not n:
            raise ValueError("a funnel needs at least one step")
        if n > MAX_STEPS:
            raise ValueError(f"a funnel has at most {MAX_STEPS} steps, got {n}")
        the_window = coerce_window(window)
        the_order = choice("order", order, _ORDERS)
        the_ties = choice("ties", ties, _TIES)
        the_attempts = choice("attempts", attempts, _ATTEMPTS)
        the_effect = choice("on_exclusion", on_exclusion, _ON_EXCLUSION)
        if not isinstance(reuse_events, bool):
            raise TypeError(f"reuse_events must be a bool, got {reuse_events!r}")
        if isinstance(exclusions, Exclusion) or not all(
            isinstance(x, Exclusion) for x in exclusions
        ):
            raise TypeError(f"exclusions must be a list of Exclusion, got {exclusions!r}")
        excl = tuple(exclusions)
        if len(excl) > MAX_STEPS:
            raise ValueError(f"a funnel has at most {MAX_STEPS} exclusions, got {len(excl)}")
        ranges = tuple(exclusion_range(x, n) for x in excl)
        if preset is None:
            if the_order == "strict" and reuse_events:
                raise ValueError("reuse_events cannot be used with order='strict'")
            if the_order == "any" and excl:
                raise ValueError(
                    "exclusions apply to ordered and strict funnels, not to order='any'"
                )
            if the_order == "any" and the_attempts == "every":
                raise ValueError(
                    "attempts='every' (re-entry) applies to ordered and strict funnels"
                )
        tz = resolve_timezone(timezone) if timezone is not None else None
        if tz is None and schema is not None:
            tz = schema.tz
        if schema is not None:
            check_against_schema(parsed, excl, schema)
        bits = n + len(excl)
        by_name: dict[str, list[tuple[int, Callable[[Mapping[str, Any]], bool] | None]]] = {}
        attributes: list[tuple[int, str]] = []
        for k, step in enumerate(parsed):
            if step.event is None:
                assert step.profile_attribute is not None
                attributes.append((k, step.profile_attribute))
                continue
            fn = (
                None
                if step.where is None
                else compile_event_filter(step.where, step.event, schema, timezone=tz)
            )
            by_name.setdefault(step.event, []).append((k, fn))
        for x, (exclusion, _) in enumerate(zip(excl, ranges, strict=True)):
            fn = (
                None
                if exclusion.where is None
                else compile_event_filter(exclusion.where, exclusion.event, schema, timezone=tz)
            )
            by_name.setdefault(exclusion.event, []).append((n + x, fn))
        keep_all = the_order == "strict" or "strict_order" in modes
        matcher = Matcher(
            {name: tuple(specs) for name, specs in by_name.items()},
            tuple(attributes),
            bits=bits,
            keep_all=keep_all,
            tz=tz,
        )
        event_names = [s.event for s in parsed if s.event is not None]
        disjoint = len(event_names) == len(set(event_names)) and not any(
            x.event in event_names for x in excl
        )
        fast = (
            preset is None
            and disjoint
            and not excl
            and the_ties != "input_order"
            and (
                (the_order == "ordered" and the_attempts != "every")
                or (the_order == "any" and the_attempts == "best")
            )
        )
        window_us = fixed_length_us(the_window, tz)
        spec = Spec(
            n=n,
            order=the_order,
            ties=the_ties,
            attempts=the_attempts,
            reuse=reuse_events,
            exclusions=tuple((i, j, n + x) for x, (i, j) in enumerate(ranges)),
            drop=the_effect == "drop_entirely",
            deadline=deadline(the_window, tz),
            fast=fast,
            window_us=window_us,
            vector=fast and not attributes and (the_window is None or window_us is not None),
        )
        self.__attrs_init__(
            parsed,
            the_window,
            the_order,
            the_ties,
            the_attempts,
            reuse_events,
            excl,
            the_effect,
            tz,
            preset,
            modes,
            schema,
            ranges,
            matcher,
            spec,
        )

    # --- presets ------------------------------------------------------------------------

    @classmethod
    def preset(
        cls,
        name: Literal["posthog", "clickhouse"],
        steps: Sequence[str | Step],
        *,
        window: WindowLike | None = None,
        order: Order = "ordered",
        exclusions: Sequence[Exclusion] = (),
        modes: Sequence[str] = (),
        schema: Schema | None = None,
        timezone: str | tzinfo | None = None,
    ) -> Funnel:
        """A funnel that reproduces a peer's semantics exactly.

        ``"posthog"``: PostHog's ordered, strict and unordered (``order="any"``)
        funnels, with their exclusion and conversion-time rules; the window defaults to
        14 days and a month counts as 31 days. ``"clickhouse"``: ClickHouse's
        ``windowFunnel(window, modes…)`` with ``modes`` among ``strict_order``,
        ``strict_deduplication``, ``strict_increase``, ``strict_once`` and
        ``allow_reentry`` (the current ClickHouse behaviour); the window is required.
        ``docs/funnels.md`` lists how each preset differs from the defaults.

        >>> import segkit as sk
        >>> ch = Funnel.preset("clickhouse", ["a", "b", "c"], window="1d", modes=["strict_order"])
        >>> ch
        Funnel.preset('clickhouse', ['a', 'b', 'c'], window=datetime.timedelta(days=1), modes=['strict_order'])
        >>> events = [sk.Event("u", e, f"2024-01-01T00:00:0{i}Z") for i, e in enumerate("adbc")]
        >>> ch.run(events).levels()
        {'u': 1}
        >>> Funnel.preset("clickhouse", ["a", "b"], window="1d", modes=["strict"])
        Traceback (most recent call last):
        ...
        ValueError: windowFunnel mode 'strict' was renamed 'strict_deduplication'

        .. versionadded:: 0.1.0
        """
        preset = choice("preset", name, _PRESETS)
        funnel = object.__new__(cls)
        if preset == "posthog":
            if modes:
                raise ValueError("modes are ClickHouse windowFunnel options; PostHog has none")
            the_order = choice("order", order, _ORDERS)
            coerced = coerce_window(window)
            exact = _POSTHOG_DEFAULT_WINDOW if coerced is None else exact_window(coerced)
            funnel._setup(
                steps,
                window=exact,
                order=the_order,
                ties="any_order",
                attempts="best",
                reuse_events=False,
                exclusions=exclusions,
                on_exclusion="stop_at_exclusion" if the_order == "any" else "drop_entirely",
                schema=schema,
                timezone=timezone,
                preset=preset,
                modes=(),
            )
            check_posthog_exclusions(funnel)
            return funnel
        if order != "ordered":
            raise ValueError("the clickhouse preset takes modes=[...] instead of order=")
        if exclusions:
            raise ValueError("ClickHouse windowFunnel has no exclusion steps")
        coerced = coerce_window(window)
        if coerced is None:
            raise ValueError("windowFunnel needs a window")
        checked: list[str] = []
        for mode in modes:
            if mode == "strict":
                raise ValueError("windowFunnel mode 'strict' was renamed 'strict_deduplication'")
            checked.append(choice("windowFunnel mode", mode, _CLICKHOUSE_MODES))
        if "allow_reentry" in checked and "strict_order" not in checked:
            raise ValueError("windowFunnel mode 'allow_reentry' requires 'strict_order'")
        funnel._setup(
            steps,
            window=exact_window(coerced),
            order="strict" if "strict_order" in checked else "ordered",
            ties="strictly_later" if "strict_increase" in checked else "any_order",
            attempts="best",
            reuse_events="strict_once" not in checked,
            exclusions=(),
            on_exclusion="stop_at_exclusion",
            schema=schema,
            timezone=timezone,
            preset=preset,
            modes=tuple(dict.fromkeys(checked)),
        )
        if any(s.profile_attribute is not None for s in funnel.steps):
            raise ValueError("the clickhouse preset takes event steps only")
        return funnel

    # --- what the funnel reads ----------------------------------------------------------

    @property
    def event_names(self) -> frozenset[str]:
        """Every event name the funnel reads (steps and exclusions).

        >>> Funnel(["a", "b"], exclusions=[Exclusion("x", (0, 1))]).event_names == {"a", "b", "x"}
        True
        """
        return frozenset(self._matcher.by_name)

    @property
    def entry_events(self) -> frozenset[str]:
        """Event names an entity needs at least one of to enter (candidate pruning).

        Step 0's event, or every step's for ``order="any"``; an attribute stage adds
        nothing (it needs the profile).

        >>> sorted(Funnel(["a", "b"]).entry_events), sorted(Funnel(["a", "b"], order="any").entry_events)
        (['a'], ['a', 'b'])
        """
        steps = self.steps if self.order == "any" else self.steps[:1]
        return frozenset(s.event for s in steps if s.event is not None)

    @property
    def reads_all_events(self) -> bool:
        """Whether events matching no step matter (strict orders break on them).

        >>> Funnel(["a", "b"], order="strict").reads_all_events
        True
        """
        return self._matcher.keep_all

    @property
    def step_names(self) -> tuple[str, ...]:
        """The steps' labels, as in the report.

        >>> Funnel(["a", Step("b", name="bee")]).step_names
        ('a', 'bee')
        """
        if self.preset_name == "posthog" and self.order == "any":
            return tuple(
                f"{k} step" + ("s" if k > 1 else "") for k in range(1, len(self.steps) + 1)
            )
        return tuple(s.label for s in self.steps)

    # --- running ------------------------------------------------------------------------

    def evaluate(
        self,
        events: Iterable[Event],
        *,
        profiles: Iterable[Profile] | Mapping[str, Mapping[str, Any]] | None = None,
        entities: Collection[str] | None = None,
        idmap: IdMap | None = None,
        progress: ProgressLike = None,
    ) -> FunnelOutcomes:
        """Every entity's result, in columns; :meth:`FunnelOutcomes.report` aggregates them.

        ``profiles`` (``Profile`` objects or ``{key: attributes}``) supply attribute
        stages. ``entities`` restricts the run to those keys. ``idmap`` (an Engine's)
        numbers the entities so that the reports' :class:`~segkit.Members` combine with
        the Engine's; every key must already be in it. Large inputs in the common case
        run on the vectorised engine when numpy is installed (see
        :meth:`evaluate_columns`); the results are the same. ``progress`` reports the
        entities evaluated (see :mod:`segkit.progress`; the vectorised engine reports
        only at the end).

        >>> import segkit as sk
        >>> outcomes = Funnel(["visit"]).evaluate([sk.Event("a", "visit", "2024-01-01T00:00:00Z")])
        >>> len(outcomes), outcomes.report().entered
        (1, 1)
        """
        if self._spec.vector and numpy_enabled(2**62):
            if not isinstance(events, (list, tuple)):
                events = list(events)
            if numpy_enabled(len(events)):
                from segkit.analysis import _funnel_numpy

                try:
                    prep = _funnel_numpy.prepare_events(
                        events, self._matcher, entities=entities, idmap=idmap
                    )
                except (SegkitError, TypeError, ValueError, KeyError):
                    prep = None  # the pure path raises the documented error
                if prep is not None:
                    outcomes = self._vector_outcomes(prep)
                    reporter = start_progress(progress, len(prep.keys), desc="funnel")
                    reporter.advance(len(prep.keys))
                    reporter.finish()
                    return outcomes
        cols = ingest(events, self._matcher, profiles=profiles, entities=entities, idmap=idmap)
        return self._outcomes_of(cols, progress)

    def evaluate_columns(
        self,
        keys: Sequence[str] | Sequence[int],
        names: Sequence[str] | Sequence[int],
        times_us: Sequence[int],
        *,
        properties: Sequence[Mapping[str, Any]] | None = None,
        profiles: Iterable[Profile] | Mapping[str, Mapping[str, Any]] | None = None,
        entities: Collection[str] | None = None,
        idmap: IdMap | None = None,
        categories: Sequence[str] | None = None,
    ) -> FunnelOutcomes:
        """Like :meth:`evaluate`, from parallel columns instead of Event objects.

        ``keys[i]``, ``names[i]`` and ``times_us[i]`` (microseconds since the Unix epoch,
        UTC) describe event ``i``; ``properties[i]`` its properties, needed only when a
        step or an exclusion has a ``where``. Events of one entity may come in any
        order; equal times keep their order in the columns. With ``idmap``, a key may
        also be the entity's id in it (an int, as an Engine numbers its profiles).

        The columns may be lists or numpy arrays (``keys``: strings, or integer ids
        with ``idmap``; ``names``: strings; ``times_us``: integers). ``names`` may also
        come coded, as the peers' categorical columns are: integer codes of
        ``categories`` (``names[i]`` stands for ``categories[names[i]]``), a pandas
        categorical column or a polars ``Enum`` Series (their codes are read, a
        missing name is in no step). With numpy
        installed (the ``fast`` extra) and the funnel in the common case (ordered
        with ``attempts="best"`` or ``"first"``, or ``order="any"``; distinct step
        events, no exclusions, ``ties`` other than ``"input_order"``, a window of
        fixed length or none, no attribute stages), a large input is evaluated by a
        vectorised engine: same results, several times faster, most of all from numpy
        arrays with integer ids.

        >>> outcomes = Funnel(["visit", "buy"]).evaluate_columns(
        ...     ["a", "a", "b"], ["visit", "buy", "visit"], [0, 60_000_000, 0])
        >>> [s.count for s in outcomes.report().steps]
        [2, 1]
        >>> from segkit.records import IdMap
        >>> ids = IdMap()
        >>> ids.assign("a"), ids.assign("b")
        (0, 1)
        >>> report = Funnel(["visit", "buy"]).evaluate_columns(
        ...     [1, 1, 0], ["visit", "buy", "visit"], [0, 60_000_000, 0], idmap=ids).report()
        >>> report.members(1).keys()
        ['b']
        >>> report = Funnel(["visit", "buy"]).evaluate_columns(
        ...     [1, 1, 0], [2, 0, 2], [0, 60_000_000, 0], idmap=ids,
        ...     categories=["buy", "email", "visit"]).report()
        >>> [s.count for s in report.steps]
        [2, 1]

        .. versionchanged:: 0.1.0 ``categories=``; pandas and polars categorical names.
        """
        names, categories = coded_names(names, categories)
        if self._spec.vector and numpy_enabled(len(names)):
            from segkit.analysis import _funnel_numpy

            try:
                prep = _funnel_numpy.prepare_columns(
                    keys,
                    names,
                    times_us,
                    self._matcher,
                    properties=properties,
                    entities=entities,
                    idmap=idmap,
                    categories=categories,
                )
            except (SegkitError, TypeError, ValueError, KeyError):
                prep = None  # the pure path raises the documented error
            if prep is not None:
                return self._vector_outcomes(prep)
        keys, names, times_us = _plain_columns(keys, names, times_us, idmap, categories)
        cols = ingest_columns(
            keys,
            names,
            times_us,
            self._matcher,
            properties=properties,
            profiles=profiles,
            entities=entities,
            idmap=idmap,
        )
        return self._outcomes_of(cols)

    def _vector_outcomes(self, prep: _funnel_numpy.Prepared) -> FunnelOutcomes:
        from segkit.analysis import _funnel_numpy

        outcomes = FunnelOutcomes(
            self.step_names,
            prep.idmap,
            prep.keys,
            prep.ids,
            prep.extra_ids,
            positive_times=self.preset_name == "posthog",
        )
        _funnel_numpy.evaluate(prep, self._spec, self._spec.window_us, outcomes)
        return outcomes

    def _outcomes_of(self, cols: Columns, progress: ProgressLike = None) -> FunnelOutcomes:
        outcomes = FunnelOutcomes(
            self.step_names,
            cols.idmap,
            cols.keys,
            cols.ids,
            cols.extra_ids,
            positive_times=self.preset_name == "posthog",
        )
        compute = self._entity_function()
        needs_start = not (self.order == "any" and self.preset_name != "clickhouse")
        single_bits = self._spec.fast
        slots: list[int] = []
        rows: list[Outcome] = []
        add_slot, add_row = slots.append, rows.append
        reporter = start_progress(progress, len(cols.ts), desc="funnel")
        groups = reporter.iterate(zip(cols.ts, cols.masks, strict=True))
        for slot, (ts, masks) in enumerate(groups):
            if needs_start and not (
                (1 in masks) if single_bits else any(mask & 1 for mask in masks)
            ):
                continue  # never did step 0: cannot enter
            for outcome in compute(ts, masks):
                add_slot(slot)
                add_row(outcome)
        outcomes._extend(slots, rows)
        reporter.finish()
        return outcomes

    def _entity_function(self) -> Callable[[Sequence[int], Sequence[int]], list[Outcome]]:
        spec = self._spec
        if self.preset_name is None:
            return lambda ts, masks: evaluate_entity(ts, masks, spec)
        assert isinstance(self.window, timedelta)
        return peer_function(
            self.preset_name,
            self.order,
            len(self.steps),
            self.window // timedelta(microseconds=1),
            frozenset(self.modes),
            spec.exclusions,
        )

    def run(
        self,
        events: Iterable[Event],
        *,
        profiles: Iterable[Profile] | Mapping[str, Mapping[str, Any]] | None = None,
        entities: Collection[str] | None = None,
        progress: ProgressLike = None,
    ) -> FunnelReport:
        """Run the funnel over ``events`` (any iterable of :class:`~segkit.Event`).

        ``progress`` reports the entities evaluated (see :mod:`segkit.progress`).

        >>> import segkit as sk
        >>> Funnel(["visit", "buy"]).run([]).entered
        0
        >>> calls = []
        >>> events = [sk.Event(k, "visit", "2024-01-01T00:00:00Z") for k in "abc"]
        >>> _ = Funnel(["visit"]).run(events, progress=lambda *args: calls.append(args))
        >>> calls
        [(1, 3), (2, 3), (3, 3)]
        """
        return self.evaluate(
            events, profiles=profiles, entities=entities, progress=progress
        ).report()

    def compare(
        self,
        events: Iterable[Event],
        segments: Mapping[str, Iterable[str]],
        *,
        profiles: Iterable[Profile] | Mapping[str, Mapping[str, Any]] | None = None,
    ) -> dict[str, FunnelReport]:
        """One report for everyone (``"all"``) and one per segment (given by its keys).

        The funnel is evaluated once; each segment's report aggregates its members.

        >>> import segkit as sk
        >>> events = [sk.Event("a", "visit", "2024-01-01T00:00:00Z"),
        ...           sk.Event("a", "buy", "2024-01-01T01:00:00Z"),
        ...           sk.Event("b", "visit", "2024-01-01T00:00:00Z")]
        >>> reports = Funnel(["visit", "buy"]).compare(events, {"vip": ["a"], "new": ["b"]})
        >>> {name: r.total_conversion for name, r in reports.items()}
        {'all': 0.5, 'vip': 1.0, 'new': 0.0}
        """
        if "all" in segments:
            raise ValueError("'all' is the report of every entity; name the segment otherwise")
        outcomes = self.evaluate(events, profiles=profiles)
        out = {"all": outcomes.report()}
        for name, keys in segments.items():
            out[name] = outcomes.report_for(keys)
        return out

    def to_sql(
        self,
        dialect: Literal["duckdb", "spark", "postgres"] = "duckdb",
        *,
        events: str | tuple[str, ...] = "events",
        schema: Schema | None = None,
    ) -> SqlQuery:
        """This funnel as one SQL ``SELECT`` over an events table (DuckDB, Spark, PostgreSQL).

        The query returns ``(key, level, t0, …)`` per entrant, times in microseconds;
        :func:`segkit.compile.funnel_sql.report_from_rows` turns the rows into the
        report :meth:`run` gives. Default semantics only (``order="ordered"``, no
        exclusions, distinct step events); see :mod:`segkit.compile.funnel_sql`.

        >>> Funnel(["visit", "buy"], window="1d").to_sql().params
        {'p1': 'visit', 'p2': 86400000000, 'p3': 'buy'}

        .. versionadded:: 0.1.0
        """
        from segkit.compile.funnel_sql import funnel_to_sql

        return funnel_to_sql(self, dialect, events=events, schema=schema)

    def __repr__(self) -> str:
        labels = [s.label for s in self.steps]
        parts = [repr(labels)]
        if self.window is not None:
            parts.append(f"window={_show_window(self.window)}")
        if self.preset_name is not None:
            if self.preset_name == "posthog":
                if self.order != "ordered":
                    parts.append(f"order={self.order!r}")
            elif self.modes:
                parts.append(f"modes={list(self.modes)!r}")
            if self.exclusions:
                parts.append(f"exclusions={list(self.exclusions)!r}")
            return f"Funnel.preset({self.preset_name!r}, {', '.join(parts)})"
        defaults = {
            "order": "ordered",
            "ties": "any_order",
            "attempts": "best",
            "reuse_events": False,
            "on_exclusion": "stop_at_exclusion",
        }
        for option, default in defaults.items():
            value = getattr(self, option)
            if value != default:
                parts.append(f"{option}={value!r}")
        if self.exclusions:
            parts.append(f"exclusions={list(self.exclusions)!r}")
        return f"Funnel({', '.join(parts)})"


def _plain_columns(
    keys: Sequence[str] | Sequence[int],
    names: Sequence[str] | Sequence[int],
    times_us: Sequence[int],
    idmap: IdMap | None,
    categories: Sequence[Any] | None = None,
) -> tuple[Sequence[str], Sequence[str], Sequence[int]]:
    """The columns as Python values for the pure path: numpy arrays become lists,
    integer keys (ids of ``idmap``) the keys and codes of ``categories`` the names
    they stand for."""
    columns: list[Any] = [keys, names, times_us]
    for i, col in enumerate(columns):
        tolist = getattr(col, "tolist", None)
        if tolist is not None and not isinstance(col, (list, tuple)):
            columns[i] = tolist()
    if categories is not None:
        columns[1] = list(map(categories.__getitem__, columns[1]))
    if idmap is not None and any(
        type(k) is int or (isinstance(k, int) and not isinstance(k, bool)) for k in columns[0]
    ):
        key_of = idmap.key_of
        columns[0] = [
            key_of(k) if isinstance(k, int) and not isinstance(k, bool) else k for k in columns[0]
        ]
    return columns[0], columns[1], columns[2]


def _show_window(window: timedelta | Duration) -> str:
    return repr(str(window)) if isinstance(window, Duration) else repr(window)
