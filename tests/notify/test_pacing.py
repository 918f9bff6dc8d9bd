"""Pacing to Slack's rate limits: token buckets and Retry-After blocks on an injected clock."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from incidentctl.notify.pacing import SLACK_RATES, Pacer, Rate, refill, wait_for_token
from tests.support.slack_web_fake import LIMITS, ManualClock

ONE_A_SECOND = Rate(1.0, 3)


@pytest.mark.parametrize("tokens, last, now, expected", [
    (0.0, 0.0, 0.5, 0.5),    # half a second refills half a token
    (0.0, 0.0, 10.0, 3.0),   # never above the burst
    (2.5, 5.0, 5.0, 2.5),    # no time, no tokens
    (1.0, 5.0, 4.0, 1.0),    # a clock that steps back adds nothing
])
def test_refill(tokens, last, now, expected):
    assert refill(tokens, last, now, ONE_A_SECOND) == pytest.approx(expected)


@pytest.mark.parametrize("tokens, rate, expected", [
    (1.0, ONE_A_SECOND, 0.0),            # a whole token: go
    (0.25, ONE_A_SECOND, 0.75),          # the rest of a token
    (0.0, Rate(50 / 60, 5), 1.2),        # Tier 3: one every 1.2 s
    (1.0 - 1e-12, ONE_A_SECOND, 0.0),    # float dust after sleeping the exact wait
])
def test_wait_for_token(tokens, rate, expected):
    assert wait_for_token(tokens, rate) == pytest.approx(expected)


def run(pacer: Pacer, clock: ManualClock, calls) -> list[float]:
    """Makes each (method, channel) call as soon as the pacer allows; the times they went."""
    times = []
    for method, channel in calls:
        clock.advance(pacer.wait_time(method, channel))
        assert pacer.wait_time(method, channel) == 0
        pacer.take(method, channel)
        times.append(clock())
    return times


def test_a_burst_then_one_a_second_per_channel():
    clock = ManualClock()
    pacer = Pacer({"chat.postMessage": (Rate(1.0, 3, per_channel=True),)}, clock)
    assert run(pacer, clock, [("chat.postMessage", "C1")] * 6) == pytest.approx([0, 0, 0, 1, 2, 3])
    # another channel has its own bucket
    assert run(pacer, clock, [("chat.postMessage", "C2")] * 2) == pytest.approx([3, 3])


def test_a_workspace_limit_holds_across_channels():
    clock = ManualClock()
    pacer = Pacer({"chat.update": (Rate(0.5, 2),)}, clock)
    assert run(pacer, clock, [("chat.update", c) for c in ("C1", "C2", "C3", "C4")]) == pytest.approx([0, 0, 2, 4])


def test_retry_after_blocks_the_method_on_every_channel_and_only_that_method():
    clock = ManualClock(100.0)
    pacer = Pacer(clock=clock)
    pacer.block("chat.postMessage", 30)
    assert pacer.wait_time("chat.postMessage", "C1") == pytest.approx(30)
    assert pacer.wait_time("chat.postMessage", "C2") == pytest.approx(30)
    assert pacer.wait_time("chat.update", "C1") == 0
    pacer.block("chat.postMessage", 5)  # a shorter block does not shorten the longer one
    clock.advance(29)
    assert pacer.wait_time("chat.postMessage", "C1") == pytest.approx(1)
    clock.advance(1)
    assert pacer.wait_time("chat.postMessage", "C1") == 0


def test_a_method_without_a_known_limit_is_not_paced():
    pacer = Pacer(clock=ManualClock())
    for _ in range(100):
        assert pacer.wait_time("chat.meMessage") == 0
        pacer.take("chat.meMessage")


@pytest.mark.parametrize("method", sorted(SLACK_RATES))
def test_our_rates_stay_within_the_fakes_and_slacks_published_ones(method):
    """Slack publishes: postMessage ~1/s per channel, update Tier 3 (50+/min), postEphemeral Tier
    4 (100+/min). The fake's buckets hold those with bursts of its own; ours must fit inside."""
    fake = LIMITS.get(method)
    for rate in SLACK_RATES[method]:
        if fake is not None and rate.per_channel == fake.per_channel:
            assert rate.per_second <= fake.rate and rate.burst <= fake.burst


@given(st.lists(st.tuples(st.sampled_from(["C1", "C2", "C3"]), st.floats(0, 3)), max_size=60))
def test_no_window_sees_more_calls_than_the_rate_allows(steps):
    """Whatever the timing, the calls to one channel in any window of t seconds are at most
    burst + rate × t."""
    clock = ManualClock()
    rate = Rate(1.0, 3, per_channel=True)
    pacer = Pacer({"chat.postMessage": (rate,)}, clock)
    sent: dict[str, list[float]] = {}
    for channel, idle in steps:
        clock.advance(idle)
        clock.advance(pacer.wait_time("chat.postMessage", channel))
        pacer.take("chat.postMessage", channel)
        sent.setdefault(channel, []).append(clock())
    for times in sent.values():
        for i in range(len(times)):
            for j in range(i, len(times)):
                assert j - i + 1 <= rate.burst + rate.per_second * (times[j] - times[i]) + 1e-6
