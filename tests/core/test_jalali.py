"""JalaliDateTime: validation, parsing, round trips, ordering, and Tehran time.

Tehran kept daylight-saving time until 2022 (and changed its offset several times in
1977-1980). A JalaliDateTime is a wall-clock reading without an offset (MAXA's FromDate
has none), so two kinds of wall-clock reading cannot carry an instant: the hour skipped
when the clocks went forward (it never existed) and the hour repeated when they went
back (it existed twice). The tests below pin what happens there and that every other
round trip is exact.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from maxa_async.errors import InvalidInputError
from maxa_async.jalali import TEHRAN, JalaliDateTime

UTC = dt.UTC
FIELDS = ("year", "month", "day", "hour", "minute", "second")
FIRST_DAY = dt.date(622, 3, 22)  # 1 Farvardin 1
LAST_DAY = dt.date(9999, 3, 19)  # 29 Esfand 9377, the end of the supported range... almost
PROPERTY = settings(max_examples=200, deadline=None)


def _month_length(year: int, month: int) -> int:
    if month <= 6:
        return 31
    if month <= 11:
        return 30
    try:
        JalaliDateTime(year, 12, 30)
    except InvalidInputError:
        return 29
    return 30


@st.composite
def jalali(draw: st.DrawFn, years: st.SearchStrategy[int] | None = None) -> JalaliDateTime:
    year = draw(years if years is not None else st.integers(1, 9377))
    month = draw(st.integers(1, 12))
    day = draw(st.integers(1, _month_length(year, month)))
    hour, minute, second = (
        draw(st.integers(0, 23)),
        draw(st.integers(0, 59)),
        draw(st.integers(0, 59)),
    )
    return JalaliDateTime(year, month, day, hour, minute, second)


@st.composite
def around_clock_changes(draw: st.DrawFn) -> JalaliDateTime:
    """Wall-clock readings on the days Tehran's clocks changed (1356..1401)."""
    year = draw(st.integers(1355, 1402))
    month, day = draw(
        st.sampled_from([(1, 1), (1, 2), (1, 3), (6, 29), (6, 30), (6, 31), (7, 1), (7, 28)])
    )
    return JalaliDateTime(
        year,
        month,
        day,
        draw(st.integers(0, 23)),
        draw(st.integers(0, 59)),
        draw(st.integers(0, 59)),
    )


any_jalali = st.one_of(jalali(), jalali(st.integers(1300, 1500)), around_clock_changes())


def _naive(value: dt.datetime) -> dt.datetime:
    return value.replace(tzinfo=None, fold=0)


def _skipped(wall: dt.datetime) -> bool:
    """True if this Tehran wall-clock reading never existed (clocks jumped over it)."""
    return _naive(wall.astimezone(UTC).astimezone(TEHRAN)) != _naive(wall)


# --------------------------------------------------------------------------- validation


def test_valid_construction_and_defaults() -> None:
    value = JalaliDateTime(1390, 10, 10)
    assert (value.hour, value.minute, value.second) == (0, 0, 0)
    assert JalaliDateTime(year=1403, month=12, day=30, hour=23, minute=59, second=59).day == 30


@pytest.mark.parametrize(
    ("args", "field"),
    [
        ((0, 1, 1), "year"),
        ((9378, 1, 1), "year"),
        ((-1403, 1, 1), "year"),
        ((1403, 0, 1), "month"),
        ((1403, 13, 1), "month"),
        ((1403, 1, 0), "day"),
        ((1403, 1, 32), "day"),
        ((1403, 7, 31), "day"),
        ((1403, 11, 31), "day"),
        ((1402, 12, 30), "day"),
        ((1404, 12, 30), "day"),
        ((1403, 12, 31), "day"),
        ((1403, 1, 1, 24), "hour"),
        ((1403, 1, 1, -1), "hour"),
        ((1403, 1, 1, 0, 60), "minute"),
        ((1403, 1, 1, 0, 0, 60), "second"),
        (("1403", 1, 1), "year"),
        ((1403.0, 1, 1), "year"),
        ((True, 1, 1), "year"),
        ((1403, None, 1), "month"),
        ((1403, 1, 1, 0, 0, 1.5), "second"),
    ],
)
def test_validation_names_the_field(args: tuple[object, ...], field: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        JalaliDateTime(*args)  # type: ignore[arg-type]
    assert caught.value.field == field
    assert isinstance(caught.value, ValueError)
    assert str(caught.value).startswith(f"{field}: ")


def test_esfand_30_only_in_leap_years() -> None:
    assert JalaliDateTime(1403, 12, 30).to_date() == dt.date(2025, 3, 20)
    assert JalaliDateTime(1399, 12, 30).to_date() == dt.date(2021, 3, 20)
    with pytest.raises(InvalidInputError, match="leap") as caught:
        JalaliDateTime(1402, 12, 30)
    assert caught.value.field == "day"


@PROPERTY
@given(base=jalali(), field=st.sampled_from(FIELDS), data=st.data())
def test_any_single_bad_field_is_named(
    base: JalaliDateTime, field: str, data: st.DataObject
) -> None:
    bad_values = {
        "year": st.one_of(st.integers(max_value=0), st.integers(min_value=9378)),
        "month": st.one_of(st.integers(max_value=0), st.integers(min_value=13)),
        "day": st.one_of(st.integers(max_value=0), st.integers(min_value=32)),
        "hour": st.one_of(st.integers(max_value=-1), st.integers(min_value=24)),
        "minute": st.one_of(st.integers(max_value=-1), st.integers(min_value=60)),
        "second": st.one_of(st.integers(max_value=-1), st.integers(min_value=60)),
    }
    wrong_type = st.one_of(st.booleans(), st.floats(), st.text(max_size=4), st.none())
    bad = data.draw(st.one_of(bad_values[field], wrong_type))
    values = {name: getattr(base, name) for name in FIELDS}
    values[field] = bad
    with pytest.raises(InvalidInputError) as caught:
        JalaliDateTime(**values)
    assert caught.value.field == field


# --------------------------------------------------------------------------- parse and str


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1390/10/10 10:10:10", JalaliDateTime(1390, 10, 10, 10, 10, 10)),
        ("1390-10-10", JalaliDateTime(1390, 10, 10)),
        ("1390.10.10", JalaliDateTime(1390, 10, 10)),
        ("1390/10/10 10:10", JalaliDateTime(1390, 10, 10, 10, 10)),
        ("1390-10-10T10:10:10", JalaliDateTime(1390, 10, 10, 10, 10, 10)),
        ("  1403/1/1  ", JalaliDateTime(1403, 1, 1)),
        ("۱۳۹۰/۱۰/۱۰ ۱۰:۱۰:۱۰", JalaliDateTime(1390, 10, 10, 10, 10, 10)),  # Persian digits
        ("١٣٩٠/١٠/١٠", JalaliDateTime(1390, 10, 10)),  # Arabic digits
        ("1403/12/30", JalaliDateTime(1403, 12, 30)),
    ],
)
def test_parse(text: str, expected: JalaliDateTime) -> None:
    assert JalaliDateTime.parse(text) == expected


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("", "date"),
        ("1390/10", "date"),
        ("10/10/1390 and more", "date"),
        ("1390/10/10 10", "date"),
        ("12345/01/01", "date"),
        ("1402/12/30", "day"),
        ("1390/13/10", "month"),
        ("1390/10/10 25:00", "hour"),
        ("1390/10/10 10:61", "minute"),
    ],
)
def test_parse_errors_name_the_field(text: str, field: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        JalaliDateTime.parse(text)
    assert caught.value.field == field


def test_parse_needs_a_string() -> None:
    with pytest.raises(InvalidInputError) as caught:
        JalaliDateTime.parse(13901010)  # type: ignore[arg-type]
    assert caught.value.field == "date"


def test_str_is_zero_padded() -> None:
    assert str(JalaliDateTime(1390, 1, 2, 3, 4, 5)) == "1390/01/02 03:04:05"
    assert str(JalaliDateTime(1, 1, 1)) == "0001/01/01 00:00:00"


@PROPERTY
@given(any_jalali)
def test_parse_str_round_trip(value: JalaliDateTime) -> None:
    assert JalaliDateTime.parse(str(value)) == value


# --------------------------------------------------------------------------- round trips


@PROPERTY
@given(any_jalali)
def test_to_datetime_from_datetime_round_trip(value: JalaliDateTime) -> None:
    aware = value.to_datetime()
    assert aware.tzinfo is TEHRAN
    assert JalaliDateTime.from_datetime(aware) == value
    assert JalaliDateTime.from_datetime(_naive(aware)) == value  # naive means Tehran


@PROPERTY
@given(any_jalali)
@example(JalaliDateTime(1400, 1, 2, 0, 30))  # skipped: 2021-03-22 00:00 jumped to 01:00
@example(JalaliDateTime(1400, 6, 30, 23, 30))  # repeated: 2021-09-21 24:00 went back to 23:00
def test_round_trip_through_utc(value: JalaliDateTime) -> None:
    wall = value.to_datetime()
    through_utc = JalaliDateTime.from_datetime(wall.astimezone(UTC))
    if not _skipped(wall):
        assert through_utc == value
    else:
        # a reading the clocks jumped over resolves with the offset before the jump
        # (PEP 495, fold=0), i.e. to the same instant's reading after the jump: later
        assert through_utc > value
        assert through_utc.to_datetime() == wall.astimezone(UTC)


@PROPERTY
@given(st.dates(min_value=FIRST_DAY, max_value=LAST_DAY))
def test_from_date_to_date_round_trip(day: dt.date) -> None:
    value = JalaliDateTime.from_date(day)
    assert value.to_date() == day
    assert (value.hour, value.minute, value.second) == (0, 0, 0)
    assert JalaliDateTime.from_date(dt.datetime.combine(day, dt.time(23, 59))) == value


@PROPERTY
@given(jalali())
def test_to_date_from_date_round_trip(value: JalaliDateTime) -> None:
    midnight = JalaliDateTime(value.year, value.month, value.day)
    assert JalaliDateTime.from_date(value.to_date()) == midnight


@PROPERTY
@given(
    st.datetimes(
        min_value=dt.datetime(1900, 1, 1),
        max_value=dt.datetime(2100, 12, 31),
        timezones=st.just(UTC),
    )
)
def test_instants_survive_except_in_the_repeated_hour(instant: dt.datetime) -> None:
    instant = instant.replace(microsecond=0)
    tehran = instant.astimezone(TEHRAN)
    back = JalaliDateTime.from_datetime(instant).to_datetime()
    assert _naive(back) == _naive(tehran)  # the wall clock always survives
    if tehran.fold == 0:
        assert back.timestamp() == instant.timestamp()
    else:
        # the second pass through a repeated hour: the wall reading is kept, and without
        # an offset it names the first pass (earlier by the size of the clock change)
        earlier_by = tehran.replace(fold=0).utcoffset() - tehran.utcoffset()  # type: ignore[operator]
        assert instant.timestamp() - back.timestamp() == earlier_by.total_seconds() > 0


# --------------------------------------------------------------------------- ordering


@PROPERTY
@given(any_jalali, any_jalali)
@example(JalaliDateTime(1400, 1, 2, 0, 30), JalaliDateTime(1400, 1, 2, 1, 0))
def test_ordering_agrees_with_datetimes(a: JalaliDateTime, b: JalaliDateTime) -> None:
    assert (a < b) == (_naive(a.to_datetime()) < _naive(b.to_datetime()))
    assert (a == b) == (a.to_datetime() == b.to_datetime())
    assert (a <= b) == (not a > b)
    wall_a, wall_b = a.to_datetime(), b.to_datetime()
    assume(not _skipped(wall_a) and not _skipped(wall_b))
    # instants too, once readings that never existed are left out
    if a < b:
        assert wall_a.timestamp() <= wall_b.timestamp()


def test_ordering_examples_and_hashing() -> None:
    ordered = [
        JalaliDateTime(1402, 12, 29, 23, 59, 59),
        JalaliDateTime(1403, 1, 1),
        JalaliDateTime(1403, 1, 1, 0, 0, 1),
        JalaliDateTime(1403, 12, 30),
        JalaliDateTime(1404, 1, 1),
    ]
    assert sorted(reversed(ordered)) == ordered
    assert len({JalaliDateTime(1403, 1, 1), JalaliDateTime(1403, 1, 1, 0, 0, 0)}) == 1


# --------------------------------------------------------------------------- time zones


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        # 1403/01/01 is 2024-03-20; UTC 20:31 the evening before is 00:01 in Tehran
        (dt.datetime(2024, 3, 19, 20, 31, tzinfo=UTC), JalaliDateTime(1403, 1, 1, 0, 1)),
        (dt.datetime(2024, 3, 20, 20, 31, tzinfo=UTC), JalaliDateTime(1403, 1, 2, 0, 1)),
        (
            dt.datetime(2024, 3, 19, 20, 29, 59, tzinfo=UTC),
            JalaliDateTime(1402, 12, 29, 23, 59, 59),
        ),
        (
            dt.datetime(2024, 3, 19, 16, 31, tzinfo=ZoneInfo("America/New_York")),
            JalaliDateTime(1403, 1, 1, 0, 1),
        ),
        (
            dt.datetime(2024, 3, 20, 2, 1, tzinfo=dt.timezone(dt.timedelta(hours=5, minutes=30))),
            JalaliDateTime(1403, 1, 1, 0, 1),
        ),
        (dt.datetime(2024, 3, 20, 0, 1), JalaliDateTime(1403, 1, 1, 0, 1)),  # naive = Tehran
        (dt.datetime(2024, 3, 20, 0, 1, tzinfo=TEHRAN), JalaliDateTime(1403, 1, 1, 0, 1)),
        # DST (until 2022): +04:30 in summer; after its abolition +03:30 all year
        (dt.datetime(2021, 6, 1, 12, 0, tzinfo=UTC), JalaliDateTime(1400, 3, 11, 16, 30)),
        (dt.datetime(2023, 6, 1, 12, 0, tzinfo=UTC), JalaliDateTime(1402, 3, 11, 15, 30)),
        (dt.datetime(2025, 3, 20, 20, 29, tzinfo=UTC), JalaliDateTime(1403, 12, 30, 23, 59)),
        (dt.datetime(2025, 3, 20, 20, 30, tzinfo=UTC), JalaliDateTime(1404, 1, 1, 0, 0)),
    ],
)
def test_from_datetime_converts_to_tehran(moment: dt.datetime, expected: JalaliDateTime) -> None:
    assert JalaliDateTime.from_datetime(moment) == expected


def test_microseconds_are_dropped() -> None:
    moment = dt.datetime(2024, 3, 20, 0, 1, 2, 999_999)
    assert JalaliDateTime.from_datetime(moment) == JalaliDateTime(1403, 1, 1, 0, 1, 2)


def test_to_datetime_offsets_follow_tehrans_history() -> None:
    assert JalaliDateTime(1400, 3, 11, 16, 30).to_datetime().utcoffset() == dt.timedelta(
        hours=4, minutes=30
    )
    assert JalaliDateTime(1402, 3, 11, 15, 30).to_datetime().utcoffset() == dt.timedelta(
        hours=3, minutes=30
    )
    assert JalaliDateTime(1400, 3, 11, 16, 30).to_datetime() == dt.datetime(
        2021, 6, 1, 12, tzinfo=UTC
    )


def test_the_skipped_hour_of_1400_01_02() -> None:
    # 2021-03-22 00:00 Tehran: the clocks jumped to 01:00
    skipped = JalaliDateTime(1400, 1, 2, 0, 30)
    assert JalaliDateTime.from_datetime(skipped.to_datetime()) == skipped  # wall clock kept
    instant = skipped.to_datetime().astimezone(UTC)
    assert instant == dt.datetime(2021, 3, 21, 21, 0, tzinfo=UTC)
    assert JalaliDateTime.from_datetime(instant) == JalaliDateTime(1400, 1, 2, 1, 30)


def test_the_repeated_hour_of_1400_06_30() -> None:
    # 2021-09-21 24:00 Tehran (+04:30): the clocks went back to 23:00 (+03:30)
    first = dt.datetime(2021, 9, 21, 19, 0, tzinfo=UTC)  # 23:30+04:30
    second = dt.datetime(2021, 9, 21, 20, 0, tzinfo=UTC)  # 23:30+03:30
    assert second.astimezone(TEHRAN).fold == 1
    reading = JalaliDateTime(1400, 6, 30, 23, 30)
    assert JalaliDateTime.from_datetime(first) == reading == JalaliDateTime.from_datetime(second)
    assert reading.to_datetime() == dt.datetime(2021, 9, 21, 23, 30, tzinfo=TEHRAN)
    assert reading.to_datetime().astimezone(UTC) == dt.datetime(2021, 9, 21, 19, 0, tzinfo=UTC)


@pytest.mark.parametrize("year", range(2008, 2023))
def test_every_minute_of_the_dst_change_days_round_trips_as_wall_clock(year: int) -> None:
    for day in (
        JalaliDateTime.from_date(dt.date(year, 3, 22)),
        JalaliDateTime.from_date(dt.date(year, 9, 21)),
    ):
        start = day.to_datetime()
        for minute in range(0, 24 * 60, 7):
            wall = _naive(start) + dt.timedelta(minutes=minute)
            value = JalaliDateTime.from_datetime(wall)
            assert _naive(value.to_datetime()) == wall
            assert JalaliDateTime.from_datetime(value.to_datetime()) == value


def test_now_is_tehran_time() -> None:
    before = JalaliDateTime.from_datetime(dt.datetime.now(UTC))
    now = JalaliDateTime.now()
    after = JalaliDateTime.from_datetime(dt.datetime.now(UTC))
    assert before <= now <= after
