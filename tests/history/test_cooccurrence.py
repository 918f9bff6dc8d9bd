"""The co-occurrence statistics: binomial tail, counts of incidents opening together, and the
pair's figures (symmetric, within bounds, significant only when it should be)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from math import comb

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from incidentctl.history.cooccurrence import binomial_tail, pair_stats, together_count
from tests.support.properties import examples

T0 = datetime(2026, 4, 1, tzinfo=timezone.utc)
W = timedelta(minutes=5)


def exact(k: int, n: int, q: float) -> float:
    return sum(comb(n, i) * q ** i * (1 - q) ** (n - i) for i in range(k, n + 1))


# (k, n, q)
TAILS = [
    (0, 10, 0.3),  # always at least none
    (1, 10, 0.3),
    (3, 10, 0.3),  # below the mean: summed as the complement
    (9, 11, 0.03),  # far above the mean: tiny, digits kept
    (11, 11, 0.5),
    (20, 1000, 0.01),
    (12, 1000, 0.01),
    (3, 2, 0.5),  # more than possible
    (1, 5, 0.0),
    (2, 5, 1.0),
]


@pytest.mark.parametrize("k,n,q", TAILS)
def test_binomial_tail(k, n, q):
    expected = 0.0 if k > n else exact(k, n, q)
    assert binomial_tail(k, n, q) == pytest.approx(expected, rel=1e-9, abs=1e-15)


def minutes(*values: float) -> list[datetime]:
    return sorted(T0 + timedelta(minutes=v) for v in values)


# (first, second, same list?, how many of first have one of second within ±5m)
TOGETHER = [
    (minutes(0, 60, 120), minutes(2, 200), False, 1),
    (minutes(0, 60, 120), minutes(-5, 65, 124.9), False, 3),  # ±5m inclusive
    (minutes(0, 60), minutes(5.01), False, 0),
    (minutes(0, 3, 60), minutes(0, 3, 60), True, 2),  # another one than itself
    (minutes(0), minutes(0), True, 0),
    ([], minutes(1), False, 0),
]


@pytest.mark.parametrize("first,second,same,count", TOGETHER)
def test_together_count(first, second, same, count):
    assert together_count(first, second, W, same) == count


def test_a_pair_that_always_opens_together_is_unusual_and_a_chance_one_is_not():
    day = timedelta(days=1)
    root = [T0 + n * day for n in range(10)]
    times = {"NodeDown": {"prod": root},
             "PodCrash": {"prod": sorted(t + timedelta(minutes=1) for t in root)},
             "DiskFull": {"prod": [T0 + n * day + timedelta(hours=7) for n in range(10)]}}
    together = pair_stats("PodCrash", "NodeDown", times, W, 10 * day)
    assert (together.first, together.second) == ("NodeDown", "PodCrash")  # counted from the rarer, then by name
    assert (together.incidents, together.together) == (10, 10)
    assert together.expected == pytest.approx(10 * (1 - 2.718281828 ** (-600 * 10 / 864000)), rel=1e-6)
    assert together.p_value < 1e-15 and together.unusual(3, 0.001) and together.lift > 100
    apart = pair_stats("NodeDown", "DiskFull", times, W, 10 * day)
    assert apart.together == 0 and apart.p_value == 1.0 and not apart.unusual(3, 0.001)


def test_only_the_same_place_counts():
    day = timedelta(days=1)
    root = [T0 + n * day for n in range(10)]
    times = {"NodeDown": {"prod": root}, "PodCrash": {"stage": [t + timedelta(minutes=1) for t in root]}}
    stats = pair_stats("NodeDown", "PodCrash", times, W, 10 * day)
    assert stats.together == 0 and stats.expected == 0.0 and stats.p_value == 1.0


times_strategy = st.dictionaries(
    st.sampled_from(["A", "B", "C"]),
    st.dictionaries(st.sampled_from(["prod", "stage"]),
                    st.lists(st.integers(0, 30 * 24 * 60), max_size=40).map(
                        lambda ms: sorted(T0 + timedelta(minutes=m) for m in ms)), max_size=2),
    max_size=3)


@settings(max_examples=examples(200), deadline=None)
@given(times_strategy, st.sampled_from(["A", "B", "C"]), st.sampled_from(["A", "B", "C"]))
def test_pair_stats_properties(times, a, b):
    span = timedelta(days=30)
    stats = pair_stats(a, b, times, W, span)
    assert stats == pair_stats(b, a, times, W, span)  # whichever is asked about
    assert 0 <= stats.together <= stats.incidents
    assert 0.0 <= stats.p_value <= 1.0 and stats.expected >= 0.0
    if stats.together == 0:
        assert stats.p_value == 1.0
