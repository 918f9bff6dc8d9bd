"""Incidents for people: list with filters, show one, and the human transitions.

Human transitions (ack, resolve, reopen, note) take `now` from the caller and write an
incident_events row with the actor; ack/resolve/reopen also write an outbox row for Slack.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Sequence

from sqlalchemy import Connection, Engine, Text, select, type_coerce, update
from sqlalchemy.exc import IntegrityError

from .database import database_errors, is_sqlite
from .errors import InvalidTransition, NotFound
from .schema import LABEL_TEXT_MAX, incident_alerts, incident_events, incident_labels, incidents, notifications

STATUSES = ("open", "acknowledged", "resolved")
LIST_FIELDS = (
    "id", "status", "severity", "title", "fingerprint", "alertname", "cluster", "namespace", "service",
    "opened_at", "last_alert_at", "acknowledged_at", "acknowledged_by", "resolved_at", "resolved_by",
    "resolution", "alert_count", "series_count", "series_firing", "reopen_count", "group_labels", "common_labels",
)
LINKS = ("generator", "dashboard", "panel", "silence", "image")


@dataclass(frozen=True)
class IncidentFilter:
    """What `list` shows. status: open | acknowledged | resolved | all | None (= unresolved)."""

    status: str | None = None
    severity: str | None = None
    cluster: str | None = None
    namespace: str | None = None
    service: str | None = None
    alertname: str | None = None
    labels: tuple[tuple[str, str], ...] = ()
    since: datetime | None = None
    limit: int = 50


def parse_label_filter(text: str) -> tuple[str, str]:
    """`k=v` → (k, v); raises ValueError naming the problem."""
    name, sep, value = text.partition("=")
    if not sep or not name.strip():
        raise ValueError(f"not a label filter: {text!r} (use name=value, e.g. --label team=db)")
    return name.strip(), value


def list_query(flt: IncidentFilter):
    """The SELECT behind `list` (also EXPLAINed by bench/bench_process.py)."""
    c = incidents.c
    query = select(*(c[name] for name in LIST_FIELDS))
    if flt.status in (None, "unresolved"):
        query = query.where(c.status.in_(("open", "acknowledged")))
    elif flt.status != "all":
        query = query.where(c.status == flt.status)
    for name in ("severity", "cluster", "namespace", "service", "alertname"):
        value = getattr(flt, name)
        if value is not None:
            query = query.where(c[name] == value)
    order = (c.opened_at.desc(), c.id.desc())
    first = None
    for n, (name, value) in enumerate(flt.labels):
        # The label index finds the incidents carrying the pair: the first one in newest-first
        # order (a rare label reads a few index entries, not every incident), the others by the
        # whole index key (name, value, opened_at, incident_id), read from the index alone, so
        # a combination matching nothing never fetches an incident row. common_labels (JSON,
        # sorted keys, no spaces: a pair reads `"k":"v"`) confirms each pair whole, as the
        # index holds values clipped to LABEL_TEXT_MAX.
        il = incident_labels.alias(f"label{n}")
        if first is None:
            first = il
            query = query.join(il, il.c.incident_id == c.id)
            order = (il.c.opened_at.desc(), il.c.incident_id.desc())
            if flt.since is not None:
                query = query.where(il.c.opened_at >= flt.since)
        else:
            query = query.join(il, (il.c.incident_id == first.c.incident_id) & (il.c.opened_at == first.c.opened_at))
        query = query.where(il.c.name == name[:LABEL_TEXT_MAX], il.c.value == value[:LABEL_TEXT_MAX])
        pair = json.dumps(name, ensure_ascii=False) + ":" + json.dumps(value, ensure_ascii=False)
        query = query.where(type_coerce(c.common_labels, Text).like("%" + _escape_like(pair) + "%", escape="\\"))
    if flt.since is not None:
        query = query.where(c.opened_at >= flt.since)
    return query.order_by(*order).limit(flt.limit)


def list_incidents(engine: Engine, flt: IncidentFilter) -> list[dict]:
    """Incidents matching `flt`, newest opened first."""
    with database_errors(engine), _reader(engine) as conn:
        return [dict(row._mapping) for row in conn.execute(list_query(flt))]


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _reader(engine: Engine):
    return engine.connect().execution_options(sqlite_begin="DEFERRED") if is_sqlite(engine) else engine.connect()


def show_incident(engine: Engine, incident_id: int) -> dict:
    """The incident with its series (labels, annotations, links) and its timeline; raises NotFound."""
    with database_errors(engine), _reader(engine) as conn:
        row = conn.execute(select(incidents).where(incidents.c.id == incident_id)).first()
        if row is None:
            raise NotFound(f"incident {incident_id} not found")
        incident = {name: row._mapping[name] for name in LIST_FIELDS}
        incident["series"] = [_series(r._mapping) for r in conn.execute(
            select(incident_alerts).where(incident_alerts.c.incident_id == incident_id).order_by(incident_alerts.c.id))]
        incident["events"] = [
            {k: r._mapping[k] for k in ("id", "kind", "at", "actor", "alert_fingerprint", "raw_alert_id", "detail")}
            for r in conn.execute(select(incident_events).where(incident_events.c.incident_id == incident_id)
                                  .order_by(incident_events.c.id))]
    return incident


def _series(row) -> dict:
    return {
        "alert_fingerprint": row["alert_fingerprint"], "status": row["status"], "severity": row["severity"],
        "labels": row["labels"], "annotations": row["annotations"],
        "links": {k: row[f"{k}_url"] for k in LINKS if row[f"{k}_url"]},
        "starts_at": row["starts_at"], "ends_at": row["ends_at"], "first_seen_at": row["first_seen_at"],
        "last_seen_at": row["last_seen_at"], "times_seen": row["times_seen"],
    }


@dataclass(frozen=True)
class Outcome:
    """What one id of a bulk transition came to."""

    id: int
    ok: bool
    status: str | None  # the incident's status after (or, on failure, as it is)
    message: str


def transition_many(engine: Engine, action: str, ids: Sequence[int], *, by: str, note: str | None,
                    now: datetime) -> list[Outcome]:
    """Applies `action` (ack | resolve | reopen) to each id in its own transaction; one
    failure does not stop the others."""
    outcomes = []
    for incident_id in ids:
        try:
            status = transition(engine, action, incident_id, by=by, note=note, now=now)
            outcomes.append(Outcome(incident_id, True, status, f"incident {incident_id}: {status}"))
        except (NotFound, InvalidTransition) as exc:
            outcomes.append(Outcome(incident_id, False, getattr(exc, "status", None), str(exc)))
    return outcomes


_ALLOWED = {"ack": ("open",), "resolve": ("open", "acknowledged"), "reopen": ("resolved",)}
_PAST = {"ack": "acknowledged", "resolve": "resolved", "reopen": "reopened"}


def transition(engine: Engine, action: str, incident_id: int, *, by: str, note: str | None, now: datetime) -> str:
    """ack: open → acknowledged; resolve: open|acknowledged → resolved (manual); reopen:
    resolved → open. Returns the new status; raises NotFound, InvalidTransition."""
    if action not in _ALLOWED:
        raise ValueError(f"unknown transition {action!r}")
    with database_errors(engine), engine.connect() as conn, conn.begin():
        row = _locked(conn, incident_id)
        if row.status not in _ALLOWED[action]:
            exc = InvalidTransition(f"incident {incident_id} is {row.status}: cannot {action} it")
            exc.status = row.status
            raise exc
        values, reason = _transition_values(action, row, by, now)
        try:
            conn.execute(update(incidents).where(incidents.c.id == incident_id).values(**values))
        except IntegrityError:
            other = conn.scalar(select(incidents.c.id).where(incidents.c.active_key == row.fingerprint))
            exc = InvalidTransition(f"incident {incident_id} cannot be reopened: incident {other} with the same "
                                    f"fingerprint is unresolved")
            exc.status = row.status
            raise exc from None
        if note:
            reason += f": {note}"
        _event(conn, incident_id, _PAST[action], now, by, {"note": note} if note else None)
        conn.execute(notifications.insert().values(
            incident_id=incident_id, change=_PAST[action], reason=reason[:255], severity=row.severity,
            created_at=now, state="pending", attempts=0))
        return values["status"]


def _transition_values(action: str, row, by: str, now: datetime) -> tuple[dict, str]:
    if action == "ack":
        return {"status": "acknowledged", "acknowledged_at": now, "acknowledged_by": by}, f"acknowledged by {by}"
    if action == "resolve":
        return ({"status": "resolved", "active_key": None, "resolution": "manual", "resolved_at": now,
                 "resolved_by": by}, f"manual by {by}")
    return ({"status": "open", "active_key": row.fingerprint, "resolution": None, "resolved_at": None,
             "resolved_by": None, "acknowledged_at": None, "acknowledged_by": None,
             "reopen_count": row.reopen_count + 1}, f"reopened by {by}")


def add_note(engine: Engine, incident_id: int, text: str, *, by: str, now: datetime) -> None:
    """Adds a note to the timeline of any incident; raises NotFound."""
    with database_errors(engine), engine.connect() as conn, conn.begin():
        _locked(conn, incident_id)
        _event(conn, incident_id, "note", now, by, {"text": text})


def _locked(conn: Connection, incident_id: int):
    query = select(incidents).where(incidents.c.id == incident_id)
    row = conn.execute(query if is_sqlite(conn.engine) else query.with_for_update()).first()
    if row is None:
        raise NotFound(f"incident {incident_id} not found")
    return row


def _event(conn: Connection, incident_id: int, kind: str, at: datetime, actor: str, detail: dict | None) -> None:
    conn.execute(incident_events.insert().values(incident_id=incident_id, kind=kind, at=at, actor=actor,
                                                 detail=detail))
