"""Hypothesis strategies over a fixed test schema: rule ASTs, profiles and event lists.

Everything here is plain data plus strategies, so the same generated rules and
populations can feed the reference model (``tests/reference.py``), the compiled
predicate and the bitmap plan. Values are drawn from small pools on purpose, so
that equality, prefix and regex matches actually happen, and times cluster
around ``NOW`` (the morning Paris moved its clocks forward) and around the exact
edges of the windows the rules use.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime, time, timedelta, timezone
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo

from hypothesis import strategies as st

from segkit.dsl.ast import (
    AGGREGATE_FUNCS,
    COMPARE_OPS,
    HAS_MODES,
    STRING_OPS,
    Aggregate,
    And,
    Between,
    BetweenWindow,
    Bucket,
    Compare,
    Did,
    Expr,
    FirstTime,
    HasList,
    InLast,
    InList,
    InSegment,
    IsKnown,
    LastWindow,
    Matches,
    MoreThanAgo,
    Not,
    Or,
    SeqStep,
    Sequence,
    StringOp,
    TimeCompare,
    Window,
)
from segkit.records import Event
from segkit.timeutil import Duration

__all__ = [
    "DATETIME_ZONES",
    "DURATION_POOL",
    "KEYS",
    "NOW",
    "REGEX_FLAG_SETS",
    "REGEX_PATTERNS",
    "SEGMENT_NAMES",
    "STRING_LITERALS",
    "STRING_VALUES",
    "TEST_ATTRIBUTES",
    "TEST_EVENTS",
    "TEST_TZ",
    "Event",
    "dates",
    "datetimes",
    "durations",
    "event_lists",
    "events",
    "exprs",
    "field_predicates",
    "profiles",
    "segment_memberships",
    "where_exprs",
    "windows",
]

# --- the fixed test schema (plain data) --------------------------------------------------------

TEST_ATTRIBUTES: dict[str, str] = {
    "country": "string",
    "age": "int",
    "ltv": "float",
    "is_customer": "bool",
    "signed_up": "date",
    "last_seen": "datetime",
    "tags": "list[string]",
    "scores": "list[int]",
    "email": "string",
}
TEST_EVENTS: dict[str, dict[str, str]] = {
    "page_view": {"url": "string"},
    "purchase": {"amount": "float", "sku": "string", "qty": "int"},
    "cart_abandoned": {},
    "signup": {},
}
TEST_TZ = ZoneInfo("Europe/Paris")
#: The fixed evaluation time. Paris moved from +01:00 to +02:00 at 02:00 that morning.
NOW = datetime(2024, 3, 31, 12, 0, tzinfo=TEST_TZ)

#: Zones that attribute and event datetimes are expressed in (same instants, other wall clocks).
#: New York changed to summer time on 2024-03-10, inside the event range too.
DATETIME_ZONES = (
    TEST_TZ,
    timezone.utc,
    timezone(timedelta(hours=5, minutes=30)),
    timezone(timedelta(hours=-8)),
    ZoneInfo("America/New_York"),
)

#: Strings used as rule literals: a small alphabet so that matches happen.
STRING_LITERALS = ("FR", "DE", "fr", "", "a", "abc", "Ab", "b", "SS")
#: Strings used as attribute/property values: the literals plus a few tricky ones
#: ("Straße" casefolds to "strasse"; newlines exercise the m and s regex flags).
STRING_VALUES = (*STRING_LITERALS, "Straße", "a\nc", "x\nab", "ABC", "123", "abc1", "a@b.c")
REGEX_PATTERNS = ("^a", "b$", "[0-9]+", "a.c", "^$")
#: Every subset of "ims", in canonical order.
REGEX_FLAG_SETS = ("", "i", "m", "s", "im", "is", "ms", "ims")
SEGMENT_NAMES = ("vip", "churn_risk", "beta")
KEYS = tuple(f"c-{i}" for i in range(1, 13))
BUCKET_SALTS = ("exp-7", "", "holdout")

#: Durations that rules use most of the time, so that window edges line up with generated times.
DURATION_POOL = (
    Duration(1, "s"),
    Duration(90, "s"),
    Duration(30, "min"),
    Duration(1, "h"),
    Duration(23, "h"),
    Duration(24, "h"),
    Duration(25, "h"),
    Duration(1, "d"),
    Duration(2, "d"),
    Duration(7, "d"),
    Duration(30, "d"),
    Duration(1, "w"),
    Duration(4, "w"),
    Duration(1, "mo"),
    Duration(3, "mo"),
    Duration(1, "y"),
)
_UNIT_AMOUNTS = {"s": 90_000, "min": 3_000, "h": 72, "d": 40, "w": 8, "mo": 4, "y": 2}

_NOW_UTC = NOW.astimezone(timezone.utc)
_NOW_DATE = NOW.date()

# --- scalar values -----------------------------------------------------------------------------


@cache
def durations() -> st.SearchStrategy[Duration]:
    """Durations in every unit, mostly from :data:`DURATION_POOL`."""
    arbitrary = st.sampled_from(tuple(_UNIT_AMOUNTS)).flatmap(
        lambda unit: st.integers(1, _UNIT_AMOUNTS[unit]).map(lambda n: Duration(n, unit))
    )
    return st.one_of(st.sampled_from(DURATION_POOL), arbitrary)


@cache
@st.composite
def datetimes(draw: st.DrawFn) -> datetime:
    """Aware datetimes within ~100 days before ``NOW`` and a few after, in assorted zones.

    Besides uniform spread, they hit exact window edges (``D.before(NOW)`` ± 1 s for
    pooled ``D``), ``NOW`` itself, Paris local midnights and the DST change.
    """
    kind = draw(st.sampled_from(["spread", "edge", "now", "midnight", "dst"]))
    if kind == "spread":
        seconds = draw(st.integers(-100 * 86400, 3 * 86400))
        instant = _NOW_UTC + timedelta(seconds=seconds)
    elif kind == "edge":
        edge = draw(st.sampled_from(DURATION_POOL)).before(NOW, TEST_TZ)
        instant = edge.astimezone(timezone.utc) + timedelta(
            seconds=draw(st.sampled_from([-1, 0, 1]))
        )
    elif kind == "now":
        instant = _NOW_UTC + timedelta(seconds=draw(st.sampled_from([-1, 0, 1])))
    elif kind == "midnight":
        day = _NOW_DATE - timedelta(days=draw(st.integers(-3, 100)))
        midnight = datetime.combine(day, time(0), tzinfo=TEST_TZ).astimezone(timezone.utc)
        instant = midnight + timedelta(seconds=draw(st.sampled_from([-1, 0, 1])))
    else:  # around 2024-03-31 01:00 UTC, when Paris went from 02:00 to 03:00
        change = datetime(2024, 3, 31, 1, 0, tzinfo=timezone.utc)
        instant = change + timedelta(minutes=draw(st.integers(-90, 90)))
    return instant.astimezone(draw(st.sampled_from(DATETIME_ZONES)))


@cache
@st.composite
def dates(draw: st.DrawFn) -> date:
    """Dates from ~100 days before ``NOW`` to a few after, plus calendar window edges."""
    if draw(st.booleans()):
        return _NOW_DATE - timedelta(days=draw(st.integers(-5, 100)))
    edge = draw(st.sampled_from(DURATION_POOL)).before(NOW, TEST_TZ).date()
    return edge + timedelta(days=draw(st.sampled_from([-1, 0, 1])))


@cache
def _ints() -> st.SearchStrategy[int]:
    return st.integers(-2, 12)


@cache
def _floats() -> st.SearchStrategy[float]:
    # Multiples of 0.25: sums are exact in any order, and n / 4 with n % 4 == 0 is integral.
    return st.integers(-8, 60).map(lambda n: n / 4)


@cache
def _literals(type_name: str) -> st.SearchStrategy[Any]:
    """Rule literals for a field of ``type_name``."""
    return {
        "string": st.sampled_from(STRING_LITERALS),
        "int": _ints(),
        "float": _floats(),
        "bool": st.booleans(),
        "date": dates(),
        "datetime": datetimes(),
    }[type_name]


@cache
def _values(type_name: str) -> st.SearchStrategy[Any]:
    """Attribute/property values of ``type_name`` (lists as tuples)."""
    if type_name.startswith("list["):
        return st.lists(_values(type_name[5:-1]), max_size=4).map(tuple)
    if type_name == "string":
        return st.sampled_from(STRING_VALUES)
    return _literals(type_name)


def _sort_key(value: Any) -> Any:
    return value.astimezone(timezone.utc) if isinstance(value, datetime) else value


# --- field predicates (attributes, or event properties inside ``where``) -----------------------


@st.composite
def _between(draw: st.DrawFn, field: str, type_name: str) -> Between:
    bound = _literals(type_name)
    if type_name == "datetime" and draw(st.booleans()):
        bound = dates()  # datetime between date bounds compares local dates
    low, high = sorted([draw(bound), draw(bound)], key=_sort_key)
    return Between(field, low, high, negated=draw(st.booleans()))


def _predicates_for(field: str, type_name: str) -> dict[type, st.SearchStrategy[Expr]]:
    """Every predicate kind that applies to one field, by node type."""
    out: dict[type, st.SearchStrategy[Expr]] = {
        IsKnown: st.builds(lambda neg: IsKnown(field, negated=neg), st.booleans())
    }
    if type_name.startswith("list["):
        out[HasList] = st.builds(
            lambda mode, values: HasList(field, mode, tuple(values)),
            st.sampled_from(HAS_MODES),
            st.lists(_literals(type_name[5:-1]), min_size=1, max_size=3),
        )
        return out
    literal = _literals(type_name)
    ops = ("=", "!=") if type_name == "bool" else COMPARE_OPS
    compare_literal = st.one_of(literal, dates()) if type_name == "datetime" else literal
    out[Compare] = st.builds(
        lambda op, value: Compare(field, op, value), st.sampled_from(ops), compare_literal
    )
    out[InList] = st.builds(
        lambda values, neg: InList(field, tuple(values), negated=neg),
        st.lists(literal, min_size=1, max_size=3),
        st.booleans(),
    )
    if type_name != "bool":
        out[Between] = _between(field, type_name)
    if type_name == "string":
        out[StringOp] = st.builds(
            lambda op, value, neg, ci: StringOp(field, op, value, negated=neg, case_insensitive=ci),
            st.sampled_from(STRING_OPS),
            st.sampled_from(STRING_LITERALS),
            st.booleans(),
            st.booleans(),
        )
        out[Matches] = st.builds(
            lambda pattern, flags, neg: Matches(field, pattern, flags, negated=neg),
            st.sampled_from(REGEX_PATTERNS),
            st.sampled_from(REGEX_FLAG_SETS),
            st.booleans(),
        )
    if type_name in ("date", "datetime"):
        out[InLast] = st.builds(
            lambda d, neg: InLast(field, d, negated=neg), durations(), st.booleans()
        )
        out[MoreThanAgo] = st.builds(lambda d: MoreThanAgo(field, d), durations())
        out[TimeCompare] = st.builds(
            lambda op, value: TimeCompare(field, op, value),
            st.sampled_from(("before", "after")),
            # The checker rejects a datetime literal against a date field (the model would
            # compare with the literal's local date); a datetime field takes both.
            st.one_of(dates(), datetimes()) if type_name == "datetime" else dates(),
        )
    return out


def field_predicates(fields: Mapping[str, str]) -> st.SearchStrategy[Expr]:
    """One predicate over one of ``fields`` (name -> type name).

    The node type is chosen first (uniformly among those that apply to some field),
    then a field it applies to, so rare kinds such as ``TimeCompare`` are not drowned
    by the kinds that apply to every field.
    """
    return _field_predicates(tuple(fields.items()))


@cache
def _field_predicates(fields: tuple[tuple[str, str], ...]) -> st.SearchStrategy[Expr]:
    by_kind: dict[type, list[st.SearchStrategy[Expr]]] = {}
    for name, type_name in fields:
        for kind, strategy in _predicates_for(name, type_name).items():
            by_kind.setdefault(kind, []).append(strategy)
    choices = {kind: st.one_of(strategies) for kind, strategies in by_kind.items()}
    kinds = st.sampled_from(sorted(choices, key=lambda k: k.__name__))

    @st.composite
    def pick(draw: st.DrawFn) -> Expr:
        return draw(choices[draw(kinds)])

    return pick()


def _boolean_trees(leaves: st.SearchStrategy[Expr], depth: int) -> st.SearchStrategy[Expr]:
    """``leaves`` combined with And/Or (2 to 3 items) and Not, at most ``depth`` levels deep."""
    if depth <= 0:
        return leaves
    sub = _boolean_trees(leaves, depth - 1)
    return st.one_of(
        leaves,
        st.lists(sub, min_size=2, max_size=3).map(lambda xs: And(tuple(xs))),
        st.lists(sub, min_size=2, max_size=3).map(lambda xs: Or(tuple(xs))),
        sub.map(Not),
    )


@cache
def where_exprs(event: str, max_depth: int = 2) -> st.SearchStrategy[Expr | None]:
    """An optional ``where`` clause for ``event``: only predicates over its own properties."""
    props = TEST_EVENTS[event]
    if not props:
        return st.none()
    return st.one_of(st.none(), _boolean_trees(field_predicates(props), max_depth))


# --- behavioural predicates --------------------------------------------------------------------


@st.composite
def _between_window(draw: st.DrawFn) -> BetweenWindow:
    bound = draw(st.sampled_from([dates(), datetimes()]))
    start, end = sorted([draw(bound), draw(bound)], key=_sort_key)
    return BetweenWindow(start, end)


@cache
def windows() -> st.SearchStrategy[Window]:
    """``in last D`` or ``between T and T`` (both bounds dates or both datetimes)."""
    return st.one_of(durations().map(LastWindow), _between_window())


_EVENT_NAMES = st.sampled_from(tuple(TEST_EVENTS))


@st.composite
def _did(draw: st.DrawFn) -> Did:
    event = draw(_EVENT_NAMES)
    where = draw(where_exprs(event))
    count_op, count = None, None
    if draw(st.booleans()):
        count_op, count = draw(st.sampled_from(COMPARE_OPS)), draw(st.integers(0, 4))
    window = draw(st.none() | windows())
    return Did(event, where, count_op, count, window)


@st.composite
def _sequence(draw: st.DrawFn) -> Sequence:
    steps = []
    for _ in range(draw(st.integers(2, 3))):
        event = draw(_EVENT_NAMES)
        steps.append(SeqStep(event, draw(where_exprs(event))))
    return Sequence(tuple(steps), draw(durations()), draw(st.none() | windows()))


@st.composite
def _first_time(draw: st.DrawFn) -> FirstTime:
    event = draw(_EVENT_NAMES)
    return FirstTime(event, draw(where_exprs(event)), draw(windows()))


_NUMERIC_PROPS = tuple(
    (event, prop, t)
    for event, props in TEST_EVENTS.items()
    for prop, t in props.items()
    if t in ("int", "float")
)


@st.composite
def _aggregate(draw: st.DrawFn) -> Aggregate:
    func = draw(st.sampled_from(AGGREGATE_FUNCS))
    if func == "count":
        event, prop, value = draw(_EVENT_NAMES), None, draw(st.integers(0, 4))
    else:
        event, prop, type_name = draw(st.sampled_from(_NUMERIC_PROPS))
        value = draw(_literals(type_name))
    where = draw(where_exprs(event))
    window = draw(st.none() | windows())
    return Aggregate(func, event, prop, where, window, draw(st.sampled_from(COMPARE_OPS)), value)


@st.composite
def _bucket(draw: st.DrawFn) -> Bucket:
    low, high = sorted([draw(st.integers(0, 9999)), draw(st.integers(0, 9999))])
    return Bucket(draw(st.sampled_from(BUCKET_SALTS)), low, high)


_SEGMENT = st.builds(
    lambda name, neg: InSegment(name, negated=neg), st.sampled_from(SEGMENT_NAMES), st.booleans()
)


@st.composite
def _leaves(draw: st.DrawFn) -> Expr:
    # Pick a group first so that behavioural predicates are not drowned by the ~40 attribute kinds.
    group = draw(_LEAF_GROUPS)
    if group == "attribute":
        return draw(field_predicates(TEST_ATTRIBUTES))
    if group == "event":
        return draw(_BEHAVIOURS)
    return draw(_OTHERS)


_LEAF_GROUPS = st.sampled_from(["attribute", "event", "attribute", "event", "other"])
_BEHAVIOURS = st.one_of(_did(), _sequence(), _first_time(), _aggregate())
_OTHERS = st.one_of(_SEGMENT, _bucket())


@cache
def exprs(max_depth: int = 3) -> st.SearchStrategy[Expr]:
    """Well-typed rule ASTs over the test schema, covering every :data:`Expr` node type."""
    return _boolean_trees(_leaves(), max_depth)


# --- populations -------------------------------------------------------------------------------


@st.composite
def _maybe_missing(draw: st.DrawFn, fields: Mapping[str, str]) -> dict[str, Any]:
    """A dict where each field is independently absent, None, or a typed value."""
    out: dict[str, Any] = {}
    for name, type_name in fields.items():
        state = draw(st.sampled_from(["value", "value", "absent", "none"]))
        if state == "value":
            out[name] = draw(_values(type_name))
        elif state == "none":
            out[name] = None
    return out


@cache
def profiles() -> st.SearchStrategy[tuple[str, dict[str, Any]]]:
    """``(key, attributes)`` pairs over :data:`TEST_ATTRIBUTES`."""
    return st.tuples(st.sampled_from(KEYS), _maybe_missing(TEST_ATTRIBUTES))


@st.composite
def events(draw: st.DrawFn, key: str) -> Event:
    """One event of ``key`` (any test event name; properties sometimes missing or None)."""
    name = draw(_EVENT_NAMES)
    return Event(key, name, draw(datetimes()), draw(_maybe_missing(TEST_EVENTS[name])))


@cache
def event_lists(key: str) -> st.SearchStrategy[list[Event]]:
    """0 to 8 events of ``key``, over the ~100 days before ``NOW`` and a few after."""
    return st.lists(events(key), max_size=8)


def segment_memberships() -> st.SearchStrategy[frozenset[str]]:
    """The set of :data:`SEGMENT_NAMES` a profile belongs to (use ``.__contains__`` as ``segments``)."""
    return st.frozensets(st.sampled_from(SEGMENT_NAMES))
