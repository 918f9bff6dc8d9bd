"""Pacing Web API calls to Slack's published rate limits, on an injected clock.

Slack (docs.slack.dev/apis/web-api/rate-limits, /work/shared/SLACK.md §3): chat.postMessage
allows about one message a second per channel with short bursts, and "several hundred per
minute" per workspace; chat.update is Tier 3 (50+ a minute per workspace); chat.postEphemeral
Tier 4 (100+); chat.getPermalink "hundreds a minute". Slack publishes no burst sizes, so the
bursts below are small guesses on the safe side.

Each limit is a token bucket: `burst` tokens, refilled at `per_second`; a call takes one token
from every bucket of its method. A 429's Retry-After blocks the whole method (every channel)
until it has passed: Slack does not say whether a postMessage limit hit one channel or the
workspace, and calling again too early "runs the risk of having your application permanently
disabled", so the wait is taken as a hard one for all of them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

BACKOFF_BASE = 30.0
BACKOFF_MAX = 3600.0

# Float slack for a bucket refilled exactly to one token after sleeping the computed wait.
_EPSILON = 1e-9


@dataclass(frozen=True)
class Rate:
    """`per_second` calls on average, up to `burst` at once, per channel or per workspace."""

    per_second: float
    burst: int
    per_channel: bool = False


SLACK_RATES: dict[str, tuple[Rate, ...]] = {
    "chat.postMessage": (Rate(1.0, 3, per_channel=True), Rate(300 / 60, 20)),
    "chat.update": (Rate(50 / 60, 5),),
    "chat.postEphemeral": (Rate(100 / 60, 10),),
    "chat.getPermalink": (Rate(100 / 60, 10),),
    "usergroups.users.list": (Rate(20 / 60, 3),),  # Tier 2
}


def refill(tokens: float, last: float, now: float, rate: Rate) -> float:
    """A bucket's tokens at `now`, holding `tokens` at `last`: refilled, never above the burst."""
    return min(float(rate.burst), tokens + max(now - last, 0.0) * rate.per_second)


def wait_for_token(tokens: float, rate: Rate) -> float:
    """Seconds until a bucket holding `tokens` holds one whole token (0 when it does)."""
    return 0.0 if tokens >= 1.0 - _EPSILON else (1.0 - tokens) / rate.per_second


class Pacer:
    """Token buckets per method (and channel, where the limit is per channel) plus Retry-After
    blocks per method. `wait_time` says how long a call must wait, `take` records a call."""

    def __init__(self, rates: Mapping[str, Sequence[Rate]] = SLACK_RATES, clock: Callable[[], float] = time.monotonic):
        self.rates = {method: tuple(limits) for method, limits in rates.items()}
        self.clock = clock
        self._buckets: dict[tuple, tuple[float, float]] = {}  # key -> (tokens, at)
        self._blocked: dict[str, float] = {}  # method -> clock time the block ends

    def _buckets_of(self, method: str, channel: str | None) -> list[tuple[Rate, tuple]]:
        return [(rate, (method, i, channel if rate.per_channel else None))
                for i, rate in enumerate(self.rates.get(method, ()))]

    def _tokens(self, rate: Rate, key: tuple, now: float) -> float:
        tokens, last = self._buckets.get(key, (float(rate.burst), now))
        return refill(tokens, last, now, rate)

    def wait_time(self, method: str, channel: str | None = None) -> float:
        """Seconds before `method` (to `channel`) may be called; 0 when it may be now."""
        now = self.clock()
        wait = max(self._blocked.get(method, now) - now, 0.0)
        for rate, key in self._buckets_of(method, channel):
            wait = max(wait, wait_for_token(self._tokens(rate, key, now), rate))
        return wait

    def take(self, method: str, channel: str | None = None) -> None:
        """Records one call now (call when wait_time is 0)."""
        now = self.clock()
        for rate, key in self._buckets_of(method, channel):
            self._buckets[key] = (max(self._tokens(rate, key, now) - 1.0, 0.0), now)

    def block(self, method: str, seconds: float) -> None:
        """No call of `method` for `seconds` from now (Slack's Retry-After), on any channel."""
        until = self.clock() + max(seconds, 0.0)
        self._blocked[method] = max(self._blocked.get(method, until), until)


def backoff_seconds(attempts: int, retry_after: float | None) -> float:
    """Wait before the next try of something Slack did not take: its Retry-After when it gave
    one, else 30 s doubling per attempt, capped at an hour."""
    if retry_after is not None:
        return min(retry_after, BACKOFF_MAX)
    return min(BACKOFF_BASE * 2 ** max(attempts - 1, 0), BACKOFF_MAX)
