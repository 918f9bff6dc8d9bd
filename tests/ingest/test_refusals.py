"""What the receiver logs: the refusal log's budget and lines, the access log's masked query. Pure."""

from __future__ import annotations

import logging

import pytest
from hypothesis import given
from hypothesis import strategies as st

from incidentctl.ingest.receiver.refusals import LineBudget, RefusalLog
from incidentctl.ingest.receiver.server import mask_query


@given(st.lists(st.floats(min_value=0, max_value=50, allow_nan=False), max_size=200),
       st.integers(min_value=1, max_value=5))
def test_budget_bounds_the_lines_and_accounts_for_every_other(gaps, burst):
    budget = LineBudget(burst, interval=10.0)
    now, written, reported, allowed_flags = 0.0, [], 0, []
    for gap in gaps:
        now += gap
        allowed, suppressed = budget.take(now)
        reported += suppressed
        allowed_flags.append(allowed)
        if allowed:
            written.append(now)
    # every line is written, or suppressed and reported, or suppressed and still to be reported
    assert len(written) + reported + budget.suppressed == len(gaps)
    # the first `burst` lines always get through
    assert all(allowed_flags[:burst])
    # no 10 s span holds more than two intervals' worth of lines
    for i, start in enumerate(written):
        assert sum(1 for t in written[i:] if t < start + 10.0) <= 2 * burst


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_flood_writes_burst_lines_then_one_summary(caplog):
    clock = Clock()
    refusals = RefusalLog(logging.getLogger("test.refusals"), burst=3, interval=60.0, monotonic=clock)
    with caplog.at_level("WARNING", logger="test.refusals"):
        for _ in range(10):
            refusals.refused(404, "no such endpoint: /x", method="POST", path="/x", client="192.0.2.1", size="2 bytes")
        assert len(caplog.records) == 3
        clock.now = 61.0
        refusals.refused(401, "unauthorized: wrong bearer token", method="POST", path="/webhook/grafana",
                         client="192.0.2.1", size="5 bytes")
        assert [r.getMessage() for r in caplog.records[3:]] == [
            "suppressed 7 more refused-request line(s) (at most 3 per 60s)",
            "refused 401 POST /webhook/grafana from 192.0.2.1 (body 5 bytes): unauthorized: wrong bearer token"]
        for _ in range(4):
            refusals.refused(404, "no", method="GET", path="/y", client=None, size="unread")
        refusals.flush()  # at stop: what is still suppressed is reported
        assert caplog.records[-1].getMessage() == "suppressed 2 more refused-request line(s) (at most 3 per 60s)"
        assert all(r.levelno == logging.WARNING for r in caplog.records)


def test_lines_blot_secrets_and_stay_on_one_line(caplog):
    refusals = RefusalLog(logging.getLogger("test.refusals"), secrets=("s3cret-token", ""))
    with caplog.at_level("WARNING", logger="test.refusals"):
        refusals.refused(404, "no such endpoint: /hook/s3cret-token", method="POST", path="/hook/s3cret-token\nX: y",
                         client="192.0.2.1", size="0 bytes")
        refusals.refused(404, "x" * 1000, method="GET", path="/" + "a" * 1000, client="192.0.2.1", size="0 bytes")
    first, second = (r.getMessage() for r in caplog.records)
    assert "s3cret" not in first and first.count("***") == 2 and "\n" not in first and "\\n" in first
    assert len(second) < 600 and second.endswith("…")


@pytest.mark.parametrize("target, shown", [
    ("/webhook/grafana", "/webhook/grafana"),  # no query: as is
    ("/webhook/grafana?", "/webhook/grafana"),  # an empty query says nothing
    ("/webhook/grafana?token=abc", "/webhook/grafana?token=***"),  # the value goes, the name stays
    ("/w?a=1&b=&token=x%3Dy", "/w?a=***&b=***&token=***"),  # every value, even empty or encoded
    ("/w?abc123", "/w?***"),  # a bare value (no name) goes whole
    ("/w?a=1?b=2", "/w?a=***"),  # a second "?" is part of the value
])
def test_mask_query(target, shown):
    assert mask_query(target) == shown
