"""JalaliDateTime against an independent oracle: convertdate.persian, over every day.

convertdate computes the Solar Hijri calendar astronomically (the year starts on the day
of the March equinox, reckoned at the 52.5°E meridian, with the noon rule), from pymeeus'
ephemeris; persiantools (behind JalaliDateTime) uses the 33-year rule plus a table of
corrections. Two different methods agreeing day by day is the evidence.

Where the exact-equality range stops, and why (checked while writing this test):

* Gregorian 1900-01-01 .. 2100-12-31 (Jalali 1278/10/11 .. 1479/10/10): the two agree on
  every one of the 73,414 days. This is the range tested below. It covers every date a
  MAXA client will send (the calendar became law in 1304 = 1925) with decades to spare.
* 1864..1897 (Jalali 1243, 1255, 1259, 1267, 1271, 1276): convertdate puts Nowruz one day
  later (21 March) than persiantools (20 March). convertdate is wrong there: pymeeus'
  ``Sun.equation_of_time`` wraps by +360 minutes in many years before 1905 (it returns
  about +352.5 min instead of -7.5 min), which pushes these morning equinoxes (Tehran
  standard time 06:52..11:46) past noon. ``test_before_1900_we_follow_the_equinox``
  checks our dates there against the equinox instant itself.
* From Jalali 2379 (Gregorian 3000) on, pymeeus' equinox series is not defined (it
  raises for years after 3000), and no astronomical prediction is authoritative that far
  ahead (ΔT is extrapolated): nothing to compare with.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Iterator

import pytest
from convertdate import persian

from maxa_async.errors import InvalidInputError
from maxa_async.jalali import JalaliDateTime

START = dt.date(1900, 1, 1)
END = dt.date(2100, 12, 31)


@pytest.fixture(scope="module")
def oracle() -> Iterator[object]:
    # convertdate recomputes the same few equinoxes for every day it converts (about
    # 1 ms each): remember them, so 73,000 days take about a second. The conversion
    # logic itself (from_gregorian, to_jd, from_jd) is convertdate's, unchanged.
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(persian, "equinox_jd", functools.cache(persian.equinox_jd))
        yield persian


def test_every_day_from_1900_to_2100(oracle: object) -> None:
    mismatches = []
    days = 0
    day = START
    one = dt.timedelta(days=1)
    while day <= END:
        expected = persian.from_gregorian(day.year, day.month, day.day)
        ours = JalaliDateTime.from_date(day)
        if (ours.year, ours.month, ours.day) != expected:
            mismatches.append((day, expected, ours))
        elif JalaliDateTime(*expected).to_date() != day:
            mismatches.append((day, expected, "to_date"))
        day += one
        days += 1
    assert days == 73_414
    assert mismatches == []


def test_leap_years_agree(oracle: object) -> None:
    for year in range(1279, 1480):
        assert persian.leap(year) == _has_esfand_30(year), year


def _has_esfand_30(year: int) -> bool:
    try:
        JalaliDateTime(year, 12, 30)
    except InvalidInputError:
        return False
    return True


def test_the_1403_1404_boundary(oracle: object) -> None:
    assert persian.leap(1403) and not persian.leap(1402) and not persian.leap(1404)
    assert _has_esfand_30(1403) and not _has_esfand_30(1402) and not _has_esfand_30(1404)
    assert JalaliDateTime(1403, 12, 30).to_date() == dt.date(2025, 3, 20)
    assert persian.to_gregorian(1403, 12, 30) == (2025, 3, 20)
    assert JalaliDateTime(1404, 1, 1).to_date() == dt.date(2025, 3, 21)
    assert persian.to_gregorian(1404, 1, 1) == (2025, 3, 21)
    assert JalaliDateTime.from_date(dt.date(2025, 3, 20)) == JalaliDateTime(1403, 12, 30)
    assert JalaliDateTime.from_date(dt.date(2025, 3, 21)) == JalaliDateTime(1404, 1, 1)
    assert JalaliDateTime(1402, 12, 29).to_date() == dt.date(2024, 3, 19)
    assert JalaliDateTime(1403, 1, 1).to_date() == dt.date(2024, 3, 20)
    with pytest.raises(InvalidInputError) as caught:
        JalaliDateTime(1402, 12, 30)
    assert caught.value.field == "day"


@pytest.mark.parametrize(
    ("jalali", "gregorian"),
    [
        ((1304, 1, 1), (1925, 3, 21)),  # the year the calendar became law
        ((1357, 11, 22), (1979, 2, 11)),
        ((1399, 12, 30), (2021, 3, 20)),
        ((1400, 1, 1), (2021, 3, 21)),
        ((1402, 1, 1), (2023, 3, 21)),
        ((1403, 1, 1), (2024, 3, 20)),
    ],
)
def test_well_known_dates(jalali: tuple[int, int, int], gregorian: tuple[int, int, int]) -> None:
    assert JalaliDateTime(*jalali).to_date() == dt.date(*gregorian)


@pytest.mark.parametrize("gregorian_year", [1864, 1876, 1880, 1888, 1892, 1897])
def test_before_1900_we_follow_the_equinox(gregorian_year: int) -> None:
    """Where convertdate disagrees, the equinox instant decides.

    Each of these equinoxes fell before noon in Tehran standard time (UT+03:30). True
    solar time is earlier still (the equation of time is about -7.5 min in March, and
    Tehran lies west of 52.5°E), so under every variant of the rule the year began on
    the day of the equinox, as persiantools says.
    """
    from pymeeus.Epoch import Epoch
    from pymeeus.Sun import Sun

    equinox_tt = Sun.get_equinox_solstice(gregorian_year, target="spring")
    equinox_ut = equinox_tt - Epoch.tt2ut(gregorian_year, 3) / 86400.0
    year, month, day, hours, minutes, seconds = equinox_ut.get_full_date()
    moment = dt.datetime(year, month, int(day)) + dt.timedelta(
        hours=hours + 3.5, minutes=minutes, seconds=seconds
    )
    assert moment.hour < 12, moment  # before noon in Tehran: Nowruz is this day
    assert JalaliDateTime(gregorian_year - 621, 1, 1).to_date() == moment.date()
