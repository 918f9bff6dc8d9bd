"""Recurrence: hour-of-week histograms, periodic windows, recurring silences. Pure, table-driven."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from incidentctl.history.recurrence import (
    RecurringWindow,
    hour_of_day_counts,
    hour_of_week,
    parse_window,
    periodic_window,
)

MONDAY = datetime(2026, 11, 2, tzinfo=timezone.utc)  # a Monday


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return MONDAY + timedelta(days=day, hours=hour, minutes=minute)


@pytest.mark.parametrize("text, expected", [
    ("daily 02:00-04:00", RecurringWindow(None, 120, 120)),
    ("Daily 23:30-00:30 UTC", RecurringWindow(None, 23 * 60 + 30, 60)),  # runs past midnight
    ("sun 03:00-05:00", RecurringWindow(6, 180, 120)),
    ("Mon 00:00-24:00", RecurringWindow(0, 0, 24 * 60)),
])
def test_parse_window(text, expected):
    assert parse_window(text) == expected


@pytest.mark.parametrize("text", ["nightly 02:00-04:00", "daily 02:00", "daily 25:00-01:00", "daily 02:00-02:00",
                                  "Sun 3-5"])
def test_parse_window_refuses(text):
    with pytest.raises(ValueError):
        parse_window(text)


@pytest.mark.parametrize("window, moment, inside", [
    ("daily 02:00-04:00", at(3, 2), True),       # the start is in
    ("daily 02:00-04:00", at(3, 4), False),      # the end is out
    ("daily 23:30-00:30", at(1, 0, 10), True),   # past midnight
    ("Sun 03:00-05:00", at(6, 4, 59), True),
    ("Sun 03:00-05:00", at(5, 4), False),        # a Saturday
    ("Sun 23:00-01:00", at(7, 0, 30), True),     # into Monday, the next week
])
def test_window_contains(window, moment, inside):
    assert parse_window(window).contains(moment) is inside


@given(st.integers(0, 6), st.integers(0, 23), st.integers(1, 4))
def test_window_text_round_trips(day, hour, hours):
    window = RecurringWindow(day, hour * 60, hours * 60)
    assert parse_window(str(window)) == window


NIGHTLY = [at(d, 2, 15) for d in range(10)]
SUNDAYS = [at(6 + 7 * w, 3, 20) for w in range(4)] + [at(6 + 7 * w, 4, 10) for w in range(4)]


@pytest.mark.parametrize("times, expected", [
    # every night at 02:15: one daily hour
    (NIGHTLY, "daily 02:00-03:00 UTC"),
    # a weekly job is narrower than any daily window
    (SUNDAYS, "Sun 03:00-05:00 UTC"),
    # nightly, with a third of the pages at other hours: 10 of 15 is still 60 %
    (NIGHTLY + [at(d, 14) for d in range(5)], "daily 02:00-03:00 UTC"),
    # more than 40 % elsewhere: no window
    (NIGHTLY + [at(d, 14) for d in range(8)], None),
    # all pages on two nights only: not a habit
    ([at(0, 2, m) for m in range(5)] + [at(1, 2, m) for m in range(5)], None),
    # too few pages to say
    (NIGHTLY[:4], None),
    # spread evenly over the day
    ([at(d, h) for d in range(3) for h in range(24)], None),
])
def test_periodic_window(times, expected):
    window = periodic_window(times)
    assert (str(window) if window else None) == expected


def test_hour_of_week():
    week = hour_of_week([at(0, 0), at(6, 23), at(7, 0), at(2, 5)])
    assert len(week) == 168 and (week[0], week[167], week[2 * 24 + 5]) == (2, 1, 1) and sum(week) == 4
    assert hour_of_day_counts(week)[0] == 2 and hour_of_day_counts(week)[23] == 1
