"""Test helpers: incidents, series and outbox rows inserted directly with SQLAlchemy Core."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta, timezone

from sqlalchemy import Engine, select

from incidentctl.db.schema import incident_alerts, incidents, notifications

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
_seq = itertools.count(1)


def add_incident(engine: Engine, *, title: str = "HighCPU on api", severity: str = "critical",
                 status: str = "open", opened_at: datetime = T0, labels: dict | None = None,
                 links: dict | None = None, **extra) -> int:
    """An incident with one firing series; returns its id."""
    n = next(_seq)
    labels = {"alertname": "HighCPU", "cluster": "prod", "namespace": "web", "service": "api",
              "severity": severity, **(labels or {})}
    fp = f"fp{n:06d}"
    row = dict(fingerprint=fp, active_key=None if status == "resolved" else fp, status=status, title=title,
               severity=severity, alertname=labels.get("alertname"), cluster=labels.get("cluster"),
               namespace=labels.get("namespace"), service=labels.get("service"),
               group_labels={k: labels.get(k, "") for k in ("alertname", "cluster", "namespace", "service")},
               common_labels=labels, opened_at=opened_at, last_alert_at=opened_at, alert_count=1,
               series_count=1, series_firing=0 if status == "resolved" else 1, reopen_count=0)
    row.update(extra)
    links = links or {}
    with engine.begin() as conn:
        iid = conn.execute(incidents.insert().values(**row)).inserted_primary_key[0]
        conn.execute(incident_alerts.insert().values(
            incident_id=iid, alert_fingerprint=f"a{fp}", status="resolved" if status == "resolved" else "firing",
            severity=severity, labels=labels, annotations={"summary": title},
            generator_url=links.get("rule"), dashboard_url=links.get("dashboard"), panel_url=links.get("panel"),
            silence_url=links.get("silence"), starts_at=opened_at, last_event_at=opened_at,
            first_seen_at=opened_at, last_seen_at=opened_at, times_seen=1))
    return iid


def add_change(engine: Engine, incident_id: int, change: str = "opened", *, severity: str = "critical",
               created_at: datetime = T0, reason: str | None = None) -> int:
    """A pending outbox row as the processor writes it; returns its id."""
    with engine.begin() as conn:
        return conn.execute(notifications.insert().values(
            incident_id=incident_id, change=change, reason=reason, severity=severity, created_at=created_at,
            state="pending", attempts=0)).inserted_primary_key[0]


def add_incidents_with_changes(engine: Engine, n: int, *, change: str = "opened", severity: str = "critical",
                               created_at: datetime = T0) -> list[int]:
    ids = []
    for i in range(n):
        iid = add_incident(engine, title=f"Incident {i}", severity=severity, opened_at=created_at - timedelta(minutes=5))
        ids.append(add_change(engine, iid, change, severity=severity, created_at=created_at))
    return ids


def outbox_rows(engine: Engine) -> dict[int, dict]:
    with engine.connect() as conn:
        return {r.id: dict(r._mapping) for r in conn.execute(select(notifications))}
