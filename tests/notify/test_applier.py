"""The action inbox end to end, on SQLite and MariaDB: a signed Slack click or a REST call goes
in through the receiver (in-process), `apply_pending` applies it through the CLI's transitions
(by the Slack user or token owner, via slack / api on the timeline), exactly once; what no
longer applies is refused with its reason, and a Slack person is told at the fake's response_url."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
import requests
from sqlalchemy import select

from incidentctl.db.lease import Lease
from incidentctl.db.schema import action_inbox, incident_events, incidents, silences
from incidentctl.errors import LeaseLost, ProcessingBusy
from incidentctl.incidents.actions import transition
from incidentctl.ingest.tokens import add_token
from incidentctl.notify.applier import apply_pending
from incidentctl.notify.intent import AllowList
from tests.support import T0
from tests.support.asgi import call
from tests.support.cli import invoke
from tests.support.factories import add_incident, count_rows
from tests.support.inbox import clicking_receiver, inbox
from tests.support.slack_web_fake import FakeSlackWeb, SlackInteractions, sign

SECRET = "test-signing-secret"


@pytest.fixture
def receiver(engine):
    with clicking_receiver(engine, SECRET) as r:
        yield r


@pytest.fixture
def slack():
    with FakeSlackWeb() as fake:
        yield fake


@pytest.fixture
def clicks():
    return SlackInteractions(SECRET, clock=lambda: T0.timestamp())


@pytest.fixture
def session():
    with requests.Session() as s:
        yield s


def click(receiver, clicks, slack, value: str, **fields):
    fields.setdefault("response_url", slack.response_url("C0ALERTS", "1700000000.000100"))
    request = clicks.raw(value, value, **fields)
    assert call(receiver, "POST", "/slack/actions", request.body, request.headers).status == 200
    return request


OPEN = AllowList()


def apply(engine, session, allow=OPEN, minutes=1):
    return apply_pending(engine, allow=allow, session=session, clock=lambda: T0 + timedelta(minutes=minutes))


def incident(engine, incident_id) -> dict:
    with engine.connect() as conn:
        return dict(conn.execute(select(incidents).where(incidents.c.id == incident_id)).one()._mapping)


def timeline(engine, incident_id) -> list[dict]:
    e = incident_events.c
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(select(incident_events).where(e.incident_id == incident_id)
                                                       .order_by(e.id))]


def test_a_click_acknowledges_the_incident_with_the_slack_user_via_slack(engine, receiver, clicks, slack, session):
    iid = add_incident(engine)
    click(receiver, clicks, slack, f"ic1:ack:{iid}")
    summary = apply(engine, session)
    assert (summary.applied, summary.refused) == (1, 0)
    row = incident(engine, iid)
    assert (row["status"], row["acknowledged_by"], row["acknowledged_at"]) == ("acknowledged", "alice", T0)
    (event,) = timeline(engine, iid)
    assert (event["kind"], event["actor"], event["detail"]["via"]) == ("acknowledged", "alice", "slack")
    (stored,) = inbox(engine)
    assert stored["state"] == "applied" and f"incident {iid} acknowledged by alice" == stored["reason"]
    assert slack.ephemeral == []  # done: nothing to tell (the message itself is kept current elsewhere)
    assert apply(engine, session).applied == 0  # applied once


def test_a_refused_click_is_recorded_and_the_person_told_at_the_response_url(engine, receiver, clicks, slack, session):
    iid = add_incident(engine, status="resolved", resolved_at=T0, resolved_by="bob")
    click(receiver, clicks, slack, f"ic1:ack:{iid}")
    summary = apply(engine, session)
    assert (summary.applied, summary.refused, summary.replies_sent) == (0, 1, 1)
    (stored,) = inbox(engine)
    assert stored["state"] == "refused" and "resolved" in stored["reason"]
    assert stored["reply_state"] == "sent"
    (reply,) = slack.ephemeral
    assert reply["status"] == 200 and reply["body"]["response_type"] == "ephemeral"
    assert reply["body"]["replace_original"] is False
    assert stored["reason"] in reply["body"]["text"].replace("&gt;", ">")
    assert incident(engine, iid)["status"] == "resolved" and timeline(engine, iid) == []
    apply(engine, session)
    assert len(slack.ephemeral) == 1  # told once


def test_the_same_click_sent_again_is_applied_once(engine, receiver, clicks, slack, session):
    iid = add_incident(engine)
    first = click(receiver, clicks, slack, f"ic1:resolve:{iid}")
    # The very same bytes: the receiver keeps them out (signature already seen).
    assert call(receiver, "POST", "/slack/actions", first.body, first.headers).status == 200
    # The same click re-signed a minute later (as a retry would be): stored, then refused as a duplicate.
    ts = str(int(T0.timestamp()) + 60)
    headers = {**first.headers, "X-Slack-Request-Timestamp": ts, "X-Slack-Signature": sign(SECRET, ts, first.body)}
    assert call(receiver, "POST", "/slack/actions", first.body, headers).status == 200
    assert count_rows(engine, action_inbox) == 2
    summary = apply(engine, session, minutes=2)
    assert (summary.applied, summary.refused) == (1, 1)
    assert "already applied" in inbox(engine)[1]["reason"]
    assert [e["kind"] for e in timeline(engine, iid)] == ["resolved"]


def test_one_bad_row_never_stops_the_rows_behind_it(engine, receiver, clicks, slack, session):
    iid = add_incident(engine)
    with engine.begin() as conn:
        conn.execute(action_inbox.insert().values(received_at=T0, door="slack", headers={}, body=b"\xff garbage",
                                                  state="pending", reply_attempts=0))
    click(receiver, clicks, slack, "ic1:ack:999999")  # no such incident
    click(receiver, clicks, slack, f"ic1:ack:{iid}", user={"id": "U0BOB", "username": "bob"})
    summary = apply(engine, session)
    assert (summary.applied, summary.refused) == (1, 2)
    assert [r["state"] for r in inbox(engine)] == ["refused", "refused", "applied"]
    assert "not found" in inbox(engine)[1]["reason"]
    assert incident(engine, iid)["acknowledged_by"] == "bob"
    assert inbox(engine)[0]["reply_state"] is None  # no response_url to answer on


def test_silence_from_slack_silences_the_incidents_labels_and_says_so_on_the_timeline(engine, receiver, clicks,
                                                                                      slack, session):
    iid = add_incident(engine)
    click(receiver, clicks, slack, f"ic1:silence:{iid}:4h")
    assert apply(engine, session).applied == 1
    with engine.connect() as conn:
        (silence,) = [dict(r._mapping) for r in conn.execute(select(silences))]
    assert (silence["starts_at"], silence["ends_at"]) == (T0, T0 + timedelta(hours=4))
    assert silence["created_by"] == "alice"
    assert {m["name"]: m["value"] for m in silence["matchers"]} == {
        "alertname": "HighCPU", "cluster": "prod", "namespace": "web", "service": "api"}
    (event,) = timeline(engine, iid)
    assert (event["kind"], event["detail"]["silence_id"]) == ("silenced", silence["id"])
    assert event["detail"]["via"] == "slack"


def test_allow_lists_refuse_and_tell(engine, receiver, clicks, slack, session):
    iid = add_incident(engine)
    click(receiver, clicks, slack, f"ic1:ack:{iid}")
    summary = apply(engine, session, allow=AllowList(slack_users=frozenset({"U0BOB"})))
    assert (summary.refused, summary.replies_sent) == (1, 1)
    assert "not allowed" in slack.ephemeral[0]["body"]["text"]
    assert incident(engine, iid)["status"] == "open"


def test_a_reply_that_cannot_be_sent_now_is_retried_and_given_up_after_30_minutes(engine, receiver, clicks, slack,
                                                                                   session):
    iid = add_incident(engine, status="resolved", resolved_at=T0, resolved_by="bob")
    click(receiver, clicks, slack, f"ic1:ack:{iid}", response_url="http://127.0.0.1:9/respond/closed")
    summary = apply(engine, session)
    assert (summary.refused, summary.replies_waiting) == (1, 1)
    assert inbox(engine)[0]["reply_state"] == "pending" and inbox(engine)[0]["reply_attempts"] == 1
    late = apply(engine, session, minutes=31)
    assert late.replies_failed == 1
    assert "expired" in inbox(engine)[0]["reply_error"]


def test_a_used_up_response_url_is_a_permanent_failure(engine, receiver, clicks, session):
    with FakeSlackWeb(response_url_uses=0) as slack:
        iid = add_incident(engine, status="resolved", resolved_at=T0, resolved_by="bob")
        click(receiver, clicks, slack, f"ic1:ack:{iid}")
        assert apply(engine, session).replies_failed == 1
    assert "used_url" in inbox(engine)[0]["reply_error"]


# The REST door, then the CLI: the same transitions, other doors.

def test_the_rest_door_acts_as_the_tokens_owner_via_api(engine, receiver, session):
    iid = add_incident(engine)
    _, token = add_token(engine, "bob", created_by="admin", now=T0)
    headers = {"authorization": f"Bearer {token}", "content-type": "application/json"}
    answer = call(receiver, "POST", f"/api/v1/incidents/{iid}/actions",
                  json.dumps({"action": "resolve", "text": "rolled back"}).encode(), headers)
    assert answer.status == 202
    action_id = answer.json()["action_id"]
    ack = call(receiver, "POST", f"/api/v1/incidents/{iid}/actions", b'{"action": "ack"}', headers).json()
    assert (apply(engine, session).applied, apply(engine, session).refused) == (1, 0)
    row = incident(engine, iid)
    assert (row["status"], row["resolved_by"], row["resolution"]) == ("resolved", "bob", "manual")
    (event,) = timeline(engine, iid)
    assert (event["actor"], event["detail"]) == ("bob", {"via": "api", "note": "rolled back"})
    status = call(receiver, "GET", f"/api/v1/actions/{action_id}", headers=headers).json()
    assert status["state"] == "applied"
    refused = call(receiver, "GET", f"/api/v1/actions/{ack['action_id']}", headers=headers).json()
    assert refused["state"] == "refused" and "resolved" in refused["reason"]


def test_the_cli_records_via_cli(engine, db_url):
    iid = add_incident(engine)
    assert invoke("ack", str(iid), "--by", "carol", db=db_url).exit_code == 0
    assert invoke("note", str(iid), "looking", "--by", "carol", db=db_url).exit_code == 0
    assert [(e["kind"], e["actor"], e["detail"]["via"]) for e in timeline(engine, iid)] == [
        ("acknowledged", "carol", "cli"), ("note", "carol", "cli")]


def test_process_applies_the_inbox_after_the_alerts(engine, receiver, clicks, slack, db_url):
    iid = add_incident(engine)
    click(receiver, clicks, slack, f"ic1:ack:{iid}")
    result = invoke("process", "-o", "json", db=db_url)
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["actions_applied"] == 1
    assert incident(engine, iid)["status"] == "acknowledged"


def test_process_sends_a_reply_still_owed_with_no_action_pending(engine, receiver, clicks, slack, session, db_url):
    # the run that refused it could not reach Slack; the next `process` has no action to apply but
    # still owes the reply (on the real clock, past Slack's 30 minutes: given up, said so)
    iid = add_incident(engine, status="resolved", resolved_at=T0, resolved_by="bob")
    click(receiver, clicks, slack, f"ic1:ack:{iid}", response_url="http://127.0.0.1:9/respond/closed")
    assert apply(engine, session).replies_waiting == 1
    result = invoke("process", "-o", "json", db=db_url)
    assert result.exit_code == 0, result.output
    assert (json.loads(result.output)["actions_applied"], json.loads(result.output)["actions_refused"]) == (0, 0)
    assert (inbox(engine)[0]["reply_state"], inbox(engine)[0]["reply_attempts"]) == ("failed", 2)
    assert "expired" in inbox(engine)[0]["reply_error"]


def test_an_ack_after_the_cli_resolved_it_is_refused(engine, receiver, clicks, slack, session):
    iid = add_incident(engine)
    click(receiver, clicks, slack, f"ic1:ack:{iid}")
    transition(engine, "resolve", iid, by="carol", note=None, now=T0)
    apply(engine, session)
    assert inbox(engine)[0]["state"] == "refused"
    assert "resolved" in slack.ephemeral[0]["body"]["text"]


def test_actions_wait_for_the_applier_lease_held_by_another_worker(engine, receiver, clicks, slack, session):
    iid = add_incident(engine)
    click(receiver, clicks, slack, f"ic1:ack:{iid}")
    other = Lease(engine, owner="host-b:2:worker", heartbeat=False)
    with other, pytest.raises(ProcessingBusy):
        apply_pending(engine, allow=OPEN, session=session, clock=lambda: T0,
                      lease=Lease(engine, owner="host-a:1:standby", heartbeat=False, wait=0))
    assert inbox(engine)[0]["state"] == "pending"  # nothing applied while another worker held it
    assert apply(engine, session).applied == 1


def test_an_applier_that_lost_the_lease_applies_nothing_after_it(engine, receiver, clicks, slack, session):
    iid = add_incident(engine)
    click(receiver, clicks, slack, f"ic1:ack:{iid}")
    now = [datetime.now(timezone.utc)]
    stale = Lease(engine, clock=lambda: now[0], owner="host-a:1:stale", ttl=5, heartbeat=False)
    standby = Lease(engine, clock=lambda: now[0], owner="host-b:2:standby", ttl=5, heartbeat=False, wait=0)
    with stale:
        now[0] += timedelta(seconds=6)  # it stalls past its expiry; the standby takes over
        standby.acquire()
        with pytest.raises(LeaseLost):
            apply_pending(engine, allow=OPEN, session=session, clock=lambda: T0, lease=stale)
    assert (inbox(engine)[0]["state"], incident(engine, iid)["status"]) == ("pending", "open")  # rolled back
    standby.release()  # at the test's clock, 6 s ahead: the next applier runs on that clock, not waiting them out
    assert apply_pending(engine, allow=OPEN, session=session, clock=lambda: T0 + timedelta(minutes=1),
                         lease=Lease(engine, clock=lambda: now[0])).applied == 1
