"""A route's threshold end to end: alerts processed, then `notify` against the local Slack fake,
on both databases — an announcement that waits, and a short incident never announced."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
import requests

from incidentctl.config import load_settings
from incidentctl.notify.delivery import notify_pending
from tests.support.cli import invoke
from tests.support.factories import outbox_rows
from tests.support.processing import process_all, store
from tests.support.slack_fake import FakeSlack

T0 = datetime(2026, 3, 1, 10, 0, tzinfo=timezone.utc)
M = timedelta(minutes=1)

@pytest.fixture(scope="module")
def slack():
    with FakeSlack() as fake:
        yield fake

def body(alertname: str, start: datetime, end: datetime | None = None, severity: str = "warning",
         instance: str = "a") -> bytes:
    alert = {"status": "resolved" if end else "firing",
             "labels": {"alertname": alertname, "cluster": "eu1", "severity": severity, "instance": instance},
             "annotations": {}, "startsAt": start.isoformat(),
             "endsAt": end.isoformat() if end else "0001-01-01T00:00:00Z"}
    return json.dumps({"version": "4", "status": alert["status"], "alerts": [alert]}).encode()

def titles(message: dict) -> list[str]:
    return [b["text"]["text"] for b in message["blocks"] if b["type"] == "section"]

def test_announcement_waits_and_a_short_incident_is_never_announced(engine, slack):
    settings = load_settings({"SLACK_WEBHOOK_URL": slack.url("ok"), "INCIDENTCTL_NOTIFY_AFTER": "5m"})
    sent_before = len(slack.bodies("ok"))

    def notify(at):
        with requests.Session() as session:
            return notify_pending(engine, settings, session, clock=lambda: at)

    store(engine, [(T0 + timedelta(seconds=10), body("Slow", T0)), (T0 + timedelta(seconds=10), body("Blip", T0))])
    process_all(engine)
    first = notify(T0 + M)
    assert (first.due, first.sent, first.held, first.held_until) == (2, 0, 2, T0 + 5 * M)
    assert len(slack.bodies("ok")) == sent_before  # nothing posted
    assert {r["last_error"] for r in outbox_rows(engine).values()} == {
        "held: route default: firing 1m, below the threshold (fired 5m)"}

    # Blip resolves after 2 minutes (the resolve arrives at 2m30s): never announced.
    store(engine, [(T0 + 150 * timedelta(seconds=1), body("Blip", T0, T0 + 2 * M))])
    process_all(engine)
    second = notify(T0 + 3 * M)
    assert (second.due, second.sent, second.below_threshold, second.held) == (1, 0, 2, 1)
    blip = [r for r in outbox_rows(engine).values() if r["state"] == "suppressed"]
    assert sorted(r["change"] for r in blip) == ["opened", "resolved"] and {r["silence_id"] for r in blip} == {None}
    assert {r["last_error"] for r in blip} == {
        "never announced: route default: resolved after 2m, before the threshold (fired 5m)"}

    # Slow has fired 5 minutes: announced at the first run after that, alone.
    assert notify(T0 + 4 * M).due == 0
    third = notify(T0 + 6 * M)
    assert (third.due, third.sent, third.held) == (1, 1, 0)
    (message,) = slack.bodies("ok")[sent_before:]
    assert message["blocks"][0]["text"]["text"] == "incidentctl: 1 new" and "Blip" not in json.dumps(message)

    # Its resolve is announced at once: a threshold never delays the resolve of something announced.
    store(engine, [(T0 + 7 * M, body("Slow", T0, T0 + 7 * M - timedelta(seconds=5)))])
    process_all(engine)
    fourth = notify(T0 + 7 * M + timedelta(seconds=5))
    assert (fourth.due, fourth.sent, fourth.held) == (1, 1, 0)
    assert slack.bodies("ok")[-1]["blocks"][0]["text"]["text"] == "incidentctl: 1 resolved"

def test_severity_releases_at_once_and_alerts_are_counted(engine, slack):
    settings = load_settings({"SLACK_WEBHOOK_URL": slack.url("ok"), "INCIDENTCTL_NOTIFY_MIN_SEVERITY": "critical",
                              "INCIDENTCTL_NOTIFY_MIN_ALERTS": "2", "INCIDENTCTL_NOTIFY_AFTER": "1h"})

    def notify(at):
        with requests.Session() as session:
            return notify_pending(engine, settings, session, clock=lambda: at)

    store(engine, [(T0, body("Disk", T0)), (T0, body("Cpu", T0))])
    process_all(engine)
    held = notify(T0 + M)
    assert (held.sent, held.held, held.held_until) == (0, 2, None)  # an alert can release them: checked every run
    # Disk: a second alert (another instance) fires; Cpu: its alert turns critical
    store(engine, [(T0 + 2 * M, body("Disk", T0 + 2 * M, instance="b")),
                   (T0 + 2 * M, body("Cpu", T0 + 2 * M, severity="critical", instance="b"))])
    process_all(engine)
    released = notify(T0 + 3 * M)
    assert (released.sent, released.held) == (3, 0)  # Disk opened; Cpu opened and escalated
    assert slack.bodies("ok")[-1]["blocks"][0]["text"]["text"] == "incidentctl: 2 new"

def test_cli_shows_held_and_never_announced_rows(db_url, engine, slack):
    now = datetime.now(timezone.utc)
    store(engine, [(now - 30 * timedelta(seconds=1), body("Fresh", now - 40 * timedelta(seconds=1))),
                   (now - 3 * M, body("Blip", now - 4 * M)),
                   (now - 2 * M, body("Blip", now - 4 * M, now - 2 * M - timedelta(seconds=10)))])
    env = {"INCIDENTCTL_DATABASE_URL": db_url, "SLACK_WEBHOOK_URL": slack.url("ok"), "INCIDENTCTL_NOTIFY_AFTER": "10m"}
    assert invoke("process", env=env).exit_code == 0
    listed = json.loads(invoke("list", "-o", "json", env=env).stdout)
    assert [i["alertname"] for i in listed] == ["Fresh"]  # the incident is there at once
    result = invoke("notify", env=env)
    assert result.exit_code == 0, result.output
    assert "never announced 2 (resolved below threshold)" in result.output
    assert "held: 1 change(s) below their route's threshold, checked again at " in result.output
    rows = json.loads(invoke("outbox", "list", "-o", "json", env=env).stdout)
    states = {(r["title"].split()[0], r["change"]): (r["state"], r["last_error"].split(":")[0]) for r in rows}
    assert states == {("Fresh", "opened"): ("pending", "held"), ("Blip", "opened"): ("suppressed", "never announced"),
                      ("Blip", "resolved"): ("suppressed", "never announced")}
    summary = json.loads(invoke("notify", "-o", "json", env=env).stdout)
    assert (summary["due"], summary["waiting"], summary["held"]) == (0, 0, 1)
