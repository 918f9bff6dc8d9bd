"""The outbox's storage: read due rows, claim them, mark them sent / retrying / failed / suppressed,
and the delivery log of the digests sent for them.

Rows are written by the processor (and the incident commands) in the same transaction as the
change they announce, with state `pending`. Only this module changes their delivery columns,
and a mark applies only to rows still pending, so one run never undoes another's. A digest is
logged (`deliveries`) as `sending` before its POST and settled with Slack's answer in the
transaction that marks its rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, and_, bindparam, case, func, not_, or_, select

from incidentctl.db.engine import reader
from incidentctl.db.lease import owner_id
from incidentctl.db.retry import Conflicts, retry_conflicts
from incidentctl.db.rows import inserted_id
from incidentctl.db.schema import deliveries, grafana_alerts, incident_alerts, incident_events, incidents, notifications
from incidentctl.incidents.model import ChangeKind, IncidentStatus, OutboxState, Severity, TimelineKind
from incidentctl.notify.digest import Change, World
from incidentctl.notify.thresholds import ChangeRecord
from incidentctl.slicing import chunks

SENDING = "sending"  # a delivery whose answer is not recorded (yet, or ever: the run died)
# `last_error` of a pending row its route's threshold holds back (not a retry); a row the
# threshold never announces is `suppressed` with NEVER_PREFIX and the reason.
HELD_PREFIX = "held: "
NEVER_PREFIX = "never announced: "


def _due(now: datetime):
    return and_(notifications.c.state == OutboxState.PENDING,
                or_(notifications.c.next_attempt_at.is_(None), notifications.c.next_attempt_at <= now))


def claim_due(engine: Engine, now: datetime, lease: timedelta, *, claim: bool = True,
              limit: int = 5000, claimer: str | None = None, conflicts: Conflicts | None = None) -> list[dict]:
    """Up to `limit` pending rows due at `now`, each joined with its incident, oldest first
    (a larger backlog goes out in the next runs; one digest says "and N more" anyway).

    With `claim`, the rows are claimed by a row UPDATE in one transaction: claimed_by = `claimer`
    (default: a fresh host:pid:random) and next_attempt_at = now + lease, where they are still
    due. An overlapping notify run (cron and `run` on two hosts) then skips them: on one server
    its UPDATE waits for ours and finds them no longer due; on two Galera nodes the two UPDATEs
    conflict at certification, the loser rolls back (1213) and its retry skips them. If this run
    dies after sending, the lease runs out and the next run sends them again (at-least-once).
    """
    query = (select(notifications, incidents.c.title, incidents.c.status, incidents.c.cluster,
                    incidents.c.namespace, incidents.c.service, incidents.c.alertname,
                    incidents.c.opened_at, incidents.c.resolved_at, incidents.c.alert_count,
                    incidents.c.series_count, incidents.c.series_firing, incidents.c.reopen_count,
                    incidents.c.common_labels, incidents.c.group_labels,
                    incidents.c.severity.label("incident_severity"))
             .join(incidents, incidents.c.id == notifications.c.incident_id)
             .order_by(notifications.c.id))
    if not claim:
        with reader(engine).connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query.where(_due(now)).limit(limit))]
    me = claimer or owner_id()
    until = now + lease

    def attempt() -> list[dict]:
        with engine.begin() as conn:
            due = list(conn.execute(select(notifications.c.id).where(_due(now))
                                    .order_by(notifications.c.id).limit(limit)).scalars())
            if not due:
                return []
            for chunk in chunks(due, 500):
                conn.execute(notifications.update().where(notifications.c.id.in_(chunk), _due(now))
                             .values(claimed_by=me, next_attempt_at=until))
            return [dict(r._mapping) for r in conn.execute(
                query.where(notifications.c.claimed_by == me, notifications.c.state == OutboxState.PENDING,
                            notifications.c.next_attempt_at == until))]
    return retry_conflicts(attempt, counts=conflicts)


def links_for(engine: Engine, incident_ids: Sequence[int]) -> dict[int, dict[str, str]]:
    """{incident id: {rule|dashboard|panel|silence: URL}}, the first series that has each link.
    The server finds each incident's first series per link and only those rows are read: an
    incident of a storm has 20,000 series, and a digest names it every run."""
    if not incident_ids:
        return {}
    result: dict[int, dict[str, str]] = {i: {} for i in incident_ids}
    with reader(engine).connect() as conn:
        for chunk in chunks(list(incident_ids), 500):
            firsts = {(row.incident_id, name): series_id
                      for row in conn.execute(_FIRST_LINKS, {"ids": list(chunk)})
                      for name, series_id in zip(_LINKS, row[1:], strict=True) if series_id is not None}
            values: dict[int, Any] = {}
            for ids in chunks(sorted(set(firsts.values())), 500):
                values.update((row.id, row) for row in conn.execute(_LINK_ROWS, {"ids": list(ids)}))
            for (incident_id, name), series_id in sorted(firsts.items()):
                result[incident_id][name] = values[series_id]._mapping[_LINKS[name].name]
    return result


# A link of an incident: the column of its series that holds it. Its first series with a link is
# the lowest id whose column is neither NULL nor empty.
_LINKS = {"rule": incident_alerts.c.generator_url, "dashboard": incident_alerts.c.dashboard_url,
          "panel": incident_alerts.c.panel_url, "silence": incident_alerts.c.silence_url}
_FIRST_LINKS = (select(incident_alerts.c.incident_id,
                       *(func.min(case((column != "", incident_alerts.c.id))) for column in _LINKS.values()))
                .where(incident_alerts.c.incident_id.in_(bindparam("ids", expanding=True)))
                .group_by(incident_alerts.c.incident_id))
_LINK_ROWS = (select(incident_alerts.c.id, *_LINKS.values())
              .where(incident_alerts.c.id.in_(bindparam("ids", expanding=True))))


def world_state(engine: Engine) -> World:
    """Open incidents by severity and the oldest unacknowledged critical one."""
    with reader(engine).connect() as conn:
        counts = conn.execute(select(incidents.c.severity, func.count())
                              .where(incidents.c.status != IncidentStatus.RESOLVED)
                              .group_by(incidents.c.severity)).all()
        oldest = conn.execute(select(incidents.c.id, incidents.c.title, incidents.c.opened_at)
                              .where(incidents.c.status == IncidentStatus.OPEN,
                                     incidents.c.severity == Severity.CRITICAL)
                              .order_by(incidents.c.opened_at, incidents.c.id).limit(1)).first()
    return World({sev: n for sev, n in counts},
                 (oldest.id, oldest.title, oldest.opened_at) if oldest else None)


def to_change(row: dict, links: dict[str, str]) -> Change:
    return Change(
        notification_id=row["id"], incident_id=row["incident_id"], change=row["change"],
        severity=row["severity"], created_at=row["created_at"], title=row["title"], status=row["status"],
        reason=row["reason"], cluster=row["cluster"], namespace=row["namespace"], service=row["service"],
        opened_at=row["opened_at"], resolved_at=row["resolved_at"], alert_count=row["alert_count"] or 0,
        series_count=row["series_count"] or 0, series_firing=row["series_firing"] or 0,
        reopen_count=row["reopen_count"] or 0, links=links, labels=row["common_labels"] or {},
        group_labels=row["group_labels"] or {}, alertname=row.get("alertname"),
    )


def _update(conn: Connection, ids: Sequence[int], **values: Any) -> int:
    """Updates pending rows only, so a row already marked by another run is never changed back."""
    done = 0
    for chunk in chunks(list(ids), 500):
        done += conn.execute(notifications.update()
                             .where(notifications.c.id.in_(chunk), notifications.c.state == OutboxState.PENDING)
                             .values(**values)).rowcount
    return done


def mark(engine: Engine, ids: Sequence[int], **values: Any) -> int:
    def attempt() -> int:
        with engine.begin() as conn:
            return _update(conn, ids, **values)
    return retry_conflicts(attempt)


def begin_delivery(engine: Engine, route: str, changes: int, now: datetime) -> int:
    """Logs a digest about to be POSTed (outcome `sending`); returns the delivery's id."""
    with engine.begin() as conn:
        return inserted_id(conn.execute(deliveries.insert().values(attempted_at=now, route=route, changes=changes,
                                                                   outcome=SENDING)))


def settle_delivery(engine: Engine, delivery_id: int, *, outcome: str, status: int | None, error: str | None,
                    ids: Sequence[int], **values: Any) -> int:
    """Records Slack's answer on the delivery and marks its outbox rows, one more attempt each, in
    one transaction; returns how many rows were marked."""
    values["attempts"] = notifications.c.attempts + 1

    def attempt() -> int:
        with engine.begin() as conn:
            conn.execute(deliveries.update().where(deliveries.c.id == delivery_id)
                         .values(outcome=outcome, status=status, error=error))
            return _update(conn, ids, **values)
    return retry_conflicts(attempt)


def prune_deliveries(engine: Engine, before: datetime) -> int:
    """Deletes the delivery log older than `before` (its own short transaction)."""
    with engine.begin() as conn:
        return conn.execute(deliveries.delete().where(deliveries.c.attempted_at < before)).rowcount


def list_outbox(engine: Engine, *, states: Sequence[str] = tuple(OutboxState), limit: int = 100) -> list[dict]:
    """Outbox rows, newest first, with their incident's title. `next_attempt_at` is kept for
    pending rows only (on others it is a leftover claim); NULL there means due now."""
    query = (select(notifications, incidents.c.title)
             .join(incidents, incidents.c.id == notifications.c.incident_id)
             .where(notifications.c.state.in_(list(states)))
             .order_by(notifications.c.id.desc()).limit(limit))
    with reader(engine).connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(query)]
    for row in rows:
        if row["state"] != OutboxState.PENDING:
            row["next_attempt_at"] = None
    return rows


def count_due(engine: Engine, now: datetime) -> int:
    with reader(engine).connect() as conn:
        return conn.execute(select(func.count()).select_from(notifications).where(_due(now))).scalar_one()


def _held():
    return notifications.c.last_error.startswith(HELD_PREFIX, autoescape=True)


def waiting(engine: Engine, now: datetime) -> tuple[int, datetime | None]:
    """Pending rows not due at `now` (backing off after a failed send, or claimed by a run), and
    the earliest time one of them is due again; rows a threshold holds are not counted (`held`)."""
    n = notifications.c
    with reader(engine).connect() as conn:
        count, first = conn.execute(select(func.count(), func.min(n.next_attempt_at))
                                    .where(n.state == OutboxState.PENDING, n.next_attempt_at > now,
                                           or_(n.last_error.is_(None), not_(_held())))).one()
    return count, first


def held(engine: Engine, now: datetime) -> tuple[int, datetime | None]:
    """Pending rows their route's threshold holds, and the earliest time one of them is
    checked again (None: some are checked at every run, or none is held)."""
    n = notifications.c
    with reader(engine).connect() as conn:
        count, timed, first = conn.execute(select(func.count(), func.count(n.next_attempt_at),
                                                  func.min(n.next_attempt_at))
                                           .where(n.state == OutboxState.PENDING, _held())).one()
    return count, first if timed == count else None


def change_record(row: Any, known_at: datetime | None = None) -> ChangeRecord:
    """A notifications row (id, change, created_at, severity, state, attempts) for the gate."""
    gone = row["state"] in (OutboxState.SENT, OutboxState.FAILED) or (
        row["state"] == OutboxState.PENDING and (row["attempts"] or 0) > 0)
    return ChangeRecord(row["id"], row["change"], row["created_at"], row["severity"], gone, known_at)


def resolve_known_at(conn: Connection, incident_ids: Sequence[int]) -> dict[tuple[int, datetime], datetime]:
    """{(incident id, resolved time): when incidentctl learned of it}: the `received_at` of the
    webhook that resolved it (a person's resolve: its own time; a purged row: the event time)."""
    e, g = incident_events.c, grafana_alerts.c
    query = (select(e.incident_id, e.at, g.received_at)
             .select_from(incident_events.outerjoin(grafana_alerts, g.id == e.raw_alert_id))
             .where(e.incident_id.in_(list(incident_ids)), e.kind == TimelineKind.RESOLVED))
    return {(r.incident_id, r.at): max(r.at, r.received_at or r.at) for r in conn.execute(query)}


def alerts_fired(conn: Connection, incident_ids: Sequence[int]) -> dict[int, list[datetime]]:
    """{incident id: when each of its distinct alerts first fired, sorted}."""
    e = incident_events.c
    query = (select(e.incident_id, func.min(e.at).label("first"))
             .where(e.incident_id.in_(list(incident_ids)), e.kind == "alert_firing")
             .group_by(e.incident_id, e.alert_fingerprint))
    fired: dict[int, list[datetime]] = {}
    for r in conn.execute(query):
        fired.setdefault(r.incident_id, []).append(r.first)
    return {k: sorted(v) for k, v in fired.items()}


def change_histories(engine: Engine, incident_ids: Sequence[int], *, with_alerts: bool
                     ) -> dict[int, tuple[list[ChangeRecord], list[datetime]]]:
    """{incident id: (its outbox changes for the gate, when its alerts first fired)} — the
    alerts only `with_alerts` (a threshold counting them). Notes are not changes a digest
    announces, so the gate does not see them."""
    n = notifications.c
    result: dict[int, tuple[list[ChangeRecord], list[datetime]]] = {}
    with reader(engine).connect() as conn:
        for start in range(0, len(incident_ids), 500):
            chunk = list(incident_ids)[start:start + 500]
            known = resolve_known_at(conn, chunk)
            fired = alerts_fired(conn, chunk) if with_alerts else {}
            query = (select(n.id, n.incident_id, n.change, n.created_at, n.severity, n.state, n.attempts)
                     .where(n.incident_id.in_(chunk), n.change != ChangeKind.NOTE).order_by(n.id))
            for iid in chunk:
                result[iid] = ([], fired.get(iid, []))
            for r in conn.execute(query):
                row = r._mapping
                at = known.get((row["incident_id"], row["created_at"])) if row["change"] == "resolved" else None
                result[row["incident_id"]][0].append(change_record(row, at))
    return result


def retry_failed(engine: Engine, ids: Sequence[int] | None) -> int:
    """Puts failed rows (all, or these ids) back to pending, e.g. after fixing a webhook."""
    query = notifications.update().where(notifications.c.state == OutboxState.FAILED)
    if ids:
        query = query.where(notifications.c.id.in_(list(ids)))
    with engine.begin() as conn:
        return conn.execute(query.values(state=OutboxState.PENDING, next_attempt_at=None)).rowcount
