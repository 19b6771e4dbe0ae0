"""Durations, time zones and the arithmetic behind relative time windows.

segkit never reads the system clock inside rule evaluation: every call receives
``now``. Durations are written ``<int><unit>`` with the units ``s`` (seconds),
``min`` (minutes), ``h`` (hours), ``d`` (days), ``w`` (weeks), ``mo`` (months)
and ``y`` (years). ``m`` is rejected because it is ambiguous.

Seconds, minutes and hours are exact elapsed time. Days, weeks, months and years
are *calendar* units: they are subtracted on the wall clock of the schema's time
zone, so "1d" before 12:00 is 12:00 the previous day even across a daylight-saving
change, and "1mo" before 31 March is 29 February in a leap year (calendar
arithmetic from :mod:`dateutil.relativedelta`).

>>> from datetime import datetime, timezone
>>> d = Duration.parse("3mo")
>>> d
Duration(amount=3, unit='mo')
>>> str(d)
'3mo'
>>> d.before(datetime(2024, 5, 31, tzinfo=timezone.utc), timezone.utc)
datetime.datetime(2024, 2, 29, 0, 0, tzinfo=datetime.timezone.utc)

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta, timezone, tzinfo
from typing import Final

import attrs
from dateutil.relativedelta import relativedelta

__all__ = [
    "DURATION_UNITS",
    "Duration",
    "ensure_aware",
    "local_date",
    "resolve_timezone",
]

#: The accepted duration units, in canonical order, with their long names.
DURATION_UNITS: Final[dict[str, str]] = {
    "s": "seconds",
    "min": "minutes",
    "h": "hours",
    "d": "days",
    "w": "weeks",
    "mo": "months",
    "y": "years",
}

_DURATION_RE: Final = re.compile(r"^([0-9]+)([a-z]+)$")
_EXACT_UNITS: Final = {"s": 1, "min": 60, "h": 3600}
#: Largest duration amount accepted (keeps date arithmetic in range).
MAX_DURATION_AMOUNT: Final = 100_000


def duration_unit_error(unit: str) -> str:
    """The message for a bad duration unit (shared by the parser and :meth:`Duration.parse`)."""
    if unit == "m":
        return "ambiguous duration unit 'm': write 'min' for minutes or 'mo' for months"
    return f"unknown duration unit {unit!r} (expected s, min, h, d, w, mo or y)"


@attrs.frozen
class Duration:
    """A length of time such as ``30d`` or ``3mo``.

    >>> Duration(30, "d")
    Duration(amount=30, unit='d')
    >>> Duration.parse("15min").to_timedelta()
    datetime.timedelta(seconds=900)

    .. versionadded:: 0.1.0
    """

    amount: int = attrs.field()
    unit: str = attrs.field()

    @amount.validator
    def _check_amount(self, _: attrs.Attribute[int], value: int) -> None:
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"duration amount must be an int, got {value!r}")
        if not 0 <= value <= MAX_DURATION_AMOUNT:
            raise ValueError(
                f"duration amount must be between 0 and {MAX_DURATION_AMOUNT}, got {value}"
            )

    @unit.validator
    def _check_unit(self, _: attrs.Attribute[str], value: str) -> None:
        if value not in DURATION_UNITS:
            raise ValueError(duration_unit_error(value))

    @classmethod
    def parse(cls, text: str) -> Duration:
        """Parse ``"30d"``-style text.

        >>> Duration.parse("2w")
        Duration(amount=2, unit='w')
        >>> Duration.parse("5m")
        Traceback (most recent call last):
        ...
        ValueError: ambiguous duration unit 'm': write 'min' for minutes or 'mo' for months
        """
        m = _DURATION_RE.match(text.strip())
        if m is None:
            raise ValueError(f"invalid duration {text!r} (expected e.g. 30d, 12h, 3mo)")
        return cls(int(m.group(1)), m.group(2))

    @classmethod
    def coerce(cls, value: Duration | str | timedelta) -> Duration:
        """Accept a :class:`Duration`, its text, or a whole-second :class:`~datetime.timedelta`.

        >>> Duration.coerce(timedelta(days=7))
        Duration(amount=7, unit='d')
        """
        if isinstance(value, Duration):
            return value
        if isinstance(value, str):
            return cls.parse(value)
        if isinstance(value, timedelta):
            seconds = value.total_seconds()
            if seconds != int(seconds) or seconds < 0:
                raise ValueError(
                    f"a duration must be a whole, non-negative number of seconds: {value!r}"
                )
            secs = int(seconds)
            for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
                if secs % size == 0:
                    return cls(secs // size, unit)
            return cls(secs, "s")
        raise TypeError(f"expected a duration such as '30d', got {value!r}")

    def __str__(self) -> str:
        return f"{self.amount}{self.unit}"

    @property
    def is_calendar(self) -> bool:
        """True for days, weeks, months and years (wall-clock arithmetic)."""
        return self.unit not in _EXACT_UNITS

    def to_timedelta(self) -> timedelta:
        """The exact length for s/min/h/d/w (a day taken as 24 h); months and years raise.

        >>> Duration(2, "h").to_timedelta()
        datetime.timedelta(seconds=7200)
        """
        if self.unit in _EXACT_UNITS:
            return timedelta(seconds=self.amount * _EXACT_UNITS[self.unit])
        if self.unit == "d":
            return timedelta(days=self.amount)
        if self.unit == "w":
            return timedelta(weeks=self.amount)
        raise ValueError(f"{self} has no fixed length (months and years vary)")

    def _relativedelta(self) -> relativedelta:
        if self.unit == "d":
            return relativedelta(days=self.amount)
        if self.unit == "w":
            return relativedelta(weeks=self.amount)
        if self.unit == "mo":
            return relativedelta(months=self.amount)
        return relativedelta(years=self.amount)

    def before(self, moment: datetime, tz: tzinfo) -> datetime:
        """``moment`` minus this duration (calendar units on the wall clock of ``tz``).

        The result is an aware datetime in UTC, so it compares with any other aware
        datetime by instant (two datetimes sharing one tzinfo object compare by wall
        clock in Python, which is wrong inside a daylight-saving fold). Take its
        calendar date with :func:`local_date`. A wall-clock time that falls in a
        daylight-saving gap or fold resolves with ``fold=0``.

        >>> from zoneinfo import ZoneInfo
        >>> paris = ZoneInfo("Europe/Paris")
        >>> now = datetime(2024, 3, 31, 12, 0, tzinfo=paris)   # clocks went forward at 02:00
        >>> start = Duration(1, "d").before(now, paris)
        >>> local_date(start, paris), start.isoformat(), (now - start).total_seconds() / 3600
        (datetime.date(2024, 3, 30), '2024-03-30T11:00:00+00:00', 23.0)
        """
        return self._shift(moment, tz, -1)

    def after(self, moment: datetime, tz: tzinfo) -> datetime:
        """``moment`` plus this duration (see :meth:`before`).

        >>> Duration(1, "mo").after(datetime(2024, 1, 31, tzinfo=timezone.utc), timezone.utc).date()
        datetime.date(2024, 2, 29)
        >>> from zoneinfo import ZoneInfo
        >>> paris = ZoneInfo("Europe/Paris")   # hours are exact, even across a clock change
        >>> Duration(24, "h").after(datetime(2024, 3, 30, 12, 0, tzinfo=paris), paris).isoformat()
        '2024-03-31T11:00:00+00:00'
        """
        return self._shift(moment, tz, 1)

    def _shift(self, moment: datetime, tz: tzinfo, sign: int) -> datetime:
        if moment.tzinfo is None:
            raise ValueError("expected an aware datetime")
        if self.unit in _EXACT_UNITS:
            # exact units: instant arithmetic (aware + timedelta is wall-clock arithmetic
            # in Python when the tzinfo observes daylight saving)
            return moment.astimezone(timezone.utc) + sign * self.to_timedelta()
        local = moment.astimezone(tz).replace(tzinfo=None)
        shifted = local + sign * self._relativedelta()
        return shifted.replace(tzinfo=tz).astimezone(timezone.utc)


def resolve_timezone(value: str | tzinfo | None) -> tzinfo | None:
    """Turn an IANA name (``"Europe/Paris"``), ``"UTC"`` or a tzinfo into a tzinfo.

    >>> resolve_timezone("UTC")
    datetime.timezone.utc
    >>> resolve_timezone("Europe/Paris")
    zoneinfo.ZoneInfo(key='Europe/Paris')
    >>> resolve_timezone("Mars/Olympus")
    Traceback (most recent call last):
    ...
    ValueError: unknown time zone 'Mars/Olympus' (expected an IANA name such as 'Europe/Paris')
    """
    if value is None or isinstance(value, tzinfo):
        return value
    if not isinstance(value, str):
        raise TypeError(f"a time zone must be a name or a tzinfo, got {value!r}")
    if value.upper() in ("UTC", "Z"):
        return timezone.utc
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        return ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        from dateutil import tz as dateutil_tz

        found = dateutil_tz.gettz(value) if "/" in value else None
        if found is None:
            raise ValueError(
                f"unknown time zone {value!r} (expected an IANA name such as 'Europe/Paris')"
            ) from None
        return found


def ensure_aware(moment: datetime, tz: tzinfo | None, what: str = "datetime") -> datetime:
    """Return ``moment`` as an aware datetime, localizing a naive one in ``tz``.

    Raises :class:`ValueError` for a naive datetime when ``tz`` is ``None``.

    >>> ensure_aware(datetime(2024, 1, 1), timezone.utc)
    datetime.datetime(2024, 1, 1, 0, 0, tzinfo=datetime.timezone.utc)
    >>> ensure_aware(datetime(2024, 1, 1), None, "now")
    Traceback (most recent call last):
    ...
    ValueError: naive now 2024-01-01T00:00:00: give it a time zone, or declare Schema(timezone=...)
    """
    if moment.tzinfo is not None and moment.tzinfo.utcoffset(moment) is not None:
        return moment
    if tz is None:
        raise ValueError(
            f"naive {what} {moment.isoformat()}: give it a time zone, or declare Schema(timezone=...)"
        )
    return moment.replace(tzinfo=tz)


def local_date(moment: datetime, tz: tzinfo) -> date:
    """The calendar date of an aware ``moment`` on the wall clock of ``tz``.

    >>> local_date(datetime(2024, 1, 1, 23, 30, tzinfo=timezone.utc), timezone(timedelta(hours=2)))
    datetime.date(2024, 1, 2)
    """
    return moment.astimezone(tz).date()
