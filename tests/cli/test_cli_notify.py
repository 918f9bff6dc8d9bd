"""The notify, outbox and silence commands through typer's runner and the real console script."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
from datetime import timedelta

import pytest
from sqlalchemy import select

from incidentctl.config import load_settings
from incidentctl.db.schema import deliveries
from incidentctl.notify.delivery import CLAIM_LEASE, notify_pending
from incidentctl.notify.slack import make_session
from incidentctl.ops.doctor import doctor
from tests.support.cli import invoke, run_cli
from tests.support.factories import add_incidents_with_changes, outbox_rows
from tests.support.slack_fake import FakeSlack


@pytest.fixture(scope="module")
def slack():
    with FakeSlack() as fake:
        yield fake


def test_notify_sends_and_reports(engine, cli_env, slack):
    ids = add_incidents_with_changes(engine, 2)
    env = {**cli_env, "SLACK_WEBHOOK_URL": slack.url("ok")}
    result = invoke("notify", env=env)
    assert result.exit_code == 0, result.output
    assert "route default (http://127.0.0.1" in result.output and "sent 2 change(s)" in result.output
    assert "/services/ok" not in result.output  # webhook masked
    assert {outbox_rows(engine)[i]["state"] for i in ids} == {"sent"}
    again = invoke("notify", "--output", "json", env=env)
    assert again.exit_code == 0 and json.loads(again.output)["due"] == 0


def test_notify_permanent_failure_exit_1_and_outbox_shows_it(engine, cli_env, slack):
    (nid,) = add_incidents_with_changes(engine, 1)
    env = {**cli_env, "SLACK_WEBHOOK_URL": slack.url("channel_is_archived")}
    result = invoke("notify", env=env)
    assert result.exit_code == 1 and "FAILED, Slack says 410 channel_is_archived" in result.output
    listed = json.loads(invoke("outbox", "list", "--state", "failed", "-o", "json", env=env).output)
    assert [(r["id"], r["last_error"]) for r in listed] == [(nid, "HTTP 410: channel_is_archived")]
    assert invoke("outbox", "retry", env=env).output.startswith("1 failed notification(s) back to pending")
    assert outbox_rows(engine)[nid]["state"] == "pending"


def test_nothing_due_says_what_is_pending_and_when(engine, cli_env, slack):
    (nid,) = add_incidents_with_changes(engine, 1)
    env = {**cli_env, "SLACK_WEBHOOK_URL": slack.url("rollup_error")}
    first = invoke("notify", env=env)
    assert first.exit_code == 1 and "1 change(s) retry after" in first.output
    due_at = outbox_rows(engine)[nid]["next_attempt_at"]
    stamp = f"{due_at:%Y-%m-%d %H:%M:%S} UTC"  # a person reads it in the display zone
    again = invoke("notify", env=env)
    assert again.exit_code == 0, again.output  # nothing was due: not a failure
    assert re.fullmatch(rf"nothing due: 1 change\(s\) pending retry, next attempt at {stamp} \(in \d+s\)\n",
                        again.output), again.output
    summary = json.loads(invoke("notify", "-o", "json", env=env).output)
    assert (summary["due"], summary["waiting"], summary["next_attempt_at"]) == (0, 1, due_at.isoformat().replace(
        "+00:00", "Z"))
    listed = json.loads(invoke("outbox", "list", "-o", "json", env=env).output)
    assert [(r["id"], r["state"], r["next_attempt_at"]) for r in listed] == [
        (nid, "pending", summary["next_attempt_at"])]
    table = invoke("outbox", "list", env={**env, "COLUMNS": "250"}).output
    assert "next attempt" in table and stamp in table


def test_outbox_list_shows_no_next_attempt_once_sent(engine, cli_env, slack):
    (nid,) = add_incidents_with_changes(engine, 1)
    env = {**cli_env, "SLACK_WEBHOOK_URL": slack.url("ok")}
    assert invoke("notify", env=env).exit_code == 0
    listed = json.loads(invoke("outbox", "list", "-o", "json", env=env).output)
    assert [(r["state"], r["next_attempt_at"]) for r in listed] == [("sent", None)]
    assert invoke("notify", env=env).output == "nothing to send\n"  # nothing pending at all


def test_late_slack_answer_is_reported_and_counted(engine, cli_env, slack):
    """Slack posts the digest but answers after INCIDENTCTL_SLACK_TIMEOUT: notify says a duplicate
    is possible, its JSON counts it, and doctor counts it over the last 24 h."""
    (nid,) = add_incidents_with_changes(engine, 1)
    env = {**cli_env, "SLACK_WEBHOOK_URL": slack.url("slow"), "INCIDENTCTL_SLACK_TIMEOUT": "0.3"}
    result = invoke("notify", "-o", "json", env=env)
    assert result.exit_code == 1
    summary = json.loads(result.output)
    assert (summary["outcome_unknown"], summary["retrying"], summary["routes"][0]["outcome"]) == (1, 1, "unknown")
    assert slack.bodies("slow"), "the fake Slack received the digest"
    assert outbox_rows(engine)[nid]["state"] == "pending"  # so it will be sent again
    report = json.loads(invoke("doctor", "-o", "json", env=env).output)
    check = next(c for c in report["checks"] if c["name"] == "deliveries")
    assert check["message"].startswith("1 digest sent with outcome unknown (possible duplicates) in the last 1d")
    assert check["detail"]["outcome_unknown"] == 1


def test_notify_prints_the_unknown_outcome(engine, cli_env, slack):
    add_incidents_with_changes(engine, 2)
    env = {**cli_env, "SLACK_WEBHOOK_URL": slack.url("hangup")}
    result = invoke("notify", env=env)
    assert result.exit_code == 1
    assert "sent, no answer" in result.output and "Slack may have posted it" in result.output
    assert "2 change(s) retry after" in result.output and "a duplicate is possible" in result.output


@pytest.mark.slow
def test_notify_killed_while_waiting_for_slack_counts_as_unknown(engine, cli_env, db_url, incidentctl_bin):
    """A real crash: the process dies after the POST, before the answer is recorded. The next run
    sends the changes again once the claim runs out, and doctor counts the first send."""
    ids = add_incidents_with_changes(engine, 2)
    with FakeSlack(slow_seconds=30) as slow:
        env = {**cli_env, "SLACK_WEBHOOK_URL": slow.url("slow"), "INCIDENTCTL_SLACK_TIMEOUT": "60"}
        proc = subprocess.Popen([incidentctl_bin, "notify"], env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + 60
            while not slow.bodies("slow") and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
            assert slow.bodies("slow"), "the digest never reached the fake Slack"
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.communicate(timeout=20)
    with engine.connect() as conn:
        (attempted_at, outcome), = conn.execute(select(deliveries.c.attempted_at, deliveries.c.outcome)).all()
    assert outcome == "sending" and {outbox_rows(engine)[i]["state"] for i in ids} == {"pending"}
    settings = load_settings({"INCIDENTCTL_DATABASE_URL": db_url})
    check = {c.name: c for c in doctor(settings, engine, attempted_at + timedelta(seconds=5)).checks}["deliveries"]
    assert check.message.startswith("no digest")  # within the claim it may still be in flight
    after = attempted_at + CLAIM_LEASE + timedelta(seconds=1)
    check = {c.name: c for c in doctor(settings, engine, after).checks}["deliveries"]
    assert check.message.startswith("1 digest sent with outcome unknown (possible duplicates)")
    with FakeSlack() as fast, make_session() as session:
        summary = notify_pending(engine, load_settings({"SLACK_WEBHOOK_URL": fast.url("ok")}), session,
                                 clock=lambda: after)
        assert summary.sent == 2 and len(fast.bodies("ok")) == 1  # sent again: the duplicate doctor counted


def test_outbox_list_rejects_unknown_state(cli_env):
    result = invoke("outbox", "list", "--state", "lost", env=cli_env)
    assert result.exit_code == 2 and "unknown state(s) lost" in result.output


def test_notify_dry_run_prints_json_and_marks_nothing(engine, cli_env, slack):
    ids = add_incidents_with_changes(engine, 1)
    result = invoke("notify", "--dry-run", env={**cli_env, "SLACK_WEBHOOK_URL": slack.url("dry")})
    assert result.exit_code == 0
    messages = json.loads(result.output)
    assert messages[0]["route"] == "default" and messages[0]["message"]["blocks"][0]["type"] == "header"
    assert slack.bodies("dry") == [] and outbox_rows(engine)[ids[0]]["state"] == "pending"


@pytest.mark.slow
def test_notify_without_slack_end_to_end(engine, cli_env):
    (nid,) = add_incidents_with_changes(engine, 1)
    proc = run_cli("notify", env=cli_env)
    assert proc.returncode == 1
    stderr = " ".join(proc.stderr.split())
    assert "Slack is not configured: set SLACK_WEBHOOK_URL" in stderr and "1 due change(s) stay pending" in stderr
    assert outbox_rows(engine)[nid]["state"] == "pending"


def test_silence_commands(engine, cli_env):
    result = invoke("silence", "add", "--match", "cluster=prod", "-m", "alertname=~High.*", "--duration", "2h",
                    "--comment", "db upgrade", "--by", "ana", "-o", "json", env=cli_env)
    assert result.exit_code == 0, result.output
    added = json.loads(result.output)
    assert (added["state"], added["matchers"], added["created_by"]) == (
        "active", "cluster=prod alertname=~High.*", "ana")
    listed = json.loads(invoke("silence", "list", "-o", "json", env=cli_env).output)
    assert [s["id"] for s in listed] == [added["id"]]
    assert invoke("silence", "expire", str(added["id"]), env=cli_env).output == f"silence {added['id']} expired\n"
    assert json.loads(invoke("silence", "list", "-o", "json", env=cli_env).output) == []
    assert len(json.loads(invoke("silence", "list", "--all", "-o", "json", env=cli_env).output)) == 1


@pytest.mark.parametrize("args, code, message", [
    (["silence", "add", "-m", "cluster", "-d", "2h", "--comment", "x"], 2, "expected name=value"),  # bad matcher
    (["silence", "add", "-m", "a=b", "--comment", "x"], 2, "exactly one of --duration or --until"),  # no window
    (["silence", "add", "-m", "a=b", "-d", "soon", "--comment", "x"], 2, "not a duration"),  # bad duration
    (["silence", "add", "-m", "a=b", "--until", "2001-01-01T00:00:00Z", "--comment", "x"], 2, "not in the future"),
    (["silence", "expire", "999999"], 1, "no silence 999999"),  # unknown id
])
@pytest.mark.slow
def test_silence_errors_end_to_end(engine, cli_env, args, code, message):
    proc = run_cli(*args, env=cli_env)
    assert proc.returncode == code and message in " ".join(proc.stderr.split()), proc.stderr
    assert json.loads(invoke("silence", "list", "--all", "-o", "json", env=cli_env).output) == []  # nothing stored


@pytest.mark.parametrize("command", [["notify"], ["outbox", "list"], ["outbox", "retry"], ["silence", "add"],
                                     ["silence", "list"], ["silence", "expire"]])
def test_every_command_has_help(command):
    result = invoke(*command, "--help")
    assert result.exit_code == 0 and len(result.output.split("Usage:")[1]) > 100


def test_notify_with_bad_routes_config_exits_2(engine, cli_env, tmp_path):
    (nid,) = add_incidents_with_changes(engine, 1)
    config = tmp_path / "bad.toml"
    config.write_text('[[routes]]\nname = "oncall"\n')  # no webhook_url
    result = invoke("--config", str(config), "notify", env=cli_env)
    assert result.exit_code == 2 and "webhook_url" in result.output
    assert outbox_rows(engine)[nid]["state"] == "pending"
