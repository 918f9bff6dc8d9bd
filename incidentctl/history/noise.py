"""`incidentctl noise`: which alert rules page without need, and what would have helped, backtested.

Figures per rule (alertname) over the incidents opened in [since, until): SQL over the
incidents, their outbox rows and people's events (docs/REPORTS.md, "Noise"). A rule is noisy when
it paged at least `min_pages` times and people acted on fewer than half of its incidents.

Each noisy rule gets suggested fixes with their backtested effect:
- the notify-level ones — a minimum firing duration before notifying, a keep-firing window, a
  recurring silence — by `announce.heard` over the rule's stored outbox changes, which are the
  decisions `process` made, through the gate `notify` applies: the same code as `simulate`;
- coarser grouping by replaying the rule's raw rows through `simulate` (the grouping decision
  itself) under the coarser `group_by`. Only the rows that changed one of its incidents are
  replayed (named by `incident_events.raw_alert_id`; a repeat changes no decision, whatever the
  grouping), for the `replay` rules where merging looks most promising: a replay is the one
  expensive step.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Iterator, Sequence

from sqlalchemy import Connection, Engine, func, select

from incidentctl.config import Settings
from incidentctl.db.engine import database_errors
from incidentctl.db.schema import grafana_alerts, incident_events, incidents, notifications
from incidentctl.durations import format_duration
from incidentctl.history.announce import PEOPLE_EVENTS, Heard, IncidentHistory, NotifyRules, delays, heard
from incidentctl.history.export import PAGE_SIZE, RECORD_KEYS
from incidentctl.history.recurrence import hour_of_week, parse_window, periodic_window
from incidentctl.history.simulate import Rules, simulate
from incidentctl.history.stats import median, percentile
from incidentctl.incidents.decide import SYSTEM_ACTOR
from incidentctl.notify import outbox
from incidentctl.notify.routes import load_routes
from incidentctl.notify.silences import incident_labels
from incidentctl.notify.thresholds import STARTS, ChangeRecord, Threshold, episodes

SELF_RESOLVED = timedelta(minutes=5)
MIN_PAGES = 5
REPLAY = 1  # rules whose coarser grouping is replayed
REPLAY_ROWS = 10_000  # … when their raw rows are no more than this
SHARE = 0.2  # a pattern worth a fix: at least this share of a rule's incidents or pages
NICE = [timedelta(minutes=m) for m in (1, 2, 3, 5, 10, 15, 20, 30, 45, 60, 90, 120, 240)]
NO_ROUTE = "(not sent)"  # a page still pending has no route yet


@dataclass
class Suggestion:
    kind: str  # notify_after | keep_firing | silence | group_by
    change: str  # what to change, in a few words
    how: str  # where to change it
    before: dict
    after: dict
    acted_on: dict  # the incidents people acted on: delays.__doc__
    summary: str
    backtested: bool = True  # False: an estimate from the stored incidents (grouping not replayed)


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
        acted = {h.key for h, i in zip(histories, by_rule[rule.alertname]) if i.id in people}
        rule.suggestions.extend(_notify_level(rule, histories, acted, baseline, until, within, settings))

    replayed, rows, note = [], 0, None
    group_by = tuple(settings.group_by)
    if "alertname" not in group_by:
        note = "group_by lacks alertname: rules share incidents, so coarser grouping is not backtested per rule"
    else:
        candidates = []
        for rule in noisy:
            label, merged = _coarser(by_rule[rule.alertname], groups, group_by,
                                     timedelta(seconds=settings.reopen_window))
            if label is not None and merged >= max(2, SHARE * rule.incidents):
                candidates.append((-merged, rule.alertname, rule, label))
        coarse_rules = {label: Rules(tuple(l for l in group_by if l != label), timedelta(seconds=settings.reopen_window))
                        for _, _, _, label in candidates}
        for rank, (minus_merged, _, rule, label) in enumerate(sorted(candidates)):
            why = f"not replayed: only the {replay} most promising are (--replay)"
            if rank < replay:
                ids = rule_row_ids(engine, rule.alertname, since, until, limit=replay_rows)
                if len(ids) <= replay_rows:
                    people_keys = {(i.fingerprint, i.opened_at) for i in by_rule[rule.alertname] if i.id in people}
                    suggestion, n = _group_by(engine, settings, rule, coarse_rules[label], baseline, since, until,
                                              ids, people_keys)
                    rows += n
                    replayed.append(rule.alertname)
                    if suggestion is not None:
                        rule.suggestions.append(suggestion)
                    continue
                why = f"not replayed: over --replay-rows {replay_rows:,} raw rows"
            rule.suggestions.append(_group_by_estimate(rule, coarse_rules[label], -minus_merged, why, since))
    return NoiseReport(since, until, within, rules, dict(sorted(by_route.items())), replayed, rows, note)


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
    acted = {i.id for i in found.values() if i.resolution == "manual"}
    reopens: Counter = Counter()
    for incident_id, kind, n in conn.execute(query):
        acted.add(incident_id)
        if kind == "reopened":
            reopens[incident_id] += n
    return acted, reopens


def _attach_changes(conn: Connection, found: dict[int, _Incident], since: datetime, until: datetime) -> None:
    """Each incident's outbox rows as the gate sees them, its pages, and what silences took."""
    n, i = notifications.c, incidents.c
    query = (select(n.id, n.incident_id, n.change, n.created_at, n.severity, n.state, n.route, n.silence_id,
                    n.last_error.startswith(outbox.HELD_PREFIX, autoescape=True).label("held"))
             .select_from(notifications.join(incidents, i.id == n.incident_id))
             .where(i.opened_at >= since, i.opened_at < until).order_by(n.id))
    for nid, iid, change, at, severity, state, route, silence_id, held in conn.execute(query):
        incident = found.get(iid)
        if incident is None:
            continue
        incident.changes.append(ChangeRecord(nid, change, at, severity))
        if silence_id is not None:
            incident.silenced.add(nid)
        # A page: an opening or reopening that reached Slack or will (sent, refused, or pending
        # and not held by a threshold).
        if change in STARTS and (state in (outbox.SENT, outbox.FAILED) or (state == outbox.PENDING and not held)):
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
        query = select(e.incident_id, e.at, e.raw_alert_id).where(e.kind == "resolved",
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
    page_times = []
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
    labels routes and silences match (silences.incident_labels)."""
    i = incidents.c
    labels, groups = {}, {}
    columns = [i.id, i.group_labels] + ([i.common_labels, i.alertname, i.cluster, i.namespace, i.service]
                                        if common else [])
    with database_errors(engine), engine.execution_options(sqlite_begin="DEFERRED").connect() as conn:
        for start in range(0, len(ids), PAGE_SIZE):
            for row in conn.execute(select(*columns).where(i.id.in_(list(ids[start:start + PAGE_SIZE])))):
                groups[row.id] = row.group_labels or {}
                labels[row.id] = incident_labels(row._mapping) if common else groups[row.id]
    return labels, groups


def _history(incident: _Incident, labels: dict, known: dict, fired: dict) -> IncidentHistory:
    """The incident's stored changes as a backtest replays them: none gone out yet."""
    changes = tuple(replace(c, known_at=known[(incident.id, c.at)])
                    if c.change == "resolved" and (incident.id, c.at) in known else c for c in incident.changes)
    silenced = frozenset(incident.silenced)
    alerts = tuple(fired[incident.id][1]) if incident.id in fired else ()
    return IncidentHistory((incident.fingerprint, incident.opened_at), incident.alertname, labels, changes,
                           alerts, silenced)


def _sum(histories: Sequence[IncidentHistory], rules: NotifyRules, now: datetime) -> tuple[Heard, dict]:
    total, first = Heard(), {}
    for h in histories:
        result = heard(h, rules, now)
        total.add(result)
        first[h.key] = result.first_page_at
    return total, first


def nice(delta: timedelta, cap: timedelta | None = None) -> timedelta:
    """The smallest round duration at least `delta` (capped)."""
    value = next((n for n in NICE if n >= delta), NICE[-1])
    return min(value, cap) if cap is not None else value


def _notify_level(rule: RuleNoise, histories: Sequence[IncidentHistory], acted: set, baseline: NotifyRules,
                  now: datetime, within: timedelta, settings: Settings) -> list[Suggestion]:
    before, first_before = _sum(histories, baseline, now)
    people_before = {k: v for k, v in first_before.items() if k in acted}
    tries: list[tuple[str, str, str, NotifyRules]] = []
    name = rule.alertname
    lasted = [e.end - e.start for h in histories for e in episodes(h.changes) if e.end is not None]
    short = [d for d in lasted if d <= within]
    ended = len(lasted)
    if len(short) >= 2 and len(short) >= SHARE * max(ended, 1):
        after = nice(percentile(sorted(short), 80), within)
        text = format_duration(after)
        tries.append(("notify_after", f"notify after {text}",
                      f'a route matching alertname={name} with notify_after = "{text}" (or `for: {text}` in the '
                      f'alert rule)', NotifyRules(baseline.routes, Threshold(after=after))))
    gaps = _flap_gaps(histories)
    window = timedelta(seconds=settings.reopen_window)
    if len(gaps) >= 2 and len(gaps) >= SHARE * max(rule.pages, 1):
        keep = nice(percentile(sorted(gaps), 80), window)
        text = format_duration(keep)
        tries.append(("keep_firing", f"keep firing {text}", f"`keep_firing_for: {text}` in the alert rule",
                      NotifyRules(baseline.routes, keep_firing=keep)))
    if rule.window:
        recurring = parse_window(rule.window)
        tries.append(("silence", f"silence {rule.window}",
                      f"a recurring silence alertname={name}, {rule.window} (e.g. a maintenance window in Grafana)",
                      NotifyRules(baseline.routes, silence=recurring)))
    suggestions = []
    for kind, change, how, rules in tries:
        after, first_after = _sum(histories, rules, now)
        if after.pages >= before.pages:
            continue
        people = delays(people_before, first_after)
        suggestions.append(Suggestion(kind, change, how, _figures_of(before), _figures_of(after), people,
                                      _summary(kind, before, after, people)))
    return suggestions


def _figures_of(h: Heard, **extra) -> dict:
    return {**h.as_dict(), **extra}


def _flap_gaps(histories: Sequence[IncidentHistory]) -> list[timedelta]:
    """Resolve → reopen gaps of the rule's incidents (each a flap)."""
    gaps = []
    for h in histories:
        ordered = sorted(h.changes, key=lambda c: c.id)
        for a, b in zip(ordered, ordered[1:]):
            if a.change == "resolved" and b.change == "reopened":
                gaps.append(max(b.at - a.at, timedelta(0)))
    return gaps


def _summary(kind: str, before: Heard, after: Heard, people: dict) -> str:
    fewer = before.pages - after.pages
    text = f"would have sent {fewer} fewer pages ({before.pages} → {after.pages})"
    if kind == "keep_firing":
        # It takes away flaps only: nothing people acted on is announced later.
        return text + f": {after.kept_firing // 2} flaps avoided, {before.changes - after.changes} fewer messages"
    if people["incidents"]:
        n = people["incidents"]
        if kind == "silence":
            text += f"; {people['never_announced']} of the {n} incidents a person acted on would have been silenced"
        else:
            delay = people["median_delay_s"]
            later = format_duration(timedelta(seconds=delay)) if delay is not None else "-"
            text += (f"; the {n} incident{'s' if n != 1 else ''} a person acted on would have been announced a "
                     f"median {later} later")
            if people["never_announced"]:
                text += f", {people['never_announced']} never"
    return text


def _coarser(group: list[_Incident], keys: dict[int, dict], group_by: tuple[str, ...],
             reopen_window: timedelta) -> tuple[str | None, int]:
    """The group_by label whose removal would merge most of the rule's incidents, and an
    estimate of how many: incidents opening while another of the coarser key is open (or
    resolved less than the reopen window before). The replay then measures it."""
    labels = [l for l in group_by if l not in ("alertname", "fingerprint")]
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


def rule_row_ids(engine: Engine, alertname: str, since: datetime, until: datetime,
                 limit: int | None = None) -> list[int]:
    """The raw rows that changed an incident of the rule alive in [since, until) — every row a
    timeline entry of its incidents names — by id; at most `limit` (+1, to tell it is more)."""
    e, i = incident_events.c, incidents.c
    named = (select(e.raw_alert_id).distinct()
             .select_from(incident_events.join(incidents, i.id == e.incident_id))
             .where(i.alertname == alertname, i.opened_at < until, i.last_alert_at >= since,
                    e.raw_alert_id.is_not(None)))
    if limit is not None:
        named = named.limit(limit + 1)
    with database_errors(engine), engine.execution_options(sqlite_begin="DEFERRED").connect() as conn:
        return sorted(conn.execute(named).scalars())


def raw_rows(engine: Engine, ids: Sequence[int], since: datetime, until: datetime) -> Iterator[Any]:
    """The raw rows of `ids` received in [since, until), in id order, a page at a time."""
    g = grafana_alerts.c
    columns = [g[key] for key in RECORD_KEYS] + [g.body]
    readonly = engine.execution_options(sqlite_begin="DEFERRED")
    for start in range(0, len(ids), PAGE_SIZE):
        # Sorted here: ORDER BY would have the server sort the bodies in a temporary table.
        query = select(*columns).where(g.id.in_(list(ids[start:start + PAGE_SIZE])), g.received_at >= since,
                                       g.received_at < until)
        with database_errors(engine), readonly.connect() as conn:
            page = sorted((row._mapping for row in conn.execute(query)), key=lambda row: row["id"])
        yield from page


def _group_by(engine: Engine, settings: Settings, rule: RuleNoise, coarse: Rules, baseline: NotifyRules,
              since: datetime, until: datetime, ids: Sequence[int], acted: set) -> tuple[Suggestion | None, int]:
    result = simulate(engine, [Rules.configured(settings), coarse], since=since, until=until,
                      notify=[baseline, baseline], alertnames={rule.alertname},
                      rows=raw_rows(engine, ids, since, until), acted_on=acted)
    cur, new = result.outcomes
    before = _figures_of(cur.ledger.total, opened=cur.incidents, flaps=cur.reopens)
    after = _figures_of(new.ledger.total, opened=new.incidents, flaps=new.reopens)
    if new.incidents >= cur.incidents:
        return None, result.rows
    people = delays(cur.ledger.first_pages, new.ledger.first_pages)
    summary = (f"would have opened {cur.incidents - new.incidents} fewer incidents ({cur.incidents} → "
               f"{new.incidents}) and sent {before['pages'] - after['pages']} fewer pages "
               f"({before['pages']} → {after['pages']})")
    return Suggestion("group_by", f"group by {','.join(coarse.group_by)}", _group_how(rule, coarse),
                      before, after, people, summary), result.rows


def _group_by_estimate(rule: RuleNoise, coarse: Rules, merged: int, why: str, since: datetime) -> Suggestion:
    text = ",".join(coarse.group_by)
    summary = (f"would merge about {merged} of its {rule.incidents} incidents (an estimate from the stored "
               f"incidents, {why}; `incidentctl simulate --alertname {rule.alertname} --group-by {text} "
               f"--since {since:%Y-%m-%dT%H:%M:%SZ}` backtests it)")
    return Suggestion("group_by", f"group by {text}", _group_how(rule, coarse), {"opened": rule.incidents},
                      {"opened": rule.incidents - merged}, {}, summary, backtested=False)


def _group_how(rule: RuleNoise, coarse: Rules) -> str:
    return (f"group_by = {list(coarse.group_by)} (for alertname={rule.alertname} alone: group it so in "
            f"Alertmanager/Grafana, or set incidentctl's group_by)")


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
