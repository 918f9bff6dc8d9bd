"""Notify thresholds: when a route announces an incident. Pure.

A route may wait before it announces an incident: until the incident has fired for a while
(`notify_after`), holds a number of distinct alerts (`notify_min_alerts`), or has reached a
severity (`notify_min_severity`). Any one condition met announces it. The incident itself exists
and is listed at once; only its outbox rows wait.

The unit is the *episode*: an incident's changes from an `opened` or `reopened` change up to
the `resolved` that ends it. An episode that ends before it reached the threshold is never
announced: its changes are suppressed. An episode some change of which has gone out (sent, or
tried) is announced: nothing of it waits any more, so a resolve of something announced is never
delayed. Times are the changes' event times; an episode's end is when incidentctl learned of
the resolve (the resolving webhook's `received_at`), so the answer is the one a `notify`
running continuously would give, whenever it actually runs. `notify` and the backtests of
`simulate` and `noise` all decide through `gate`. A held row stays pending with the reason as
its `last_error` prefix, which `outbox.waiting` leaves out and `outbox.held` counts: no schema
change was needed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from incidentctl.config import ConfigError
from incidentctl.durations import format_duration, parse_duration
from incidentctl.incidents.model import ChangeKind, Severity, severity_rank

KEYS = ("notify_after", "notify_min_alerts", "notify_min_severity")
STARTS = ("opened", "reopened")
ANNOUNCE, WAIT, NEVER = "announce", "wait", "never"


@dataclass(frozen=True)
class Threshold:
    """What a route waits for before announcing an episode; None/0 means that condition is off."""

    after: timedelta | None = None  # the episode has fired this long
    min_alerts: int | None = None  # the incident holds this many distinct alerts (series)
    min_severity: str | None = None  # the incident reached this severity or a higher one

    def __bool__(self) -> bool:
        return bool(self.after or self.min_alerts or self.min_severity)

    @property
    def waits_for_alerts(self) -> bool:
        """A new alert (not only time) can release a held episode: re-check it every run."""
        return bool(self.min_alerts or self.min_severity)

    def describe(self) -> str:
        """`fired 5m, or 3 alerts, or severity critical`."""
        parts = []
        if self.after:
            parts.append(f"fired {format_duration(self.after)}")
        if self.min_alerts:
            parts.append(f"{self.min_alerts} alerts")
        if self.min_severity:
            parts.append(f"severity {self.min_severity}")
        return ", or ".join(parts)

    def as_dict(self) -> dict:
        return {"notify_after_s": self.after.total_seconds() if self.after else None,
                "notify_min_alerts": self.min_alerts, "notify_min_severity": self.min_severity}


def make_threshold(after: Any = None, min_alerts: Any = None, min_severity: Any = None,
                   where: str = "threshold") -> Threshold | None:
    """A Threshold from configured values (durations as text or seconds); None when every
    condition is off. Raises ConfigError naming `where`."""
    delay: timedelta | None
    try:
        if isinstance(after, (int, float)) and not isinstance(after, bool):
            delay = timedelta(seconds=after)
        else:
            delay = parse_duration(after) if after not in (None, "", "0", "off") else None
    except ValueError as exc:
        raise ConfigError(f"{where}: notify_after: {exc}") from None
    if delay is not None and delay.total_seconds() < 0:
        raise ConfigError(f"{where}: notify_after must not be negative")
    if min_alerts in (None, ""):
        min_alerts = None
    elif isinstance(min_alerts, bool) or not str(min_alerts).isdigit():
        raise ConfigError(f"{where}: notify_min_alerts must be a whole number, got {min_alerts!r}")
    else:
        min_alerts = int(min_alerts) or None
    severity = str(min_severity).strip().lower() if min_severity not in (None, "") else None
    if severity is not None and severity not in list(Severity)[1:]:
        raise ConfigError(f"{where}: notify_min_severity must be one of {', '.join(reversed(list(Severity)[1:]))}, "
                          f"got {min_severity!r}")
    threshold = Threshold(delay or None, min_alerts, severity)
    return threshold if threshold else None


@dataclass(frozen=True)
class ChangeRecord:
    """One outbox change of an incident as the gate sees it."""

    id: int  # order: changes are decided in this order
    change: str  # opened | reopened | escalated | acknowledged | resolved
    at: datetime  # event time
    severity: str  # the incident's at the change
    gone_out: bool = False  # sent, refused, or tried: the channel may know of it
    known_at: datetime | None = None  # for `resolved`: when incidentctl learned it (default `at`)


@dataclass(frozen=True)
class Episode:
    start: datetime
    end: datetime | None  # when the resolve that ends it was known; None while it fires
    changes: tuple[ChangeRecord, ...]

    @property
    def announced(self) -> bool:
        return any(c.gone_out for c in self.changes)


@dataclass(frozen=True)
class Verdict:
    action: str  # announce | wait | never
    reason: str
    at: datetime | None = None  # announce: when it reached the threshold (None: announced before)
    until: datetime | None = None  # wait: when `after` is reached, unless an alert releases it first


def episodes(changes: Sequence[ChangeRecord]) -> list[Episode]:
    """The changes (any order) cut into episodes, in id order. Changes before the first
    opening (history cut by retention or rebuild) form an episode that starts at the first."""
    result: list[Episode] = []
    current: list[ChangeRecord] = []

    def close() -> None:
        if current:
            last = current[-1]
            end = (last.known_at or last.at) if last.change == ChangeKind.RESOLVED else None
            result.append(Episode(current[0].at, end, tuple(current)))

    for change in sorted(changes, key=lambda c: c.id):
        if change.change in STARTS or (current and current[-1].change == ChangeKind.RESOLVED):
            close()
            current = []
        current.append(change)
    close()
    return result


def gate(threshold: Threshold | None, episode: Episode, alerts_fired: Sequence[datetime], now: datetime) -> Verdict:
    """Whether a route with `threshold` announces `episode` as of `now`. `alerts_fired`: when
    each distinct alert of the incident first fired, sorted (needed for `min_alerts` only)."""
    if not threshold:
        return Verdict(ANNOUNCE, "no threshold", episode.start)
    if episode.announced:
        return Verdict(ANNOUNCE, "already announced")
    horizon = episode.end if episode.end is not None else now
    reached: list[tuple[datetime, str]] = []
    if threshold.after and episode.start + threshold.after <= horizon:
        reached.append((episode.start + threshold.after, f"fired {format_duration(threshold.after)}"))
    if threshold.min_severity:
        wanted = severity_rank(threshold.min_severity)
        for c in episode.changes:
            if severity_rank(c.severity) >= wanted:
                reached.append((max(c.at, episode.start), f"severity {c.severity}"))
                break
    if threshold.min_alerts and len(alerts_fired) >= threshold.min_alerts:
        at = max(alerts_fired[threshold.min_alerts - 1], episode.start)
        if at <= horizon:
            reached.append((at, f"{threshold.min_alerts} alerts"))
    if reached:
        at, why = min(reached)
        return Verdict(ANNOUNCE, f"reached {why}", at)
    lasted = format_duration(horizon - episode.start)
    if episode.end is not None:
        return Verdict(NEVER, f"resolved after {lasted}, before the threshold ({threshold.describe()})")
    until = episode.start + threshold.after if threshold.after else None
    return Verdict(WAIT, f"firing {lasted}, below the threshold ({threshold.describe()})", until=until)


def verdicts(threshold: Threshold | None, changes: Sequence[ChangeRecord], alerts_fired: Sequence[datetime],
             now: datetime) -> dict[int, Verdict]:
    """{change id: the verdict on its episode} for an incident's changes."""
    result: dict[int, Verdict] = {}
    for episode in episodes(changes):
        verdict = gate(threshold, episode, alerts_fired, now)
        result.update((c.id, verdict) for c in episode.changes)
    return result


def threshold_settings(values: Mapping[str, Any], where: str) -> Threshold | None:
    """The threshold of a route table or the settings (keys of KEYS)."""
    return make_threshold(values.get("notify_after"), values.get("notify_min_alerts"),
                          values.get("notify_min_severity"), where)
