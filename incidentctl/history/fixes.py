"""The fixes `noise` suggests for a noisy rule, and their backtests on the window's history.

The notify-level fixes — a minimum firing duration before notifying, a keep-firing window, a
recurring silence — are tried on the rule's stored outbox changes through `announce.heard`
(the decision `notify` applies); coarser grouping replays the rule's raw rows through
`simulate`. Definitions: docs/REPORTS.md ("Noise").
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, select

from incidentctl.config import Settings
from incidentctl.db.engine import database_errors
from incidentctl.db.schema import grafana_alerts, incident_events, incidents
from incidentctl.durations import format_duration
from incidentctl.history.announce import Heard, IncidentHistory, NotifyRules, delays, heard
from incidentctl.history.export import PAGE_SIZE, RECORD_KEYS
from incidentctl.history.recurrence import parse_window
from incidentctl.history.simulate import Rules, simulate
from incidentctl.history.stats import percentile
from incidentctl.incidents.model import ChangeKind
from incidentctl.notify.thresholds import Threshold, episodes

SHARE = 0.2  # a pattern worth a fix: at least this share of a rule's episodes or pages
NICE = [timedelta(minutes=m) for m in (1, 2, 3, 5, 10, 15, 20, 30, 45, 60, 90, 120, 240)]


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


def notify_level_fixes(name: str, pages: int, window: str | None, histories: Sequence[IncidentHistory], acted: set,
                       baseline: NotifyRules, now: datetime, within: timedelta, reopen_window: timedelta
                       ) -> list[Suggestion]:
    """The notify-level fixes that would have sent the rule `name` fewer pages, each backtested
    on its incidents' `histories` (`acted`: the keys of those people acted on; `window`: its
    periodic window, if any)."""
    before, first_before = _sum(histories, baseline, now)
    people_before = {k: v for k, v in first_before.items() if k in acted}
    tries: list[tuple[str, str, str, NotifyRules]] = []
    lasted = [e.end - e.start for h in histories for e in episodes(h.changes) if e.end is not None]
    short = [d for d in lasted if d <= within]
    ended = len(lasted)
    if len(short) >= 2 and len(short) >= SHARE * max(ended, 1):
        after = nice(_p80(short), within)
        text = format_duration(after)
        tries.append(("notify_after", f"notify after {text}",
                      f'a route matching alertname={name} with notify_after = "{text}" (or `for: {text}` in the '
                      f'alert rule)', NotifyRules(baseline.routes, Threshold(after=after))))
    gaps = _flap_gaps(histories)
    if len(gaps) >= 2 and len(gaps) >= SHARE * max(pages, 1):
        keep = nice(_p80(gaps), reopen_window)
        text = format_duration(keep)
        tries.append(("keep_firing", f"keep firing {text}", f"`keep_firing_for: {text}` in the alert rule",
                      NotifyRules(baseline.routes, keep_firing=keep)))
    if window:
        tries.append(("silence", f"silence {window}",
                      f"a recurring silence alertname={name}, {window} (e.g. a maintenance window in Grafana)",
                      NotifyRules(baseline.routes, silence=parse_window(window))))
    suggestions = []
    for kind, change, how, rules in tries:
        tried, first_tried = _sum(histories, rules, now)
        if tried.pages >= before.pages:
            continue
        people = delays(people_before, first_tried)
        suggestions.append(Suggestion(kind, change, how, _figures_of(before), _figures_of(tried), people,
                                      _summary(kind, before, tried, people)))
    return suggestions


def _p80(durations: list[timedelta]) -> timedelta:
    value = percentile(sorted(durations), 80)
    assert value is not None  # called with two or more
    return value


def _figures_of(h: Heard, **extra) -> dict:
    return {**h.as_dict(), **extra}


def _flap_gaps(histories: Sequence[IncidentHistory]) -> list[timedelta]:
    """Resolve → reopen gaps of the rule's incidents (each a flap)."""
    gaps = []
    for h in histories:
        ordered = sorted(h.changes, key=lambda c: c.id)
        for a, b in zip(ordered, ordered[1:], strict=False):  # each with the next
            if a.change == ChangeKind.RESOLVED and b.change == ChangeKind.REOPENED:
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


def grouping_fix(engine: Engine, settings: Settings, name: str, coarse: Rules, baseline: NotifyRules,
                 since: datetime, until: datetime, ids: Sequence[int], acted: set) -> tuple[Suggestion | None, int]:
    """Rule `name`'s raw rows `ids` replayed under the configured and the `coarse` rules: the
    fix when it opens fewer incidents (else None), and the rows read."""
    result = simulate(engine, [Rules.configured(settings), coarse], since=since, until=until,
                      notify=[baseline, baseline], alertnames={name},
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
    return Suggestion("group_by", f"group by {','.join(coarse.group_by)}", _group_how(name, coarse),
                      before, after, people, summary), result.rows


def grouping_estimate(name: str, incidents: int, coarse: Rules, merged: int, why: str, since: datetime) -> Suggestion:
    """A coarser grouping not replayed (`why`): the estimate of the incidents it merges."""
    text = ",".join(coarse.group_by)
    summary = (f"would merge about {merged} of its {incidents} incidents (an estimate from the stored "
               f"incidents, {why}; `incidentctl simulate --alertname {name} --group-by {text} "
               f"--since {since:%Y-%m-%dT%H:%M:%SZ}` backtests it)")
    return Suggestion("group_by", f"group by {text}", _group_how(name, coarse), {"opened": incidents},
                      {"opened": incidents - merged}, {}, summary, backtested=False)


def _group_how(name: str, coarse: Rules) -> str:
    return (f"group_by = {list(coarse.group_by)} (for alertname={name} alone: group it so in "
            f"Alertmanager/Grafana, or set incidentctl's group_by)")
