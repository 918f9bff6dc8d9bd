"""The Slack app's storage: the messages the bot posted, the incidents each shows, the thread
replies owed for their changes, and the reminders sent.

The outbox is the one feed of incident changes (alerts, the CLI and the action inbox all write a
row per change). `queue_replies` takes in each row once (`notifications.threaded_at`, set in the
transaction that queues its replies: a state, not a cursor, so a row committed late by a slower
writer is not skipped): every live recent message showing the incident gets a reply row and
one more `changes_seen`; a message is stale while `changes_shown` (moved only after Slack's `ok`
to chat.update) is behind it. The changes a digest announces are `shown` reply rows of that
message, so a message never replies to itself.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, and_, func, or_, select
from sqlalchemy.exc import IntegrityError

from incidentctl.db.capabilities import capabilities
from incidentctl.db.engine import reader
from incidentctl.db.retry import retry_conflicts
from incidentctl.db.rows import inserted_id
from incidentctl.db.schema import (
    incident_events,
    incidents,
    notifications,
    silences,
    slack_message_incidents,
    slack_messages,
    slack_reminders,
    slack_replies,
)
from incidentctl.incidents.actions import note_reason
from incidentctl.incidents.model import ChangeKind, OutboxState, TimelineKind
from incidentctl.notify.silences import (
    active_at,
    matchers_from,
    matches_all,
    silence_for,
    silence_labels,
    silences_active_between,
)
from incidentctl.notify.slack_blocks import IncidentState
from incidentctl.slicing import chunks

LIVE, LOST, FAILED = "live", "lost", "failed"  # slack_messages.state
PENDING, SENT, UNKNOWN, SHOWN = "pending", "sent", "unknown", "shown"  # slack_replies.state (and FAILED)
QUEUE_BATCH = 5000


def record_message(engine: Engine, *, route: str, channel: str, ts: str, posted_at: datetime, base: dict,
                   lines: Mapping[int, int], changes: Mapping[int, int]) -> int:
    """Stores a posted digest, the incidents its `lines` show and the changes it announces
    ({outbox row id: incident id}); returns the message's id."""
    with engine.begin() as conn:
        message_id = inserted_id(conn.execute(slack_messages.insert().values(
            route=route, channel=channel, ts=ts, posted_at=posted_at, base=base,
            lines={str(k): v for k, v in lines.items()}, changes_seen=0, changes_shown=0,
            state=LIVE, attempts=0, updated_at=posted_at)))
        shown = set(lines.values())
        if shown:
            conn.execute(slack_message_incidents.insert(),
                         [{"message_id": message_id, "incident_id": i} for i in sorted(shown)])
        announced = [{"message_id": message_id, "notification_id": nid, "incident_id": iid, "state": SHOWN,
                      "created_at": posted_at, "attempts": 0} for nid, iid in changes.items() if iid in shown]
        if announced:
            conn.execute(slack_replies.insert(), announced)
    return message_id


def _recent(since: datetime):
    return and_(slack_messages.c.state == LIVE, slack_messages.c.posted_at >= since)


def shown_in(engine: Engine, channel: str, incident_ids: Iterable[int], since: datetime) -> set[int]:
    """The incidents among `incident_ids` that a live message in `channel`, posted since `since`, shows."""
    m, s = slack_messages.c, slack_message_incidents.c
    found: set[int] = set()
    with reader(engine).connect() as conn:
        for chunk in chunks(sorted(set(incident_ids)), 500):
            found.update(conn.execute(
                select(s.incident_id).distinct().join(slack_messages, m.id == s.message_id)
                .where(s.incident_id.in_(chunk), m.channel == channel, _recent(since))).scalars())
    return found


def queue_replies(engine: Engine, since: datetime, now: datetime, limit: int = QUEUE_BATCH) -> int:
    """Takes in up to `limit` changes not taken in yet, oldest first: each live message posted
    since `since` that shows the change's incident gets a reply row (unless the change is
    silenced: a suppressed row, or an incident silenced now; or the message announced it itself)
    and is due for a re-render. A note gets its reply even while the incident is silenced, and
    makes no re-render (the message does not show notes). Returns how many replies were queued."""
    return retry_conflicts(lambda: _queue_replies(engine, since, now, limit))


def _queue_replies(engine: Engine, since: datetime, now: datetime, limit: int) -> int:
    # Two overlapping runs: on one server the locking read waits for the other's commit and then
    # sees its threaded_at; on two Galera nodes both write threaded_at of the same rows, one loses
    # certification (1213) and its retry sees them taken.
    m, s, n, r = slack_messages.c, slack_message_incidents.c, notifications.c, slack_replies.c
    with engine.begin() as conn:
        fresh = (select(n.id, n.incident_id, n.state, n.change).where(n.threaded_at.is_(None))
                 .order_by(n.id).limit(limit))
        if capabilities(conn).row_locks:
            fresh = fresh.with_for_update()
        rows = conn.execute(fresh).all()
        if not rows:
            return 0
        by_incident: dict[int, list] = {}
        for row in rows:
            by_incident.setdefault(row.incident_id, []).append(row)
        showing: dict[int, list[int]] = {}
        announced: set[tuple[int, int]] = set()
        for chunk in chunks(sorted(by_incident), 500):
            for message_id, incident_id in conn.execute(
                    select(s.message_id, s.incident_id).join(slack_messages, m.id == s.message_id)
                    .where(s.incident_id.in_(chunk), _recent(since))):
                showing.setdefault(incident_id, []).append(message_id)
        ids = [row.id for row in rows]
        if showing:
            for chunk in chunks(ids, 500):
                announced.update(conn.execute(select(r.message_id, r.notification_id)
                                              .where(r.notification_id.in_(chunk))).all())
        silenced = _silenced_now(conn, set(showing), now) if showing else set()
        replies: list[dict] = []
        seen: dict[int, int] = {}
        for row in rows:
            for message_id in showing.get(row.incident_id, ()):
                if (message_id, row.id) in announced:
                    continue
                # A note changes nothing the message shows, and a silence quiets alerts, not people.
                if row.change == ChangeKind.NOTE:
                    replies.append(_reply_row(message_id, row.id, row.incident_id, now))
                    continue
                seen[message_id] = seen.get(message_id, 0) + 1
                if row.state != OutboxState.SUPPRESSED and row.incident_id not in silenced:
                    replies.append(_reply_row(message_id, row.id, row.incident_id, now))
        if replies:
            conn.execute(slack_replies.insert(), replies)
        for message_id, count in seen.items():
            conn.execute(slack_messages.update().where(m.id == message_id)
                         .values(changes_seen=m.changes_seen + count))
        for chunk in chunks(ids, 500):
            conn.execute(notifications.update().where(n.id.in_(chunk)).values(threaded_at=now))
    return len(replies)


def _reply_row(message_id: int, notification_id: int, incident_id: int, now: datetime) -> dict:
    return {"message_id": message_id, "notification_id": notification_id, "incident_id": incident_id,
            "state": PENDING, "created_at": now, "attempts": 0}


def take_in_silences(engine: Engine, since: datetime, now: datetime) -> int:
    """Makes stale the live recent messages showing an incident that a silence began or stopped
    covering since the Slack app last looked at that silence (created, started, ended, expired);
    returns how many messages. A silence active now that a message posted before it began has not
    heard of gets a reply row there (once per message and silence: `silenced by … for 4h`). Reads
    the messages' incidents only when some silence changed."""
    return retry_conflicts(lambda: _take_in_silences(engine, since, now))


def _take_in_silences(engine: Engine, since: datetime, now: datetime) -> int:
    # Two overlapping runs, as in _queue_replies: the silences' rows are locked (one server) or
    # both runs write their slack_seen_at (Galera: one loses certification, its retry sees them seen).
    si, m, s, r = silences.c, slack_messages.c, slack_message_incidents.c, slack_replies.c

    def crossed(moment):
        return and_(moment.is_not(None), moment <= now, or_(si.slack_seen_at.is_(None), moment > si.slack_seen_at))

    with engine.begin() as conn:
        query = select(silences).where(or_(si.slack_seen_at.is_(None), crossed(si.created_at), crossed(si.starts_at),
                                           crossed(si.ends_at), crossed(si.expired_at)))
        if capabilities(conn).row_locks:
            query = query.with_for_update()
        changed = [dict(row._mapping) for row in conn.execute(query)]
        if not changed:
            return 0
        shown = conn.execute(select(s.message_id, m.posted_at, incidents)
                             .join(incidents, incidents.c.id == s.incident_id)
                             .join(slack_messages, m.id == s.message_id).where(_recent(since))
                             .order_by(s.message_id, s.incident_id)).all()
        stale: set[int] = set()
        owed: dict[tuple[int, int], int] = {}  # (message, silence) → the first incident it covers there
        for silence in changed:
            matchers = matchers_from(silence["matchers"])
            news = active_at(silence, now)
            began = max(silence["created_at"], silence["starts_at"])
            for row in shown:
                if matches_all(matchers, silence_labels(row._mapping)):
                    stale.add(row.message_id)
                    if news and row.posted_at <= began:
                        owed.setdefault((row.message_id, silence["id"]), row.id)
        if owed:
            for chunk in chunks(sorted({sid for _, sid in owed}), 500):
                for pair in conn.execute(select(r.message_id, r.silence_id).where(r.silence_id.in_(chunk))):
                    owed.pop(tuple(pair), None)
        if owed:
            conn.execute(slack_replies.insert(), [
                {"message_id": mid, "silence_id": sid, "incident_id": iid, "state": PENDING, "created_at": now,
                 "attempts": 0} for (mid, sid), iid in sorted(owed.items())])
        for chunk in chunks(sorted(stale), 500):
            conn.execute(slack_messages.update().where(m.id.in_(chunk)).values(changes_seen=m.changes_seen + 1))
        conn.execute(silences.update().where(si.id.in_([row["id"] for row in changed])).values(slack_seen_at=now))
    return len(stale)


def _silenced_now(conn, incident_ids: set[int], now: datetime) -> set[int]:
    active = silences_active_between(conn, now, now)
    if not active:
        return set()
    found = set()
    for chunk in chunks(sorted(incident_ids), 500):
        for row in conn.execute(select(incidents).where(incidents.c.id.in_(chunk))):
            if silence_for(active, silence_labels(row._mapping), now) is not None:
                found.add(row.id)
    return found


def stale_messages(engine: Engine, since: datetime, now: datetime, limit: int = 500) -> list[dict]:
    """Live recent messages due for a re-render (an incident they show changed since their last
    edit), the least recently edited first: under a steady stream of changes none waits for ever."""
    m = slack_messages.c
    query = (select(slack_messages).where(_recent(since), m.changes_seen > m.changes_shown,
                                          or_(m.next_attempt_at.is_(None), m.next_attempt_at <= now))
             .order_by(m.updated_at, m.id).limit(limit))
    with reader(engine).connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(query)]
    for row in rows:
        row["lines"] = {int(k): v for k, v in row["lines"].items()}
    return rows


def current_states(engine: Engine, incident_ids: Iterable[int], now: datetime) -> dict[int, IncidentState]:
    """{incident id: where it stands now, with the end of the silence that covers it}."""
    i = incidents.c
    states: dict[int, IncidentState] = {}
    with reader(engine).connect() as conn:
        active = silences_active_between(conn, now, now)
        for chunk in chunks(sorted(set(incident_ids)), 500):
            for row in conn.execute(select(incidents).where(i.id.in_(chunk))):
                r = row._mapping
                until = None
                if active:
                    sid = silence_for(active, silence_labels(r), now)
                    until = next((s["ends_at"] for s in active if s["id"] == sid), None) if sid else None
                states[r["id"]] = IncidentState(r["id"], r["status"], r["acknowledged_by"], r["acknowledged_at"],
                                                r["resolved_by"], r["resolved_at"], r["resolution"], until)
    return states


def mark_message(engine: Engine, message_id: int, **values: Any) -> None:
    with engine.begin() as conn:
        conn.execute(slack_messages.update().where(slack_messages.c.id == message_id).values(**values))


def rendered(engine: Engine, message_id: int, changes: int, now: datetime, *, ts: str | None = None) -> None:
    """The message shows its first `changes` changes (never moves back); with `ts`, it was
    posted anew there (chat.update refused it), its link forgotten."""
    m = slack_messages.c
    values: dict[str, Any] = {"changes_shown": changes, "attempts": 0, "next_attempt_at": None,
                              "last_error": None, "updated_at": now}
    if ts is not None:
        values.update(ts=ts, permalink=None)
    with engine.begin() as conn:
        conn.execute(slack_messages.update().where(m.id == message_id, m.changes_shown < changes)
                     .values(**values))


def claim_replies(engine: Engine, now: datetime, lease: timedelta, limit: int = 2000) -> list[dict]:
    """Due pending replies with their message, change and incident, oldest first; their
    next_attempt_at moves a lease ahead, so an overlapping run skips them."""
    r, m, n, i = slack_replies.c, slack_messages.c, notifications.c, incidents.c
    due = (select(r.id).join(slack_messages, m.id == r.message_id)
           .where(r.state == PENDING, m.state == LIVE, or_(r.next_attempt_at.is_(None), r.next_attempt_at <= now))
           .order_by(r.id).limit(limit))
    until = now + lease

    def attempt() -> list[int]:
        # The replies' rows alone are locked (MariaDB has no FOR UPDATE OF): on one server an
        # overlapping run waits, then finds them no longer due; on two Galera nodes the two
        # claims conflict at certification and the retry finds them claimed.
        with engine.begin() as conn:
            ids = list(conn.execute(due).scalars())
            claimed: list[int] = []
            for chunk in chunks(ids, 500):
                locked = select(r.id).where(r.id.in_(chunk), r.state == PENDING,
                                            or_(r.next_attempt_at.is_(None), r.next_attempt_at <= now))
                if capabilities(conn).row_locks:
                    locked = locked.with_for_update()
                mine = list(conn.execute(locked).scalars())
                if mine:
                    conn.execute(slack_replies.update().where(r.id.in_(mine)).values(next_attempt_at=until))
                claimed.extend(mine)
        return claimed
    claimed = retry_conflicts(attempt)
    rows: list[dict] = []
    si = silences.c
    with reader(engine).connect() as conn:
        for chunk in chunks(claimed, 500):
            rows.extend(dict(x._mapping) for x in conn.execute(
                select(r.id, r.message_id, r.incident_id, r.notification_id, r.silence_id, r.attempts, m.channel,
                       m.ts, m.route, n.change, n.reason, n.created_at, i.title, i.opened_at, i.resolved_at,
                       i.resolution, si.created_by.label("silenced_by"), si.starts_at.label("silence_starts_at"),
                       si.ends_at.label("silence_ends_at"), si.matchers.label("silence_matchers"))
                .join(slack_messages, m.id == r.message_id).outerjoin(notifications, n.id == r.notification_id)
                .outerjoin(silences, si.id == r.silence_id).join(incidents, i.id == r.incident_id)
                .where(r.id.in_(chunk), or_(n.id.is_not(None), si.id.is_not(None)))))
    return sorted(rows, key=lambda x: x["id"])


def silence_covers(engine: Engine, rows: Sequence[Mapping[str, Any]]) -> dict[int, list[tuple[int, str]]]:
    """{reply id: [(incident id, title)]} for claimed silence replies: the incidents of the
    reply's message that its silence covers, by id."""
    owed = [x for x in rows if x["silence_id"] is not None]
    if not owed:
        return {}
    s = slack_message_incidents.c
    shown: dict[int, list] = {}
    with reader(engine).connect() as conn:
        for chunk in chunks(sorted({x["message_id"] for x in owed}), 500):
            for row in conn.execute(select(s.message_id, incidents).join(incidents, incidents.c.id == s.incident_id)
                                    .where(s.message_id.in_(chunk)).order_by(s.incident_id)):
                shown.setdefault(row.message_id, []).append(row)
    covers = {}
    for x in owed:
        matchers = matchers_from(x["silence_matchers"] or [])
        covers[x["id"]] = [(row.id, row.title) for row in shown.get(x["message_id"], ())
                           if matches_all(matchers, silence_labels(row._mapping))]
    return covers


def note_texts(engine: Engine, rows: Sequence[Mapping[str, Any]]) -> dict[int, tuple[str, str]]:
    """{outbox row id: (who, the whole text)} for claimed note replies: the outbox keeps 255
    characters, the timeline row the note (same incident and time, and the same reason: found
    again after a `rebuild`, which rewrites the timeline). A row whose note is not found is left
    out (its reason serves)."""
    notes = [r for r in rows if r["change"] == ChangeKind.NOTE]
    if not notes:
        return {}
    e = incident_events.c
    found: dict[tuple[int, datetime], list[tuple[str, str]]] = {}
    with reader(engine).connect() as conn:
        for chunk in chunks(notes, 500):
            query = (select(e.incident_id, e.at, e.actor, e.detail)
                     .where(e.incident_id.in_({r["incident_id"] for r in chunk}), e.kind == TimelineKind.NOTE,
                            e.at.in_({r["created_at"] for r in chunk})).order_by(e.id))
            for row in conn.execute(query):
                text = (row.detail or {}).get("text") or ""
                found.setdefault((row.incident_id, row.at), []).append((row.actor, text))
    texts = {}
    for r in notes:
        match = next((note for note in found.get((r["incident_id"], r["created_at"]), ())
                      if note_reason(*note) == r["reason"]), None)
        if match is not None:
            texts[r["notification_id"]] = match
    return texts


def prune_messages(engine: Engine, before: datetime) -> int:
    """Deletes messages posted before `before`, with their links and replies (in pages)."""
    m = slack_messages.c
    done = 0
    while True:
        with engine.begin() as conn:
            ids = list(conn.execute(select(m.id).where(m.posted_at < before).order_by(m.id).limit(500)).scalars())
            if not ids:
                return done
            conn.execute(slack_replies.delete().where(slack_replies.c.message_id.in_(ids)))
            conn.execute(slack_message_incidents.delete().where(slack_message_incidents.c.message_id.in_(ids)))
            done += conn.execute(slack_messages.delete().where(m.id.in_(ids))).rowcount


def drop_replies(engine: Engine, message_id: int, reason: str) -> int:
    """Fails the pending replies of a message that is no longer followed."""
    r = slack_replies.c
    with engine.begin() as conn:
        return conn.execute(slack_replies.update().where(r.message_id == message_id, r.state == PENDING)
                            .values(state=FAILED, last_error=reason[:1024])).rowcount


def release_replies(engine: Engine, ids: Sequence[int]) -> None:
    """Gives back claimed replies not sent in this run (due again at once, no attempt counted)."""
    r = slack_replies.c
    with engine.begin() as conn:
        for chunk in chunks(list(ids), 500):
            conn.execute(slack_replies.update().where(r.id.in_(chunk), r.state == PENDING)
                         .values(next_attempt_at=None))


def settle_replies(engine: Engine, ids: Sequence[int], **values: Any) -> int:
    """Marks pending replies (one more attempt each); returns how many."""
    r = slack_replies.c
    done = 0
    with engine.begin() as conn:
        for chunk in chunks(list(ids), 500):
            done += conn.execute(slack_replies.update().where(r.id.in_(chunk), r.state == PENDING)
                                 .values(attempts=r.attempts + 1, **values)).rowcount
    return done


def announcing(engine: Engine, incident_ids: Iterable[int]) -> dict[int, dict]:
    """{incident id: the first bot message that showed it (id, channel, ts, permalink)}."""
    m, s = slack_messages.c, slack_message_incidents.c
    found: dict[int, dict] = {}
    with reader(engine).connect() as conn:
        for chunk in chunks(sorted(set(incident_ids)), 500):
            first = (select(s.incident_id, func.min(s.message_id).label("message_id"))
                     .where(s.incident_id.in_(chunk)).group_by(s.incident_id).subquery())
            query = (select(first.c.incident_id, m.id, m.route, m.channel, m.ts, m.permalink, m.state)
                     .join(slack_messages, m.id == first.c.message_id))
            for row in conn.execute(query):
                found[row.incident_id] = {"id": row.id, "route": row.route, "channel": row.channel, "ts": row.ts,
                                          "permalink": row.permalink, "state": row.state}
    return found


def failures(engine: Engine, since: datetime) -> dict:
    """What Slack refused since `since`: messages that could not be kept current and replies
    not delivered, with the latest error (for doctor and notify)."""
    m, r = slack_messages.c, slack_replies.c
    with reader(engine).connect() as conn:
        broken = conn.execute(select(func.count(), func.max(m.updated_at))
                              .where(m.last_error.is_not(None), m.updated_at >= since)).one()
        lost = conn.execute(select(func.count()).where(m.state == LOST, m.updated_at >= since)).scalar_one()
        failed = conn.execute(select(func.count()).where(r.state == FAILED, r.created_at >= since)).scalar_one()
        unknown = conn.execute(select(func.count()).where(r.state == UNKNOWN, r.created_at >= since)).scalar_one()
        last = conn.execute(select(m.last_error, m.updated_at).where(m.last_error.is_not(None))
                            .order_by(m.updated_at.desc()).limit(1)).first()
        last_reply = conn.execute(select(r.last_error, r.created_at).where(r.state == FAILED)
                                  .order_by(r.id.desc()).limit(1)).first()
    errors = [x for x in (last, last_reply) if x is not None]
    latest = max(errors, key=lambda x: x[1])[0] if errors else None
    return {"messages_failing": broken[0], "messages_lost": lost, "replies_failed": failed,
            "replies_unknown": unknown, "last_error": latest}


def reminder_states(engine: Engine, incident_ids: Iterable[int]) -> dict[int, dict]:
    """{incident id: its slack_reminders row}."""
    found: dict[int, dict] = {}
    with reader(engine).connect() as conn:
        for chunk in chunks(sorted(set(incident_ids)), 500):
            for row in conn.execute(select(slack_reminders).where(slack_reminders.c.incident_id.in_(chunk))):
                found[row.incident_id] = dict(row._mapping)
    return found


def unacknowledged(engine: Engine, severities: Sequence[str], opened_before: datetime, since: datetime,
                   limit: int = 1000) -> list[dict]:
    """Open (unacknowledged) incidents of `severities` opened before `opened_before` that a live
    bot message posted since `since` shows: the candidates for a reminder."""
    i, s, m = incidents.c, slack_message_incidents.c, slack_messages.c
    shown = select(s.incident_id).join(slack_messages, m.id == s.message_id).where(_recent(since))
    query = (select(incidents).where(i.status == "open", i.severity.in_(list(severities)),
                                     i.opened_at <= opened_before, i.id.in_(shown))
             .order_by(i.opened_at).limit(limit))
    with reader(engine).connect() as conn:
        return [dict(r._mapping) for r in conn.execute(query)]


def claim_reminder(engine: Engine, incident_id: int, *, sent: int, escalate: bool, now: datetime) -> bool:
    """Records a reminder (or the escalation) about to be sent, if nobody recorded it first
    (`sent` is the count the decision saw). Claimed before sending, so a crash loses a reminder
    rather than sending it twice."""
    r = slack_reminders.c

    def attempt() -> bool:
        with engine.begin() as conn:
            row = conn.execute(select(slack_reminders).where(r.incident_id == incident_id)).first()
            if row is None:
                if sent != 0 or escalate:
                    return False
                conn.execute(slack_reminders.insert().values(incident_id=incident_id, sent=1, last_sent_at=now,
                                                             updated_at=now))
                return True
            if row.sent != sent or row.escalated_at is not None:
                return False
            values = {"escalated_at": now} if escalate else {"sent": sent + 1, "last_sent_at": now}
            return conn.execute(slack_reminders.update().where(r.incident_id == incident_id, r.sent == sent,
                                                               r.escalated_at.is_(None))
                                .values(updated_at=now, **values)).rowcount == 1
    try:
        return retry_conflicts(attempt)
    except IntegrityError:  # another run recorded the first reminder between our read and insert
        return False


def unclaim_reminder(engine: Engine, incident_id: int, *, sent: int, last_at: datetime | None, escalate: bool,
                     error: str, now: datetime) -> None:
    """Takes back a claim whose message Slack certainly did not post (retryable answer)."""
    r = slack_reminders.c
    values = {"escalated_at": None} if escalate else {"sent": sent, "last_sent_at": last_at}
    with engine.begin() as conn:
        conn.execute(slack_reminders.update().where(r.incident_id == incident_id)
                     .values(last_error=error[:1024], updated_at=now, **values))


def reminder_error(engine: Engine, incident_id: int, error: str | None, now: datetime) -> None:
    with engine.begin() as conn:
        conn.execute(slack_reminders.update().where(slack_reminders.c.incident_id == incident_id)
                     .values(last_error=error and error[:1024], updated_at=now))


def silenced_now(engine: Engine, incident_ids: Iterable[int], now: datetime) -> set[int]:
    with reader(engine).connect() as conn:
        return _silenced_now(conn, set(incident_ids), now)

