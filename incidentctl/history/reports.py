"""`incidentctl report`: MTTA, MTTR, resolves, noise and alert volume over a time window.

The window selects incidents by `opened_at` in [since, until). One query reads the incidents
with their first acknowledgement; the statistics are computed by the pure functions of
`stats`. The alert volume per day is a SQL aggregate over the raw archive, because that is the
table with a million rows a month.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, func, select

from incidentctl.db.engine import database_errors, reader
from incidentctl.db.schema import UtcDateTime, grafana_alerts, incident_events, incidents
from incidentctl.history.stats import (
    SHORT_LIVED,
    IncidentFacts,
    Metrics,
    Noise,
    days_between,
    metrics,
    noisy_fingerprints,
)
from incidentctl.incidents.model import SYSTEM_ACTOR, TimelineKind

BY_COLUMNS = ("service", "severity", "cluster", "alertname")
NO_VALUE = "(none)"  # the group of incidents without a value in the --by column


@dataclass(frozen=True)
class DayVolume:
    day: date
    requests: int  # webhook requests received
    alerts: int  # alerts in them (a request carries one or more)


@dataclass(frozen=True)
class SreReport:
    since: datetime
    until: datetime
    by: str | None
    total: Metrics
    groups: list[tuple[str, Metrics]]  # one per value of the --by column, most incidents first
    noisy: list[Noise]
    volume: list[DayVolume]


def build_report(engine: Engine, *, since: datetime, until: datetime, by: str | None = None, top: int = 10,
                 short_lived: timedelta = SHORT_LIVED) -> SreReport:
    """The report over incidents opened in [since, until) and alerts received in it."""
    if by is not None and by not in BY_COLUMNS:
        raise ValueError(f"--by must be one of {', '.join(BY_COLUMNS)}")
    with database_errors(engine), reader(engine).connect() as conn:
        facts = load_incidents(conn, since, until, by)
        volume = daily_volume(conn, since, until)
    groups: dict[str, list[IncidentFacts]] = {}
    if by is not None:
        for incident in facts:
            groups.setdefault(incident.group or NO_VALUE, []).append(incident)
    ordered = sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0]))
    return SreReport(
        since=since,
        until=until,
        by=by,
        total=metrics(facts, short_lived),
        groups=[(key, metrics(group, short_lived)) for key, group in ordered],
        noisy=noisy_fingerprints(facts, top, short_lived),
        volume=volume,
    )


def load_incidents(conn: Connection, since: datetime, until: datetime, by: str | None) -> list[IncidentFacts]:
    """Incidents opened in [since, until), each with its first acknowledgement (the earliest
    `acknowledged` event, else the incident's acknowledged_at) and its flaps: `reopen_count`
    less the reopens people made (`reopened` events by anyone but incidentctl), since both
    the processor's and a person's reopen count there, and only the first is a flap.

    People act after an incident opened, so their events of the window's incidents are at or
    after `since`: both subqueries read the (kind, at) index from there, not all history."""
    e = incident_events.c
    first_ack = (
        select(e.incident_id, func.min(e.at).label("first_at"))
        .where(e.kind == TimelineKind.ACKNOWLEDGED, e.at >= since)
        .group_by(e.incident_id)
        .subquery()
    )
    people_reopens = (
        select(e.incident_id, func.count().label("reopens"))
        .where(e.kind == TimelineKind.REOPENED, e.at >= since, e.actor != SYSTEM_ACTOR)
        .group_by(e.incident_id)
        .subquery()
    )
    i = incidents.c
    group_col = i[by] if by else None
    query = (
        select(i.id, i.fingerprint, i.title, i.opened_at,
               func.coalesce(first_ack.c.first_at, i.acknowledged_at, type_=UtcDateTime).label("first_ack_at"),
               i.resolved_at, i.resolution, i.alert_count,
               (func.coalesce(i.reopen_count, 0) - func.coalesce(people_reopens.c.reopens, 0)).label("flaps"),
               (group_col if group_col is not None else i.alertname).label("group"))
        .select_from(incidents.outerjoin(first_ack, first_ack.c.incident_id == i.id)
                     .outerjoin(people_reopens, people_reopens.c.incident_id == i.id))
        .where(i.opened_at >= since, i.opened_at < until)
        .order_by(i.opened_at, i.id)
    )
    return [
        IncidentFacts(
            id=row.id, fingerprint=row.fingerprint, title=row.title, opened_at=row.opened_at,
            first_ack_at=row.first_ack_at, resolved_at=row.resolved_at,
            resolution=row.resolution, alert_count=row.alert_count or 0, flaps=max(int(row.flaps), 0),
            group=row.group if by else None,
        )
        for row in conn.execute(query)
    ]


def daily_volume(conn: Connection, since: datetime, until: datetime) -> list[DayVolume]:
    """Requests and alerts received per UTC day in [since, until), days without any included."""
    day = func.date(grafana_alerts.c.received_at).label("day")
    query = (
        select(day, func.count().label("requests"), func.coalesce(func.sum(grafana_alerts.c.alert_count), 0))
        .where(grafana_alerts.c.received_at >= since, grafana_alerts.c.received_at < until)
        .group_by(day)
    )
    counts = {_as_date(d): (int(n), int(a)) for d, n, a in conn.execute(query)}
    return [DayVolume(d, *counts.get(d, (0, 0))) for d in days_between(since, until)]


def _as_date(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


def metrics_dict(m: Metrics) -> dict:
    return asdict(m)


def report_dict(report: SreReport) -> dict:
    """The whole report as JSON-ready data (durations in seconds)."""
    return {
        "since": report.since,
        "until": report.until,
        "by": report.by,
        "total": metrics_dict(report.total),
        "groups": [{"group": key, **metrics_dict(m)} for key, m in report.groups],
        "noisy_fingerprints": [{**asdict(n), "pages": n.pages} for n in report.noisy],
        "volume_per_day": [{"day": v.day.isoformat(), "requests": v.requests, "alerts": v.alerts}
                           for v in report.volume],
    }


def metric_rows(report: SreReport) -> list[dict]:
    """Flat rows, one per group plus `all` (only `all` without --by): the table and CSV form."""
    pairs = [*report.groups, ("all", report.total)] if report.by else [("all", report.total)]
    rows = []
    for key, m in pairs:
        row: dict[str, Any] = {"group": key}
        for name, value in asdict(m).items():
            if isinstance(value, dict):
                for stat in ("mean", "median", "p90"):
                    row[f"{name}_{stat}"] = _round(value[stat])
            else:
                row[name] = value
        rows.append(row)
    return rows


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)
