"""When a rule pages: the hour-of-week histogram and a periodic window, if there is one. Pure.

A backup at 02:00 every night, a batch job every Sunday: a rule that fires mostly inside such a
window is better silenced there than paged. `periodic_window` finds the narrowest daily or weekly
window (whole hours, UTC) holding most of the pages, on enough separate days or weeks to call
it a habit; `RecurringWindow` is that window as a recurring silence (`simulate
--silence-window`, `noise`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
WEEK_MINUTES = 7 * 24 * 60
DAY_MINUTES = 24 * 60
MIN_SHARE = 0.6  # of the pages inside the window
MIN_PAGES = 5
MIN_OCCURRENCES = 3  # separate days (daily) or weeks (weekly) with a page in the window
LENGTHS_H = (1, 2, 3, 4)
_SPEC = re.compile(r"^(daily|mon|tue|wed|thu|fri|sat|sun)\s+(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})(\s+utc)?$",
                   re.IGNORECASE)


@dataclass(frozen=True)
class RecurringWindow:
    """Every day (day None) or every week on `day` (0 = Monday), from `start` minutes after
    midnight UTC, for `minutes` (it may run past midnight)."""

    day: int | None
    start: int
    minutes: int

    def contains(self, at: datetime) -> bool:
        minute = at.hour * 60 + at.minute
        if self.day is None:
            return (minute - self.start) % DAY_MINUTES < self.minutes
        return (at.weekday() * DAY_MINUTES + minute - self.day * DAY_MINUTES - self.start) % WEEK_MINUTES < self.minutes

    @property
    def coverage(self) -> float:
        """The share of the week it covers."""
        return self.minutes * (7 if self.day is None else 1) / WEEK_MINUTES

    def __str__(self) -> str:
        end = (self.start + self.minutes) % DAY_MINUTES or (DAY_MINUTES if self.start == 0 else 0)
        when = "daily" if self.day is None else DAYS[self.day]
        return f"{when} {self.start // 60:02d}:{self.start % 60:02d}-{end // 60:02d}:{end % 60:02d} UTC"


def parse_window(text: str) -> RecurringWindow:
    """`daily 02:00-04:00` or `Sun 03:00-05:00` (UTC; `UTC` may follow) → RecurringWindow.
    Raises ValueError."""
    match = _SPEC.match(text.strip())
    if not match:
        raise ValueError(f"not a recurring window: {text!r} (use e.g. 'daily 02:00-04:00' or 'Sun 03:00-05:00')")
    when, h1, m1, h2, m2 = match.group(1).lower(), *(int(g) for g in match.groups()[1:5])
    if h1 > 23 or h2 > 24 or m1 > 59 or m2 > 59 or (h2 == 24 and m2):
        raise ValueError(f"not a time of day in {text!r}")
    start, end = h1 * 60 + m1, h2 * 60 + m2
    minutes = (end - start) % DAY_MINUTES or (DAY_MINUTES if end > start else 0)  # 00:00-24:00: all day
    if minutes == 0:
        raise ValueError(f"empty window: {text!r}")
    day = None if when == "daily" else [d.lower() for d in DAYS].index(when)
    return RecurringWindow(day, start, minutes)


def hour_of_week(times: Sequence[datetime]) -> list[int]:
    """168 counts, Monday 00:00–01:00 UTC first."""
    counts = [0] * 168
    for t in times:
        counts[t.weekday() * 24 + t.hour] += 1
    return counts


def hour_of_day(times: Sequence[datetime]) -> list[int]:
    counts = [0] * 24
    for t in times:
        counts[t.hour] += 1
    return counts


def periodic_window(times: Sequence[datetime], *, min_share: float = MIN_SHARE, min_pages: int = MIN_PAGES,
                    min_occurrences: int = MIN_OCCURRENCES) -> RecurringWindow | None:
    """The narrowest daily or weekly window of whole hours holding at least `min_share` of
    `times`, with pages in it on at least `min_occurrences` separate days (daily) or weeks
    (weekly); ties go to the larger share, then the earlier start. None when there is none."""
    if len(times) < min_pages:
        return None
    # Per hour of day: how many, on which dates; per hour of week: how many, in which weeks.
    day_counts, week_counts = [0] * 24, [0] * 168
    day_dates: list[set[object]] = [set() for _ in range(24)]
    week_weeks: list[set[object]] = [set() for _ in range(168)]
    for t in times:
        day, week = t.hour, t.weekday() * 24 + t.hour
        day_counts[day] += 1
        day_dates[day].add(t.date())
        week_counts[week] += 1
        week_weeks[week].add(t.isocalendar()[:2])
    daily = list(zip(day_counts, day_dates, strict=True))
    weekly = list(zip(week_counts, week_weeks, strict=True))
    best: tuple | None = None
    for hours in LENGTHS_H:
        for buckets, period in ((daily, 24), (weekly, 168)):
            for first in range(period):
                span = [buckets[(first + i) % period] for i in range(hours)]
                inside = sum(count for count, _ in span)
                occurrences = len(set[object]().union(*(seen for _, seen in span)))
                if inside < min_share * len(times) or occurrences < min_occurrences:
                    continue
                window = (RecurringWindow(None, first * 60, hours * 60) if period == 24
                          else RecurringWindow(first // 24, (first % 24) * 60, hours * 60))
                key = (window.coverage, -inside, period == 168, first)
                if best is None or key < best[0]:
                    best = (key, window)
    return None if best is None else best[1]


def hour_of_day_counts(week: Sequence[int]) -> list[int]:
    """An hour-of-week histogram folded into 24 hours of the day."""
    return [sum(week[day * 24 + hour] for day in range(7)) for hour in range(24)]
