"""Jalali (Solar Hijri) dates for the fake, written on persiantools, not on the client's code.

Creation dates are kept as naive ``datetime`` objects holding Tehran wall-clock
time, which is what a Jalali ``FromDate`` denotes.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from persiantools import jdatetime

# persiantools ships partial annotations; treat it as untyped.
JalaliDate: Any = jdatetime.JalaliDate
JalaliDateTime: Any = jdatetime.JalaliDateTime

__all__ = [
    "TEHRAN",
    "BadFromDate",
    "jalali",
    "now_tehran",
    "parse_created",
    "parse_from_date",
    "to_jalali_fields",
    "to_tehran_naive",
]


def _tehran_zone() -> dt.tzinfo:
    try:
        from zoneinfo import ZoneInfo

        return ZoneInfo("Asia/Tehran")
    except Exception:  # no tz database: Iran has kept +03:30 all year since 2022
        return dt.timezone(dt.timedelta(hours=3, minutes=30), "IRST")


TEHRAN = _tehran_zone()

_FROM_DATE_FIELDS = (
    ("yearField", 1, 9377),
    ("monthField", 1, 12),
    ("dayField", 1, 31),
    ("hourField", 0, 23),
    ("minuteField", 0, 59),
    ("secondField", 0, 59),
)


class BadFromDate(ValueError):
    """A ``FromDate`` that is missing, mistyped, or not a real Jalali date-time."""


def now_tehran() -> dt.datetime:
    """The current Tehran wall-clock time, naive."""
    return dt.datetime.now(TEHRAN).replace(tzinfo=None)


def jalali(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> dt.datetime:
    """The Tehran wall-clock ``datetime`` of a Jalali date-time."""
    gregorian: dt.datetime = JalaliDateTime(year, month, day, hour, minute, second).to_gregorian()
    return gregorian


def to_jalali_fields(moment: dt.datetime) -> dict[str, int]:
    """A naive Tehran ``datetime`` as a wire ``FromDate`` (without ``iSOStringField``)."""
    j = JalaliDateTime.to_jalali(moment)
    return {
        "yearField": j.year,
        "monthField": j.month,
        "dayField": j.day,
        "hourField": j.hour,
        "minuteField": j.minute,
        "secondField": j.second,
    }


def parse_from_date(raw: object) -> dt.datetime:
    """Check a wire ``FromDate`` strictly and return its Tehran wall-clock time.

    All six numeric fields are required and must be JSON integers within range
    (day within the month's length, Esfand 30 only in a leap year);
    ``iSOStringField`` is optional and ignored, but must be a string if present.
    """
    if not isinstance(raw, dict):
        raise BadFromDate("FromDate must be an object")
    iso = raw.get("iSOStringField")
    if iso is not None and not isinstance(iso, str):
        raise BadFromDate("iSOStringField must be a string")
    values: list[int] = []
    for name, low, high in _FROM_DATE_FIELDS:
        value = raw.get(name)
        if isinstance(value, bool) or not isinstance(value, int):
            raise BadFromDate(f"{name} must be an integer")
        if not low <= value <= high:
            raise BadFromDate(f"{name} {value} out of range {low}..{high}")
        values.append(value)
    year, month, day = values[0], values[1], values[2]
    if day > JalaliDate.days_in_month(month, year):
        raise BadFromDate(f"{year}/{month} has no day {day}")
    return jalali(*values)


_JALALI_TEXT = re.compile(
    r"^\s*(\d{1,4})[/-](\d{1,2})[/-](\d{1,2})(?:[ T](\d{1,2}):(\d{1,2})(?::(\d{1,2}))?)?\s*$"
)


def parse_created(text: str) -> dt.datetime:
    """Read a creation date from a data file.

    Years below 1700 are Jalali (``1402/01/15``, ``1402-01-15 10:30[:00]``);
    anything else is ISO 8601 Gregorian (``2023-04-04``, ``2023-04-04T10:30:00+03:30``);
    an offset is converted to Tehran time.
    """
    match = _JALALI_TEXT.match(text)
    if match and int(match.group(1)) < 1700:
        parts = [int(group) if group else 0 for group in match.groups()]
        return jalali(*parts)
    return to_tehran_naive(dt.datetime.fromisoformat(text.strip()))


def to_tehran_naive(value: object) -> dt.datetime:
    """A creation moment as naive Tehran wall-clock time.

    Accepts an aware ``datetime`` (converted), a naive one (taken as Tehran time),
    a ``date`` (its midnight), a persiantools ``JalaliDate``/``JalaliDateTime``, or
    text as :func:`parse_created` reads it.
    """
    if isinstance(value, JalaliDateTime | JalaliDate):
        value = value.to_gregorian()
    if isinstance(value, str):
        return parse_created(value)
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            return value.astimezone(TEHRAN).replace(tzinfo=None)
        return value
    if isinstance(value, dt.date):
        return dt.datetime(value.year, value.month, value.day)
    raise TypeError(f"not a date or date-time: {value!r}")
