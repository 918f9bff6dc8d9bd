"""`report` on a small hand-computed history, inserted directly with SQLAlchemy Core.

In the window [2026-11-01, 2026-11-04):
  #1 fp A api/critical  opened 11-01 10:00, acked 10:04 (event) and 10:20, resolved 10:30 and reopened
                        10:40 by a person (not a flap), resolved 11:00 manual, 6 alerts
  #2 fp B api/warning   opened 11-01 12:00, resolved 12:03 auto, no ack, 2 alerts      → short-lived
  #3 fp B api/warning   opened 11-02 08:00, resolved 08:02 auto, no ack, 1 alert       → short-lived
  #4 fp C db/critical   opened 11-02 09:00, acknowledged_at 09:10 (no event), resolved 10:30 auto,
                        reopened twice by its alerts, 12 alerts                       → flapping
  #5 fp D (no service)  opened 11-03 23:00, open, no ack, 3 alerts
Outside: fp A opened 10-31 23:00, and fp E opened exactly at `until`.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import date, datetime, timedelta, timezone

import pytest
from sqlalchemy import insert

from incidentctl.db.schema import grafana_alerts, incident_events, incidents
from incidentctl.history.reports import DayVolume, build_report
from incidentctl.history.stats import Summary
from tests.support import ROOT
from tests.support.cli import invoke

SINCE = datetime(2026, 11, 1, tzinfo=timezone.utc)
UNTIL = datetime(2026, 11, 4, tzinfo=timezone.utc)


def at(day: int, hour: int, minute: int = 0, month: int = 11) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=timezone.utc)


def _incident(conn, fp, service, severity, opened, *, resolved=None, resolution=None, acked=None, alerts=1,
              reopens=0) -> int:
    row = dict(fingerprint=fp, active_key=None if resolved else fp, status="resolved" if resolved else "open",
               resolution=resolution, title=f"{fp} on {service}", severity=severity, alertname=f"Alert{fp}",
               service=service, opened_at=opened, last_alert_at=opened, acknowledged_at=acked,
               resolved_at=resolved, alert_count=alerts, series_count=1, series_firing=0 if resolved else 1,
               reopen_count=reopens)
    return conn.execute(insert(incidents), row).inserted_primary_key[0]


def _raw(conn, received_at, alert_count):
    conn.execute(insert(grafana_alerts), dict(received_at=received_at, source="grafana", body=b"{}",
                                               body_sha256="0" * 64, body_size=2, alert_count=alert_count))


@pytest.fixture
def history(engine):
    with engine.begin() as conn:
        first = _incident(conn, "A", "api", "critical", at(1, 10), resolved=at(1, 11), resolution="manual",
                          acked=at(1, 10, 20), alerts=6, reopens=1)
        for minute, kind in ((4, "acknowledged"), (20, "acknowledged"), (30, "resolved"), (40, "reopened")):
            conn.execute(insert(incident_events), dict(incident_id=first, kind=kind, at=at(1, 10, minute), actor="ana"))
        _incident(conn, "B", "api", "warning", at(1, 12), resolved=at(1, 12, 3), resolution="auto", alerts=2)
        _incident(conn, "B", "api", "warning", at(2, 8), resolved=at(2, 8, 2), resolution="auto", alerts=1)
        flappy = _incident(conn, "C", "db", "critical", at(2, 9), resolved=at(2, 10, 30), resolution="auto",
                           acked=at(2, 9, 10), alerts=12, reopens=2)
        for minute in (20, 50):
            conn.execute(insert(incident_events), dict(incident_id=flappy, kind="reopened", at=at(2, 9, minute),
                                                       actor="incidentctl"))
        _incident(conn, "D", None, "info", at(3, 23), alerts=3)
        _incident(conn, "A", "api", "critical", at(31, 23, month=10), resolved=at(1, 0, 30), resolution="auto",
                  acked=at(31, 23, 1, month=10), alerts=50, reopens=5)
        _incident(conn, "E", "api", "warning", UNTIL, alerts=1)
        for received, count in [(at(1, 10), 2), (at(1, 12), 1), (at(1, 23, 59), 1), (at(2, 8), 5),
                                (at(2, 9), None), (at(31, 22, month=10), 7), (UNTIL, 3)]:
            _raw(conn, received, count)
    return engine


def test_report_figures_equal_the_hand_computed_values(history):
    report = build_report(history, since=SINCE, until=UNTIL)
    m = report.total
    assert (m.opened, m.resolved, m.unresolved, m.auto_resolved, m.manual_resolved) == (5, 4, 1, 3, 1)
    assert (m.acknowledged, m.never_acked, m.flapping, m.reopens, m.short_lived) == (2, 3, 1, 2, 2)
    assert m.mtta == Summary(2, 420, 420, 600)  # 4m (first ack event, not the later one) and 10m
    assert m.mttr == Summary(4, 2325, 1890, 5400)  # 60m, 3m, 2m, 90m
    assert m.alerts_per_incident == Summary(5, 4.8, 3, 12)
    # A's reopen was a person's: not a flap, not a page, no advice for its rule
    assert [(n.fingerprint, n.pages, n.incidents, n.reopens, n.short_lived) for n in report.noisy] == [
        ("C", 3, 1, 2, 0), ("B", 2, 2, 0, 2)]
    assert report.noisy[0].suggestion.startswith("flaps")
    assert report.noisy[1].suggestion.startswith("resolves by itself")
    assert report.volume == [DayVolume(date(2026, 11, 1), 3, 4), DayVolume(date(2026, 11, 2), 2, 5),
                             DayVolume(date(2026, 11, 3), 0, 0)]


def test_report_by_service(history):
    report = build_report(history, since=SINCE, until=UNTIL, by="service")
    groups = dict(report.groups)
    assert [key for key, _ in report.groups] == ["api", "(none)", "db"]  # most incidents first, then by name
    api = groups["api"]
    assert (api.opened, api.resolved, api.short_lived, api.never_acked) == (3, 3, 2, 2)
    assert api.mtta == Summary(1, 240, 240, 240)
    assert api.mttr == Summary(3, 1300, 180, 3600)
    assert (groups["db"].flapping, groups["(none)"].unresolved) == (1, 1)


def test_report_on_an_empty_window(history):
    report = build_report(history, since=at(20, 0), until=at(21, 0))
    assert report.total.opened == 0 and report.total.mttr == Summary(0, None, None, None)
    assert report.noisy == [] and report.volume == [DayVolume(date(2026, 11, 20), 0, 0)]


def test_report_cli_json_csv_and_table(history, db_url):
    env = {"INCIDENTCTL_DATABASE_URL": db_url}
    window = ["--since", "2026-11-01T00:00:00Z", "--until", "2026-11-04T00:00:00Z"]
    result = invoke("report", *window, "--output", "json", env=env)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert (data["total"]["opened"], data["total"]["mttr"]["median"]) == (5, 1890)
    assert data["volume_per_day"][0] == {"day": "2026-11-01", "requests": 3, "alerts": 4}

    result = invoke("report", *window, "--by", "service", "-o", "csv", env=env)
    assert result.exit_code == 0, result.output
    rows = {r["group"]: r for r in csv.DictReader(io.StringIO(result.stdout))}
    assert list(rows) == ["api", "(none)", "db", "all"]
    assert (float(rows["api"]["mttr_p90"]), float(rows["all"]["mtta_mean"]), rows["db"]["reopens"]) == (3600, 420, "2")

    result = invoke("report", *window, env=env)
    assert result.exit_code == 0, result.output
    assert "Noisiest fingerprints" in result.stdout and "lengthen `for:`" in result.stdout
    assert "7m / 7m / 10m" in result.stdout  # MTTA mean / median / p90

    result = invoke("report", "--since", "soon", env=env)
    assert result.exit_code == 2 and "not a duration or ISO time" in result.output
    result = invoke("report", *window, "--by", "team", env=env)
    assert result.exit_code == 2


def test_report_window_selects_incidents_by_opening_time(history, db_url):
    result = invoke("report", "--until", "2026-11-02T00:00:00Z", "--since", "2026-10-30",
                    "-o", "json", env={"INCIDENTCTL_DATABASE_URL": db_url})
    data = json.loads(result.stdout)
    assert data["total"]["opened"] == 3  # the 10-31 incident and #1, #2
    assert data["total"]["reopens"] == 5
    assert [d["alerts"] for d in data["volume_per_day"]] == [0, 7, 4]  # 10-30, 10-31, 11-01


@pytest.mark.parametrize("command", ["export", "replay", "report", "simulate"])
def test_history_commands_have_help_and_a_docs_section(command):
    result = invoke(command, "--help")
    assert result.exit_code == 0 and len(result.stdout) > 200
    cli_doc = (ROOT / "docs" / "CLI.md").read_text()
    assert f"## `incidentctl {command}`" in cli_doc


def test_report_counts_only_reopens_made_by_alerts_as_flaps(engine, db_url):
    # Through the CLI: "Flappy" fires, resolves and fires again within the reopen window (the
    # processor reopens it: a flap); "Handled" is resolved and reopened by a person, twice.
    from tests.support import T0
    from tests.support.processing import store

    def am(alertname, status, start, end=None):
        alert = {"status": status, "labels": {"alertname": alertname, "service": "api"}, "startsAt": start,
                 "endsAt": end or "0001-01-01T00:00:00Z"}
        return json.dumps({"version": "4", "status": status, "alerts": [alert]}).encode()

    store(engine, [(T0, am("Flappy", "firing", "2026-01-05T09:00:00Z")),
                   (T0 + timedelta(minutes=1), am("Handled", "firing", "2026-01-05T09:01:00Z")),
                   (T0 + timedelta(minutes=5),
                    am("Flappy", "resolved", "2026-01-05T09:00:00Z", "2026-01-05T09:05:00Z")),
                   (T0 + timedelta(minutes=10), am("Flappy", "firing", "2026-01-05T09:10:00Z"))])
    env = {"INCIDENTCTL_DATABASE_URL": db_url}
    assert json.loads(invoke("process", "-o", "json", env=env, check=True).stdout)["reopened"] == 1
    listed = json.loads(invoke("list", "-o", "json", env=env, check=True).stdout)
    handled = next(i["id"] for i in listed if i["alertname"] == "Handled")
    for _ in range(2):
        invoke("resolve", str(handled), "--by", "alice", env=env, check=True)
        invoke("reopen", str(handled), "--by", "alice", env=env, check=True)
    window = ["--since", "2026-01-05T00:00:00Z", "--until", "2026-01-06T00:00:00Z"]
    data = json.loads(invoke("report", *window, "-o", "json", env=env, check=True).stdout)
    assert (data["total"]["opened"], data["total"]["flapping"], data["total"]["reopens"]) == (2, 1, 1)
    # only the alert flap is advised on; "Handled" (one incident, no flap) is not noisy at all
    assert [(n["title"], n["reopens"], n["pages"], n["suggestion"].split(":")[0])
            for n in data["noisy_fingerprints"]] == [("Flappy (api)", 1, 2, "flaps")]
    by_alertname = invoke("report", *window, "--by", "alertname", "-o", "csv", env=env, check=True).stdout
    by_name = {row["group"]: row for row in csv.DictReader(io.StringIO(by_alertname))}
    assert (by_name["Handled"]["flapping"], by_name["Flappy"]["flapping"]) == ("0", "1")
