"""Events that arrive "late", through the receiver (ASGI app), `process`, `list` and `show`, on
SQLite and MariaDB: the sender's own resolve with an end before the firing's start is applied,
a late resolve of an earlier episode is ignored, and every ignored event is on the timeline."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select

from incidentctl.db.schema import incident_events
from incidentctl.ingest.receiver.app import Receiver
from tests.support.asgi import call
from tests.support.cli import invoke

T1 = datetime(2026, 12, 6, 4, 22, 53, 784822, tzinfo=timezone.utc)
LABELS = {"alertname": "DiskAlmostFull", "cluster": "prod-eu", "severity": "critical", "instance": "db-1:9100"}
FINGERPRINT = "2ba8ab1fb1df2d4c"


def go_time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f") + "Z"


def am(status: str, starts: datetime, ends: datetime | None = None) -> bytes:
    """Alertmanager's webhook body for the one alert, as `amtool alert add` makes it send."""
    alert = {"status": status, "labels": LABELS, "annotations": {"summary": "full"},
             "startsAt": go_time(starts), "endsAt": go_time(ends) if ends else "0001-01-01T00:00:00Z",
             "generatorURL": "", "fingerprint": FINGERPRINT}
    return json.dumps({"receiver": "incidentctl", "status": status, "alerts": [alert],
                       "groupLabels": {"alertname": LABELS["alertname"], "cluster": LABELS["cluster"]},
                       "version": "4", "groupKey": "{}:{alertname=\"DiskAlmostFull\", cluster=\"prod-eu\"}"}).encode()


def post(engine, timed_bodies: list[tuple[datetime, bytes]]) -> None:
    """Each body POSTed to the receiver, which stamps it with its time."""
    now = [T1]
    receiver = Receiver(engine, max_body_bytes=1 << 20, write_timeout=5.0, clock=lambda: now[0])
    receiver.start()
    try:
        for at, body in timed_bodies:
            now[0] = at
            response = call(receiver, "POST", "/webhook/alertmanager", body,
                            {"Content-Type": "application/json", "User-Agent": "Alertmanager/0.25.0"})
            assert response.status == 200, response.body
    finally:
        receiver.stop()


def the_incident(db_url: str) -> dict:
    (incident,) = json.loads(invoke("list", "--status", "all", "-o", "json", db=db_url, check=True).output)
    return json.loads(invoke("show", str(incident["id"]), "-o", "json", db=db_url, check=True).output)


def test_alertmanager_resolve_with_an_end_before_the_firing_start_resolves_the_incident(engine, db_url):
    # Real Alertmanager 0.25 (tests/e2e/test_alertmanager.py): firing startsAt T1, then, after
    # `amtool alert add … --end=T1-10m`, resolved with startsAt = endsAt = T1 - 10 min.
    t0 = (T1 - timedelta(minutes=10)).replace(microsecond=0)
    resolved_at = T1 + timedelta(seconds=30)
    post(engine, [(T1 + timedelta(seconds=1), am("firing", T1)), (resolved_at, am("resolved", t0, t0))])
    summary = json.loads(invoke("process", "-o", "json", db=db_url, check=True).output)
    assert (summary["opened"], summary["resolved"], summary["ignored"]) == (1, 1, 0)
    shown = the_incident(db_url)
    assert (shown["status"], shown["resolution"], shown["series_firing"]) == ("resolved", "auto", 0)
    assert shown["resolved_at"] == resolved_at.isoformat().replace("+00:00", "Z")  # not before it opened
    resolve = next(e for e in shown["events"] if e["kind"] == "alert_resolved")
    assert "the sender resolved the firing episode" in resolve["detail"]["reason"]
    assert "resolved" in [e["kind"] for e in shown["events"]]
    assert json.loads(invoke("list", "-o", "json", db=db_url, check=True).output) == []  # nothing left open for ever


def test_late_resolve_of_an_earlier_episode_is_ignored_and_shown(engine, db_url):
    s0, e0, s1 = T1, T1 + timedelta(minutes=5), T1 + timedelta(minutes=10)
    resolve_e0 = am("resolved", s0, e0)
    post(engine, [(s0 + timedelta(seconds=1), am("firing", s0)),
                  (e0 + timedelta(seconds=1), resolve_e0),
                  (s1 + timedelta(seconds=1), am("firing", s1)),  # fires again: reopens
                  (s1 + timedelta(seconds=40), resolve_e0)])  # the first resolve, delivered again late
    summary = json.loads(invoke("process", "-o", "json", db=db_url, check=True).output)
    assert (summary["opened"], summary["resolved"], summary["reopened"], summary["ignored"]) == (1, 1, 1, 1)
    shown = the_incident(db_url)
    assert (shown["status"], shown["series_firing"]) == ("open", 1)  # the new episode still fires
    (ignored,) = [e for e in shown["events"] if e["kind"] == "ignored"]
    assert ignored["detail"]["status"] == "resolved" and ignored["alert_fingerprint"] == FINGERPRINT
    assert ignored["detail"]["reason"].startswith("late resolve of an earlier episode")
    assert ignored["actor"] == "incidentctl" and ignored["raw_alert_id"] is not None
    table = invoke("show", str(shown["id"]), db=db_url, env={"COLUMNS": "250"}, check=True).output
    assert "ignored" in table and "late resolve of an earlier episode" in table
    # a rebuild under the same rules writes the same timeline, ignored entry included
    invoke("rebuild", "--yes", db=db_url, check=True)
    rebuilt = json.loads(invoke("show", str(shown["id"]), "-o", "json", db=db_url, check=True).output)
    assert [{k: e[k] for k in ("kind", "at", "detail", "raw_alert_id")} for e in rebuilt["events"]] == \
        [{k: e[k] for k in ("kind", "at", "detail", "raw_alert_id")} for e in shown["events"]]


def test_repeats_write_no_timeline_entries(engine, db_url):
    # Storms repeat: a firing resent every repeat_interval and a resolve resent are repeats, not
    # ignored events, and add no timeline rows.
    end = T1 + timedelta(minutes=30)
    firing, resolved = am("firing", T1), am("resolved", T1, end)
    post(engine, [(T1 + timedelta(minutes=n), firing) for n in range(1, 6)]
         + [(end + timedelta(seconds=1), resolved), (end + timedelta(seconds=2), resolved)])
    summary = json.loads(invoke("process", "-o", "json", db=db_url, check=True).output)
    assert (summary["opened"], summary["updated"], summary["resolved"], summary["ignored"]) == (1, 5, 1, 0)
    with engine.connect() as conn:
        kinds = dict(conn.execute(select(incident_events.c.kind, func.count()).group_by(incident_events.c.kind)).all())
    assert kinds == {"opened": 1, "alert_firing": 1, "alert_resolved": 1, "resolved": 1}
    assert the_incident(db_url)["alert_count"] == 7


@pytest.mark.parametrize("batch_size", ["1", "1000"])
def test_ignored_entries_do_not_depend_on_batches(engine, db_url, batch_size):
    s1 = T1 + timedelta(minutes=10)
    post(engine, [(T1, am("firing", T1)), (T1 + timedelta(minutes=5), am("resolved", T1, T1 + timedelta(minutes=5))),
                  (T1 + timedelta(minutes=6), am("firing", T1)),  # a late copy of the first firing
                  (s1, am("firing", s1))])
    invoke("process", "--batch-size", batch_size, db=db_url, check=True)
    kinds = [e["kind"] for e in the_incident(db_url)["events"]]
    assert kinds == ["opened", "alert_firing", "alert_resolved", "resolved", "ignored", "alert_firing", "reopened"]
