"""Delivery by the Slack app's bot, on both databases, against the fake Web API: the digest
posted with chat.postMessage and stored, kept current in place (chat.update + a thread reply)
when an incident changes, the fallback to a new message, Slack's permanent answers reported, a
429 honoured, a digest of 500 changes one valid message."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import select

from incidentctl.config import load_settings
from incidentctl.db.schema import slack_message_incidents, slack_messages, slack_replies
from incidentctl.incidents.actions import transition
from incidentctl.notify.delivery import notify_pending
from tests.support import T0
from tests.support.cli import invoke
from tests.support.factories import add_incidents_with_changes, count_rows, outbox_rows
from tests.support.slack_blockkit import problems
from tests.support.slack_web_fake import TOKEN

NOW = T0 + timedelta(minutes=1)
CHANNEL = "C0ALERTS"


@pytest.fixture
def fake(slack_web):
    fake, _ = slack_web
    fake.reset()
    fake.outside.clear()
    fake.edit_window = None
    return fake


def settings(fake, **env):
    return load_settings(environ={"SLACK_BOT_TOKEN": TOKEN, "SLACK_CHANNEL": CHANNEL,
                                  "INCIDENTCTL_SLACK_API_URL": fake.api_url, **env})


def notify(engine, fake, api, now=NOW, **env):
    return notify_pending(engine, settings(fake, **env), None, clock=lambda: now, api=api)


def top_level(fake, channel=CHANNEL):
    return sorted((m for m in fake.messages.values() if m.channel == channel and not m.thread_ts),
                  key=lambda m: m.ts)


def line_of(message, incident_id: int) -> str:
    """The text of the digest line that shows `incident_id` (found by its menu)."""
    return next(b["text"]["text"] for b in message.blocks
                if (b.get("accessory") or {}).get("action_id") == f"ic1:menu:{incident_id}")


def incident_of(engine, change_id: int) -> int:
    return outbox_rows(engine)[change_id]["incident_id"]


def test_the_digest_is_posted_by_the_bot_and_stored_with_its_incidents(engine, fake, api):
    changes = add_incidents_with_changes(engine, 3, created_at=NOW)
    summary = notify(engine, fake, api)

    assert (summary.sent, summary.routes[0].channel) == (3, CHANNEL)
    (message,) = top_level(fake)
    assert summary.routes[0].ts == message.ts
    assert problems(message.blocks) == [] and not fake.rejected
    with engine.connect() as conn:
        (row,) = conn.execute(select(slack_messages)).all()
        shown = set(conn.execute(select(slack_message_incidents.c.incident_id)).scalars())
    assert (row.channel, row.ts, row.route, row.posted_at) == (CHANNEL, message.ts, "default", NOW)
    assert shown == {incident_of(engine, c) for c in changes}
    assert row.changes_seen == row.changes_shown == 0


def test_an_ack_edits_the_message_in_place_and_replies_in_its_thread(engine, fake, api):
    changes = add_incidents_with_changes(engine, 2, created_at=NOW)
    notify(engine, fake, api)
    acked, other = incident_of(engine, changes[0]), incident_of(engine, changes[1])
    transition(engine, "ack", acked, by="alice", note=None, now=NOW + timedelta(minutes=1))

    summary = notify(engine, fake, api, now=NOW + timedelta(minutes=2))

    (message,) = top_level(fake)  # no new digest: the acknowledgement went in place
    assert summary.in_place == 1 and summary.sent == 0
    assert summary.slack["updated"] == 1 and summary.slack["replies"] == 1
    assert message.update_count == 1
    assert "*Acknowledged* by alice" in line_of(message, acked)
    assert "Acknowledged" not in line_of(message, other)
    assert [a["value"] for a in _menu(message, acked)] == [f"ic1:resolve:{acked}", f"ic1:silence:{acked}:1h",
                                                           f"ic1:silence:{acked}:4h", f"ic1:silence:{acked}:24h"]
    (reply,) = fake.thread(CHANNEL, message.ts)
    assert reply.text.startswith(":eyes: *Acknowledged* by alice") and f"#{acked}" in reply.text
    # The next run has nothing left to do.
    again = notify(engine, fake, api, now=NOW + timedelta(minutes=3))
    assert (again.slack["updated"], again.slack["replies"], message.update_count) == (0, 0, 1)


def test_a_resolve_strikes_the_line_and_its_reply_links_to_the_announcement(engine, fake, api):
    (change,) = add_incidents_with_changes(engine, 1, created_at=NOW)
    notify(engine, fake, api)
    incident = incident_of(engine, change)
    transition(engine, "resolve", incident, by="bob", note="restarted", now=NOW + timedelta(minutes=4))

    notify(engine, fake, api, now=NOW + timedelta(minutes=5))

    (message,) = top_level(fake)
    line = line_of(message, incident)
    assert line.startswith("~") and "*Resolved* by bob" in line
    (reply,) = fake.thread(CHANNEL, message.ts)
    assert "*Resolved* by bob" in reply.text and "restarted" in reply.text
    assert f"/archives/{CHANNEL}/p{message.ts.replace('.', '')}|announced here>" in reply.text
    assert len(fake.calls_to("chat.getPermalink")) == 1


def test_an_escalation_is_news_and_also_updates_the_old_message(engine, fake, api):
    (change,) = add_incidents_with_changes(engine, 1, created_at=NOW, severity="warning")
    notify(engine, fake, api)
    incident = incident_of(engine, change)
    from tests.support.factories import add_change
    add_change(engine, incident, "escalated", created_at=NOW + timedelta(minutes=1))

    summary = notify(engine, fake, api, now=NOW + timedelta(minutes=2))

    first, second = top_level(fake)
    assert summary.sent == 1 and summary.slack["replies"] == 1
    assert [m.text for m in fake.thread(CHANNEL, first.ts)][0].startswith(":arrow_double_up: *Escalated*")
    assert not fake.thread(CHANNEL, second.ts)


def test_a_message_slack_will_not_edit_is_posted_anew(engine, fake, api):
    (change,) = add_incidents_with_changes(engine, 1, created_at=NOW)
    notify(engine, fake, api)
    (old,) = top_level(fake)
    old.deleted = True  # someone deleted it: chat.update answers message_not_found
    transition(engine, "ack", incident_of(engine, change), by="carol", note=None, now=NOW + timedelta(minutes=1))

    summary = notify(engine, fake, api, now=NOW + timedelta(minutes=2))

    assert summary.slack["reposted"] == 1
    new = next(m for m in top_level(fake) if not m.deleted)
    assert new.ts != old.ts and "*Acknowledged* by carol" in line_of(new, incident_of(engine, change))
    with engine.connect() as conn:
        assert conn.execute(select(slack_messages.c.ts)).scalar_one() == new.ts


def test_a_repost_without_an_answer_is_not_posted_again(engine, fake, api):
    (change,) = add_incidents_with_changes(engine, 1, created_at=NOW)
    notify(engine, fake, api)
    top_level(fake)[0].deleted = True
    fake.fail("chat.postMessage", "internal_error")  # the repost: Slack may have posted it
    transition(engine, "ack", incident_of(engine, change), by="dave", note=None, now=NOW + timedelta(minutes=1))

    summary = notify(engine, fake, api, now=NOW + timedelta(minutes=2))
    assert summary.slack["lost"] == 1
    posts = len(fake.calls_to("chat.postMessage"))
    transition(engine, "resolve", incident_of(engine, change), by="dave", note=None, now=NOW + timedelta(minutes=3))
    notify(engine, fake, api, now=NOW + timedelta(minutes=4))
    # Not reposted, nor replied to: the resolve is news in a new digest, as no live message shows it.
    (post,) = fake.calls_to("chat.postMessage")[posts:]
    assert "thread_ts" not in post.args and post.args["text"].startswith("incidentctl: 1 resolved")
    with engine.connect() as conn:
        assert conn.execute(select(slack_messages.c.state).order_by(slack_messages.c.id)).scalars().all() == [
            "lost", "live"]


@pytest.mark.parametrize("break_it, error, scope", [
    (lambda fake: fake.revoke(TOKEN), "token_revoked", "workspace"),          # the token
    (lambda fake: fake.outside.add(CHANNEL), "not_in_channel", "channel"),    # the bot left the channel
])
def test_slacks_permanent_answers_are_reported_for_the_digest(engine, fake, api, break_it, error, scope):
    add_incidents_with_changes(engine, 2, created_at=NOW)
    break_it(fake)
    try:
        summary = notify(engine, fake, api)
    finally:
        fake.revoked.clear()
    (route,) = summary.routes
    assert (route.outcome, route.error, summary.failed) == ("permanent", f"{scope}: {error}", 2)
    assert not summary.ok


def test_slacks_permanent_answers_are_reported_while_keeping_messages_current(engine, fake, api):
    (change,) = add_incidents_with_changes(engine, 1, created_at=NOW)
    notify(engine, fake, api)
    fake.outside.add(CHANNEL)
    transition(engine, "ack", incident_of(engine, change), by="erin", note=None, now=NOW + timedelta(minutes=1))

    summary = notify(engine, fake, api, now=NOW + timedelta(minutes=2))

    assert summary.slack_errors == [{"scope": "channel", "error": "not_in_channel", "channel": CHANNEL}]
    assert not summary.ok
    # Once the bot is back in the channel (and PERMANENT_RETRY passed), the message catches up.
    fake.outside.clear()
    later = notify(engine, fake, api, now=NOW + timedelta(minutes=20))
    assert (later.slack["updated"], later.slack["replies"], later.slack_errors) == (1, 1, [])


def test_a_429_is_honoured(engine, fake, api, slack_web):
    (change,) = add_incidents_with_changes(engine, 1, created_at=NOW)
    notify(engine, fake, api)
    transition(engine, "ack", incident_of(engine, change), by="frank", note=None, now=NOW + timedelta(minutes=1))
    fake.fail("chat.update", "ratelimited", retry_after=3)

    summary = notify(engine, fake, api, now=NOW + timedelta(minutes=2))

    assert summary.slack["updated"] == 1 and len(fake.throttled) == 1
    assert fake.violations == [] and fake.honoured == 1


def test_a_digest_of_500_changes_with_actions_is_one_valid_message(engine, fake, api):
    add_incidents_with_changes(engine, 500, created_at=NOW)
    summary = notify(engine, fake, api)
    (message,) = top_level(fake)
    assert summary.sent == 500 and problems(message.blocks) == [] and not fake.rejected
    menus = [b for b in message.blocks if (b.get("accessory") or {}).get("type") == "overflow"]
    assert len(menus) == count_rows(engine, slack_message_incidents) > 0
    assert "more" in message.blocks[-3]["text"]["text"]


def test_a_reply_without_an_answer_is_not_sent_again(engine, fake, api):
    (change,) = add_incidents_with_changes(engine, 1, created_at=NOW)
    notify(engine, fake, api)
    transition(engine, "ack", incident_of(engine, change), by="gina", note=None, now=NOW + timedelta(minutes=1))
    fake.fail("chat.postMessage", "internal_error")
    summary = notify(engine, fake, api, now=NOW + timedelta(minutes=2))
    later = notify(engine, fake, api, now=NOW + timedelta(minutes=10))
    assert (summary.slack["replies_unknown"], later.slack["replies"]) == (1, 0)
    with engine.connect() as conn:
        assert conn.execute(select(slack_replies.c.state).order_by(slack_replies.c.id)).scalars().all() == [
            "shown", "unknown"]  # the opening, announced by the digest itself; the ack's reply


def test_notify_cli_posts_then_an_ack_from_the_cli_updates_the_message(db_url, engine, fake, slack_web):
    _, clock = slack_web
    add_incidents_with_changes(engine, 1, created_at=NOW)
    env = {"INCIDENTCTL_DATABASE_URL": db_url, "SLACK_BOT_TOKEN": TOKEN, "SLACK_CHANNEL": CHANNEL,
           "INCIDENTCTL_SLACK_API_URL": fake.api_url, "SLACK_WEBHOOK_URL": ""}
    out = invoke("notify", env=env, check=True).output
    assert f"route default (channel {CHANNEL}): sent 1 change(s)" in out
    (incident,) = json.loads(invoke("list", "-o", "json", env=env, check=True).output)
    clock.advance(5)  # the fake's buckets refill
    invoke("ack", str(incident["id"]), "--by", "hana", env=env, check=True)
    result = invoke("notify", "-o", "json", env=env, check=True)
    report = json.loads(result.output)
    assert report["in_place"] == 1 and report["slack"]["updated"] == 1 and report["slack"]["replies"] == 1
    (message,) = top_level(fake)
    assert "*Acknowledged* by hana" in line_of(message, incident["id"])
    fake.outside.add(CHANNEL)
    clock.advance(5)
    invoke("resolve", str(incident["id"]), "--by", "hana", env=env, check=True)
    failed = invoke("notify", env=env)
    assert failed.exit_code == 1 and "FAILED in C0ALERTS: Slack says not_in_channel (channel)" in failed.output
    doctor = json.loads(invoke("doctor", "-o", "json", env=env).output)
    (check,) = [c for c in doctor["checks"] if c["name"] == "slack_app"]
    assert check["level"] == "error" and "not_in_channel" in check["message"]


def _menu(message, incident_id):
    block = next(b for b in message.blocks if (b.get("accessory") or {}).get("action_id") == f"ic1:menu:{incident_id}")
    return block["accessory"]["options"]


def test_old_messages_are_pruned_with_their_links_and_replies(engine, fake, api):
    (change,) = add_incidents_with_changes(engine, 1, created_at=NOW)
    notify(engine, fake, api)
    transition(engine, "ack", incident_of(engine, change), by="kim", note=None, now=NOW + timedelta(minutes=1))
    notify(engine, fake, api, now=NOW + timedelta(minutes=2))
    assert count_rows(engine, slack_replies) == 2
    notify(engine, fake, api, now=NOW + timedelta(days=29))
    assert count_rows(engine, slack_messages) == 1
    notify(engine, fake, api, now=NOW + timedelta(days=31))
    assert [count_rows(engine, t) for t in (slack_messages, slack_message_incidents, slack_replies)] == [0, 0, 0]


def test_a_dry_run_shows_the_bots_message_and_posts_nothing(engine, fake):
    add_incidents_with_changes(engine, 2, created_at=NOW)
    summary = notify_pending(engine, settings(fake), None, clock=lambda: NOW, dry_run=True)
    (shown,) = summary.messages
    assert shown["channel"] == CHANNEL and shown["changes"] == 2
    assert len([b for b in shown["message"]["blocks"] if "accessory" in b]) == 2
    assert fake.calls == [] and count_rows(engine, slack_messages) == 0


def test_a_run_waits_on_slacks_limits_at_most_its_budget_and_the_next_run_goes_on(engine, fake, api, slack_web):
    from incidentctl.notify.delivery import sync
    from incidentctl.notify.routes import load_routes

    _, clock = slack_web
    incidents = []
    for _ in range(12):  # twelve messages, one incident each
        (change,) = add_incidents_with_changes(engine, 1, created_at=NOW)
        notify(engine, fake, api)
        incidents.append(incident_of(engine, change))
    for iid in incidents:
        transition(engine, "ack", iid, by="lee", note=None, now=NOW + timedelta(minutes=1))
    config = settings(fake)

    started = clock.now
    first = sync(engine, config, api, load_routes(config), NOW + timedelta(minutes=2), budget=3.0)
    assert first.deferred and 0 < first.updated < 12
    assert clock.now - started <= 3.0 + 1e-6  # never slept past the budget
    updated, runs = first.updated, 1
    while updated < 12 and runs < 20:
        clock.advance(3)
        updated += sync(engine, config, api, load_routes(config), NOW + timedelta(minutes=2), budget=3.0).updated
        runs += 1
    assert updated == 12 and fake.violations == []
    assert all("*Acknowledged* by lee" in line_of(m, i) for m, i in zip(top_level(fake), incidents, strict=True))


def test_a_silence_shows_on_the_message_and_its_end_too(engine, fake, api):
    from incidentctl.notify.silences import Matcher, add_silence, expire_silence

    (change,) = add_incidents_with_changes(engine, 1, created_at=NOW)
    notify(engine, fake, api)
    incident = incident_of(engine, change)
    silence = add_silence(engine, [Matcher("service", "api")], starts_at=NOW + timedelta(minutes=1),
                          ends_at=NOW + timedelta(hours=4), comment="deploy", created_by="mo",
                          now=NOW + timedelta(minutes=1))

    first = notify(engine, fake, api, now=NOW + timedelta(minutes=2))
    (message,) = top_level(fake)
    assert first.slack["updated"] == 1 and "silenced until" in line_of(message, incident)
    assert notify(engine, fake, api, now=NOW + timedelta(minutes=3)).slack["updated"] == 0  # seen once
    expire_silence(engine, silence["id"], NOW + timedelta(minutes=4))
    assert notify(engine, fake, api, now=NOW + timedelta(minutes=5)).slack["updated"] == 1
    assert "silenced" not in line_of(message, incident)
    (reply,) = fake.thread(CHANNEL, message.ts)  # its start is replied once, its end only edits
    assert reply.text.startswith(":no_bell: *Silenced* by mo for 3h59m (until ")
