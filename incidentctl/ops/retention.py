"""Retention: deletes old raw webhook rows in small batches; incidents and their timelines stay.

A raw row (`grafana_alerts`) is deleted when it was received before the cut-off AND it has been
processed AND no event of an unresolved incident names it (`incident_events.raw_alert_id`).
So unprocessed rows wait for `process`, and an incident still open keeps the rows that opened or
changed it. Repeats that changed nothing have no event and go with the rest. Events of resolved
incidents keep their `raw_alert_id`, which then names a deleted row.

Each batch is one short transaction deleting at most `batch` rows by primary key, so MySQL
locks only those rows, never the table, and the receiver keeps inserting meanwhile. Rows are
walked in (received_at, id) keyset order on the `received_at` index; the rows of unresolved
incidents are re-read every batch (few: open incidents are few, so `raw_alert_id` needs no index).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, Engine, and_, delete, func, or_, select, true

from incidentctl.db.engine import database_errors, reader
from incidentctl.db.schema import grafana_alerts, incident_events, incidents
from incidentctl.incidents.model import UNRESOLVED

DEFAULT_BATCH = 1000


@dataclass(frozen=True)
class PurgeSummary:
    """What a purge deleted (or, dry run, would delete) and what it kept on purpose."""

    cutoff: datetime
    dry_run: bool
    deleted: int  # raw rows deleted (dry run: that would be deleted)
    bytes: int  # their body bytes
    batches: int  # transactions used
    kept_unprocessed: int  # older than the cut-off but not processed yet
    kept_open: int  # older than the cut-off but named by an event of an unresolved incident


def purge(
    engine: Engine,
    older_than: timedelta | float,
    now: datetime,
    dry_run: bool = False,
    batch: int = DEFAULT_BATCH,
    progress: Callable[[int, int], None] | None = None,
) -> PurgeSummary:
    """Deletes processed raw rows received before `now - older_than` (seconds or timedelta),
    `batch` rows per transaction; calls progress(examined, total). Raises ValueError for a
    non-positive age or batch, DatabaseUnavailable when the database cannot be reached."""
    age = older_than if isinstance(older_than, timedelta) else timedelta(seconds=float(older_than))
    if age <= timedelta(0):
        raise ValueError(f"retention must be positive, got {age}")
    if batch < 1:
        raise ValueError(f"batch must be at least 1, got {batch}")
    cutoff = now - age
    old = grafana_alerts.c.received_at < cutoff
    processed = grafana_alerts.c.processed_at.is_not(None)
    if dry_run:
        engine = reader(engine)
    with database_errors(engine):
        with engine.connect() as conn:
            total = conn.execute(select(func.count()).where(old, processed)).scalar_one()
            kept_unprocessed = conn.execute(select(func.count()).where(old, ~processed)).scalar_one()
            conn.rollback()
        deleted = size = batches = examined = kept_open = 0
        after: tuple[datetime, int] | None = None  # keyset: (received_at, id) of the last row seen
        while True:
            with engine.begin() as conn:
                # Re-read every batch: a row just processed into an open incident must stay.
                protected = _protected_ids(conn)
                rows = conn.execute(
                    select(grafana_alerts.c.id, grafana_alerts.c.received_at, grafana_alerts.c.body_size)
                    .where(old, processed, _after(after))
                    .order_by(grafana_alerts.c.received_at, grafana_alerts.c.id)
                    .limit(batch)
                ).all()
                if not rows:
                    break
                after = (rows[-1].received_at, rows[-1].id)
                doomed = [r for r in rows if r.id not in protected]
                if doomed and not dry_run:
                    conn.execute(
                        delete(grafana_alerts).where(grafana_alerts.c.id.in_([r.id for r in doomed]), processed)
                    )
            batches += 1
            examined += len(rows)
            deleted += len(doomed)
            size += sum(r.body_size for r in doomed)
            kept_open += len(rows) - len(doomed)
            if progress is not None:
                progress(examined, max(total, examined))
    return PurgeSummary(cutoff, dry_run, deleted, size, batches, kept_unprocessed, kept_open)


def _protected_ids(conn: Connection) -> set[int]:
    """Raw rows named by an event of an unresolved incident (few: open incidents are few)."""
    query = (
        select(incident_events.c.raw_alert_id)
        .join(incidents, incidents.c.id == incident_events.c.incident_id)
        .where(incidents.c.status.in_(UNRESOLVED), incident_events.c.raw_alert_id.is_not(None))
        .distinct()
    )
    return set(conn.execute(query).scalars())


def _after(after: tuple[datetime, int] | None):
    if after is None:
        return true()
    received_at, row_id = after
    return or_(
        grafana_alerts.c.received_at > received_at,
        and_(grafana_alerts.c.received_at == received_at, grafana_alerts.c.id > row_id),
    )
