"""Helpers for processing tests: store bodies as raw rows, and snapshot what processing wrote."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from datetime import datetime, timedelta, timezone

from sqlalchemy import Engine, select

from incidentctl.db.schema import (
    grafana_alerts,
    incident_alerts,
    incident_events,
    incidents,
    label_key,
    metadata,
    notifications,
    series_labels,
)
from incidentctl.ingest.archive import insert_raw_alerts, raw_alert
from tests.support import T0


def store(engine: Engine, bodies: Iterable[tuple[datetime, bytes]], source: str | None = None) -> list[int]:
    rows = [raw_alert(body, received_at=at, source=source) for at, body in bodies]
    ids = []
    with engine.begin() as conn:
        for i in range(0, len(rows), 1000):
            ids.extend(insert_raw_alerts(conn, rows[i:i + 1000]))
    return ids


def store_spaced(engine: Engine, bodies: Iterable[bytes], start: datetime = T0, step_s: int = 60, **kw) -> list[int]:
    return store(engine, [(start + timedelta(seconds=i * step_s), b) for i, b in enumerate(bodies)], **kw)


def snapshot(engine: Engine) -> dict:
    """Incidents, series, events and outbox rows with database ids replaced by the incident's
    (fingerprint, opened_at), so two databases (or two runs) compare equal when the content is."""
    with engine.connect() as conn:
        inc = [dict(r._mapping) for r in conn.execute(select(incidents).order_by(incidents.c.id))]
        ref = {r["id"]: (r["fingerprint"], r["opened_at"].isoformat()) for r in inc}
        series = sorted((ref[r.incident_id], r.alert_fingerprint, r.status, r.severity, r.starts_at, r.ends_at,
                         r.last_event_at, r.first_seen_at, r.last_seen_at, r.times_seen,
                         json.dumps(r.labels, sort_keys=True), json.dumps(r.annotations, sort_keys=True),
                         r.generator_url, r.silence_url)
                        for r in conn.execute(select(incident_alerts)))
        events = [(ref[r.incident_id], r.kind, r.at, r.actor, r.alert_fingerprint, r.detail)
                  for r in conn.execute(select(incident_events).order_by(incident_events.c.id))]
        outbox = [(ref[r.incident_id], r.change, r.reason, r.severity, r.created_at, r.state, r.attempts)
                  for r in conn.execute(select(notifications).order_by(notifications.c.id))]
        labels = sorted((ref[r.incident_id], r.name, r.value, r.opened_at) for r in conn.execute(select(series_labels)))
    for r in inc:
        del r["id"]
    return {"incidents": sorted(inc, key=lambda r: (r["fingerprint"], r["opened_at"])), "series": series,
            "events": events, "outbox": outbox, "series_labels": labels}


def written_rows(engine: Engine) -> dict[str, list]:
    """Every row processing wrote, in id order; where ids legitimately depend on how rows were
    grouped into statements (a series upserted), without the id and sorted."""
    with engine.connect() as conn:
        def all_of(table, *, keep_id=True):
            found = [dict(r._mapping) for r in conn.execute(select(table).order_by(*table.primary_key.columns))]
            if keep_id:
                return found
            return sorted(tuple(sorted((k, repr(v)) for k, v in r.items() if k != "id")) for r in found)

        raw = [(r.id, r.process_error, r.processed_at is not None) for r in conn.execute(
            select(grafana_alerts.c.id, grafana_alerts.c.process_error, grafana_alerts.c.processed_at))]
        return {"raw": raw, "incidents": all_of(incidents), "events": all_of(incident_events),
                "outbox": all_of(notifications), "series": all_of(incident_alerts, keep_id=False),
                "series_labels": all_of(series_labels)}


def series_label_index(engine: Engine) -> tuple[set, set]:
    """(the series_labels rows, the pairs of every stored series' labels), both as (incident id,
    name, value, opened_at): equal when the index holds exactly what the series carry."""
    with engine.connect() as conn:
        opened = dict(conn.execute(select(incidents.c.id, incidents.c.opened_at)).all())
        index = {(r.incident_id, r.name, r.value, r.opened_at) for r in conn.execute(select(series_labels))}
        carried = {(r.incident_id, _stored(name), _stored(value), opened[r.incident_id])
                   for r in conn.execute(select(incident_alerts.c.incident_id, incident_alerts.c.labels))
                   for name, value in r.labels.items()}
    return index, carried


def _stored(text: str) -> str:
    return label_key(text).decode("utf-8", "surrogatepass")  # what series_labels reads back


def expected_incidents(rows: Iterable[tuple[datetime, bytes]], group_by, reopen_window_s: float) -> dict:
    """What one uninterrupted run must produce, computed in memory with the same pure decision."""
    from incidentctl.incidents.decide import decide_row
    from incidentctl.incidents.parsing import parse_body

    states: dict = {}
    final: dict = {}
    for at, body in rows:
        try:
            decided = decide_row(states, parse_body(body, at), group_by=group_by,
                                 reopen_window=timedelta(seconds=reopen_window_s))
        except Exception:  # as `process`: the row's error, nothing applied
            continue
        for _, fp, decision in decided:
            if decision.changed and decision.state is not None:
                states[fp] = decision.state
                final[(decision.state.fingerprint, decision.state.opened_at)] = decision.state  # newest copy
    return {key: _incident_summary(s) for key, s in final.items()}


def _incident_summary(s) -> tuple:
    return (s.status, s.severity, s.alert_count, s.reopen_count, len(s.series), s.series_firing, s.resolved_at,
            sorted((fp, x.status, x.times_seen) for fp, x in s.series.items()))


def database_incidents(engine: Engine) -> dict:
    with engine.connect() as conn:
        series: dict = {}
        for r in conn.execute(select(incident_alerts)):
            series.setdefault(r.incident_id, []).append((r.alert_fingerprint, r.status, r.times_seen))
        found = [((r.fingerprint, r.opened_at), (r.status, r.severity, r.alert_count, r.reopen_count, r.series_count,
                                                  r.series_firing, r.resolved_at, sorted(series.get(r.id, []))))
                 for r in conn.execute(select(incidents))]
    assert len({key for key, _ in found}) == len(found), "twin incidents"
    return dict(found)


def checksums(engine: Engine) -> dict:
    """Row count and a digest of every row, per table: equal before and after means nothing was written."""
    out = {}
    with engine.connect() as conn:
        for table in metadata.sorted_tables:
            rows = conn.execute(select(table).order_by(*table.primary_key.columns)).all()
            out[table.name] = (len(rows), hashlib.sha256(repr(rows).encode()).hexdigest())
    return out


def process_all(engine: Engine, rules=None, *, batch_size: int = 1000, **options):
    """`process_pending` as `incidentctl process` runs it by default: the default rules (or
    `rules`), batches of 1,000, the real clock. `options`: limit, progress, cache."""
    from incidentctl.config import load_settings
    from incidentctl.incidents.model import Rules
    from incidentctl.incidents.processor import process_pending

    rules = rules if rules is not None else Rules.configured(load_settings({}))
    return process_pending(engine, rules, batch_size=batch_size, clock=lambda: datetime.now(timezone.utc), **options)
