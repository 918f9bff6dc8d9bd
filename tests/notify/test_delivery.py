"""notify_pending on both databases against the fake Slack: delivery, retries, failures, crash."""

from __future__ import annotations

from datetime import timedelta

import pytest
import requests
from sqlalchemy import select

from incidentctl.config import load_settings
from incidentctl.db.schema import deliveries
from incidentctl.notify import outbox
from incidentctl.notify.delivery import CLAIM_LEASE, DELIVERY_LOG_KEEP, backoff_seconds, notify_pending, preview_digests
from incidentctl.notify.digest import MAX_BLOCKS, limit_violations
from incidentctl.notify.routes import Route
from incidentctl.notify.slack import send
from tests.support import T0
from tests.support.factories import add_change, add_incident, add_incidents_with_changes, outbox_rows
from tests.support.slack_fake import FakeSlack

NOW = T0 + timedelta(minutes=1)


@pytest.fixture(scope="module")
def slack():
    with FakeSlack(slow_seconds=1.0) as fake:
        yield fake


@pytest.fixture
def session():
    with requests.Session() as s:
        yield s


def settings_for(url: str = "", **extra):
    env = {"SLACK_WEBHOOK_URL": url, "INCIDENTCTL_SLACK_TIMEOUT": "0.3"} if url else {}
    settings = load_settings(environ=env)
    return settings if not extra else type(settings)(settings.values, settings.sources, extra)


def run(engine, settings, session, at, **kw):
    return notify_pending(engine, settings, session, clock=lambda: at, **kw)


def delivery_log(engine):
    with engine.connect() as conn:
        rows = conn.execute(select(deliveries).order_by(deliveries.c.id))
        return [(r.route, r.changes, r.outcome, r.status) for r in rows]


@pytest.mark.parametrize("attempts, retry_after, expected", [
    (1, None, 30),        # first failure: 30 s
    (3, None, 120),       # doubles per attempt
    (20, None, 3600),     # capped at an hour
    (1, 7.0, 7),          # Slack's Retry-After wins
    (1, 99999.0, 3600),   # but never more than the cap
])
def test_backoff(attempts, retry_after, expected):
    assert backoff_seconds(attempts, retry_after) == expected


def test_sent_once_and_marked(engine, slack, session):
    ids = add_incidents_with_changes(engine, 3)
    summary = run(engine, settings_for(slack.url("scripted")), session, NOW)
    assert (summary.due, summary.sent, summary.ok) == (3, 3, True)
    rows = outbox_rows(engine)
    assert {rows[i]["state"] for i in ids} == {"sent"} and {rows[i]["sent_at"] for i in ids} == {NOW}
    assert {rows[i]["route"] for i in ids} == {"default"}
    body = slack.bodies("scripted")[-1]
    assert body["blocks"][0]["text"]["text"] == "incidentctl: 3 new"
    again = run(engine, settings_for(slack.url("scripted")), session, NOW + timedelta(hours=1))
    assert (again.due, again.sent) == (0, 0)  # nothing pending → nothing sent


def test_slack_down_three_runs_then_up_delivers_each_change_once(engine, slack, session):
    slack.script[:] = [(500, "rollup_error", {}), (503, "", {}), (429, "", {"Retry-After": "5"})]
    ids = add_incidents_with_changes(engine, 2)
    settings = settings_for(slack.url("scripted"))
    before = len(slack.bodies("scripted"))
    at = NOW
    outcomes = []
    for _ in range(6):
        summary = run(engine, settings, session, at)
        outcomes.append((summary.due, summary.sent, summary.retrying))
        at += timedelta(hours=1)  # past any backoff
    assert outcomes == [(2, 0, 2), (2, 0, 2), (2, 0, 2), (2, 2, 0), (0, 0, 0), (0, 0, 0)]
    bodies = slack.bodies("scripted")[before:]
    assert len(bodies) == 4  # three refused, one accepted; nothing after
    rows = outbox_rows(engine)
    assert [rows[i]["attempts"] for i in ids] == [4, 4] and {rows[i]["state"] for i in ids} == {"sent"}


def test_retry_waits_for_backoff_and_retry_after(engine, slack, session):
    slack.script[:] = [(429, "", {"Retry-After": "30"})]
    (nid,) = add_incidents_with_changes(engine, 1)
    settings = settings_for(slack.url("scripted"))
    summary = run(engine, settings, session, NOW)
    assert summary.retrying == 1 and summary.routes[0].next_attempt_at == NOW + timedelta(seconds=30)
    row = outbox_rows(engine)[nid]
    assert row["state"] == "pending" and row["last_error"] == "HTTP 429: rate_limited"
    assert run(engine, settings, session, NOW + timedelta(seconds=29)).due == 0  # not yet due
    assert run(engine, settings, session, NOW + timedelta(seconds=30)).sent == 1


@pytest.mark.parametrize("path, error", [
    ("invalid_payload", "HTTP 400: invalid_payload"),
    ("no_service", "HTTP 404: no_service"),
    ("channel_is_archived", "HTTP 410: channel_is_archived"),
])
def test_permanent_answer_is_failed_and_not_retried(engine, slack, session, path, error):
    (nid,) = add_incidents_with_changes(engine, 1)
    settings = settings_for(slack.url(path))
    summary = run(engine, settings, session, NOW)
    assert (summary.failed, summary.ok, summary.routes[0].error) == (1, False, path)
    row = outbox_rows(engine)[nid]
    assert (row["state"], row["last_error"], row["attempts"]) == ("failed", error, 1)
    assert run(engine, settings, session, NOW + timedelta(days=1)).due == 0  # never tried again
    assert outbox.retry_failed(engine, [nid]) == 1  # until someone puts it back
    assert outbox_rows(engine)[nid]["state"] == "pending"


def test_late_answer_leaves_rows_pending_and_they_are_sent_twice(engine, slack, session):
    """Slack posts the digest but answers after the timeout: the outcome is unknown, the rows are
    retried, and the channel gets the change twice. Counted, not hidden."""
    (nid,) = add_incidents_with_changes(engine, 1)
    summary = run(engine, settings_for(slack.url("slow")), session, NOW)
    assert (summary.retrying, summary.outcome_unknown, summary.ok) == (1, 1, False)
    assert summary.routes[0].outcome == "unknown" and "timeout" in summary.routes[0].error
    row = outbox_rows(engine)[nid]
    assert (row["state"], row["attempts"]) == ("pending", 1) and "outcome unknown" in row["last_error"]
    assert (summary.waiting, summary.next_attempt_at) == (1, NOW + timedelta(seconds=30))
    later = run(engine, settings_for(slack.url("ok")), session, NOW + timedelta(minutes=5))  # Slack is quick again
    assert (later.sent, later.outcome_unknown, later.waiting) == (1, 0, 0)
    bodies = slack.bodies("slow")[-1], slack.bodies("ok")[-1]
    headlines = [body["blocks"][2]["text"]["text"].split("\n")[0] for body in bodies]
    assert headlines[0] == headlines[1] and "Incident 0" in headlines[0]  # the same change, posted twice
    assert delivery_log(engine) == [("default", 1, "unknown", None), ("default", 1, "ok", 200)]


def test_connection_refused_is_not_an_unknown_outcome(engine, session):
    from tests.support.servers import free_port

    add_incidents_with_changes(engine, 1)
    summary = run(engine, settings_for(f"http://127.0.0.1:{free_port()}/services/x"), session, NOW)
    assert (summary.retrying, summary.outcome_unknown) == (1, 0)  # never left: no duplicate possible
    assert delivery_log(engine) == [("default", 1, "retryable", None)]


def test_delivery_log_keeps_30_days(engine, slack, session):
    add_incidents_with_changes(engine, 1)
    run(engine, settings_for(slack.url("ok")), session, NOW)
    add_incidents_with_changes(engine, 1)
    run(engine, settings_for(slack.url("ok")), session, NOW + DELIVERY_LOG_KEEP - timedelta(seconds=1))
    assert len(delivery_log(engine)) == 2
    add_incidents_with_changes(engine, 1)
    run(engine, settings_for(slack.url("ok")), session, NOW + DELIVERY_LOG_KEEP + timedelta(seconds=1))
    assert len(delivery_log(engine)) == 2  # the first one is gone


def test_no_slack_configured_leaves_outbox_pending(engine, session):
    ids = add_incidents_with_changes(engine, 2)
    summary = run(engine, settings_for(""), session, NOW)
    assert (summary.slack_configured, summary.due, summary.ok) == (False, 2, False)
    rows = outbox_rows(engine)
    assert {rows[i]["state"] for i in ids} == {"pending"} and {rows[i]["next_attempt_at"] for i in ids} == {None}


def test_dry_run_shows_messages_without_sending_or_marking(engine, slack, session):
    ids = add_incidents_with_changes(engine, 2)
    before = outbox_rows(engine)
    summary = run(engine, settings_for(slack.url("dryrun")), session, NOW, dry_run=True)
    assert summary.dry_run and len(summary.messages) == 1 and summary.messages[0]["changes"] == 2
    assert "dryrun" not in str(summary.as_dict())  # masked webhook
    assert slack.bodies("dryrun") == [] and outbox_rows(engine) == before
    assert preview_digests(engine, settings_for(""), clock=lambda: NOW)[0]["message"]["text"].startswith(
        "incidentctl: 2 new")  # the demo's preview works without Slack
    assert ids


def test_crash_between_send_and_mark_resends_after_lease(engine, slack, session):
    """At-least-once: a run that dies after Slack said ok but before marking is repeated."""
    ids = add_incidents_with_changes(engine, 2)
    settings = settings_for(slack.url("scripted"))
    before = len(slack.bodies("scripted"))
    claimed = outbox.claim_due(engine, NOW, CLAIM_LEASE)  # the dying run's first steps…
    assert [r["id"] for r in claimed] == ids
    assert send(session, slack.url("scripted"), {"text": "digest"}, 1).outcome == "ok"  # …then it dies
    assert run(engine, settings, session, NOW + timedelta(seconds=5)).due == 0  # an overlapping run skips them
    summary = run(engine, settings, session, NOW + CLAIM_LEASE)
    assert summary.sent == 2 and len(slack.bodies("scripted")) == before + 2  # sent twice: at-least-once
    assert run(engine, settings, session, NOW + timedelta(hours=2)).due == 0  # and never again


def test_more_changes_than_a_message_holds_make_one_valid_message(engine, slack, session):
    # Three times what fits in 50 blocks: the rest is counted in one "and N more" line.
    add_incidents_with_changes(engine, 150)
    summary = run(engine, settings_for(slack.url("scripted")), session, NOW)
    assert summary.sent == 150
    body = slack.bodies("scripted")[-1]
    assert limit_violations(body) == [] and len(body["blocks"]) == MAX_BLOCKS
    assert "more — run `incidentctl list`" in body["text"]


def test_routes_by_severity_and_labels(engine, slack, session):
    crit = add_change(engine, add_incident(engine, severity="critical"), severity="critical")
    eu = add_change(engine, add_incident(engine, severity="warning", labels={"cluster": "eu"}), severity="warning")
    other = add_change(engine, add_incident(engine, severity="warning"), severity="warning")
    routes = [Route("oncall", slack.url("ok"), frozenset({"critical"})),
              Route("eu", slack.url("rollup_error"), match={"cluster": "eu"}),
              Route("default", slack.url("scripted"))]
    summary = run(engine, settings_for(slack.url("scripted")), session, NOW, routes=routes)
    rows = outbox_rows(engine)
    assert (rows[crit]["route"], rows[crit]["state"]) == ("oncall", "sent")
    assert (rows[eu]["route"], rows[eu]["state"]) == ("eu", "pending")  # its route is down; others unaffected
    assert (rows[other]["route"], rows[other]["state"]) == ("default", "sent")
    assert [(r.route, r.outcome) for r in summary.routes] == [("oncall", "ok"), ("eu", "retryable"),
                                                             ("default", "ok")]


def test_no_matching_route_and_no_default_stays_pending(engine, slack, session):
    nid = add_change(engine, add_incident(engine, severity="info"), severity="info")
    oncall = Route("oncall", slack.url("ok"), frozenset({"critical"}))
    summary = run(engine, settings_for(), session, NOW, routes=[oncall])
    assert summary.unroutable == 1 and outbox_rows(engine)[nid]["state"] == "pending"
