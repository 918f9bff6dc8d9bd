"""Retention (`purge`): which raw rows go, which stay, batching, and the command around it."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from incidentctl.config import load_settings
from incidentctl.db.schema import grafana_alerts, incident_events, incidents
from incidentctl.errors import ConfigError
from incidentctl.ops.retention import purge
from tests.support.cli import invoke
from tests.support.factories import count_rows

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc)
DAY = timedelta(days=1)


def _raw(conn, received_at, processed=True):
    body = f'{{"received": "{received_at.isoformat()}"}}'.encode()
    return conn.execute(grafana_alerts.insert(), {
        "received_at": received_at, "source": "grafana", "body": body, "body_sha256": hashlib.sha256(body).hexdigest(),
        "body_size": len(body), "processed_at": received_at + timedelta(seconds=1) if processed else None,
    }).inserted_primary_key[0]


def _incident_with_event(conn, status, raw_id, opened_at):
    incident_id = conn.execute(incidents.insert(), {
        "fingerprint": f"fp{raw_id}", "active_key": None if status == "resolved" else f"fp{raw_id}", "status": status,
        "title": "disk full", "severity": "critical", "opened_at": opened_at, "last_alert_at": opened_at,
    }).inserted_primary_key[0]
    conn.execute(incident_events.insert(), {"incident_id": incident_id, "kind": "opened", "at": opened_at,
                                            "actor": "incidentctl", "raw_alert_id": raw_id})
    return incident_id


def _seed(engine, now):
    """Rows of every kind; returns the ids that must survive a 90-day purge."""
    old = now - 100 * DAY
    with engine.begin() as conn:
        doomed = [_raw(conn, old + timedelta(minutes=i)) for i in range(3)]  # old, processed, nobody's
        of_resolved = _raw(conn, old + timedelta(hours=1))  # old, of a resolved incident: goes
        _incident_with_event(conn, "resolved", of_resolved, old)
        of_open = _raw(conn, old + timedelta(hours=2))  # old, named by an open incident: stays
        _incident_with_event(conn, "open", of_open, old)
        of_acked = _raw(conn, old + timedelta(hours=3))  # acknowledged is unresolved too: stays
        _incident_with_event(conn, "acknowledged", of_acked, old)
        unprocessed = _raw(conn, old - DAY, processed=False)  # old but never processed: stays
        recent = _raw(conn, now - 89 * DAY)  # younger than the cut-off: stays
    return doomed + [of_resolved], {of_open, of_acked, unprocessed, recent}


def _ids(engine):
    with engine.connect() as conn:
        return set(conn.execute(select(grafana_alerts.c.id)).scalars())


def test_purge_deletes_old_processed_rows_and_keeps_unprocessed_and_open_incidents(engine):
    doomed, kept = _seed(engine, NOW)
    preview = purge(engine, 90 * DAY, NOW, dry_run=True)
    assert (preview.deleted, preview.kept_unprocessed, preview.kept_open, preview.dry_run) == (4, 1, 2, True)
    assert _ids(engine) == set(doomed) | kept  # a dry run deletes nothing
    summary = purge(engine, 90 * 86400.0, NOW)  # seconds work too (the setting's form)
    assert (summary.deleted, summary.kept_unprocessed, summary.kept_open) == (4, 1, 2)
    assert summary.cutoff == NOW - 90 * DAY and summary.bytes > 0 and summary.bytes == preview.bytes
    assert _ids(engine) == kept
    # incidents and their timelines stay, even the resolved one
    assert count_rows(engine, incidents) == 3 and count_rows(engine, incident_events) == 3
    assert purge(engine, 90 * DAY, NOW).deleted == 0  # running again finds nothing


def test_purge_works_in_batches_and_reports_progress(engine):
    with engine.begin() as conn:
        for i in range(7):
            _raw(conn, NOW - 200 * DAY + timedelta(seconds=i))
    seen = []
    summary = purge(engine, 90 * DAY, NOW, batch=3, progress=lambda done, total: seen.append((done, total)))
    assert (summary.deleted, summary.batches) == (7, 3)  # 3 + 3 + 1 rows, one transaction each
    assert seen == [(3, 7), (6, 7), (7, 7)]
    assert _ids(engine) == set()


def test_purge_keyset_passes_rows_it_keeps_without_looping(engine):
    # Kept rows at the front of every batch must not stall the walk: batch=1 over kept rows.
    doomed, kept = _seed(engine, NOW)
    summary = purge(engine, 90 * DAY, NOW, batch=1)
    assert summary.deleted == len(doomed) and summary.batches == len(doomed) + 2
    assert _ids(engine) == kept


@pytest.mark.parametrize("older_than, batch", [
    (timedelta(0), 10),  # zero retention would delete everything processed: refused
    (-5.0, 10),  # negative: refused
    (DAY, 0),  # a batch of nothing never finishes: refused
])
def test_purge_refuses_nonsense(engine, older_than, batch):
    with pytest.raises(ValueError):
        purge(engine, older_than, NOW, batch=batch)


def test_purge_older_than_setting():
    assert load_settings({"INCIDENTCTL_PURGE_OLDER_THAN": "90d"}).purge_older_than == 90 * 86400
    assert load_settings({}).purge_older_than == 0.0  # default: off
    assert load_settings({"INCIDENTCTL_PURGE_OLDER_THAN": "off"}).purge_older_than == 0.0
    with pytest.raises(ConfigError):
        load_settings({"INCIDENTCTL_PURGE_OLDER_THAN": "ninety days"})


def test_purge_command(engine, db_url, cli_env):
    now = datetime.now(timezone.utc)
    doomed, kept = _seed(engine, now)
    result = invoke("purge", "--older-than", "90d", "--dry-run", "--output", "json", env=cli_env)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["deleted"], report["dry_run"], report["kept_open"]) == (4, True, 2)
    result = invoke("purge", "--older-than", "90d", "--batch-size", "2", env=cli_env)
    assert result.exit_code == 0 and "deleted 4 raw rows" in result.stdout and "in 3 batches" in result.stdout
    assert _ids(engine) == kept
    # The setting stands in for --older-than.
    result = invoke("purge", "-o", "json", env={**cli_env, "INCIDENTCTL_PURGE_OLDER_THAN": "30d"})
    assert result.exit_code == 0 and json.loads(result.stdout)["deleted"] == 1  # the 89-day-old row


@pytest.mark.parametrize("args, message", [
    (["purge"], "give --older-than"),  # no age and no setting: usage error, nothing deleted
    (["purge", "--older-than", "soon"], "not a duration"),  # unparsable
    (["purge", "--older-than", "0s"], "positive"),  # zero would delete everything processed
])
def test_purge_command_usage_errors_delete_nothing(engine, cli_env, args, message):
    doomed, kept = _seed(engine, datetime.now(timezone.utc))
    result = invoke(*args, env=cli_env)
    assert result.exit_code == 2 and message in result.output
    assert _ids(engine) == set(doomed) | kept
