"""The Grafana dashboard and provisioning files: their model, and every panel's SQL run on MariaDB.

The SQL test expands each target's rawSql exactly as Grafana's MySQL data source would
(tests/support/grafana_mysql.py) for a fixed two-day range, runs it against a database seeded with
known incidents, raw rows and notifications, and checks the columns the panel type needs
and the values those rows must produce.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
import yaml
from sqlalchemy import create_engine

from incidentctl.config import SETTINGS
from incidentctl.db.schema import deliveries, grafana_alerts, incidents, notifications
from incidentctl.ops import grafana
from tests.support.cli import invoke
from tests.support.grafana_mysql import MacroError, expand, fixed_range, variable_values

START, END = fixed_range(days=2)
INTERVAL = "1h"
NUMBER = (int, float, Decimal)


def at(day: int, hour: int, minute: int = 0, second: int = 0) -> datetime:
    return datetime(2026, 3, day, hour, minute, second, tzinfo=timezone.utc)


def epoch(moment: datetime) -> int:
    return int(moment.timestamp())


def test_dashboard_model_is_a_grafana_mysql_dashboard():
    board = grafana.dashboard()
    names = {v["name"]: v for v in board["templating"]["list"]}
    assert names["datasource"]["type"] == "datasource" and names["datasource"]["query"] == "mysql"
    objective = names["objective"]
    assert objective["type"] == "custom" and float(objective["current"]["value"]) < 100
    assert [o["value"] for o in objective["options"]] == objective["query"].split(",")
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    titles = " | ".join(p["title"] for p in board["panels"]).lower()
    for wanted in ("severity", "opened / resolved", "mtta / mttr", "alert volume", "ingestion rate", "backlog",
                   "notifications failing", "noisy fingerprints", "error budget"):
        assert wanted in titles, wanted
    for panel in board["panels"]:
        assert set(panel["gridPos"]) == {"h", "w", "x", "y"} and panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24
        assert panel["datasource"] == {"type": "mysql", "uid": "${datasource}"}
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["rawQuery"] is True and target["editorMode"] == "code"
            assert target["format"] in ("time_series", "table")
            assert target["datasource"] == panel["datasource"]
            # "Now" must not depend on the session time zone: UTC_TIMESTAMP(6), never NOW().
            called = set(re.findall(r"[A-Z_]+\(?\)?", target["rawSql"].upper()))
            assert not {"NOW()", "CURRENT_TIMESTAMP", "SYSDATE()"} & called
        assert len({t["refId"] for t in panel["targets"]}) == len(panel["targets"])


def test_provisioning_files_match_the_dashboard_and_the_receiver():
    datasource = yaml.safe_load(grafana.read(grafana.DATASOURCE))["datasources"][0]
    board_default = variable_values(grafana.dashboard())["datasource"]
    assert (datasource["type"], datasource["uid"]) == ("mysql", board_default)
    assert datasource["jsonData"]["timezone"] == "+00:00"  # DATETIMEs hold UTC
    receiver = yaml.safe_load(grafana.read(grafana.CONTACT_POINT))["contactPoints"][0]["receivers"][0]
    assert receiver["type"] == "webhook" and receiver["settings"]["url"] == grafana.DEFAULT_WEBHOOK_URL
    assert receiver["settings"]["url"].endswith("/webhook/grafana")
    # The commented auth options name the receiver's real settings.
    text = grafana.read(grafana.CONTACT_POINT)
    envs = {s.env for s in SETTINGS}
    for env in ("INCIDENTCTL_AUTH_BEARER_TOKEN", "INCIDENTCTL_AUTH_BASIC_PASSWORD", "INCIDENTCTL_HMAC_SECRET"):
        assert env in text and env in envs
    for key in ("authorization_scheme:", "authorization_credentials:", "username:", "password:", "hmacConfig:",
                "timestampHeader:"):
        assert f"# {key}" in text or f"#   {key}" in text, key
    provider = yaml.safe_load(grafana.read(grafana.DASHBOARD_PROVIDER))["providers"][0]
    assert provider["type"] == "file" and provider["options"]["path"]


def test_cli_prints_each_file_and_takes_a_contact_point_url():
    result = invoke("grafana", "dashboard")
    assert result.exit_code == 0 and json.loads(result.stdout)["uid"] == "incidentctl-sre"
    result = invoke("grafana", "datasource")
    assert result.exit_code == 0 and result.stdout == grafana.read(grafana.DATASOURCE)
    result = invoke("grafana", "provider")
    assert result.exit_code == 0 and "providers:" in result.stdout
    url = "https://alerts.example.com:8443/webhook/grafana?team=sre#x"
    result = invoke("grafana", "contact-point", "--url", url)
    assert result.exit_code == 0
    receiver = yaml.safe_load(result.stdout)["contactPoints"][0]["receivers"][0]
    assert receiver["settings"]["url"] == url
    # A URL that is not http(s) is a usage error, and nothing is printed to stdout.
    result = invoke("grafana", "contact-point", "--url", "incidentctl:9080")
    assert result.exit_code == 2 and "not an absolute http(s) URL" in result.output


def test_expansion_follows_grafana_and_refuses_what_grafana_refuses():
    sql = "SELECT $__timeGroupAlias(t, $__interval, 0), $objective FROM x WHERE $__timeFilter(t)"
    out = expand(sql, START, END, "5m", {"objective": "99.5"})
    assert out == (f'SELECT UNIX_TIMESTAMP(t) DIV 300 * 300 AS "time", 99.5 FROM x '
                   f"WHERE t BETWEEN FROM_UNIXTIME({epoch(START)}) AND FROM_UNIXTIME({epoch(END)})")
    with pytest.raises(MacroError):  # Grafana refuses user() in a query
        expand("SELECT user() FROM x", START, END, "5m", {})
    with pytest.raises(MacroError):  # and macros it does not know
        expand("SELECT $__nope(x)", START, END, "5m", {})


def _raw(received_at, source, alert_count, processed=True, parse_error=None, process_error=None):
    body = json.dumps({"source": source, "at": received_at.isoformat()}).encode()
    return {"received_at": received_at, "source": source, "body": body, "body_sha256": hashlib.sha256(body).hexdigest(),
            "body_size": len(body), "alert_count": alert_count, "status": "firing", "parse_error": parse_error,
            "processed_at": received_at + timedelta(seconds=5) if processed else None, "process_error": process_error}


def _incident(fp, severity, status, opened, *, ack=None, resolved=None, alerts=1, reopens=0):
    return {"fingerprint": fp, "active_key": None if status == "resolved" else fp, "status": status,
            "resolution": "auto" if status == "resolved" else None, "title": f"{fp} {severity}", "severity": severity,
            "opened_at": opened, "last_alert_at": opened, "acknowledged_at": ack, "resolved_at": resolved,
            "alert_count": alerts, "reopen_count": reopens}


def _seed(engine, now):
    with engine.begin() as conn:
        ids = {}
        for key, row in {
            "i1": _incident("fpA", "critical", "resolved", at(1, 10), ack=at(1, 10, 5), resolved=at(1, 12), alerts=10,
                            reopens=1),
            "i2": _incident("fpB", "critical", "resolved", at(1, 11), resolved=at(1, 13), alerts=3),
            "i3": _incident("fpA-w", "warning", "open", at(1, 10, 30), alerts=5),
            "i4": _incident("fpC", "critical", "acknowledged", at(2, 23), ack=at(2, 23, 10), alerts=1),
            "i5": _incident("fpD", "error", "resolved", datetime(2026, 2, 20, tzinfo=timezone.utc),
                            resolved=datetime(2026, 2, 20, 1, tzinfo=timezone.utc), alerts=50),
        }.items():
            ids[key] = conn.execute(incidents.insert(), row).inserted_primary_key[0]
        conn.execute(incidents.update().where(incidents.c.id == ids["i3"]).values(fingerprint="fpA"))
        conn.execute(grafana_alerts.insert(), [
            _raw(at(1, 10, 0, 30), "grafana", 2),
            _raw(at(1, 10, 20), "alertmanager", 3),
            _raw(at(1, 11), "grafana", 1, process_error="boom"),
            _raw(at(1, 12), "unknown", None, parse_error="not JSON"),
            _raw(now - timedelta(minutes=10), "grafana", 1, processed=False),
            _raw(now - timedelta(minutes=5), "grafana", 1, processed=False),
        ])
        base = {"reason": None, "route": "default", "next_attempt_at": None, "sent_at": None, "silence_id": None}
        conn.execute(notifications.insert(), [
            {**base, "incident_id": ids["i1"], "change": "opened", "severity": "critical", "created_at": at(1, 10),
             "state": "sent", "attempts": 1, "last_error": None},
            {**base, "incident_id": ids["i1"], "change": "resolved", "severity": "critical", "created_at": at(1, 12),
             "state": "failed", "attempts": 1, "last_error": "404 no_service"},
            {**base, "incident_id": ids["i4"], "change": "opened", "severity": "critical",
             "created_at": now - timedelta(minutes=30), "state": "pending", "attempts": 2, "last_error": "timeout"},
        ])
        conn.execute(deliveries.insert(), [
            {"attempted_at": at(1, 10), "route": "default", "changes": 1, "outcome": "ok", "status": 200},
            {"attempted_at": at(1, 11), "route": "default", "changes": 2, "outcome": "unknown", "status": None},  # late
            {"attempted_at": at(1, 12), "route": "default", "changes": 1, "outcome": "sending", "status": None},  # died
            {"attempted_at": at(1, 13), "route": "default", "changes": 1, "outcome": "retryable", "status": None},
            {"attempted_at": END + timedelta(hours=1), "route": "default", "changes": 1, "outcome": "unknown",
             "status": None},  # outside the time range
        ])


def _run(raw_conn, sql):
    with raw_conn.cursor() as cursor:
        cursor.execute(sql)
        names = [d[0] for d in cursor.description]
        return names, [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _check_shape(panel, target, names, rows):
    where = f"{panel['title']} / {target['refId']}"
    if target["format"] == "time_series":
        # Grafana needs a `time` column, numeric values, an optional string `metric`, sorted by time.
        assert "time" in names, where
        times = [r["time"] for r in rows]
        assert times == sorted(times), where
        assert all(isinstance(t, int) and epoch(START) <= t <= epoch(END) for t in times), where
        for name in names:
            if name == "metric":
                assert all(isinstance(r[name], str) for r in rows), where
            elif name != "time":
                assert all(r[name] is None or isinstance(r[name], NUMBER) for r in rows), where
    elif panel["type"] == "stat":
        assert len(rows) == 1, where  # one row; each column is a number the stat reduces
        assert all(isinstance(v, NUMBER) for v in rows[0].values()), where
    elif panel["type"] == "bargauge":
        strings = [n for n in names if all(isinstance(r[n], str) for r in rows)]
        numbers = [n for n in names if all(isinstance(r[n], NUMBER) for r in rows)]
        assert len(strings) == 1 and numbers and len(strings) + len(numbers) == len(names), where
    else:
        assert panel["type"] == "table" and names, where


def _grafana_session(db_url, session_timezone):
    """A connection set up like Grafana's: a server in another zone, then the data source's time_zone."""
    engine = create_engine(db_url, connect_args={"init_command": "SET time_zone = '+05:00'"})
    raw = engine.raw_connection()
    with raw.cursor() as cursor:
        if session_timezone:
            cursor.execute(f"SET time_zone = '{session_timezone}'")
        # MySQL 8 refuses what ONLY_FULL_GROUP_BY refuses; make MariaDB as strict.
        cursor.execute("SET SESSION sql_mode = CONCAT(@@sql_mode, ',ONLY_FULL_GROUP_BY')")
    return engine, raw


@pytest.mark.backends("mysql")
def test_every_panel_query_runs_on_mariadb_with_the_columns_its_panel_needs(engine, db_url):
    now = datetime.now(timezone.utc)
    _seed(engine, now)
    board = grafana.dashboard()
    variables = variable_values(board)
    tz = yaml.safe_load(grafana.read(grafana.DATASOURCE))["datasources"][0]["jsonData"]["timezone"]
    session_engine, raw = _grafana_session(db_url, tz)
    results = {}
    try:
        for panel in board["panels"]:
            for target in panel["targets"]:
                names, rows = _run(raw, expand(target["rawSql"], START, END, INTERVAL, variables))
                _check_shape(panel, target, names, rows)
                results[(panel["title"], target["refId"])] = rows
    finally:
        raw.close()
        session_engine.dispose()

    def series(title, ref="A", value=None):
        return {(r["time"], r.get("metric")): r[value] for r in results[(title, ref)]}

    assert [(r["severity"], r["incidents"]) for r in results[("Open incidents by severity", "A")]] == [
        ("critical", 1), ("error", 0), ("warning", 1), ("info", 0), ("none", 0)]
    backlog = results[("Processing backlog", "A")][0]
    assert backlog["unprocessed"] == 2 and 540 <= backlog["oldest_age"] <= 900
    budget = results[("Error budget (critical incidents)", "A")][0]
    # Critical incidents cover 10:00–13:00 (two overlapping) and 23:00–24:00 (still open) of 48 h.
    assert float(budget["critical_downtime"]) == 4 * 3600
    assert budget["availability"] == pytest.approx(100 * (1 - 4 / 48), rel=1e-12)
    assert float(budget["objective"]) == float(variables["objective"])
    assert float(budget["budget_remaining"]) == pytest.approx(100 * (1 - 4 * 3600 / (48 * 3600 * 0.001)))
    assert series("Incidents opened / resolved", "A", "opened") == {
        (epoch(at(1, 10)), None): 2, (epoch(at(1, 11)), None): 1, (epoch(at(2, 23)), None): 1}
    assert series("Incidents opened / resolved", "B", "resolved") == {
        (epoch(at(1, 12)), None): 1, (epoch(at(1, 13)), None): 1}
    assert series("MTTA / MTTR", "A", "mtta") == {(epoch(at(1, 10)), None): 300, (epoch(at(2, 23)), None): 600}
    assert series("MTTA / MTTR", "B", "mttr") == {(epoch(at(1, 12)), None): 7200, (epoch(at(1, 13)), None): 7200}
    assert series("Alert volume by source", "A", "alerts") == {
        (epoch(at(1, 10)), "alertmanager"): 3, (epoch(at(1, 10)), "grafana"): 2, (epoch(at(1, 11)), "grafana"): 1,
        (epoch(at(1, 12)), "unknown"): 0}
    rate = {r["time"]: float(r["webhooks"]) for r in results[("Ingestion rate", "A")]}
    assert rate[epoch(at(1, 10))] == pytest.approx(2 / 3600, rel=1e-3)
    assert series("Notifications by outcome", "A", "notifications") == {
        (epoch(at(1, 10)), "sent"): 1, (epoch(at(1, 12)), "failed"): 1}
    assert results[("Notifications failing", "A")] == [{"failed": 1, "retrying": 1, "stuck": 1, "outcome_unknown": 2}]
    assert results[("Bad webhook rows", "A")] == [{"parse_errors": 1, "process_errors": 1}]
    noisy = results[("Top noisy fingerprints", "A")]
    assert [(r["fingerprint"], r["incidents"], r["alerts"], r["flaps"]) for r in noisy] == [
        ("fpA", 2, 15, 1), ("fpB", 1, 3, 0), ("fpC", 1, 1, 0)]
    assert [r["last_error"] for r in results[("Failing notifications", "A")]] == ["timeout", "404 no_service"]


@pytest.mark.backends("mysql")
def test_without_the_provisioned_session_timezone_buckets_shift(engine, db_url):
    # Why datasource.yaml sets jsonData.timezone: a server in another zone moves every bucket.
    _seed(engine, datetime.now(timezone.utc))
    target = next(p for p in grafana.dashboard()["panels"] if p["title"] == "Incidents opened / resolved")["targets"][0]
    sql = expand(target["rawSql"], START, END, INTERVAL, variable_values(grafana.dashboard()))
    session_engine, raw = _grafana_session(db_url, None)
    try:
        _, rows = _run(raw, sql)
    finally:
        raw.close()
        session_engine.dispose()
    assert epoch(at(1, 10)) not in {r["time"] for r in rows}


@pytest.mark.backends("mysql")
def test_noise_panels_show_what_incidentctl_noise_reports(engine, db_url):
    # The generated history with known noisy rules, processed with people acknowledging: the
    # panels' figures per rule equal `build_noise`'s over the same window.
    from incidentctl.config import load_settings
    from incidentctl.history.noise import build_noise
    from tests.support.noisy_history import END, START, load

    load(engine)
    start, end = START - timedelta(hours=1), END + timedelta(days=1)
    board = grafana.dashboard()
    panels = {p["title"]: p for p in board["panels"]}
    session_engine, raw = _grafana_session(db_url, "+00:00")
    try:
        results = {title: _run(raw, expand(panels[title]["targets"][0]["rawSql"], start, end, INTERVAL,
                                           variable_values(board)))[1]
                   for title in ("Noise by rule", "Pages by hour of day (UTC)", "Pages by route")}
    finally:
        raw.close()
        session_engine.dispose()
    report = build_noise(engine, load_settings({}), since=start, until=end, replay=0)
    expected = [(r.alertname, "yes" if r.noisy else "", r.incidents, r.pages, r.acted_on, r.self_resolved, r.flaps,
                 r.median_firing_s) for r in report.rules]
    shown = [(r["alertname"], r["noisy"], r["incidents"], int(r["pages"]), int(r["acted_on"]),
              int(r["self_resolved"]), int(r["flaps"]), float(r["median_firing"])) for r in results["Noise by rule"]]
    def key(row):  # the panel's order: noisy first, most pages first
        return row[1] != "yes", -row[3], row[0]

    assert shown == sorted(expected, key=key)
    hours = [0] * 24
    for rule in report.rules:
        for how, n in enumerate(rule.hour_of_week):
            hours[how % 24] += n
    assert {int(r["hour"]): int(r["pages"]) for r in results["Pages by hour of day (UTC)"]} == {
        h: n for h, n in enumerate(hours) if n}
    assert [(r["route"], int(r["pages"])) for r in results["Pages by route"]] == list(report.pages_by_route.items())
