"""`incidentctl noise`: which alert rules page without need, and what would have helped, backtested.

Figures per rule (alertname) over the incidents opened in [since, until): a few queries over
the incidents, their outbox rows and people's events (docs/REPORTS.md, "Noise"). A rule is
noisy when it paged at least `min_pages` times and people acted on fewer than half of its
incidents. Each noisy rule gets suggested fixes with their backtested effect (`fixes`): the
notify-level ones on its stored outbox changes, coarser grouping by replaying its raw rows,
for the `replay` rules where merging looks most promising (a replay is the one expensive step).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from sqlalchemy import Connection, Engine, func, select

from incidentctl.config import Settings
from incidentctl.db.engine import database_errors
from incidentctl.db.schema import grafana_alerts, incident_events, incidents, notifications
from incidentctl.history.announce import PEOPLE_EVENTS, IncidentHistory, NotifyRules
from incidentctl.history.export import PAGE_SIZE
from incidentctl.history.fixes import (
    SHARE,
    Suggestion,
    grouping_estimate,
    grouping_fix,
    notify_level_fixes,
    rule_row_ids,
)
from incidentctl.history.recurrence import hour_of_week, periodic_window
from incidentctl.history.stats import median
from incidentctl.incidents.model import SYSTEM_ACTOR, ChangeKind, OutboxState, Resolution, Rules, TimelineKind
from incidentctl.notify import outbox
from incidentctl.notify.routes import load_routes
from incidentctl.notify.silences import silence_labels
from incidentctl.notify.thresholds import STARTS, ChangeRecord, episodes

SELF_RESOLVED = timedelta(minutes=5)
MIN_PAGES = 5
REPLAY = 1  # rules whose coarser grouping is replayed
REPLAY_ROWS = 10_000  # … when their raw rows are no more than this
NO_ROUTE = "(not sent)"  # a page still pending has no route yet


@dataclass
class RuleNoise:
    alertname: str
    incidents: int = 0
    pages: int = 0
    unacted_pages: int = 0  # pages of incidents nobody acted on
    pages_by_route: dict[str, int] = field(default_factory=dict)
    acted_on: int = 0
    self_resolved: int = 0
    flaps: int = 0
    median_firing_s: float | None = None
    hour_of_week: list[int] = field(default_factory=lambda: [0] * 168)
    window: str | None = None  # a periodic window holding most pages
    noisy: bool = False
    suggestions: list[Suggestion] = field(default_factory=list)


@dataclass
class NoiseReport:
    since: datetime
    until: datetime
    self_resolved_within: timedelta
    rules: list[RuleNoise]
    pages_by_route: dict[str, int]
    replayed: list[str]  # rules whose grouping was replayed
    replayed_rows: int
    note: str | None = None


@dataclass
class _Incident:
    id: int
    fingerprint: str
    alertname: str
    opened_at: datetime
    resolved_at: datetime | None
    resolution: str | None
    reopen_count: int
    changes: list[ChangeRecord] = field(default_factory=list)  # its outbox rows, none gone out yet
    pages: list[tuple[datetime, str]] = field(default_factory=list)  # (time, route) of its pages
    silenced: set[int] = field(default_factory=set)  # rows a stored silence suppressed


def build_noise(engine: Engine, settings: Settings, *, since: datetime, until: datetime,
                within: timedelta = SELF_RESOLVED, min_pages: int = MIN_PAGES, replay: int = REPLAY,
                replay_rows: int = REPLAY_ROWS) -> NoiseReport:
    """The noise report over incidents opened in [since, until). Reads only."""
    routes = tuple(load_routes(settings))
    with database_errors(engine), engine.execution_options(sqlite_begin="DEFERRED").connect() as conn:
        found = _incidents(conn, since, until)
        people, people_reopens = _people(conn, since, found)
        _attach_changes(conn, found, since, until)
        longest = max([within, *(r.threshold.after for r in routes if r.threshold and r.threshold.after)])
        known = _resolve_known(conn, found, longest)
    by_rule: dict[str, list[_Incident]] = {}
    for incident in found.values():
        by_rule.setdefault(incident.alertname, []).append(incident)
    rules = [_figures(name, group, people, people_reopens, within) for name, group in by_rule.items()]
    for rule in rules:
        rule.noisy = rule.pages >= min_pages and rule.acted_on * 2 < rule.incidents
    rules.sort(key=lambda r: (not r.noisy, -r.unacted_pages, -r.pages, r.alertname))
    by_route: Counter = Counter()
    for rule in rules:
        by_route.update(rule.pages_by_route)

    noisy = [r for r in rules if r.noisy]
    baseline = NotifyRules(routes)
    with_alerts = any(r.threshold and r.threshold.min_alerts for r in routes)
    labels, groups = _labels(engine, [i.id for r in noisy for i in by_rule[r.alertname]],
                             common=any(r.match for r in routes))
    fired = outbox.change_histories(engine, [i.id for r in noisy for i in by_rule[r.alertname]],
                                    with_alerts=True) if with_alerts else {}
    for rule in noisy:
        histories = [_history(i, labels.get(i.id, {}), known, fired) for i in by_rule[rule.alertname]]
        acted = {h.key for h, i in zip(histories, by_rule[rule.alertname], strict=True) if i.id in people}
        rule.suggestions.extend(notify_level_fixes(rule.alertname, rule.pages, rule.window, histories, acted,
                                                   baseline, until, within, timedelta(seconds=settings.reopen_window)))

    replayed: list[str] = []
    rows, note = 0, None
    if "alertname" not in settings.group_by:
        note = "group_by lacks alertname: rules share incidents, so coarser grouping is not backtested per rule"
    else:
        replayed, rows = _grouping_fixes(engine, settings, noisy, by_rule, groups, people, baseline, since, until,
                                         replay, replay_rows)
    return NoiseReport(since, until, within, rules, dict(sorted(by_route.items())), replayed, rows, note)


def _grouping_fixes(engine: Engine, settings: Settings, noisy: list[RuleNoise], by_rule: dict[str, list[_Incident]],
                    groups: dict[int, dict], people: set[int], baseline: NotifyRules, since: datetime,
                    until: datetime, replay: int, replay_rows: int) -> tuple[list[str], int]:
    """Adds a coarser-grouping fix to the noisy rules whose incidents would merge: replayed for the
    `replay` most promising within `replay_rows` raw rows, else estimated. Returns the rules
    replayed and the rows read."""
    group_by = tuple(settings.group_by)
    window = timedelta(seconds=settings.reopen_window)
    candidates = []
    for rule in noisy:
        label, merged = _coarser(by_rule[rule.alertname], groups, group_by, window)
        if label is not None and merged >= max(2, SHARE * rule.incidents):
            candidates.append((-merged, rule.alertname, label))
    rules = {r.alertname: r for r in noisy}
    replayed, rows = [], 0
    for rank, (minus_merged, name, label) in enumerate(sorted(candidates)):
        rule, coarse = rules[name], Rules(tuple(other for other in group_by if other != label), window)
        why = f"not replayed: only the {replay} most promising are (--replay)"
        if rank < replay:
            ids = rule_row_ids(engine, name, since, until, limit=replay_rows)
            if len(ids) <= replay_rows:
                acted = {(i.fingerprint, i.opened_at) for i in by_rule[name] if i.id in people}
                suggestion, n = grouping_fix(engine, settings, name, coarse, baseline, since, until, ids, acted)
                rows += n
                replayed.append(name)
                if suggestion is not None:
                    rule.suggestions.append(suggestion)
                continue
            why = f"not replayed: over --replay-rows {replay_rows:,} raw rows"
        rule.suggestions.append(grouping_estimate(name, rule.incidents, coarse, -minus_merged, why, since))
    return replayed, rows


def _incidents(conn: Connection, since: datetime, until: datetime) -> dict[int, _Incident]:
    i = incidents.c
    query = (select(i.id, i.fingerprint, i.alertname, i.opened_at, i.resolved_at, i.resolution, i.reopen_count)
             .where(i.opened_at >= since, i.opened_at < until).order_by(i.id))
    return {r.id: _Incident(r.id, r.fingerprint, r.alertname or "", r.opened_at, r.resolved_at, r.resolution,
                            r.reopen_count or 0) for r in conn.execute(query)}


def _people(conn: Connection, since: datetime, found: dict[int, _Incident]) -> tuple[set[int], Counter]:
    """The incidents people acted on (acknowledged, wrote a note, reopened, or resolved: its
    resolution is `manual`), and the reopens people made (not flaps), from `since`. A resolve
    is read from the incident, not the events: alerts resolve incidents too, and their events
    are many."""
    e = incident_events.c
    query = (select(e.incident_id, e.kind, func.count())
             .where(e.kind.in_(PEOPLE_EVENTS), e.at >= since, e.actor != SYSTEM_ACTOR)
             .group_by(e.incident_id, e.kind))
    acted = {i.id for i in found.values() if i.resolution == Resolution.MANUAL}
    reopens: Counter = Counter()
    for incident_id, kind, n in conn.execute(query):
        acted.add(incident_id)
        if kind == TimelineKind.REOPENED:
            reopens[incident_id] += n
    return acted, reopens


def _attach_changes(conn: Connection, found: dict[int, _Incident], since: datetime, until: datetime) -> None:
    """Each incident's outbox rows as the gate sees them, its pages, and what silences took."""
    n, i = notifications.c, incidents.c
    query = (select(n.id, n.incident_id, n.change, n.created_at, n.severity, n.state, n.route, n.silence_id,
                    n.last_error.startswith(outbox.HELD_PREFIX, autoescape=True).label("held"))
             .select_from(notifications.join(incidents, i.id == n.incident_id))
             .where(i.opened_at >= since, i.opened_at < until, n.change != ChangeKind.NOTE).order_by(n.id))
    for nid, iid, change, at, severity, state, route, silence_id, held in conn.execute(query):
        incident = found.get(iid)
        if incident is None:
            continue
        incident.changes.append(ChangeRecord(nid, change, at, severity))
        if silence_id is not None:
            incident.silenced.add(nid)
        # A page: an opening or reopening that reached Slack or will (sent, refused, or pending
        # and not held by a threshold).
        if change in STARTS and (state in (OutboxState.SENT, OutboxState.FAILED)
                                 or (state == OutboxState.PENDING and not held)):
            incident.pages.append((at, route or NO_ROUTE))


def _resolve_known(conn: Connection, found: dict[int, _Incident], shorter_than: timedelta
                   ) -> dict[tuple[int, datetime], datetime]:
    """As outbox.resolve_known_at, for the resolves that end an episode shorter than
    `shorter_than` by its event times: only there can a late resolve change a verdict (a longer
    episode reached any duration threshold tried). A resolve change's time is its event's, so
    the events are found by their (kind, at) index, a point each, and the webhooks by id."""
    wanted: dict[datetime, set[int]] = {}
    for incident in found.values():
        for episode in episodes(incident.changes):
            if episode.end is not None and episode.end - episode.start < shorter_than:
                wanted.setdefault(episode.end, set()).add(incident.id)
    e, g = incident_events.c, grafana_alerts.c
    raw: dict[tuple[int, datetime], int] = {}
    times = sorted(wanted)
    for start in range(0, len(times), PAGE_SIZE):
        query = select(e.incident_id, e.at, e.raw_alert_id).where(e.kind == TimelineKind.RESOLVED,
                                                                   e.at.in_(times[start:start + PAGE_SIZE]))
        for r in conn.execute(query):
            if r.incident_id in wanted.get(r.at, ()) and r.raw_alert_id is not None:
                raw[(r.incident_id, r.at)] = r.raw_alert_id
    ids = sorted(set(raw.values()))
    received: dict[int, datetime] = {}
    for start in range(0, len(ids), PAGE_SIZE):
        received.update(conn.execute(select(g.id, g.received_at).where(g.id.in_(ids[start:start + PAGE_SIZE]))).all())
    return {key: max(key[1], received.get(raw_id, key[1])) for key, raw_id in raw.items()}


def _figures(name: str, group: list[_Incident], people: set[int], people_reopens: Counter,
             within: timedelta) -> RuleNoise:
    rule = RuleNoise(name, incidents=len(group))
    routes: Counter = Counter()
    page_times: list[datetime] = []
    for incident in group:
        pages = incident.pages
        rule.pages += len(pages)
        acted = incident.id in people
        rule.acted_on += acted
        rule.unacted_pages += 0 if acted else len(pages)
        routes.update(route for _, route in pages)
        page_times.extend(at for at, _ in pages)
        rule.flaps += max(incident.reopen_count - people_reopens[incident.id], 0)
        if (incident.resolution == "auto" and not acted and incident.resolved_at is not None
                and incident.resolved_at - incident.opened_at <= within):
            rule.self_resolved += 1
    durations = sorted((i.resolved_at - i.opened_at).total_seconds() for i in group if i.resolved_at is not None)
    rule.median_firing_s = median(durations)
    rule.pages_by_route = dict(sorted(routes.items()))
    rule.hour_of_week = hour_of_week(page_times)
    window = periodic_window(page_times)
    rule.window = str(window) if window else None
    return rule


def _labels(engine: Engine, ids: Sequence[int], *, common: bool) -> tuple[dict[int, dict], dict[int, dict]]:
    """Per incident: its group_by values and, with `common` (a route matches labels), the
    labels routes and silences match (silences.silence_labels)."""
    i = incidents.c
    labels, groups = {}, {}
    columns = [i.id, i.group_labels] + ([i.common_labels, i.alertname, i.cluster, i.namespace, i.service]
                                        if common else [])
    with database_errors(engine), engine.execution_options(sqlite_begin="DEFERRED").connect() as conn:
        for start in range(0, len(ids), PAGE_SIZE):
            for row in conn.execute(select(*columns).where(i.id.in_(list(ids[start:start + PAGE_SIZE])))):
                groups[row.id] = row.group_labels or {}
                labels[row.id] = silence_labels(row._mapping) if common else groups[row.id]
    return labels, groups


def _history(incident: _Incident, labels: dict, known: dict, fired: dict) -> IncidentHistory:
    """The incident's stored changes as a backtest replays them: none gone out yet."""
    changes = tuple(replace(c, known_at=known[(incident.id, c.at)])
                    if c.change == ChangeKind.RESOLVED and (incident.id, c.at) in known else c
                    for c in incident.changes)
    silenced = frozenset(incident.silenced)
    alerts = tuple(fired[incident.id][1]) if incident.id in fired else ()
    return IncidentHistory((incident.fingerprint, incident.opened_at), incident.alertname, labels, changes,
                           alerts, silenced)


def _coarser(group: list[_Incident], keys: dict[int, dict], group_by: tuple[str, ...],
             reopen_window: timedelta) -> tuple[str | None, int]:
    """The group_by label whose removal would merge most of the rule's incidents, and an
    estimate of how many: incidents opening while another of the coarser key is open (or
    resolved less than the reopen window before). The replay then measures it."""
    labels = [name for name in group_by if name not in ("alertname", "fingerprint")]
    if not labels or len(group) < 2:
        return None, 0
    best: tuple[int, str] | None = None
    ordered = sorted(group, key=lambda x: (x.opened_at, x.id))
    for label in labels:
        ends: dict[tuple, datetime | None] = {}  # per coarser key: when its merged incident ended (None: open)
        merged = 0
        for incident in ordered:
            key = tuple(sorted((k, v) for k, v in keys[incident.id].items() if k != label))
            if key in ends:
                end = ends[key]
                if end is None or incident.opened_at <= end + reopen_window:
                    merged += 1
                    ends[key] = None if end is None or incident.resolved_at is None else max(end, incident.resolved_at)
                    continue
            ends[key] = incident.resolved_at
        if best is None or (merged, label) > best:
            best = (merged, label)
    return (best[1], best[0]) if best and best[0] else (None, 0)


def noise_dict(report: NoiseReport) -> dict:
    """JSON-ready, keys stable."""
    return {
        "since": report.since, "until": report.until,
        "self_resolved_within_s": report.self_resolved_within.total_seconds(),
        "noisy": sum(1 for r in report.rules if r.noisy),
        "rules": [{
            "alertname": r.alertname, "noisy": r.noisy, "incidents": r.incidents, "pages": r.pages,
            "unacted_pages": r.unacted_pages, "pages_by_route": r.pages_by_route, "acted_on": r.acted_on,
            "self_resolved": r.self_resolved, "flaps": r.flaps, "median_firing_s": r.median_firing_s,
            "hour_of_week": r.hour_of_week, "periodic_window": r.window,
            "suggestions": [vars(s) for s in r.suggestions],
        } for r in report.rules],
        "pages_by_route": report.pages_by_route,
        "backtest": {"replayed_rules": report.replayed, "rows": report.replayed_rows, "note": report.note},
    }
