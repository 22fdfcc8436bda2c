"""Solar Hijri (Jalali) date-times, as MAXA's ``FromDate`` carries them.

The calendar arithmetic is persiantools' (astronomically correct over its whole range);
this module is the one small adapter in front of it. Iran's civil time is Asia/Tehran,
taken from the standard library's zoneinfo.
"""

from __future__ import annotations

import datetime as _dt
import re
from typing import Final
from zoneinfo import ZoneInfo

import attrs
from persiantools.digits import ar_to_fa, fa_to_en
from persiantools.jdatetime import JalaliDate

from .errors import InvalidInputError

__all__ = ["TEHRAN", "JalaliDateTime", "to_jalali"]

TEHRAN: Final = ZoneInfo("Asia/Tehran")

_MIN_YEAR: Final = 1
_MAX_YEAR: Final = 9377

_PARSE_RE: Final = re.compile(
    r"""^\s*(?P<year>\d{1,4})[/\-.](?P<month>\d{1,2})[/\-.](?P<day>\d{1,2})
        (?:[\sT]+(?P<hour>\d{1,2}):(?P<minute>\d{1,2})(?::(?P<second>\d{1,2}))?)?\s*$""",
    re.VERBOSE,
)


def _days_in_month(year: int, month: int) -> int:
    return int(JalaliDate.days_in_month(month, year))


def _jalali_date(*args: object) -> JalaliDate:
    # persiantools' constructor is not annotated; this is the one place we call it.
    return JalaliDate(*args)  # type: ignore[no-untyped-call]


def _from_gregorian(value: _dt.date) -> JalaliDate:
    try:
        return _jalali_date(_dt.date(value.year, value.month, value.day))
    except ValueError:  # persiantools' own range error, which names no field of ours
        raise InvalidInputError(
            "date", f"{value.isoformat()} is outside Jalali years {_MIN_YEAR}..{_MAX_YEAR}"
        ) from None


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@attrs.frozen(order=True)
class JalaliDateTime:
    """A wall-clock date-time in the Jalali calendar, Tehran time.

    Validated on construction: a bad field raises :class:`InvalidInputError` (a
    ``ValueError``) that names it. Ordered and hashable.
    """

    year: int
    month: int
    day: int
    hour: int = 0
    minute: int = 0
    second: int = 0

    def __attrs_post_init__(self) -> None:
        for name in ("year", "month", "day", "hour", "minute", "second"):
            if not _is_int(getattr(self, name)):
                raise InvalidInputError(name, f"must be an int, got {getattr(self, name)!r}")
        if not _MIN_YEAR <= self.year <= _MAX_YEAR:
            raise InvalidInputError("year", f"must be in {_MIN_YEAR}..{_MAX_YEAR}, got {self.year}")
        if not 1 <= self.month <= 12:
            raise InvalidInputError("month", f"must be in 1..12, got {self.month}")
        days = _days_in_month(self.year, self.month)
        if not 1 <= self.day <= days:
            leap = " (Esfand has 30 days only in leap years)" if self.month == 12 else ""
            raise InvalidInputError(
                "day",
                f"must be in 1..{days} for {self.year}/{self.month:02d}, got {self.day}{leap}",
            )
        if not 0 <= self.hour <= 23:
            raise InvalidInputError("hour", f"must be in 0..23, got {self.hour}")
        if not 0 <= self.minute <= 59:
            raise InvalidInputError("minute", f"must be in 0..59, got {self.minute}")
        if not 0 <= self.second <= 59:
            raise InvalidInputError("second", f"must be in 0..59, got {self.second}")

    @classmethod
    def from_date(cls, value: _dt.date) -> JalaliDateTime:
        """Midnight of a Gregorian date (a datetime's time part is dropped)."""
        jd = _from_gregorian(value)
        return cls(jd.year, jd.month, jd.day)

    @classmethod
    def from_datetime(cls, value: _dt.datetime) -> JalaliDateTime:
        """Aware datetimes are converted to Tehran time; naive ones are taken as Tehran time."""
        if value.tzinfo is not None and value.utcoffset() is not None:
            try:
                value = value.astimezone(TEHRAN)
            except OverflowError:  # e.g. datetime.max in UTC is past datetime.max in Tehran
                raise InvalidInputError("datetime", f"{value!r} is out of range") from None
        jd = _from_gregorian(value.date())
        return cls(jd.year, jd.month, jd.day, value.hour, value.minute, value.second)

    @classmethod
    def now(cls) -> JalaliDateTime:
        return cls.from_datetime(_dt.datetime.now(TEHRAN))

    @classmethod
    def parse(cls, text: str) -> JalaliDateTime:
        """``"1390/10/10 10:10:10"``, ``"1390-10-10"``, ``"1390/10/10 10:10"``.

        Persian and Arabic digits are accepted too."""
        if not isinstance(text, str):
            raise InvalidInputError("date", f"must be a string, got {type(text).__name__}")
        match = _PARSE_RE.match(fa_to_en(ar_to_fa(text)))
        if match is None:
            shown = text if len(text) <= 40 else text[:40] + "..."  # a 1 MB argument stays out
            raise InvalidInputError(
                "date", f"cannot read {shown!r}; expected YYYY/MM/DD [HH:MM[:SS]] (Jalali)"
            )
        parts = {k: int(v) for k, v in match.groupdict().items() if v is not None}
        return cls(**parts)

    def to_date(self) -> _dt.date:
        """The Gregorian date."""
        gregorian: _dt.date = _jalali_date(self.year, self.month, self.day).to_gregorian()
        return gregorian

    def to_datetime(self) -> _dt.datetime:
        """An aware datetime in Asia/Tehran."""
        return _dt.datetime.combine(
            self.to_date(), _dt.time(self.hour, self.minute, self.second), tzinfo=TEHRAN
        )

    def __str__(self) -> str:
        return (
            f"{self.year:04d}/{self.month:02d}/{self.day:02d} "
            f"{self.hour:02d}:{self.minute:02d}:{self.second:02d}"
        )


def to_jalali(value: object, *, field: str = "since") -> JalaliDateTime:
    """Coerce a ``since=`` argument: JalaliDateTime, datetime, date, or a Jalali string."""
    if isinstance(value, JalaliDateTime):
        return value
    try:
        if isinstance(value, _dt.datetime):
            return JalaliDateTime.from_datetime(value)
        if isinstance(value, _dt.date):
            return JalaliDateTime.from_date(value)
        if isinstance(value, str):
            return JalaliDateTime.parse(value)
    except InvalidInputError as exc:
        raise InvalidInputError(field, exc.message) from None
    raise InvalidInputError(
        field,
        "must be a datetime.datetime, datetime.date, maxa.JalaliDateTime or a Jalali "
        f"'YYYY/MM/DD' string, got {type(value).__name__}",
    )
