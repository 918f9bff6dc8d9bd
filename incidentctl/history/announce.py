"""What Slack would have heard of an incident under some notify rules: the backtest of thresholds,
keep-firing windows and recurring silences.

An incident's history is its outbox changes in order (`thresholds.ChangeRecord`), from the
database (`noise`) or from a replay's decisions (`simulate`, through `Ledger`), and `heard`
turns it into what would have been announced, through the gate `notify` itself applies
(`thresholds.verdicts`), so a backtest and the live behaviour cannot drift apart. Silences and
routes match the incident's labels with the change's severity, as `notify` does.

A keep-firing window W models `keep_firing_for: W` in the alert rule: a resolve followed by a
reopen within W never happened (both changes go), and a resolve that stands comes W later.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, select

from incidentctl.counting import Counts
from incidentctl.db.schema import incident_events, incidents
from incidentctl.history.recurrence import RecurringWindow
from incidentctl.history.stats import median
from incidentctl.incidents.model import SYSTEM_ACTOR, Action, ChangeKind, Decision, IncidentState
from incidentctl.incidents.parsing import AlertEvent
from incidentctl.notify.routes import DEFAULT_ROUTE, Route, route_for
from incidentctl.notify.silences import silence_for, silence_labels
from incidentctl.notify.thresholds import ANNOUNCE, STARTS, WAIT, ChangeRecord, Threshold, verdicts

PEOPLE_EVENTS = ("acknowledged", "note", "reopened")  # by a person when the actor is not incidentctl
Key = tuple[str, datetime]  # an incident as both a replay and the database know it: (fingerprint, opened_at)


@dataclass(frozen=True)
class NotifyRules:
    """How changes are announced: the routes (each with its threshold), and what is tried."""

    routes: tuple[Route, ...] = ()  # none: everything goes to one default route without a threshold
    threshold: Threshold | None = None  # a rule's own threshold: for every change, instead of the route's
    keep_firing: timedelta | None = None
    silence: RecurringWindow | None = None

    def as_dict(self) -> dict:
        return {"threshold": self.threshold.as_dict() if self.threshold else None,
                "keep_firing_s": self.keep_firing.total_seconds() if self.keep_firing else None,
                "silence_window": str(self.silence) if self.silence else None,
                "route_thresholds": {r.name: r.threshold.describe() for r in self.routes if r.threshold}}


@dataclass(frozen=True)
class IncidentHistory:
    key: Key
    alertname: str
    labels: Mapping[str, Any]  # silences.silence_labels of the incident
    changes: tuple[ChangeRecord, ...]
    alerts_fired: tuple[datetime, ...] = ()  # when each distinct alert first fired, sorted
    silenced: frozenset[int] = frozenset()  # changes a stored silence suppressed


@dataclass
class Heard(Counts):
    """What was announced, summed over incidents."""

    incidents: int = 0
    pages: int = 0  # `opened` and `reopened` changes announced
    changes: int = 0  # every change announced
    below_threshold: int = 0  # changes of episodes that ended below the threshold
    silenced: int = 0
    kept_firing: int = 0  # changes a keep-firing window took away (a resolve and its reopen)
    held: int = 0  # still held at the end (below a threshold, or matching no route)
    first_page_at: datetime | None = None  # one incident: its first announcement (None: never)


def keep_firing(changes: Sequence[ChangeRecord], window: timedelta) -> tuple[list[ChangeRecord], int]:
    """The changes as the alert rule with `keep_firing_for: window` would have made them, and how
    many it took away."""
    result: list[ChangeRecord] = []
    resolve: ChangeRecord | None = None
    dropped = 0

    def later(r: ChangeRecord) -> ChangeRecord:
        return replace(r, at=r.at + window, known_at=(r.known_at or r.at) + window)

    for c in sorted(changes, key=lambda c: c.id):
        if c.change == ChangeKind.REOPENED and resolve is not None and c.at - resolve.at <= window:
            resolve, dropped = None, dropped + 2
            continue
        if resolve is not None:
            result.append(later(resolve))
            resolve = None
        if c.change == ChangeKind.RESOLVED:
            resolve = c
        else:
            result.append(c)
    if resolve is not None:
        result.append(later(resolve))
    return result, dropped


def heard(history: IncidentHistory, rules: NotifyRules, now: datetime) -> Heard:
    """What Slack would have heard of one incident under `rules`, as of `now`."""
    changes: Sequence[ChangeRecord] = history.changes
    out = Heard(incidents=1)
    if rules.keep_firing:
        changes, out.kept_firing = keep_firing(changes, rules.keep_firing)
    routes = rules.routes or (Route(DEFAULT_ROUTE, ""),)
    decided: dict[Threshold | None, dict[int, Any]] = {}
    routed: dict[str, Route | None] = {}  # by severity: the labels are the incident's
    for c in changes:
        if c.id in history.silenced or (rules.silence is not None and rules.silence.contains(c.at)):
            out.silenced += 1
            continue
        if c.severity not in routed:
            routed[c.severity] = route_for(routes, c.severity, {**history.labels, "severity": c.severity})
        route = routed[c.severity]
        if route is None:
            out.held += 1
            continue
        threshold = rules.threshold if rules.threshold is not None else route.threshold
        if threshold not in decided:
            decided[threshold] = verdicts(threshold, changes, history.alerts_fired, now)
        verdict = decided[threshold][c.id]
        if verdict.action == ANNOUNCE:
            out.changes += 1
            out.pages += c.change in STARTS
            at = max(c.at, verdict.at) if verdict.at is not None else c.at
            out.first_page_at = at if out.first_page_at is None else min(out.first_page_at, at)
        elif verdict.action == WAIT:
            out.held += 1
        else:
            out.below_threshold += 1
    return out


@dataclass
class _Open:
    key: Key
    state: IncidentState
    changes: list[ChangeRecord] = field(default_factory=list)
    fired: dict[str, datetime] = field(default_factory=dict)


class Ledger:
    """Collects, during a replay, each incident's changes from the decisions, and folds what
    `rules` would have announced into totals once the incident is over (another incident of its
    fingerprint opens, or the replay ends). Memory holds the open incidents only."""

    def __init__(self, rules: NotifyRules, *, silences: Sequence[Mapping] = (), acted_on: Collection[Key] = ()):
        self.rules = rules
        self.silences = list(silences)
        self.acted_on = acted_on
        self.total = Heard()
        self.by_alertname: dict[str, Counter] = {}
        self.first_pages: dict[Key, datetime | None] = {}  # of the incidents people acted on
        self._open: dict[str, _Open] = {}
        self._seq = 0

    def record(self, fingerprint: str, event: AlertEvent, decision: Decision) -> None:
        state = decision.state
        if not decision.changed or state is None:
            return
        current = self._open.get(fingerprint)
        if decision.action == Action.OPEN or current is None:
            if current is not None:
                self._close(current, state.opened_at)
            current = self._open[fingerprint] = _Open((fingerprint, state.opened_at), state)
        current.state = state
        if decision.action == Action.REOPEN:
            self._count(state.alertname)["flaps"] += 1
        for entry in decision.timeline:
            series_fp = entry.alert_fingerprint  # an alert_firing entry names its series
            if entry.kind == "alert_firing" and series_fp is not None and series_fp not in current.fired:
                current.fired[series_fp] = entry.at
        for m in decision.messages:
            self._seq += 1
            known = max(m.at, event.received_at) if m.change == ChangeKind.RESOLVED else None
            current.changes.append(ChangeRecord(self._seq, m.change, m.at, m.severity, False, known))

    def finish(self, now: datetime) -> None:
        for current in list(self._open.values()):
            self._close(current, now)
        self._open.clear()

    def _count(self, alertname: str) -> Counter:
        return self.by_alertname.setdefault(alertname, Counter())

    def _close(self, current: _Open, now: datetime) -> None:
        s = current.state
        labels = silence_labels({"common_labels": s.common_labels, "group_labels": s.group_labels,
                                  "alertname": s.alertname, "cluster": s.cluster, "namespace": s.namespace,
                                  "service": s.service})
        silenced = frozenset(c.id for c in current.changes
                             if self.silences and silence_for(self.silences, {**labels, "severity": c.severity}, c.at))
        history = IncidentHistory(current.key, s.alertname, labels, tuple(current.changes),
                                  tuple(sorted(current.fired.values())), silenced)
        result = heard(history, self.rules, now)
        self.total.add(result)
        counts = self._count(s.alertname)
        counts["incidents"] += 1
        counts["pages"] += result.pages
        if current.key in self.acted_on:
            self.first_pages[current.key] = result.first_page_at


def acted_on(conn: Connection, since: datetime | None) -> dict[int, Key]:
    """{incident id: (fingerprint, opened_at)} of the incidents a person acknowledged, reopened,
    wrote a note on or resolved (its resolution is `manual`), from `since` — as `noise` counts
    them. People act after an incident opens, so the events are read from `since` on their
    (kind, at) index."""
    e, i = incident_events.c, incidents.c
    by_events = (select(i.id, i.fingerprint, i.opened_at).distinct()
                 .select_from(incident_events.join(incidents, i.id == e.incident_id))
                 .where(e.kind.in_(PEOPLE_EVENTS), e.actor != SYSTEM_ACTOR))
    manual = select(i.id, i.fingerprint, i.opened_at).where(i.resolution == "manual")
    if since is not None:
        by_events, manual = by_events.where(e.at >= since), manual.where(i.resolved_at >= since)
    return {r.id: (r.fingerprint, r.opened_at) for query in (by_events, manual) for r in conn.execute(query)}


def delays(before: Mapping[Key, datetime | None], after: Mapping[Key, datetime | None]) -> dict:
    """How much later the incidents people acted on were first announced under the proposed
    rules: {incidents, delayed, median_delay_s, never_announced} (never: announced before, not after)."""
    pairs = [(first, after.get(k)) for k in sorted(before) if (first := before[k]) is not None]
    never = sum(1 for _, b in pairs if b is None)
    waits = sorted((b - a).total_seconds() for a, b in pairs if b is not None)
    return {"incidents": len(pairs), "delayed": sum(1 for w in waits if w > 0),
            "median_delay_s": median(waits), "never_announced": never}
