"""The report's statistics: pure functions, table-driven."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest

from incidentctl.history.stats import (
    IncidentFacts,
    Summary,
    bar,
    days_between,
    is_short_lived,
    median,
    metrics,
    noisy_fingerprints,
    percentile,
    sparkline,
    suggest_fix,
    summarize,
)

T = datetime(2026, 11, 2, 10, 0, tzinfo=timezone.utc)


def incident(n=1, *, fp="a", ack=None, resolved=None, resolution=None, alerts=1, reopens=0, title="t"):
    """An incident opened at T; ack/resolved are minutes after opening."""
    return IncidentFacts(
        id=n, fingerprint=fp, title=title, opened_at=T,
        first_ack_at=None if ack is None else T + timedelta(minutes=ack),
        resolved_at=None if resolved is None else T + timedelta(minutes=resolved),
        resolution=resolution if resolved is not None else None, alert_count=alerts, flaps=reopens,
    )


@pytest.mark.parametrize("values, q, expected", [
    ([], 90, None),  # nothing to rank
    ([5], 90, 5),  # one value is every percentile
    ([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 90, 9),  # rank ceil(9.0) = 9
    ([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11], 90, 10),  # rank ceil(9.9) = 10
    ([10, 20], 50, 10),  # nearest rank, never interpolated
    ([10, 20], 90, 20),  # rank ceil(1.8) = 2
])
def test_percentile_is_nearest_rank(values, q, expected):
    assert percentile(values, q) == expected


@pytest.mark.parametrize("values, expected", [
    ([], None),  # no values
    ([3], 3),  # a single value
    ([1, 3, 10], 3),  # odd count: the middle one
    ([1, 3, 5, 10], 4),  # even count: the mean of the two middle ones
])
def test_median(values, expected):
    assert median(values) == expected


@pytest.mark.parametrize("values, expected", [
    ([], Summary(0, None, None, None)),  # empty
    ([60, 180, 120], Summary(3, 120, 120, 180)),  # unsorted input is sorted first
    ([0, 0, 0, 600], Summary(4, 150, 0, 600)),  # one outlier moves the mean, not the median
])
def test_summarize(values, expected):
    assert summarize(values) == expected


@pytest.mark.parametrize("facts, expected", [
    (incident(resolved=4), True),  # resolved after 4 min, nobody acked
    (incident(resolved=5), True),  # exactly 5 min still counts ("within")
    (incident(resolved=6), False),  # too long
    (incident(resolved=2, ack=1), False),  # someone acked it: a person acted
    (incident(), False),  # still open
])
def test_is_short_lived(facts, expected):
    assert is_short_lived(facts) is expected


@pytest.mark.parametrize("counts, expected_start", [
    (dict(incidents=4, reopens=0, short_lived=2, never_acked=4, alerts=4), "resolves by itself"),  # half short-lived
    (dict(incidents=2, reopens=3, short_lived=0, never_acked=0, alerts=9), "flaps"),  # reopens ≥ incidents
    (dict(incidents=3, reopens=0, short_lived=1, never_acked=3, alerts=3), "never acknowledged"),  # ignored
    (dict(incidents=2, reopens=0, short_lived=0, never_acked=2, alerts=2), ""),  # too few to say "ignored"
    (dict(incidents=2, reopens=1, short_lived=0, never_acked=0, alerts=120), "many notifications"),  # repeats
    (dict(incidents=5, reopens=1, short_lived=1, never_acked=1, alerts=20), ""),  # nothing stands out
])
def test_suggest_fix(counts, expected_start):
    suggestion = suggest_fix(**counts)
    assert suggestion.startswith(expected_start) and bool(suggestion) == bool(expected_start)


def test_metrics_over_a_hand_computed_set():
    facts = [
        incident(1, ack=2, resolved=30, resolution="manual", alerts=4),  # acked in 2m, resolved in 30m
        incident(2, ack=10, resolved=60, resolution="auto", alerts=2, reopens=1),  # flapped once
        incident(3, resolved=3, resolution="auto", alerts=1),  # short-lived
        incident(4, alerts=9),  # still open, never acked
    ]
    m = metrics(facts)
    assert (m.opened, m.resolved, m.unresolved, m.auto_resolved, m.manual_resolved) == (4, 3, 1, 2, 1)
    assert (m.acknowledged, m.never_acked, m.flapping, m.reopens, m.short_lived) == (2, 2, 1, 1, 1)
    assert m.mtta == Summary(2, 360, 360, 600)
    assert m.mttr == Summary(3, 1860, 1800, 3600)
    assert m.alerts_per_incident == Summary(4, 4, 3, 9)


def test_noisy_fingerprints_rank_by_pages_and_skip_single_pages():
    facts = [
        incident(1, fp="flappy", reopens=3, alerts=5, title="old title"),
        incident(2, fp="blip", resolved=1, resolution="auto"),
        incident(3, fp="blip", resolved=2, resolution="auto"),
        incident(4, fp="once", alerts=100),  # one page only: not noise
    ]
    noise = noisy_fingerprints(facts, top=10)
    assert [(n.fingerprint, n.pages, n.short_lived) for n in noise] == [("flappy", 4, 0), ("blip", 2, 2)]
    assert noise[0].suggestion.startswith("flaps") and noise[1].suggestion.startswith("resolves by itself")
    assert noisy_fingerprints(facts, top=1)[0].fingerprint == "flappy"


@pytest.mark.parametrize("since, until, expected", [
    (T, T + timedelta(hours=1), [date(2026, 11, 2)]),  # within one day
    (T, T.replace(hour=0) + timedelta(days=2), [date(2026, 11, 2), date(2026, 11, 3)]),  # until is exclusive
    (T, T, []),  # empty window
])
def test_days_between(since, until, expected):
    assert days_between(since, until) == expected


@pytest.mark.parametrize("values, expected", [
    ([], ""),  # nothing
    ([0, 0], "▁▁"),  # all zero: lowest blocks
    ([0, 2, 7, 14], "▁▂▅█"),  # scaled to the largest, rounded to the nearest block
])
def test_sparkline(values, expected):
    assert sparkline(values) == expected


@pytest.mark.parametrize("value, top, expected", [
    (0, 10, ""),  # zero draws nothing
    (1, 1000, "█"),  # tiny but not zero: one cell
    (10, 10, "█" * 40),  # the largest fills the width
])
def test_bar(value, top, expected):
    assert bar(value, top) == expected
