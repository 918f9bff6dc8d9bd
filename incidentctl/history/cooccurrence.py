"""How unusual it is that two alertnames open together: counted over history, tested against
independent occurrence. Pure; the definitions are in docs/REPORTS.md ("Related incidents").

Together means within ±window and in the same place (the widest topology label: the cluster).
Of the `n` incidents of alertname A (the rarer of the two) in the history, `k` had an incident
of B open with it. If B's incidents opened independently of A's, at B's average rate in A's
place r = n_B,place / span, an A incident would find one with probability
q_i = 1 − exp(−2·window·r) (a Poisson process). k then follows a Poisson binomial law with mean
Σ q_i (`expected`); the p-value is P(X ≥ k) under Binomial(n, mean q_i), which is never smaller
than the Poisson binomial's when k exceeds its mean by one or more (Hoeffding, 1956), so the
test errs on the side of no link. `lift` = k / expected. For A = B: "another incident of A".
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class PairStats:
    """How often `first`'s incidents had one of `second` within the window, against chance."""

    first: str  # the rarer alertname, the one counted from
    second: str
    incidents: int  # `first`'s incidents in the history
    together: int  # of which had an incident of `second` (another one, when the same) within the window
    expected: float  # `together` expected if the two opened independently
    p_value: float  # P(together or more | independent)

    @property
    def lift(self) -> float:
        return self.together / self.expected if self.expected > 0 else math.inf

    def unusual(self, min_together: int, max_p: float) -> bool:
        """Seen together at least `min_together` times, and that often by chance with
        probability at most `max_p`."""
        return self.together >= min_together and self.p_value <= max_p


def binomial_tail(k: int, n: int, q: float) -> float:
    """P(X ≥ k) for X ~ Binomial(n, q), summed in log space (n in the tens of thousands is fine)."""
    if k <= 0:
        return 1.0
    if k > n or q <= 0.0:
        return 0.0
    if q >= 1.0:
        return 1.0
    log_q, log_1q = math.log(q), math.log1p(-q)
    log_c = math.lgamma(n + 1)

    def mass(values: range) -> float:
        terms = [log_c - math.lgamma(i + 1) - math.lgamma(n - i + 1) + i * log_q + (n - i) * log_1q for i in values]
        top = max(terms)
        return math.exp(top) * sum(math.exp(t - top) for t in terms)

    # Below the mean the tail is large and its complement has the fewer terms; above it, the
    # tail is small and summed directly, so a tiny p-value keeps its digits.
    if k <= n * q:
        return min(1.0, max(0.0, 1.0 - mass(range(0, k))))
    return min(1.0, mass(range(k, n + 1)))


Times = Mapping[str, Mapping[str, Sequence[datetime]]]  # {alertname: {place: sorted opening times}}


def together_count(first: Sequence[datetime], second: Sequence[datetime], window: timedelta, same: bool) -> int:
    """How many times of `first` (sorted) have a time of `second` (sorted) within ±window; with
    `same` (the same list), another one than itself."""
    count = 0
    for t in first:
        lo, hi = bisect_left(second, t - window), bisect_right(second, t + window)
        if hi - lo > (1 if same else 0):
            count += 1
    return count


def pair_stats(a: str, b: str, times: Times, window: timedelta, span: timedelta) -> PairStats:
    """The statistics of alertnames `a` and `b` from their incidents' opening times per place in
    a history `span` long, counted from the rarer of the two (ties: the first by name), so the
    answer is the same whichever is asked about."""
    first, second = sorted((a, b), key=lambda name: (_count(times.get(name, {})), name))
    ours, theirs = times.get(first, {}), times.get(second, {})
    same = first == second
    seconds = span.total_seconds()
    n = k = 0
    q_sum = 0.0
    for place, opened in ours.items():
        others = theirs.get(place, ())
        rate = (len(others) - (1 if same else 0)) / seconds if seconds > 0 else 0.0
        q = 1.0 - math.exp(-2 * window.total_seconds() * rate) if rate > 0 else 0.0
        n += len(opened)
        q_sum += q * len(opened)
        k += together_count(opened, others, window, same)
    return PairStats(first, second, n, k, q_sum, binomial_tail(k, n, q_sum / n) if n else 1.0)


def _count(by_place: Mapping[str, Sequence[datetime]]) -> int:
    return sum(len(v) for v in by_place.values())
