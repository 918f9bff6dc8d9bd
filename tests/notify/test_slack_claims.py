"""The Slack app's claims hold when two runs overlap (cron and `run`, or workers on two hosts):
a change (a note too) is taken in once, a silence's reply queued once per message, a thread reply
claimed by one run, a reminder recorded once.
Both databases; threads stand in for the second run."""

from __future__ import annotations

import threading
from datetime import timedelta

from incidentctl.db.schema import (
    notifications,
    silences,
    slack_message_incidents,
    slack_messages,
    slack_reminders,
    slack_replies,
)
from incidentctl.notify import slack_store
from incidentctl.notify.slack_store import claim_reminder, claim_replies, queue_replies, take_in_silences
from tests.support import T0
from tests.support.factories import add_incidents_with_changes, count_rows, outbox_rows

NOW = T0 + timedelta(minutes=1)
LEASE = timedelta(minutes=5)


def _message_showing(engine, incident_ids: list[int], ts: str = "1000.000100") -> int:
    with engine.begin() as conn:
        message_id = conn.execute(slack_messages.insert().values(
            route="default", channel="C0ALERTS", ts=ts, posted_at=T0, base={}, lines={},
            changes_seen=0, changes_shown=0, state=slack_store.LIVE, attempts=0)).inserted_primary_key[0]
        conn.execute(slack_message_incidents.insert(),
                     [{"message_id": message_id, "incident_id": i} for i in incident_ids])
    return message_id


def _together(work, n: int = 2) -> list:
    """Runs `work()` on n threads released at once; returns their results."""
    gate = threading.Barrier(n)
    results: list = [None] * n

    def run(k: int) -> None:
        gate.wait()
        results[k] = work()
    threads = [threading.Thread(target=run, args=(k,)) for k in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def _changes_with_a_message(engine, n: int) -> list[int]:
    changes = add_incidents_with_changes(engine, n, created_at=NOW)
    rows = outbox_rows(engine)
    _message_showing(engine, sorted({rows[c]["incident_id"] for c in changes}))
    return changes


class _OtherRun:
    """Another run caught mid-claim: its transaction has written (and so locked) `rows` and not
    committed yet; `finish()` commits it."""

    def __init__(self, engine, statement):
        self.conn = engine.connect()
        self.transaction = self.conn.begin()
        self.conn.execute(statement)

    def finish(self) -> None:
        self.transaction.commit()
        self.conn.close()


def _while_other_run_claims(engine, statement, work):
    """`work()` started while another run holds an uncommitted claim; that run commits after
    `work` has had time to reach it. Returns what `work()` returned."""
    other = _OtherRun(engine, statement)
    result: list = []
    thread = threading.Thread(target=lambda: result.append(work()))
    thread.start()
    thread.join(0.5)  # work waits on the other run's rows (or, wrongly, has already read them)
    other.finish()
    thread.join()
    return result[0]


def test_a_change_another_run_is_taking_in_is_not_taken_in_again(engine):
    changes = _changes_with_a_message(engine, 5)
    taking = notifications.update().where(notifications.c.id.in_(changes)).values(threaded_at=NOW)
    assert _while_other_run_claims(engine, taking, lambda: queue_replies(engine, T0, NOW)) == 0
    assert count_rows(engine, slack_replies) == 0  # the other run (here: only its mark) owns them


def test_a_reply_another_run_is_claiming_is_not_claimed_again(engine):
    changes = _changes_with_a_message(engine, 5)
    assert queue_replies(engine, T0, NOW) == len(changes)
    claiming = slack_replies.update().values(next_attempt_at=NOW + LEASE)
    assert _while_other_run_claims(engine, claiming, lambda: claim_replies(engine, NOW, LEASE)) == []
    # after the lease the replies are due again
    assert len(claim_replies(engine, NOW + LEASE, LEASE)) == len(changes)


def test_overlapping_runs_claim_each_reply_once(engine):
    changes = _changes_with_a_message(engine, 60)
    assert queue_replies(engine, T0, NOW) == len(changes)
    claimed = _together(lambda: [r["id"] for r in claim_replies(engine, NOW, LEASE)], n=3)
    every = [i for ids in claimed for i in ids]
    assert len(every) == len(set(every)) == len(changes)


def test_a_claimed_reply_carries_its_message_change_and_incident(engine):
    changes = _changes_with_a_message(engine, 2)
    queue_replies(engine, T0, NOW)
    rows = claim_replies(engine, NOW, LEASE)
    outbox = outbox_rows(engine)
    assert [(r["notification_id"], r["incident_id"], r["channel"]) for r in rows] == \
        [(c, outbox[c]["incident_id"], "C0ALERTS") for c in changes]
    assert all(r["title"].startswith("Incident ") for r in rows)


def test_a_first_reminder_another_run_is_recording_is_not_recorded_twice(engine):
    [change] = add_incidents_with_changes(engine, 1, created_at=NOW)
    incident_id = outbox_rows(engine)[change]["incident_id"]
    recording = slack_reminders.insert().values(incident_id=incident_id, sent=1, last_sent_at=NOW, updated_at=NOW)
    claim = lambda: claim_reminder(engine, incident_id, sent=0, escalate=False, now=NOW)  # noqa: E731
    assert _while_other_run_claims(engine, recording, claim) is False


def test_a_reminder_is_recorded_once_when_runs_overlap(engine):
    [change] = add_incidents_with_changes(engine, 1, created_at=NOW)
    incident_id = outbox_rows(engine)[change]["incident_id"]
    assert claim_reminder(engine, incident_id, sent=0, escalate=False, now=NOW) is True
    second = _together(lambda: claim_reminder(engine, incident_id, sent=1, escalate=False, now=NOW), n=3)
    assert sorted(second) == [False, False, True]
    # a claim made on a stale count (another run already sent the second) is refused
    assert claim_reminder(engine, incident_id, sent=1, escalate=False, now=NOW) is False


def _silence(engine) -> int:
    from incidentctl.notify.silences import Matcher, add_silence

    return add_silence(engine, [Matcher("service", "api")], starts_at=NOW, ends_at=NOW + timedelta(hours=1),
                       comment="deploy", created_by="mo", now=NOW)["id"]


def test_a_silence_another_run_is_taking_in_is_not_replied_again(engine):
    _changes_with_a_message(engine, 3)
    silence_id = _silence(engine)
    taking = silences.update().where(silences.c.id == silence_id).values(slack_seen_at=NOW)
    _while_other_run_claims(engine, taking, lambda: take_in_silences(engine, T0, NOW))
    assert count_rows(engine, slack_replies) == 0  # the other run (here: only its mark) owns it


def test_overlapping_runs_queue_one_reply_per_message_for_a_silence_and_a_note(engine):
    from incidentctl.incidents.actions import add_note

    changes = _changes_with_a_message(engine, 3)
    _message_showing(engine, [outbox_rows(engine)[changes[0]]["incident_id"]], ts="1000.000200")  # a second
    silence_id = _silence(engine)
    add_note(engine, outbox_rows(engine)[changes[0]]["incident_id"], "on it", by="alice", now=NOW)

    _together(lambda: (queue_replies(engine, T0, NOW), take_in_silences(engine, T0, NOW)), n=3)

    r = slack_replies.c
    assert count_rows(engine, slack_replies, r.silence_id == silence_id) == 2  # one in each message
    # the note in both; the changes none: their incidents are silenced now
    assert count_rows(engine, slack_replies, r.notification_id.is_not(None)) == 2
