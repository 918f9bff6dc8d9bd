"""The statistics of `incidentctl report`: pure functions over plain incident facts.

Definitions (docs/REPORTS.md): MTTA = opened → first acknowledgement, MTTR = opened → resolved,
each as mean, median and p90 (nearest rank); short-lived = resolved within 5 minutes without an
ack; flapping = reopened by its alerts at least once (a flap; a person's reopen is not one);
pages = incidents opened + flaps.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TypeVar

from incidentctl.incidents.model import Resolution

SHORT_LIVED = timedelta(minutes=5)
SPARK = "▁▂▃▄▅▆▇█"


@dataclass(frozen=True)
class Summary:
    """Mean, median and p90 of some values (None when there are none)."""

    count: int
    mean: float | None
    median: float | None
    p90: float | None


@dataclass(frozen=True)
class IncidentFacts:
    """What the report needs of one incident."""

    id: int
    fingerprint: str
    title: str
    opened_at: datetime
    first_ack_at: datetime | None
    resolved_at: datetime | None
    resolution: Resolution | None  # for resolved incidents
    alert_count: int
    flaps: int  # reopens made by alerts (a person's reopen is not a flap)
    group: str | None = None  # the value of the --by column


@dataclass(frozen=True)
class Metrics:
    opened: int
    resolved: int
    unresolved: int
    auto_resolved: int
    manual_resolved: int
    acknowledged: int
    never_acked: int
    flapping: int
    reopens: int
    short_lived: int
    mtta: Summary  # seconds
    mttr: Summary  # seconds
    alerts_per_incident: Summary


@dataclass(frozen=True)
class Noise:
    """One incident fingerprint's noise over the window."""

    fingerprint: str
    title: str
    incidents: int
    reopens: int
    short_lived: int
    never_acked: int
    alerts: int
    suggestion: str

    @property
    def pages(self) -> int:
        return self.incidents + self.reopens


T = TypeVar("T")  # a number, or a timedelta


def percentile(ordered: Sequence[T], q: float) -> T | None:
    """Nearest-rank percentile of sorted values: the smallest value with at least q% of the
    values at or below it."""
    if not ordered:
        return None
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def median(ordered: Sequence[float]) -> float | None:
    """The middle value of sorted values (the mean of the two middle ones for an even count)."""
    n = len(ordered)
    if n == 0:
        return None
    mid = n // 2
    return ordered[mid] if n % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def summarize(values: Iterable[float]) -> Summary:
    ordered = sorted(values)
    if not ordered:
        return Summary(0, None, None, None)
    return Summary(len(ordered), sum(ordered) / len(ordered), median(ordered), percentile(ordered, 90))


def time_to_ack(incident: IncidentFacts) -> float | None:
    if incident.first_ack_at is None:
        return None
    return max((incident.first_ack_at - incident.opened_at).total_seconds(), 0.0)


def time_to_resolve(incident: IncidentFacts) -> float | None:
    if incident.resolved_at is None:
        return None
    return max((incident.resolved_at - incident.opened_at).total_seconds(), 0.0)


def is_short_lived(incident: IncidentFacts, limit: timedelta = SHORT_LIVED) -> bool:
    """Resolved within `limit` of opening and never acknowledged: nobody needed to act."""
    return (incident.resolved_at is not None and incident.first_ack_at is None
            and incident.resolved_at - incident.opened_at <= limit)


def metrics(incidents: Sequence[IncidentFacts], short_lived: timedelta = SHORT_LIVED) -> Metrics:
    """The report's figures over a set of incidents."""
    resolved = [i for i in incidents if i.resolved_at is not None]
    acked = [i for i in incidents if i.first_ack_at is not None]
    return Metrics(
        opened=len(incidents),
        resolved=len(resolved),
        unresolved=len(incidents) - len(resolved),
        auto_resolved=sum(1 for i in resolved if i.resolution == Resolution.AUTO),
        manual_resolved=sum(1 for i in resolved if i.resolution == Resolution.MANUAL),
        acknowledged=len(acked),
        never_acked=len(incidents) - len(acked),
        flapping=sum(1 for i in incidents if i.flaps > 0),
        reopens=sum(i.flaps for i in incidents),
        short_lived=sum(1 for i in incidents if is_short_lived(i, short_lived)),
        mtta=summarize(t for i in acked if (t := time_to_ack(i)) is not None),
        mttr=summarize(t for i in resolved if (t := time_to_resolve(i)) is not None),
        alerts_per_incident=summarize(i.alert_count for i in incidents),
    )


def suggest_fix(incidents: int, reopens: int, short_lived: int, never_acked: int, alerts: int) -> str:
    """What would make a noisy fingerprint quieter; empty when nothing stands out."""
    if incidents and short_lived * 2 >= incidents:
        return "resolves by itself within minutes: lengthen `for:` in the alert rule (e.g. for: 5m)"
    if incidents and reopens >= incidents:
        return "flaps: add hysteresis or `keep_firing_for:` to the rule, or lengthen `for:`"
    if incidents >= 3 and never_acked == incidents:
        return "never acknowledged: lower its severity, route it to a quieter channel, or retire the rule"
    if incidents and alerts / incidents >= 50:
        return "many notifications per incident: raise repeat_interval / group_interval in the policy"
    return ""


def noisy_fingerprints(incidents: Sequence[IncidentFacts], top: int = 10,
                       short_lived: timedelta = SHORT_LIVED) -> list[Noise]:
    """Fingerprints that paged at least twice, most pages first (then most alerts)."""
    by_fp: dict[str, list[IncidentFacts]] = {}
    for incident in incidents:
        by_fp.setdefault(incident.fingerprint, []).append(incident)
    noise = []
    for fingerprint, group in by_fp.items():
        counts = dict(
            incidents=len(group),
            reopens=sum(i.flaps for i in group),
            short_lived=sum(1 for i in group if is_short_lived(i, short_lived)),
            never_acked=sum(1 for i in group if i.first_ack_at is None),
            alerts=sum(i.alert_count for i in group),
        )
        if counts["incidents"] + counts["reopens"] < 2:
            continue
        title = max(group, key=lambda i: (i.opened_at, i.id)).title
        noise.append(Noise(fingerprint, title, suggestion=suggest_fix(**counts), **counts))
    noise.sort(key=lambda n: (-n.pages, -n.alerts, n.fingerprint))
    return noise[:top]


def days_between(since: datetime, until: datetime) -> list[date]:
    """The UTC days touched by [since, until)."""
    first, last = since.date(), (until - timedelta(microseconds=1)).date()
    return [first + timedelta(days=n) for n in range((last - first).days + 1)] if until > since else []


def sparkline(values: Sequence[int]) -> str:
    """One block character per value, scaled to the largest (zero is the lowest block)."""
    if not values:
        return ""
    top = max(values)
    if top <= 0:
        return SPARK[0] * len(values)
    return "".join(SPARK[min(len(SPARK) - 1, int(v / top * (len(SPARK) - 1) + 0.5))] for v in values)


def bar(value: int, top: int, width: int = 40) -> str:
    """A horizontal bar of `width` cells for `value` out of `top` (at least one cell when > 0)."""
    if top <= 0 or value <= 0:
        return ""
    return "█" * max(1, round(value / top * width))
