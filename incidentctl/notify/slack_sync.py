"""Keeping the bot's messages current: changes → thread replies queued → stale messages
re-rendered (chat.update) → replies posted (one per message per run) → reminders.

One run (`sync_messages`, called by `notify` and by `run` every slack_sync_interval):
1. `queue_replies`: each change (an outbox row: alerts, the CLI, the action inbox) of an incident
   that a live message posted within slack_update_window shows gets a reply row for that message
   (a note too: an outbox row only threads take, which makes no re-render);
   a silence that began or stopped covering such an incident makes the message stale too, and
   one that began after the message was posted is owed a reply there (once per message).
2. Every such message whose incidents changed after what it shows is rendered again from its
   stored digest with the incidents' current states, the newest render only (coalesced), and
   sent with chat.update, paced. A message Slack will not edit any more (message_not_found,
   cant_update_message, edit_window_closed) is posted anew in its channel and followed from then
   on; a repost without an answer is `lost` (never posted twice blindly).
3. The replies owed, claimed like the outbox, one thread reply per message listing its changes;
   a resolve links to the message that announced the incident (chat.getPermalink, kept), a note
   gives its whole text (from its timeline row), cut to Slack's limits.
   Posted and no answer → `unknown`, not sent again (the message itself, edited in place, says
   where the incident stands).
4. Reminders (notify/reminders.py).

Slack's answers: retryable → tried again after Retry-After or a backoff; permanent for the
token or a channel (invalid_auth, token_revoked, channel_not_found, not_in_channel, …) → the
error is kept on the message (doctor's slack_app check, notify's report) and tried again after
PERMANENT_RETRY, so fixing it is enough; permanent for the render → `failed`. After a token
error or a rate limit longer than the client waits, nothing more is sent in this run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Engine

from incidentctl.incidents.model import ChangeKind
from incidentctl.notify import slack_store as store
from incidentctl.notify.pacing import backoff_seconds
from incidentctl.notify.reminders import ESCALATE, REMIND, ReminderPolicy, Sent, decide, escalation_text, reminder_text
from incidentctl.notify.routes import Route
from incidentctl.notify.slack_api import OutcomeUnknown, Permanent, RateLimited, Retryable, SlackApi, SlackApiError
from incidentctl.notify.slack_blocks import lasted, render_current, silence_reply, thread_reply
from incidentctl.notify.slack_updates import FAILED, LOST, REPOSTED, RETRY, UPDATED, PendingUpdate, send_updates
from incidentctl.slicing import clip

REPLY_LEASE = timedelta(minutes=2)
PERMANENT_RETRY = timedelta(minutes=10)
MAX_REPLY_TEXT = 4000
NOTE_TEXT = 3000  # Slack's limit for a section's text; the reply is cut to MAX_REPLY_TEXT
# The actor in an outbox row's reason, as incidents/actions.py writes it.
_BY = {"acknowledged": "acknowledged by ", "resolved": "manual by ", "reopened": "reopened by "}


@dataclass
class SyncSummary:
    """What one run did to keep the bot's messages current."""

    queued: int = 0  # thread replies queued for new changes
    updated: int = 0  # messages edited in place
    reposted: int = 0  # messages Slack would not edit, posted anew
    lost: int = 0  # reposts without an answer (not posted again)
    replies: int = 0  # thread replies posted (each may list several changes)
    replies_unknown: int = 0  # changes whose reply went out without an answer
    reminders: int = 0
    escalations: int = 0
    retrying: int = 0  # messages or replies to try again later
    failed: int = 0
    deferred: bool = False  # the run's budget ran out: the rest goes in the next run
    errors: list[dict] = field(default_factory=list)  # Slack's permanent answers: {scope, error, channel}

    def as_dict(self) -> dict:
        return {k: v for k, v in vars(self).items()}

    def refused(self, exc_or_result, channel: str) -> None:
        entry = {"scope": exc_or_result.scope, "error": exc_or_result.error, "channel": channel}
        if entry not in self.errors:
            self.errors.append(entry)


class Budget:
    """How long one run may wait on Slack's limits (None: as long as it takes): in all, and for
    one call. `run`'s jobs share one worker, so a run that waits a minute on chat.update's 50/min
    would hold up `process`; and a method whose bucket is empty should not take the time of
    another's (edits and thread replies are limited apart). What does not fit goes in the next
    run, a few seconds later, when the buckets have refilled."""

    PER_CALL = 1.0

    def __init__(self, api: SlackApi, seconds: float | None):
        self.api, self.seconds = api, seconds
        self.started = api.pacer.clock()
        self.deferred = False

    def allows(self, method: str, channel: str | None) -> bool:
        if self.seconds is None:
            return True
        wait = self.api.pacer.wait_time(method, channel)
        spent = self.api.pacer.clock() - self.started
        if wait > min(self.PER_CALL, self.seconds) or spent + wait > self.seconds:
            self.deferred = True
            return False
        return True


def sync_messages(engine: Engine, api: SlackApi, routes: Sequence[Route], policy: ReminderPolicy, *,
                  window: timedelta, now: datetime, budget: float | None = None) -> SyncSummary:
    """One run: queue, re-render, reply, remind (see the module's docstring), waiting on Slack's
    limits at most `budget` seconds."""
    summary = SyncSummary()
    since = now - window
    limit = Budget(api, budget)
    summary.queued = store.queue_replies(engine, since, now)
    store.take_in_silences(engine, since, now)
    stopped = _render(engine, api, since, now, summary, limit)
    if not stopped:
        stopped = _reply(engine, api, now, summary, limit)
    if not stopped:
        _remind(engine, api, routes, policy, since, now, summary, limit)
    summary.deferred = limit.deferred
    return summary


def _render(engine: Engine, api: SlackApi, since: datetime, now: datetime, summary: SyncSummary,
            budget: Budget) -> bool:
    messages = store.stale_messages(engine, since, now)
    if not messages:
        return False
    states = store.current_states(engine, {i for m in messages for i in m["lines"].values()}, now)
    by_key = {}
    updates = []
    for waiting, m in enumerate(messages):  # the least recently edited first (its seq orders the sends)
        render = render_current(m["base"], m["lines"], states, now)
        update = PendingUpdate(m["channel"], m["ts"], waiting, render["text"], render["blocks"])
        by_key[update.key] = m
        updates.append(update)
    stopped = False
    for result in send_updates(api, updates, lambda u: budget.allows("chat.update", u.channel)):
        m = by_key[result.update.key]
        if result.outcome == UPDATED:
            store.rendered(engine, m["id"], m["changes_seen"], now)
            summary.updated += 1
        elif result.outcome == REPOSTED:
            store.rendered(engine, m["id"], m["changes_seen"], now, ts=result.new_ts)
            summary.reposted += 1
        elif result.outcome == LOST:
            store.mark_message(engine, m["id"], state=store.LOST, updated_at=now,
                               last_error=f"reposted, no answer ({result.error}): may be in the channel; "
                                          "not posted again")
            store.drop_replies(engine, m["id"], "its message was lost")
            summary.lost += 1
        elif result.outcome == RETRY:
            wait = backoff_seconds(m["attempts"] + 1, result.retry_after)
            store.mark_message(engine, m["id"], attempts=m["attempts"] + 1, updated_at=now,
                               next_attempt_at=now + timedelta(seconds=wait))
            summary.retrying += 1
            stopped = stopped or result.error == "ratelimited"
        elif result.outcome == FAILED:
            summary.refused(result, m["channel"])
            error = f"{result.scope}: {result.error}"
            if result.scope == "request":
                store.mark_message(engine, m["id"], state=store.FAILED, last_error=error, updated_at=now)
                summary.failed += 1
            else:
                store.mark_message(engine, m["id"], last_error=error, updated_at=now,
                                   next_attempt_at=now + PERMANENT_RETRY)
                summary.retrying += 1
                stopped = stopped or result.scope == "workspace"
    return stopped


def _reply(engine: Engine, api: SlackApi, now: datetime, summary: SyncSummary, budget: Budget) -> bool:
    rows = store.claim_replies(engine, now, REPLY_LEASE)
    if not rows:
        return False
    first = store.announcing(engine, {r["incident_id"] for r in rows if r["change"] == "resolved"})
    notes = store.note_texts(engine, rows)
    covers = store.silence_covers(engine, rows)
    by_message: dict[int, list[dict]] = {}
    for r in rows:
        by_message.setdefault(r["message_id"], []).append(r)
    dead_channels: set[str] = set()
    for n, message_rows in enumerate(by_message.values()):
        head = message_rows[0]
        ids = [r["id"] for r in message_rows]
        if not budget.allows("chat.postMessage", head["channel"]):
            store.release_replies(engine, [r["id"] for rows in list(by_message.values())[n:] for r in rows])
            return False
        if head["channel"] in dead_channels:
            store.settle_replies(engine, ids, next_attempt_at=now + PERMANENT_RETRY)
            continue
        lines = [_silence_line(r, covers[r["id"]]) if r["silence_id"] is not None
                 else _note_line(r, notes.get(r["notification_id"])) if r["change"] == ChangeKind.NOTE
                 else _reply_line(api, engine, r, first.get(r["incident_id"]), head) for r in message_rows]
        text = clip("\n".join(lines), MAX_REPLY_TEXT)
        try:
            _, ts = api.post_message(head["channel"], text, thread_ts=head["ts"])
        except OutcomeUnknown as exc:
            summary.replies_unknown += store.settle_replies(engine, ids, state=store.UNKNOWN,
                                                            last_error=f"no answer: {exc.error}")
            continue
        except Permanent as exc:
            summary.refused(exc, head["channel"])
            if exc.scope == "request":
                summary.failed += store.settle_replies(engine, ids, state=store.FAILED,
                                                       last_error=f"{exc.scope}: {exc.error}")
                continue
            store.settle_replies(engine, ids, last_error=f"{exc.scope}: {exc.error}",
                                 next_attempt_at=now + PERMANENT_RETRY)
            summary.retrying += 1
            if exc.scope == "workspace":
                return True
            dead_channels.add(head["channel"])
            continue
        except SlackApiError as exc:  # retryable (MessageGone cannot come from a post)
            wait = backoff_seconds(max(r["attempts"] for r in message_rows) + 1, exc.retry_after)
            store.settle_replies(engine, ids, last_error=str(exc.error), next_attempt_at=now + timedelta(seconds=wait))
            summary.retrying += 1
            if isinstance(exc, RateLimited):
                return True
            continue
        store.settle_replies(engine, ids, state=store.SENT, reply_ts=ts, sent_at=now, last_error=None)
        summary.replies += 1
    return False


def _reply_line(api: SlackApi, engine: Engine, row: dict, announced: dict | None, message: dict) -> str:
    """One change as a thread line; a resolve links to the message that announced the incident."""
    change, reason = row["change"], row["reason"] or ""
    by, detail = None, reason
    prefix = _BY.get(change)
    if prefix and reason.startswith(prefix):
        by, _, note = reason[len(prefix):].partition(": ")
        detail = note or None
    permalink = None
    if change == "resolved":
        detail = "; ".join(x for x in (detail, lasted(row["opened_at"], row["resolved_at"])) if x) or None
        permalink = _permalink(api, engine, announced)
    reply = thread_reply(change, row["incident_id"], row["title"], by=by, detail=detail, permalink=permalink)
    return reply["text"]


def _note_line(row: dict, note: tuple[str, str] | None) -> str:
    """A note as a thread line: `:memo: *Note* by alice · #42 HighCPU · <text>`, the text as long
    as a section may be (the reply as a whole is cut to MAX_REPLY_TEXT)."""
    if note is None:  # its timeline row is gone: the outbox's reason (`note by <who>: <text>`, cut)
        by, _, text = row["reason"].removeprefix("note by ").partition(": ")
    else:
        by, text = note
    return thread_reply(ChangeKind.NOTE, row["incident_id"], row["title"], by=by, detail=text or None,
                        detail_limit=NOTE_TEXT)["text"]


def _silence_line(row: dict, covered: list[tuple[int, str]]) -> str:
    """A silence as a thread line: who, for how long, until when, and what it covers here."""
    return silence_reply(row["silenced_by"], row["silence_starts_at"], row["silence_ends_at"],
                         covered or [(row["incident_id"], row["title"])])["text"]


def _permalink(api: SlackApi, engine: Engine, announced: dict | None) -> str | None:
    """The announcing message's link, asked of Slack once and kept; None when Slack cannot say."""
    if announced is None or announced["state"] != store.LIVE:
        return None
    if announced["permalink"]:
        return announced["permalink"]
    try:
        link = api.get_permalink(announced["channel"], announced["ts"])
    except SlackApiError:
        return None  # the reply goes without its link rather than not at all
    store.mark_message(engine, announced["id"], permalink=link[:512])
    announced["permalink"] = link
    return link


def _remind(engine: Engine, api: SlackApi, routes: Sequence[Route], policy: ReminderPolicy, since: datetime,
            now: datetime, summary: SyncSummary, budget: Budget) -> None:
    if policy.most <= 0 or not policy.severities:
        return
    candidates = store.unacknowledged(engine, sorted(policy.severities), now - policy.after, since)
    if not candidates:
        return
    ids = [c["id"] for c in candidates]
    sent = store.reminder_states(engine, ids)
    silenced = store.silenced_now(engine, ids, now)
    first = store.announcing(engine, ids)
    by_name = {r.name: r for r in routes}
    for incident in candidates:
        announced = first.get(incident["id"])
        if announced is None or announced["state"] != store.LIVE:
            continue
        route = by_name.get(announced["route"])
        if route is None:  # its route is no longer configured
            continue
        escalation = by_name.get(route.escalate_to) if route.escalate_to else None
        row = sent.get(incident["id"], {})
        so_far = Sent(row.get("sent", 0), row.get("last_sent_at"), row.get("escalated_at"))
        decision = decide(policy, status=incident["status"], severity=incident["severity"],
                          opened_at=incident["opened_at"], silenced=incident["id"] in silenced, sent=so_far,
                          can_escalate=bool(escalation and escalation.channel), now=now)
        if decision.action not in (REMIND, ESCALATE):
            continue
        if not budget.allows("chat.postMessage", announced["channel"]):
            continue
        if not store.claim_reminder(engine, incident["id"], sent=so_far.count,
                                    escalate=decision.action == ESCALATE, now=now):
            continue
        try:
            if decision.action == REMIND:
                api.post_message(announced["channel"], reminder_text(route.oncall, incident, decision, now),
                                 thread_ts=announced["ts"])
                summary.reminders += 1
            elif escalation is not None:
                text = escalation_text(escalation.oncall, incident, decision, now, route.name,
                                       _permalink(api, engine, announced))
                api.post_message(escalation.channel, text)
                summary.escalations += 1
        except SlackApiError as exc:
            # Claimed first: one Slack may have posted (no answer) is not sent twice, only reported.
            error = f"{exc.outcome}: {exc.error}"
            if isinstance(exc, Retryable):
                store.unclaim_reminder(engine, incident["id"], sent=so_far.count, last_at=so_far.last_at,
                                       escalate=decision.action == ESCALATE, error=error, now=now)
            else:
                store.reminder_error(engine, incident["id"], error, now)
            if isinstance(exc, Permanent):
                summary.refused(exc, announced["channel"])
            if isinstance(exc, RateLimited) or (isinstance(exc, Permanent) and exc.scope == "workspace"):
                return

