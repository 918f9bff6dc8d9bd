"""Digests through the Slack app's bot: chat.postMessage to the route's channel, the message
stored with the incidents it shows, so that slack_sync.py can keep it current.

With a bot token, an acknowledge or resolve of an incident that a live recent message in the
route's channel already shows is not news for a new digest: it is delivered in place (the
message re-rendered, the change replied in its thread), and its outbox row is marked sent here.
Openings, reopenings and escalations still make a new digest (they need someone's attention).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Engine

from incidentctl.incidents.model import ChangeKind
from incidentctl.notify import slack_store
from incidentctl.notify.digest import Change, entries
from incidentctl.notify.slack import OK, PERMANENT, RETRYABLE, UNKNOWN, SendResult
from incidentctl.notify.slack_api import OutcomeUnknown, Permanent, Retryable, SlackApi, SlackApiError
from incidentctl.notify.slack_blocks import menu_lines, with_actions

IN_PLACE = (ChangeKind.ACKNOWLEDGED, ChangeKind.RESOLVED)


def split_in_place(engine: Engine, channel: str, rows: Sequence[dict],
                   since: datetime) -> tuple[list[dict], list[dict]]:
    """(rows for a new digest, rows delivered in place): acknowledges and resolves of incidents
    a live message in `channel` posted since `since` shows."""
    candidates = {r["incident_id"] for r in rows if r["change"] in IN_PLACE}
    shown = slack_store.shown_in(engine, channel, candidates, since) if candidates else set()
    digest = [r for r in rows if not (r["change"] in IN_PLACE and r["incident_id"] in shown)]
    in_place = [r for r in rows if r["change"] in IN_PLACE and r["incident_id"] in shown]
    return digest, in_place


def bot_message(message: dict, changes: Sequence[Change], now: datetime) -> dict:
    """The digest as the bot posts it: an actions menu on each incident line."""
    return with_actions(message, entries(changes), now)


def post_digest(engine: Engine, api: SlackApi, *, route: str, channel: str, message: dict, changes: Sequence[Change],
                now: datetime) -> tuple[SendResult, str | None]:
    """Posts the digest `message` (built from `changes`) to `channel` and stores it; returns
    Slack's answer as a SendResult (with the permanent error's scope) and the message's ts."""
    posted = bot_message(message, changes, now)
    try:
        channel_id, ts = api.post_message(channel, posted["text"], posted["blocks"])
    except SlackApiError as exc:
        return result_for(exc), None
    slack_store.record_message(engine, route=route, channel=channel_id, ts=ts, posted_at=now, base=message,
                               lines=menu_lines(posted), changes={c.notification_id: c.incident_id for c in changes})
    return SendResult(OK, 200), ts


def result_for(exc: SlackApiError) -> SendResult:
    """A Web API failure in the outbox's terms; a permanent error names what to fix
    (`channel: not_in_channel`, `workspace: token_revoked`)."""
    status = exc.answer.status if exc.answer.status != 200 else None  # Slack's errors come with 200
    if isinstance(exc, Retryable):
        return SendResult(RETRYABLE, status, exc.error, exc.retry_after)
    if isinstance(exc, OutcomeUnknown):
        return SendResult(UNKNOWN, status, exc.error)
    scope = exc.scope if isinstance(exc, Permanent) else "request"
    return SendResult(PERMANENT, status, f"{scope}: {exc.error}")
