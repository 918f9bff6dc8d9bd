"""Test helpers: incidents, series and outbox rows written directly with SQLAlchemy Core (incidents
and series through the processor's own row mappers), and rows counted or read back."""

from __future__ import annotations

import itertools
from contextlib import nullcontext
from datetime import datetime, timedelta

from sqlalchemy import Connection, Engine, Table, func, select

from incidentctl.db.schema import incident_alerts, incidents, notifications
from incidentctl.incidents.model import IncidentState, SeriesState
from incidentctl.incidents.store import incident_row, series_row
from tests.support import T0

_seq = itertools.count(1)
_GROUP_BY = ("alertname", "cluster", "namespace", "service")


def _writing(db: Engine | Connection):
    """A transaction of its own on an engine; on a connection, the caller's."""
    return db.begin() if isinstance(db, Engine) else nullcontext(db)


def add_incident(db: Engine | Connection, *, title: str = "HighCPU on api", severity: str = "critical",
                 status: str = "open", opened_at: datetime = T0, labels: dict | None = None,
                 links: dict | None = None, **extra) -> int:
    """An incident with one series, firing unless the incident is resolved; returns its id.
    links: by kind (generator, dashboard, panel, silence, image); extra: more IncidentState fields."""
    n = next(_seq)
    labels = {"alertname": "HighCPU", "cluster": "prod", "namespace": "web", "service": "api",
              "severity": severity, **(labels or {})}
    fp = f"fp{n:06d}"
    series = SeriesState(f"a{fp}", "resolved" if status == "resolved" else "firing", severity, labels,
                         {"summary": title}, links or {}, starts_at=opened_at, ends_at=None,
                         last_event_at=opened_at, first_seen_at=opened_at, last_seen_at=opened_at)
    state = IncidentState(fp, status, title, severity, labels.get("alertname"), labels.get("cluster"),
                          labels.get("namespace"), labels.get("service"),
                          group_labels={k: labels.get(k, "") for k in _GROUP_BY}, common_labels=labels,
                          opened_at=opened_at, last_alert_at=opened_at, alert_count=1,
                          series={series.fingerprint: series}, **extra)
    with _writing(db) as conn:
        iid = conn.execute(incidents.insert().values(**incident_row(state))).inserted_primary_key[0]
        conn.execute(incident_alerts.insert().values(**series_row(iid, series)))
    return iid


def add_change(db: Engine | Connection, incident_id: int, change: str = "opened", *, severity: str = "critical",
               created_at: datetime = T0, reason: str | None = None) -> int:
    """A pending outbox row as the processor writes it; returns its id."""
    with _writing(db) as conn:
        return conn.execute(notifications.insert().values(
            incident_id=incident_id, change=change, reason=reason, severity=severity, created_at=created_at,
            state="pending", attempts=0)).inserted_primary_key[0]


def add_incidents_with_changes(engine: Engine, n: int, *, change: str = "opened", severity: str = "critical",
                               created_at: datetime = T0) -> list[int]:
    """n incidents opened 5 minutes before created_at, each with a pending change; returns the changes' ids."""
    ids = []
    with engine.begin() as conn:  # one transaction: hundreds of commits would dominate the test
        for i in range(n):
            iid = add_incident(conn, title=f"Incident {i}", severity=severity,
                               opened_at=created_at - timedelta(minutes=5))
            ids.append(add_change(conn, iid, change, severity=severity, created_at=created_at))
    return ids


def outbox_rows(engine: Engine) -> dict[int, dict]:
    with engine.connect() as conn:
        return {r.id: dict(r._mapping) for r in conn.execute(select(notifications))}


def count_rows(engine: Engine, table: Table, where=None) -> int:
    """How many rows `table` holds; where: a SQLAlchemy condition they must meet."""
    query = select(func.count()).select_from(table)
    if where is not None:
        query = query.where(where)
    with engine.connect() as conn:
        return conn.execute(query).scalar_one()
