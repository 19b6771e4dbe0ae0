"""Funnel options: checking and resolving what a :class:`~segkit.Funnel` was given.

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Sequence
from datetime import timedelta, timezone, tzinfo
from typing import TYPE_CHECKING

from segkit._suggest import suggest
from segkit.analysis._funnel_columns import from_us, to_us
from segkit.errors import RuleTypeError, UnknownAttributeError, UnknownEventError
from segkit.timeutil import Duration

if TYPE_CHECKING:
    from segkit.analysis.funnel import Exclusion, Step
    from segkit.schema import Schema

__all__ = [
    "check_against_schema",
    "choice",
    "coerce_window",
    "deadline",
    "exact_window",
    "exclusion_range",
    "fixed_length_us",
    "numpy_enabled",
    "use_backend",
]

#: Which engine runs funnels: ``"auto"`` (numpy when it can be imported, for inputs of
#: at least :data:`NUMPY_MIN_SIZE` events or outcome rows), ``"numpy"`` (whenever it can
#: be imported, whatever the size) or ``"python"`` (never numpy). Tests switch it with
#: :func:`use_backend` (or the ``SEGKIT_FUNNEL_BACKEND`` environment variable, read at
#: import); both engines give identical results.
_BACKEND = [os.environ.get("SEGKIT_FUNNEL_BACKEND", "auto")]
#: Below this many events (or outcome rows), numpy's fixed costs outweigh its speed.
NUMPY_MIN_SIZE = 2_000
_HAS_NUMPY: list[bool] = []


def numpy_enabled(size: int) -> bool:
    """Whether the numpy engine should handle an input of ``size`` events or rows."""
    mode = _BACKEND[0]
    if mode == "python" or (mode == "auto" and size < NUMPY_MIN_SIZE):
        return False
    if not _HAS_NUMPY:
        try:
            import numpy  # noqa: F401
        except ImportError:
            _HAS_NUMPY.append(False)
        else:
            _HAS_NUMPY.append(True)
    return _HAS_NUMPY[0]


@contextlib.contextmanager
def use_backend(mode: str) -> Iterator[None]:
    """Run funnels with the ``"auto"``, ``"numpy"`` or ``"python"`` engine inside the block.

    >>> with use_backend("python"):
    ...     numpy_enabled(10**9)
    False
    """
    previous = _BACKEND[0]
    _BACKEND[0] = choice("backend", mode, ("auto", "numpy", "python"))
    try:
        yield
    finally:
        _BACKEND[0] = previous


def choice(option: str, value: object, allowed: Sequence[str]) -> str:
    """``value`` if it is one of ``allowed``; else a ValueError listing them, with a hint.

    >>> choice("order", "strcit", ("ordered", "strict"))
    Traceback (most recent call last):
    ...
    ValueError: order must be one of 'ordered', 'strict', got 'strcit' (did you mean 'strict'?)
    """
    if isinstance(value, str) and value in allowed:
        return value
    hint = suggest(value, allowed) if isinstance(value, str) else None
    extra = f" (did you mean {hint!r}?)" if hint else ""
    raise ValueError(
        f"{option} must be one of {', '.join(repr(a) for a in allowed)}, got {value!r}{extra}"
    )


def coerce_window(window: object) -> timedelta | Duration | None:
    """A positive timedelta or Duration (text is parsed), or ``None`` for no window."""
    if window is None:
        return None
    if isinstance(window, timedelta):
        if window <= timedelta(0):
            raise ValueError(f"window must be positive, got {window!r}")
        return window
    if isinstance(window, str):
        window = Duration.parse(window)
    if isinstance(window, Duration):
        if window.amount <= 0:
            raise ValueError(f"window must be positive, got {str(window)!r}")
        return window
    raise TypeError(f"window must be a timedelta or a duration such as '30d', got {window!r}")


def exact_window(window: timedelta | Duration) -> timedelta:
    """A peer's fixed-length window (PostHog counts a month as 31 days)."""
    if isinstance(window, timedelta):
        return window
    if window.unit == "mo":
        return timedelta(days=31 * window.amount)
    if window.unit == "y":
        raise ValueError(f"the peer presets have no year-long windows: got {str(window)!r}")
    return window.to_timedelta()


def exclusion_range(exclusion: Exclusion, n: int) -> tuple[int, int]:
    """The exclusion's ``(from_step, to_step)``, checked against ``n`` steps."""
    if exclusion.between is None:
        if n < 2:
            raise ValueError("an exclusion needs a funnel of at least two steps")
        return (0, n - 1)
    i, j = exclusion.between
    if not (0 <= i < n and 0 <= j < n):
        raise ValueError(
            f"exclusion {exclusion.event!r} between steps {i} and {j} is out of range:"
            f" this funnel has steps 0 to {n - 1}"
        )
    if i >= j:
        raise ValueError(
            f"exclusion {exclusion.event!r} between steps {i} and {j}: the first step must"
            " come before the second"
        )
    return (i, j)


def check_against_schema(
    steps: Sequence[Step], exclusions: Sequence[Exclusion], schema: Schema
) -> None:
    """Step and exclusion events must be declared, attribute stages dated ones."""
    names = [s.event for s in steps if s.event is not None] + [x.event for x in exclusions]
    for name in names:
        if not schema.has_event(name):
            raise UnknownEventError(
                f"unknown event {name!r}", suggestion=suggest(name, schema.events)
            )
    for step in steps:
        attribute = step.profile_attribute
        if attribute is None:
            continue
        ftype = schema.attribute_type(attribute)
        if ftype is None:
            raise UnknownAttributeError(
                f"unknown attribute {attribute!r}", suggestion=suggest(attribute, schema.attributes)
            )
        if ftype.value not in ("date", "datetime"):
            raise RuleTypeError(
                f"attribute {attribute!r} is a {ftype} and cannot be a funnel stage:"
                " a stage attribute holds a date or a datetime"
            )


def fixed_length_us(window: timedelta | Duration | None, tz: tzinfo | None) -> int | None:
    """The window's length in µs when it is the same from every start (``None`` otherwise).

    Calendar windows (months, years; days and weeks in a zone with daylight saving
    time) have no fixed length; neither has a funnel without a window.

    >>> fixed_length_us(timedelta(seconds=2), None), fixed_length_us(Duration.parse("1mo"), None)
    (2000000, None)
    """
    if window is None:
        return None
    if isinstance(window, timedelta):
        return window // timedelta(microseconds=1)
    zone = tz if tz is not None else timezone.utc
    if window.unit in ("s", "min", "h") or (window.unit in ("d", "w") and zone is timezone.utc):
        return window.to_timedelta() // timedelta(microseconds=1)
    return None


def deadline(window: timedelta | Duration | None, tz: tzinfo | None) -> Callable[[int], int] | None:
    """``start -> last moment of the window`` in µs (``None``: no window)."""
    if window is None:
        return None
    if isinstance(window, timedelta):
        exact = window // timedelta(microseconds=1)
        return lambda start: start + exact
    zone = tz if tz is not None else timezone.utc
    fixed = window.unit in ("s", "min", "h") or (window.unit in ("d", "w") and zone is timezone.utc)
    if fixed:
        exact = window.to_timedelta() // timedelta(microseconds=1)
        return lambda start: start + exact
    duration = window

    def calendar(start: int) -> int:
        return to_us(duration.after(from_us(start), zone), zone, "window end")

    return calendar
