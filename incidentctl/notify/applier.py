"""The batch side of the action inbox: apply people's actions oldest first, exactly once.

`apply_pending` reads pending action_inbox rows in id order. Each row's meaning comes from its
raw bytes (intent.py, pure); the allow-lists may refuse it (a Slack user group's members are
asked of Slack by usergroups.py and kept a while; when Slack cannot say, refused); then, in ONE
transaction, the row is locked and found still pending, its dedupe key is checked, the action
goes through the same transitions as the CLI (incidents/actions.py, silences.py) with `by` the
Slack user or token owner and `via` slack or api on the timeline, and the row is marked applied.
So a crash anywhere leaves the row pending and the incident untouched, and two appliers never
apply a row twice (the row lock; SQLite has one writer).

An action that no longer applies (an ack of a resolved incident, an unknown id, a duplicate)
is marked refused with the reason, in a transaction of its own, and the batch goes on: one bad
row never stops the rows behind it. Only a database that does not answer stops the batch.

Refused Slack actions are told to the person: an ephemeral reply POSTed to the click's
response_url (`reply_state` pending → sent | failed). A retryable failure stays pending for the
next batch, up to MAX_REPLY_ATTEMPTS, and while Slack accepts the URL (30 minutes).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import requests
from sqlalchemy import Connection, Engine, select, update
from sqlalchemy.exc import IntegrityError

from incidentctl.counting import Counts
from incidentctl.db.capabilities import capabilities
from incidentctl.db.engine import database_errors, short_error
from incidentctl.db.lease import Lease
from incidentctl.db.retry import retry_conflicts
from incidentctl.db.schema import action_inbox, incidents
from incidentctl.durations import format_duration, parse_duration
from incidentctl.errors import DatabaseConflict, DatabaseUnavailable, IncidentctlError, LeaseLost, NotFound
from incidentctl.incidents.actions import note_on, record_on, transition_on
from incidentctl.incidents.model import TimelineKind
from incidentctl.ingest.inbox import ActionKind, InboxState, ReplyState
from incidentctl.notify.intent import (
    AllowList,
    InboxRow,
    Intent,
    Members,
    Unusable,
    read_intent,
    refusal,
    response_url_of,
)
from incidentctl.notify.silences import incident_matchers, silence_on
from incidentctl.notify.slack import RETRYABLE, UNKNOWN
from incidentctl.notify.slack_api import SlackApiError, respond
from incidentctl.notify.slack_blocks import refusal as refusal_message
from incidentctl.notify.usergroups import UserGroups

log = logging.getLogger(__name__)

PAGE = 200  # inbox rows read per query
MAX_REPLY_ATTEMPTS = 5
RESPONSE_URL_LIFETIME = timedelta(minutes=30)  # Slack accepts a response_url this long
# What each transition of the CLI is called, and the words for what it did.
_TRANSITIONS = {ActionKind.ACK: "acknowledged", ActionKind.RESOLVE: "resolved", ActionKind.REOPEN: "reopened"}


@dataclass
class ApplySummary(Counts):
    applied: int = 0
    refused: int = 0
    replies_sent: int = 0
    replies_failed: int = 0
    replies_waiting: int = 0


class Refused(IncidentctlError):
    """The action cannot be applied; the message says why (to the person, too)."""


def apply_pending(engine: Engine, *, allow: AllowList, session: requests.Session | None,
                  clock: Callable[[], datetime], limit: int | None = None, timeout: float = 10.0,
                  lease: Lease | None = None, groups: UserGroups | None = None) -> ApplySummary:
    """Applies pending inbox rows oldest first, then sends the replies owed; returns the counts.
    `groups` looks up the Slack user groups of the allow-list (without it, a person allowed
    only through a group is refused, saying why).
    With no `session` (replay: history), nobody is told anything. Holds `lease` (default: the
    applier lease with default times; nested in a holder's `with`, held once) and fences each
    row's transaction on it, so actions apply in one order with the alerts' batches, cluster-wide.
    Raises DatabaseUnavailable (the rows not reached stay pending), ProcessingBusy (another
    worker holds the lease) and LeaseLost."""
    now = clock()
    summary = ApplySummary()
    lease = lease or Lease(engine)
    with database_errors(engine), lease:
        for row in _pending_rows(engine, limit):
            outcome = _apply_row(engine, row, allow, now, tell=session is not None, lease=lease,
                                 members=groups.members if groups is not None else None)
            if outcome == InboxState.APPLIED:
                summary.applied += 1
            elif outcome == InboxState.REFUSED:
                summary.refused += 1
        if session is not None:
            _send_replies(engine, session, now, summary, timeout)
    return summary


def _pending_rows(engine: Engine, limit: int | None):
    c = action_inbox.c
    last, seen = 0, 0
    while limit is None or seen < limit:
        size = PAGE if limit is None else min(PAGE, limit - seen)
        with engine.connect() as conn:
            page = conn.execute(
                select(c.id, c.door, c.received_at, c.body, c.incident_id, c.token_name)
                .where(c.state == InboxState.PENDING, c.id > last).order_by(c.id).limit(size)).all()
        if not page:
            return
        for r in page:
            yield InboxRow(r.id, r.door, r.received_at, bytes(r.body), r.incident_id, r.token_name)
        last, seen = page[-1].id, seen + len(page)


def _apply_row(engine: Engine, row: InboxRow, allow: AllowList, now: datetime, tell: bool,
               lease: Lease, members: Members | None = None) -> InboxState | None:
    """Applies one row or marks it refused; returns which (None: another applier had it, or it
    is left pending after conflicting past its retries)."""
    response_url = None
    try:
        intent = read_intent(row)
        response_url = intent.response_url
        why = refusal(intent, allow, members)
        if why is not None:
            raise Refused(why)

        def once() -> InboxState | None:
            with engine.connect() as conn, conn.begin():
                if not _still_pending(conn, row.id):
                    return None
                if intent.dedupe_key is not None:
                    _take_key(conn, row.id, intent.dedupe_key)
                what = _apply(conn, intent)
                conn.execute(update(action_inbox).where(action_inbox.c.id == row.id).values(
                    state=InboxState.APPLIED, reason=what[:1000], applied_at=now, dedupe_key=intent.dedupe_key))
                lease.fence(conn)
            return InboxState.APPLIED

        # A conflict with a concurrent transaction (1213/1205, another Galera node) runs it again.
        return retry_conflicts(once)
    except DatabaseConflict:
        log.warning("action %d kept conflicting with concurrent writes; left pending for the next run", row.id)
        return None
    except Unusable as exc:
        reason, response_url = exc.reason, exc.response_url
    except IntegrityError:  # another applier took the same dedupe key between our check and write
        reason = "the same click was already applied"
    except IncidentctlError as exc:
        if isinstance(exc, DatabaseUnavailable | LeaseLost):
            raise
        reason = str(exc)
    except Exception as exc:  # a bug must not hold the rows behind this one
        log.exception("action %d could not be applied", row.id)
        reason = f"could not be applied: {type(exc).__name__}: {short_error(exc)}"
    _mark_refused(engine, row.id, reason, now, reply=tell and response_url is not None)
    return InboxState.REFUSED


def _still_pending(conn: Connection, row_id: int) -> bool:
    query = select(action_inbox.c.state).where(action_inbox.c.id == row_id)
    if capabilities(conn).row_locks:
        query = query.with_for_update()
    return conn.scalar(query) == InboxState.PENDING


def _take_key(conn: Connection, row_id: int, key: str) -> None:
    """Raises Refused when another row already applied the same click."""
    c = action_inbox.c
    other = conn.scalar(select(c.id).where(c.dedupe_key == key, c.id != row_id))
    if other is not None:
        raise Refused(f"the same click was already applied (action {other})")


def _apply(conn: Connection, intent: Intent) -> str:
    """Applies the intent through the CLI's transitions in the caller's transaction; returns
    what it did. Raises NotFound, InvalidTransition, InvalidSilence."""
    iid = intent.incident_id
    if intent.kind in _TRANSITIONS:
        transition_on(conn, intent.kind, iid, by=intent.by, note=intent.text, now=intent.at, via=intent.via)
        return f"incident {iid} {_TRANSITIONS[intent.kind]} by {intent.by}"
    if intent.kind is ActionKind.NOTE:
        note_on(conn, iid, intent.text or "", by=intent.by, now=intent.at, via=intent.via)
        return f"note added to incident {iid} by {intent.by}"
    incident = conn.execute(select(incidents).where(incidents.c.id == iid)).first()
    if incident is None:
        raise NotFound(f"incident {iid} not found")
    length = parse_duration(intent.duration or "")
    until = intent.at + length
    comment = intent.text or f"silenced for {format_duration(length)} from {intent.via} (incident #{iid})"
    silence = silence_on(conn, incident_matchers(incident._mapping), starts_at=intent.at, ends_at=until,
                         comment=comment, created_by=intent.by, now=intent.at)
    record_on(conn, iid, TimelineKind.SILENCED, by=intent.by, now=intent.at,
              detail={"via": intent.via, "silence_id": silence["id"], "until": until.isoformat(),
                      "duration": intent.duration, "matchers": silence["matchers"]})
    return f"incident {iid} silenced until {until.isoformat()} by {intent.by} (silence {silence['id']})"


def _mark_refused(engine: Engine, row_id: int, reason: str, now: datetime, *, reply: bool) -> None:
    c = action_inbox.c
    with engine.begin() as conn:
        conn.execute(update(action_inbox).where(c.id == row_id, c.state == InboxState.PENDING).values(
            state=InboxState.REFUSED, reason=reason[:1000], applied_at=now,
            reply_state=ReplyState.PENDING if reply else None))


def _send_replies(engine: Engine, session: requests.Session, now: datetime, summary: ApplySummary,
                  timeout: float) -> None:
    """Tells each person whose Slack action was refused why, once; retries what may succeed later."""
    c = action_inbox.c
    with engine.connect() as conn:
        owed = conn.execute(select(c.id, c.body, c.reason, c.received_at, c.reply_attempts)
                            .where(c.reply_state == ReplyState.PENDING).order_by(c.id)).all()
    for row in owed:
        url = response_url_of(bytes(row.body))
        attempts = row.reply_attempts + 1
        state, error = ReplyState.SENT, None
        if url is None:
            state, error = ReplyState.FAILED, "no response_url in the request"
        elif now - row.received_at > RESPONSE_URL_LIFETIME:
            state, error = ReplyState.FAILED, "response_url expired (Slack accepts it for 30 minutes)"
        else:
            try:
                respond(session, url, refusal_message(f"Not done: {row.reason}"), timeout=timeout)
            except SlackApiError as exc:
                error = str(exc)
                retry = exc.outcome in (RETRYABLE, UNKNOWN) and attempts < MAX_REPLY_ATTEMPTS
                state = ReplyState.PENDING if retry else ReplyState.FAILED
        if state == ReplyState.SENT:
            summary.replies_sent += 1
        elif state == ReplyState.FAILED:
            summary.replies_failed += 1
            log.warning("could not tell Slack user why action %d was refused: %s", row.id, error)
        else:
            summary.replies_waiting += 1
        with engine.begin() as conn:
            conn.execute(update(action_inbox).where(c.id == row.id).values(
                reply_state=state, reply_attempts=attempts, reply_error=error and error[:1000]))
