"""`incidentctl run` end to end: the real console script processes a raw alert, sends the digest
to the fake Slack, and stops cleanly on SIGTERM."""

from __future__ import annotations

import signal
import subprocess
import time
from datetime import datetime, timezone

import pytest

from incidentctl.ingest.archive import insert_raw_alerts, raw_alert
from tests.support.factories import outbox_rows
from tests.support.slack_fake import FakeSlack

pytestmark = pytest.mark.slow


def test_run_processes_notifies_and_stops_on_sigterm(engine, cli_env, incidentctl_bin, fixture_bodies):
    body = fixture_bodies["grafana/grafana9_zulip_firing_3alerts_2rules.json"]
    with engine.begin() as conn:
        insert_raw_alerts(conn, [raw_alert(body, received_at=datetime.now(timezone.utc))])
    with FakeSlack() as slack:
        env = {**cli_env, "SLACK_WEBHOOK_URL": slack.url("ok"), "INCIDENTCTL_PROCESS_INTERVAL": "0.5s",
               "INCIDENTCTL_NOTIFY_INTERVAL": "0.5s", "INCIDENTCTL_LOG_LEVEL": "DEBUG"}
        proc = subprocess.Popen([incidentctl_bin, "run"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
        try:
            deadline = time.monotonic() + 60  # generous on a shared machine; not a speed assertion
            while not slack.bodies("ok") and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.1)
            assert slack.bodies("ok"), "no digest reached the fake Slack"
            proc.send_signal(signal.SIGTERM)
            _, stderr = proc.communicate(timeout=20)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    assert proc.returncode == 0, stderr
    assert "process: " in stderr and "notify: " in stderr and "SIGTERM received" in stderr and "run: stopped" in stderr
    assert "/services/ok" not in stderr  # the webhook is never logged, even at DEBUG
    digest = slack.bodies("ok")[0]
    assert digest["blocks"][0]["type"] == "header" and "new" in digest["text"]
    rows = outbox_rows(engine).values()
    assert rows and all(r["state"] == "sent" for r in rows)


def test_run_without_slack_warns_once_and_keeps_processing(engine, cli_env, incidentctl_bin, fixture_bodies):
    body = fixture_bodies["grafana/grafana9_zulip_firing_3alerts_2rules.json"]
    with engine.begin() as conn:
        insert_raw_alerts(conn, [raw_alert(body, received_at=datetime.now(timezone.utc))])
    env = {**cli_env, "INCIDENTCTL_PROCESS_INTERVAL": "0.2s", "INCIDENTCTL_NOTIFY_INTERVAL": "0.2s",
           "INCIDENTCTL_LOG_LEVEL": "INFO"}
    proc = subprocess.Popen([incidentctl_bin, "run"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        deadline = time.monotonic() + 60
        while not outbox_rows(engine) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1.5)  # several notify intervals: none of them may log
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, stderr
    lines = stderr.splitlines()
    warnings = [line for line in lines if "Slack is not configured" in line]
    assert len(warnings) == 1 and " WARNING " in warnings[0], stderr
    assert sum("process: " in line for line in lines) >= 3  # the loop went round
    assert not any("notify" in line for line in lines if line not in warnings), stderr
    rows = outbox_rows(engine).values()
    assert rows and all(r["state"] == "pending" for r in rows)  # processed, queued, waiting for Slack


def test_run_with_bad_routes_config_exits_2(cli_env, incidentctl_bin, tmp_path):
    config = tmp_path / "bad.toml"
    config.write_text('[[routes]]\nname = "oncall"\n')  # no webhook_url
    done = subprocess.run([incidentctl_bin, "--config", str(config), "run"], env=cli_env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 2 and "webhook_url" in done.stderr, done.stderr
