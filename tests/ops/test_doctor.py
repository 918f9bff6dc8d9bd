"""`doctor`: each check's verdict on real databases, the exit codes, and masking of secrets."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta, timezone

import pytest

from incidentctl.config import load_settings
from incidentctl.db.engine import make_engine
from incidentctl.db.schema import action_inbox, deliveries, grafana_alerts, incidents, notifications, silences
from incidentctl.ops.doctor import Thresholds, doctor, level_for_age
from tests.support.cli import invoke, run_cli

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc)
MIN = timedelta(minutes=1)
SLACK = "https://hooks.slack.com/services/T0000/B0000/abcdefghijklmnopqrstuvwx"


@pytest.mark.parametrize("age, expected", [
    (None, "ok"),  # nothing waiting
    (4 * MIN, "ok"),  # younger than the warning age
    (5 * MIN, "warn"),  # the warning age itself warns
    (59 * MIN, "warn"),  # still under the error age
    (60 * MIN, "error"),  # the error age itself is an error
])
def test_level_for_age(age, expected):
    assert level_for_age(age, 5 * MIN, 60 * MIN) == expected


def _settings(db_url, **env):
    return load_settings({"INCIDENTCTL_DATABASE_URL": db_url, **env})


def _by_name(report):
    return {c.name: c for c in report.checks}


def _raw(conn, received_at, processed=True, parse_error=None, process_error=None):
    body = b'{"status": "firing"}'
    conn.execute(grafana_alerts.insert(), {
        "received_at": received_at, "source": "grafana", "body": body, "body_sha256": hashlib.sha256(body).hexdigest(),
        "body_size": len(body), "parse_error": parse_error, "process_error": process_error,
        "processed_at": received_at if processed else None})


def _incident(conn):
    return conn.execute(incidents.insert(), {
        "fingerprint": "fp", "active_key": "fp", "status": "open", "title": "disk full", "severity": "critical",
        "opened_at": NOW - 3 * 60 * MIN, "last_alert_at": NOW}).inserted_primary_key[0]


def _notification(conn, incident_id, state, created_at, attempts=0, last_error=None):
    conn.execute(notifications.insert(), {"incident_id": incident_id, "change": "opened", "severity": "critical",
                                          "created_at": created_at, "state": state, "attempts": attempts,
                                          "last_error": last_error})


def test_healthy_database_is_all_ok(engine, db_url):
    report = doctor(_settings(db_url), engine, NOW)
    assert [c.name for c in report.checks] == ["configuration", "database", "body_limit", "schema", "cluster",
                                               "lease", "backlog", "bad_rows", "notifications", "deliveries",
                                               "silences", "actions", "slack_app"]
    assert {c.level for c in report.checks} == {"ok"} and report.exit_code == 0


def test_backlog_warns_then_errors_with_the_oldest_row(engine, db_url):
    with engine.begin() as conn:
        _raw(conn, NOW - 10 * MIN, processed=False)
        _raw(conn, NOW - MIN, processed=False)
    check = _by_name(doctor(_settings(db_url), engine, NOW))["backlog"]
    assert check.level == "warn" and check.detail["unprocessed"] == 2 and check.detail["oldest_age_seconds"] == 600
    assert "incidentctl process" in check.message
    with engine.begin() as conn:
        _raw(conn, NOW - 2 * 60 * MIN, processed=False)
    report = doctor(_settings(db_url), engine, NOW)
    assert _by_name(report)["backlog"].level == "error" and report.exit_code == 2


def test_slow_process_interval_stretches_the_backlog_warning(engine, db_url):
    with engine.begin() as conn:
        _raw(conn, NOW - 10 * MIN, processed=False)
    settings = _settings(db_url, INCIDENTCTL_PROCESS_INTERVAL="5m")  # cron every 5 min: 10 min is normal
    assert Thresholds.for_settings(settings).backlog_warn == 20 * MIN
    assert _by_name(doctor(settings, engine, NOW))["backlog"].level == "ok"


def test_recent_parse_and_process_errors_warn_old_ones_do_not(engine, db_url):
    with engine.begin() as conn:
        _raw(conn, NOW - 3 * 24 * 60 * MIN, parse_error="not JSON")  # outside the 24 h window
    assert _by_name(doctor(_settings(db_url), engine, NOW))["bad_rows"].level == "ok"
    with engine.begin() as conn:
        _raw(conn, NOW - 60 * MIN, parse_error="not JSON")
        _raw(conn, NOW - 30 * MIN, process_error="no alerts in body")
    check = _by_name(doctor(_settings(db_url), engine, NOW))["bad_rows"]
    assert check.level == "warn" and (check.detail["parse_errors"], check.detail["process_errors"]) == (1, 1)
    assert "no alerts in body" in check.message


def test_notifications_failed_retrying_and_stuck(engine, db_url):
    with engine.begin() as conn:
        incident_id = _incident(conn)
        _notification(conn, incident_id, "sent", NOW - 60 * MIN, attempts=1)
        _notification(conn, incident_id, "failed", NOW - 60 * MIN, attempts=1, last_error="404 no_service")
    check = _by_name(doctor(_settings(db_url), engine, NOW))["notifications"]
    assert check.level == "warn" and check.detail["failed_recent"] == 1 and "404 no_service" in check.message
    with engine.begin() as conn:
        _notification(conn, incident_id, "pending", NOW - 2 * 60 * MIN, attempts=3, last_error="timeout")
    check = _by_name(doctor(_settings(db_url), engine, NOW))["notifications"]
    assert check.level == "error"  # pending two hours: nobody is sending
    assert (check.detail["pending"], check.detail["retrying"]) == (1, 1) and "incidentctl notify" in check.message


def test_notifications_held_by_a_threshold_are_not_stuck(engine, db_url):
    with engine.begin() as conn:
        incident_id = _incident(conn)
        _notification(conn, incident_id, "pending", NOW - 3 * 60 * MIN, attempts=0,
                      last_error="held: route default: firing 3h, below the threshold (severity critical)")
    check = _by_name(doctor(_settings(db_url), engine, NOW))["notifications"]
    assert check.level == "ok" and check.message == "1 held below a route's threshold"
    assert (check.detail["pending"], check.detail["retrying"], check.detail["held"]) == (0, 0, 1)


def _delivery(conn, attempted_at, outcome, changes=2):
    conn.execute(deliveries.insert(), {"attempted_at": attempted_at, "route": "default", "changes": changes,
                                       "outcome": outcome})


@pytest.mark.parametrize("log, level, message", [
    ([], "ok", "no digest sent with outcome unknown in the last 1d"),  # nothing logged
    ([(MIN, "ok"), (MIN, "retryable"), (MIN, "permanent")], "ok", "no digest"),  # answers, even failures
    ([(MIN, "sending")], "ok", "no digest"),  # a run waiting for Slack's answer right now
    ([(25 * 60 * MIN, "unknown")], "ok", "no digest"),  # outside the 24 h window
    ([(MIN, "unknown")], "ok", "1 digest sent with outcome unknown (possible duplicates) in the last 1d, "
                               "2 change(s), latest 1m ago"),  # Slack answered after the timeout
    ([(3 * MIN, "sending")], "ok", "1 digest sent"),  # the run died before recording the answer
    ([(MIN, "unknown"), (2 * MIN, "unknown"), (9 * MIN, "sending")], "warn",
     "3 digests sent with outcome unknown (possible duplicates) in the last 1d, 6 change(s), latest 1m ago"
     " — Slack answers slower than INCIDENTCTL_SLACK_TIMEOUT"),  # often: worth a look
])
def test_deliveries_with_unknown_outcome(engine, db_url, log, level, message):
    with engine.begin() as conn:
        for age, outcome in log:
            _delivery(conn, NOW - age, outcome)
    check = _by_name(doctor(_settings(db_url), engine, NOW))["deliveries"]
    assert check.level == level and check.message.startswith(message), check.message


def test_silences_ending_soon_are_listed(engine, db_url):
    with engine.begin() as conn:
        for ends, by in ((NOW + 2 * 60 * MIN, "ana"), (NOW + 7 * 24 * 60 * MIN, "bo"), (NOW - MIN, "cy")):
            conn.execute(silences.insert(), {"matchers": [{"name": "alertname", "value": "x", "op": "="}],
                                             "starts_at": NOW - 60 * MIN, "ends_at": ends, "created_by": by,
                                             "comment": "maintenance", "created_at": NOW - 60 * MIN})
    check = _by_name(doctor(_settings(db_url), engine, NOW))["silences"]
    assert check.level == "ok" and check.detail["active"] == 2  # the ended one is not active
    assert [s["created_by"] for s in check.detail["ending_soon"]] == ["ana"] and "in 2h" in check.message


def test_missing_schema_is_an_error_that_names_the_fix(empty_database_url):
    url = empty_database_url()
    engine = make_engine(url)
    engine.connect().close()  # an existing database without tables
    report = doctor(_settings(url), engine, NOW)
    engine.dispose()
    schema = _by_name(report)["schema"]
    assert schema.level == "error" and "incidentctl db upgrade" in schema.message
    assert "backlog" not in _by_name(report) and report.exit_code == 2


def test_unreachable_database_exits_3_and_skips_the_rest():
    settings = load_settings({"DB_HOST": "127.0.0.1", "DB_PORT": "1", "DB_PASSWORD": "hunter2-secret"})
    engine = make_engine("mysql+pymysql://root:hunter2-secret@127.0.0.1:1/incidentctl", connect_timeout=1)
    report = doctor(settings, engine, NOW)
    assert [c.name for c in report.checks] == ["configuration", "database"]
    assert report.exit_code == 3 and "hunter2" not in report.checks[1].message


def test_exposed_receiver_without_auth_warns():
    url = "sqlite+pysqlite:///:memory:"
    exposed = _by_name(doctor(load_settings({"INCIDENTCTL_DATABASE_URL": url, "INCIDENTCTL_HOST": "0.0.0.0"}),
                              make_engine(url), NOW))["configuration"]
    assert exposed.level == "warn" and "without authentication" in exposed.message
    guarded = _by_name(doctor(load_settings({"INCIDENTCTL_DATABASE_URL": url, "INCIDENTCTL_HOST": "0.0.0.0",
                                             "INCIDENTCTL_AUTH_BEARER_TOKEN": "t0ken-t0ken-t0ken"}),
                              make_engine(url), NOW))["configuration"]
    assert guarded.level == "ok" and guarded.detail["receiver_auth"] == ["bearer"]


def test_cli_json_masks_secrets_and_exit_code_follows_the_worst_level(engine, cli_env):
    env = {**cli_env, "SLACK_WEBHOOK_URL": SLACK, "INCIDENTCTL_AUTH_BEARER_TOKEN": "very-secret-bearer-token"}
    result = invoke("doctor", "--output", "json", env=env)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["level"] == "ok" and report["exit_code"] == 0
    config = report["checks"][0]["detail"]
    assert config["slack_webhook_url"] and "abcdefghijkl" not in result.stdout and "very-secret" not in result.stdout
    assert set(config["secrets_set"]) == {"database_url", "slack_webhook_url", "auth_bearer_token"}
    with engine.begin() as conn:
        _raw(conn, datetime.now(timezone.utc) - 30 * MIN, processed=False)
    result = invoke("doctor", env=env)
    assert result.exit_code == 1 and "backlog" in result.stdout and "exit 1" in result.stdout


@pytest.mark.slow
def test_console_script_exit_code_for_monitoring(cli_env):
    env = {**cli_env, "INCIDENTCTL_DATABASE_URL": "mysql+pymysql://root@127.0.0.1:1/nothing"}
    done = run_cli("doctor", "-o", "json", env=env)
    assert done.returncode == 3 and json.loads(done.stdout)["checks"][1]["level"] == "error"


def test_missing_sqlite_file_is_reported_not_created(tmp_path):
    path = tmp_path / "nowhere" / "incidentctl.db"
    url = f"sqlite+pysqlite:///{path}"
    report = doctor(load_settings({"INCIDENTCTL_DATABASE_URL": url}), make_engine(url), NOW)
    assert report.exit_code == 3 and "no SQLite database" in report.checks[1].message
    assert not path.exists()


def test_body_limit_says_whether_the_database_can_store_the_largest_body(cli_env, backend):
    # MariaDB's default max_allowed_packet (16 MiB) holds the default 10 MiB limit, not 20 MiB;
    # SQLite has no packet limit.
    def body_limit(max_body: str):
        result = invoke("doctor", "-o", "json", env={**cli_env, "INCIDENTCTL_MAX_BODY_BYTES": max_body})
        report = json.loads(result.stdout)
        return result.exit_code, next(c for c in report["checks"] if c["name"] == "body_limit")

    code, check = body_limit("10MiB")
    assert (code, check["level"], check["detail"]["max_body_bytes"]) == (0, "ok", 10 << 20)
    code, check = body_limit("20MiB")
    if backend == "sqlite":
        assert (code, check["level"], check["detail"]["largest_storable"]) == (0, "ok", None)
    else:
        packet = check["detail"]["max_allowed_packet"]
        assert (code, check["level"]) == (1, "warn")
        assert check["detail"]["largest_storable"] == packet - (64 << 10) < 20 << 20
        assert f"max_allowed_packet = {packet}" in check["message"] and "413" in check["message"]


def _action(conn, received_at, state="pending", reply_state=None):
    conn.execute(action_inbox.insert(), {"received_at": received_at, "door": "api", "headers": {},
                                         "body": b'{"action": "ack"}', "state": state,
                                         "applied_at": None if state == "pending" else received_at,
                                         "reply_state": reply_state, "reply_attempts": 1})


def test_actions_waiting_warn_then_error_and_untold_refusals_warn(engine, db_url):
    with engine.begin() as conn:
        _action(conn, NOW)  # just arrived
    check = _by_name(doctor(_settings(db_url), engine, NOW))["actions"]
    assert check.level == "ok" and check.detail["pending"] == 1
    with engine.begin() as conn:
        _action(conn, NOW - 5 * MIN)
    check = _by_name(doctor(_settings(db_url), engine, NOW))["actions"]
    assert check.level == "warn" and "incidentctl run" in check.message and check.detail["oldest_age_seconds"] == 300
    with engine.begin() as conn:
        _action(conn, NOW - 20 * MIN)
    assert _by_name(doctor(_settings(db_url), engine, NOW))["actions"].level == "error"


def test_refusals_slack_was_not_told_of_warn(engine, db_url):
    with engine.begin() as conn:
        _action(conn, NOW - 5 * MIN, state="refused", reply_state="failed")
    check = _by_name(doctor(_settings(db_url), engine, NOW))["actions"]
    assert check.level == "warn" and check.detail["replies_failed"] == 1 and "could not be told" in check.message
