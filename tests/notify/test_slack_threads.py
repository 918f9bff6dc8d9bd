"""Thread replies for what is not a digest's change, on both databases, against the fake Web
API: a note (from the CLI or the REST door; Slack's buttons send none) is replied once in the thread of every live
message that shows its incident and never alters a webhook digest."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
import requests
from sqlalchemy import select

from incidentctl.config import load_settings
from incidentctl.db.schema import incidents, notifications, slack_replies
from incidentctl.incidents.actions import add_note, transition
from incidentctl.ingest.tokens import add_token
from incidentctl.notify.applier import apply_pending
from incidentctl.notify.delivery import notify_pending
from incidentctl.notify.intent import AllowList
from incidentctl.notify.silences import Matcher, add_silence
from tests.support import T0
from tests.support.asgi import call
from tests.support.factories import add_incidents_with_changes, count_rows, outbox_rows
from tests.support.inbox import clicking_receiver
from tests.support.slack_web_fake import TOKEN, SlackInteractions

NOW = T0 + timedelta(minutes=1)
CHANNEL = "C0ALERTS"
SECRET = "test-signing-secret"


@pytest.fixture
def fake(slack_web):
    fake, _ = slack_web
    fake.reset()
    return fake


def settings(fake, **env):
    return load_settings(environ={"SLACK_BOT_TOKEN": TOKEN, "SLACK_CHANNEL": CHANNEL,
                                  "INCIDENTCTL_SLACK_API_URL": fake.api_url, **env})


def notify(engine, fake, api, now=NOW):
    return notify_pending(engine, settings(fake), None, clock=lambda: now, api=api)


def top_level(fake):
    return sorted((m for m in fake.messages.values() if m.channel == CHANNEL and not m.thread_ts),
                  key=lambda m: m.ts)


def incident_of(engine, change_id: int) -> int:
    return outbox_rows(engine)[change_id]["incident_id"]


def escalate_and_notify(engine, fake, api, incident: int) -> None:
    """The incident escalates a minute on (news: a second digest, a second message showing it)."""
    at = NOW + timedelta(minutes=1)
    with engine.begin() as conn:
        conn.execute(notifications.insert().values(incident_id=incident, change="escalated", reason="from warning",
                                                   severity="critical", created_at=at, state="pending", attempts=0))
    notify(engine, fake, api, now=at)


def two_messages_showing(engine, fake, api) -> tuple[int, list]:
    """An incident announced, then escalated (news: a second digest): two live messages show it."""
    (change,) = add_incidents_with_changes(engine, 1, created_at=NOW)
    notify(engine, fake, api)
    incident = incident_of(engine, change)
    escalate_and_notify(engine, fake, api, incident)
    messages = top_level(fake)
    assert len(messages) == 2
    return incident, messages


def test_a_note_is_replied_once_in_every_message_that_shows_it(engine, fake, api):
    incident, messages = two_messages_showing(engine, fake, api)
    edits = [m.update_count for m in messages]
    add_note(engine, incident, "disk replaced <!channel>", by="alice", now=NOW + timedelta(minutes=2))

    summary = notify(engine, fake, api, now=NOW + timedelta(minutes=3))

    assert summary.sent == 0 and summary.slack["replies"] == 2  # no digest; one reply per message
    for message in messages:
        replies = [r for r in fake.thread(CHANNEL, message.ts) if "Note" in r.text]
        assert [r.text for r in replies] == [
            f":memo: *Note* by alice · #{incident} Incident 0 · disk replaced &lt;!channel&gt;"]
    assert [m.update_count for m in messages] == edits  # a note changes nothing a message shows
    again = notify(engine, fake, api, now=NOW + timedelta(minutes=4))
    assert again.slack["replies"] == 0
    assert sum("Note" in m.text for m in fake.messages.values()) == 2


def test_a_long_note_is_cut_to_slacks_limits_and_a_silenced_incident_still_hears_it(engine, fake, api):
    (change,) = add_incidents_with_changes(engine, 1, created_at=NOW)
    notify(engine, fake, api)
    incident = incident_of(engine, change)
    add_silence(engine, [Matcher("service", "api")], starts_at=NOW, ends_at=NOW + timedelta(hours=1),
                comment="deploy", created_by="mo", now=NOW)
    add_note(engine, incident, "x" * 2000 + "MIDDLE" + "y" * 5000, by="bob", now=NOW + timedelta(minutes=1))

    notify(engine, fake, api, now=NOW + timedelta(minutes=2))

    (message,) = top_level(fake)
    (reply,) = fake.thread(CHANNEL, message.ts)
    assert reply.text.startswith(f":memo: *Note* by bob · #{incident} Incident 0 · xxx")
    assert "MIDDLE" in reply.text  # the whole text, read from the timeline (the outbox keeps 255 characters)
    assert len(reply.text) <= 4000 and reply.text.count("y") < 1000  # cut at 3,000 characters
    assert not fake.rejected
    (row,) = [r for r in outbox_rows(engine).values() if r["change"] == "note"]
    assert len(row["reason"]) == 255 and row["reason"].startswith("note by bob: xxx")


def test_a_note_does_not_alter_the_webhook_digest(engine):
    changes = add_incidents_with_changes(engine, 2, created_at=NOW)
    config = load_settings(environ={"SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/T0/B0/X"})

    def preview():
        return notify_pending(engine, config, None, dry_run=True, clock=lambda: NOW + timedelta(minutes=2))

    before = preview()
    add_note(engine, incident_of(engine, changes[0]), "looking into it", by="alice", now=NOW + timedelta(minutes=1))
    after = preview()

    assert after.messages == before.messages and after.due == before.due == 2
    (note,) = [r for r in outbox_rows(engine).values() if r["change"] == "note"]
    assert (note["state"], note["reason"], note["created_at"]) == ("thread", "note by alice: looking into it",
                                                                   NOW + timedelta(minutes=1))


def test_a_note_from_the_rest_door_is_replied_with_the_other_changes_of_the_run(engine, fake, api):
    changes = add_incidents_with_changes(engine, 2, created_at=NOW)
    notify(engine, fake, api)
    (message,) = top_level(fake)
    rest, clicked = incident_of(engine, changes[0]), incident_of(engine, changes[1])
    _, token = add_token(engine, "bob", created_by="admin", now=T0)
    with clicking_receiver(engine, SECRET) as receiver, requests.Session() as session:
        answer = call(receiver, "POST", f"/api/v1/incidents/{rest}/actions",
                      json.dumps({"action": "note", "text": "rolled back"}).encode(),
                      {"authorization": f"Bearer {token}", "content-type": "application/json"})
        assert answer.status == 202
        transition(engine, "ack", clicked, by="carol", note=None, now=NOW)
        summary = apply_pending(engine, allow=AllowList(), session=session, clock=lambda: NOW + timedelta(minutes=1))
        assert summary.applied == 1

    notify(engine, fake, api, now=NOW + timedelta(minutes=2))

    (reply,) = fake.thread(CHANNEL, message.ts)  # both changes of the run in one reply
    assert reply.text.splitlines() == [f":eyes: *Acknowledged* by carol · #{clicked} Incident 1",
                                       f":memo: *Note* by bob · #{rest} Incident 0 · rolled back"]
    with engine.connect() as conn:
        states = conn.execute(select(slack_replies.c.state)).scalars().all()
    assert sorted(states) == ["sent", "sent", "shown", "shown"]
    assert count_rows(engine, notifications, notifications.c.state == "thread") == 1


# Silences: one reply per message and silence, when it begins covering incidents the message shows.

def test_a_silence_is_replied_once_in_each_message_showing_what_it_covers(engine, fake, api):
    from incidentctl.notify.silences import expire_silence

    changes = add_incidents_with_changes(engine, 2, created_at=NOW)
    covered, other = incident_of(engine, changes[0]), incident_of(engine, changes[1])
    with engine.begin() as conn:  # the second incident is another service: the silence leaves it out
        conn.execute(incidents.update().where(incidents.c.id == other)
                     .values(service="db", group_labels={"service": "db"}, common_labels={"service": "db"}))
    notify(engine, fake, api)
    escalate_and_notify(engine, fake, api, covered)
    messages = top_level(fake)
    silence = add_silence(engine, [Matcher("service", "api")], starts_at=NOW + timedelta(minutes=2),
                          ends_at=NOW + timedelta(hours=4, minutes=2), comment="deploy", created_by="mo",
                          now=NOW + timedelta(minutes=2))

    summary = notify(engine, fake, api, now=NOW + timedelta(minutes=3))

    assert summary.slack["replies"] == 2
    until = NOW + timedelta(hours=4, minutes=2)
    for message in messages:
        (reply,) = [r for r in fake.thread(CHANNEL, message.ts) if "Silenced" in r.text]  # (and the escalation)
        assert reply.text == (f":no_bell: *Silenced* by mo for 4h (until <!date^{int(until.timestamp())}"
                              f"^{{date_short_pretty}} {{time}}|{until:%Y-%m-%d %H:%M} UTC>) · #{covered} Incident 0")
        assert f"#{other}" not in reply.text
    assert notify(engine, fake, api, now=NOW + timedelta(minutes=4)).slack["replies"] == 0
    expire_silence(engine, silence["id"], NOW + timedelta(minutes=5))
    ended = notify(engine, fake, api, now=NOW + timedelta(minutes=6))
    assert ended.slack["updated"] == 2 and ended.slack["replies"] == 0  # its end edits, replies nothing
    with engine.connect() as conn:
        rows = conn.execute(select(slack_replies.c.message_id, slack_replies.c.notification_id,
                                   slack_replies.c.state).where(slack_replies.c.silence_id == silence["id"])).all()
    assert sorted((state, nid) for _, nid, state in rows) == [("sent", None), ("sent", None)]


def test_a_message_posted_after_a_silence_began_gets_no_reply_for_it(engine, fake, api):
    add_silence(engine, [Matcher("service", "db")], starts_at=NOW, ends_at=NOW + timedelta(hours=1),
                comment="migration", created_by="mo", now=NOW)
    add_incidents_with_changes(engine, 1, created_at=NOW)

    notify(engine, fake, api, now=NOW + timedelta(minutes=1))

    (message,) = top_level(fake)
    assert fake.thread(CHANNEL, message.ts) == [] and count_rows(engine, slack_replies, slack_replies.c.silence_id
                                                                 .is_not(None)) == 0


@pytest.mark.parametrize("door", ["slack", "api"])
def test_a_silence_from_slack_or_the_rest_door_is_replied_with_who_and_how_long(engine, fake, api, door):
    # The messages are older than the click, which arrives at T0.
    posted = T0 - timedelta(minutes=10)
    (change,) = add_incidents_with_changes(engine, 1, created_at=posted)
    notify(engine, fake, api, now=posted)
    (message,) = top_level(fake)
    incident = incident_of(engine, change)
    clicks = SlackInteractions(SECRET, clock=lambda: T0.timestamp())
    _, token = add_token(engine, "bob", created_by="admin", now=T0)
    with clicking_receiver(engine, SECRET) as receiver, requests.Session() as session:
        if door == "slack":
            request = clicks.raw(f"ic1:silence:{incident}:4h", f"ic1:silence:{incident}:4h",
                                 response_url=fake.response_url(CHANNEL, message.ts))
            assert call(receiver, "POST", "/slack/actions", request.body, request.headers).status == 200
        else:
            answer = call(receiver, "POST", f"/api/v1/incidents/{incident}/actions",
                          json.dumps({"action": "silence", "duration": "24h"}).encode(),
                          {"authorization": f"Bearer {token}", "content-type": "application/json"})
            assert answer.status == 202
        assert apply_pending(engine, allow=AllowList(), session=session, clock=lambda: T0).applied == 1

    notify(engine, fake, api, now=T0 + timedelta(minutes=1))

    (reply,) = fake.thread(CHANNEL, message.ts)
    who, length = ("alice", "4h") if door == "slack" else ("bob", "1d")
    assert reply.text.startswith(f":no_bell: *Silenced* by {who} for {length} (until ")
    assert reply.text.endswith(f" · #{incident} Incident 0")
    assert any("silenced until" in (b.get("text") or {}).get("text", "") for b in message.blocks)  # and edited
